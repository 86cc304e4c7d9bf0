// One bubblewrap task as a process: its per-task context (cgroup, rlimits, proxy client), the launch
//
//   node ──spawn(uid 65532)──> prlimit (rlimits) ──exec──> bwrap     (node moves it into the task's cgroups first)
//
// and its supervision: stdout and stderr capped, returned files read from fd 3 (bounded), the wall-clock timer and
// the caller's abort signal turned into SIGTERM to every task process and SIGKILL after the grace period. What the
// process did comes back as a TaskOutcome; bubblewrap-result.ts makes the SandboxResult of it.
import { spawn } from "node:child_process";
import type { ChildProcess, StdioOptions } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { createTaskCgroup } from "./cgroups.ts";
import type { TaskCgroup, TaskCgroupStats } from "./cgroups.ts";
import { bwrapArguments, FORWARDER_PORT, limitsNotApplied, prlimitArguments, rlimitsFor } from "./bubblewrap-plan.ts";
import type { Rlimits, TaskProxy } from "./bubblewrap-plan.ts";
import type { BubblewrapState, RunningTask } from "./bubblewrap-host.ts";
import { SandboxTaskError, SandboxUnavailableError } from "./task.ts";
import type { CheckedTask, RunOptions, SandboxEndReason, SandboxLimits } from "./task.ts";

/** One task's context, from its preparation to its cleanup. */
export interface TaskRun {
  readonly id: string;
  readonly task: CheckedTask;
  readonly limits: SandboxLimits;
  readonly started: number;
  readonly cgroup: TaskCgroup | null;
  readonly rlimits: Rlimits;
  /** Limits not applied as asked, for the result. */
  readonly missing: readonly string[];
  /** Proxy mode: the task's own proxy URL and socket, and the revocation of its token. */
  readonly proxy: (TaskProxy & { revoke(): void }) | undefined;
}

export interface OutputCollector {
  chunks: Buffer[];
  kept: number;
  bytes: number;
  truncated: boolean;
}

/** Everything the supervised process left for the result. */
export interface TaskOutcome {
  readonly exit: { code: number | null; signal: NodeJS.Signals | null; spawnError?: Error };
  /** Why we stopped it, when we did. */
  readonly reason: SandboxEndReason | undefined;
  /** What bwrap wrote on --json-status-fd. */
  readonly statusText: string;
  readonly stdout: OutputCollector;
  readonly stderr: OutputCollector;
  readonly returned: { readonly data: Buffer; readonly overflow: boolean; readonly limit: number };
}

// fd layout: 0-2 stdio, 3 returned files, 4 bwrap arguments, 5 seccomp program, 6 bwrap status, 7+ input files.
const RETURNED_FD = 3;
const ARGUMENTS_FD = 4;
const SECCOMP_FD = 5;
const STATUS_FD = 6;
const FIRST_FILE_FD = 7;

/** Creates the task's cgroup and, in proxy mode, its proxy client. Throws SandboxTaskError when the allowlist is refused. */
export async function prepareTask(state: BubblewrapState, task: CheckedTask): Promise<TaskRun> {
  const started = performance.now();
  const id = randomBytes(6).toString("hex");
  const limits = task.limits;
  // bwrap's monitor and the sandbox's init count towards the pids limit: two more than the task's own.
  const cgroup = createTaskCgroup(state.cgroupSupport, `task-${id}`, { memoryBytes: limits.memoryBytes, pids: limits.pids + 2, cpu: limits.cpu });
  const applied = cgroup?.controllers ?? [];
  const proxyMode = task.network.mode === "proxy";
  const rlimits = rlimitsFor(limits, applied.includes("memory"), proxyMode);
  const missing = limitsNotApplied(limits, rlimits, applied, state.cgroupSupport.unavailable, proxyMode);
  let proxy: TaskRun["proxy"];
  if (task.network.mode === "proxy") {
    // A client of its own per task: the token (the password of the proxy URL's Basic credentials) selects this
    // task's allowlist, and is revoked when the task ends.
    const attachment = state.egressProxy as NonNullable<BubblewrapState["egressProxy"]>;
    const name = `sandbox-${id}`;
    const token = randomBytes(24).toString("base64url");
    try {
      const client = attachment.addClient({ name, token, allow: task.network.allow });
      proxy = { url: `http://${name}:${token}@127.0.0.1:${FORWARDER_PORT}`, socketPath: attachment.socketPath, revoke: () => client.remove() };
    } catch (error) {
      await cgroup?.remove();
      throw new SandboxTaskError(`the network allowlist was refused: ${(error as Error).message}`);
    }
  }
  return { id, task, limits, started, cgroup, rlimits, missing, proxy };
}

/** Undoes prepareTask when the task never ran. */
async function abandon(run: TaskRun): Promise<void> {
  await run.cgroup?.remove();
  run.proxy?.revoke();
}

