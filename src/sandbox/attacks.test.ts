// The attack suite: each test is a hostile task in a real bubblewrap sandbox, asserts that it was contained, and
// then that the backend still serves the next task. Nothing here sends a packet off this machine: the network
// tests look for a way out (interfaces, routes, sockets) and use only services the test itself runs on loopback.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { BubblewrapBackend } from "./bubblewrap.ts";
import type { SandboxResult, SandboxTask } from "./task.ts";
import { assertStillServes, hostProcessesWith, testBackend, text } from "./test-support.ts";

let backend: BubblewrapBackend;
let hostDirectory: string;
let dataDirectory: string;
let loopbackServer: Server;
let loopbackPort: number;
let abstractServer: Server;
let hostSleeper: ChildProcess;
const secret = `runner-secret-${randomBytes(12).toString("hex")}`;
const dataCanary = `data-canary-${randomBytes(12).toString("hex")}`;
const abstractName = `perimeter-attack-${randomBytes(6).toString("hex")}`;

before(async () => {
  // A secret in the runner's own environment, and an agent data directory (like /opt/data) on the host.
  process.env.PERIMETER_ATTACK_SECRET = secret;
  hostDirectory = mkdtempSync(join(tmpdir(), "perimeter-attack-"));
  dataDirectory = join(hostDirectory, "opt-data");
  mkdirSync(join(dataDirectory, "memories"), { recursive: true });
  writeFileSync(join(dataDirectory, ".env"), `TELEGRAM_BOT_TOKEN=${dataCanary}\n`, { mode: 0o644 });
  writeFileSync(join(dataDirectory, "config.yaml"), `secret: ${dataCanary}\n`, { mode: 0o644 });
  // A service on the host's loopback the sandbox must not reach, and one on an abstract Unix socket.
  loopbackServer = createServer((socket) => socket.end(`${dataCanary}\n`));
  await new Promise<void>((resolve) => loopbackServer.listen(0, "127.0.0.1", resolve));
  loopbackPort = (loopbackServer.address() as { port: number }).port;
  abstractServer = createServer((socket) => socket.end(`${dataCanary}\n`));
  await new Promise<void>((resolve) => abstractServer.listen(`\u0000${abstractName}`, resolve));
  // A host process the sandbox will try to kill.
  hostSleeper = spawn("sleep", ["300"], { stdio: "ignore" });
  backend = await testBackend();
});

after(async () => {
  await backend.close();
  hostSleeper.kill("SIGKILL");
  loopbackServer.close();
  abstractServer.close();
  rmSync(hostDirectory, { recursive: true, force: true });
  delete process.env.PERIMETER_ATTACK_SECRET;
});

async function attack(task: SandboxTask): Promise<SandboxResult> {
  return backend.run(task);
}

const python = (source: string, extra: Partial<SandboxTask> = {}): SandboxTask => ({ argv: ["python3", "attack.py"], files: [{ path: "attack.py", content: source }], ...extra });

const ctypesPrelude = `
import ctypes, ctypes.util, os, errno
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, call):
    result = call()
    err = ctypes.get_errno()
    print(name, result, errno.errorcode.get(err, err) if result == -1 else "OK")
`;

function lines(result: SandboxResult): Map<string, string> {
  return new Map(text(result.stdout.data).trim().split("\n").map((line) => {
    const [name, ...rest] = line.split(" ");
    return [name ?? "", rest.join(" ")] as [string, string];
  }));
}

// ---------------------------------------------------------------------------------------------------------------
// Reading what is not the sandbox's

test("attack: reading /etc/shadow finds no such file (the host's /etc is not in the sandbox)", async () => {
  const result = await attack({ script: "cat /etc/shadow; echo \"status $?\"; ls /etc" });
  assert.match(text(result.stdout.data), /^status 1$/m);
  assert.match(text(result.stderr.data), /\/etc\/shadow: No such file/);
  assert.doesNotMatch(text(result.stdout.data), /shadow|gshadow|ssh/);
  await assertStillServes(backend);
});

test("attack: the host's home directories and /root do not exist in the sandbox", async () => {
  const result = await attack({ script: "ls -a /root /home 2>&1; ls /; cat ~root/.bash_history 2>&1" });
  const output = text(result.stdout.data);
  assert.match(output, /ls: cannot access '\/root': No such file or directory/);
  assert.match(output, /ls: cannot access '\/home': No such file or directory/);
  assert.doesNotMatch(output.split("\n").filter((line) => !line.startsWith("ls:") && !line.startsWith("cat:")).join(" "), /\b(root|home|var|opt|srv|mnt|work)\b/);
  await assertStillServes(backend);
});

