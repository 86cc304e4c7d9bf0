// The `run` tool, stage by stage, for one call (RunCall): check the call and the caller's quota (refusals are
// recorded) → build the task from the call and the named workspace → record the start (if that fails the run is
// refused: nothing runs unrecorded) → wait for a slot and run → update the named workspace → record the result (if
// that fails the result is withheld) → answer. A call on a named workspace holds it exclusively throughout.
import type { CallToolResult } from "@modelcontextprotocol/server";
import type { AuditRecord } from "../audit-log/index.ts";
import { decodeUtf8, redactArgument, resultSummary, toolError } from "./server-output.ts";
import type { ReturnedFileAnswer } from "./server-output.ts";
import { recordSandboxEvent, refuseCall } from "./server-state.ts";
import type { SandboxServerState } from "./server-state.ts";
import type { RunInput } from "./server-tools.ts";
import { SandboxTaskError, SandboxUnavailableError, workspacePathProblem } from "./task.ts";
import type { ReturnedFile, SandboxHostRule, SandboxResult, SandboxTask } from "./task.ts";
import type { WorkspaceFile } from "./workspaces.ts";
import { workspaceNameProblem } from "./workspaces.ts";

/** One call of the run tool. */
interface RunCall {
  readonly caller: string;
  readonly args: RunInput;
  readonly signal: AbortSignal;
  /** The command line as the audit log shows it (credentials replaced). */
  readonly auditCommand: readonly string[];
  /** The call's timeout, capped at the ceiling; undefined: the backend's default. */
  readonly timeoutMs: number | undefined;
  readonly files: readonly { path: string; content: Buffer; mode: number | undefined }[];
}

/** Why the call is refused before anything is recorded as started, or undefined. */
function callProblem(state: SandboxServerState, args: RunInput): string | undefined {
  if ((args.command === undefined) === (args.script === undefined)) return "give exactly one of command (program and arguments) or script";
  if (args.workspace !== undefined) {
    const problem = workspaceNameProblem(args.workspace);
    if (problem !== undefined) return problem;
  }
  for (const path of args.collect ?? []) {
    const problem = workspacePathProblem(path);
    if (problem !== undefined) return problem;
  }
  if (args.network === "proxy" && state.options.networkAllow === undefined) return 'network "proxy" is not offered by this runner (set sandbox.network.allow in perimeter.yaml); use network "none"';
  return undefined;
}

export function decodeFile(file: { content: string; encoding?: "utf8" | "base64" | undefined }): Buffer {
  return file.encoding === "base64" ? Buffer.from(file.content, "base64") : Buffer.from(file.content, "utf8");
}

export async function runTool(state: SandboxServerState, args: RunInput, caller: string, signal: AbortSignal): Promise<CallToolResult> {
  const command = args.command ?? (args.script !== undefined ? ["/bin/sh", "-c", args.script] : []);
  const auditCommand = command.map(redactArgument);
  const problem = callProblem(state, args);
  if (problem !== undefined) return refuseCall(state, caller, "sandbox-run", problem);
  const quota = state.quota.problem(caller);
  if (quota !== undefined) return refuseCall(state, caller, "sandbox-run", quota, { command: auditCommand });
  const call: RunCall = {
    caller,
    args,
    signal,
    auditCommand,
    timeoutMs: args.timeoutSeconds === undefined ? undefined : Math.min(args.timeoutSeconds * 1000, state.options.ceiling.timeoutMs),
    files: (args.files ?? []).map((file) => ({ path: file.path, content: decodeFile(file), mode: file.mode })),
  };
  return args.workspace === undefined ? runCall(state, call) : state.store.exclusive(caller, args.workspace, () => runCall(state, call));
}

/** The task: the named workspace's files (those the call sends replace them), the call's own, its settings. */
function taskOf(state: SandboxServerState, call: RunCall): SandboxTask {
  const { args, caller } = call;
  const workspaceFiles = args.workspace === undefined ? new Map<string, WorkspaceFile>() : state.store.snapshot(caller, args.workspace);
  for (const file of call.files) workspaceFiles.delete(file.path);
  return {
    ...(args.command !== undefined ? { argv: args.command } : { script: args.script as string }),
    ...(args.stdin !== undefined ? { stdin: args.stdin } : {}),
    files: [...[...workspaceFiles.entries()].map(([path, file]) => ({ path, content: file.content, mode: file.mode })), ...call.files],
    ...(args.env !== undefined ? { env: args.env } : {}),
    ...(call.timeoutMs !== undefined ? { limits: { timeoutMs: call.timeoutMs } } : {}),
    network: args.network === "proxy" ? { mode: "proxy", allow: state.options.networkAllow as readonly SandboxHostRule[] } : { mode: "none" },
    collect: args.workspace === undefined ? (args.collect ?? []) : ["."],
    caller,
  };
}