/** Removes the task's cgroup (reading its counters first) and revokes its proxy token. */
export async function releaseTask(state: BubblewrapState, run: TaskRun): Promise<TaskCgroupStats | undefined> {
  // The monitor is gone; anything still in the cgroup (there should be nothing: the pid namespace died with its
  // init) is killed and waited for before the cgroup is removed.
  const stats = run.cgroup?.stats();
  const removed = run.cgroup === null ? true : await run.cgroup.remove();
  if (!removed) state.logger.error({ event: "cgroup-leftover", task: run.id }, "processes of a finished sandbox task could not be removed from its cgroup");
  run.proxy?.revoke();
  return stats;
}

/** Spawns prlimit → bwrap with the task's descriptors; bwrap blocks on its options until feedLauncher writes them. */
function spawnLauncher(state: BubblewrapState, run: TaskRun, argv: readonly string[]): ChildProcess {
  const task = run.task;
  const seccompFd = openSync(join(state.layout.runtimeDirectory, run.proxy !== undefined ? "seccomp-proxy.bpf" : "seccomp-none.bpf"), "r");
  try {
    const command = [state.prlimit, ...prlimitArguments(run.rlimits), "--", state.bwrap, "--args", String(ARGUMENTS_FD), "--", ...argv];
    const stdio: StdioOptions = [task.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe", task.collect.length > 0 ? "pipe" : "ignore", "pipe", seccompFd, "pipe", ...task.files.map(() => "pipe" as const)];
    for (const fd of state.leakedDescriptors) {
      while (stdio.length < fd) stdio.push("ignore");
      if (stdio.length === fd) stdio.push(state.devNull);
    }
    return spawn(command[0] as string, command.slice(1), {
      stdio,
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
      cwd: "/",
      detached: true,
      ...(state.runnerIsRoot ? { uid: state.hostUid, gid: state.hostGid } : {}),
    });
  } finally {
    closeSync(seccompFd);
  }
}

function exitOf(child: ChildProcess): Promise<TaskOutcome["exit"]> {
  return new Promise((resolve) => {
    child.once("error", (error) => resolve({ code: null, signal: null, spawnError: error }));
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
}

/** Writes bwrap's options, the input files and stdin into their pipes. */
function feedLauncher(child: ChildProcess, task: CheckedTask, bwrapOptions: readonly string[]): void {
  const argumentData = Buffer.from(bwrapOptions.map((argument) => `${argument}\u0000`).join(""), "utf8");
  const pipes = child.stdio as unknown as (Readable | Writable | null)[];
  endStream(pipes[ARGUMENTS_FD] as Writable, argumentData);
  task.files.forEach((file, index) => endStream(pipes[FIRST_FILE_FD + index] as Writable, file.content));
  if (task.stdin !== undefined) endStream(child.stdin, task.stdin);
}

/**
 * Launches the task and supervises it to its end. Throws SandboxUnavailableError (after undoing prepareTask) when
 * it cannot start or cannot be put into its cgroup: a task never runs without the limits it was promised.
 */
export async function runTaskProcess(state: BubblewrapState, run: TaskRun, runOptions: RunOptions): Promise<TaskOutcome> {
  const applied = run.cgroup?.controllers ?? [];
  const fileFds = run.task.files.map((_file, index) => FIRST_FILE_FD + index);
  const plan = bwrapArguments(state.layout, run.task, { seccomp: SECCOMP_FD, status: STATUS_FD, files: fileFds }, run.proxy, !applied.includes("pids"));
  let child: ChildProcess;
  try {
    child = spawnLauncher(state, run, plan.argv);
  } catch (error) {
    await abandon(run);
    throw new SandboxUnavailableError(`cannot start the sandbox: ${(error as Error).message}`);
  }
  // Listened to at once: a failed spawn reports its error on the next tick.
  const exit = exitOf(child);
  // Into the task's cgroups before anything can fork: bwrap's first act is to read its options from fd 4, which
  // nothing has written yet, so at this moment the process is prlimit or a blocked bwrap with no children.
  if (run.cgroup !== null && child.pid !== undefined) {
    try {
      for (const file of run.cgroup.procsFiles) writeFileSync(file, String(child.pid));
    } catch (error) {
      killProcessGroup(child.pid);
      await exit;
      await abandon(run);
      throw new SandboxUnavailableError(`cannot move the task into its cgroup (${(error as Error).message}); the sandbox did not run`);
    }
  }
  feedLauncher(child, run.task, plan.options);
  return supervise(state, run, child, exit, runOptions);
}

/** Collects what the task writes, stops it on a limit, the timeout or the caller's abort, and waits for its end. */
async function supervise(state: BubblewrapState, run: TaskRun, child: ChildProcess, exit: Promise<TaskOutcome["exit"]>, runOptions: RunOptions): Promise<TaskOutcome> {
  const { limits, cgroup } = run;
  const pipes = child.stdio as unknown as (Readable | null)[];
  let reason: SandboxEndReason | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const status = collectText(pipes[STATUS_FD] ?? null, 4096);
  const sandboxPids = (): number[] => {
    const pid = child.pid;
    if (pid === undefined) return [];
    // Everything but bwrap's own monitor process: SIGTERM to the monitor would kill the sandbox without grace.
    const members = cgroup !== null ? cgroup.members() : descendantsOf(pid);
    return members.filter((member) => member !== pid);
  };
  const killEverything = () => {
    if (child.pid !== undefined) killProcessGroup(child.pid);
    cgroup?.killAll();
  };
  const stop = (why: SandboxEndReason, graceMs: number) => {
    if (reason !== undefined) return;
    reason = why;
    if (graceMs <= 0) {
      killEverything();
      return;
    }
    for (const pid of sandboxPids()) signalQuietly(pid, "SIGTERM");
    killTimer = setTimeout(killEverything, graceMs);
  };
  const stdout = collectOutput(child.stdout, limits.outputBytes, () => stop("output-limit", 0));
  const stderr = collectOutput(child.stderr, limits.outputBytes, () => stop("output-limit", 0));
  const returned = collectBounded(pipes[RETURNED_FD] ?? null, limits.diskBytes + Math.max(1024 * 1024, limits.diskBytes / 8));

  const timeout = setTimeout(() => stop("timeout", limits.graceMs), limits.timeoutMs);
  const onAbort = () => stop("aborted", limits.graceMs);
  runOptions.signal?.addEventListener("abort", onAbort, { once: true });
  if (runOptions.signal?.aborted === true) onAbort();
  const entry: RunningTask = { stop: (why) => stop(why, limits.graceMs), done: exit };
  state.running.add(entry);
  let ended: TaskOutcome["exit"];
  try {
    ended = await exit;
  } finally {
    state.running.delete(entry);
    clearTimeout(timeout);
    if (killTimer !== undefined) clearTimeout(killTimer);
    runOptions.signal?.removeEventListener("abort", onAbort);
  }
  return { exit: ended, reason, statusText: status.text(), stdout, stderr, returned: returned.result() };
}

export function collectOutput(stream: Readable | null, limit: number, onOverflow: () => void): OutputCollector {
  const collector: OutputCollector = { chunks: [], kept: 0, bytes: 0, truncated: false };
  stream?.on("data", (chunk: Buffer) => {
    collector.bytes += chunk.length;
    const room = limit - collector.kept;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      collector.chunks.push(part);
      collector.kept += part.length;
    }
    if (collector.bytes > limit && !collector.truncated) {
      collector.truncated = true;
      onOverflow();
    }
  });
  stream?.on("error", () => {
    // The pipe closes when the sandbox dies; the exit path reports what happened.
  });
  return collector;
}

/** The returned-files stream, kept whole up to `limit` bytes; past it the rest is dropped and the overflow noted. */
function collectBounded(stream: Readable | null, limit: number): { result(): TaskOutcome["returned"] } {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let overflow = false;
  stream?.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes <= limit) chunks.push(chunk);
    else overflow = true;
  });
  stream?.on("error", () => {});
  return { result: () => ({ data: Buffer.concat(chunks), overflow, limit }) };
}

