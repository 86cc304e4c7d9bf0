// Requirements (issue 17 item 2, "Bad input"): a vps config without an admin access path is refused; an
// internet-wide SSH range needs host.ssh.allowPublic, and then fail2ban; the Hermes API server and dashboard bind
// loopback only; the agent's unit reaches only loopback and only the proxies may reach the internet; the Hermes seed
// is the one every target renders, wired to this host's loopback services.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, parseConfig } from "../../config/index.ts";
import { hermesAgentFiles } from "../hermes.ts";
import { RenderError } from "../plan.ts";
import { renderTarget } from "../render.ts";
import { configFrom, exampleConfig, exampleText } from "../testing.ts";
import { checkLockout } from "./lockout.ts";
import type { Session, SshAccess } from "./lockout.ts";
import { renderVps, vpsEndpoints } from "./render.ts";

const BASE = exampleText("vps");

function withHost(host: string, extra = ""): string {
  return `${BASE.replace(/\nhost:\n[\s\S]*$/, "\n")}${extra}host:\n${host}`;
}

function refused(text: string): string {
  try {
    configFrom(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail("the config was accepted");
}

function fileOf(render: ReturnType<typeof renderVps>, path: string): string {
  const found = render.files.find((file) => file.path === `files${path}`);
  assert.ok(found !== undefined, `no ${path} in the render`);
  return found.content;
}

function unitValues(text: string, key: string): string[] {
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));
}

test("a config without a host: section cannot be rendered for vps, and the message says what to add", () => {
  const config = configFrom(BASE.replace(/\nhost:\n[\s\S]*$/, "\n"));
  assert.throws(() => renderTarget(config, "vps"), (error: unknown) => error instanceof RenderError && /host\.ssh\.adminCidrs or host\.ssh\.tailscale/.test(error.message));
});

test("bad input: no admin access path (no CIDR, no tailscale) is refused", () => {
  const message = refused(withHost("  ssh:\n    adminUsers: [admin]\n"));
  assert.match(message, /no admin access path/);
  assert.match(message, /adminCidrs/);
});

test("bad input: SSH open to the internet (0.0.0.0/0, ::/0, or split halves) is refused without allowPublic", () => {
  for (const ranges of ["[0.0.0.0/0]", '["::/0"]', "[0.0.0.0/1, 128.0.0.0/1]"]) {
    const message = refused(withHost(`  ssh:\n    adminUsers: [admin]\n    adminCidrs: ${ranges}\n`));
    assert.match(message, /opens SSH to most of the internet/, ranges);
  }
});

test("bad input: allowPublic needs fail2ban; with it the config is accepted and the jail is on", () => {
  const message = refused(withHost("  ssh:\n    adminUsers: [admin]\n    adminCidrs: [0.0.0.0/0]\n    allowPublic: true\n  fail2ban: { enabled: false }\n"));
  assert.match(message, /fail2ban/);
  const config = configFrom(withHost("  ssh:\n    adminUsers: [admin]\n    adminCidrs: [0.0.0.0/0]\n    allowPublic: true\n"));
  assert.match(fileOf(renderVps(config), "/etc/fail2ban/jail.d/perimeter.local"), /^enabled = true$/m);
});

test("bad input: root as the SSH admin and a typo in host: are refused", () => {
  assert.match(refused(withHost("  ssh:\n    adminUsers: [root]\n    tailscale: true\n")), /root is refused/);
  assert.match(refused(withHost("  ssh:\n    adminUsers: [admin]\n    tailscale: true\n    alowPublic: true\n")), /alowPublic/);
});

