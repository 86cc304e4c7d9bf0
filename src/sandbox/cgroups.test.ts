// cgroup discovery on the layouts hosts actually have (pure parsers over captured /proc text), and the files a
// task cgroup writes and reads. This host's memory and pids controllers are cgroup v1 (the sandbox tests use them
// for real); cgroup v2 is exercised on a stand-in directory tree, since no v2 memory controller is free here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTaskCgroup, parseCgroupMounts, parseProcessCgroups } from "./cgroups.ts";

const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;

const UNIFIED_MOUNTINFO = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`;

const CONTAINER_MOUNTINFO = `500 499 0:40 /docker/0123abcd /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
501 499 0:41 /docker/0123abcd /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct`;

test("cgroup mounts: a hybrid host (v1 controllers plus an empty v2 hierarchy) is read controller by controller", () => {
  const mounts = parseCgroupMounts(HYBRID_MOUNTINFO);
  assert.deepEqual(
    mounts.map((mount) => [mount.version, mount.mountPoint, mount.controllers.join(",")]),
    [
      [1, "/sys/fs/cgroup/cpu", "cpu"],
      [1, "/sys/fs/cgroup/memory", "memory"],
      [1, "/sys/fs/cgroup/pids", "pids"],
      [2, "/sys/fs/cgroup/unified", ""],
    ],
  );
});

test("cgroup mounts: a pure cgroup v2 host has one unified hierarchy", () => {
  assert.deepEqual(parseCgroupMounts(UNIFIED_MOUNTINFO), [{ version: 2, mountPoint: "/sys/fs/cgroup", root: "/", controllers: [] }]);
});

test("cgroup mounts: inside a container the mount's root is a sub-tree, and co-mounted controllers are both seen", () => {
  const mounts = parseCgroupMounts(CONTAINER_MOUNTINFO);
  assert.equal(mounts[0]?.root, "/docker/0123abcd");
  assert.deepEqual(mounts[1]?.controllers, ["cpu", "cpuacct"]);
  assert.equal(mounts[1]?.mountPoint, "/sys/fs/cgroup/cpu,cpuacct");
});

test("/proc/self/cgroup: v1 paths per controller (co-mounted ones share a line) and the v2 path under ''", () => {
  const paths = parseProcessCgroups("12:pids:/user.slice\n4:memory:/process_api/abc\n3:cpu,cpuacct:/\n0::/user.slice/session-1.scope\n");
  assert.equal(paths.get("memory"), "/process_api/abc");
  assert.equal(paths.get("cpuacct"), "/");
  assert.equal(paths.get(""), "/user.slice/session-1.scope");
});

test("stand-in cgroup v2 tree: a task cgroup writes memory.max, pids.max and cpu.max, and reads OOM kills and pids refusals back", () => {
  const root = mkdtempSync(join(tmpdir(), "stand-in-cgroup-v2-"));
  try {
    const parent = join(root, "perimeter-sandbox");
    mkdirSync(parent);
    const cgroup = createTaskCgroup(
      { places: (["memory", "pids", "cpu"] as const).map((controller) => ({ controller, version: 2 as const, parent })), unavailable: {} },
      "task-2",
      { memoryBytes: 64 * 1024 * 1024, pids: 40, cpu: 0.5 },
    );
    assert.ok(cgroup !== null);
    assert.equal(cgroup.version, 2);
    assert.deepEqual(cgroup.procsFiles, [join(parent, "task-2", "cgroup.procs")]);
    const file = (name: string) => readFileSync(join(parent, "task-2", name), "utf8");
    assert.equal(file("memory.max"), String(64 * 1024 * 1024));
    assert.equal(file("pids.max"), "40");
    assert.equal(file("cpu.max"), "50000 100000");
    // What the kernel would report after an OOM kill and refused forks.
    writeFileSync(join(parent, "task-2", "memory.events"), "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n");
    writeFileSync(join(parent, "task-2", "pids.events"), "max 3\n");
    writeFileSync(join(parent, "task-2", "memory.peak"), "1048576\n");
    assert.deepEqual(cgroup.stats(), { oomKills: 1, memoryLimitHits: 7, peakMemoryBytes: 1048576, pidsLimitHits: 3 });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
