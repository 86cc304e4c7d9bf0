// The bubblewrap plan alone (no sandbox started): what bwrap is told for a task, and the rlimits prlimit sets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { bwrapArguments, COLLECT_SCRIPT, limitsNotApplied, prlimitArguments, rlimitsFor, SANDBOX_UID } from "./bubblewrap-plan.ts";
import type { MountLayout } from "./bubblewrap-plan.ts";
import type { CheckedTask } from "./task.ts";
import { TEST_LIMITS } from "./test-support.ts";

const LAYOUT: MountLayout = { root: ["--ro-bind", "/usr", "/usr"], runtimeDirectory: "/run/x/backend-1", nodeBinary: "/opt/node" };
const FDS = { seccomp: 5, status: 6, files: [7, 8] };

function task(overrides: Partial<CheckedTask> = {}): CheckedTask {
  return { argv: ["python3", "main.py"], stdin: undefined, files: [], env: {}, limits: TEST_LIMITS, network: { mode: "none" }, collect: [], caller: "default", capped: [], ...overrides };
}

/** The values following each occurrence of `flag`. */
function after(args: readonly string[], flag: string, count = 1): string[][] {
  return args.flatMap((argument, index) => (argument === flag ? [args.slice(index + 1, index + 1 + count)] : []));
}

test("every task gets its own namespaces, no user namespaces inside, no capabilities, the sandbox uid and a read-only root", () => {
  const { options, argv } = bwrapArguments(LAYOUT, task(), FDS, undefined, false);
  for (const flag of ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--clearenv"]) assert.ok(options.includes(flag), flag);
  assert.deepEqual(after(options, "--cap-drop"), [["ALL"]]);
  assert.deepEqual(after(options, "--uid"), [[String(SANDBOX_UID)]]);
  assert.deepEqual(after(options, "--remount-ro"), [["/dev"], ["/"]]);
  assert.deepEqual(after(options, "--seccomp"), [["5"]]);
  assert.deepEqual(after(options, "--json-status-fd"), [["6"]]);
  assert.deepEqual(argv, ["python3", "main.py"]);
});

test("the environment is the fixed defaults plus the task's own; proxy variables only in proxy mode", () => {
  const plain = after(bwrapArguments(LAYOUT, task({ env: { GREETING: "hi" } }), FDS, undefined, false).options, "--setenv", 2).map(([name]) => name);
  assert.deepEqual(plain, ["PATH", "HOME", "TMPDIR", "LANG", "USER", "LOGNAME", "SHELL", "GREETING"]);
  const proxied = bwrapArguments(LAYOUT, task({ network: { mode: "proxy", allow: ["pypi.org"] } }), FDS, { url: "http://sandbox-1:t@127.0.0.1:3128", socketPath: "/run/egress.sock" }, false);
  const environment = new Map(after(proxied.options, "--setenv", 2).map(([name, value]) => [name, value]));
  assert.equal(environment.get("HTTPS_PROXY"), "http://sandbox-1:t@127.0.0.1:3128");
  assert.equal(environment.get("NO_PROXY"), "");
  assert.deepEqual(after(proxied.options, "--ro-bind", 2).slice(-2), [["/run/x/backend-1/forwarder.mjs", "/.perimeter/forwarder.mjs"], ["/run/egress.sock", "/.perimeter/egress.sock"]]);
  assert.deepEqual(proxied.argv.slice(0, 4), ["/.perimeter/node", "/.perimeter/forwarder.mjs", "/.perimeter/egress.sock", "3128"]);
});

test("input files come from their descriptors with their modes, each parent directory made once", () => {
  const files = [
    { path: "src/a/x.py", content: Buffer.from("x"), mode: 0o755 },
    { path: "src/a/y.py", content: Buffer.from("y"), mode: 0o644 },
  ];
  const { options } = bwrapArguments(LAYOUT, task({ files }), FDS, undefined, false);
  assert.deepEqual(after(options, "--dir"), [["/workspace/src"], ["/workspace/src/a"]]);
  assert.deepEqual(after(options, "--file", 2), [["7", "/workspace/src/a/x.py"], ["8", "/workspace/src/a/y.py"]]);
  assert.deepEqual(after(options, "--perms").slice(-2), [["0755"], ["0644"]]);
});

test("without a pids cgroup the task's own RLIMIT_NPROC is set inside; with files to return, the collector wraps the command", () => {
  const { argv } = bwrapArguments(LAYOUT, task({ collect: ["out"] }), FDS, undefined, true);
  assert.deepEqual(argv, ["/bin/sh", "-c", COLLECT_SCRIPT, "perimeter-collect", "1", "out", "/usr/bin/prlimit", `--nproc=${TEST_LIMITS.pids}`, "--", "python3", "main.py"]);
});

test("rlimits: RLIMIT_AS is a backstop under a memory cgroup and the bound without one; the CPU hard limit is a second later", () => {
  assert.equal(rlimitsFor(TEST_LIMITS, true, false).as, 8 * 1024 ** 3);
  assert.equal(rlimitsFor(TEST_LIMITS, false, false).as, TEST_LIMITS.memoryBytes);
  assert.equal(rlimitsFor(TEST_LIMITS, false, true).as, 4 * 1024 ** 3);
  const args = prlimitArguments(rlimitsFor(TEST_LIMITS, true, false));
  assert.deepEqual(args, [`--as=${8 * 1024 ** 3}`, `--cpu=${TEST_LIMITS.cpuSeconds}:${TEST_LIMITS.cpuSeconds + 1}`, "--nproc=4096", `--fsize=${TEST_LIMITS.diskBytes}`, `--nofile=${TEST_LIMITS.openFiles}`, "--core=0"]);
});

test("limits not applied are named with the host's reason, and proxy mode without a memory cgroup says what bounds it", () => {
  const rlimits = rlimitsFor(TEST_LIMITS, false, true);
  const missing = limitsNotApplied(TEST_LIMITS, rlimits, ["pids"], { memory: "no memory controller", cpu: "cgroups turned off" }, true);
  assert.deepEqual(missing.slice(0, 2), ["cgroup memory: no memory controller", "cgroup cpu: cgroups turned off"]);
  assert.match(missing[2] ?? "", /proxy mode .* bounded by a 4294967296-byte address space/);
  assert.deepEqual(limitsNotApplied(TEST_LIMITS, rlimitsFor(TEST_LIMITS, true, false), ["memory", "pids", "cpu"], {}, false), []);
});