test("every listener of the render is on loopback: no 0.0.0.0 or :: bind anywhere, API server and dashboard included", () => {
  const config = configFrom(
    withHost("  ssh:\n    adminUsers: [admin]\n    tailscale: true\n").replace("  websiteBlocklist:", "  apiServer: { enabled: true, port: 8642, keySecret: HERMES_API_SERVER_KEY }\n  dashboard: { enabled: true, port: 9119 }\n  websiteBlocklist:"),
  );
  const render = renderVps(config);
  for (const file of render.files) {
    assert.doesNotMatch(file.content, /0\.0\.0\.0:\d|\[::\]:\d|--host 0\.0\.0\.0|HOST=0\.0\.0\.0/, `${file.path} binds a wildcard address`);
  }
  const gateway = fileOf(render, "/etc/systemd/system/hermes-gateway.service");
  assert.ok(unitValues(gateway, "Environment").includes('"API_SERVER_HOST=127.0.0.1"'));
  const dashboard = fileOf(render, "/etc/systemd/system/hermes-dashboard.service");
  assert.match(unitValues(dashboard, "ExecStart")[0] ?? "", /dashboard --host 127\.0\.0\.1 --port 9119 /);
  const runtime = fileOf(render, "/etc/perimeter/perimeter.yaml");
  for (const listen of runtime.matchAll(/listen: (\S+)/g)) assert.match(listen[1] ?? "", /^127\.0\.0\.1:\d+$/);
});

test("the agent's unit (and the dashboard's) reaches only loopback; only egress-proxy and llm-proxy may reach the internet", () => {
  const render = renderVps(exampleConfig("vps"));
  const loopbackOnly = (path: string) => {
    const text = fileOf(render, path);
    return unitValues(text, "IPAddressDeny").includes("any") && unitValues(text, "IPAddressAllow").join(" ") === "localhost";
  };
  assert.ok(loopbackOnly("/etc/systemd/system/hermes-gateway.service"));
  assert.ok(loopbackOnly("/etc/systemd/system/perimeter-mcp-guard.service"));
  assert.ok(loopbackOnly("/etc/systemd/system/perimeter-sandbox.service"));
  assert.ok(unitValues(fileOf(render, "/etc/systemd/system/perimeter-sandbox.service"), "PrivateNetwork").includes("yes"), "a network-less sandbox runner gets no network namespace of the host");
  assert.ok(!loopbackOnly("/etc/systemd/system/perimeter-egress-proxy.service"));
  assert.ok(!loopbackOnly("/etc/systemd/system/perimeter-llm-proxy.service"));
  const internet = render.units.filter((unit) => unit.name.endsWith(".service") && !unit.service.some(([key, value]) => key === "IPAddressDeny" && value === "any"));
  assert.deepEqual(internet.map((unit) => unit.name).sort(), ["perimeter-egress-proxy.service", "perimeter-llm-proxy.service"]);
  // The second wall: the firewall refuses the agent's uid everything but lo.
  assert.match(fileOf(render, "/etc/perimeter/nftables.nft"), /oifname "lo" accept\n[\s\S]*meta skuid 10000 counter reject/);
});

test("mcp-guard gets the internet only when it calls external MCP servers itself, and the render says so", () => {
  const config = configFrom(BASE.replace("mcp:\n  agents:", 'mcp:\n  servers:\n    github:\n      url: https://api.githubcopilot.com/mcp/\n      headers: { Authorization: "Bearer ${GITHUB_TOKEN}" }\n      tools: { allow: ["get_*"] }\n  agents:'));
  const render = renderVps(config);
  assert.deepEqual(unitValues(fileOf(render, "/etc/systemd/system/perimeter-mcp-guard.service"), "IPAddressDeny"), []);
  assert.ok(render.warnings.some((warning) => /mcp-guard calls external MCP servers/.test(warning)));
});

test("the Hermes seed is the one every target renders, wired to this host's loopback services", () => {
  const config = exampleConfig("vps");
  const render = renderVps(config);
  const expected = hermesAgentFiles(config, vpsEndpoints(config));
  assert.equal(fileOf(render, "/var/lib/hermes/.hermes/config.yaml"), expected.configYaml);
  // The shared .env, except that the API server binds loopback (Hermes reads .env over the unit's environment).
  assert.equal(fileOf(render, "/etc/perimeter/hermes.env"), expected.envFile.replace("API_SERVER_HOST=0.0.0.0", "API_SERVER_HOST=127.0.0.1"));
  assert.match(expected.configYaml, /base_url: http:\/\/127\.0\.0\.1:8702\/v1/);
  assert.match(expected.configYaml, /url: http:\/\/127\.0\.0\.1:8700\/mcp/);
  // Hermes loads .env over its environment: the unit mounts the perimeter's values read-only over it.
  assert.deepEqual(unitValues(fileOf(render, "/etc/systemd/system/hermes-gateway.service"), "BindReadOnlyPaths"), ["/etc/perimeter/hermes.env:/var/lib/hermes/.hermes/.env"]);
  assert.match(fileOf(render, "/etc/tmpfiles.d/perimeter.conf"), /^d \/var\/lib\/hermes\/\.hermes 0700 hermes hermes -$/m);
  assert.match(fileOf(render, "/etc/tmpfiles.d/perimeter.conf"), /^f \/var\/lib\/hermes\/\.hermes\/\.env 0600 hermes hermes -$/m);
});

