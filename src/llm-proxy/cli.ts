// `perimeter serve llm-proxy` and `perimeter llm-keys create|list|revoke`.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { EXIT_FINDINGS, EXIT_INTERNAL, EXIT_OK, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command, CommandIo } from "../cli/index.ts";
import { describeUnpriced, feedTokenNeeds, loadConfig, requireSecrets, ownersOfModel, pricingFix, unpricedProvidersFor } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { openAuditLog } from "../audit-log/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { ServiceHost, createLogger, feedTokenVerifier, parseTcp } from "../shared/index.ts";
import type { AuditFeedRoute, TcpAddress, TokenVerifier } from "../shared/index.ts";
import { openLlmKeyStore } from "./keys.ts";
import type { KeyBudget, KeyLimits, LlmKeyStore, VirtualKey } from "./keys.ts";
import { createLlmProxy } from "./server.ts";
import type { LlmProxy } from "./server.ts";
import { buildRuntime, llmSecretNeeds, LlmProxySetupError } from "./setup.ts";
import { listModelIds, patternMatchesSomething } from "./routing.ts";
import { utcDay } from "./limits.ts";

const SERVE_HELP = `perimeter serve llm-proxy — the OpenAI/Anthropic-compatible proxy that holds the provider keys

Usage:
  perimeter serve llm-proxy [-c perimeter.yaml] [--listen 127.0.0.1:8702]

Reads the llm section (providers, aliases, clients, canaries, dlp) and the audit section. Provider keys, client
keys and canary values come from this process's environment (the names in apiKeySecret, keySecret, canaries).
Routes: POST /v1/chat/completions, /v1/responses, /v1/embeddings, /v1/messages; GET /v1/models, /healthz, /metrics.
SIGHUP reloads the configuration.
`;

const KEYS_HELP = `perimeter llm-keys — virtual keys of llm-proxy (stored hashed)

Usage:
  perimeter llm-keys create --client NAME [--models a,b] [limits] [-c perimeter.yaml]
      Prints the new key on the last line; it is shown only once. --models takes provider/model globs or
      aliases (default: the models of llm.clients NAME, else "*"). Limits and budgets default to those of
      llm.clients NAME:
        --requests-per-minute N  --tokens-per-minute N  --tokens-per-day N  --tokens-total N
        --cost-per-day X  --cost-total X
  perimeter llm-keys list [--json] [-c perimeter.yaml]
  perimeter llm-keys revoke ID [--reason TEXT] [-c perimeter.yaml]

Keys live in llm.keysPath (default: audit.path). Creating and revoking are recorded in the audit log.
`;

function configPath(value: string | undefined, io: CommandIo, command: string): string {
  const path = resolve(io.cwd, value ?? "perimeter.yaml");
  if (value === undefined && !existsSync(path)) {
    throw new UsageError(`${command}: no perimeter.yaml in ${io.cwd}; pass the configuration with -c FILE`);
  }
  return path;
}

function storePath(config: PerimeterConfig, io: CommandIo): string {
  return resolve(io.cwd, config.llm.keysPath ?? config.audit.path);
}

/** The audit log of the `llm-keys` commands (the service opens its own through the service host). */
function openAudit(config: PerimeterConfig, io: CommandIo): AuditLog {
  return openAuditLog({
    path: resolve(io.cwd, config.audit.path),
    ...(config.audit.signingKeyFile === undefined ? {} : { signingKeyFile: resolve(io.cwd, config.audit.signingKeyFile) }),
    checkpointEvery: config.audit.checkpointEvery,
  });
}

/** The audit log, and its read-only feed when audit.feedTokenSecret is set; both closed by the host. */
async function openServiceAudit(host: ServiceHost, config: PerimeterConfig, io: CommandIo, feedReaders: TokenVerifier | undefined): Promise<{ log: AuditLog; feed?: AuditFeedRoute }> {
  const log = await host.openAudit({
    path: config.audit.path,
    cwd: io.cwd,
    ...(config.audit.signingKeyFile === undefined ? {} : { signingKeyFile: config.audit.signingKeyFile }),
    checkpointEvery: config.audit.checkpointEvery,
    // A long-running server: its SQLite WAL checkpoints run off its event loop (see AuditLogOptions).
    walCheckpoints: "background",
  });
  if (feedReaders === undefined) return { log };
  const feed = await host.openAuditFeed({ auditPath: resolve(io.cwd, config.audit.path), verifier: feedReaders, tokenHint: "the audit feed token (audit.feedTokenSecret)" });
  return { log, feed };
}

