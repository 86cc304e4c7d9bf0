// What a sandboxed task is and what comes back, shared by both backends, plus the pure checks a task passes before
// any process starts. A task that fails a check is refused with a reason that says what to change; nothing is
// silently clamped except limits, which are capped at the operator's ceiling (and the result says what applied).
import { PerimeterError } from "../shared/index.ts";

/** Everything a task may be bounded by. Sizes in bytes, times in milliseconds, cpu in cores. */
export interface SandboxLimits {
  /** Memory of the whole task (cgroup). The workspace and /tmp tmpfs pages count towards it too. */
  readonly memoryBytes: number;
  /** Processes and threads of the task (cgroup pids; RLIMIT_NPROC when no cgroup is available). */
  readonly pids: number;
  /** Size of the workspace tmpfs; also the largest file (RLIMIT_FSIZE). */
  readonly diskBytes: number;
  /** Size of the /tmp tmpfs. */
  readonly tmpBytes: number;
  /** Wall-clock limit; the whole process tree is killed when it passes. */
  readonly timeoutMs: number;
  /** Cores (cgroup cpu quota where the cpu controller is available). */
  readonly cpu: number;
  /** CPU seconds per process (RLIMIT_CPU). */
  readonly cpuSeconds: number;
  /** Bytes kept of each of stdout and stderr; more output ends the task ("output-limit"). */
  readonly outputBytes: number;
  /** RLIMIT_NOFILE. */
  readonly openFiles: number;
  /** Time between SIGTERM and SIGKILL when a task is stopped. */
  readonly graceMs: number;
}

export interface SandboxFile {
  /** Relative to the workspace; no `..`, no leading `/`. */
  readonly path: string;
  readonly content: string | Uint8Array;
  /** Permission bits (0o644 by default; 0o755 for scripts). setuid/setgid/sticky bits are refused. */
  readonly mode?: number;
}

/** A host the task may reach through the egress proxy: "pypi.org", "*.github.com:443", or a rule object. */
export type SandboxHostRule =
  | string
  | { readonly host: string; readonly ports?: readonly number[]; readonly allowCidr?: readonly string[]; readonly requireSni?: boolean };

export type SandboxNetwork = { readonly mode: "none" } | { readonly mode: "proxy"; readonly allow: readonly SandboxHostRule[] };

export interface SandboxTask {
  /** The program and its arguments, run in /workspace with PATH=/usr/local/bin:/usr/bin:/bin. */
  readonly argv?: readonly string[];
  /** Alternatively a script for /bin/sh (exactly one of argv and script). */
  readonly script?: string;
  readonly stdin?: string | Uint8Array;
  readonly files?: readonly SandboxFile[];
  /** The task's whole environment besides the defaults (PATH, HOME, TMPDIR, LANG...): nothing else is inherited. */
  readonly env?: Readonly<Record<string, string>>;
  readonly limits?: Partial<SandboxLimits>;
  readonly network?: SandboxNetwork;
  /** Workspace paths (files or directories) to return when the task ends; "." returns the whole workspace. */
  readonly collect?: readonly string[];
  /** Who asked, for logs and the proxy client name. */
  readonly caller?: string;
}

export type SandboxEndReason =
  | "exit" // the program exited on its own
  | "signal" // it died of a signal it did not get from us
  | "timeout" // the wall-clock limit passed
  | "memory" // the memory cgroup killed it
  | "output-limit" // stdout or stderr passed outputBytes
  | "cpu-limit" // RLIMIT_CPU (SIGXCPU)
  | "file-size-limit" // RLIMIT_FSIZE (SIGXFSZ)
  | "aborted"; // the caller went away (AbortSignal)

export interface SandboxOutput {
  /** The first `outputBytes` bytes. */
  readonly data: Buffer;
  /** Bytes the program wrote, including those not kept (a lower bound when the task was killed). */
  readonly bytes: number;
  readonly truncated: boolean;
}

export interface ReturnedFile {
  readonly path: string;
  readonly content: Buffer;
  readonly mode: number;
}

