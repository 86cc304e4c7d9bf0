// Requirements (issue 18): `perimeter verify all -t local` against a real `perimeter up` passes on a correct
// deployment and fails, check by check, on deliberately broken variants — each variant makes exactly the expected
// checks FAIL and nothing else. The real CLI throughout; the agent is a stand-in process (Hermes cannot be installed
// here) with the agent's uid and environment, and the probes run in its namespaces.
//
// Four network namespaces of our own; every address exists only inside them, and "blocked" is proven against
// listeners we put there:
//   agent (10.240.N.2) --veth-- (10.240.N.1) host: perimeter up, verify --veth-- internet (10.241.N.2): allowed origin
//                                                                          \--veth-- lan (10.242.N.2): a LAN service
// The host forwards packets (as a Docker host does); what keeps the agent in is that its namespace has no route but
// the link to the perimeter's addresses, and the host's nftables table lets it reach only the perimeter's ports.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { localConfig, readSecrets } from "../up/test-support.ts";
import type { LocalConfig } from "../up/test-support.ts";
import { explainChecks as explain, failedChecks as failed, runVerification } from "./testing.ts";
import type { Verification } from "./testing.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "perimeter.js");
const isRoot = process.getuid?.() === 0;
const SKIP = isRoot ? false : "needs root: creates network namespaces, runs the agent stand-in as uid 10000";
const suffix = Math.random().toString(16).slice(2, 7);
const N = 1 + Math.floor(Math.random() * 250);
const NS = { host: `vh-${suffix}`, agent: `va-${suffix}`, internet: `vi-${suffix}`, lan: `vl-${suffix}` };
const HOST_IP = `10.240.${N}.1`;
const AGENT_IP = `10.240.${N}.2`;
const INTERNET_IP = `10.241.${N}.2`;
const LAN_IP = `10.242.${N}.2`;
const AGENT_UID = 10000;
const PROVIDER_KEY = "provider-key-verify-test-0123456789abcdef";
const ORIGIN_PORT = 8443;
const LAN_PORT = 30002;

const children: ChildProcess[] = [];
let directory = "";
let config: LocalConfig;
let dataDirectory = "";
let dockerSocket = "";
let up: ChildProcess | undefined;
let socketServer: Server | undefined;

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

function inHost(command: string[], input?: string): string {
  return execFileSync("ip", ["netns", "exec", NS.host, ...command], { encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], ...(input === undefined ? {} : { input }) });
}

function startIn(namespace: string, command: string[], env: Record<string, string> = { PATH: "/usr/bin:/bin" }): ChildProcess {
  const child = spawn("ip", ["netns", "exec", namespace, ...command], { stdio: ["ignore", "pipe", "pipe"], env });
  children.push(child);
  return child;
}