/** Text from a stream, up to about `limit` characters (bwrap's status lines). */
function collectText(stream: Readable | null, limit: number): { text(): string } {
  let text = "";
  stream?.on("data", (chunk: Buffer) => {
    if (text.length < limit) text += chunk.toString("utf8");
  });
  stream?.on("error", () => {});
  return { text: () => text };
}

/** Pids of every descendant of `root`, from one scan of /proc (bounded by the host's process count). */
export function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    const afterName = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const parent = Number(afterName[1]);
    const list = children.get(parent) ?? [];
    list.push(Number(entry));
    children.set(parent, list);
  }
  const result: number[] = [];
  const queue = [root];
  while (queue.length > 0 && result.length < 100000) {
    const pid = queue.shift() as number;
    for (const child of children.get(pid) ?? []) {
      result.push(child);
      queue.push(child);
    }
  }
  return result;
}

/** SIGKILL to the launcher's process group (prlimit became bwrap's monitor, its leader; detached spawn made it one). */
function killProcessGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // The group is gone.
  }
}

function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already, or never ours.
  }
}

function endStream(stream: Writable | null | undefined, data?: Buffer): void {
  if (stream === null || stream === undefined) return;
  stream.on("error", () => {
    // The sandbox may exit without reading everything (a program that ignores stdin); that is not our failure.
  });
  if (data !== undefined && data.length > 0) stream.end(data);
  else stream.end();
}