/** Opens the audit log, the key store and the proxy, and starts listening; everything is closed by `host`. */
async function startProxy(host: ServiceHost, config: PerimeterConfig, io: CommandIo, listen: TcpAddress, feedReaders: TokenVerifier | undefined): Promise<{ proxy: LlmProxy; keyStore: LlmKeyStore }> {
  const logger = host.logger;
  const audit = await openServiceAudit(host, config, io, feedReaders);
  const keyStore = openLlmKeyStore(storePath(config, io), { onError: (error) => logger.error({ err: error.message }, "llm-usage write failed; retrying (budgets in this process stay exact)") });
  host.defer("key store", () => keyStore.close());
  let proxy: LlmProxy;
  try {
    proxy = createLlmProxy(config, { environment: io.env, keyStore, audit: audit.log, logger, ...(audit.feed === undefined ? {} : { auditFeed: audit.feed }) });
  } catch (error) {
    if (error instanceof LlmProxySetupError) throw new UsageError(`serve llm-proxy: ${error.message}`);
    throw error;
  }
  host.defer("llm-proxy", () => proxy.close());
  await proxy.listen(listen.host, listen.port);
  return { proxy, keyStore };
}

export const serveLlmProxy: Command = async (args, io) => {
  const { values } = parseCommandArgs("serve llm-proxy", args, {
    config: { type: "string", short: "c" },
    listen: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.stdout.write(SERVE_HELP);
    return EXIT_OK;
  }
  const file = configPath(values.config, io, "serve llm-proxy");
  const config = loadConfig(file);
  const listenText = values.listen ?? config.llm.listen;
  // Port 0 (a free port, logged at start) is for --listen in tests; the schema refuses it in llm.listen.
  const listen = parseTcp(listenText);
  if (listen === undefined) throw new UsageError(`serve llm-proxy: --listen "${listenText}" is not HOST:PORT (e.g. 127.0.0.1:8702, [::1]:8702)`);

  // Check the secrets and routing before creating any file, so a misconfigured start leaves nothing behind.
  let feedReaders: TokenVerifier | undefined;
  try {
    // The audit feed's token with the llm section's own: every missing variable in one message.
    requireSecrets(io.env, [...llmSecretNeeds(config), ...feedTokenNeeds(config.audit)]);
    buildRuntime(config, io.env);
    feedReaders = feedTokenVerifier(config.audit.feedTokenSecret, io.env);
  } catch (error) {
    if (error instanceof LlmProxySetupError) throw new UsageError(`serve llm-proxy: ${error.message}`);
    throw error;
  }
  const logger = createLogger("llm-proxy");
  const host = new ServiceHost("llm-proxy", logger);
  let started: { proxy: LlmProxy; keyStore: LlmKeyStore };
  try {
    started = await startProxy(host, config, io, listen, feedReaders);
  } catch (error) {
    await host.close();
    throw error;
  }
  const { proxy, keyStore } = started;
  warnUnpricedKeys(config, keyStore, logger);
  io.onReload(() => {
    try {
      const next = loadConfig(file);
      proxy.reload(next);
      warnUnpricedKeys(next, keyStore, logger);
    } catch (error) {
      logger.error({ err: (error as Error).message }, "llm-proxy reload refused; the previous configuration stays in force");
    }
  });
  await host.serveUntil(io.signal);
  return EXIT_OK;
};

/**
 * Keys created earlier (with another configuration) may have a cost budget over a provider that is now unpriced.
 * Their requests there are refused (limits.ts); say so at start and on reload, so it is found before the agent is.
 */
function warnUnpricedKeys(config: PerimeterConfig, keyStore: LlmKeyStore, logger: ReturnType<typeof createLogger>): void {
  for (const key of keyStore.list()) {
    if (key.revokedAt !== undefined || (key.budget.costPerDay === undefined && key.budget.costTotal === undefined)) continue;
    const unpriced = unpricedProvidersFor(config.llm, key.models);
    if (unpriced.length > 0) {
      logger.warn({ keyId: key.id, client: key.client, unpriced: unpriced.map(({ provider }) => provider) }, `virtual key ${key.id} has a cost budget but ${describeUnpriced(unpriced)}: its requests there are refused; ${pricingFix(unpriced)}, or revoke the key and create one with --models restricted to priced providers`);
    }
  }
}

function parseNumber(flag: string, text: string | undefined, integer: boolean): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new UsageError(`llm-keys create: --${flag} must be a positive ${integer ? "integer" : "number"}, not "${text}"`);
  }
  return value;
}