export interface AppliedLimits {
  readonly backend: "bubblewrap" | "kubernetes";
  readonly limits: SandboxLimits;
  /** rlimits set with prlimit (bubblewrap). */
  readonly rlimits?: Readonly<Record<string, number>>;
  /** cgroup controllers applied to this task, with the hierarchy version each came from. */
  readonly cgroup: { readonly version: 1 | 2 | "mixed"; readonly controllers: readonly string[] } | null;
  readonly network: "none" | "proxy";
  readonly seccomp: boolean;
  /** Limits that could not be applied on this host and why (e.g. no memory cgroup). */
  readonly missing: readonly string[];
}

export interface SandboxResult {
  /** The exit status as a shell reports it (128+N for signal N); null when there was none (Kubernetes timeout). */
  readonly exitCode: number | null;
  /** Signal name when the status says the program died of a signal. */
  readonly signal: string | null;
  readonly reason: SandboxEndReason;
  readonly stdout: SandboxOutput;
  readonly stderr: SandboxOutput;
  readonly durationMs: number;
  readonly files: readonly ReturnedFile[];
  /** Requested paths that did not come back (missing, not a regular file, or over the size bound). */
  readonly filesMissing: readonly string[];
  readonly limits: AppliedLimits;
  /** Limits the task ran into, even when it survived them (a fork refused at the pids limit, ...). */
  readonly limitsHit: readonly string[];
  readonly peakMemoryBytes?: number;
}

export interface RunOptions {
  /** Aborting stops the task (SIGTERM, then SIGKILL after the grace) and removes everything it created. */
  readonly signal?: AbortSignal;
}

/** One interface, two backends. */
export interface SandboxBackend {
  readonly name: "bubblewrap" | "kubernetes";
  run(task: SandboxTask, options?: RunOptions): Promise<SandboxResult>;
  close(): Promise<void>;
}

/** A task the checks refused; the message says what to change. Callers map it to a usage error / tool error. */
export class SandboxTaskError extends PerimeterError {
  constructor(message: string) {
    super("bad_request", message);
  }
}

/** The host cannot run sandboxes (missing bubblewrap, user namespaces off, ...); the message says how to fix it. */
export class SandboxUnavailableError extends PerimeterError {
  constructor(message: string) {
    super("setup", message);
  }
}

export interface TaskPolicy {
  /** Limits used where the task names none. */
  readonly defaults: SandboxLimits;
  /** The most a task may ask for. */
  readonly ceiling: SandboxLimits;
  readonly maxFiles: number;
  /** Network modes this runner offers; "proxy" needs an egress proxy. */
  readonly networkModes: readonly ("none" | "proxy")[];
}

export interface CheckedTask {
  readonly argv: readonly string[];
  readonly stdin: Buffer | undefined;
  readonly files: readonly { path: string; content: Buffer; mode: number }[];
  readonly env: Readonly<Record<string, string>>;
  readonly limits: SandboxLimits;
  readonly network: SandboxNetwork;
  readonly collect: readonly string[];
  readonly caller: string;
  /** Limits the task asked for above the ceiling (capped), for the result. */
  readonly capped: readonly string[];
}

export type TaskCheck = { ok: true; task: CheckedTask } | { ok: false; reason: string };

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_PATH_LENGTH = 1024;
const MAX_ARGUMENT_BYTES = 128 * 1024;

/** Why a workspace-relative path is unacceptable, or undefined when it is fine. Exported for the MCP tools. */
export function workspacePathProblem(path: string): string | undefined {
  if (typeof path !== "string" || path.length === 0) return "a path is empty";
  if (path.length > MAX_PATH_LENGTH) return `path "${path.slice(0, 40)}..." is longer than ${MAX_PATH_LENGTH} characters`;
  // Control characters would break the NUL/newline-separated lists we hand to bwrap and tar.
  if (/[\u0000-\u001f\u007f]/.test(path)) return `path ${JSON.stringify(path)} contains a control character`;
  if (path.startsWith("/")) return `path "${path}" is absolute: give it relative to the workspace`;
  const segments = path.split("/");
  if (segments.some((segment) => segment === "..")) return `path "${path}" leaves the workspace (..)`;
  if (path !== "." && segments.some((segment) => segment === "" || segment === ".")) return `path "${path}" has an empty or "." segment`;
  return undefined;
}

function toBuffer(content: string | Uint8Array): Buffer {
  return typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
}

