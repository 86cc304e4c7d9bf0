// What a finished bubblewrap task comes to: the exit status (bwrap's own exec failures turned into a shell's 126 and
// 127), why it ended, which limits it ran into, the files it returned and the limits that applied. Pure functions of
// the supervised process's outcome (bubblewrap-process.ts), testable without a sandbox.
import type { TaskCgroupStats } from "./cgroups.ts";
import { explainBwrapFailure } from "./bubblewrap-host.ts";
import type { TaskOutcome, TaskRun } from "./bubblewrap-process.ts";
import { readTar } from "./tar.ts";
import { SandboxUnavailableError, signalOfStatus } from "./task.ts";
import type { AppliedLimits, ReturnedFile, SandboxEndReason, SandboxResult } from "./task.ts";

/** The exit status JSON bwrap writes on --json-status-fd: the child's pid once it runs, its status at the end. */
export function parseJsonStatus(text: string): { childPid?: number; exitCode?: number } {
  const child = /"child-pid"\s*:\s*(\d+)/.exec(text);
  const exit = /"exit-code"\s*:\s*(\d+)/.exec(text);
  return { childPid: child === null ? undefined : Number(child[1]), exitCode: exit === null ? undefined : Number(exit[1]) };
}

/** bwrap's "execvp X: No such file or directory" becomes the status and message a shell gives: 127 not found, 126 not executable. */
export function shellExecFailure(exitCode: number | null, stderr: string): { exitCode: number; stderr: string } | undefined {
  const execFailure = /^bwrap: execvp (.*): (No such file or directory|Permission denied)\n?$/m.exec(stderr);
  if (execFailure === null || exitCode !== 1) return undefined;
  const denied = execFailure[2] === "Permission denied";
  return { exitCode: denied ? 126 : 127, stderr: stderr.replace(execFailure[0], `sandbox: ${execFailure[1]}: ${denied ? "permission denied" : "command not found"}\n`) };
}

/** Limits the task ran into, even when it survived them. */
export function limitsHitBy(signal: string | null, stats: TaskCgroupStats | undefined, outputTruncated: boolean): string[] {
  const limitsHit: string[] = [];
  if (stats !== undefined) {
    if (stats.oomKills > 0 || stats.memoryLimitHits > 0) limitsHit.push("memory");
    if (stats.pidsLimitHits > 0) limitsHit.push("pids");
  }
  if (outputTruncated) limitsHit.push("output");
  if (signal === "SIGXCPU") limitsHit.push("cpu");
  if (signal === "SIGXFSZ") limitsHit.push("file-size");
  return limitsHit;
}

/** Why the task ended: our own stop first, then what its status and the cgroup's counters say. */
export function endReason(stoppedFor: SandboxEndReason | undefined, signal: string | null, stats: TaskCgroupStats | undefined): SandboxEndReason {
  if (stoppedFor !== undefined) return stoppedFor;
  if (stats !== undefined && stats.oomKills > 0 && signal === "SIGKILL") return "memory";
  if (signal === "SIGXCPU") return "cpu-limit";
  if (signal === "SIGXFSZ") return "file-size-limit";
  if (signal !== null) return "signal";
  return "exit";
}

function returnedFiles(run: TaskRun, returned: TaskOutcome["returned"], maxFiles: number): { files: ReturnedFile[]; filesMissing: string[] } {
  const files: ReturnedFile[] = [];
  const filesMissing: string[] = [];
  const collect = run.task.collect;
  if (collect.length === 0) return { files, filesMissing };
  const archive = readTar(returned.data, { maxFiles, maxBytes: run.limits.diskBytes });
  files.push(...archive.files);
  filesMissing.push(...archive.skipped);
  if (returned.overflow) filesMissing.push(`(returned files passed ${returned.limit} bytes and were cut)`);
  for (const path of collect) {
    if (path === ".") continue;
    if (!files.some((file) => file.path === path || file.path.startsWith(`${path}/`))) filesMissing.push(path);
  }
  return { files, filesMissing };
}

function appliedLimits(run: TaskRun): AppliedLimits {
  return {
    backend: "bubblewrap",
    limits: run.limits,
    rlimits: run.rlimits,
    cgroup: run.cgroup === null ? null : { version: run.cgroup.version, controllers: run.cgroup.controllers },
    network: run.task.network.mode,
    seccomp: true,
    missing: [...run.missing, ...run.task.capped.map((entry) => `requested ${entry}`)],
  };
}

/**
 * The task's result. Throws SandboxUnavailableError when bwrap (or the launcher) failed before the program ran:
 * a host problem, not the task's result.
 */
export function taskResult(run: TaskRun, outcome: TaskOutcome, stats: TaskCgroupStats | undefined, maxFiles: number): SandboxResult {
  if (outcome.exit.spawnError !== undefined) throw new SandboxUnavailableError(`cannot start the sandbox: ${outcome.exit.spawnError.message}`);
  const status = parseJsonStatus(outcome.statusText);
  const stderrText = Buffer.concat(outcome.stderr.chunks).toString("utf8");
  if (status.childPid === undefined && outcome.reason === undefined) throw new SandboxUnavailableError(explainBwrapFailure(stderrText));

  let exitCode: number | null = status.exitCode ?? outcome.exit.code ?? (outcome.exit.signal !== null ? 128 + 9 : null);
  let stderrData = Buffer.concat(outcome.stderr.chunks);
  const execFailure = shellExecFailure(exitCode, stderrText);
  if (execFailure !== undefined) {
    exitCode = execFailure.exitCode;
    stderrData = Buffer.from(execFailure.stderr, "utf8");
  }
  const signal = signalOfStatus(exitCode);
  const { stdout, stderr } = outcome;
  const { files, filesMissing } = returnedFiles(run, outcome.returned, maxFiles);
  return {
    exitCode,
    signal,
    reason: endReason(outcome.reason, signal, stats),
    stdout: { data: Buffer.concat(stdout.chunks), bytes: stdout.bytes, truncated: stdout.truncated },
    stderr: { data: stderrData, bytes: stderr.bytes, truncated: stderr.truncated },
    durationMs: performance.now() - run.started,
    files,
    filesMissing,
    limits: appliedLimits(run),
    limitsHit: limitsHitBy(signal, stats, stdout.truncated || stderr.truncated),
    ...(stats?.peakMemoryBytes !== undefined ? { peakMemoryBytes: stats.peakMemoryBytes } : {}),
  };
}
