// What a finished Kubernetes task comes to: the decoded pod log (framing.ts) and the container's terminated state
// read as exit status, end reason, returned files and the limits that applied (the template's, for every task).
import type { DecodedLog } from "./framing.ts";
import { TASK_CONTAINER } from "./kubernetes-job.ts";
import type { KubernetesState } from "./kubernetes-cluster.ts";
import { readTar } from "./tar.ts";
import { signalOfStatus } from "./task.ts";
import type { AppliedLimits, CheckedTask, ReturnedFile, SandboxEndReason, SandboxResult } from "./task.ts";

export function appliedLimits(state: KubernetesState, task: CheckedTask): AppliedLimits {
  const { template, clusterNetwork } = state;
  const container = template.spec?.template?.spec?.containers.find((candidate) => candidate.name === TASK_CONTAINER);
  return {
    backend: "kubernetes" as const,
    limits: task.limits,
    cgroup: container?.resources?.limits !== undefined ? { version: 2 as const, controllers: Object.keys(container.resources.limits) } : null,
    network: clusterNetwork,
    seccomp: template.spec?.template?.spec?.securityContext?.seccompProfile?.type === "RuntimeDefault",
    missing: [
      "per-task memory/pids/cpu limits: the Job template's resources apply to every task",
      ...(clusterNetwork === "proxy" && task.network.mode === "none" ? ["network none: in this cluster every sandbox task can reach the sandbox egress proxy (sandbox.network.allow)"] : []),
      ...(task.network.mode === "proxy" ? ["a per-task allowlist: the cluster's sandbox egress proxy applies sandbox.network.allow to every task"] : []),
      ...task.capped.map((entry) => `requested ${entry}`),
    ],
  };
}

/** A task stopped before it finished (timeout, abort): whatever output came back, no files, no exit status. */
export function emptyResult(state: KubernetesState, task: CheckedTask, reason: SandboxEndReason, started: number, decoded?: DecodedLog): SandboxResult {
  return {
    exitCode: null,
    signal: null,
    reason,
    stdout: { data: decoded?.stdout ?? Buffer.alloc(0), bytes: decoded?.stdoutBytes ?? 0, truncated: false },
    stderr: { data: decoded?.stderr ?? Buffer.alloc(0), bytes: decoded?.stderrBytes ?? 0, truncated: false },
    durationMs: performance.now() - started,
    files: [],
    filesMissing: [...task.collect],
    limits: appliedLimits(state, task),
    limitsHit: [],
  };
}

function returnedFiles(state: KubernetesState, task: CheckedTask, decoded: DecodedLog): { files: ReturnedFile[]; filesMissing: string[] } {
  const files: ReturnedFile[] = [];
  const filesMissing: string[] = [];
  if (task.collect.length > 0) {
    const archive = readTar(decoded.files, { maxFiles: state.policy.maxFiles, maxBytes: task.limits.diskBytes });
    files.push(...archive.files);
    filesMissing.push(...archive.skipped);
    if (decoded.filesCut) {
      const why = `the returned files came to more than ${state.maxReturnBytes} bytes, the most a task returns here; collect fewer or smaller files`;
      filesMissing.push(archive.cutOff !== undefined ? `${archive.cutOff} (cut off: ${why})` : `(files after the first ${files.length} cut off: ${why})`);
    }
    for (const path of task.collect) {
      const listed = filesMissing.some((entry) => entry.startsWith(`${path} (`));
      if (path !== "." && !listed && !files.some((file) => file.path === path || file.path.startsWith(`${path}/`))) filesMissing.push(path);
    }
  }
  if (!decoded.complete) filesMissing.push("(the task's log ended before its results were complete)");
  return { files, filesMissing };
}

/** The result of a task whose Job completed or failed on its own. */
export function finishedResult(state: KubernetesState, task: CheckedTask, decoded: DecodedLog, terminated: { readonly exitCode?: number; readonly reason?: string } | undefined, started: number): SandboxResult {
  const exitCode = decoded.exitCode ?? terminated?.exitCode ?? null;
  const signal = signalOfStatus(exitCode);
  const oom = terminated?.reason === "OOMKilled";
  const { files, filesMissing } = returnedFiles(state, task, decoded);
  const stdoutTruncated = decoded.stdoutBytes > decoded.stdout.length;
  const stderrTruncated = decoded.stderrBytes > decoded.stderr.length;
  return {
    exitCode,
    signal,
    reason: oom ? "memory" : signal !== null ? (signal === "SIGXCPU" ? "cpu-limit" : "signal") : "exit",
    stdout: { data: decoded.stdout, bytes: decoded.stdoutBytes, truncated: stdoutTruncated },
    stderr: { data: decoded.stderr, bytes: decoded.stderrBytes, truncated: stderrTruncated },
    durationMs: performance.now() - started,
    files,
    filesMissing,
    limits: appliedLimits(state, task),
    limitsHit: [...(oom ? ["memory"] : []), ...(stdoutTruncated || stderrTruncated ? ["output"] : []), ...(decoded.filesCut ? ["returned-files"] : [])],
  };
}
