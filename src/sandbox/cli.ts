// `perimeter sandbox exec`: one task from the shell. `perimeter serve sandbox`, the MCP server, is serve-cli.ts
// (re-exported here, where the command table finds both).
import { closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
// Config (zod, yaml: most of a short command's start-up) loads only when a command reads one; see configFrom.
import type { PerimeterConfig } from "../config/index.ts";
import { EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command, CommandIo } from "../cli/index.ts";
import { createLogger } from "../shared/index.ts";
import { createBubblewrapBackend } from "./bubblewrap.ts";
import type { EgressProxyAttachment } from "./bubblewrap.ts";
import type { SandboxEgress } from "./egress.ts";
import { limitsFromConfig, parseByteQuantity, parseCpuQuantity, parseSeconds, SandboxTaskError, SandboxUnavailableError, workspacePathProblem } from "./task.ts";
import type { SandboxBackend, SandboxFile, SandboxHostRule, SandboxLimits, SandboxResult } from "./task.ts";
import { asUsage, configFrom, kubernetesBackend } from "./cli-common.ts";

export { serveSandbox } from "./serve-cli.ts";

const EXEC_HELP = `perimeter sandbox exec — run one command in a disposable sandbox

Usage:
  perimeter sandbox exec [-c perimeter.yaml] [--backend bubblewrap|kubernetes] [--timeout 30] [--memory 512Mi]
                         [--pids 128] [--disk 256Mi] [--cpu 1] [--network none|proxy] [--allow HOST]...
                         [--workspace DIR] [--env NAME[=VALUE]]... [--stdin] -- CMD ARGS...

  --timeout SECONDS   wall-clock limit (also 500ms, 2m); the whole process tree is killed (default 30)
  --memory SIZE       memory of the whole task: 512Mi (2^20 bytes), 512M (10^6 bytes) (default 512Mi)
  --pids N            processes and threads (default 128)
  --disk SIZE         size of the workspace tmpfs, and the largest file (default 256Mi)
  --cpu CORES         CPU quota, e.g. 1 or 500m (default 1)
  --network MODE      none (default): no network at all; proxy: only --allow hosts, through an egress proxy
  --allow HOST        a host the task may reach in proxy mode (implies --network proxy): pypi.org,
                      *.pythonhosted.org, api.example.com:443
  --workspace DIR     copy DIR's files into the sandbox's workspace, and the workspace's files back into DIR when
                      the command ends (regular files only; symbolic links are never followed, nothing is deleted)
  --env NAME[=VALUE]  pass NAME from this environment (or set it to VALUE); nothing else is inherited
  --stdin             read standard input to its end and give it to the command
  --backend NAME      bubblewrap (default) or kubernetes (in a cluster: reads /etc/perimeter/sandbox/job.yaml)

The command's output is printed when it ends, and its exit status is perimeter's: 124 when the timeout struck,
137 when the sandbox killed it (memory, output limit), 130 when interrupted. Perimeter's own errors use 2.
`;

function sandboxLimits(config: PerimeterConfig | undefined, flags: { timeout?: string; memory?: string; pids?: string; disk?: string; cpu?: string }): SandboxLimits {
  // Without -c the command's own defaults apply: a shell command should not run for the service default of 5 min.
  const base = limitsFromConfig(config !== undefined ? config.sandbox.limits : { cpu: "1", memory: "512Mi", pids: 128, disk: "256Mi", timeoutSeconds: 30 });
  const seconds = flags.timeout === undefined ? undefined : parseSeconds(flags.timeout, "--timeout");
  const pids = flags.pids === undefined ? undefined : Number(flags.pids);
  if (pids !== undefined && !(Number.isInteger(pids) && pids >= 8 && pids <= 32768)) throw new UsageError(`--pids "${flags.pids}" must be a whole number from 8 to 32768`);
  const cpu = flags.cpu === undefined ? base.cpu : parseCpuQuantity(flags.cpu, "--cpu");
  const timeoutMs = seconds === undefined ? base.timeoutMs : Math.round(seconds * 1000);
  const diskBytes = flags.disk === undefined ? base.diskBytes : parseByteQuantity(flags.disk, "--disk");
  return {
    ...base,
    timeoutMs,
    cpu,
    cpuSeconds: Math.max(1, Math.ceil((timeoutMs / 1000) * Math.max(1, cpu))),
    memoryBytes: flags.memory === undefined ? base.memoryBytes : parseByteQuantity(flags.memory, "--memory"),
    pids: pids ?? base.pids,
    diskBytes,
    tmpBytes: Math.max(16 * 1024 ** 2, Math.min(256 * 1024 ** 2, Math.floor(diskBytes / 4))),
  };
}

/** Reads a host directory for --workspace: regular files only, never through a symbolic link, within the bounds. */
function readWorkspaceDirectory(directory: string, limits: { maxFiles: number; maxBytes: number }): { files: SandboxFile[]; skipped: string[] } {
  const files: SandboxFile[] = [];
  const skipped: string[] = [];
  let bytes = 0;
  const walk = (relative: string) => {
    const absolute = relative === "" ? directory : join(directory, relative);
    for (const entry of readdirSync(absolute, { withFileTypes: true })) {
      const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const stats = lstatSync(join(directory, path));
        if (files.length >= limits.maxFiles || bytes + stats.size > limits.maxBytes) throw new UsageError(`--workspace ${directory}: more than ${limits.maxFiles} files or ${limits.maxBytes} bytes (raise --disk, or use a smaller directory)`);
        bytes += stats.size;
        files.push({ path, content: readFileSync(join(directory, path)), mode: stats.mode & 0o777 });
      } else skipped.push(`${path} (${entry.isSymbolicLink() ? "symbolic link" : "not a regular file"})`);
    }
  };
  walk("");
  return { files, skipped };
}

