// Shared by the verify tests of every target: runs `perimeter verify ... --format json` as the operator would (in a
// namespace of the test's when it names one) and reads which checks failed.
import { spawn } from "node:child_process";

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