test("attack: the agent's data directory on the host (like /opt/data) is invisible, by path and by search", async () => {
  const result = await attack({ script: `cat ${dataDirectory}/.env ${dataDirectory}/config.yaml 2>&1; ls /opt /var 2>&1; grep -rs ${dataCanary} /tmp /workspace /etc /dev/shm; echo end` });
  const output = text(result.stdout.data);
  assert.doesNotMatch(output, new RegExp(dataCanary));
  assert.match(output, /No such file or directory/);
  assert.match(output, /end\n$/);
  await assertStillServes(backend);
});

test("attack: /proc/1/environ and every visible process's environment hold none of the runner's secrets", async () => {
  const result = await attack({ script: "cat /proc/1/environ /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo; env; ls /proc | grep -c '^[0-9]'" });
  const output = text(result.stdout.data);
  assert.doesNotMatch(output, new RegExp(secret));
  assert.doesNotMatch(output, /PERIMETER_ATTACK_SECRET/);
  // Only the sandbox's own processes are visible (bwrap's init, the shell and its children): a handful, not the host's.
  const count = Number(output.trim().split("\n").at(-1));
  assert.ok(count > 0 && count < 10, `saw ${count} processes`);
  await assertStillServes(backend);
});

test("attack: the runner's secret is not in the sandbox environment even when the task names the variable", async () => {
  // A task may set variables explicitly; it cannot ask for the runner's by name (there is no inheritance at all).
  const result = await attack({ script: "echo \"[$PERIMETER_ATTACK_SECRET]\"", env: { OTHER: "x" } });
  assert.equal(text(result.stdout.data), "[]\n");
  await assertStillServes(backend);
});

test("attack: the sandbox holds no file descriptors beyond its stdio (nothing leaked from the runner)", async () => {
  const result = await attack(python("import os\nprint(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))\nfor fd in os.listdir('/proc/self/fd'):\n    print(fd, os.readlink('/proc/self/fd/' + fd))\n"));
  const output = text(result.stdout.data);
  const fds = JSON.parse(output.split("\n")[0] as string) as number[];
  // 0-2 and the descriptor listdir itself opened; anything else would be a channel the runner did not mean to give.
  for (const line of output.split("\n").slice(1).filter(Boolean)) {
    const [fd, target] = line.split(" ");
    if (Number(fd) > 3) assert.equal(target, "/dev/null", `descriptor ${fd} points at ${target}`);
  }
  assert.ok(fds.includes(0) && fds.includes(1) && fds.includes(2));
  await assertStillServes(backend);
});

// ---------------------------------------------------------------------------------------------------------------
// Writing where it should not

test("attack: writing outside the workspace fails (/, /usr, /etc, /dev are read-only) and /tmp is private", async () => {
  const marker = `perimeter-attack-${randomBytes(4).toString("hex")}`;
  const result = await attack({ script: `for p in /x /usr/x /usr/bin/x /etc/x /dev/x /proc/x; do touch $p 2>/dev/null && echo wrote $p; done; touch /tmp/${marker} && echo tmp-ok; echo done` });
  assert.equal(text(result.stdout.data), "tmp-ok\ndone\n");
  // The sandbox's /tmp was its own tmpfs: nothing appeared on the host.
  assert.equal(existsSync(join("/tmp", marker)), false);
  await assertStillServes(backend);
});

test("attack: a symlink in the workspace pointing at host files leads nowhere, and is not followed when files are returned", async () => {
  const result = await attack({ script: `ln -s /etc/shadow shadow; ln -s ${dataDirectory}/.env env; ln -s / root; cat shadow env 2>&1; echo end`, collect: ["shadow", "env", "root"] });
  assert.doesNotMatch(text(result.stdout.data), new RegExp(dataCanary));
  assert.equal(result.files.length, 0);
  assert.ok(result.filesMissing.some((entry) => /shadow \(symbolic link\)/.test(entry)), result.filesMissing.join(", "));
  await assertStillServes(backend);
});

test("attack: a hard link to a file outside the workspace cannot be made (different filesystem)", async () => {
  const result = await attack({ script: "ln /etc/passwd pw 2>&1; ln /usr/bin/env e 2>&1; ls" });
  const output = text(result.stdout.data);
  assert.match(output, /Invalid cross-device link/);
  assert.doesNotMatch(output, /^(pw|e)$/m);
  await assertStillServes(backend);
});