/**
 * Writes returned files into the host directory without ever following a symbolic link: every existing component
 * must be a real directory, and the file is opened with O_NOFOLLOW. A sandbox cannot make us write outside DIR.
 */
function writeWorkspaceDirectory(directory: string, files: SandboxResult["files"]): string[] {
  const skipped: string[] = [];
  for (const file of files) {
    if (workspacePathProblem(file.path) !== undefined) {
      skipped.push(file.path);
      continue;
    }
    const parts = file.path.split("/");
    let safe = true;
    for (let depth = 1; depth < parts.length && safe; depth++) {
      const path = join(directory, ...parts.slice(0, depth));
      try {
        if (!lstatSync(path).isDirectory()) safe = false;
      } catch {
        mkdirSync(path, { mode: 0o755 });
      }
    }
    if (!safe) {
      skipped.push(`${file.path} (a parent is not a directory on the host)`);
      continue;
    }
    try {
      const fd = openSync(join(directory, file.path), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, file.mode & 0o777);
      try {
        writeSync(fd, file.content);
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      skipped.push(`${file.path} (${(error as NodeJS.ErrnoException).code === "ELOOP" ? "a symbolic link on the host" : (error as Error).message})`);
    }
  }
  return skipped;
}

function exitStatusFor(result: SandboxResult): number {
  if (result.reason === "timeout") return 124;
  if (result.reason === "aborted") return 130;
  if (result.reason === "memory" || result.reason === "output-limit") return 137;
  return result.exitCode ?? 1;
}

function describeEnd(result: SandboxResult, limits: SandboxLimits): string | undefined {
  switch (result.reason) {
    case "timeout":
      return `timed out after ${limits.timeoutMs / 1000} s; the sandbox was killed`;
    case "memory":
      return `killed: it used more than its ${limits.memoryBytes} bytes of memory (--memory)`;
    case "output-limit":
      return `killed: it wrote more than ${limits.outputBytes} bytes of output`;
    case "cpu-limit":
      return `killed: it used its ${limits.cpuSeconds} CPU seconds`;
    case "file-size-limit":
      return `killed: it wrote a file larger than ${limits.diskBytes} bytes (--disk)`;
    case "aborted":
      return "interrupted; the sandbox was stopped";
    default:
      return undefined;
  }
}

type ExecValues = ReturnType<typeof parseExecArgs>["values"];

function parseExecArgs(args: string[]) {
  return parseCommandArgs(
    "sandbox exec",
    args,
    {
      config: { type: "string", short: "c" },
      backend: { type: "string" },
      timeout: { type: "string" },
      memory: { type: "string" },
      pids: { type: "string" },
      disk: { type: "string" },
      cpu: { type: "string" },
      network: { type: "string" },
      allow: { type: "string", multiple: true },
      workspace: { type: "string" },
      env: { type: "string", multiple: true },
      template: { type: "string" },
      stdin: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
}

/** What `sandbox exec` runs, from its flags (and -c): backend, network, limits, environment. Throws UsageError. */
interface ExecPlan {
  readonly backendName: "bubblewrap" | "kubernetes";
  readonly network: "none" | "proxy";
  readonly allow: SandboxHostRule[];
  readonly limits: SandboxLimits;
  readonly env: Record<string, string>;
}

async function execPlan(values: ExecValues, io: CommandIo): Promise<ExecPlan> {
  // Without -c nothing of the config is used, so none is parsed (or loaded: see configFrom).
  const config = values.config === undefined ? undefined : await configFrom(values.config);
  const backendName = values.backend ?? config?.sandbox.backend ?? "bubblewrap";
  if (backendName !== "bubblewrap" && backendName !== "kubernetes") throw new UsageError(`sandbox exec: --backend must be bubblewrap or kubernetes (not "${backendName}")`);
  const allow: SandboxHostRule[] = [...(values.allow ?? [])];
  const network = values.network ?? (allow.length > 0 ? "proxy" : "none");
  if (network !== "none" && network !== "proxy") throw new UsageError(`sandbox exec: --network must be none or proxy (not "${network}")`);
  if (network === "proxy" && allow.length === 0) throw new UsageError("sandbox exec: --network proxy needs at least one --allow HOST (e.g. --allow pypi.org)");
  if (network === "none" && allow.length > 0) throw new UsageError("sandbox exec: --allow needs --network proxy (or leave --network out)");
  const limits = sandboxLimits(config, values);
  const env: Record<string, string> = {};
  for (const entry of values.env ?? []) {
    const equals = entry.indexOf("=");
    const name = equals < 0 ? entry : entry.slice(0, equals);
    const value = equals < 0 ? io.env[name] : entry.slice(equals + 1);
    if (value === undefined) throw new UsageError(`sandbox exec: --env ${name}: it is not set in this environment (give --env ${name}=VALUE)`);
    env[name] = value;
  }
  return { backendName, network, allow, limits, env };
}

/** --workspace DIR's files and --stdin's bytes, bounded by the disk limit. */
async function execInputs(values: ExecValues, limits: SandboxLimits, io: CommandIo): Promise<{ files: SandboxFile[]; stdin: Buffer | undefined }> {
  let files: SandboxFile[] = [];
  if (values.workspace !== undefined) {
    let stats;
    try {
      stats = lstatSync(values.workspace);
    } catch {
      throw new UsageError(`sandbox exec: --workspace ${values.workspace}: no such directory`);
    }
    if (!stats.isDirectory()) throw new UsageError(`sandbox exec: --workspace ${values.workspace} is not a directory (symbolic links are not followed)`);
    const read = readWorkspaceDirectory(values.workspace, { maxFiles: 1000, maxBytes: limits.diskBytes });
    files = read.files;
    for (const entry of read.skipped) writeLine(io.stderr, `perimeter: sandbox: not copied into the workspace: ${entry}`);
  }
  let stdin: Buffer | undefined;
  if (values.stdin === true) {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of io.stdin) {
      const buffer = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
      total += buffer.length;
      if (total > limits.diskBytes) throw new UsageError(`sandbox exec: standard input is larger than ${limits.diskBytes} bytes (--disk); put it in a --workspace file`);
      chunks.push(buffer);
    }
    stdin = Buffer.concat(chunks);
  }
  return { files, stdin };
}

/** The backend (and, in proxy mode, the in-process egress proxy); undefined after saying why the host cannot sandbox. */
async function execBackend(plan: ExecPlan, template: string | undefined, io: CommandIo): Promise<{ backend: SandboxBackend; egress: SandboxEgress | undefined } | undefined> {
  const logger = createLogger("sandbox", "warn");
  let egress: SandboxEgress | undefined;
  try {
    if (plan.backendName === "kubernetes") {
      if (plan.network === "proxy") throw new UsageError("sandbox exec: --network proxy is for the bubblewrap backend; in a cluster the rendered NetworkPolicies decide");
      return { backend: await kubernetesBackend(plan.limits, template, logger), egress };
    }
    // Loaded only for proxy mode: the egress proxy brings an HTTP client stack the plain case does not need.
    if (plan.network === "proxy") egress = await (await import("./egress.ts")).createSandboxEgress({ logger });
    const backend = await createBubblewrapBackend({ defaults: plan.limits, logger, ...(io.env.PATH !== undefined ? { searchPath: io.env.PATH } : {}), ...(egress !== undefined ? { egressProxy: egress as EgressProxyAttachment } : {}) });
    return { backend, egress };
  } catch (error) {
    await egress?.close();
    if (error instanceof SandboxUnavailableError) {
      writeLine(io.stderr, `perimeter: sandbox: ${error.message}`);
      return undefined;
    }
    throw error;
  }
}

/** Prints the command's output and how it ended, writes the workspace back; the command's exit status. */
function reportExec(result: SandboxResult, limits: SandboxLimits, workspace: string | undefined, io: CommandIo): number {
  io.stdout.write(result.stdout.data);
  io.stderr.write(result.stderr.data);
  if (result.stdout.truncated || result.stderr.truncated) writeLine(io.stderr, `perimeter: sandbox: output cut at ${limits.outputBytes} bytes per stream`);
  const end = describeEnd(result, limits);
  if (end !== undefined) writeLine(io.stderr, `perimeter: sandbox: ${end}`);
  if (workspace !== undefined) {
    if (result.reason === "exit" || result.reason === "signal") {
      for (const entry of writeWorkspaceDirectory(workspace, result.files)) writeLine(io.stderr, `perimeter: sandbox: not written back: ${entry}`);
    } else {
      writeLine(io.stderr, `perimeter: sandbox: ${workspace} left unchanged (the command did not finish)`);
    }
  }
  return exitStatusFor(result);
}

async function exec(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseExecArgs(args);
  if (values.help === true) {
    io.stdout.write(EXEC_HELP);
    return EXIT_OK;
  }
  if (positionals.length === 0) throw new UsageError("sandbox exec: name the command after --, e.g. perimeter sandbox exec -- python3 -c 'print(1)'");
  const plan = await execPlan(values, io);
  const { files, stdin } = await execInputs(values, plan.limits, io);
  const opened = await execBackend(plan, values.template, io);
  if (opened === undefined) return EXIT_USAGE;
  try {
    const result = await opened.backend.run(
      {
        argv: positionals,
        files,
        env: plan.env,
        network: plan.network === "proxy" ? { mode: "proxy", allow: plan.allow } : { mode: "none" },
        collect: values.workspace !== undefined ? ["."] : [],
        ...(stdin !== undefined ? { stdin } : {}),
      },
      { signal: io.signal },
    );
    return reportExec(result, plan.limits, values.workspace, io);
  } catch (error) {
    if (error instanceof SandboxTaskError) throw new UsageError(`sandbox exec: ${error.message}`);
    if (error instanceof SandboxUnavailableError) {
      writeLine(io.stderr, `perimeter: sandbox: ${error.message}`);
      return EXIT_USAGE;
    }
    throw error;
  } finally {
    await opened.backend.close();
    await opened.egress?.close();
  }
}


export const sandboxCommand: Command = async (args, io) => {
  const [subcommand, ...rest] = args;
  if (subcommand === "exec") return asUsage("sandbox exec", () => exec(rest, io));
  if (subcommand === undefined || subcommand === "--help" || subcommand === "-h" || subcommand === "help") {
    io.stdout.write(EXEC_HELP);
    return EXIT_OK;
  }
  throw new UsageError(`sandbox: unknown subcommand "${subcommand}"; use perimeter sandbox exec -- CMD ARGS...`);
};