test("no secret value and no provider key reaches the agent's files; each env file is a root 0600 seed", () => {
  const render = renderVps(exampleConfig("vps"));
  const agentEnv = render.manifest.envFiles.find((file) => file.path.endsWith("/hermes-gateway.env"));
  assert.ok(agentEnv !== undefined && !agentEnv.keys.includes("OPENROUTER_API_KEY"));
  for (const file of render.manifest.files.filter((entry) => entry.path.startsWith("/etc/perimeter/env/"))) {
    assert.equal(file.mode, "0600");
    assert.equal(file.owner, "root");
    assert.equal(file.seed, true);
  }
});

test("the container mode runs the official image on the host network with loopback-only ports and the data directory", () => {
  const config = configFrom(
    withHost("  ssh:\n    adminUsers: [admin]\n    tailscale: true\n  agent: { mode: container }\n").replace("  websiteBlocklist:", "  apiServer: { enabled: true, port: 8642, keySecret: HERMES_API_SERVER_KEY }\n  websiteBlocklist:"),
  );
  const gateway = fileOf(renderVps(config), "/etc/systemd/system/hermes-gateway.service");
  const start = unitValues(gateway, "ExecStart")[0] ?? "";
  assert.match(start, /--network host/);
  assert.match(start, /-e API_SERVER_HOST=127\.0\.0\.1/);
  assert.match(start, /-v \/var\/lib\/hermes\/\.hermes:\/opt\/data /);
  assert.match(start, /-v \/etc\/perimeter\/hermes\.env:\/opt\/data\/\.env:ro/);
  assert.doesNotMatch(start, / -p /);
  assert.match(refused(withHost("  ssh:\n    adminUsers: [admin]\n    tailscale: true\n  agent: { mode: container, uid: 12000 }\n")), /uid 10000/);
});

test("components the vps target does not run are refused by name", () => {
  const config = configFrom(BASE.replace("mcp:\n  agents:", "mcp:\n  servers:\n    k8s: { builtin: kubernetes-readonly, namespaces: [app] }\n  agents:"));
  assert.throws(() => renderVps(config), /kubernetes-readonly/);
});

test("with a backup: section, a daily timer runs the stable backup command with no network", () => {
  const config = configFrom(
    exampleText("vps").replace("\nhost:\n", "\nbackup:\n  dataDirectory: /var/lib/hermes/.hermes\n  recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]\n\nhost:\n"),
  );
  const render = renderVps(config);
  const service = fileOf(render, "/etc/systemd/system/perimeter-backup.service");
  assert.deepEqual(unitValues(service, "ExecStart"), ["/usr/local/bin/perimeter backup create -c /etc/perimeter/perimeter.yaml"]);
  assert.ok(unitValues(service, "PrivateNetwork").includes("yes"));
  assert.deepEqual(unitValues(service, "CapabilityBoundingSet"), ["CAP_DAC_READ_SEARCH"]);
  assert.match(fileOf(render, "/etc/systemd/system/perimeter-backup.timer"), /^OnCalendar=daily$/m);
  assert.ok(render.manifest.units.includes("perimeter-backup.timer") && !render.manifest.units.includes("perimeter-backup.service"));
});

const GOLDEN = fileURLToPath(new URL("../golden/vps/", import.meta.url));
// The Hermes files are pinned by the equality test above against hermesAgentFiles (their owner regenerates its goldens).
const HERMES_FILES = new Set(["files/var/lib/hermes/.hermes/config.yaml", "files/etc/perimeter/hermes.env"]);

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (directory: string) => {
    for (const entry of readdirSync(directory).sort()) {
      const path = join(directory, entry);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(root, path));
    }
  };
  walk(root);
  return out.sort();
}

