// Benign tasks in real bubblewrap sandboxes: programs read and write the workspace, files round-trip, and the
// result reports exactly what happened and which limits applied.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { checkTask, limitsFromConfig, parseByteQuantity, SandboxTaskError } from "./task.ts";
import type { BubblewrapBackend } from "./bubblewrap.ts";
import { assertStillServes, testBackend, text, TEST_LIMITS } from "./test-support.ts";

let backend: BubblewrapBackend;
before(async () => {
  backend = await testBackend();
});
after(async () => {
  await backend.close();
});

test("a python3 program reads an input file from the workspace and writes a result that comes back", async () => {
  // out/ does not exist before the program runs: python fails to open it, and the result says so.
  const failing = await backend.run({
    argv: ["python3", "-c", "open('out/sum.txt', 'w')"],
    collect: ["out"],
  });
  assert.equal(failing.exitCode, 1);
  assert.match(text(failing.stderr.data), /FileNotFoundError/);
  assert.deepEqual(failing.filesMissing, ["out"]);

  const fixed = await backend.run({
    argv: ["python3", "main.py"],
    files: [
      { path: "main.py", content: "import json, os\nos.makedirs('out', exist_ok=True)\nnums = json.load(open('data/in.json'))\nopen('out/sum.txt', 'w').write(str(sum(nums)))\nprint('done', len(nums))\n" },
      { path: "data/in.json", content: "[1, 2, 3, 4]" },
    ],
    collect: ["out"],
  });
  assert.equal(fixed.exitCode, 0, text(fixed.stderr.data));
  assert.equal(fixed.reason, "exit");
  assert.equal(text(fixed.stdout.data), "done 4\n");
  assert.deepEqual(fixed.files.map((file) => [file.path, text(file.content)]), [["out/sum.txt", "10"]]);
});

test("a node program runs in the sandbox and sees only the workspace it was given", async () => {
  const result = await backend.run({
    argv: ["node", "-e", "const fs=require('fs');fs.writeFileSync('report.txt',fs.readdirSync('.').sort().join(','));console.log(process.cwd(), process.getuid())"],
    files: [{ path: "a.txt", content: "a" }, { path: "b/c.txt", content: "c" }],
    collect: ["report.txt"],
    limits: { memoryBytes: 512 * 1024 ** 2 },
  });
  assert.equal(result.exitCode, 0, text(result.stderr.data));
  assert.equal(text(result.stdout.data), "/workspace 65532\n");
  assert.equal(text(result.files[0]?.content ?? Buffer.alloc(0)), "a.txt,b");
});

test("an sh script gets stdin, the allowlisted environment and nothing else of the runner's", async () => {
  process.env.PERIMETER_RUNNER_ONLY = "runner-value";
  const result = await backend.run({ script: "read line; echo \"got:$line:$GREETING\"; env | sort | cut -d= -f1 | tr '\\n' ' '", stdin: "hello\n", env: { GREETING: "hi" } });
  assert.equal(result.exitCode, 0);
  const [first, names] = text(result.stdout.data).split("\n");
  assert.equal(first, "got:hello:hi");
  assert.deepEqual(names?.trim().split(" "), ["GREETING", "HOME", "LANG", "LOGNAME", "PATH", "PWD", "SHELL", "TMPDIR", "USER"]);
});

test("binary files round-trip byte for byte with their modes, and a missing path is reported", async () => {
  const blob = Buffer.from(Array.from({ length: 4096 }, (_, index) => (index * 7) % 256));
  const result = await backend.run({
    script: "cp in.bin out.bin && ./tool.sh > tool.out && ls -l tool.sh | cut -c1-10",
    files: [{ path: "in.bin", content: blob }, { path: "tool.sh", content: "#!/bin/sh\necho tool ran\n", mode: 0o755 }],
    collect: ["out.bin", "tool.out", "never-written.txt"],
  });
  assert.equal(result.exitCode, 0, text(result.stderr.data));
  assert.equal(text(result.stdout.data), "-rwxr-xr-x\n");
  const out = result.files.find((file) => file.path === "out.bin");
  assert.ok(out !== undefined && out.content.equals(blob));
  assert.equal(text(result.files.find((file) => file.path === "tool.out")?.content ?? Buffer.alloc(0)), "tool ran\n");
  assert.deepEqual(result.filesMissing, ["never-written.txt"]);
});

test("collecting '.' returns the whole workspace (how named workspaces are carried between runs)", async () => {
  const result = await backend.run({ script: "mkdir -p x/y && echo 1 > x/y/one && echo 2 > two", files: [{ path: "given.txt", content: "g" }], collect: ["."] });
  assert.equal(result.exitCode, 0);
  assert.deepEqual(result.files.map((file) => file.path).sort(), ["given.txt", "two", "x/y/one"]);
});

test("the exit status, a signal death and 'command not found' are reported as a shell would", async () => {
  const exit = await backend.run({ script: "exit 42" });
  assert.deepEqual([exit.exitCode, exit.signal, exit.reason], [42, null, "exit"]);
  const killed = await backend.run({ script: "kill -SEGV $$" });
  assert.deepEqual([killed.exitCode, killed.signal, killed.reason], [139, "SIGSEGV", "signal"]);
  const missing = await backend.run({ argv: ["no-such-program"] });
  assert.equal(missing.exitCode, 127);
  assert.match(text(missing.stderr.data), /no-such-program: command not found/);
});

