// The perimeter a real agent CLI runs behind in test/agents/*.test.ts: egress-proxy, sandbox (bubblewrap), mcp-guard
// and llm-proxy as real `perimeter serve` processes on loopback with one perimeter.yaml and one audit log; a loopback
// TLS origin reached by name through the egress proxy; the scripted model stand-in behind llm-proxy; the agent's own
// configuration from `perimeter agent-config` (exactly what an operator gets); the operator's `perimeter approvals`;
// and the agent run under `strace -f` so every connect() it makes is seen.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ROOT, freePort, makeCertificate, perimeter, serve, startTlsOrigin } from "../fixtures/e2e-support.ts";
import type { CommandResult, Service, TlsOrigin } from "../fixtures/e2e-support.ts";
import { createScriptedModel } from "./stand-in-model.ts";
import type { ScriptStep, ScriptedModel } from "./stand-in-model.ts";

export const EVERYTHING_ENTRY = join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
export const POISONED_ENTRY = join(import.meta.dirname, "fixtures", "poisoned-server.ts");
export const ORIGIN_HOST = "127.0.0.2";
export const ALLOWED_NAME = "docs.agents.test";
export const BLOCKED_NAME = "paste.agents.test";
/** How long a held call waits for a human before it is denied as expired. */
export const HOLD_SECONDS = 14;

const secret = (prefix: string) => `${prefix}${randomBytes(24).toString("hex")}`;

export interface Secrets {
  readonly PERIMETER_AGENT_TOKEN: string;
  readonly PERIMETER_ADMIN_TOKEN: string;
  readonly PERIMETER_SANDBOX_TOKEN: string;
  readonly EVERYTHING_KEY: string;
  readonly PROVIDER_KEY: string;
  readonly HERMES_LLM_KEY: string;
}

export const BASE_ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", USER: "operator" };

export interface Perimeter {
  readonly directory: string;
  readonly configFile: string;
  readonly auditPath: string;
  readonly secrets: Secrets;
  readonly model: ScriptedModel;
  readonly origin: TlsOrigin;
  readonly certFile: string;
  /** The ports the agent may reach: llm-proxy, mcp-guard, egress-proxy. */
  readonly agentPorts: { llm: number; mcp: number; egress: number };
  readonly services: readonly Service[];
  /** Runs the perimeter CLI as the operator (admin token in its environment). */
  operator(args: string[]): Promise<CommandResult>;
  stop(): Promise<void>;
}