test("attack: input file paths cannot escape the workspace (.. and absolute paths are refused before anything runs)", async () => {
  for (const path of ["../../etc/cron.d/x", "a/../../x", "/tmp/x", "a//b"]) {
    await assert.rejects(attack({ argv: ["true"], files: [{ path, content: "x" }] }), /leaves the workspace|absolute|empty/);
  }
  await assertStillServes(backend);
});

test("attack: filling the disk stops at the workspace's size and leaves the host's disk alone", async () => {
  const result = await attack({ script: "dd if=/dev/zero of=fill bs=1M count=200 2>&1; ls -l fill | awk '{print $5}'; dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1 | tail -1", limits: { diskBytes: 8 * 1024 ** 2, tmpBytes: 4 * 1024 ** 2 } });
  const output = text(result.stdout.data);
  assert.match(output, /No space left on device|File size limit exceeded/);
  const written = Number(output.split("\n").find((line) => /^\d+$/.test(line)));
  assert.ok(written <= 8 * 1024 ** 2, `wrote ${written} bytes`);
  await assertStillServes(backend);
});

// ---------------------------------------------------------------------------------------------------------------
// Network

test("attack: a TCP service on the host's loopback cannot be reached (no AF_INET sockets, own network namespace)", async () => {
  const result = await attack(python(`
import socket
try:
    s = socket.create_connection(("127.0.0.1", ${loopbackPort}), timeout=2)
    print("connected", s.recv(100))
except OSError as e:
    print("refused", e.errno)
`));
  const output = text(result.stdout.data);
  assert.doesNotMatch(output, new RegExp(dataCanary));
  assert.match(output, /^refused 1$/m); // EPERM from the seccomp filter
  await assertStillServes(backend);
});

test("attack: an abstract Unix socket of the host cannot be reached (abstract sockets belong to the network namespace)", async () => {
  const result = await attack(python(`
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\\0${abstractName}")
    print("connected", s.recv(100))
except OSError as e:
    print("refused", e.errno)
`));
  assert.doesNotMatch(text(result.stdout.data), new RegExp(dataCanary));
  assert.match(text(result.stdout.data), /^refused 111$/m); // ECONNREFUSED: nothing by that name in this namespace
  await assertStillServes(backend);
});

test("attack: with the network off there is no interface but loopback and no route at all", async () => {
  const result = await attack({ script: "cat /proc/net/route; echo ---; cat /proc/net/ipv6_route; echo ---; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; echo ---; ls /sys/class/net 2>&1; ip -o addr 2>&1; ip route 2>&1; echo end" });
  const [route, route6, interfaces, rest] = text(result.stdout.data).split("---\n");
  assert.equal(route?.trim().split("\n").length, 1, `IPv4 routes: ${route}`); // the header line only
  // IPv6: only the loopback's own entries (::1 and the kernel's unreachable default), all on lo.
  for (const line of route6?.trim().split("\n") ?? []) assert.match(line, /\slo$/, `IPv6 route off loopback: ${line}`);
  assert.equal(interfaces?.trim(), "lo");
  assert.match(rest ?? "", /\/sys\/class\/net.*No such file/);
  assert.doesNotMatch(rest ?? "", /inet (?!127\.)|default via/);
  await assertStillServes(backend);
});

test("attack: no socket family but AF_UNIX can be created (netlink, packet, inet, inet6 all refused)", async () => {
  const result = await attack(python(`
import socket
for name, family, kind in [("inet", socket.AF_INET, socket.SOCK_DGRAM), ("inet6", socket.AF_INET6, socket.SOCK_STREAM), ("netlink", socket.AF_NETLINK, socket.SOCK_RAW), ("packet", 17, socket.SOCK_RAW), ("unix", socket.AF_UNIX, socket.SOCK_STREAM)]:
    try:
        socket.socket(family, kind).close(); print(name, "created")
    except OSError as e:
        print(name, e.errno)
`));
  const found = lines(result);
  assert.deepEqual([...found.entries()], [["inet", "1"], ["inet6", "1"], ["netlink", "1"], ["packet", "1"], ["unix", "created"]]);
  await assertStillServes(backend);
});

test("attack: names do not resolve to anything outside (no resolver, only localhost in /etc/hosts)", async () => {
  const result = await attack(python(`
import socket
for host in ["localhost", "example.com", "metadata.google.internal"]:
    try:
        print(host, socket.getaddrinfo(host, 80)[0][4][0])
    except OSError as e:
        print(host, "unresolved")
`));
  assert.deepEqual([...lines(result).entries()], [["localhost", "127.0.0.1"], ["example.com", "unresolved"], ["metadata.google.internal", "unresolved"]]);
  await assertStillServes(backend);
});