test("examples/vps.yaml (vps): output matches the golden files (UPDATE_GOLDEN=1 rewrites them)", () => {
  const files = renderVps(exampleConfig("vps")).files.filter((file) => !HERMES_FILES.has(file.path));
  if (process.env.UPDATE_GOLDEN === "1") {
    rmSync(GOLDEN, { recursive: true, force: true });
    for (const file of files) {
      mkdirSync(dirname(join(GOLDEN, file.path)), { recursive: true });
      writeFileSync(join(GOLDEN, file.path), file.content);
    }
  }
  assert.ok(existsSync(GOLDEN), `no golden files in ${GOLDEN}: run UPDATE_GOLDEN=1 node --test src/render/vps/vps.test.ts`);
  assert.deepEqual(listFiles(GOLDEN), files.map((file) => file.path).sort(), "the set of rendered files changed");
  for (const file of files) assert.equal(file.content, readFileSync(join(GOLDEN, file.path), "utf8"), `${file.path} differs from golden (review the diff, then UPDATE_GOLDEN=1)`);
});

test("the runtime perimeter.yaml the services read loads with the schema, every listener on loopback", () => {
  const runtime = parseConfig(fileOf(renderVps(exampleConfig("vps")), "/etc/perimeter/perimeter.yaml"), "perimeter.yaml");
  assert.equal(runtime.mcp.listen, "127.0.0.1:8700");
  assert.equal(runtime.mcp.admin.listen, "127.0.0.1:8710");
  assert.equal(runtime.sandbox.backend, "bubblewrap");
  assert.equal(runtime.audit.path, "/var/lib/perimeter/audit.db");
});

test("rendering twice gives the same bytes", () => {
  const first = renderVps(exampleConfig("vps")).files;
  const second = renderVps(exampleConfig("vps")).files;
  assert.deepEqual(second, first);
});

// ---- apply's lockout decision (seed 004: "deleting the public SSH rule first can lock you out")

const ACCESS: SshAccess = { port: 22, adminUsers: ["admin"], adminCidrs: ["203.0.113.0/24", "2001:db8::/48"], tailscale: true };
const session = (overrides: Partial<Session>): Session => ({ sshClient: undefined, loginUser: "admin", routeInterface: () => "eth0", usersWithoutKeys: [], ...overrides });

test("lockout: a session from outside the admin ranges is refused with what to do instead", () => {
  const decision = checkLockout(ACCESS, session({ sshClient: "198.51.100.9 50000 22" }));
  assert.equal(decision.allow, false);
  assert.match(decision.allow ? "" : decision.reason, /198\.51\.100\.9\/32.*host\.ssh\.adminCidrs/);
});

test("lockout: sessions inside an admin range (IPv4, IPv6 and IPv4-mapped) are admitted", () => {
  for (const client of ["203.0.113.7 50000 22", "2001:db8::5 50000 22", "::ffff:203.0.113.7 50000 22"]) {
    assert.equal(checkLockout(ACCESS, session({ sshClient: client })).allow, true, client);
  }
});

test("lockout: a Tailscale-range address counts only when the kernel routes it over tailscale0", () => {
  assert.equal(checkLockout(ACCESS, session({ sshClient: "100.101.102.103 50000 22", routeInterface: () => "eth0" })).allow, false);
  assert.equal(checkLockout(ACCESS, session({ sshClient: "100.101.102.103 50000 22", routeInterface: () => "tailscale0" })).allow, true);
  assert.equal(checkLockout({ ...ACCESS, tailscale: false }, session({ sshClient: "100.101.102.103 50000 22", routeInterface: () => "tailscale0" })).allow, false);
});

test("lockout: a login user outside AllowUsers, or no admin with a key, is refused", () => {
  assert.match(String(Object(checkLockout(ACCESS, session({ sshClient: "203.0.113.7 1 22", loginUser: "deploy" }))).reason), /deploy.*not in host\.ssh\.adminUsers/);
  assert.match(String(Object(checkLockout(ACCESS, session({ usersWithoutKeys: ["admin"] }))).reason), /authorized key/);
});

test("lockout: on the console (no $SSH_CLIENT) apply may go on, with a note", () => {
  const decision = checkLockout(ACCESS, session({}));
  assert.ok(decision.allow && decision.notes.some((note) => /console/.test(note)));
});