export async function startPerimeter(script: readonly ScriptStep[], options: { readonly name: string }): Promise<Perimeter> {
  const directory = mkdtempSync(join(tmpdir(), `perimeter-agent-${options.name}-`));
  const configFile = join(directory, "perimeter.yaml");
  const auditPath = join(directory, "state", "audit.db");
  const secrets: Secrets = {
    PERIMETER_AGENT_TOKEN: secret("agent-token-"),
    PERIMETER_ADMIN_TOKEN: secret("admin-token-"),
    PERIMETER_SANDBOX_TOKEN: secret("sandbox-token-"),
    EVERYTHING_KEY: secret("everything-upstream-key-"),
    PROVIDER_KEY: secret("sk-provider-agents-"),
    HERMES_LLM_KEY: `sk-perimeter-${randomBytes(32).toString("base64url").slice(0, 43)}`,
  };
  const certificate = makeCertificate(directory, [ALLOWED_NAME, BLOCKED_NAME]);
  const origin = await startTlsOrigin(ORIGIN_HOST, certificate.keyFile, certificate.certFile);
  const model = createScriptedModel({ expectedKey: secrets.PROVIDER_KEY, script });
  const { baseUrl } = await model.listen();
  const [egress, llm, mcp, sandboxPort, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(
    configFile,
    `version: 1
name: agents-${options.name}
egress:
  listen: "127.0.0.1:${egress}"
  allow:
    - { host: ${ALLOWED_NAME}, ports: [${origin.port}], allowCidr: [${ORIGIN_HOST}/32] }
sandbox:
  backend: bubblewrap
  listen: "127.0.0.1:${sandboxPort}"
  limits: { timeoutSeconds: 20, memory: 512Mi, pids: 128, disk: 64Mi }
mcp:
  listen: "127.0.0.1:${mcp}"
  admin: { listen: "127.0.0.1:${adminPort}" }
  agents: [{ name: hermes, tokenSecret: PERIMETER_AGENT_TOKEN }]
  pinning: { trustOnFirstUse: true }
  servers:
    sandbox:
      builtin: sandbox
      tools: { allow: [run] }
      arguments: { run: { "command[0]": { enum: [sh, echo] } } }
    everything:
      command: ["${process.execPath}", "${EVERYTHING_ENTRY}", "stdio"]
      env: { API_KEY: "\${EVERYTHING_KEY}" }
      tools: { allow: [echo, get-sum], approve: [get-sum] }
    notes:
      command: ["${process.execPath}", "${POISONED_ENTRY}"]
      tools: { allow: [lookup, summarize] }
approvals: { timeoutSeconds: ${HOLD_SECONDS} }
agent: { terminal: sandbox }
llm:
  listen: "127.0.0.1:${llm}"
  providers:
    standin: { baseUrl: "${baseUrl}", apiKeySecret: PROVIDER_KEY, models: [scripted], allowPrivateAddress: true }
  default: standin/scripted
  clients:
    - { name: hermes, keySecret: HERMES_LLM_KEY, models: [default] }
audit: { path: ${auditPath} }
`,
  );
  const services: Service[] = [];
  const start = async (name: string, env: Record<string, string>, args: string[] = []) => {
    services.push(await serve(name, ["-c", configFile, ...args], { ...BASE_ENV, HOME: directory, ...env }, directory));
  };
  const stop = async () => {
    await Promise.all(services.map((service) => service.stop(3000)));
    await model.close().catch(() => undefined);
    await origin.close().catch(() => undefined);
    rmSync(directory, { recursive: true, force: true });
  };
  try {
    await start("egress-proxy", {}, ["--resolve", `${ALLOWED_NAME}=${ORIGIN_HOST}`, "--resolve", `${BLOCKED_NAME}=${ORIGIN_HOST}`]);
    await start("sandbox", { PERIMETER_SANDBOX_TOKEN: secrets.PERIMETER_SANDBOX_TOKEN });
    await start("mcp-guard", {
      PERIMETER_AGENT_TOKEN: secrets.PERIMETER_AGENT_TOKEN,
      PERIMETER_ADMIN_TOKEN: secrets.PERIMETER_ADMIN_TOKEN,
      PERIMETER_SANDBOX_TOKEN: secrets.PERIMETER_SANDBOX_TOKEN,
      EVERYTHING_KEY: secrets.EVERYTHING_KEY,
    });
    await start("llm-proxy", { PROVIDER_KEY: secrets.PROVIDER_KEY, HERMES_LLM_KEY: secrets.HERMES_LLM_KEY });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    directory,
    configFile,
    auditPath,
    secrets,
    model,
    origin,
    certFile: certificate.certFile,
    agentPorts: { llm, mcp, egress },
    services,
    operator: (args) => perimeter([...args, "-c", configFile], { ...BASE_ENV, HOME: directory, PERIMETER_ADMIN_TOKEN: secrets.PERIMETER_ADMIN_TOKEN }),
    stop,
  };
}

/**
 * The agent's configuration as an operator gets it: `perimeter agent-config --agent NAME -c perimeter.yaml -o FILE`
 * for each file, and `--env` for its environment, whose named secrets are filled from `secrets`. Returns the
 * environment; the files are written under `home`.
 */
export async function configureAgent(perimeterSetup: Perimeter, agent: string, home: string, files: ReadonlyArray<{ name?: string; path: string }>): Promise<Record<string, string>> {
  for (const file of files) {
    const target = join(home, file.path);
    mkdirSync(dirname(target), { recursive: true });
    const written = await perimeter(["agent-config", "--agent", agent, "-c", perimeterSetup.configFile, ...(file.name === undefined ? [] : ["--file", file.name]), "-o", target], { ...BASE_ENV, HOME: home });
    assert.equal(written.code, 0, `agent-config -o ${file.path}: ${written.stderr}`);
  }
  const printed = await perimeter(["agent-config", "--agent", agent, "-c", perimeterSetup.configFile, "--env"], { ...BASE_ENV, HOME: home });
  assert.equal(printed.code, 0, printed.stderr);
  const environment: Record<string, string> = {};
  for (const line of printed.stdout.split("\n")) {
    const value = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (value !== null) environment[value[1] as string] = value[2] as string;
    const named = /^# secret ([A-Za-z_][A-Za-z0-9_]*): the value of ([A-Za-z_][A-Za-z0-9_]*)$/.exec(line);
    if (named !== null) {
      const source = named[2] as keyof Secrets;
      assert.ok(source in perimeterSetup.secrets, `agent-config asks for a secret the perimeter does not hold: ${source}`);
      environment[named[1] as string] = perimeterSetup.secrets[source];
    }
  }
  return environment;
}

export interface ConnectCall {
  readonly family: string;
  readonly address: string;
  readonly port: number | undefined;
  readonly line: string;
}

export interface AgentRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly connects: readonly ConnectCall[];
  /** Every byte the agent's processes wrote or sent, as strace printed it (printable text verbatim). */
  readonly traffic: string;
  readonly milliseconds: number;
}