// ---------------------------------------------------------------------------------------------------------------
// Resource exhaustion

test("attack: a fork bomb is stopped by the pids limit and the timeout, and leaves nothing behind", async () => {
  const marker = `forkbomb-${randomBytes(4).toString("hex")}`;
  const started = Date.now();
  // The main shell forks once, before any bomb process exists, then keeps busy with builtins only: a fork of its own
  // would fail at the limit and end it early. (`b; ...` would not do: dash forks both sides of `b | b &` from the
  // main shell, and on a fast machine the first side fills the limit before the second is forked.)
  const result = await attack({ argv: ["/bin/sh", "-c", "b() { b | b & }; b & while :; do :; done", marker], limits: { timeoutMs: 3000, pids: 32 } });
  assert.equal(result.reason, "timeout");
  assert.ok(result.limitsHit.includes("pids"), `limits hit: ${result.limitsHit.join(", ")}`);
  assert.ok(Date.now() - started < 15_000);
  assert.deepEqual(await hostProcessesWith(marker), []);
  await assertStillServes(backend);
});

test("attack: a memory bomb is killed by the memory cgroup and reported as 'memory'", async () => {
  const result = await attack(python("chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n", { limits: { memoryBytes: 96 * 1024 ** 2 } }));
  assert.equal(result.reason, "memory");
  assert.equal(result.exitCode, 137);
  assert.ok(result.limitsHit.includes("memory"));
  assert.ok((result.peakMemoryBytes ?? 0) <= 96 * 1024 ** 2);
  await assertStillServes(backend);
});

test("attack: an endless loop is stopped at the wall-clock limit", async () => {
  const started = Date.now();
  const result = await attack({ script: "while :; do :; done", limits: { timeoutMs: 1000 } });
  assert.equal(result.reason, "timeout");
  assert.ok(Date.now() - started < 1000 + 500 + 3000, `took ${Date.now() - started} ms`);
  await assertStillServes(backend);
});

test("attack: a child that ignores SIGTERM is SIGKILLed after the grace period, with its whole tree", async () => {
  const marker = `stubborn-${randomBytes(4).toString("hex")}`;
  const started = Date.now();
  const result = await attack({ argv: ["/bin/sh", "-c", "trap '' TERM; (trap '' TERM; while :; do sleep 1; done) & while :; do sleep 1; done", marker], limits: { timeoutMs: 800, graceMs: 700 } });
  const elapsed = Date.now() - started;
  assert.equal(result.reason, "timeout");
  assert.ok(elapsed >= 800 + 700 - 50, `killed after ${elapsed} ms: the grace period was skipped`);
  assert.ok(elapsed < 800 + 700 + 3000, `took ${elapsed} ms`);
  assert.deepEqual(await hostProcessesWith(marker), []);
  await assertStillServes(backend);
});

test("attack: a CPU-burning program hits RLIMIT_CPU and is reported as 'cpu-limit'", async () => {
  const result = await attack({ script: "exec python3 -c 'while True: pass'", limits: { cpuSeconds: 1, timeoutMs: 15_000 } });
  assert.equal(result.reason, "cpu-limit");
  assert.equal(result.signal, "SIGXCPU");
  await assertStillServes(backend);
});

test("attack: an output flood ends the task at the output limit; the runner keeps only the cap", async () => {
  const result = await attack({ argv: ["yes", "flood"], limits: { outputBytes: 64 * 1024, timeoutMs: 10_000 } });
  assert.equal(result.reason, "output-limit");
  assert.equal(result.stdout.truncated, true);
  assert.equal(result.stdout.data.length, 64 * 1024);
  await assertStillServes(backend);
});

test("attack: a background process left running is gone when the task ends", async () => {
  const marker = `daemon-${randomBytes(4).toString("hex")}`;
  const result = await attack({ argv: ["/bin/sh", "-c", "setsid sh -c 'sleep 300' $0 & nohup sleep 300 > /dev/null 2>&1 & echo started", marker] });
  assert.equal(text(result.stdout.data), "started\n");
  assert.deepEqual(await hostProcessesWith(marker), []);
  await assertStillServes(backend);
});