async function runCall(state: SandboxServerState, call: RunCall): Promise<CallToolResult> {
  const task = taskOf(state, call);
  const { args, caller } = call;
  // Nothing runs unrecorded: if the start cannot be written, the call is refused.
  let started: AuditRecord | undefined;
  try {
    started = await recordSandboxEvent(state, { type: "sandbox-run", phase: "started", caller, command: call.auditCommand, workspace: args.workspace ?? null, network: task.network?.mode ?? "none", timeoutMs: call.timeoutMs ?? null, files: task.files?.length ?? 0, stdinBytes: args.stdin === undefined ? 0 : Buffer.byteLength(args.stdin), envNames: Object.keys(args.env ?? {}) });
  } catch (error) {
    state.metrics.runsTotal.inc({ outcome: "refused" });
    state.logger.error({ event: "audit-failed", error: (error as Error).message }, "audit log unavailable: refusing a sandbox run");
    return toolError("the audit log is unavailable, so the sandbox refuses to run anything (operator: check the audit database)");
  }
  const ran = await runInSlot(state, call, task, started?.seq ?? null);
  if ("failure" in ran) return ran.failure;
  const result = ran.result;
  state.metrics.runsTotal.inc({ outcome: result.reason });
  state.metrics.runDuration.observe(result.durationMs / 1000);
  const { returned, workspaceNote } = settleWorkspace(state, call, result);
  const files: ReturnedFileAnswer[] = returned.map((file) => {
    const decoded = decodeUtf8(file.content);
    return { path: file.path, content: decoded.text, encoding: decoded.encoding, mode: file.mode };
  });
  try {
    await recordFinish(state, call, result, started?.seq ?? null, files.length);
  } catch (error) {
    state.logger.error({ event: "audit-failed", error: (error as Error).message }, "audit log unavailable: withholding a sandbox result");
    return toolError("the run finished but the audit log is unavailable, so its result is withheld (operator: check the audit database)");
  }
  const summary = resultSummary(result, files);
  if (workspaceNote !== undefined) summary.text += `\n--- ${workspaceNote}`;
  return { content: [{ type: "text", text: summary.text }], structuredContent: { ...summary.structured, ...(workspaceNote !== undefined ? { workspaceNote } : {}) }, isError: false };
}

/** Waits for a slot and runs the task; a failure is recorded (settling the start) and becomes the call's error. */
async function runInSlot(state: SandboxServerState, call: RunCall, task: SandboxTask, decisionSeq: number | null): Promise<{ result: SandboxResult } | { failure: CallToolResult }> {
  const { caller } = call;
  state.quota.started(caller);
  try {
    const release = await state.slots.acquire(call.signal);
    try {
      return { result: await state.options.backend.run(task, { signal: call.signal }) };
    } finally {
      release();
    }
  } catch (error) {
    const outcome = error instanceof SandboxTaskError ? "refused" : "error";
    state.metrics.runsTotal.inc({ outcome });
    const message = error instanceof SandboxTaskError || error instanceof SandboxUnavailableError ? error.message : "internal error running the sandbox";
    if (!(error instanceof SandboxTaskError)) state.logger.error({ event: "sandbox-run-failed", caller, error: (error as Error).message }, "sandbox run failed");
    // A failure to record it is logged whole and turns /healthz unhealthy; the call fails either way.
    await state.recorder.refusal({ type: "sandbox-run", phase: "failed", decisionSeq, caller, command: call.auditCommand, reason: message });
    return { failure: toolError(message) };
  } finally {
    state.quota.ended(caller);
  }
}

/** A named workspace takes the files of a run that ended on its own; the files returned are those the call asked for. */
function settleWorkspace(state: SandboxServerState, call: RunCall, result: SandboxResult): { returned: readonly ReturnedFile[]; workspaceNote: string | undefined } {
  const { args, caller } = call;
  if (args.workspace === undefined) return { returned: result.files, workspaceNote: undefined };
  let workspaceNote: string | undefined;
  if (result.limitsHit.includes("returned-files")) {
    // Files that did not come back are not gone from the workspace: keep it as it was rather than lose them.
    workspaceNote = `workspace "${args.workspace}" was not updated: its files came to more than the runner returns from a task`;
  } else if (result.reason === "exit" || result.reason === "signal") {
    const next = new Map(result.files.map((file) => [file.path, { content: file.content, mode: file.mode }]));
    const change = state.store.replace(caller, args.workspace, next);
    if (!change.ok) workspaceNote = `workspace "${args.workspace}" was not updated: ${change.reason}`;
  } else {
    workspaceNote = `workspace "${args.workspace}" was not updated: the run ended by ${result.reason}`;
  }
  const wanted = args.collect ?? [];
  const returned = result.files.filter((file) => wanted.some((path) => path === "." || file.path === path || file.path.startsWith(`${path}/`)));
  return { returned, workspaceNote };
}

async function recordFinish(state: SandboxServerState, call: RunCall, result: SandboxResult, decisionSeq: number | null, filesReturned: number): Promise<void> {
  await recordSandboxEvent(state, {
    type: "sandbox-run",
    phase: "finished",
    decisionSeq,
    caller: call.caller,
    command: call.auditCommand,
    workspace: call.args.workspace ?? null,
    exitCode: result.exitCode,
    signal: result.signal,
    reason: result.reason,
    durationMs: Math.round(result.durationMs),
    stdoutBytes: result.stdout.bytes,
    stderrBytes: result.stderr.bytes,
    truncated: result.stdout.truncated || result.stderr.truncated,
    filesReturned,
    limits: { ...result.limits.limits, cgroup: result.limits.cgroup, network: result.limits.network },
    limitsHit: result.limitsHit,
  });
}