function parseConnect(line: string): ConnectCall | undefined {
  const call = /connect\(\d+, \{sa_family=(AF_[A-Z0-9]+)(.*?)\}, \d+\)/.exec(line);
  if (call === null) return undefined;
  const family = call[1] as string;
  const rest = call[2] ?? "";
  const port = /port=htons\((\d+)\)/.exec(rest)?.[1];
  const address = /inet_addr\("([^"]+)"\)/.exec(rest)?.[1] ?? /inet_pton\(AF_INET6, "([^"]+)"/.exec(rest)?.[1] ?? /sun_path=(@?"[^"]*")/.exec(rest)?.[1] ?? "";
  return { family, address, port: port === undefined ? undefined : Number(port), line };
}

/**
 * Runs the agent to its end (or `timeoutMs`, then SIGKILL) under `strace -f`: connect() of every thread and child,
 * and the bytes written or sent, so a test can say where it connected and what it sent.
 */
export function runAgent(command: string, args: readonly string[], env: Record<string, string>, cwd: string, timeoutMs: number): Promise<AgentRun> {
  const traceFile = join(cwd, "..", `strace-${Date.now()}.txt`);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn("strace", ["-f", "-qq", "-e", "signal=none", "-e", "trace=connect,sendto,sendmsg,sendmmsg,write,writev,pwrite64", "-s", "1048576", "-o", traceFile, command, ...args], {
      env,
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-200_000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const traffic = readFileSync(traceFile, "utf8");
      rmSync(traceFile, { force: true });
      const connects = traffic.split("\n").flatMap((line) => {
        const parsed = parseConnect(line);
        return parsed === undefined ? [] : [parsed];
      });
      resolve({ code, signal, stdout, stderr, connects, traffic, milliseconds: Date.now() - started });
    });
  });
}

/** Connects to anything but the perimeter's ports on 127.0.0.1 (unix sockets and AF_UNSPEC disconnects aside). */
export function foreignConnects(run: AgentRun, ports: readonly number[]): ConnectCall[] {
  return run.connects.filter((call) => {
    if (call.family === "AF_UNIX" || call.family === "AF_UNSPEC") return false;
    return !(call.family === "AF_INET" && call.address === "127.0.0.1" && call.port !== undefined && ports.includes(call.port));
  });
}