test("attack: a background process cannot outlive the task even when files are collected afterwards", async () => {
  const marker = `collector-${randomBytes(4).toString("hex")}`;
  const result = await attack({ argv: ["/bin/sh", "-c", "(while :; do echo tamper >> out.txt; sleep 0.01; done) & echo first > out.txt", marker], collect: ["out.txt"] });
  assert.equal(result.exitCode, 0);
  assert.deepEqual(await hostProcessesWith(marker), []);
  await assertStillServes(backend);
});

// ---------------------------------------------------------------------------------------------------------------
// Kernel surface and privileges

test("attack: ptrace is refused (EPERM), even on the sandbox's own child", async () => {
  const result = await attack(python(`${ctypesPrelude}
pid = os.fork()
if pid == 0:
    import time; time.sleep(2); os._exit(0)
attempt("traceme", lambda: libc.ptrace(0, 0, None, None))
attempt("attach", lambda: libc.ptrace(16, pid, None, None))
os.kill(pid, 9)
`));
  assert.deepEqual([...lines(result).entries()], [["traceme", "-1 EPERM"], ["attach", "-1 EPERM"]]);
  await assertStillServes(backend);
});

test("attack: mount, umount, pivot_root and the new mount API are refused", async () => {
  const result = await attack(python(`${ctypesPrelude}
os.makedirs("/tmp/m", exist_ok=True)
attempt("mount", lambda: libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None))
attempt("umount2", lambda: libc.umount2(b"/workspace", 2))
attempt("pivot_root", lambda: libc.syscall(155, b"/tmp", b"/tmp/m"))
attempt("fsopen", lambda: libc.syscall(430, b"tmpfs", 0))
attempt("open_tree", lambda: libc.syscall(428, -100, b"/", 1))
`));
  for (const [name, outcome] of lines(result)) assert.equal(outcome, "-1 EPERM", name);
  assert.equal(lines(result).size, 5);
  await assertStillServes(backend);
});

test("attack: unshare and setns are refused, so no new namespace (and no user namespace) can be made", async () => {
  const result = await attack(python(`${ctypesPrelude}
attempt("unshare-user", lambda: libc.unshare(0x10000000))
attempt("unshare-net", lambda: libc.unshare(0x40000000))
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
attempt("setns", lambda: libc.setns(fd, 0))
`));
  assert.deepEqual([...lines(result).entries()], [["unshare-user", "-1 EPERM"], ["unshare-net", "-1 EPERM"], ["setns", "-1 EPERM"]]);
  const tool = await attack({ script: "unshare -Ur id 2>&1; unshare -n true 2>&1; echo end" });
  assert.doesNotMatch(text(tool.stdout.data), /uid=0/);
  await assertStillServes(backend);
});

test("attack: io_uring, bpf, keyctl, perf_event_open, userfaultfd and module loading are refused", async () => {
  const result = await attack(python(`${ctypesPrelude}
attempt("io_uring_setup", lambda: libc.syscall(425, 8, ctypes.create_string_buffer(120)))
attempt("bpf", lambda: libc.syscall(321, 0, None, 0))
attempt("keyctl", lambda: libc.syscall(250, 0, 0))
attempt("add_key", lambda: libc.syscall(248, b"user", b"x", b"y", 1, -2))
attempt("perf_event_open", lambda: libc.syscall(298, ctypes.create_string_buffer(128), 0, -1, -1, 0))
attempt("userfaultfd", lambda: libc.syscall(323, 0))
attempt("init_module", lambda: libc.syscall(175, None, 0, b""))
attempt("kexec_load", lambda: libc.syscall(246, 0, 0, None, 0))
`));
  if (process.arch !== "x64") assert.fail("this test uses x86_64 syscall numbers");
  for (const [name, outcome] of lines(result)) assert.equal(outcome, "-1 EPERM", name);
  assert.equal(lines(result).size, 8);
  await assertStillServes(backend);
});

test("attack: setuid binaries do not grant privileges (no_new_privs, nosuid mounts, unprivileged user)", async () => {
  const result = await attack({ script: "grep -E '^(NoNewPrivs|CapEff|CapPrm|Uid)' /proc/self/status; su -c 'id -u' root </dev/null 2>&1; cp /bin/sh ./sh && chmod 4755 ./sh 2>&1; ./sh -c 'id -u'; grep -c nosuid /proc/self/mountinfo" });
  const output = text(result.stdout.data);
  assert.match(output, /NoNewPrivs:\s+1/);
  assert.match(output, /CapEff:\s+0000000000000000/);
  assert.match(output, /CapPrm:\s+0000000000000000/);
  assert.match(output, /Uid:\s+65532\s+65532\s+65532\s+65532/);
  assert.doesNotMatch(output, /^0$/m);
  assert.match(output, /^65532$/m);
  await assertStillServes(backend);
});