function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${output.slice(-2000)}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (pattern.test(output)) {
        clearTimeout(timer);
        resolve(output);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before ${pattern}: ${output.slice(-3000)}`));
    });
  });
}

function cleanup(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const name of Object.values(NS)) spawnSync("ip", ["netns", "del", name], { stdio: "ignore" });
  if (directory !== "") rmSync(directory, { recursive: true, force: true });
}

const LISTENER = `
const net = require("node:net");
const [address, port, name] = process.argv.slice(1);
// A client that resets the connection must not crash the listener (later probes would then see it refused).
net.createServer((socket) => { socket.on("error", () => {}); socket.end(name + "\\n"); }).listen(Number(port), address, () => console.log(name + " listening"));
`;

const HTTP_ORIGIN = `
const http = require("node:http");
const [address, port] = process.argv.slice(1);
http.createServer((request, response) => response.end("origin " + request.url)).listen(Number(port), address, () => console.log("origin listening"));
`;

// What a leftover forward proxy looks like from the agent's side: it says yes to every CONNECT.
const OPEN_PROXY = `
const net = require("node:net");
net.createServer((socket) => { socket.on("error", () => {}); socket.once("data", () => socket.write("HTTP/1.1 200 Connection established\\r\\n\\r\\n")); }).listen(3129, "127.0.0.1", () => console.log("open proxy listening"));
`;

/** The host's wall around the agent's link: only the perimeter's agent-facing ports, and nothing forwarded. */
function firewall(options: { input?: boolean; forward?: boolean } = {}): void {
  const lines = [`table inet agentwall {}`, `delete table inet agentwall`, `table inet agentwall {`];
  lines.push("  chain input { type filter hook input priority 0; policy accept;");
  if (options.input !== false) {
    lines.push(`    iifname "vh-a-${suffix}" ct state established,related accept`, `    iifname "vh-a-${suffix}" tcp dport { ${config.ports.egress}, ${config.ports.llm}, ${config.ports.mcp} } accept`, `    iifname "vh-a-${suffix}" drop`);
  }
  lines.push("  }", "  chain forward { type filter hook forward priority 0; policy accept;");
  if (options.forward !== false) lines.push(`    iifname "vh-a-${suffix}" drop`);
  lines.push("  }", "}");
  inHost(["nft", "-f", "-"], `${lines.join("\n")}\n`);
}

let agent: ChildProcess | undefined;

async function startAgent(overrides: Record<string, string> = {}, remove: string[] = []): Promise<number> {
  if (agent !== undefined && agent.exitCode === null) {
    agent.kill("SIGKILL");
    await new Promise((resolve) => agent?.once("exit", resolve));
  }
  const secrets = readSecrets(join(directory, "state", "secrets.env"));
  const environment: Record<string, string> = {
    PATH: "/usr/bin:/bin",
    HOME: "/tmp",
    HTTPS_PROXY: `http://${HOST_IP}:${config.ports.egress}`,
    HTTP_PROXY: `http://${HOST_IP}:${config.ports.egress}`,
    NO_PROXY: `localhost,127.0.0.1,${HOST_IP}`,
    OPENAI_BASE_URL: `http://${HOST_IP}:${config.ports.llm}/v1`,
    OPENAI_API_KEY: secrets.HERMES_LLM_KEY as string,
    PERIMETER_AGENT_TOKEN: secrets.PERIMETER_AGENT_TOKEN as string,
    ...overrides,
  };
  for (const name of remove) delete environment[name];
  const command = ["setpriv", `--reuid=${AGENT_UID}`, `--regid=${AGENT_UID}`, "--clear-groups", "--", "env", "-i", ...Object.entries(environment).map(([name, value]) => `${name}=${value}`), "/usr/bin/python3", "-c", "import time; print('agent up', flush=True); time.sleep(3600)"];
  agent = startIn(NS.agent, command);
  await waitForLine(agent, /agent up/, 10_000);
  return agent.pid as number;
}

function verify(pid: number, extra: string[] = []): Promise<Verification> {
  const args = [
    BIN, "verify", "all", "-t", "local", "-c", config.file, "--agent-pid", String(pid), "--data-dir", dataDirectory,
    "--lan", `${LAN_IP}:${LAN_PORT}`, "--direct", `${INTERNET_IP}:${ORIGIN_PORT}`, "--docker-socket", dockerSocket, "--python", "/usr/bin/python3", "--format", "json", ...extra,
  ];
  return runVerification("ip", ["netns", "exec", NS.host, process.execPath, ...args], { cwd: directory, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory, PROVIDER_KEY } });
}

