// `perimeter up -c FILE`: the whole perimeter on one host, every service under one supervisor that restarts a crashed
// one and shares one audit log — by default inside up's own process, with --process-per-service each a child
// process; and `perimeter status -c FILE`: each service's health, its last restart, the chain head.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { EXIT_FINDINGS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command, CommandIo } from "../cli/index.ts";
import { loadConfig } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { createLogger, freePort } from "../shared/index.ts";
import type { Logger } from "../shared/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { fetchHealth, loadServeCommands, probeService, spawnService } from "./children.ts";
import { createInProcessHost } from "./in-process.ts";
import { configuredSecretNames, planUp, runtimeConfigFile, stateFile, UpPlanError } from "./plan.ts";
import type { ServicePlan, UpPlan } from "./plan.ts";
import { portProblems, processAlive, sandboxHostProblems } from "./preflight.ts";
import { appendSecrets, readSecretsFile, resolveSecrets, SecretsFileError } from "./secrets-file.ts";
import { createSupervisor, ServiceStartError } from "./supervisor.ts";
import type { ServiceState } from "./supervisor.ts";
import { readState, writeJsonFile, writeState } from "./state.ts";
import type { UpState } from "./state.ts";

const UP_HELP = `perimeter up — run the whole perimeter on this host

Usage:
  perimeter up -c perimeter.yaml [--secrets-file FILE] [--no-generate] [--resolve NAME=ADDRESS]...
               [--ready-timeout SECONDS] [--process-per-service] [--check]

Starts every service the config enables — egress-proxy, llm-proxy (when llm.providers is set), the sandbox runner
(bubblewrap), mcp-guard (when it has servers, or agent.terminal is sandbox) and its dashboard — sharing the audit
log at audit.path. Waits until each answers /healthz, prints the endpoints and the environment an agent needs,
restarts a service that crashes (alone, with a growing delay, recorded in the audit log) and stops them all on
SIGTERM or Ctrl-C.

  --secrets-file FILE  where local credentials live (default: secrets.env beside the audit log, mode 0600)
  --no-generate        never generate a missing local credential (agent/admin/sandbox tokens, virtual keys);
                       by default they are generated into the secrets file on first start
  --resolve NAME=ADDR  pin a name for egress-proxy instead of DNS (still checked against its deny set)
  --ready-timeout S    how long each service may take to become ready (default 30)
  --check              run every check, print what would start, start nothing
  --process-per-service
                       run each service as its own child process instead of inside this one: a crash or a
                       stalled event loop stays in one process and a memory bug cannot read another service's
                       credentials, for about four times the memory and CPU to start (docs/up.md)
  --one-process        the default: every service inside this process (accepted for older scripts)

Provider keys, upstream credentials and canaries are never generated: set them in the environment.
`;

const STATUS_HELP = `perimeter status — the state of a perimeter started with perimeter up

Usage:
  perimeter status -c perimeter.yaml [--json]

Shows each service's health (its /healthz), process, restarts and last restart, and the head of the audit chain.
Exit 0 when every service is healthy, 1 otherwise (or when perimeter up is not running).
`;

function requireConfig(command: string, value: string | undefined, io: CommandIo): { file: string; config: PerimeterConfig } {
  if (value === undefined) throw new UsageError(`${command}: pass the configuration with -c perimeter.yaml (try -c examples/local.yaml)`);
  const file = resolve(io.cwd, value);
  return { file, config: loadConfig(file) };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length))) ?? [];
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join("  ").trimEnd());
}

/** The environment of one service's child: the caller's, without any other service's secrets, plus its own. */
function childEnvironment(io: CommandIo, plan: ServicePlan, secretNames: ReadonlySet<string>, values: ReadonlyMap<string, string>): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const [name, value] of Object.entries(io.env)) if (value !== undefined && !secretNames.has(name)) environment[name] = value;
  for (const need of plan.secrets) {
    const value = values.get(need.name);
    if (value !== undefined) environment[need.name] = value;
  }
  return environment;
}

