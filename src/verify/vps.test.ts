// Requirements (issue 18): `perimeter verify isolation|host -t vps` on examples/vps.yaml's real render, laid out as a
// host's files under --root, inside a network namespace of ours where the render's nftables ruleset is loaded and
// the real egress proxy listens where the render points the agent. systemd is not PID 1 here, so the probe runs as
// the agent's uid (setpriv): the firewall's uid wall is exercised for real, the unit's IPAddressDeny is read from the
// unit file (and the check that needs it is skipped, saying so). A correct host passes; each broken variant — a
// hole in the firewall, a missing IPAddressDeny, a leaked key, passwords over SSH, updates off, a world-readable
// .env, SSH open to the world, no firewall — makes exactly its checks FAIL.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { explainChecks as explain, failedChecks as failed, runVerification, NAMED_LISTENER, startInNamespace } from "./testing.ts";
import type { Verification } from "./testing.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "perimeter.js");
const EXAMPLE = join(ROOT, "examples", "vps.yaml");
const isRoot = process.getuid?.() === 0;
const haveTools = ["nft", "sshd", "setpriv"].every((tool) => spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0);
const SKIP = !isRoot ? "needs root: network namespaces, nftables, files owned by the agent's uid" : !haveTools ? "needs nft, sshd and setpriv" : false;
const suffix = Math.random().toString(16).slice(2, 7);
const N = 1 + Math.floor(Math.random() * 250);
const NS = { host: `vv-${suffix}`, lan: `vw-${suffix}` };
const HOST_IP = `10.247.${N}.1`;
const LAN_IP = `10.247.${N}.2`;
const AGENT_UID = 10000;
const PROVIDER_KEY = "openrouter-key-of-llm-proxy-0123456789";

const children: ChildProcess[] = [];
let directory = "";
let root = "";
let ruleset = "";

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

function cleanup(): void {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  for (const name of Object.values(NS)) spawnSync("ip", ["netns", "del", name], { stdio: "ignore" });
  if (directory !== "") rmSync(directory, { recursive: true, force: true });
}

function startIn(namespace: string, command: string[], pattern: RegExp): Promise<ChildProcess> {
  return startInNamespace(namespace, command, pattern, directory, children);
}

const LISTENER = NAMED_LISTENER;

function loadFirewall(text: string): void {
  execFileSync("ip", ["netns", "exec", NS.host, "nft", "-f", "-"], { input: text, stdio: ["pipe", "pipe", "pipe"] });
}

function file(path: string): string {
  return join(root, path);
}

function verify(what: "isolation" | "host"): Promise<Verification> {
  const args = [BIN, "verify", what, "-t", "vps", "-c", EXAMPLE, "--root", root, "--lan", `${LAN_IP}:30002`, "--python", "/usr/bin/python3", "--format", "json"];
  return runVerification("ip", ["netns", "exec", NS.host, process.execPath, ...args], { cwd: directory, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory } });
}

