// Test support for `perimeter up` (imported by its tests and benchmark only): the real CLI as a process, and a
// config derived from examples/local.yaml with free ports and a private directory.
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { freePort } from "../shared/index.ts";

export const ROOT = join(import.meta.dirname, "..", "..");
export const BIN = join(ROOT, "bin", "perimeter.js");
export const LOCAL_EXAMPLE = join(ROOT, "examples", "local.yaml");
/** NODE_OPTIONS for `perimeter up` that let a test stand for a bug in a service (see fault-preload.ts). */
export const FAULT_PRELOAD_OPTIONS = `--import ${join(import.meta.dirname, "fault-preload.ts")}`;

export function temporaryDirectory(prefix = "perimeter-up-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Runs the real CLI to its end. */
export function runPerimeter(args: string[], options: { env: Record<string, string>; cwd: string; timeoutMs?: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`perimeter ${args.join(" ")} did not end within ${options.timeoutMs ?? 60_000} ms; stderr: ${stderr.slice(-2000)}`));
    }, options.timeoutMs ?? 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface RunningUp {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `perimeter up` and resolves once it says every service is ready (rejects when it exits first). */
export async function startUp(args: string[], options: { env: Record<string, string>; cwd: string; timeoutMs?: number }): Promise<RunningUp> {
  const child = spawn(process.execPath, [BIN, "up", ...args], { cwd: options.cwd, env: options.env, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const running = { child, stdout: () => stdout, stderr: () => stderr, exited };
  // The block up prints once ready ends with its "Ctrl-C" line: wait for the whole of it (its first line alone raced
  // the table in a loaded CI run). Decided on each chunk of output as it arrives (the benchmark times this), bounded
  // by the deadline.
  const complete = () => /services ready in[\s\S]*Ctrl-C or SIGTERM stops every service\./.test(stdout);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`perimeter up was not ready in time\n${stderr.slice(-3000)}`));
    }, options.timeoutMs ?? 60_000);
    const onData = () => {
      if (!complete()) return;
      clearTimeout(timer);
      child.stdout.off("data", onData);
      resolve();
    };
    child.stdout.on("data", onData);
    void exited.then((exit) => {
      if (complete()) return;
      clearTimeout(timer);
      reject(new Error(`perimeter up exited before it was ready: ${exit.code}\n${stderr.slice(-3000)}`));
    });
  });
  return running;
}

export interface LocalConfig {
  readonly file: string;
  readonly directory: string;
  readonly ports: { mcp: number; admin: number; sandbox: number; llm: number; egress: number; dashboard: number };
}

/**
 * examples/local.yaml as shipped, with free ports, the state directory in `directory`, and `edit` applied to the
 * parsed document (e.g. the stand-in provider's URL): what the tests run is the bundled example.
 */
export async function localConfig(directory: string, edit: (document: ReturnType<typeof parseDocument>) => void = () => undefined): Promise<LocalConfig> {
  const document = parseDocument(readFileSync(LOCAL_EXAMPLE, "utf8"));
  const ports = { mcp: await freePort(), admin: await freePort(), sandbox: await freePort(), llm: await freePort(), egress: await freePort(), dashboard: await freePort() };
  document.setIn(["mcp", "listen"], `127.0.0.1:${ports.mcp}`);
  document.setIn(["mcp", "admin", "listen"], `127.0.0.1:${ports.admin}`);
  document.setIn(["sandbox", "listen"], `127.0.0.1:${ports.sandbox}`);
  document.setIn(["llm", "listen"], `127.0.0.1:${ports.llm}`);
  document.setIn(["egress", "listen"], `127.0.0.1:${ports.egress}`);
  document.setIn(["dashboard", "listen"], `127.0.0.1:${ports.dashboard}`);
  document.setIn(["audit", "path"], join(directory, "state", "audit.db"));
  document.setIn(["audit", "signingKeyFile"], join(directory, "state", "audit-signing.pem"));
  edit(document);
  const file = join(directory, "perimeter.yaml");
  writeFileSync(file, document.toString());
  return { file, directory, ports };
}

/** The NAME=value lines of the secrets file up wrote. */
export function readSecrets(path: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match !== null) values[match[1] as string] = match[2] as string;
  }
  return values;
}

/** Processes whose command line mentions `marker` (a test's private directory): what must be gone after a stop. */
export function processesMentioning(marker: string): Array<{ pid: number; command: string }> {
  const found: Array<{ pid: number; command: string }> = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const command = readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ");
      if (command.includes(marker)) found.push({ pid: Number(entry), command });
    } catch {
      // ended while we looked
    }
  }
  return found;
}