function describeLimits(key: Pick<VirtualKey, "limits" | "budget">): string {
  const parts = [
    ...Object.entries(key.limits).map(([name, value]) => `${name}=${String(value)}`),
    ...Object.entries(key.budget).map(([name, value]) => `${name}=${String(value)}`),
  ];
  return parts.length === 0 ? "unlimited" : parts.join(" ");
}

function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as T;
}

async function createKey(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseCommandArgs("llm-keys create", args, {
    config: { type: "string", short: "c" },
    client: { type: "string" },
    models: { type: "string" },
    "requests-per-minute": { type: "string" },
    "tokens-per-minute": { type: "string" },
    "tokens-per-day": { type: "string" },
    "tokens-total": { type: "string" },
    "cost-per-day": { type: "string" },
    "cost-total": { type: "string" },
  });
  const client = values.client;
  if (client === undefined) throw new UsageError("llm-keys create: --client NAME is required (the name shown in usage and audit records)");
  if (!/^[a-z][a-z0-9-]{0,30}$/.test(client)) throw new UsageError(`llm-keys create: --client "${client}": use 1-31 lower-case letters, digits and '-', starting with a letter`);
  const config = loadConfig(configPath(values.config, io, "llm-keys create"));
  const declared = config.llm.clients.find((entry) => entry.name === client);
  const models = values.models === undefined ? (declared?.models ?? ["*"]) : values.models.split(",").map((model) => model.trim()).filter((model) => model !== "");
  if (models.length === 0) throw new UsageError("llm-keys create: --models is empty; list provider/model globs or aliases, e.g. --models default,minimax/*");
  for (const pattern of models) {
    if (patternMatchesSomething(config.llm, pattern)) continue;
    const owners = pattern.includes("/") ? [] : ownersOfModel(config.llm, pattern);
    if (owners.length > 1) throw new UsageError(`llm-keys create: --models entry "${pattern}" is served by several providers (${owners.join(", ")}): write provider/model`);
    throw new UsageError(`llm-keys create: --models entry "${pattern}" matches no configured model or alias; configured: ${listModelIds(config.llm).join(", ") || "none"}`);
  }
  const limits: KeyLimits = compact({
    requestsPerMinute: parseNumber("requests-per-minute", values["requests-per-minute"], false) ?? declared?.limits.requestsPerMinute,
    tokensPerMinute: parseNumber("tokens-per-minute", values["tokens-per-minute"], false) ?? declared?.limits.tokensPerMinute,
  });
  const budget: KeyBudget = compact({
    tokensPerDay: parseNumber("tokens-per-day", values["tokens-per-day"], true) ?? declared?.budget.tokensPerDay,
    tokensTotal: parseNumber("tokens-total", values["tokens-total"], true) ?? declared?.budget.tokensTotal,
    costPerDay: parseNumber("cost-per-day", values["cost-per-day"], false) ?? declared?.budget.costPerDay,
    costTotal: parseNumber("cost-total", values["cost-total"], false) ?? declared?.budget.costTotal,
  });
  // A cost budget counts priced requests only: over an unpriced provider it would never trip. Refuse it here, as the
  // schema does for llm.clients; the proxy refuses such requests too, should prices be removed later.
  const costFlags = ([["costPerDay", "--cost-per-day"], ["costTotal", "--cost-total"]] as const).filter(([name]) => budget[name] !== undefined).map(([, flag]) => flag);
  const unpriced = costFlags.length === 0 ? [] : unpricedProvidersFor(config.llm, models);
  if (unpriced.length > 0) {
    throw new UsageError(`llm-keys create: ${costFlags.join(" and ")} cannot be counted for every model this key may use (${models.join(", ")}): ${describeUnpriced(unpriced)}; ${pricingFix(unpriced)}, or restrict the key with --models to priced providers`);
  }
  const audit = openAudit(config, io);
  const store = openLlmKeyStore(storePath(config, io));
  try {
    const { key, secret } = store.create(client, { models, limits, budget });
    try {
      audit.append({ component: "cli", type: "llm-key-create", keyId: key.id, client, models, limits: { ...limits }, budget: { ...budget } });
    } catch (error) {
      // Fail closed: a key whose creation is not on record must not work.
      store.revoke(key.id, "audit log write failed at creation");
      writeLine(io.stderr, `perimeter llm-keys create: the audit log could not be written, so the key was revoked: ${(error as Error).message}`);
      return EXIT_INTERNAL;
    }
    writeLine(io.stdout, `created ${key.id} for client ${client}; models: ${models.join(", ")}; limits: ${describeLimits(key)}`);
    writeLine(io.stdout, "give this key to the agent as its OpenAI/Anthropic API key; it is not shown again:");
    writeLine(io.stdout, secret);
    return EXIT_OK;
  } finally {
    store.close();
    audit.close();
  }
}