before(async () => {
  if (SKIP !== false) return;
  process.on("exit", cleanup);
  directory = mkdtempSync(join(tmpdir(), "perimeter-verify-vps-"));
  chmodSync(directory, 0o755);
  const rendered = spawnSync(process.execPath, [BIN, "render", "-c", EXAMPLE, "-t", "vps", "-o", join(directory, "render")], { encoding: "utf8" });
  assert.equal(rendered.status, 0, rendered.stderr);
  root = join(directory, "render", "files");
  // What host apply and systemd-tmpfiles leave: the agent's data directory 0700 and its .env 0600, owned by it.
  const data = file("var/lib/hermes/.hermes");
  chmodSync(join(directory, "render"), 0o755);
  writeFileSync(join(data, ".env"), "", { mode: 0o600 });
  for (const path of [file("var/lib/hermes"), data, join(data, ".env"), join(data, "config.yaml")]) chownSync(path, AGENT_UID, AGENT_UID);
  chmodSync(data, 0o700);
  // The distribution's sshd_config including the render's drop-in (as Debian's does with sshd_config.d).
  writeFileSync(file("etc/ssh/sshd_config"), `Include ${file("etc/ssh/sshd_config.d")}/*.conf\nUsePAM yes\nPasswordAuthentication yes\n`);
  mkdirSync("/run/sshd", { recursive: true });
  // The provider key where the render puts it: llm-proxy's env file, never the agent's.
  writeFileSync(file("etc/perimeter/env/llm-proxy.env"), `OPENROUTER_API_KEY=${PROVIDER_KEY}\n`, { mode: 0o600 });

  for (const name of Object.values(NS)) {
    ip("netns", "add", name);
    ip("-n", name, "link", "set", "lo", "up");
  }
  ip("link", "add", `vv-${suffix}`, "netns", NS.host, "type", "veth", "peer", "name", `vw-${suffix}`, "netns", NS.lan);
  ip("-n", NS.host, "addr", "add", `${HOST_IP}/24`, "dev", `vv-${suffix}`);
  ip("-n", NS.lan, "addr", "add", `${LAN_IP}/24`, "dev", `vw-${suffix}`);
  ip("-n", NS.host, "link", "set", `vv-${suffix}`, "up");
  ip("-n", NS.lan, "link", "set", `vw-${suffix}`, "up");
  ruleset = readFileSync(file("etc/perimeter/nftables.nft"), "utf8");
  loadFirewall(ruleset);
  await startIn(NS.lan, [process.execPath, "-e", LISTENER, LAN_IP, "30002", "lan"], /lan listening/);
  await startIn(NS.lan, [process.execPath, "-e", LISTENER, LAN_IP, "443", "telegram"], /telegram listening/);
  // The egress proxy where the render's hermes.env points the agent (127.0.0.1:3128).
  await startIn(NS.host, [process.execPath, BIN, "serve", "egress-proxy", "--listen", "127.0.0.1:3128", "--allow", "api.telegram.org", "--allow-cidr", `${LAN_IP}/32`, "--resolve", `api.telegram.org=${LAN_IP}`], /listening|ready/);
});

after(cleanup);

test("a correct host passes isolation from the agent's uid, and the host review", { skip: SKIP }, async () => {
  const isolation = await verify("isolation");
  assert.deepEqual(failed(isolation), [], explain(isolation));
  assert.equal(isolation.code, 0);
  const byId = new Map(isolation.report.results.map((result) => [result.id, result]));
  for (const id of ["isolation.network-policy", "isolation.proxy-refuses", "isolation.proxy-allows", "isolation.lan", "isolation.agent-env", "isolation.direct"]) assert.equal(byId.get(id)?.status, "PASS", `${id}: ${JSON.stringify(byId.get(id))}`);
  // Refused at once by the firewall's uid rule (reject), not a timeout.
  assert.match(byId.get("isolation.lan")?.evidence ?? "", /30002 (refused|unreachable)/);
  assert.equal(byId.get("isolation.decisive-probe")?.status, "SKIP");
  assert.match(isolation.report.notes.join("\n"), /systemd is not PID 1/);
  assert.match(isolation.report.vantage, new RegExp(`uid ${AGENT_UID}`));
  const host = await verify("host");
  assert.deepEqual(failed(host), [], explain(host));
  const hostById = new Map(host.report.results.map((result) => [result.id, result]));
  for (const id of ["host.sshd", "host.firewall", "host.updates", "host.data-permissions", "host.approvals", "host.ssh-exposure"]) assert.equal(hostById.get(id)?.status, "PASS", `${id}: ${JSON.stringify(hostById.get(id))}`);
});

interface Variant {
  readonly name: string;
  readonly what: "isolation" | "host";
  readonly expected: readonly string[];
  readonly breakIt: () => void;
  readonly repair: () => void;
}

function editFile(path: string, edit: (text: string) => string): { breakIt: () => void; repair: () => void } {
  let original = "";
  return {
    breakIt: () => {
      original = readFileSync(file(path), "utf8");
      writeFileSync(file(path), edit(original));
    },
    repair: () => writeFileSync(file(path), original),
  };
}

// The off-loopback wall (the uid's rules on lo come before it and hold it to its own loopback ports).
const agentUidRule = /^\s*meta skuid \d+ counter .*$/m;
const agentLoopbackWall = /^\s*meta skuid \d+ oifname "lo" .*reject.*$/gm;