/** Validates a task against the runner's policy and fills in defaults. Pure: no I/O. */
export function checkTask(task: SandboxTask, policy: TaskPolicy): TaskCheck {
  const hasArgv = task.argv !== undefined;
  const hasScript = task.script !== undefined;
  if (hasArgv === hasScript) return { ok: false, reason: "give exactly one of argv (a program and its arguments) or script (run by /bin/sh)" };
  const argv = hasArgv ? [...(task.argv as readonly string[])] : ["/bin/sh", "-c", task.script as string];
  if (argv.length === 0 || argv[0] === "") return { ok: false, reason: "argv is empty: name the program to run" };
  let argumentBytes = 0;
  for (const argument of argv) {
    if (typeof argument !== "string") return { ok: false, reason: "every argv entry must be a string" };
    if (argument.includes("\u0000")) return { ok: false, reason: "an argument contains a NUL byte" };
    argumentBytes += Buffer.byteLength(argument) + 1;
  }
  if (argumentBytes > MAX_ARGUMENT_BYTES) return { ok: false, reason: `the command line is ${argumentBytes} bytes; the limit is ${MAX_ARGUMENT_BYTES}: put long input in a file or stdin` };

  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(task.env ?? {})) {
    if (!ENV_NAME.test(name)) return { ok: false, reason: `environment variable name "${name}" is not valid (letters, digits, _)` };
    if (typeof value !== "string" || value.includes("\u0000")) return { ok: false, reason: `environment variable ${name} must be a string without NUL bytes` };
    env[name] = value;
  }

  const capped: string[] = [];
  const limits: Record<string, number> = { ...policy.defaults };
  for (const [key, value] of Object.entries(task.limits ?? {}) as [keyof SandboxLimits, number | undefined][]) {
    if (value === undefined) continue;
    if (!(key in policy.defaults)) return { ok: false, reason: `unknown limit "${key}" (known: ${Object.keys(policy.defaults).join(", ")})` };
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) return { ok: false, reason: `limit ${key} must be a positive number` };
    const ceiling = policy.ceiling[key];
    if (value > ceiling) {
      capped.push(`${key} ${value} capped at ${ceiling}`);
      limits[key] = ceiling;
    } else {
      limits[key] = value;
    }
  }

  const files: { path: string; content: Buffer; mode: number }[] = [];
  let fileBytes = 0;
  const seen = new Set<string>();
  for (const file of task.files ?? []) {
    const problem = workspacePathProblem(file.path);
    if (problem !== undefined || file.path === ".") return { ok: false, reason: problem ?? `"." is the workspace itself, not a file` };
    if (seen.has(file.path)) return { ok: false, reason: `file "${file.path}" is given twice` };
    seen.add(file.path);
    const mode = file.mode ?? 0o644;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) return { ok: false, reason: `file "${file.path}": mode must be permission bits between 0 and 0o777 (no setuid, setgid or sticky)` };
    const content = toBuffer(file.content);
    fileBytes += content.length;
    files.push({ path: file.path, content, mode });
  }
  if (files.length > policy.maxFiles) return { ok: false, reason: `${files.length} files given; at most ${policy.maxFiles} per task` };
  // A file that is a prefix directory of another ("a" and "a/b") cannot both exist.
  for (const path of seen) {
    const parts = path.split("/");
    for (let index = 1; index < parts.length; index++) {
      const parent = parts.slice(0, index).join("/");
      if (seen.has(parent)) return { ok: false, reason: `"${parent}" is given as a file but "${path}" needs it to be a directory` };
    }
  }
  const diskBytes = limits.diskBytes as number;
  if (fileBytes > diskBytes) return { ok: false, reason: `the files total ${fileBytes} bytes, more than the workspace's ${diskBytes}: raise the disk limit or send less` };

  const collect: string[] = [];
  for (const path of task.collect ?? []) {
    const problem = workspacePathProblem(path);
    if (problem !== undefined) return { ok: false, reason: problem };
    if (!collect.includes(path)) collect.push(path);
  }

  const network: SandboxNetwork = task.network ?? { mode: "none" };
  if (network.mode !== "none" && network.mode !== "proxy") return { ok: false, reason: `network must be "none" or "proxy"` };
  if (!policy.networkModes.includes(network.mode)) {
    return { ok: false, reason: `network "${network.mode}" is not available here: this runner has no egress proxy (start it with one, or use network "none")` };
  }
  if (network.mode === "proxy" && (!Array.isArray(network.allow) || network.allow.length === 0)) {
    return { ok: false, reason: `network "proxy" needs an allowlist of hosts (e.g. ["pypi.org"])` };
  }

  const stdin = task.stdin === undefined ? undefined : toBuffer(task.stdin);
  const caller = typeof task.caller === "string" && task.caller !== "" ? task.caller : "local";
  return { ok: true, task: { argv, stdin, files, env, limits: limits as unknown as SandboxLimits, network, collect, caller, capped } };
}

