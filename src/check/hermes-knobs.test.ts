// Issue 13 items 8 and 10: every Hermes exposure knob `check` must see, each with an input that trips it and one that
// does not, read from files the way an operator has them (.env beside config.yaml, a compose service's environment).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCheck } from "./check.ts";
import { PERIMETER_BYPASS_TOOLSETS } from "./hermes-facts.ts";
import { NETWORK_DISABLED_TOOLSETS } from "../render/index.ts";

function rulesFor(files: Record<string, string>): string[] {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-knobs-"));
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(directory, name), content, { mode: 0o600 });
    const result = runCheck([directory], { cwd: directory, today: "2026-06-01", kustomize: "builtin" });
    assert.deepEqual(result.errors, []);
    return result.findings.filter((finding) => finding.suppression === undefined).map((finding) => finding.ruleId);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

const env = (text: string) => rulesFor({ ".env": `${text}\n` });
const CONFIG = "model:\n  provider: custom\n  base_url: http://llm-proxy:8702/v1\napprovals:\n  mode: manual\n";

const KNOBS: ReadonlyArray<{ knob: string; rule: string; fail: () => string[]; pass: () => string[] }> = [
  { knob: "HERMES_DASHBOARD=1 alone (binds 0.0.0.0:9119)", rule: "HERMES-DASHBOARD-EXPOSED", fail: () => env("HERMES_DASHBOARD=1"), pass: () => env("HERMES_DASHBOARD=1\nHERMES_DASHBOARD_HOST=127.0.0.1") },
  {
    knob: "HERMES_DASHBOARD_INSECURE",
    rule: "HERMES-DASHBOARD-EXPOSED",
    fail: () => env("HERMES_DASHBOARD=1\nHERMES_DASHBOARD_OAUTH_CLIENT_ID=agent:1234\nHERMES_DASHBOARD_INSECURE=1"),
    pass: () => env("HERMES_DASHBOARD=1\nHERMES_DASHBOARD_OAUTH_CLIENT_ID=agent:1234"),
  },
  {
    knob: "a dashboard auth variable that Hermes does not read (DASHBOARD_PASSWORD) is no auth",
    rule: "HERMES-DASHBOARD-EXPOSED",
    fail: () => env("HERMES_DASHBOARD=1\nHERMES_DASHBOARD_PASSWORD=hunter2"),
    pass: () => env("HERMES_DASHBOARD=1\nHERMES_DASHBOARD_BASIC_AUTH_USERNAME=admin\nHERMES_DASHBOARD_BASIC_AUTH_PASSWORD_HASH=$argon2id$v=19$abc"),
  },
  { knob: "HERMES_ALLOW_PRIVATE_URLS", rule: "HERMES-PRIVATE-URLS", fail: () => env("HERMES_ALLOW_PRIVATE_URLS=true"), pass: () => env("HERMES_ALLOW_PRIVATE_URLS=false") },
  { knob: "TELEGRAM_GROUP_ALLOWED_CHATS=*", rule: "HERMES-ALLOW-ALL-USERS", fail: () => env("TELEGRAM_GROUP_ALLOWED_CHATS=*"), pass: () => env("TELEGRAM_GROUP_ALLOWED_CHATS=-1001234567890") },
  { knob: "* in <PLATFORM>_ALLOWED_USERS", rule: "HERMES-ALLOW-ALL-USERS", fail: () => env("DISCORD_ALLOWED_USERS=112233,*"), pass: () => env("DISCORD_ALLOWED_USERS=112233") },
  { knob: "DISCORD_ALLOW_BOTS", rule: "HERMES-ALLOW-BOTS", fail: () => env("DISCORD_ALLOW_BOTS=mentions"), pass: () => env("DISCORD_ALLOW_BOTS=none") },
  { knob: "unauthorized_dm_behavior: pair", rule: "HERMES-DM-PAIRING", fail: () => rulesFor({ "config.yaml": `${CONFIG}unauthorized_dm_behavior: pair\n` }), pass: () => rulesFor({ "config.yaml": `${CONFIG}unauthorized_dm_behavior: ignore\n` }) },
  {
    knob: "platforms.telegram.unauthorized_dm_behavior: pair",
    rule: "HERMES-DM-PAIRING",
    fail: () => rulesFor({ "config.yaml": `${CONFIG}unauthorized_dm_behavior: ignore\nplatforms:\n  telegram:\n    unauthorized_dm_behavior: pair\n` }),
    pass: () => rulesFor({ "config.yaml": `${CONFIG}platforms:\n  telegram:\n    unauthorized_dm_behavior: ignore\n` }),
  },
  { knob: "an empty HTTPS_PROXY in .env (item 8)", rule: "HERMES-PROXY-BYPASS", fail: () => env("HTTPS_PROXY="), pass: () => env("HTTPS_PROXY=http://egress-proxy:3128") },
  { knob: "NO_PROXY=* in .env (item 8)", rule: "HERMES-PROXY-BYPASS", fail: () => env("NO_PROXY=localhost,*"), pass: () => env("NO_PROXY=mcp-guard,llm-proxy,localhost") },
];

