// The guard's state: everything one running mcp-guard holds, built once from the configuration and its dependencies
// and handed as one typed object to the parts that serve it (mcp-endpoint.ts, agent-listener.ts, admin-listener.ts,
// the call pipeline in calls.ts). Building it starts nothing: listen() in guard.ts does.
import type { DatabaseSync } from "node:sqlite";
import { createApprovalAnnouncer, createApprovalStore } from "../approvals/index.ts";
import type { Announcer, ApprovalStore, AuditAppender } from "../approvals/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import type { Environment, PerimeterConfig } from "../config/index.ts";
import { createTokenVerifier, feedTokenVerifier, silentLogger } from "../shared/index.ts";
import type { Logger, TokenVerifier } from "../shared/index.ts";
import { createTelegramApprover, TelegramSetupError } from "../telegram/index.ts";
import type { TelegramApprover } from "../telegram/index.ts";
import { trackAuditHealth } from "./audit-health.ts";
import type { AuditHealth } from "./audit-health.ts";
import { createToolCaller } from "./calls.ts";
import type { ToolCaller } from "./calls.ts";
import { createCatalog } from "./catalog.ts";
import type { Catalog } from "./catalog.ts";
import { createGuardMetrics } from "./metrics.ts";
import type { GuardMetrics } from "./metrics.ts";
import { createPinStore } from "./pins.ts";
import type { PinStore } from "./pins.ts";
import type { Redactor } from "./redact.ts";
import { GuardSetupError, parseListen, prepareGuard } from "./setup.ts";
import type { PreparedServer } from "./setup.ts";
import { createUpstream } from "./upstream.ts";
import type { Upstream, UpstreamState } from "./upstream.ts";

export const GUARD_VERSION = "0.1.0";

export interface McpGuardDependencies {
  env: Environment;
  /**
   * The audit log (src/audit-log): append is synchronous and throws when it cannot write; with prepare and
   * appendPrepared (the AuditLog has both) tool-call records are group-committed.
   */
  audit: AuditAppender & Partial<Pick<AuditLog, "prepare" | "appendPrepared">>;
  /** SQLite connection on the audit database, for the pinning and approval tables. */
  database: DatabaseSync;
  logger?: Logger;
}

export interface McpGuardOptions {
  /** Overrides mcp.listen. */
  listen?: string;
  /** Overrides mcp.admin.listen. */
  adminListen?: string;
  /** Connect timeout for upstreams, ms (default: each server's timeoutSeconds). */
  connectTimeoutMs?: number;
  /** Backoff between reconnect attempts. */
  backoff?: { initialMs: number; maxMs: number };
  /** Re-list tools this often without a list_changed notification (default 5 minutes). */
  resyncIntervalMs?: number;
  /** Progress notification interval while a call waits for approval (default 10 s). */
  progressIntervalMs?: number;
  /**
   * How long after listen() a tools/list waits for every upstream's first connection attempt to end (connected and
   * synced, or failed). A client that lists once at start (Hermes) would otherwise see no tools; past the bound the
   * list is answered with what is there, and list_changed follows as upstreams arrive.
   * @default 10 s
   */
  firstListWaitMs?: number;
}

/** Whether the guard is still starting: until every upstream's first attempt is over, or the bound after listen(). */
export interface GuardStartup {
  /** Resolves once every upstream's first connection attempt is over (connected and synced, or failed). */
  readonly firstSync: Promise<void>;
  readonly firstAttempts: ReadonlyMap<string, Promise<void>>;
  firstSyncDone: boolean;
  /**
   * Ends when a tools/list would no longer wait: /healthz says "starting" exactly that long, so a readiness probe
   * (perimeter up, Kubernetes) is not held past the bound by an external upstream that is slow to fail.
   */
  starting: boolean;
  /** What a tools/list waits for while starting: the first sync, or the bound counted from listen(). */
  startingWindow: Promise<void>;
}

export interface GuardTokens {
  readonly agents: TokenVerifier;
  readonly admins: TokenVerifier;
  /** Who reads the audit feed: the admin token and, when audit.feedTokenSecret is set, the read-only feed token. */
  readonly feedReaders: TokenVerifier;
}

export interface GuardState {
  readonly config: PerimeterConfig;
  readonly options: McpGuardOptions;
  readonly logger: Logger;
  readonly redactor: Redactor;
  readonly database: DatabaseSync;
  readonly listen: { readonly agent: string; readonly admin: string };
  /** The audit log as every writer in the guard uses it: failures counted, /healthz driven. */
  readonly auditHealth: AuditHealth;
  readonly approvals: ApprovalStore;
  readonly pins: PinStore;
  readonly metrics: GuardMetrics;
  readonly announcer: Announcer;
  readonly telegram: TelegramApprover | undefined;
  readonly catalog: Catalog;
  readonly tokens: GuardTokens;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly startup: GuardStartup;
  readonly calls: ToolCaller;
  /** Tells every connected agent that the tool list changed; the MCP endpoint sets it once it exists. */
  toolsChanged: () => void;
}

/** The agent must never reach the admin API: the two listeners may not share an address. */
function checkListenAddresses(agentListen: string, adminListen: string): void {
  const agentAddress = parseListen(agentListen);
  const adminAddress = parseListen(adminListen);
  const wildcard = (host: string) => host === "0.0.0.0" || host === "::";
  if (agentAddress.port !== 0 && agentAddress.port === adminAddress.port && (agentAddress.host === adminAddress.host || wildcard(agentAddress.host) || wildcard(adminAddress.host))) {
    throw new GuardSetupError(`mcp.listen (${agentListen}) and mcp.admin.listen (${adminListen}) must be different addresses: the admin API must not be served where the agent connects`);
  }
}