test("the result says which limits applied: rlimits, cgroup controllers and version, seccomp, network", async () => {
  const result = await backend.run({ argv: ["true"], limits: { memoryBytes: 128 * 1024 ** 2, pids: 32 } });
  assert.equal(result.limits.backend, "bubblewrap");
  assert.equal(result.limits.seccomp, true);
  assert.equal(result.limits.network, "none");
  assert.equal(result.limits.limits.memoryBytes, 128 * 1024 ** 2);
  assert.equal(result.limits.rlimits?.fsize, TEST_LIMITS.diskBytes);
  assert.equal(result.limits.rlimits?.nofile, TEST_LIMITS.openFiles);
  // This host (and CI, where the controllers are mounted privately) has cgroup v1 memory and pids.
  assert.ok(result.limits.cgroup !== null, `no cgroup: ${result.limits.missing.join("; ")}`);
  assert.ok(result.limits.cgroup.controllers.includes("memory") && result.limits.cgroup.controllers.includes("pids"));
  assert.ok([1, 2, "mixed"].includes(result.limits.cgroup.version));
});

test("a limit above the operator's ceiling is capped, and the result says so", async () => {
  const result = await backend.run({ argv: ["true"], limits: { timeoutMs: 10 * 60_000 } });
  assert.equal(result.limits.limits.timeoutMs, 60_000);
  assert.ok(result.limits.missing.some((entry) => entry.includes("timeoutMs")));
});

test("stdout and stderr are capped separately, with truncated flags and the byte counts", async () => {
  const result = await backend.run({ script: "head -c 10 /dev/zero >&2; head -c 300000 /dev/zero", limits: { outputBytes: 100_000 } });
  assert.equal(result.stdout.data.length, 100_000);
  assert.equal(result.stdout.truncated, true);
  assert.equal(result.stderr.truncated, false);
  assert.equal(result.stderr.data.length, 10);
  assert.equal(result.reason, "output-limit");
});

test("tasks run concurrently without sharing a workspace", async () => {
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, index) => backend.run({ script: `echo ${index} > mine; sleep 0.2; ls; cat mine`, collect: ["mine"] })),
  );
  results.forEach((result, index) => {
    assert.equal(text(result.stdout.data), `mine\n${index}\n`);
  });
  await assertStillServes(backend);
});

test("bad tasks are refused before anything runs, with a reason that says what to change", async () => {
  await assert.rejects(backend.run({ argv: ["true"], files: [{ path: "../escape", content: "x" }] }), (error: Error) => error instanceof SandboxTaskError && /leaves the workspace/.test(error.message));
  await assert.rejects(backend.run({ argv: ["true"], files: [{ path: "/etc/passwd", content: "x" }] }), /absolute/);
  await assert.rejects(backend.run({ argv: ["true"], script: "true" }), /exactly one/);
  await assert.rejects(backend.run({ argv: ["true"], env: { "BAD-NAME": "x" } }), /not valid/);
  await assert.rejects(backend.run({ argv: ["true"], network: { mode: "proxy", allow: ["pypi.org"] } }), /no egress proxy/);
  await assert.rejects(backend.run({ argv: ["true"], files: [{ path: "big", content: Buffer.alloc(TEST_LIMITS.diskBytes + 1) }] }), /more than the workspace/);
  await assert.rejects(backend.run({ argv: ["true"], files: [{ path: "s", content: "x", mode: 0o4755 }] }), /no setuid/);
  await assertStillServes(backend);
});

test("quantities: Kubernetes meaning for M and Mi; config limits get their documented defaults", () => {
  assert.equal(parseByteQuantity("512Mi", "x"), 512 * 1024 ** 2);
  assert.equal(parseByteQuantity("512M", "x"), 512e6);
  assert.throws(() => parseByteQuantity("lots", "--memory"), /--memory: "lots" is not a size/);
  const limits = limitsFromConfig({ cpu: "500m", memory: "1Gi", pids: 256, disk: "1Gi", timeoutSeconds: 300 });
  assert.equal(limits.cpu, 0.5);
  assert.equal(limits.timeoutMs, 300_000);
  assert.equal(limits.tmpBytes, 256 * 1024 ** 2);
  const checked = checkTask({ argv: ["x"] }, { defaults: limits, ceiling: limits, maxFiles: 10, networkModes: ["none"] });
  assert.ok(checked.ok && checked.task.network.mode === "none");
});

test("without cgroups (a host that has none), each task is still bounded in processes, and concurrent tasks do not starve each other", async () => {
  const plain = await testBackend({ cgroups: "off" });
  try {
    const counter = "import os, time\nn = 0\nwhile n < 1000:\n    try:\n        if os.fork() == 0:\n            time.sleep(30); os._exit(0)\n        n += 1\n    except OSError:\n        break\nprint(n)\n";
    const [bomb, ...others] = await Promise.all([
      plain.run({ argv: ["python3", "-c", counter], limits: { pids: 24 } }),
      ...Array.from({ length: 8 }, () => plain.run({ argv: ["sh", "-c", "sleep 0.3; echo fine"] })),
    ]);
    const forked = Number(bomb.stdout.data.toString());
    assert.ok(forked > 0 && forked < 24, `forked ${forked} processes with a limit of 24`);
    assert.equal(bomb.limits.cgroup, null);
    assert.ok(bomb.limits.missing.some((entry) => entry.startsWith("cgroup pids")));
    for (const other of others) assert.equal(other.stdout.data.toString(), "fine\n");
  } finally {
    await plain.close();
  }
});