const VARIANTS: Variant[] = [
  {
    name: "a hole in the firewall: the agent's uid rule is gone",
    what: "isolation",
    expected: ["isolation.lan"],
    breakIt: () => loadFirewall(ruleset.replace(agentUidRule, "")),
    repair: () => loadFirewall(ruleset),
  },
  {
    name: "the same hole, seen by the host review",
    what: "host",
    expected: ["host.firewall"],
    breakIt: () => loadFirewall(ruleset.replace(agentUidRule, "")),
    repair: () => loadFirewall(ruleset),
  },
  {
    name: "the agent's loopback wall is gone: its uid dials the dashboard and mcp-guard's admin listener",
    what: "host",
    expected: ["host.firewall"],
    breakIt: () => loadFirewall(ruleset.replace(agentLoopbackWall, "")),
    repair: () => loadFirewall(ruleset),
  },
  { name: "IPAddressDeny missing from the agent's unit", what: "isolation", expected: ["isolation.network-policy"], ...editFile("etc/systemd/system/hermes-gateway.service", (text) => text.replace(/^IPAddressDeny=any$/m, "")) },
  { name: "the agent's unit allows every address", what: "isolation", expected: ["isolation.network-policy"], ...editFile("etc/systemd/system/hermes-gateway.service", (text) => text.replace(/^IPAddressAllow=localhost$/m, "IPAddressAllow=any")) },
  { name: "the provider key copied into the agent's env file", what: "isolation", expected: ["isolation.agent-env"], ...editFile("etc/perimeter/env/hermes-gateway.env", (text) => `${text}\nOPENAI_API_KEY=${PROVIDER_KEY}\n`) },
  // Hermes loads its .env over the unit's environment: empty proxies there turn the unit's off.
  { name: "empty proxy variables in the agent's .env", what: "isolation", expected: ["isolation.proxy-allows", "isolation.proxy-refuses"], ...editFile("etc/perimeter/hermes.env", (text) => text.replace(/^(HTTPS?_PROXY|https?_proxy)=.*$/gm, "$1=")) },
  { name: "SSH passwords on: the render's drop-in removed", what: "host", expected: ["host.sshd"], ...editFile("etc/ssh/sshd_config.d/00-perimeter.conf", () => "") },
  { name: "automatic updates off", what: "host", expected: ["host.updates"], ...editFile("etc/apt/apt.conf.d/20auto-upgrades", (text) => text.replace(/Unattended-Upgrade "1"/, 'Unattended-Upgrade "0"')) },
  {
    name: "a world-readable .env",
    what: "host",
    expected: ["host.data-permissions"],
    breakIt: () => chmodSync(file("var/lib/hermes/.hermes/.env"), 0o644),
    repair: () => chmodSync(file("var/lib/hermes/.hermes/.env"), 0o600),
  },
  {
    name: "SSH open to the world without host.ssh.allowPublic (and no fail2ban jail)",
    what: "host",
    expected: ["host.fail2ban", "host.ssh-exposure"],
    breakIt: () => loadFirewall(ruleset.replace(/^(\s*)iifname "lo" accept$/m, "$1iifname \"lo\" accept\n$1tcp dport 22 accept")),
    repair: () => loadFirewall(ruleset),
  },
  {
    name: "the firewall not loaded",
    what: "host",
    expected: ["host.firewall"],
    breakIt: () => execFileSync("ip", ["netns", "exec", NS.host, "nft", "delete", "table", "inet", "perimeter"]),
    repair: () => loadFirewall(ruleset),
  },
  {
    name: "Hermes' approvals off in its config.yaml",
    what: "host",
    expected: ["host.approvals"],
    ...editFile("var/lib/hermes/.hermes/config.yaml", (text) => text.replace(/^(\s*)mode: \w+$/m, '$1mode: "off"')),
  },
];

for (const variant of VARIANTS) {
  test(`broken: ${variant.name} → FAIL ${variant.expected.join(", ")} and nothing else`, { skip: SKIP }, async () => {
    variant.breakIt();
    try {
      const verification = await verify(variant.what);
      assert.deepEqual(failed(verification), [...variant.expected].sort(), explain(verification));
      assert.equal(verification.code, 1);
    } finally {
      variant.repair();
    }
  });
}
