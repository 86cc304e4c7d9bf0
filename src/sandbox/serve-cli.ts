// `perimeter serve sandbox`: the sandbox runner as an MCP server, on the service host.
import { readFileSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import type { PerimeterConfig } from "../config/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command, CommandIo } from "../cli/index.ts";
import { createLogger, feedTokenVerifier, PerimeterError, ServiceHost } from "../shared/index.ts";
import type { AuditFeedRoute, Logger, TokenVerifier } from "../shared/index.ts";
import { createBubblewrapBackend } from "./bubblewrap.ts";
import type { SandboxEgress } from "./egress.ts";
import type { SandboxServer } from "./server.ts";
import { limitsFromConfig, parseSeconds, SandboxUnavailableError } from "./task.ts";
import type { SandboxBackend } from "./task.ts";
import { asUsage, configFrom, kubernetesBackend } from "./cli-common.ts";

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
