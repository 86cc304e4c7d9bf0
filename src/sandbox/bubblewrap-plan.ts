// The bubblewrap backend's plan for one task, as pure functions of the host layout and the checked task: bwrap's
// namespace, mount and environment options, the command line inside the sandbox, and the rlimits prlimit sets. No
// file is touched and no process started here, so the plan can be read and tested alone (bubblewrap-plan.test.ts).
import { join } from "node:path";
import type { CheckedTask, SandboxLimits } from "./task.ts";

/** The uid and gid the task has inside the sandbox (and on the host, when the runner is root): distroless "nonroot". */
export const SANDBOX_UID = 65532;
export const WORKSPACE = "/workspace";
export const FORWARDER_PORT = 3128;

// Run inside the sandbox when files are to be returned: $1 paths, then the command. After the program ends, stop
// whatever it left running (kill -9 -1 spares only init and this shell), then tar the paths to fd 3 (which the
// program never had: it is closed for the command).
export const COLLECT_SCRIPT = [
  "n=$1; shift; k=0",
  '( shift "$n"; exec "$@" ) 3>&-',
  "s=$?",
  "kill -9 -1 2>/dev/null",
  'for a do shift; if [ "$k" -lt "$n" ]; then set -- "$@" "$a"; fi; k=$((k+1)); done',
  'cd /workspace && tar --format=posix --hard-dereference --ignore-failed-read -cf - -- "$@" 2>/dev/null >&3',
  "exec 3>&-",
  'exit "$s"',
].join("\n");

/** What every task's sandbox is built from on this host (made once per backend, see bubblewrap-host.ts). */
export interface MountLayout {
  /** bwrap options of the read-only root: /usr, the merged-/usr links and the shared /etc. */
  readonly root: readonly string[];
  /** Holds forwarder.mjs and the seccomp programs. */
  readonly runtimeDirectory: string;
  /** The Node binary the proxy forwarder runs on (the runner's own). */
  readonly nodeBinary: string;
}

/** Descriptor numbers in the launcher: 0-2 stdio, 3 returned files, 4 bwrap arguments, 5 seccomp, 6 status, 7+ files. */
export interface TaskDescriptors {
  readonly seccomp: number;
  readonly status: number;
  readonly files: readonly number[];
}

/** The egress proxy as one task sees it: the URL with its own token, and the host socket bound into the sandbox. */
export interface TaskProxy {
  readonly url: string;
  readonly socketPath: string;
}

export type Rlimits = Readonly<Record<"as" | "cpu" | "nproc" | "fsize" | "nofile" | "core", number>>;

export function rlimitsFor(limits: SandboxLimits, haveMemoryCgroup: boolean, runsForwarder: boolean): Rlimits {
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

/** prlimit's options. RLIMIT_CPU's hard limit is one second past the soft one, so the program sees SIGXCPU (a reason we can name) before the kernel's SIGKILL. */
export function prlimitArguments(rlimits: Rlimits): string[] {
  return Object.entries(rlimits).map(([name, value]) => (name === "cpu" ? `--cpu=${value}:${value + 1}` : `--${name}=${value}`));
}

/** The limits the result must admit were not applied as asked (a missing cgroup controller, an address-space stand-in). */
export function limitsNotApplied(limits: SandboxLimits, rlimits: Rlimits, applied: readonly string[], unavailable: Readonly<Record<string, string>>, proxyMode: boolean): string[] {
  const missing = (["memory", "pids", "cpu"] as const).filter((controller) => !applied.includes(controller)).map((controller) => `cgroup ${controller}: ${unavailable[controller] ?? "unavailable"}`);
  if (proxyMode && !applied.includes("memory") && rlimits.as > limits.memoryBytes) {
    missing.push(`memory ${limits.memoryBytes}: without a memory cgroup, proxy mode (its forwarder is a Node process) is bounded by a ${rlimits.as}-byte address space instead`);
  }
  return missing;
}

function taskEnvironment(task: CheckedTask, proxy: TaskProxy | undefined): Record<string, string> {
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
  if (proxy !== undefined) {
    for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"]) environment[name] = proxy.url;
    environment.NO_PROXY = "";
  }
  return environment;
}

/** --dir for each parent directory of the input files (once each), then each file from its descriptor. */
function inputFileArguments(task: CheckedTask, fds: readonly number[]): string[] {
  const args: string[] = [];
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
    args.push("--perms", (file.mode & 0o777).toString(8).padStart(4, "0"), "--file", String(fds[index]), `${WORKSPACE}/${file.path}`);
  });
  return args;
}

/** bwrap's options (read from `--args FD`, so environment values stay out of the process list) and the command. */
export function bwrapArguments(layout: MountLayout, task: CheckedTask, fds: TaskDescriptors, proxy: TaskProxy | undefined, perTaskProcessLimit: boolean): { options: string[]; argv: string[] } {
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
  for (const [name, value] of Object.entries(taskEnvironment(task, proxy))) args.push("--setenv", name, value);
  args.push(...layout.root);
  args.push("--proc", "/proc", "--dev", "/dev");
  args.push("--perms", "1777", "--size", String(Math.min(limits.tmpBytes, 64 * 1024 ** 2)), "--tmpfs", "/dev/shm");
  args.push("--perms", "1777", "--size", String(limits.tmpBytes), "--tmpfs", "/tmp");
  args.push("--perms", "0755", "--size", String(limits.diskBytes), "--tmpfs", WORKSPACE);
  args.push(...inputFileArguments(task, fds.files));
  if (proxy !== undefined) {
    args.push("--dir", "/.perimeter");
    args.push("--ro-bind", layout.nodeBinary, "/.perimeter/node");
    args.push("--ro-bind", join(layout.runtimeDirectory, "forwarder.mjs"), "/.perimeter/forwarder.mjs");
    args.push("--ro-bind", proxy.socketPath, "/.perimeter/egress.sock");
  }
  args.push("--chdir", WORKSPACE);
  args.push("--remount-ro", "/dev", "--remount-ro", "/");
  args.push("--seccomp", String(fds.seccomp));
  // bwrap reads only options from --args; the command has to be on its real command line.
  // Without a pids cgroup: the kernel checks RLIMIT_NPROC first against the processes of this uid in the task's
  // own user namespace, so lowering it inside the sandbox bounds this task alone (the outer value stays the
  // host-wide ceiling for the namespaces' parents).
  let argv = perTaskProcessLimit ? ["/usr/bin/prlimit", `--nproc=${limits.pids}`, "--", ...task.argv] : [...task.argv];
  if (proxy !== undefined) argv = ["/.perimeter/node", "/.perimeter/forwarder.mjs", "/.perimeter/egress.sock", String(FORWARDER_PORT), ...argv];
  if (task.collect.length > 0) argv = ["/bin/sh", "-c", COLLECT_SCRIPT, "perimeter-collect", String(task.collect.length), ...task.collect, ...argv];
  return { options: args, argv };
}
