// The bubblewrap backend's host preparation, done once per backend: find bwrap and prlimit and check bwrap's
// version and the syscall architecture, decide which host uid the sandboxes run as, write the runtime files (seccomp
// programs, the proxy forwarder) and the shared /etc, list the descriptors a task must not inherit, find the
// cgroup controllers. The result is the backend's one typed state (BubblewrapState) every per-task stage reads.
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Logger } from "../shared/index.ts";
import { findExecutable, silentLogger } from "../shared/index.ts";
import { discoverCgroups } from "./cgroups.ts";
import type { CgroupSupport } from "./cgroups.ts";
import { FORWARDER_SOURCE } from "./forwarder.ts";
import { SANDBOX_UID, WORKSPACE } from "./bubblewrap-plan.ts";
import type { MountLayout } from "./bubblewrap-plan.ts";
import { buildSeccompProgram, hostSeccompArchitecture, seccompProgramBytes } from "./seccomp.ts";
import { SandboxUnavailableError } from "./task.ts";
import type { SandboxEndReason, SandboxHostRule, SandboxLimits, TaskPolicy } from "./task.ts";

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

/** A task in progress, as close() sees it. */
export interface RunningTask {
  stop(reason: SandboxEndReason): void;
  readonly done: Promise<unknown>;
}

/** Everything a bubblewrap backend holds: fixed at startup except the running tasks and the closed flag. */
export interface BubblewrapState {
  readonly logger: Logger;
  readonly bwrap: string;
  readonly bwrapVersion: string;
  readonly prlimit: string;
  /** Root that can become the sandbox uid: tasks then run as hostUid/hostGid instead of as the runner. */
  readonly runnerIsRoot: boolean;
  readonly hostUid: number;
  readonly hostGid: number;
  readonly layout: MountLayout;
  /** Descriptors the runner inherited without close-on-exec: each is /dev/null in every task. */
  readonly leakedDescriptors: readonly number[];
  readonly devNull: number;
  readonly cgroupSupport: CgroupSupport;
  readonly policy: TaskPolicy;
  readonly egressProxy: EgressProxyAttachment | undefined;
  readonly running: Set<RunningTask>;
  closed: boolean;
}

const INSTALL_BWRAP = "install it: apt-get install bubblewrap (Debian/Ubuntu), dnf install bubblewrap (Fedora), apk add bubblewrap (Alpine)";
const DEFAULT_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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

export function parseBwrapVersion(text: string): [number, number, number] | undefined {
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
export function uidIsMapped(uid: number, uidMap?: string): boolean {
  try {
    return (uidMap ?? readFileSync("/proc/self/uid_map", "utf8"))
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

/** bwrap and prlimit on the search path, a bwrap new enough, and an architecture the seccomp filter knows. */
function findTools(searchPath: string): { bwrap: string; bwrapVersion: string; prlimit: string } {
  const bwrap = findExecutable("bwrap", searchPath);
  if (bwrap === undefined) throw new SandboxUnavailableError(`bubblewrap (bwrap) is not installed; ${INSTALL_BWRAP}`);
  const prlimit = findExecutable("prlimit", searchPath);
  if (prlimit === undefined) throw new SandboxUnavailableError("prlimit is not installed; it sets the sandbox's rlimits: apt-get install util-linux");
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
  return { bwrap, bwrapVersion: versionText.trim(), prlimit };
}

function findCgroups(options: BubblewrapOptions, runtimeParent: string, logger: Logger): CgroupSupport {
  const support: CgroupSupport =
    options.cgroups === "off"
      ? { places: [], unavailable: { memory: "cgroups turned off", pids: "cgroups turned off", cpu: "cgroups turned off" } }
      : discoverCgroups({ mountIfMissing: true, runtimeDirectory: runtimeParent, parent: options.cgroupParent });
  const controllers = support.places.map((place) => place.controller);
  if (!controllers.includes("memory") || !controllers.includes("pids")) {
    logger.warn({ event: "cgroup-missing", unavailable: support.unavailable }, "sandbox tasks run without a memory or pids cgroup: memory is bounded by RLIMIT_AS only, processes by RLIMIT_NPROC");
  }
  return support;
}

/** Prepares the host for a backend; throws SandboxUnavailableError saying what to install or enable. */
export function prepareHost(options: BubblewrapOptions): BubblewrapState {
  const logger = options.logger ?? silentLogger();
  const tools = findTools(options.searchPath ?? DEFAULT_SEARCH_PATH);
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
  const root = rootArguments(sharedEtcDirectory(runtimeParent));
  const leakedDescriptors = inheritableDescriptors();
  const devNull = openSync("/dev/null", "r+");
  const cgroupSupport = findCgroups(options, runtimeParent, logger);
  const defaults = options.defaults;
  return {
    logger,
    ...tools,
    runnerIsRoot,
    hostUid,
    hostGid,
    layout: { root, runtimeDirectory, nodeBinary: process.execPath },
    leakedDescriptors,
    devNull,
    cgroupSupport,
    policy: {
      defaults,
      ceiling: options.ceiling ?? defaults,
      maxFiles: options.maxFiles ?? 1000,
      networkModes: options.egressProxy === undefined ? ["none"] : ["none", "proxy"],
    },
    egressProxy: options.egressProxy,
    running: new Set(),
    closed: false,
  };
}
