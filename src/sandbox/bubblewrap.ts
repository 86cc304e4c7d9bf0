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
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess, StdioOptions } from "node:child_process";
import { chmodSync, closeSync, cpSync, existsSync, renameSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, lstatSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import type { Readable, Writable } from "node:stream";
import type { Logger } from "../shared/index.ts";
import { findExecutable, silentLogger } from "../shared/index.ts";
import { createTaskCgroup, discoverCgroups } from "./cgroups.ts";
import type { CgroupSupport, TaskCgroup } from "./cgroups.ts";
import { buildSeccompProgram, hostSeccompArchitecture, seccompProgramBytes } from "./seccomp.ts";
import { readTar } from "./tar.ts";
import { checkTask, SandboxTaskError, SandboxUnavailableError, signalOfStatus } from "./task.ts";
import type { AppliedLimits, CheckedTask, ReturnedFile, RunOptions, SandboxBackend, SandboxEndReason, SandboxHostRule, SandboxLimits, SandboxResult, SandboxTask, TaskPolicy } from "./task.ts";
import { FORWARDER_SOURCE } from "./forwarder.ts";

/** The uid and gid the task has inside the sandbox (and on the host, when the runner is root): distroless "nonroot". */
export const SANDBOX_UID = 65532;
const WORKSPACE = "/workspace";
const FORWARDER_PORT = 3128;

/** An egress proxy the sandbox can reach in network mode "proxy" (src/egress-proxy's createEgressProxy). */
export interface EgressProxyAttachment {
  /** The proxy's Unix socket on the host; it is bound into each proxy-mode sandbox. */
  readonly socketPath: string;
  /** Registers a per-task client whose token selects this task's allowlist; `remove()` revokes it. */
  addClient(client: { name: string; token: string; allow: readonly SandboxHostRule[] }): { remove(): void };
}

export interface BubblewrapOptions {
  readonly defaults: SandboxLimits;
  /** The most a task may ask for (defaults to `defaults`). */
  readonly ceiling?: SandboxLimits;
  readonly maxFiles?: number;
  /** "auto": use the host's memory/pids/cpu cgroups (mounting them privately when root and none are visible). */
  readonly cgroups?: "auto" | "off";
  /** cgroup v2: a delegated cgroup to put task cgroups under. */
  readonly cgroupParent?: string;
  /** Host uid/gid the sandbox runs as when the runner is root. */
  readonly hostUid?: number;
  readonly hostGid?: number;
  readonly egressProxy?: EgressProxyAttachment;
  readonly logger?: Logger;
  /** Where bwrap and prlimit are looked up (the CLI passes its PATH; the standard system directories by default). */
  readonly searchPath?: string;
  /** Parent of the per-backend runtime directory (synthesized /etc files, seccomp programs). */
  readonly runtimeDirectory?: string;
}

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

// ---------------------------------------------------------------------------------------------------------------
// Host preparation (once per backend)


const INSTALL_BWRAP = "install it: apt-get install bubblewrap (Debian/Ubuntu), dnf install bubblewrap (Fedora), apk add bubblewrap (Alpine)";

/** Turns bwrap's own error text into what the operator has to do. */
export function explainBwrapFailure(stderr: string): string {
  const message = stderr.trim().split("\n").filter((line) => line.startsWith("bwrap:")).join("; ") || stderr.trim().slice(0, 400);
  if (/setting up uid map|No permission to create new namespace|Creating new namespace failed|unshare.*(Operation not permitted|Permission denied)|Invalid argument.*namespace|user namespace/i.test(stderr)) {
    return (
      `bubblewrap cannot create a user namespace (${message}). Enable unprivileged user namespaces: ` +
      "sysctl -w kernel.unprivileged_userns_clone=1 (Debian kernels) and sysctl -w user.max_user_namespaces=15000; " +
      "on Ubuntu 23.10+ also sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or give bwrap an AppArmor profile); " +
      "inside a container, run it with a seccomp profile that allows unshare/clone of namespaces (e.g. --security-opt seccomp=unconfined for the runner only)"
    );
  }
  if (/Unknown option|unrecognized option/i.test(stderr)) return `bubblewrap is too old (${message}): 0.8.0 or newer is needed for --size and --disable-userns; ${INSTALL_BWRAP}`;
  if (/mount|tmpfs|proc/i.test(stderr)) return `bubblewrap could not build the sandbox's filesystem (${message}); a container runtime may forbid mounting /proc or tmpfs: run the runner with CAP_SYS_ADMIN-free user namespaces allowed, or on the host`;
  return `bubblewrap failed to start the sandbox: ${message}`;
}

function parseBwrapVersion(text: string): [number, number, number] | undefined {
  const match = /bubblewrap (\d+)\.(\d+)\.(\d+)/.exec(text);
  return match === null ? undefined : [Number(match[1]), Number(match[2]), Number(match[3])];
}

/** /etc files programs need; everything else of the host's /etc stays out (no shadow, no ssh keys, no secrets). */
const ETC_FILES = [
  "/etc/ld.so.cache",
  "/etc/ld.so.conf",
  "/etc/ld.so.conf.d",
  "/etc/alternatives",
  "/etc/localtime",
  "/etc/nsswitch.conf",
  "/etc/protocols",
  "/etc/services",
  "/etc/mime.types",
  "/etc/os-release",
  "/etc/ssl/certs",
  "/etc/ssl/openssl.cnf",
  "/etc/ca-certificates.conf",
  "/etc/pki/tls/certs",
  "/etc/pki/ca-trust/extracted",
];

/** Top-level paths that merged-/usr systems make symlinks into /usr; on others they are directories we bind. */
const USR_LINKS = ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"];

/**
 * The sandbox's root: /usr read-only, the merged-/usr links (or directories) beside it, and one read-only /etc made
 * at startup from copies of ETC_FILES plus a synthesized passwd, group and hosts. One bind instead of a dozen keeps
 * the per-task mount work (and latency) down; a host change to those files reaches new backends, not running ones.
 */
function rootArguments(etcDirectory: string): string[] {
  const args: string[] = ["--ro-bind", "/usr", "/usr"];
  for (const path of USR_LINKS) {
    let stats;
    try {
      stats = lstatSync(path);
    } catch {
      continue;
    }
    if (stats.isSymbolicLink()) args.push("--symlink", readlinkSync(path), path);
    else if (stats.isDirectory()) args.push("--ro-bind", path, path);
  }
  args.push("--ro-bind", etcDirectory, "/etc");
  return args;
}

/**
 * The sandbox's /etc, shared by every backend on this host while the host's files are unchanged: copying
 * /etc/alternatives and the CA links takes a good half second, too much to pay per `perimeter sandbox exec`. The
 * directory is named after a fingerprint of its sources (sizes and modification times), built aside and renamed
 * into place, so concurrent runners never see a half-made one.
 */
function sharedEtcDirectory(parent: string): string {
  const fingerprint = createHash("sha256");
  fingerprint.update(`v1 ${SANDBOX_UID}\n`);
  for (const path of ETC_FILES) {
    try {
      const stats = lstatSync(path);
      fingerprint.update(`${path} ${stats.size} ${stats.mtimeMs} ${stats.ino}\n`);
    } catch {
      fingerprint.update(`${path} absent\n`);
    }
  }
  const target = join(parent, `etc-${fingerprint.digest("hex").slice(0, 16)}`);
  if (existsSync(join(target, "passwd"))) return target;
  const building = mkdtempSync(join(parent, "etc-building-"));
  writeEtc(building);
  chmodSync(building, 0o755);
  try {
    renameSync(building, target);
  } catch {
    // Another runner made it first; theirs is identical.
    rmSync(building, { recursive: true, force: true });
  }
  return target;
}

function writeEtc(etc: string): void {
  for (const path of ETC_FILES) {
    try {
      lstatSync(path);
    } catch {
      continue;
    }
    const target = join(etc, path.slice("/etc/".length));
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
    // Symbolic links are copied as links (they point into /usr, which the sandbox has); files and directories as
    // copies readable by the sandbox's unprivileged host uid.
    cpSync(path, target, { recursive: true, verbatimSymlinks: true, dereference: false, errorOnExist: false, force: true });
  }
  const files: Record<string, string> = {
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:${SANDBOX_UID}:${SANDBOX_UID}:sandbox:${WORKSPACE}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    group: `root:x:0:\nsandbox:x:${SANDBOX_UID}:\nnogroup:x:65534:\n`,
    hosts: "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(etc, name), content, { mode: 0o644 });
  spawnSync("chmod", ["-R", "a+rX", etc], { stdio: "ignore", timeout: 10000 });
}

/** Per-backend files: the seccomp programs and the proxy forwarder. */
function writeRuntimeFiles(directory: string): void {
  writeFileSync(join(directory, "forwarder.mjs"), FORWARDER_SOURCE, { mode: 0o644 });
  writeFileSync(join(directory, "seccomp-none.bpf"), seccompProgramBytes(buildSeccompProgram({ network: "none" })), { mode: 0o644 });
  writeFileSync(join(directory, "seccomp-proxy.bpf"), seccompProgramBytes(buildSeccompProgram({ network: "proxy" })), { mode: 0o644 });
}

/**
 * Descriptors this process inherited without close-on-exec (Node opens everything with it). bwrap passes every open
 * descriptor on to the task, so each of these is overwritten with /dev/null in the child: a pipe leaked to us by
 * whatever started the runner must not become a channel out of the sandbox.
 */
function inheritableDescriptors(): number[] {
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc/self/fd");
  } catch {
    return found;
  }
  for (const entry of entries) {
    const fd = Number(entry);
    if (!(fd >= 3)) continue;
    try {
      const flags = /flags:\s*([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
      const O_CLOEXEC = 0o2000000;
      if (flags !== null && (parseInt(flags[1] as string, 8) & O_CLOEXEC) === 0) found.push(fd);
    } catch {
      // Closed meanwhile (the readdir descriptor itself, for one).
    }
  }
  return found.sort((a, b) => a - b);
}

/** Whether `uid` exists in this process's user namespace (/proc/self/uid_map: inside, outside, count). */
function uidIsMapped(uid: number): boolean {
  try {
    return readFileSync("/proc/self/uid_map", "utf8")
      .trim()
      .split("\n")
      .some((line) => {
        const [inside, , count] = line.trim().split(/\s+/).map(Number);
        return inside !== undefined && count !== undefined && uid >= inside && uid < inside + count;
      });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Per-task launch

// Run inside the sandbox when files are to be returned: $1 paths, then the command. After the program ends, stop
// whatever it left running (kill -9 -1 spares only init and this shell), then tar the paths to fd 3 (which the
// program never had: it is closed for the command).
const COLLECT_SCRIPT = [
  "n=$1; shift; k=0",
  '( shift "$n"; exec "$@" ) 3>&-',
  "s=$?",
  "kill -9 -1 2>/dev/null",
  'for a do shift; if [ "$k" -lt "$n" ]; then set -- "$@" "$a"; fi; k=$((k+1)); done',
  'cd /workspace && tar --format=posix --hard-dereference --ignore-failed-read -cf - -- "$@" 2>/dev/null >&3',
  "exec 3>&-",
  'exit "$s"',
].join("\n");

interface OutputCollector {
  chunks: Buffer[];
  kept: number;
  bytes: number;
  truncated: boolean;
}

function collectOutput(stream: Readable | null, limit: number, onOverflow: () => void): OutputCollector {
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

/** The exit status JSON bwrap writes on --json-status-fd: the child's pid once it runs, its status at the end. */
function parseJsonStatus(text: string): { childPid?: number; exitCode?: number } {
  const child = /"child-pid"\s*:\s*(\d+)/.exec(text);
  const exit = /"exit-code"\s*:\s*(\d+)/.exec(text);
  return { childPid: child === null ? undefined : Number(child[1]), exitCode: exit === null ? undefined : Number(exit[1]) };
}

// ---------------------------------------------------------------------------------------------------------------

export async function createBubblewrapBackend(options: BubblewrapOptions): Promise<BubblewrapBackend> {
  const logger = options.logger ?? silentLogger();
  const searchPath = options.searchPath ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  const bwrapFound = findExecutable("bwrap", searchPath);
  if (bwrapFound === undefined) throw new SandboxUnavailableError(`bubblewrap (bwrap) is not installed; ${INSTALL_BWRAP}`);
  const prlimitFound = findExecutable("prlimit", searchPath);
  if (prlimitFound === undefined) throw new SandboxUnavailableError("prlimit is not installed; it sets the sandbox's rlimits: apt-get install util-linux");
  const bwrap: string = bwrapFound;
  const prlimit: string = prlimitFound;
  const versionText = spawnSync(bwrap, ["--version"], { encoding: "utf8", timeout: 5000 }).stdout ?? "";
  const version = parseBwrapVersion(versionText);
  if (version === undefined || (version[0] === 0 && version[1] < 8)) {
    throw new SandboxUnavailableError(`bubblewrap ${versionText.trim() || "(unknown version)"} is too old: 0.8.0 or newer is needed (--size, --disable-userns); ${INSTALL_BWRAP}`);
  }
  try {
    // The filter knows x86_64 and aarch64 syscall numbers; anywhere else, refuse rather than run unfiltered.
    hostSeccompArchitecture();
  } catch (error) {
    throw new SandboxUnavailableError((error as Error).message);
  }

  const runnerUid = process.getuid?.() ?? 0;
  // Root that can actually become the sandbox uid: not, say, root of a user namespace that maps only itself.
  const runnerIsRoot = runnerUid === 0 && uidIsMapped(options.hostUid ?? SANDBOX_UID);
  const hostUid = runnerIsRoot ? (options.hostUid ?? SANDBOX_UID) : runnerUid;
  const hostGid = runnerIsRoot ? (options.hostGid ?? SANDBOX_UID) : (process.getgid?.() ?? runnerUid);

  const runtimeParent = options.runtimeDirectory ?? (runnerIsRoot ? "/run/perimeter-sandbox" : join(tmpdir(), `perimeter-sandbox-${runnerUid}`));
  mkdirSync(runtimeParent, { recursive: true, mode: 0o755 });
  const runtimeDirectory = mkdtempSync(join(runtimeParent, "backend-"));
  // mkdtemp makes 0700; the sandbox's host uid has to traverse it to reach the bound files.
  chmodSync(runtimeDirectory, 0o755);
  writeRuntimeFiles(runtimeDirectory);
  const rootLayout = rootArguments(sharedEtcDirectory(runtimeParent));
  const leakedDescriptors = inheritableDescriptors();
  const devNull = openSync("/dev/null", "r+");

  const cgroupSupport: CgroupSupport =
    options.cgroups === "off"
      ? { places: [], unavailable: { memory: "cgroups turned off", pids: "cgroups turned off", cpu: "cgroups turned off" } }
      : discoverCgroups({ mountIfMissing: true, runtimeDirectory: runtimeParent, parent: options.cgroupParent });
  const cgroupControllers = cgroupSupport.places.map((place) => place.controller);
  if (!cgroupControllers.includes("memory") || !cgroupControllers.includes("pids")) {
    logger.warn({ event: "cgroup-missing", unavailable: cgroupSupport.unavailable }, "sandbox tasks run without a memory or pids cgroup: memory is bounded by RLIMIT_AS only, processes by RLIMIT_NPROC");
  }

  const defaults = options.defaults;
  const policy: TaskPolicy = {
    defaults,
    ceiling: options.ceiling ?? defaults,
    maxFiles: options.maxFiles ?? 1000,
    networkModes: options.egressProxy === undefined ? ["none"] : ["none", "proxy"],
  };

  const running = new Set<{ stop: (reason: SandboxEndReason) => void; done: Promise<unknown> }>();
  let closed = false;

  function rlimitsFor(limits: SandboxLimits, haveMemoryCgroup: boolean, runsForwarder: boolean): Record<string, number> {
    // Address space: V8 and the JVM reserve far more than they use (Node needs ~2 GiB just to start), so when the
    // memory cgroup does the real bounding, RLIMIT_AS is only a backstop; without it, RLIMIT_AS is the bound.
    // The proxy forwarder is a Node process: it cannot start below ~2 GiB of address space.
    const addressSpace = haveMemoryCgroup ? Math.max(8 * 1024 ** 3, limits.memoryBytes * 4) : runsForwarder ? Math.max(4 * 1024 ** 3, limits.memoryBytes) : limits.memoryBytes;
    // RLIMIT_NPROC, as set here, bounds every process of the sandbox uid on the host (all tasks together): a host-wide
    // ceiling. Without a pids cgroup the task's own bound is set inside the sandbox (perTaskProcessLimit).
    const processes = Math.max(4096, limits.pids * 16);
    return {
      as: addressSpace,
      cpu: limits.cpuSeconds,
      nproc: processes,
      fsize: limits.diskBytes,
      nofile: limits.openFiles,
      core: 0,
    };
  }

  /** bwrap's options (read from `--args FD`, so environment values stay out of the process list) and the command. */
  function bwrapArguments(task: CheckedTask, fds: { seccomp: number; status: number; files: number[] }, forwarder: boolean, proxyUrl: string | undefined, perTaskProcessLimit: boolean): { options: string[]; argv: string[] } {
    const limits = task.limits;
    const args: string[] = [
      "--unshare-all",
      "--unshare-user",
      "--uid", String(SANDBOX_UID),
      "--gid", String(SANDBOX_UID),
      "--disable-userns",
      "--die-with-parent",
      "--new-session",
      "--cap-drop", "ALL",
      "--hostname", "sandbox",
      "--json-status-fd", String(fds.status),
      "--clearenv",
    ];
    const environment: Record<string, string> = {
      PATH: "/usr/local/bin:/usr/bin:/bin",
      HOME: WORKSPACE,
      TMPDIR: "/tmp",
      LANG: "C.UTF-8",
      USER: "sandbox",
      LOGNAME: "sandbox",
      SHELL: "/bin/sh",
      ...task.env,
    };
    if (proxyUrl !== undefined) {
      for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"]) environment[name] = proxyUrl;
      environment.NO_PROXY = "";
    }
    for (const [name, value] of Object.entries(environment)) args.push("--setenv", name, value);
    args.push(...rootLayout);
    args.push("--proc", "/proc", "--dev", "/dev");
    args.push("--perms", "1777", "--size", String(Math.min(limits.tmpBytes, 64 * 1024 ** 2)), "--tmpfs", "/dev/shm");
    args.push("--perms", "1777", "--size", String(limits.tmpBytes), "--tmpfs", "/tmp");
    args.push("--perms", "0755", "--size", String(limits.diskBytes), "--tmpfs", WORKSPACE);
    const directories = new Set<string>();
    task.files.forEach((file, index) => {
      const parts = file.path.split("/");
      for (let depth = 1; depth < parts.length; depth++) {
        const directory = parts.slice(0, depth).join("/");
        if (!directories.has(directory)) {
          directories.add(directory);
          args.push("--dir", `${WORKSPACE}/${directory}`);
        }
      }
      args.push("--perms", (file.mode & 0o777).toString(8).padStart(4, "0"), "--file", String(fds.files[index]), `${WORKSPACE}/${file.path}`);
    });
    if (forwarder) {
      args.push("--dir", "/.perimeter");
      args.push("--ro-bind", process.execPath, "/.perimeter/node");
      args.push("--ro-bind", join(runtimeDirectory, "forwarder.mjs"), "/.perimeter/forwarder.mjs");
      args.push("--ro-bind", (options.egressProxy as EgressProxyAttachment).socketPath, "/.perimeter/egress.sock");
    }
    args.push("--chdir", WORKSPACE);
    args.push("--remount-ro", "/dev", "--remount-ro", "/");
    args.push("--seccomp", String(fds.seccomp));
    // bwrap reads only options from --args; the command has to be on its real command line.
    // Without a pids cgroup: the kernel checks RLIMIT_NPROC first against the processes of this uid in the task's
    // own user namespace, so lowering it inside the sandbox bounds this task alone (the outer value stays the
    // host-wide ceiling for the namespaces' parents).
    let argv = perTaskProcessLimit ? ["/usr/bin/prlimit", `--nproc=${limits.pids}`, "--", ...task.argv] : [...task.argv];
    if (forwarder) argv = ["/.perimeter/node", "/.perimeter/forwarder.mjs", "/.perimeter/egress.sock", String(FORWARDER_PORT), ...argv];
    if (task.collect.length > 0) argv = ["/bin/sh", "-c", COLLECT_SCRIPT, "perimeter-collect", String(task.collect.length), ...task.collect, ...argv];
    return { options: args, argv };
  }

  async function runChecked(task: CheckedTask, runOptions: RunOptions): Promise<SandboxResult> {
    const started = performance.now();
    const id = randomBytes(6).toString("hex");
    const limits = task.limits;
    // bwrap's monitor and the sandbox's init count towards the pids limit: two more than the task's own.
    const cgroup: TaskCgroup | null = createTaskCgroup(cgroupSupport, `task-${id}`, { memoryBytes: limits.memoryBytes, pids: limits.pids + 2, cpu: limits.cpu });
    const applied = cgroup?.controllers ?? [];
    const proxyMode = task.network.mode === "proxy";
    const rlimits = rlimitsFor(limits, applied.includes("memory"), proxyMode);
    const missing = (["memory", "pids", "cpu"] as const).filter((controller) => !applied.includes(controller)).map((controller) => `cgroup ${controller}: ${cgroupSupport.unavailable[controller] ?? "unavailable"}`);
    if (proxyMode && !applied.includes("memory") && (rlimits.as as number) > limits.memoryBytes) {
      missing.push(`memory ${limits.memoryBytes}: without a memory cgroup, proxy mode (its forwarder is a Node process) is bounded by a ${rlimits.as}-byte address space instead`);
    }

    let removeProxyClient: (() => void) | undefined;
    let proxyUrl: string | undefined;
    if (proxyMode) {
      // A client of its own per task: the token (the password of the proxy URL's Basic credentials) selects this
      // task's allowlist, and is revoked when the task ends.
      const proxy = options.egressProxy as EgressProxyAttachment;
      const name = `sandbox-${id}`;
      const token = randomBytes(24).toString("base64url");
      try {
        const client = proxy.addClient({ name, token, allow: task.network.mode === "proxy" ? task.network.allow : [] });
        removeProxyClient = () => client.remove();
      } catch (error) {
        await cgroup?.remove();
        throw new SandboxTaskError(`the network allowlist was refused: ${(error as Error).message}`);
      }
      proxyUrl = `http://${name}:${token}@127.0.0.1:${FORWARDER_PORT}`;
    }

    // fd layout: 0-2 stdio, 3 returned files, 4 bwrap arguments, 5 seccomp program, 6 bwrap status, 7+ input files.
    const seccompFd = openSync(join(runtimeDirectory, proxyMode ? "seccomp-proxy.bpf" : "seccomp-none.bpf"), "r");
    const fileFds = task.files.map((_file, index) => 7 + index);
    const { options: bwrapOptions, argv } = bwrapArguments(task, { seccomp: 5, status: 6, files: fileFds }, proxyMode, proxyUrl, !applied.includes("pids"));
    // RLIMIT_CPU: the hard limit one second past the soft one, so the program sees SIGXCPU (a reason we can name)
    // before the kernel's SIGKILL.
    const prlimitArguments = Object.entries(rlimits).map(([name, value]) => (name === "cpu" ? `--cpu=${value}:${value + 1}` : `--${name}=${value}`));
    const bwrapCommand = [prlimit, ...prlimitArguments, "--", bwrap, "--args", "4", "--", ...argv];
    const command = bwrapCommand;

    let child: ChildProcess;
    try {
      const stdio: StdioOptions = [task.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe", task.collect.length > 0 ? "pipe" : "ignore", "pipe", seccompFd, "pipe", ...task.files.map(() => "pipe" as const)];
      for (const fd of leakedDescriptors) {
        while (stdio.length < fd) stdio.push("ignore");
        if (stdio.length === fd) stdio.push(devNull);
      }
      child = spawn(command[0] as string, command.slice(1), {
        stdio,
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
        cwd: "/",
        detached: true,
        ...(runnerIsRoot ? { uid: hostUid, gid: hostGid } : {}),
      });
    } catch (error) {
      closeSync(seccompFd);
      await cgroup?.remove();
      removeProxyClient?.();
      throw new SandboxUnavailableError(`cannot start the sandbox: ${(error as Error).message}`);
    }
    closeSync(seccompFd);

    // Into the task's cgroups before anything can fork: bwrap's first act is to read its options from fd 4, which
    // nothing has written yet, so at this moment the process is prlimit or a blocked bwrap with no children. Any
    // failure here ends the task before it runs: it must never run without the limits it was promised.
    if (cgroup !== null && child.pid !== undefined) {
      try {
        for (const file of cgroup.procsFiles) writeFileSync(file, String(child.pid));
      } catch (error) {
        killProcessGroup(child.pid);
        await new Promise((resolve) => child.once("close", resolve));
        await cgroup.remove();
        removeProxyClient?.();
        throw new SandboxUnavailableError(`cannot move the task into its cgroup (${(error as Error).message}); the sandbox did not run`);
      }
    }

    const argumentData = Buffer.from(bwrapOptions.map((argument) => `${argument}\u0000`).join(""), "utf8");
    const pipes = child.stdio as unknown as (Readable | Writable | null)[];
    endStream(pipes[4] as Writable, argumentData);
    task.files.forEach((file, index) => endStream(pipes[7 + index] as Writable, file.content));
    if (task.stdin !== undefined) endStream(child.stdin, task.stdin);

    let reason: SandboxEndReason | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let statusText = "";
    (pipes[6] as Readable | null)?.on("data", (chunk: Buffer) => {
      if (statusText.length < 4096) statusText += chunk.toString("utf8");
    });
    (pipes[6] as Readable | null)?.on("error", () => {});

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
    const collectChunks: Buffer[] = [];
    let collectBytes = 0;
    const collectLimit = limits.diskBytes + Math.max(1024 * 1024, limits.diskBytes / 8);
    let collectOverflow = false;
    (pipes[3] as Readable | null)?.on("data", (chunk: Buffer) => {
      collectBytes += chunk.length;
      if (collectBytes <= collectLimit) collectChunks.push(chunk);
      else collectOverflow = true;
    });
    (pipes[3] as Readable | null)?.on("error", () => {});

    const timeout = setTimeout(() => stop("timeout", limits.graceMs), limits.timeoutMs);
    const onAbort = () => stop("aborted", limits.graceMs);
    runOptions.signal?.addEventListener("abort", onAbort, { once: true });
    if (runOptions.signal?.aborted === true) onAbort();

    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
      child.once("error", (error) => resolve({ code: null, signal: null, spawnError: error }));
      child.once("close", (code, signal) => resolve({ code, signal }));
    });
    const entry = { stop: (why: SandboxEndReason) => stop(why, limits.graceMs), done: exit };
    running.add(entry);
    let outcome: Awaited<typeof exit>;
    try {
      outcome = await exit;
    } finally {
      running.delete(entry);
      clearTimeout(timeout);
      if (killTimer !== undefined) clearTimeout(killTimer);
      runOptions.signal?.removeEventListener("abort", onAbort);
    }

    // The monitor is gone; anything still in the cgroup (there should be nothing: the pid namespace died with its
    // init) is killed and waited for before the cgroup is removed.
    const stats = cgroup?.stats();
    const removed = cgroup === null ? true : await cgroup.remove();
    if (!removed) logger.error({ event: "cgroup-leftover", task: id }, "processes of a finished sandbox task could not be removed from its cgroup");
    removeProxyClient?.();

    if (outcome.spawnError !== undefined) throw new SandboxUnavailableError(`cannot start the sandbox: ${outcome.spawnError.message}`);
    const status = parseJsonStatus(statusText);
    const stderrText = Buffer.concat(stderr.chunks).toString("utf8");
    if (status.childPid === undefined && reason === undefined) {
      // bwrap (or the launcher) failed before the program ran: a host problem, not the task's result.
      throw new SandboxUnavailableError(explainBwrapFailure(stderrText));
    }

    let exitCode: number | null = status.exitCode ?? outcome.code ?? (outcome.signal !== null ? 128 + 9 : null);
    let stderrData = Buffer.concat(stderr.chunks);
    const execFailure = /^bwrap: execvp (.*): (No such file or directory|Permission denied)\n?$/m.exec(stderrText);
    if (execFailure !== null && exitCode === 1) {
      // Same status a shell gives: 127 not found, 126 not executable.
      exitCode = execFailure[2] === "Permission denied" ? 126 : 127;
      stderrData = Buffer.from(stderrText.replace(execFailure[0], `sandbox: ${execFailure[1]}: ${execFailure[2] === "Permission denied" ? "permission denied" : "command not found"}\n`), "utf8");
    }
    const signal = signalOfStatus(exitCode);
    const limitsHit: string[] = [];
    if (stats !== undefined) {
      if (stats.oomKills > 0 || stats.memoryLimitHits > 0) limitsHit.push("memory");
      if (stats.pidsLimitHits > 0) limitsHit.push("pids");
    }
    if (stdout.truncated || stderr.truncated) limitsHit.push("output");
    if (signal === "SIGXCPU") limitsHit.push("cpu");
    if (signal === "SIGXFSZ") limitsHit.push("file-size");
    let finalReason: SandboxEndReason;
    if (reason !== undefined) finalReason = reason;
    else if (stats !== undefined && stats.oomKills > 0 && signal === "SIGKILL") finalReason = "memory";
    else if (signal === "SIGXCPU") finalReason = "cpu-limit";
    else if (signal === "SIGXFSZ") finalReason = "file-size-limit";
    else if (signal !== null) finalReason = "signal";
    else finalReason = "exit";

    const files: ReturnedFile[] = [];
    const filesMissing: string[] = [];
    if (task.collect.length > 0) {
      const archive = readTar(Buffer.concat(collectChunks), { maxFiles: policy.maxFiles, maxBytes: limits.diskBytes });
      files.push(...archive.files);
      filesMissing.push(...archive.skipped);
      if (collectOverflow) filesMissing.push(`(returned files passed ${collectLimit} bytes and were cut)`);
      for (const path of task.collect) {
        if (path === ".") continue;
        if (!files.some((file) => file.path === path || file.path.startsWith(`${path}/`))) filesMissing.push(path);
      }
    }

    const appliedLimits: AppliedLimits = {
      backend: "bubblewrap",
      limits,
      rlimits,
      cgroup: cgroup === null ? null : { version: cgroup.version, controllers: cgroup.controllers },
      network: task.network.mode,
      seccomp: true,
      missing: [...missing, ...task.capped.map((entry) => `requested ${entry}`)],
    };
    return {
      exitCode,
      signal,
      reason: finalReason,
      stdout: { data: Buffer.concat(stdout.chunks), bytes: stdout.bytes, truncated: stdout.truncated },
      stderr: { data: stderrData, bytes: stderr.bytes, truncated: stderr.truncated },
      durationMs: performance.now() - started,
      files,
      filesMissing,
      limits: appliedLimits,
      limitsHit,
      ...(stats?.peakMemoryBytes !== undefined ? { peakMemoryBytes: stats.peakMemoryBytes } : {}),
    };
  }

  const backend: BubblewrapBackend = {
    name: "bubblewrap",
    async run(task: SandboxTask, runOptions: RunOptions = {}) {
      if (closed) throw new SandboxUnavailableError("the sandbox backend is closed");
      const checked = checkTask(task, policy);
      if (!checked.ok) throw new SandboxTaskError(checked.reason);
      return runChecked(checked.task, runOptions);
    },
    async close() {
      closed = true;
      const pending = [...running];
      for (const entry of pending) entry.stop("aborted");
      await Promise.allSettled(pending.map((entry) => entry.done));
      rmSync(runtimeDirectory, { recursive: true, force: true });
      closeSync(devNull);
    },
    describe() {
      return {
        bwrap,
        bwrapVersion: versionText.trim(),
        prlimit,
        hostUid,
        cgroup: { controllers: cgroupControllers, unavailable: cgroupSupport.unavailable },
        runtimeDirectory,
      };
    },
  };

  // Probe once with every flag we use: a host without user namespaces (or with an old bwrap) fails here, at
  // startup, with instructions, instead of on the first task.
  const probe = await backend.run({ argv: ["/bin/true"], limits: { timeoutMs: Math.min(defaults.timeoutMs, 20000) } }).catch(async (error: unknown) => {
    await backend.close();
    throw error instanceof SandboxUnavailableError ? error : new SandboxUnavailableError(`the sandbox self-test failed: ${(error as Error).message}`);
  });
  if (probe.exitCode !== 0) {
    await backend.close();
    throw new SandboxUnavailableError(`the sandbox self-test (/bin/true) ended with ${probe.reason} ${probe.exitCode}: ${probe.stderr.data.toString("utf8").trim()}`);
  }
  return backend;
}