export function createGuardState(config: PerimeterConfig, dependencies: McpGuardDependencies, options: McpGuardOptions): GuardState {
  const logger = dependencies.logger ?? silentLogger();
  const { database } = dependencies;
  const prepared = prepareGuard(config, dependencies.env);
  const listen = { agent: options.listen ?? config.mcp.listen, admin: options.adminListen ?? config.mcp.admin.listen };
  checkListenAddresses(listen.agent, listen.admin);

  // Every record the guard writes goes through one wrapper that counts failures and drives /healthz.
  let countAuditFailure: () => void = () => undefined;
  const auditHealth = trackAuditHealth(dependencies.audit, () => countAuditFailure());
  const audit = auditHealth.audit;
  const approvals = createApprovalStore({ database, audit });
  approvals.expireHeldCalls("the guard restarted while the call was waiting");
  const pins = createPinStore(database);
  const metrics = createGuardMetrics({ approvalsPending: (kind) => approvals.countPending({ kind }), definitions: () => pins.counts() });
  countAuditFailure = () => metrics.auditFailures.inc();
  // Before the catalog's first sync, so that the reviews a first start opens are announced too.
  const announcer = createApprovalAnnouncer({
    store: approvals,
    logger,
    env: dependencies.env,
    ...(config.approvals.hook === undefined ? {} : { hook: config.approvals.hook }),
    ...(config.approvals.hookTimeoutSeconds === undefined ? {} : { hookTimeoutMs: config.approvals.hookTimeoutSeconds * 1000 }),
    onAnnounce: (kind) => metrics.approvalRequests.inc({ kind }),
    onHookFailure: () => metrics.approvalHookFailures.inc(),
  });
  const telegram = telegramApprover(config, { store: approvals, database, audit, env: dependencies.env, logger });
  const catalog = createCatalog({ servers: config.mcp.servers, pins, approvals, audit, logger, trustOnFirstUse: config.mcp.pinning.trustOnFirstUse });
  const tokens: GuardTokens = {
    agents: createTokenVerifier(prepared.agents),
    admins: createTokenVerifier([prepared.admin]),
    // prepareGuard has checked the feed token (set, distinct from every other token) and taught it to the redactor.
    feedReaders: feedTokenVerifier(config.audit.feedTokenSecret, dependencies.env, [prepared.admin]) ?? createTokenVerifier([prepared.admin]),
  };
  const state: Omit<GuardState, "upstreams" | "startup" | "calls"> & Partial<Pick<GuardState, "upstreams" | "startup" | "calls">> = {
    config,
    options,
    logger,
    redactor: prepared.redactor,
    database,
    listen,
    auditHealth,
    approvals,
    pins,
    metrics,
    announcer,
    telegram,
    catalog,
    tokens,
    toolsChanged: () => undefined,
  };
  const { upstreams, firstAttempts } = createUpstreams(state, prepared.servers);
  const firstSync = Promise.all(firstAttempts.values()).then(() => {
    startup.firstSyncDone = true;
  });
  const startup: GuardStartup = { firstSync, firstAttempts, firstSyncDone: false, starting: true, startingWindow: firstSync };
  const calls = createToolCaller({
    config,
    catalog,
    upstreams,
    constraints: new Map(prepared.servers.map((server) => [server.name, server.constraints])),
    approvals,
    audit,
    redactor: prepared.redactor,
    metrics,
    logger,
    ...(options.progressIntervalMs === undefined ? {} : { progressIntervalMs: options.progressIntervalMs }),
  });
  return Object.assign(state, { upstreams, startup, calls });
}

/** The approver bot decides through this process's store, so a click wakes the held call at once. */
function telegramApprover(config: PerimeterConfig, dependencies: Parameters<typeof createTelegramApprover>[1]): TelegramApprover | undefined {
  if (config.approvals.telegram === undefined) return undefined;
  try {
    return createTelegramApprover(config, dependencies);
  } catch (error) {
    if (error instanceof TelegramSetupError) throw new GuardSetupError(error.message);
    throw error;
  }
}

/** One client per configured server (not started), and for each a promise that ends with its first attempt. */
function createUpstreams(
  state: Pick<GuardState, "options" | "logger" | "redactor" | "catalog" | "metrics" | "toolsChanged">,
  servers: readonly PreparedServer[],
): { upstreams: Map<string, Upstream>; firstAttempts: Map<string, Promise<void>> } {
  const { options } = state;
  const firstAttempts = new Map<string, Promise<void>>();
  const upstreams = new Map<string, Upstream>();
  for (const server of servers) {
    let settle: () => void = () => undefined;
    firstAttempts.set(server.name, new Promise<void>((resolve) => (settle = resolve)));
    const upstream = createUpstream(server.name, server.spec, {
      logger: state.logger,
      redactor: state.redactor,
      connectTimeoutMs: options.connectTimeoutMs ?? server.config.timeoutSeconds * 1000,
      // The Client times a call out at timeoutSeconds and cancels it; the transport's own bound is only a backstop.
      idleTimeoutMs: Math.max(options.connectTimeoutMs ?? 0, server.config.timeoutSeconds * 1000) + 5_000,
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      resyncIntervalMs: options.resyncIntervalMs ?? 300_000,
      clientInfo: { name: "perimeter-mcp-guard", version: GUARD_VERSION },
      onTools: (name, tools) => {
        if (state.catalog.update(name, tools)) state.toolsChanged();
      },
      onState: (name, upstreamState: UpstreamState) => {
        state.metrics.upstreamUp.set({ server: name }, upstreamState.state === "ready" ? 1 : 0);
        if (upstreamState.state === "ready" || upstreamState.state === "unavailable") settle();
      },
    });
    upstreams.set(server.name, upstream);
  }
  return { upstreams, firstAttempts };
}