test("attack: /dev/mem, /dev/kmem, /dev/port and disks do not exist, and device nodes cannot be made", async () => {
  const result = await attack({ script: "ls /dev; for d in /dev/mem /dev/kmem /dev/port /dev/sda /dev/vda /dev/nvme0n1 /dev/kmsg; do head -c1 $d >/dev/null 2>&1 && echo read $d; done; mknod /tmp/mem c 1 1 2>&1; mknod /workspace/mem c 1 1 2>&1; echo end" });
  const output = text(result.stdout.data);
  assert.doesNotMatch(output, /^read /m);
  assert.doesNotMatch(output, /^(mem|kmem|port|sda|vda|kmsg)$/m);
  assert.match(output, /mknod: \/tmp\/mem: Operation not permitted/);
  await assertStillServes(backend);
});

test("attack: host processes cannot be seen, killed or signalled (kill -9 -1 and the host pid)", async () => {
  const hostPid = hostSleeper.pid as number;
  const result = await attack({ script: `kill -9 ${hostPid} 2>&1; kill -9 ${process.pid} 2>&1; kill -9 -1; kill -TERM 1; echo end` });
  assert.match(text(result.stdout.data), /No such process/);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(hostSleeper.exitCode, null, "the host's sleep process was killed");
  assert.equal(hostSleeper.signalCode, null);
  process.kill(hostPid, 0); // still there
  await assertStillServes(backend);
});

test("attack: kernel tunables, sysrq and the kernel log are out of reach", async () => {
  const result = await attack({ script: "for f in /proc/sys/kernel/core_pattern /proc/sys/vm/drop_caches /proc/sysrq-trigger; do (echo x > $f) 2>/dev/null && echo \"wrote $f\" || echo \"refused $f\"; done; dmesg 2>&1 | head -1; ls /sys 2>&1; echo end" });
  const output = text(result.stdout.data);
  assert.doesNotMatch(output, /^wrote /m);
  assert.match(output, /refused \/proc\/sys\/kernel\/core_pattern/);
  assert.match(output, /dmesg: read kernel buffer failed: Operation not permitted/);
  assert.match(output, /\/sys.*No such file/);
  assert.match(output, /end\n$/);
  await assertStillServes(backend);
});

test("attack: the sandbox has no controlling terminal to inject keystrokes into", async () => {
  const result = await attack(python(`
import os
try:
    os.open("/dev/tty", os.O_RDWR); print("tty opened")
except OSError as e:
    print("tty", e.errno)
print("sid", os.getsid(0) == os.getpid() or os.getsid(0))
`));
  assert.match(text(result.stdout.data), /^tty 6$/m); // ENXIO: no controlling terminal (--new-session)
  await assertStillServes(backend);
});

test("attack: the cgroup hierarchy and the host's cgroup files are not mounted in the sandbox", async () => {
  const result = await attack({ script: "cat /proc/self/cgroup; ls /sys/fs/cgroup 2>&1; echo end" });
  const output = text(result.stdout.data);
  assert.match(output, /\/sys\/fs\/cgroup.*No such file/);
  // The cgroup namespace hides the host's hierarchy paths: the task sees itself at the root.
  assert.doesNotMatch(output, /process_api|perimeter-sandbox/);
  await assertStillServes(backend);
});

test("attack: a huge argument list or environment is refused before anything runs", async () => {
  await assert.rejects(attack({ argv: ["echo", "x".repeat(200_000)] }), /command line is \d+ bytes/);
  await assert.rejects(attack({ argv: ["true"], env: { X: "a\u0000b" } }), /NUL/);
  await assertStillServes(backend);
});

test("attack: the sandbox's hostname and identity reveal nothing of the host", async () => {
  const result = await attack({ script: "hostname; cat /etc/hostname 2>&1; id; cat /etc/passwd | cut -d: -f1 | tr '\\n' ' '" });
  const output = text(result.stdout.data);
  assert.match(output, /^sandbox$/m);
  assert.match(output, /uid=65532\(sandbox\)/);
  assert.match(output, /root sandbox nobody $/m);
  assert.doesNotMatch(output, new RegExp(readFileSync("/etc/hostname", "utf8").trim() === "sandbox" ? "^$" : readFileSync("/etc/hostname", "utf8").trim()));
  await assertStillServes(backend);
});