before(async () => {
  if (!isRoot) return;
  process.on("exit", cleanup);
  directory = mkdtempSync(join(tmpdir(), "perimeter-verify-"));
  chmodSync(directory, 0o755);
  for (const name of Object.values(NS)) {
    ip("netns", "add", name);
    ip("-n", name, "link", "set", "lo", "up");
  }
  const link = (peer: string, hostSide: string, peerSide: string, hostAddress: string, peerAddress: string) => {
    ip("link", "add", hostSide, "netns", NS.host, "type", "veth", "peer", "name", peerSide, "netns", peer);
    ip("-n", NS.host, "addr", "add", `${hostAddress}/24`, "dev", hostSide);
    ip("-n", peer, "addr", "add", `${peerAddress}/24`, "dev", peerSide);
    ip("-n", NS.host, "link", "set", hostSide, "up");
    ip("-n", peer, "link", "set", peerSide, "up");
  };
  link(NS.agent, `vh-a-${suffix}`, `va-${suffix}`, HOST_IP, AGENT_IP);
  link(NS.internet, `vh-i-${suffix}`, `vi-${suffix}`, `10.241.${N}.1`, INTERNET_IP);
  link(NS.lan, `vh-l-${suffix}`, `vl-${suffix}`, `10.242.${N}.1`, LAN_IP);
  ip("-n", NS.internet, "route", "add", "default", "via", `10.241.${N}.1`);
  ip("-n", NS.lan, "route", "add", "default", "via", `10.242.${N}.1`);
  inHost(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);

  const node = process.execPath;
  await waitForLine(startIn(NS.internet, [node, "-e", HTTP_ORIGIN, INTERNET_IP, String(ORIGIN_PORT)]), /origin listening/);
  await waitForLine(startIn(NS.lan, [node, "-e", LISTENER, LAN_IP, String(LAN_PORT), "lan-service"]), /lan-service listening/);

  config = await localConfig(directory, (document) => {
    for (const key of [["egress", "listen"], ["llm", "listen"], ["mcp", "listen"]] as const) {
      const current = String(document.getIn([...key]));
      document.setIn([...key], current.replace("127.0.0.1", HOST_IP));
    }
    document.setIn(["llm", "providers", "ollama", "apiKeySecret"], "PROVIDER_KEY");
    document.setIn(["egress", "allow"], document.createNode([{ host: "allowed.test", ports: [ORIGIN_PORT], allowCidr: [`${INTERNET_IP}/32`] }]));
  });
  up = startIn(NS.host, [node, BIN, "up", "-c", config.file, "--resolve", `allowed.test=${INTERNET_IP}`], { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory, PROVIDER_KEY });
  await waitForLine(up, /services ready in/, 120_000);
  firewall();

  // The agent's data directory as Hermes keeps it: 0700, .env 0600, approvals manual.
  dataDirectory = join(directory, "hermes-data");
  mkdirSync(dataDirectory, { mode: 0o700 });
  writeFileSync(join(dataDirectory, ".env"), "TELEGRAM_ALLOWED_USERS=987654321\n", { mode: 0o600 });
  writeFileSync(join(dataDirectory, "config.yaml"), "approvals:\n  mode: manual\n", { mode: 0o600 });
  for (const path of [dataDirectory, join(dataDirectory, ".env"), join(dataDirectory, "config.yaml")]) chownSync(path, AGENT_UID, AGENT_UID);
  // A Docker-like socket owned by root, 0660: the agent's uid cannot use it.
  dockerSocket = join(directory, "docker.sock");
  socketServer = createServer(() => undefined);
  await new Promise<void>((resolve) => socketServer?.listen(dockerSocket, resolve));
  chmodSync(dockerSocket, 0o660);
});

after(() => {
  socketServer?.close();
  if (up !== undefined && up.exitCode === null) up.kill("SIGTERM");
  cleanup();
});

