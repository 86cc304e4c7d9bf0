// Shared by the verify tests of every target: runs `perimeter verify ... --format json` as the operator would (in a
// namespace of the test's when it names one) and reads which checks failed.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";

export interface Verification {
  code: number | null;
  report: { results: Array<{ id: string; status: string; evidence: string; fix?: string }>; vantage: string; seconds: number; notes: string[] };
  stderr: string;
}

/** Runs `command ...args` to its end; its stdout must be verify's JSON report. */
export async function runVerification(command: string, args: readonly string[], options: { cwd: string; env: Record<string, string> }): Promise<Verification> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  try {
    return { code, report: JSON.parse(stdout) as Verification["report"], stderr };
  } catch {
    throw new Error(`verify printed no JSON (exit ${code}): ${stdout.slice(0, 2000)} ${stderr.slice(-2000)}`);
  }
}

/** The ids of the checks that FAILed, sorted. */
export function failedChecks(verification: Verification): string[] {
  return verification.report.results.filter((result) => result.status === "FAIL").map((result) => result.id).sort();
}

/** Every check that did not PASS, with its evidence: the message of a failed assertion. */
export function explainChecks(verification: Verification): string {
  return verification.report.results.filter((result) => result.status !== "PASS").map((result) => `${result.status} ${result.id}: ${result.evidence}`).join("\n");
}

/** A TCP listener answering its name, for the stand-in origins and LAN hosts the verify tests put in namespaces. */
export const NAMED_LISTENER = `
const net = require("node:net");
const [address, port, name] = process.argv.slice(1);
// A client that resets the connection must not crash the listener (later probes would then see it refused).
net.createServer((socket) => { socket.on("error", () => {}); socket.end(name + "\\n"); }).listen(Number(port), address, () => console.log(name + " listening"));
`;

/** Starts `command` inside network namespace `namespace` and resolves once its output matches `pattern` (60 s bound). */
export function startInNamespace(namespace: string, command: readonly string[], pattern: RegExp, home: string, children: ChildProcess[]): Promise<ChildProcess> {
  const child = spawn("ip", ["netns", "exec", namespace, ...command], { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home } });
  children.push(child);
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`${command.join(" ")}: no ${pattern}: ${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (pattern.test(output)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
  });
}