// ---------------------------------------------------------------------------------------------------------------
// Quantities

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** "512Mi", "1Gi", "256M" (Kubernetes meaning: M = 10^6, Mi = 2^20) or plain bytes. Throws a message that says how to write it. */
export function parseByteQuantity(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(k|K|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(text.trim());
  if (match === null) throw new SandboxTaskError(`${what}: "${text}" is not a size; write e.g. 512Mi (2^20 bytes), 512M (10^6 bytes) or a number of bytes`);
  const value = Math.floor(Number(match[1]) * (BYTE_UNITS[match[2] ?? ""] as number));
  if (!(value > 0)) throw new SandboxTaskError(`${what}: "${text}" must be more than zero`);
  return value;
}

/** "1", "0.5", "500m" → cores. */
export function parseCpuQuantity(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(m)?$/.exec(text.trim());
  if (match === null) throw new SandboxTaskError(`${what}: "${text}" is not a CPU amount; write e.g. 1, 0.5 or 500m`);
  const value = Number(match[1]) / (match[2] === "m" ? 1000 : 1);
  if (!(value > 0)) throw new SandboxTaskError(`${what}: "${text}" must be more than zero`);
  return value;
}

/** Parses a duration in seconds ("30", "1.5", "2m", "500ms"). */
export function parseSeconds(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) throw new SandboxTaskError(`${what}: "${text}" is not a duration; write seconds (30) or 500ms, 2m, 1h`);
  const factor = { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2] ?? "s"] as number;
  const value = Number(match[1]) * factor;
  if (!(value > 0)) throw new SandboxTaskError(`${what}: "${text}" must be more than zero`);
  return value;
}

export interface SandboxLimitsConfig {
  readonly cpu: string;
  readonly memory: string;
  readonly pids: number;
  readonly disk: string;
  readonly timeoutSeconds: number;
}

/** Limits from `sandbox.limits` in perimeter.yaml; the values no config names get their documented defaults. */
export function limitsFromConfig(config: SandboxLimitsConfig): SandboxLimits {
  const timeoutMs = config.timeoutSeconds * 1000;
  const cpu = parseCpuQuantity(config.cpu, "sandbox.limits.cpu");
  const diskBytes = parseByteQuantity(config.disk, "sandbox.limits.disk");
  return {
    memoryBytes: parseByteQuantity(config.memory, "sandbox.limits.memory"),
    pids: config.pids,
    diskBytes,
    // /tmp is scratch (pip caches, tempfiles): a quarter of the disk budget, at least 16 MiB, at most 256 MiB.
    tmpBytes: Math.max(16 * 1024 ** 2, Math.min(256 * 1024 ** 2, Math.floor(diskBytes / 4))),
    timeoutMs,
    cpu,
    // A process may use its cores for the whole wall-clock budget, and no more.
    cpuSeconds: Math.max(1, Math.ceil((timeoutMs / 1000) * Math.max(1, cpu))),
    outputBytes: 1024 * 1024,
    openFiles: 1024,
    graceMs: 2000,
  };
}

/** Signal numbers (Linux, x86_64 and aarch64 agree) to names, for exit statuses above 128. */
const SIGNAL_NAMES: Record<number, string> = {
  1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
  10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
  18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
  26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
};

/** The signal a shell-style status (128+N) stands for, if any. */
export function signalOfStatus(status: number | null): string | null {
  if (status === null || status <= 128 || status > 128 + 64) return null;
  return SIGNAL_NAMES[status - 128] ?? `SIG${status - 128}`;
}