async function listKeys(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseCommandArgs("llm-keys list", args, { config: { type: "string", short: "c" }, json: { type: "boolean" } });
  const config = loadConfig(configPath(values.config, io, "llm-keys list"));
  const store = openLlmKeyStore(storePath(config, io));
  try {
    const today = utcDay(Date.now());
    const usage = new Map<string, { todayTokens: number; totalTokens: number; totalCost: number; requests: number }>();
    for (const row of store.usageRows()) {
      const entry = usage.get(row.keyId) ?? { todayTokens: 0, totalTokens: 0, totalCost: 0, requests: 0 };
      if (row.day === today) entry.todayTokens += row.tokensIn + row.tokensOut;
      entry.totalTokens += row.tokensIn + row.tokensOut;
      entry.totalCost += row.cost;
      entry.requests += row.requests;
      usage.set(row.keyId, entry);
    }
    const keys = store.list();
    if (values.json === true) {
      writeLine(io.stdout, JSON.stringify(keys.map((key) => ({ ...key, usage: usage.get(key.id) ?? { todayTokens: 0, totalTokens: 0, totalCost: 0, requests: 0 } })), null, 2));
      return EXIT_OK;
    }
    if (keys.length === 0) {
      writeLine(io.stdout, "no virtual keys; create one with: perimeter llm-keys create --client NAME -c perimeter.yaml");
      return EXIT_OK;
    }
    const rows = keys.map((key) => {
      const used = usage.get(key.id);
      return [
        key.id,
        key.client,
        key.source,
        key.revokedAt === undefined ? "active" : `revoked ${key.revokedAt.slice(0, 10)}`,
        key.models.join(","),
        String(used?.todayTokens ?? 0),
        String(used?.totalTokens ?? 0),
        describeLimits(key),
      ];
    });
    const header = ["ID", "CLIENT", "SOURCE", "STATUS", "MODELS", "TOKENS TODAY", "TOKENS TOTAL", "LIMITS"];
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] as string).length)));
    for (const row of [header, ...rows]) writeLine(io.stdout, row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] as number))).join("  "));
    return EXIT_OK;
  } finally {
    store.close();
  }
}

async function revokeKey(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs("llm-keys revoke", args, { config: { type: "string", short: "c" }, reason: { type: "string" } }, true);
  const id = positionals[0];
  if (id === undefined || positionals.length > 1) throw new UsageError("llm-keys revoke: name one key ID (see perimeter llm-keys list)");
  const config = loadConfig(configPath(values.config, io, "llm-keys revoke"));
  const audit = openAudit(config, io);
  const store = openLlmKeyStore(storePath(config, io));
  try {
    const reason = values.reason ?? "revoked by an operator";
    const result = store.revoke(id, reason);
    if (result === "not-found") {
      writeLine(io.stderr, `perimeter llm-keys revoke: no key ${id} (see perimeter llm-keys list)`);
      return EXIT_FINDINGS;
    }
    if (result === "already-revoked") {
      writeLine(io.stdout, `${id} was already revoked`);
      return EXIT_OK;
    }
    // The revocation is already in force; a failed audit write is reported loudly but does not undo it.
    try {
      audit.append({ component: "cli", type: "llm-key-revoke", keyId: id, reason });
    } catch (error) {
      writeLine(io.stderr, `perimeter llm-keys revoke: ${id} is revoked, but the audit log could not be written: ${(error as Error).message}`);
      return EXIT_INTERNAL;
    }
    writeLine(io.stdout, `revoked ${id}; requests with it are refused from now on`);
    return EXIT_OK;
  } finally {
    store.close();
    audit.close();
  }
}

export const llmKeysCommand: Command = async (args, io) => {
  const [subcommand, ...rest] = args;
  switch (subcommand) {
    case "create":
      return createKey(rest, io);
    case "list":
      return listKeys(rest, io);
    case "revoke":
      return revokeKey(rest, io);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      io.stdout.write(KEYS_HELP);
      return EXIT_OK;
    default:
      throw new UsageError(`llm-keys: unknown subcommand "${subcommand}"; use create, list or revoke`);
  }
};
