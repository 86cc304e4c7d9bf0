// The local backend: each task runs in a fresh bubblewrap sandbox.
//
//   node ──spawn(uid 65532)──> prlimit (rlimits) ──exec──> bwrap     (node moves it into the task's cgroups first)
//        bwrap: new user/pid/net/ipc/uts/cgroup namespaces, user namespaces disabled inside, all capabilities
//        dropped, a root made of read-only /usr and a handful of /etc files, size-limited tmpfs for /workspace,
//        /tmp and /dev/shm, a fresh /proc, a minimal /dev, our seccomp filter, --die-with-parent, --new-session.
//
// When the runner is root the sandbox also runs as an unprivileged host uid (65532): inside a user namespace the
// sandbox user maps to whoever started bwrap, and host root owning every sandbox process would turn any slip in
// the namespaces into root on the host (and exempts the task from RLIMIT_NPROC).
//
// bwrap's options reach it through `--args FD`, so environment values never show in the host's process list (the
// command itself does). The task's output comes back over pipes, capped; requested files come back as a tar stream on fd 3
// written by a small supervisor inside the sandbox after the program (and anything it left running) is gone.
//
// A task's way through the modules: checkTask (task.ts) → prepareTask: cgroup, rlimits, proxy client
// (bubblewrap-process.ts, planning with bubblewrap-plan.ts) → runTaskProcess: launch and supervise → releaseTask:
// cgroup and proxy token gone → taskResult (bubblewrap-result.ts). The host is prepared once (bubblewrap-host.ts).
import { closeSync, rmSync } from "node:fs";
import { prepareHost } from "./bubblewrap-host.ts";
import type { BubblewrapOptions, BubblewrapState } from "./bubblewrap-host.ts";
import { prepareTask, releaseTask, runTaskProcess } from "./bubblewrap-process.ts";
import { taskResult } from "./bubblewrap-result.ts";
import { checkTask, SandboxTaskError, SandboxUnavailableError } from "./task.ts";
import type { CheckedTask, RunOptions, SandboxBackend, SandboxResult, SandboxTask } from "./task.ts";

export { explainBwrapFailure } from "./bubblewrap-host.ts";
export type { BubblewrapOptions, EgressProxyAttachment } from "./bubblewrap-host.ts";
export { SANDBOX_UID } from "./bubblewrap-plan.ts";
export { descendantsOf } from "./bubblewrap-process.ts";

export interface BubblewrapDescription {
  readonly bwrap: string;
  readonly bwrapVersion: string;
  readonly prlimit: string;
  readonly hostUid: number;
  readonly cgroup: { readonly controllers: readonly string[]; readonly unavailable: Readonly<Record<string, string>> };
  readonly runtimeDirectory: string;
}

export interface BubblewrapBackend extends SandboxBackend {
  readonly name: "bubblewrap";
  describe(): BubblewrapDescription;
}

async function runChecked(state: BubblewrapState, task: CheckedTask, runOptions: RunOptions): Promise<SandboxResult> {
  const run = await prepareTask(state, task);
  const outcome = await runTaskProcess(state, run, runOptions);
  const stats = await releaseTask(state, run);
  return taskResult(run, outcome, stats, state.policy.maxFiles);
}

async function closeBackend(state: BubblewrapState): Promise<void> {
  state.closed = true;
  const pending = [...state.running];
  for (const entry of pending) entry.stop("aborted");
  await Promise.allSettled(pending.map((entry) => entry.done));
  rmSync(state.layout.runtimeDirectory, { recursive: true, force: true });
  closeSync(state.devNull);
}

function describeBackend(state: BubblewrapState): BubblewrapDescription {
  return {
    bwrap: state.bwrap,
    bwrapVersion: state.bwrapVersion,
    prlimit: state.prlimit,
    hostUid: state.hostUid,
    cgroup: { controllers: state.cgroupSupport.places.map((place) => place.controller), unavailable: state.cgroupSupport.unavailable },
    runtimeDirectory: state.layout.runtimeDirectory,
  };
}

export async function createBubblewrapBackend(options: BubblewrapOptions): Promise<BubblewrapBackend> {
  const state = prepareHost(options);
  const backend: BubblewrapBackend = {
    name: "bubblewrap",
    async run(task: SandboxTask, runOptions: RunOptions = {}) {
      if (state.closed) throw new SandboxUnavailableError("the sandbox backend is closed");
      const checked = checkTask(task, state.policy);
      if (!checked.ok) throw new SandboxTaskError(checked.reason);
      return runChecked(state, checked.task, runOptions);
    },
    close: () => closeBackend(state),
    describe: () => describeBackend(state),
  };

  // Probe once with every flag we use: a host without user namespaces (or with an old bwrap) fails here, at
  // startup, with instructions, instead of on the first task.
  const probe = await backend.run({ argv: ["/bin/true"], limits: { timeoutMs: Math.min(options.defaults.timeoutMs, 20000) } }).catch(async (error: unknown) => {
    await backend.close();
    throw error instanceof SandboxUnavailableError ? error : new SandboxUnavailableError(`the sandbox self-test failed: ${(error as Error).message}`);
  });
  if (probe.exitCode !== 0) {
    await backend.close();
    throw new SandboxUnavailableError(`the sandbox self-test (/bin/true) ended with ${probe.reason} ${probe.exitCode}: ${probe.stderr.data.toString("utf8").trim()}`);
  }
  return backend;
}