function printPlan(io: CommandIo, plan: UpPlan, states: readonly ServiceState[] | undefined, secretsFile: string): void {
  const rows = [["SERVICE", "PID", "ENDPOINT", "NOTE"]];
  for (const service of plan.services) {
    const state = states?.find((entry) => entry.name === service.name);
    rows.push([service.name, state === undefined ? "-" : String(state.pid), service.endpoint, service.note ?? ""]);
  }
  for (const line of table(rows)) writeLine(io.stdout, line);
  writeLine(io.stdout);
  writeLine(io.stdout, `The agent's environment (credentials by variable name; their values are in ${secretsFile} or your environment):`);
  for (const entry of plan.agentEnvironment) writeLine(io.stdout, `  ${entry.name}=${entry.value}`);
  if (plan.mcpUrl !== undefined) {
    writeLine(io.stdout, `  MCP server: ${plan.mcpUrl} with header "Authorization: Bearer \${${plan.agentTokenSecret ?? "PERIMETER_AGENT_TOKEN"}}"`);
  }
  for (const note of plan.notes) writeLine(io.stdout, `note: ${note}`);
}

function secretsFilePath(plan: UpPlan, value: string | undefined, io: CommandIo): string {
  return value === undefined ? resolve(plan.stateDirectory, "secrets.env") : resolve(io.cwd, value);
}