test("a correct deployment passes every check, from the agent's own namespaces, within 15 s", { skip: SKIP }, async (context) => {
  const pid = await startAgent();
  const verification = await verify(pid);
  assert.deepEqual(failed(verification), [], explain(verification));
  assert.equal(verification.code, 0);
  const byId = new Map(verification.report.results.map((result) => [result.id, result]));
  for (const id of ["isolation.network-policy", "isolation.proxy-refuses", "isolation.proxy-allows", "isolation.direct", "isolation.decisive-probe", "isolation.lan", "isolation.agent-env", "isolation.docker-socket", "mcp.agent-token", "mcp.sandbox.tools", "mcp.sandbox.upstream", "host.data-permissions", "host.approvals", "host.allow-all-users", "host.audit-chain", "host.listeners"]) {
    assert.equal(byId.get(id)?.status, "PASS", `${id}: ${JSON.stringify(byId.get(id))}`);
  }
  assert.match(byId.get("isolation.proxy-refuses")?.evidence ?? "", /403, X-Perimeter-Denied: /);
  assert.match(byId.get("isolation.lan")?.evidence ?? "", new RegExp(`${LAN_IP.replace(/\./g, "\\.")}:${LAN_PORT} (timeout|unreachable|refused)`));
  assert.match(verification.report.vantage, new RegExp(`agent's process ${pid} as uid ${AGENT_UID}`));
  assert.ok(verification.report.seconds <= 15, `verify all took ${verification.report.seconds} s`);
  context.diagnostic(`verify all -t local: ${verification.report.seconds.toFixed(2)} s, ${verification.report.results.length} checks; ${byId.get("mcp.sandbox.call")?.status} mcp.sandbox.call: ${byId.get("mcp.sandbox.call")?.evidence}`);
  // No secret value in what verify printed.
  const secrets = Object.values(readSecrets(join(directory, "state", "secrets.env")));
  for (const value of [...secrets, PROVIDER_KEY]) assert.ok(!JSON.stringify(verification.report).includes(value), "no credential value in the report");
});

interface Variant {
  readonly name: string;
  readonly expected: readonly string[];
  readonly breakIt: () => Promise<number>;
  readonly repair: () => Promise<void> | void;
}

const VARIANTS: Variant[] = [
  {
    name: "a hole in the host's firewall: the agent reaches a host service that is not the perimeter",
    expected: ["isolation.decisive-probe"],
    breakIt: async () => (firewall({ input: false }), startAgent()),
    repair: () => firewall(),
  },
  {
    name: "a default route in the agent's namespace (the host still drops what it forwards)",
    expected: ["isolation.network-policy"],
    breakIt: async () => (ip("-n", NS.agent, "route", "add", "default", "via", HOST_IP), startAgent()),
    repair: () => ip("-n", NS.agent, "route", "del", "default"),
  },
  {
    name: "a route to the internet and a host that forwards it: the agent bypasses the proxy",
    expected: ["isolation.direct"],
    breakIt: async () => (ip("-n", NS.agent, "route", "add", `10.241.${N}.0/24`, "via", HOST_IP), firewall({ forward: false }), startAgent()),
    repair: () => (ip("-n", NS.agent, "route", "del", `10.241.${N}.0/24`), firewall()),
  },
  {
    name: "a route to the LAN: the homelab service answers the agent",
    expected: ["isolation.lan"],
    breakIt: async () => (ip("-n", NS.agent, "route", "add", `10.242.${N}.0/24`, "via", HOST_IP), firewall({ forward: false }), startAgent()),
    repair: () => (ip("-n", NS.agent, "route", "del", `10.242.${N}.0/24`), firewall()),
  },
  {
    name: "the agent's HTTPS_PROXY points at a proxy that allows everything",
    expected: ["isolation.proxy-refuses"],
    breakIt: async () => {
      await waitForLine(startIn(NS.agent, [process.execPath, "-e", OPEN_PROXY]), /open proxy listening/);
      return startAgent({ HTTPS_PROXY: "http://127.0.0.1:3129", HTTP_PROXY: "http://127.0.0.1:3129" });
    },
    repair: () => undefined,
  },
  {
    name: "a provider key leaked into the agent's environment under another name",
    expected: ["isolation.agent-env"],
    breakIt: () => startAgent({ MY_OPENAI_KEY: PROVIDER_KEY }),
    repair: () => undefined,
  },
  {
    name: "a world-readable .env in the agent's data directory",
    expected: ["host.data-permissions"],
    breakIt: async () => (chmodSync(join(dataDirectory, ".env"), 0o644), startAgent()),
    repair: () => chmodSync(join(dataDirectory, ".env"), 0o600),
  },
  {
    name: "Hermes' approvals turned off",
    expected: ["host.approvals"],
    breakIt: async () => (writeFileSync(join(dataDirectory, "config.yaml"), "approvals:\n  mode: \"off\"\n"), startAgent()),
    repair: () => writeFileSync(join(dataDirectory, "config.yaml"), "approvals:\n  mode: manual\n"),
  },
  {
    name: "GATEWAY_ALLOW_ALL_USERS in the agent's .env",
    expected: ["host.allow-all-users"],
    breakIt: async () => (writeFileSync(join(dataDirectory, ".env"), "GATEWAY_ALLOW_ALL_USERS=true\n"), startAgent()),
    repair: () => writeFileSync(join(dataDirectory, ".env"), "TELEGRAM_ALLOWED_USERS=987654321\n"),
  },
  {
    name: "the Docker socket usable by the agent's user",
    expected: ["isolation.docker-socket"],
    breakIt: async () => (chmodSync(dockerSocket, 0o666), startAgent()),
    repair: () => chmodSync(dockerSocket, 0o660),
  },
  {
    name: "a service listening on the host's network address that nobody declared",
    expected: ["host.listeners"],
    breakIt: async () => {
      const listener = startIn(NS.host, [process.execPath, "-e", LISTENER, "0.0.0.0", "9119", "dashboard"]);
      await waitForLine(listener, /dashboard listening/);
      variantCleanup = () => listener.kill("SIGKILL");
      return startAgent();
    },
    repair: () => variantCleanup(),
  },
  {
    name: "the agent holds a wrong token for mcp-guard",
    expected: ["mcp.agent-token"],
    breakIt: () => startAgent({ PERIMETER_AGENT_TOKEN: "not-the-agent-token-0123456789" }),
    repair: () => undefined,
  },
  {
    name: "an audit record rewritten after the fact",
    expected: ["host.audit-chain"],
    breakIt: async () => {
      const database = new DatabaseSync(join(directory, "state", "audit.db"));
      // What an attacker with write access does: drop the append-only triggers, then rewrite a record.
      database.exec("DROP TRIGGER IF EXISTS audit_log_records_no_update; DROP TRIGGER IF EXISTS audit_log_records_no_delete;");
      database.exec(`UPDATE audit_log_records SET data = replace(data, '"perimeter up"', '"someone else"') WHERE seq = 1`);
      database.close();
      return startAgent();
    },
    repair: () => undefined,
  },
];