for (const { knob, rule, fail, pass } of KNOBS) {
  test(`check sees ${knob} (${rule})`, () => {
    assert.ok(fail().includes(rule), `${rule} on the failing input`);
    assert.ok(!pass().includes(rule), `${rule} not on the passing input`);
  });
}

const SANDBOXED = `${CONFIG}terminal:\n  backend: local\n`;
const ALL_OFF = ["code_execution", "file", "terminal", ...PERIMETER_BYPASS_TOOLSETS];
const SAFE = `security:\n  allow_lazy_installs: false\nkanban:\n  dispatch_in_gateway: false\nmcp_servers:\n  perimeter:\n    url: http://mcp-guard:8700/mcp\n    sampling: { enabled: false }\n`;

for (const toolset of ["browser", "cronjob", "messaging", "kanban", "web", "vision", "image_gen", "tts"]) {
  test(`check sees the ${toolset} toolset left on beside a sandboxed terminal (HERMES-PERIMETER-BYPASS, item 4)`, () => {
    const without = ALL_OFF.filter((name) => name !== toolset);
    assert.ok(rulesFor({ "config.yaml": `${SANDBOXED}agent:\n  disabled_toolsets: [${without.join(", ")}]\n${SAFE}` }).includes("HERMES-PERIMETER-BYPASS"));
    assert.ok(!rulesFor({ "config.yaml": `${SANDBOXED}agent:\n  disabled_toolsets: [${ALL_OFF.join(", ")}]\n${SAFE}` }).includes("HERMES-PERIMETER-BYPASS"));
  });
}

for (const [feature, unsafe] of [
  ["security.allow_lazy_installs", SAFE.replace("allow_lazy_installs: false", "allow_lazy_installs: true")],
  ["MCP sampling", SAFE.replace("    sampling: { enabled: false }\n", "")],
  ["a local stdio MCP server", `${SAFE}  local:\n    command: npx\n    sampling: { enabled: false }\n`],
  ["kanban.dispatch_in_gateway", SAFE.replace("dispatch_in_gateway: false", "dispatch_in_gateway: true")],
] as const) {
  test(`check sees ${feature} beside a sandboxed terminal (HERMES-PERIMETER-BYPASS, item 4)`, () => {
    const disabled = `agent:\n  disabled_toolsets: [${ALL_OFF.join(", ")}]\n`;
    assert.ok(rulesFor({ "config.yaml": `${SANDBOXED}${disabled}${unsafe}` }).includes("HERMES-PERIMETER-BYPASS"));
    assert.ok(!rulesFor({ "config.yaml": `${SANDBOXED}${disabled}${SAFE}` }).includes("HERMES-PERIMETER-BYPASS"));
  });
}

test("render disables exactly the toolsets check expects off", () => {
  assert.deepEqual([...NETWORK_DISABLED_TOOLSETS].sort(), [...PERIMETER_BYPASS_TOOLSETS].sort());
});

test("the .env and config.yaml render writes pass these rules (item 8: check reads the rendered .env)", () => {
  const golden = new URL("../render/golden/k3s-telegram-minimax/compose/config/", import.meta.url);
  const found = rulesFor({ "config.yaml": readFileSync(new URL("hermes-config.yaml", golden), "utf8"), ".env": readFileSync(new URL("hermes.env", golden), "utf8") });
  for (const rule of ["HERMES-PROXY-BYPASS", "HERMES-PERIMETER-BYPASS", "HERMES-DM-PAIRING", "HERMES-ALLOW-ALL-USERS", "HERMES-DASHBOARD-EXPOSED", "HERMES-LOCAL-TERMINAL-PUBLIC-CHAT"]) {
    assert.ok(!found.includes(rule), `${rule} on the render`);
  }
});

test("loopback is judged as the services judge it (src/shared/host-port.ts): an IPv4-mapped loopback stays on the host, a malformed 127.x name does not", () => {
  for (const host of ["127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost"]) {
    assert.ok(!env(`HERMES_DASHBOARD=1\nHERMES_DASHBOARD_HOST=${host}`).includes("HERMES-DASHBOARD-EXPOSED"), `${host} is loopback`);
  }
  for (const host of ["127.999.0.1", "127.0.0.1.attacker.example", "0.0.0.0"]) {
    assert.ok(env(`HERMES_DASHBOARD=1\nHERMES_DASHBOARD_HOST=${host}`).includes("HERMES-DASHBOARD-EXPOSED"), `${host} is not loopback`);
  }
});