const UP_FLAGS = {
  config: { type: "string", short: "c" },
  "secrets-file": { type: "string" },
  "no-generate": { type: "boolean" },
  resolve: { type: "string", multiple: true },
  "ready-timeout": { type: "string" },
  check: { type: "boolean" },
  "one-process": { type: "boolean" },
  "process-per-service": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type UpFlags = ReturnType<typeof parseCommandArgs<typeof UP_FLAGS>>["values"];

/** The flags checked, the config loaded and the plan made; throws UsageError naming the fix. */
async function planFromFlags(values: UpFlags, io: CommandIo): Promise<{ file: string; config: PerimeterConfig; plan: UpPlan; perService: boolean; readyTimeout: number }> {
  if (values["one-process"] === true && values["process-per-service"] === true) {
    throw new UsageError("up: --one-process and --process-per-service exclude each other; pass one (the default is one process)");
  }
  const { file, config } = requireConfig("up", values.config, io);
  const readyTimeout = values["ready-timeout"] === undefined ? 30 : Number(values["ready-timeout"]);
  if (!(readyTimeout > 0 && readyTimeout <= 3600)) throw new UsageError(`up: --ready-timeout "${values["ready-timeout"]}" must be a number of seconds from 1 to 3600`);
  for (const pin of values.resolve ?? []) {
    if (!/^[^=\s]+=[^=\s]+$/.test(pin)) throw new UsageError(`up: --resolve "${pin}" must be NAME=ADDRESS[,ADDRESS] (e.g. api.example.com=203.0.113.7)`);
  }
  try {
    const plan = planUp(config, file, { cwd: io.cwd, egressMetricsPort: config.egress.metrics === undefined ? await freePort() : 0, resolve: values.resolve ?? [] });
    return { file, config, plan, perService: values["process-per-service"] === true, readyTimeout };
  } catch (error) {
    if (error instanceof UpPlanError) throw new UsageError(`up: ${error.message}`);
    throw error;
  }
}

/** Every check before anything starts or any file is written; all problems at once. */
async function preflight(plan: UpPlan, values: UpFlags, io: CommandIo, secretsPath: string): Promise<{ problems: string[]; secrets: ReturnType<typeof resolveSecrets> | undefined }> {
  const problems: string[] = [];
  const previous = readState(stateFile(plan.stateDirectory));
  if (previous !== undefined && previous.stoppedAt === undefined && processAlive(previous.supervisorPid) && previous.supervisorPid !== process.pid) {
    problems.push(`perimeter up is already running for this audit log (pid ${previous.supervisorPid}, config ${previous.configFile}): see perimeter status -c ${values.config}, or stop it with kill ${previous.supervisorPid}`);
  } else {
    problems.push(...(await portProblems(plan.services)));
  }
  if (plan.services.some((service) => service.name === "sandbox")) {
    problems.push(...sandboxHostProblems({ searchPath: io.env.PATH ?? "", uid: typeof process.getuid === "function" ? process.getuid() : 0 }));
  }
  let secrets: ReturnType<typeof resolveSecrets> | undefined;
  try {
    secrets = resolveSecrets(plan.services, io.env, readSecretsFile(secretsPath), values["no-generate"] !== true);
    for (const need of secrets.missing) {
      problems.push(`${need.name} is not set: ${need.usedFor} needs it; export ${need.name}=... before perimeter up${need.local ? ` (or leave out --no-generate to have it generated into ${secretsPath})` : ""}`);
    }
  } catch (error) {
    if (!(error instanceof SecretsFileError)) throw error;
    problems.push(error.message);
  }
  return { problems, secrets };
}

/** What a started perimeter holds until it stops. */
interface Running {
  audit: AuditLog;
  supervisor: ReturnType<typeof createSupervisor>;
  host: ReturnType<typeof createInProcessHost> | undefined;
  /** Aborted by a bug outside every service (no service to restart): everything stops, exit 3. */
  fatal: AbortController;
  stopSignal: AbortSignal;
  saveState: (services: readonly ServiceState[]) => void;
  markStopped: () => void;
}

/** The state file perimeter status reads, rewritten on every change of a service. */
function stateWriter(plan: UpPlan, file: string, logger: Logger): Pick<Running, "saveState" | "markStopped"> {
  const statePath = stateFile(plan.stateDirectory);
  let state: UpState = { version: 1, supervisorPid: process.pid, configFile: file, startedAt: new Date().toISOString(), auditPath: plan.auditPath, services: [] };
  const saveState = (services: readonly ServiceState[]) => {
    state = {
      ...state,
      services: services.map((service) => {
        const served = plan.services.find((entry) => entry.name === service.name) as ServicePlan;
        return { ...service, endpoint: served.endpoint, healthUrl: served.healthUrl, localUpstreams: served.localUpstreams };
      }),
    };
    try {
      writeState(statePath, state);
    } catch (error) {
      logger.error({ event: "state-write-failed", error: (error as Error).message }, "could not write the state file perimeter status reads");
    }
  };
  return { saveState, markStopped: () => void (state.stoppedAt = new Date().toISOString()) };
}

/** The audit log, the in-process host (or none with --process-per-service) and the supervisor, not started yet. */
async function prepareRun(
  context: { io: CommandIo; file: string; config: PerimeterConfig; plan: UpPlan; perService: boolean; readyTimeout: number; secrets: ReturnType<typeof resolveSecrets> },
  logger: Logger,
): Promise<Running> {
  const { io, file, config, plan, perService, secrets } = context;
  const { openAuditLog } = await import("../audit-log/index.ts");
  // Opened first, so the database and the signing key exist before the services open them at once.
  const audit = openAuditLog({
    path: plan.auditPath,
    ...(plan.runtimeConfig.audit.signingKeyFile === undefined ? {} : { signingKeyFile: plan.runtimeConfig.audit.signingKeyFile }),
    checkpointEvery: plan.runtimeConfig.audit.checkpointEvery,
  });
  const secretNames = configuredSecretNames(config, plan);
  const { saveState, markStopped } = stateWriter(plan, file, logger);
  const spawnOptions = { cwd: io.cwd, environment: (served: ServicePlan) => childEnvironment(io, served, secretNames, secrets.values) };
  const fatal = new AbortController();
  const stopSignal = AbortSignal.any([io.signal, fatal.signal]);
  const host = perService ? undefined : createInProcessHost({ log: (level, fields, message) => logger[level](fields, message), onFatal: (_error, reason) => fatal.abort(new Error(reason)) });
  const commands = perService ? undefined : await loadServeCommands(plan.services.map((service) => service.name));
  const supervisor = createSupervisor(plan.services, {
    spawn: (service) => (host === undefined || commands === undefined ? spawnService(service, spawnOptions) : host.spawn(service, commands.get(service.name) as Command, spawnOptions)),
    probe: probeService,
    record: (event) => audit.append({ component: "cli", supervisor: "perimeter up", ...event }).seq,
    log: (level, fields, message) => logger[level](fields, message),
    onChange: saveState,
    readyTimeoutMs: context.readyTimeout * 1000,
  });
  return { audit, supervisor, host, fatal, stopSignal, saveState, markStopped };
}

/** Starts every service; the exit code when that failed (everything is stopped and recorded then), else undefined. */
async function startAll(running: Running, context: { io: CommandIo; plan: UpPlan; file: string; perService: boolean }): Promise<number | undefined> {
  const { audit, supervisor, host, fatal, io } = { ...running, io: context.io };
  const { plan } = context;
  try {
    audit.append({ component: "cli", type: "perimeter-start", supervisor: "perimeter up", pid: process.pid, config: context.file, services: plan.services.map((service) => service.name), mode: context.perService ? "processes" : "one-process" });
  } catch (error) {
    audit.close();
    host?.close();
    writeLine(io.stderr, `perimeter up: nothing was started: the audit log ${plan.auditPath} cannot be written (${(error as Error).message})`);
    return EXIT_INTERNAL;
  }
  try {
    await supervisor.start(running.stopSignal);
    return undefined;
  } catch (error) {
    if (!(error instanceof ServiceStartError)) throw error;
    audit.append({ component: "cli", type: "perimeter-stop", supervisor: "perimeter up", reason: fatal.signal.aborted ? String((fatal.signal.reason as Error).message) : error.message });
    audit.close();
    host?.close();
    running.markStopped();
    running.saveState(supervisor.states());
    if (fatal.signal.aborted) return EXIT_INTERNAL;
    if (io.signal.aborted) return EXIT_OK;
    writeLine(io.stderr, `perimeter up: ${error.message}; every service was stopped. Its own message is above.`);
    // A service that exits 2 found a problem in the config or the host, as up's own checks do.
    return error.exit?.code === 2 ? EXIT_USAGE : EXIT_INTERNAL;
  }
}

function printReady(io: CommandIo, context: { plan: UpPlan; config: PerimeterConfig; configArgument: string | undefined; secretsPath: string; seconds: number }, running: Running): void {
  const { plan, config, configArgument, secretsPath } = context;
  writeLine(io.stdout, `perimeter up: ${plan.services.length} services ready in ${context.seconds.toFixed(2)} s; audit log ${plan.auditPath}`);
  writeLine(io.stdout);
  printPlan(io, plan, running.supervisor.states(), secretsPath);
  writeLine(io.stdout);
  writeLine(io.stdout, `perimeter status -c ${configArgument}     health, restarts, audit chain head`);
  if (plan.services.some((service) => service.name === "mcp-guard")) {
    writeLine(io.stdout, `perimeter approvals list -c ${configArgument}     held calls (needs ${config.mcp.admin.tokenSecret} from ${secretsPath})`);
  }
  writeLine(io.stdout, "Ctrl-C or SIGTERM stops every service.");
}

/** On SIGHUP each service reloads its policy from the runtime config; listen addresses and the set of services stay. */
function reloadOnSignal(io: CommandIo, context: { file: string; plan: UpPlan; runtimeFile: string; resolve: string[] }, running: Running, logger: Logger): void {
  io.onReload(() => {
    try {
      const next = planUp(loadConfig(context.file), context.file, { cwd: io.cwd, egressMetricsPort: Number(context.plan.runtimeConfig.egress.metrics?.split(":").pop()), resolve: context.resolve });
      writeJsonFile(context.runtimeFile, next.runtimeConfig);
      running.supervisor.reload();
      logger.info({ event: "perimeter-reload" }, "configuration reloaded; listen addresses and services change at the next start");
    } catch (error) {
      logger.error({ event: "perimeter-reload-refused", error: (error as Error).message }, "new configuration refused; the services keep the current one");
    }
  });
}

/** Waits for the stop signal (or a fatal error), stops every service and records why. */
async function runUntilStopped(running: Running, logger: Logger): Promise<number> {
  const { stopSignal, supervisor, audit, host, fatal } = running;
  await new Promise<void>((resolveWait) => {
    if (stopSignal.aborted) resolveWait();
    else stopSignal.addEventListener("abort", () => resolveWait(), { once: true });
  });
  logger.info({ event: "perimeter-stopping" }, "stopping every service");
  await supervisor.stop();
  host?.close();
  running.markStopped();
  running.saveState(supervisor.states());
  try {
    audit.append({ component: "cli", type: "perimeter-stop", supervisor: "perimeter up", reason: String((stopSignal.reason as Error | undefined)?.message ?? "signal") });
  } finally {
    audit.close();
  }
  logger.flush();
  return fatal.signal.aborted ? EXIT_INTERNAL : EXIT_OK;
}

export const upCommand: Command = async (args, io) => {
  const { values } = parseCommandArgs("up", args, UP_FLAGS);
  if (values.help === true) {
    io.stdout.write(UP_HELP);
    return EXIT_OK;
  }
  const began = performance.now();
  const { file, config, plan, perService, readyTimeout } = await planFromFlags(values, io);
  const secretsPath = secretsFilePath(plan, values["secrets-file"], io);
  const { problems, secrets } = await preflight(plan, values, io, secretsPath);
  if (problems.length > 0 || secrets === undefined) {
    writeLine(io.stderr, `perimeter up: nothing was started; fix ${problems.length === 1 ? "this" : `these ${problems.length} problems`} first:`);
    for (const problem of problems) writeLine(io.stderr, `  - ${problem}`);
    return EXIT_USAGE;
  }
  if (values.check === true) {
    writeLine(io.stdout, `perimeter up --check: every check passed; perimeter up would start ${plan.services.length} services:`);
    printPlan(io, plan, undefined, secretsPath);
    if (secrets.generated.size > 0) writeLine(io.stdout, `would generate ${[...secrets.generated.keys()].join(", ")} into ${secretsPath} (0600)`);
    return EXIT_OK;
  }
  mkdirSync(plan.stateDirectory, { recursive: true, mode: 0o700 });
  if (secrets.generated.size > 0) {
    appendSecrets(secretsPath, secrets.generated);
    writeLine(io.stderr, `perimeter up: generated ${[...secrets.generated.keys()].join(", ")} into ${secretsPath} (mode 0600; the agent and perimeter approvals need them)`);
  }
  const runtimeFile = runtimeConfigFile(plan);
  writeJsonFile(runtimeFile, plan.runtimeConfig);
  const logger = createLogger("perimeter-up");
  const running = await prepareRun({ io, file, config, plan, perService, readyTimeout, secrets }, logger);
  const failed = await startAll(running, { io, plan, file, perService });
  if (failed !== undefined) return failed;
  const seconds = (performance.now() - began) / 1000;
  logger.info({ event: "perimeter-ready", seconds: Number(seconds.toFixed(3)), services: plan.services.map((service) => service.name) }, "every service is ready");
  printReady(io, { plan, config, configArgument: values.config, secretsPath, seconds }, running);
  reloadOnSignal(io, { file, plan, runtimeFile, resolve: values.resolve ?? [] }, running, logger);
  return runUntilStopped(running, logger);
};

export const statusCommand: Command = async (args, io) => {
  const { values } = parseCommandArgs("status", args, { config: { type: "string", short: "c" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } });
  if (values.help === true) {
    io.stdout.write(STATUS_HELP);
    return EXIT_OK;
  }
  const { file, config } = requireConfig("status", values.config, io);
  const auditPath = resolve(io.cwd, config.audit.path);
  const state = readState(stateFile(dirname(auditPath)));
  const running = state !== undefined && state.stoppedAt === undefined && processAlive(state.supervisorPid);
  const services = await Promise.all(
    (running ? state.services : []).map(async (service) => {
      const answer = await fetchHealth(service.healthUrl);
      const alive = processAlive(service.pid);
      const health = !alive ? "down" : answer === undefined ? "not answering" : answer.status === 200 ? "healthy" : `unhealthy (${answer.status})`;
      return { ...service, alive, health };
    }),
  );
  const { readAuditRecords, AuditReadError } = await import("../audit-log/index.ts");
  let head: { seq: number; hash: string; time: string } | undefined;
  let headProblem: string | undefined;
  try {
    const last = readAuditRecords(auditPath, { last: 1 })[0];
    if (last !== undefined) head = { seq: last.seq, hash: last.hash, time: last.time };
  } catch (error) {
    if (!(error instanceof AuditReadError)) throw error;
    headProblem = error.message;
  }
  const healthy = running && services.length > 0 && services.every((service) => service.health === "healthy");
  if (values.json === true) {
    writeLine(io.stdout, JSON.stringify({ config: file, running, supervisorPid: running ? state.supervisorPid : null, startedAt: running ? state.startedAt : null, services, audit: { path: auditPath, head: head ?? null, problem: headProblem ?? null } }, null, 2));
    return healthy ? EXIT_OK : EXIT_FINDINGS;
  }
  if (!running) {
    writeLine(io.stdout, `perimeter up is not running for ${file}${state?.stoppedAt !== undefined ? ` (last stopped ${state.stoppedAt})` : ""}; start it with perimeter up -c ${values.config}`);
  } else {
    writeLine(io.stdout, `perimeter up: running (pid ${state.supervisorPid}) since ${state.startedAt}`);
    const rows = [["SERVICE", "HEALTH", "PID", "RESTARTS", "LAST RESTART", "ENDPOINT"]];
    for (const service of services) {
      const last = service.lastRestart;
      const restart = last === undefined ? "-" : `${last.time} (pid ${last.previousPid} ${last.signal !== null ? `killed by ${last.signal}` : `exited ${last.exitCode}`}${last.seq === undefined ? "" : `; audit #${last.seq}`})`;
      rows.push([service.name, service.health, String(service.pid), String(service.restarts), restart, service.endpoint]);
    }
    for (const line of table(rows)) writeLine(io.stdout, line);
  }
  if (head !== undefined) writeLine(io.stdout, `audit log ${auditPath}: head #${head.seq} ${head.hash} at ${head.time} (perimeter audit-log verify -c ${values.config} checks the whole chain)`);
  else writeLine(io.stdout, `audit log ${auditPath}: ${headProblem ?? "empty"}`);
  return healthy ? EXIT_OK : EXIT_FINDINGS;
};
