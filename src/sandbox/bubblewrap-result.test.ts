// The bubblewrap result alone: what a finished process's outcome (status, signal, cgroup counters) comes to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { endReason, limitsHitBy, parseJsonStatus, shellExecFailure, taskResult } from "./bubblewrap-result.ts";
import type { TaskOutcome, TaskRun } from "./bubblewrap-process.ts";
import { rlimitsFor } from "./bubblewrap-plan.ts";
import { SandboxUnavailableError } from "./task.ts";
import { TEST_LIMITS } from "./test-support.ts";

const NO_STATS = undefined;
const OOM = { oomKills: 1, memoryLimitHits: 3, peakMemoryBytes: 1024, pidsLimitHits: 0 };

function run(collect: string[] = []): TaskRun {
  const task = { argv: ["x"], stdin: undefined, files: [], env: {}, limits: TEST_LIMITS, network: { mode: "none" as const }, collect, caller: "default", capped: ["memory 2 GiB (ceiling 1 GiB)"] };
  return { id: "t", task, limits: TEST_LIMITS, started: performance.now(), cgroup: null, rlimits: rlimitsFor(TEST_LIMITS, false, false), missing: ["cgroup memory: none"], proxy: undefined };
}

function outcome(overrides: Partial<TaskOutcome> = {}, stderr = ""): TaskOutcome {
  const output = (text: string) => ({ chunks: [Buffer.from(text)], kept: text.length, bytes: text.length, truncated: false });
  return { exit: { code: 0, signal: null }, reason: undefined, statusText: '{ "child-pid": 12 }\n{ "exit-code": 0 }', stdout: output("out"), stderr: output(stderr), returned: { data: Buffer.alloc(0), overflow: false, limit: 1 }, ...overrides };
}

test("bwrap's status JSON gives the child's pid and exit code", () => {
  assert.deepEqual(parseJsonStatus('{ "child-pid": 42 }\n{ "exit-code": 3, "exec-pid": 42 }'), { childPid: 42, exitCode: 3 });
  assert.deepEqual(parseJsonStatus(""), { childPid: undefined, exitCode: undefined });
});

test("a command bwrap cannot exec ends as a shell's would: 127 not found, 126 not executable", () => {
  assert.deepEqual(shellExecFailure(1, "bwrap: execvp nosuch: No such file or directory\n"), { exitCode: 127, stderr: "sandbox: nosuch: command not found\n" });
  assert.deepEqual(shellExecFailure(1, "bwrap: execvp ./x: Permission denied\n"), { exitCode: 126, stderr: "sandbox: ./x: permission denied\n" });
  assert.equal(shellExecFailure(2, "bwrap: execvp nosuch: No such file or directory\n"), undefined, "only bwrap's own status 1 is its exec failure");
});

test("the end reason: our stop first, then the OOM killer, RLIMIT_CPU, RLIMIT_FSIZE, another signal, a plain exit", () => {
  assert.equal(endReason("timeout", "SIGKILL", OOM), "timeout");
  assert.equal(endReason(undefined, "SIGKILL", OOM), "memory");
  assert.equal(endReason(undefined, "SIGKILL", NO_STATS), "signal");
  assert.equal(endReason(undefined, "SIGXCPU", NO_STATS), "cpu-limit");
  assert.equal(endReason(undefined, "SIGXFSZ", NO_STATS), "file-size-limit");
  assert.equal(endReason(undefined, null, NO_STATS), "exit");
  assert.deepEqual(limitsHitBy("SIGXCPU", { ...OOM, pidsLimitHits: 2 }, true), ["memory", "pids", "output", "cpu"]);
});

test("a launcher that failed before the program ran is a host problem, explained; a task stopped before it ran is not", () => {
  assert.throws(() => taskResult(run(), outcome({ statusText: "", exit: { code: 1, signal: null } }, "bwrap: Creating new namespace failed: Operation not permitted\n"), NO_STATS, 10), (error: unknown) => error instanceof SandboxUnavailableError && /user namespace/.test(error.message));
  assert.throws(() => taskResult(run(), outcome({ exit: { code: null, signal: null, spawnError: new Error("spawn prlimit ENOENT") } }), NO_STATS, 10), /cannot start the sandbox: spawn prlimit ENOENT/);
  assert.equal(taskResult(run(), outcome({ statusText: "", reason: "aborted", exit: { code: null, signal: "SIGKILL" } }), NO_STATS, 10).exitCode, 137);
});

test("the result names the limits that applied, those that did not, and requested paths that did not come back", () => {
  const result = taskResult(run(["out", "."]), outcome({ returned: { data: Buffer.alloc(1024), overflow: true, limit: 1024 } }), NO_STATS, 10);
  assert.equal(result.exitCode, 0);
  assert.equal(result.reason, "exit");
  assert.equal(result.stdout.data.toString(), "out");
  assert.deepEqual(result.filesMissing, ["(returned files passed 1024 bytes and were cut)", "out"]);
  assert.deepEqual(result.limits.missing, ["cgroup memory: none", "requested memory 2 GiB (ceiling 1 GiB)"]);
  assert.equal(result.limits.backend, "bubblewrap");
  assert.equal(result.limits.seccomp, true);
});
