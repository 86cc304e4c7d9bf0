// How the sandbox runner writes what it returns and records: tool results (text for the model, structuredContent
// for programs), output that is not UTF-8 as base64, and command lines for the audit log with credentials replaced
// by their kind. Pure functions, tested alone (server-output.test.ts).
import type { CallToolResult } from "@modelcontextprotocol/server";
import { secretShapeIn } from "../config/index.ts";
import type { SandboxResult } from "./task.ts";

export interface ReturnedFileAnswer {
  readonly path: string;
  readonly content: string;
  readonly encoding: "utf8" | "base64";
  readonly mode: number;
}

export function toolError(message: string): CallToolResult {
  return { content: [{ type: "text", text: message }], isError: true };
}

export function decodeUtf8(data: Buffer): { text: string; encoding: "utf8" } | { text: string; encoding: "base64" } {
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(data), encoding: "utf8" };
  } catch {
    return { text: data.toString("base64"), encoding: "base64" };
  }
}

/** Command lines go to the audit log; anything shaped like a credential is replaced by its kind. */
export function redactArgument(argument: string): string {
  const shape = secretShapeIn(argument);
  const clipped = argument.length > 512 ? `${argument.slice(0, 512)}...(${argument.length} chars)` : argument;
  return shape === undefined ? clipped : `[redacted ${shape}]`;
}

/** The run tool's answer: a summary for the model and every field for programs. */
export function resultSummary(result: SandboxResult, files: readonly ReturnedFileAnswer[]): { text: string; structured: Record<string, unknown> } {
  const stdout = decodeUtf8(result.stdout.data);
  const stderr = decodeUtf8(result.stderr.data);
  const structured = {
    exitCode: result.exitCode,
    signal: result.signal,
    reason: result.reason,
    stdout: stdout.text,
    stdoutEncoding: stdout.encoding,
    stdoutTruncated: result.stdout.truncated,
    stderr: stderr.text,
    stderrEncoding: stderr.encoding,
    stderrTruncated: result.stderr.truncated,
    durationMs: Math.round(result.durationMs),
    files,
    filesMissing: result.filesMissing,
    limitsHit: result.limitsHit,
    limits: { ...result.limits.limits, cgroup: result.limits.cgroup, network: result.limits.network, missing: result.limits.missing },
  };
  const lines = [
    `exit code: ${result.exitCode ?? "none"}${result.signal !== null ? ` (${result.signal})` : ""}; ended by: ${result.reason}; ${Math.round(result.durationMs)} ms`,
    `--- stdout${result.stdout.truncated ? ` (truncated; ${result.stdout.bytes} bytes written)` : ""}${stdout.encoding === "base64" ? " (base64)" : ""}`,
    stdout.text,
    `--- stderr${result.stderr.truncated ? ` (truncated; ${result.stderr.bytes} bytes written)` : ""}${stderr.encoding === "base64" ? " (base64)" : ""}`,
    stderr.text,
  ];
  if (files.length > 0) lines.push(`--- files returned: ${files.map((file) => file.path).join(", ")} (see structuredContent)`);
  if (result.filesMissing.length > 0) lines.push(`--- not returned: ${result.filesMissing.join(", ")}`);
  return { text: lines.join("\n"), structured };
}