let variantCleanup: () => void = () => undefined;

for (const variant of VARIANTS) {
  test(`broken: ${variant.name} → FAIL ${variant.expected.join(", ")} and nothing else`, { skip: SKIP }, async () => {
    const pid = await variant.breakIt();
    try {
      const verification = await verify(pid);
      assert.deepEqual(failed(verification), [...variant.expected].sort(), explain(verification));
      assert.equal(verification.code, 1);
      for (const id of variant.expected) {
        const result = verification.report.results.find((entry) => entry.id === id);
        assert.ok((result?.fix ?? "").length > 0, `${id} says how to fix it`);
      }
    } finally {
      await variant.repair();
    }
  });
}

test("usage errors exit 2 and say how to fix them", { skip: SKIP }, async () => {
  const run = (args: string[]) => spawnSync(process.execPath, [BIN, "verify", ...args], { encoding: "utf8", cwd: directory });
  const missingPid = run(["isolation", "-t", "local", "-c", config.file]);
  assert.equal(missingPid.status, 2);
  assert.match(missingPid.stderr, /--agent-pid/);
  const badTarget = run(["all", "-t", "openstack", "-c", config.file]);
  assert.equal(badTarget.status, 2);
  assert.match(badTarget.stderr, /-t kubernetes\|compose\|vps\|local/);
  const badLan = run(["host", "-t", "local", "-c", config.file, "--lan", "nowhere"]);
  assert.equal(badLan.status, 2);
  assert.match(badLan.stderr, /HOST:PORT/);
  const gone = run(["isolation", "-t", "local", "-c", config.file, "--agent-pid", "999999999"]);
  assert.equal(gone.status, 2);
  assert.match(gone.stderr, /no process 999999999/);
  const nothing = run(["-t", "local", "-c", config.file]);
  assert.equal(nothing.status, 2);
  assert.match(nothing.stderr, /isolation, mcp, host or all/);
});
