// `perimeter sandbox exec` (one task from the shell) and `perimeter serve sandbox` (the MCP server).
import { closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { join, resolve as resolvePath } from "node:path";
// Config (zod, yaml: most of a short command's start-up) loads only when a command reads one; see configFrom.
import type { PerimeterConfig } from "../config/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command, CommandIo } from "../cli/index.ts";
import { createLogger, feedTokenVerifier, PerimeterError, ServiceHost } from "../shared/index.ts";
import type { AuditFeedRoute, Logger, TokenVerifier } from "../shared/index.ts";
import { createBubblewrapBackend } from "./bubblewrap.ts";
import type { EgressProxyAttachment } from "./bubblewrap.ts";
import type { SandboxEgress } from "./egress.ts";
import type { SandboxServer } from "./server.ts";
import { limitsFromConfig, parseByteQuantity, parseCpuQuantity, parseSeconds, SandboxTaskError, SandboxUnavailableError, workspacePathProblem } from "./task.ts";
import type { SandboxBackend, SandboxFile, SandboxHostRule, SandboxLimits, SandboxResult } from "./task.ts";

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

const SERVE_HELP = `perimeter serve sandbox — the sandbox runner as an MCP server

Usage:
  perimeter serve sandbox [-c perimeter.yaml] [--listen 127.0.0.1:8701] [--token-file FILE] [--audit-db FILE]
                          [--backend bubblewrap|kubernetes] [--concurrency N] [--queue N] [--runs-per-minute N]
                          [--workspace-ttl 30m] [--template FILE] [--metrics-listen 127.0.0.1:9464]

  -c, --config FILE    read the sandbox section (limits, network allowlist, backend, token variable, concurrency)
  --listen ADDRESS     HOST:PORT (default sandbox.listen, 127.0.0.1:8701); the endpoint is /mcp
  --token-file FILE    the bearer token clients must present (default: the variable named by sandbox.tokenSecret,
                       PERIMETER_SANDBOX_TOKEN)
  --audit-db FILE      SQLite audit log (default audit.path); every run is recorded, and nothing runs when it cannot be
  --concurrency N      tasks at once (default sandbox.concurrency); --queue N more may wait (default 4 x concurrency)
  --runs-per-minute N  per-caller start rate (default 120); one caller may have at most concurrency runs at once
  --workspace-ttl T    idle time before a named workspace is dropped (default 30m)
  --template FILE      kubernetes backend: the Job template (default /etc/perimeter/sandbox/job.yaml)
  --metrics-listen ADDRESS  serve GET /metrics (Prometheus) and /healthz on this HOST:PORT, without a token; it runs
                       nothing. Off unless given; the MCP listener never serves /metrics

Tools: run, write_file, read_file, list_files. Health: GET /healthz.
`;

async function configFrom(file: string | undefined): Promise<PerimeterConfig> {
  const { loadConfig, parseConfig } = await import("../config/index.ts");
  return file === undefined ? parseConfig("version: 1\nname: perimeter\n", "(defaults)") : loadConfig(file);
}

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

async function kubernetesBackend(limits: SandboxLimits, templatePath: string | undefined, logger: Logger): Promise<SandboxBackend> {
  const { createKubernetesBackend, loadJobTemplate } = await import("./kubernetes.ts");
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  // render owns the path; loaded here only, so the bubblewrap path never pays for the renderers.
  const { SANDBOX_JOB_TEMPLATE_PATH } = await import("../render/index.ts");
  const template = loadJobTemplate(templatePath ?? SANDBOX_JOB_TEMPLATE_PATH);
  return createKubernetesBackend({ kubeConfig, template, defaults: limits, logger });
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

/** A task or flag the sandbox refuses is a usage error (exit 2) with its reason. */
async function asUsage(command: string, work: () => Promise<number>): Promise<number> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof SandboxTaskError) throw new UsageError(`${command}: ${error.message}`);
    throw error;
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

export const serveSandbox: Command = async (args, io) => asUsage("serve sandbox", () => serve(args, io));

function parseServeArgs(args: string[]) {
  return parseCommandArgs("serve sandbox", args, {
    config: { type: "string", short: "c" },
    listen: { type: "string" },
    "token-file": { type: "string" },
    "audit-db": { type: "string" },
    backend: { type: "string" },
    concurrency: { type: "string" },
    queue: { type: "string" },
    "runs-per-minute": { type: "string" },
    "workspace-ttl": { type: "string" },
    template: { type: "string" },
    "metrics-listen": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
}

type ServeValues = ReturnType<typeof parseServeArgs>["values"];

/** The runner's settings from its flags and the config's sandbox section. Throws UsageError. */
function serveSettings(values: ServeValues, config: PerimeterConfig) {
  const positive = (text: string | undefined, flag: string, fallback: number) => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new UsageError(`serve sandbox: ${flag} "${text}" must be a whole number of 1 or more`);
    return value;
  };
  const concurrency = positive(values.concurrency, "--concurrency", config.sandbox.concurrency);
  const backendName = values.backend ?? config.sandbox.backend;
  const settings = {
    concurrency,
    queueLimit: positive(values.queue, "--queue", concurrency * 4),
    runsPerMinute: positive(values["runs-per-minute"], "--runs-per-minute", 120),
    ttlMs: values["workspace-ttl"] === undefined ? 30 * 60_000 : Math.round(parseSeconds(values["workspace-ttl"], "--workspace-ttl") * 1000),
    backendName,
    limits: limitsFromConfig(config.sandbox.limits),
    networkAllow: config.sandbox.network === "none" ? undefined : config.sandbox.network.allow,
  };
  if (backendName !== "bubblewrap" && backendName !== "kubernetes") throw new UsageError(`serve sandbox: --backend must be bubblewrap or kubernetes (not "${backendName}")`);
  return { ...settings, backendName: backendName as "bubblewrap" | "kubernetes" };
}

type ServeSettings = ReturnType<typeof serveSettings>;

async function serveToken(values: ServeValues, config: PerimeterConfig, io: CommandIo): Promise<string> {
  if (values["token-file"] === undefined) {
    const { readSecret } = await import("../config/index.ts");
    return readSecret(io.env, config.sandbox.tokenSecret, "the sandbox runner's bearer token (or pass --token-file FILE)");
  }
  let token: string;
  try {
    token = readFileSync(values["token-file"], "utf8").trim();
  } catch (error) {
    throw new UsageError(`serve sandbox: cannot read --token-file ${values["token-file"]} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (token.length < 16) throw new UsageError(`serve sandbox: the token in ${values["token-file"]} is shorter than 16 characters; use a random one (openssl rand -hex 32)`);
  return token;
}

/** The audit log, and its read-only feed when audit.feedTokenSecret is set; both closed by the host. */
async function openServeAudit(host: ServiceHost, auditPath: string, feedTokens: TokenVerifier | undefined, config: PerimeterConfig, io: CommandIo): Promise<{ log: AuditLog; feed: AuditFeedRoute | undefined }> {
  const log = await host.openAudit({
    path: auditPath,
    cwd: io.cwd,
    ...(config.audit.signingKeyFile !== undefined ? { signingKeyFile: config.audit.signingKeyFile } : {}),
    checkpointEvery: config.audit.checkpointEvery,
    walCheckpoints: "background",
  });
  if (feedTokens === undefined) return { log, feed: undefined };
  const feed = await host.openAuditFeed({ auditPath: resolvePath(io.cwd, auditPath), verifier: feedTokens, tokenHint: "the audit feed token (audit.feedTokenSecret)" });
  return { log, feed };
}

/** The runner's backend (closed by the host, after the server); throws SandboxUnavailableError when the host cannot sandbox. */
async function openServeBackend(host: ServiceHost, settings: ServeSettings, audit: AuditLog, template: string | undefined, io: CommandIo): Promise<SandboxBackend> {
  const logger = host.logger;
  let egress: SandboxEgress | undefined;
  if (settings.backendName === "bubblewrap" && settings.networkAllow !== undefined) {
    const opened = await (await import("./egress.ts")).createSandboxEgress({ logger, audit });
    host.defer("sandbox egress proxy", () => opened.close());
    egress = opened;
  }
  const backend =
    settings.backendName === "kubernetes"
      ? await kubernetesBackend(settings.limits, template, logger)
      : await createBubblewrapBackend({ defaults: settings.limits, logger, ...(io.env.PATH !== undefined ? { searchPath: io.env.PATH } : {}), ...(egress !== undefined ? { egressProxy: egress } : {}) });
  host.defer("sandbox backend", () => backend.close());
  return backend;
}

async function runnerServer(settings: ServeSettings, backend: SandboxBackend, token: string, audit: { log: AuditLog; feed: AuditFeedRoute | undefined }, logger: Logger): Promise<SandboxServer> {
  // Loaded here only: the MCP SDK and prom-client are most of what `sandbox exec` does not need.
  const { createSandboxServer } = await import("./server.ts");
  const { ttlMs } = settings;
  return createSandboxServer({
    backend,
    token,
    audit: audit.log,
    concurrency: settings.concurrency,
    queueLimit: settings.queueLimit,
    quotas: { concurrentRuns: settings.concurrency, runsPerMinute: settings.runsPerMinute },
    // Named workspaces live in the runner's memory. In a cluster the runner has 256 MiB and a task's files travel in
    // a ConfigMap (under 1 MiB) and come back through its log (DEFAULT_MAX_RETURN_BYTES): larger workspaces could
    // neither run nor fit.
    workspaces:
      settings.backendName === "kubernetes"
        ? { ttlMs, maxBytes: 1024 ** 2, maxFiles: 1000, maxPerCaller: 8, totalBytes: 64 * 1024 ** 2 }
        : { ttlMs, maxBytes: Math.min(settings.limits.diskBytes, 256 * 1024 ** 2), maxFiles: 1000, maxPerCaller: 8, totalBytes: 1024 ** 3 },
    ceiling: settings.limits,
    ...(settings.networkAllow !== undefined ? { networkAllow: settings.networkAllow } : {}),
    ...(audit.feed !== undefined ? { auditFeed: audit.feed } : {}),
    logger,
  });
}

/** A listener that cannot start stops the runner (exit 2), naming the flag or setting to change. */
async function listenNamed<T>(listen: () => Promise<T>, what: string): Promise<T> {
  try {
    return await listen();
  } catch (error) {
    if (error instanceof PerimeterError) throw new PerimeterError(error.code, `serve sandbox: ${what}: ${error.message}`, { cause: error });
    throw new UsageError(`serve sandbox: ${what}: cannot listen: ${(error as Error).message}`);
  }
}

async function serve(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseServeArgs(args);
  if (values.help === true) {
    io.stdout.write(SERVE_HELP);
    return EXIT_OK;
  }
  const config = await configFrom(values.config);
  const settings = serveSettings(values, config);
  // Every missing variable named at once, before anything is opened (each read below would name only the first).
  const { feedTokenNeeds, requireSecrets } = await import("../config/index.ts");
  requireSecrets(io.env, [...(values["token-file"] === undefined ? [{ name: config.sandbox.tokenSecret, usedFor: "the sandbox runner's bearer token (or pass --token-file FILE)" }] : []), ...feedTokenNeeds(config.audit)]);
  const token = await serveToken(values, config, io);
  // A feed token the config names but the environment lacks stops the start, before anything is opened.
  const feedTokens = feedTokenVerifier(config.audit.feedTokenSecret, io.env);
  const logger = createLogger("sandbox");
  const host = new ServiceHost("sandbox", logger);
  let address: { url: string };
  let metricsAddress: { url: string } | undefined;
  try {
    const audit = await openServeAudit(host, values["audit-db"] ?? config.audit.path, feedTokens, config, io);
    let backend: SandboxBackend;
    try {
      backend = await openServeBackend(host, settings, audit.log, values.template, io);
    } catch (error) {
      if (!(error instanceof SandboxUnavailableError)) throw error;
      await host.close();
      writeLine(io.stderr, `perimeter: serve sandbox: ${error.message}`);
      return EXIT_USAGE;
    }
    const server = await runnerServer(settings, backend, token, audit, logger);
    host.defer("sandbox runner", () => server.close());
    address = await listenNamed(() => server.listen(values.listen ?? config.sandbox.listen), values.listen !== undefined ? "--listen" : "sandbox.listen");
    const metricsTarget = values["metrics-listen"];
    if (metricsTarget !== undefined) metricsAddress = await listenNamed(() => server.listenMetrics(metricsTarget), "--metrics-listen");
  } catch (error) {
    await host.close();
    throw error;
  }
  logger.info({ event: "sandbox-listening", url: address.url, backend: settings.backendName, concurrency: settings.concurrency, network: settings.networkAllow === undefined ? "none" : "proxy", metrics: metricsAddress?.url ?? null, auditFeed: feedTokens !== undefined }, "sandbox runner listening");
  writeLine(io.stderr, `perimeter: sandbox runner listening on ${address.url} (${settings.backendName})${metricsAddress !== undefined ? `; metrics on ${metricsAddress.url}` : ""}`);
  await host.serveUntil(io.signal);
  return EXIT_OK;
}