/** Every file under `directory` (the agent's home after the run: its config, sessions, logs). */
export function filesUnder(directory: string): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    for (const entry of readdirSync(path)) {
      const full = join(path, entry);
      const stats = statSync(full, { throwIfNoEntry: false });
      if (stats?.isDirectory() === true) walk(full);
      else if (stats?.isFile() === true) found.push(full);
    }
  };
  walk(directory);
  return found;
}

export interface AuditRecord {
  seq: number;
  component: string;
  type: string;
  data: Record<string, unknown>;
}

export async function auditRecords(perimeterSetup: Perimeter): Promise<AuditRecord[]> {
  const tail = await perimeter(["audit-log", "tail", "--json", "-n", "100000", "--db", perimeterSetup.auditPath], { ...BASE_ENV, HOME: perimeterSetup.directory });
  assert.equal(tail.code, 0, tail.stderr);
  return tail.stdout.trim().split("\n").map((line) => JSON.parse(line) as AuditRecord);
}

export interface PendingApproval {
  id: string;
  kind: string;
  server: string;
  tool: string;
  status: string;
}

export async function pendingApprovals(perimeterSetup: Perimeter): Promise<PendingApproval[]> {
  const listed = await perimeterSetup.operator(["approvals", "list", "--json"]);
  assert.equal(listed.code, 0, listed.stderr);
  return JSON.parse(listed.stdout) as PendingApproval[];
}

export interface OperatorAction {
  readonly at: number;
  readonly action: "approve" | "deny" | "wait";
  readonly id: string;
  readonly what: string;
}

/**
 * The human at `perimeter approvals` while the agent runs: approves the first held call, denies the second, lets
 * every later one expire; approves pending tool definitions (the quarantined one) right after the first approval,
 * to see whether the running agent's tool list follows. Returns its log and a stop function.
 */
export function startOperator(perimeterSetup: Perimeter): { readonly log: readonly OperatorAction[]; stop(): Promise<void> } {
  const started = Date.now();
  const log: OperatorAction[] = [];
  const seen = new Set<string>();
  let operating = true;
  const decide = async (id: string, action: "approve" | "deny", what: string) => {
    const done = await perimeterSetup.operator(["approvals", action, id, "--reason", `agents e2e ${action}`]);
    assert.equal(done.code, 0, done.stderr);
    log.push({ at: Date.now() - started, action, id, what });
  };
  const loop = (async () => {
    while (operating) {
      // A failed listing is kept in the log (shown when a test fails), then retried on the next round.
      const pendings = await pendingApprovals(perimeterSetup).catch((error: unknown) => {
        if (log.filter((entry) => entry.what.startsWith("approvals list failed")).length < 20) log.push({ at: Date.now() - started, action: "wait", id: "", what: `approvals list failed: ${String((error as Error).message).slice(0, 300)}` });
        return [];
      });
      for (const pending of pendings) {
        if (pending.kind !== "tool-call" || seen.has(pending.id)) continue;
        seen.add(pending.id);
        const what = `${pending.kind} ${pending.server}__${pending.tool}`;
        const calls = log.filter((entry) => entry.what.startsWith("tool-call")).length;
        if (calls === 0) {
          await decide(pending.id, "approve", what);
          for (const definition of (await pendingApprovals(perimeterSetup)).filter((entry) => entry.kind === "tool-definition")) {
            await decide(definition.id, "approve", `${definition.kind} ${definition.server}__${definition.tool}`);
          }
        } else if (calls === 1) {
          await decide(pending.id, "deny", what);
        } else {
          log.push({ at: Date.now() - started, action: "wait", id: pending.id, what });
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  return {
    log,
    stop: async () => {
      operating = false;
      await loop;
    },
  };
}
