// mcp-guard: the agent's one MCP endpoint. It authenticates the agent, serves the tools it may use (namespaced,
// pinned, filtered), runs every call through the policy pipeline (calls.ts) and forwards it to the upstream with the
// upstream's own credentials, which the agent never sees. A second, admin listener serves the approvals API,
// /metrics and /healthz.
import { createServer } from "node:http";
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { DatabaseSync } from "node:sqlite";
import { PROTOCOL_VERSION_META_KEY, Server, createMcpHandler, isLegacyRequest, validateHostHeader, validateOriginHeader } from "@modelcontextprotocol/server";
import type { AuthInfo, CallToolResult, McpRequestContext } from "@modelcontextprotocol/server";
import { createApprovalAnnouncer, createApprovalStore } from "../approvals/index.ts";
import type { ApprovalStore, AuditAppender } from "../approvals/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { createAuditFeed } from "../audit-log/index.ts";
import { createApprovalsApi } from "../approvals/api.ts";
import type { Environment, PerimeterConfig } from "../config/index.ts";
import { closeAfterAnswerIfBodyUnread, silentLogger } from "../shared/index.ts";
import { createTelegramApprover, TelegramSetupError } from "../telegram/index.ts";
import type { TelegramApprover } from "../telegram/index.ts";
import type { Logger } from "../shared/index.ts";
import { trackAuditHealth } from "./audit-health.ts";
import { bearerToken, createTokenVerifier } from "./auth.ts";
import { createToolCaller } from "./calls.ts";
import type { ToolCaller } from "./calls.ts";
import { createCatalog } from "./catalog.ts";
import type { Catalog } from "./catalog.ts";
import { createGuardMetrics } from "./metrics.ts";
import type { GuardMetrics } from "./metrics.ts";
import { createPinStore } from "./pins.ts";
import type { PinStore } from "./pins.ts";
import { GuardSetupError, parseListen, prepareGuard } from "./setup.ts";
import { toNodeListener } from "./node-adapter.ts";
import { createLegacySessions } from "./sessions.ts";
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

export interface McpGuard {
  listen(): Promise<{ agent: AddressInfo; admin: AddressInfo }>;
  /** Resolves once every upstream has finished its first connection attempt (success or failure) or after timeoutMs. */
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
  readonly approvals: ApprovalStore;
  readonly pins: PinStore;
  readonly catalog: Catalog;
  readonly metrics: GuardMetrics;
  readonly calls: ToolCaller;
  upstream(name: string): Upstream | undefined;
}

const CAPABILITIES = {
  tools: { listChanged: true },
  // Resources and prompts of upstreams are not passed through (they are outside the tool policy): the guard answers
  // the methods with empty lists so that clients probing them get a valid, honest answer.
  resources: { subscribe: true },
  prompts: {},
  logging: {},
};

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];

function jsonError(response: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null });
  // Refused before its body was read (wrong path, Host, token): the body is never read (see src/shared/refusal.ts).
  closeAfterAnswerIfBodyUnread(response);
  response.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), "cache-control": "no-store", ...headers });
  response.end(body);
}

/**
 * A single JSON-RPC request (not `initialize`) whose params carry the per-request envelope claim
 * (`_meta["io.modelcontextprotocol/protocolVersion"]`, present with any value): the SDK never classifies one as legacy.
 */
function claimsModernEnvelope(body: unknown): boolean {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return false;
  const { jsonrpc, id, method, params } = body as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };
  if (jsonrpc !== "2.0" || typeof method !== "string" || method === "initialize" || (typeof id !== "string" && typeof id !== "number")) return false;
  if (typeof params !== "object" || params === null || Array.isArray(params)) return false;
  const meta = (params as { _meta?: unknown })._meta;
  return typeof meta === "object" && meta !== null && !Array.isArray(meta) && PROTOCOL_VERSION_META_KEY in meta;
}

function listenOn(server: HttpServer, listen: string): Promise<AddressInfo> {
  const { host, port } = parseListen(listen);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

export function createMcpGuard(config: PerimeterConfig, dependencies: McpGuardDependencies, options: McpGuardOptions = {}): McpGuard {
  const logger = dependencies.logger ?? silentLogger();
  const { database } = dependencies;
  const prepared = prepareGuard(config, dependencies.env);
  const { redactor } = prepared;
  const agentListen = options.listen ?? config.mcp.listen;
  const adminListen = options.adminListen ?? config.mcp.admin.listen;
  const agentAddress = parseListen(agentListen);
  const adminAddress = parseListen(adminListen);
  if (agentAddress.port !== 0 && agentAddress.port === adminAddress.port && (agentAddress.host === adminAddress.host || ["0.0.0.0", "::"].includes(agentAddress.host) || ["0.0.0.0", "::"].includes(adminAddress.host))) {
    throw new GuardSetupError(`mcp.listen (${agentListen}) and mcp.admin.listen (${adminListen}) must be different addresses: the admin API must not be served where the agent connects`);
  }

  // Every record the guard writes goes through one wrapper that counts failures and drives /healthz.
  let countAuditFailure: () => void = () => undefined;
  const auditHealth = trackAuditHealth(dependencies.audit, () => countAuditFailure());
  const audit = auditHealth.audit;
  const approvals = createApprovalStore({ database, audit });
  approvals.expireHeldCalls("the guard restarted while the call was waiting");
  const pins = createPinStore(database);
  const metrics = createGuardMetrics({
    approvalsPending: (kind) => approvals.countPending({ kind }),
    definitions: () => pins.counts(),
  });
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
  // The Telegram approver decides through this process's store, so a click wakes the held call at once.
  let telegram: TelegramApprover | undefined;
  try {
    telegram = config.approvals.telegram === undefined ? undefined : createTelegramApprover(config, { store: approvals, database, audit, env: dependencies.env, logger });
  } catch (error) {
    if (error instanceof TelegramSetupError) throw new GuardSetupError(error.message);
    throw error;
  }
  const catalog = createCatalog({ servers: config.mcp.servers, pins, approvals, audit, logger, trustOnFirstUse: config.mcp.pinning.trustOnFirstUse });
  const agents = createTokenVerifier(prepared.agents);
  const admins = createTokenVerifier([prepared.admin]);

  let notifyToolsChanged: () => void = () => undefined;
  const firstAttempts = new Map<string, Promise<void>>();
  const upstreams = new Map<string, Upstream>();
  for (const server of prepared.servers) {
    let settle: () => void = () => undefined;
    firstAttempts.set(server.name, new Promise<void>((resolve) => (settle = resolve)));
    const upstream = createUpstream(server.name, server.spec, {
      logger,
      redactor,
      connectTimeoutMs: options.connectTimeoutMs ?? server.config.timeoutSeconds * 1000,
      // The Client times a call out at timeoutSeconds and cancels it; the transport's own bound is only a backstop.
      idleTimeoutMs: Math.max(options.connectTimeoutMs ?? 0, server.config.timeoutSeconds * 1000) + 5_000,
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      resyncIntervalMs: options.resyncIntervalMs ?? 300_000,
      clientInfo: { name: "perimeter-mcp-guard", version: GUARD_VERSION },
      onTools: (name, tools) => {
        if (catalog.update(name, tools)) notifyToolsChanged();
      },
      onState: (name, state: UpstreamState) => {
        metrics.upstreamUp.set({ server: name }, state.state === "ready" ? 1 : 0);
        if (state.state === "ready" || state.state === "unavailable") settle();
      },
    });
    upstreams.set(server.name, upstream);
  }
  // Every upstream's first attempt is over (connected and synced, or failed): until then the guard is "starting".
  let firstSyncDone = false;
  const firstSync = Promise.all(firstAttempts.values()).then(() => {
    firstSyncDone = true;
  });
  /** What a tools/list waits for while starting: the first sync, or the bound counted from listen(). */
  let startingWindow: Promise<void> = firstSync;
  // Starting ends when a tools/list would no longer wait: /healthz says "starting" exactly that long, so a readiness
  // probe (perimeter up, Kubernetes) is not held past the bound by an external upstream that is slow to fail.
  let starting = true;
  const constraints = new Map(prepared.servers.map((server) => [server.name, server.constraints]));
  const calls = createToolCaller({
    config,
    catalog,
    upstreams,
    constraints,
    approvals,
    audit,
    redactor,
    metrics,
    logger,
    ...(options.progressIntervalMs === undefined ? {} : { progressIntervalMs: options.progressIntervalMs }),
  });

  // A decided definition review changes what the agent may see.
  const unsubscribe = approvals.subscribe((event) => {
    if (event.type !== "approval-decision" || event.approval.kind !== "tool-definition") return;
    const { server, tool, definitionHash, status, approver } = event.approval;
    pins.decide(server, tool, definitionHash, status === "approved" ? "trusted" : "denied", approver ?? "unknown");
    if (catalog.refresh(server)) notifyToolsChanged();
  });

  // One low-level Server per request (the SDK's serving model for 2026-07-28 and its stateless 2025 fallback): it
  // only adapts MCP methods to the catalog and the call pipeline, so building it is cheap.
  const factory = (context: McpRequestContext) => {
    const agent = context.authInfo?.clientId;
    if (agent === undefined) throw new Error("request reached the MCP handler without an authenticated agent");
    const server = new Server({ name: "perimeter-mcp-guard", version: GUARD_VERSION }, { capabilities: CAPABILITIES });
    server.setRequestHandler("tools/list", async () => {
      if (starting && !firstSyncDone) await startingWindow;
      return { tools: catalog.listed() };
    });
    server.setRequestHandler("tools/call", async (request, context) => {
      const progressToken = context.mcpReq._meta?.progressToken;
      const result: CallToolResult = await calls.call(
        { name: request.params.name, arguments: request.params.arguments as Record<string, unknown> | undefined },
        {
          agent,
          signal: context.mcpReq.signal,
          ...(progressToken === undefined ? {} : { progressToken }),
          notify: (notification) => context.mcpReq.notify(notification as Parameters<typeof context.mcpReq.notify>[0]),
        },
      );
      const entry = catalog.get(request.params.name);
      return server.projectCallToolResult(result, result.isError === true ? undefined : (entry?.listed.outputSchema as Record<string, unknown> | undefined));
    });
    server.setRequestHandler("resources/list", () => ({ resources: [] }));
    server.setRequestHandler("resources/templates/list", () => ({ resourceTemplates: [] }));
    server.setRequestHandler("resources/subscribe", () => ({}));
    server.setRequestHandler("resources/unsubscribe", () => ({}));
    server.setRequestHandler("prompts/list", () => ({ prompts: [] }));
    server.setRequestHandler("logging/setLevel", () => ({}));
    return server;
  };
  // 2026-07-28 requests: the SDK's per-request entry. 2025-11-25 requests: sessions (sessions.ts).
  const handler = createMcpHandler(factory, {
    legacy: "reject",
    maxRequestBodySize: config.mcp.limits.maxRequestBytes,
    onerror: (error) => logger.debug({ event: "mcp-error", error: redactor.text(error.message) }),
  });
  const legacy = createLegacySessions({ factory, logger, maxRequestBodySize: config.mcp.limits.maxRequestBytes });
  notifyToolsChanged = () => {
    handler.notify.toolsChanged();
    legacy.toolsChanged();
  };
  // The body arrives here read and parsed once (node-adapter.ts), bounded by maxRequestBytes; a body that is not JSON
  // comes as text so that the SDK answers it exactly as before.
  const routed = async (request: Request, fetchOptions: { authInfo: AuthInfo; parsedBody?: unknown }) => {
    // Requests of an open 2025 session (2026-07-28 has no sessions) skip the classification, and so do requests that
    // carry the 2026-07-28 envelope claim: isLegacyRequest is false for every one of them (the modern entry answers
    // them, or rejects a malformed one), and the entry classifies them again itself.
    if (claimsModernEnvelope(fetchOptions.parsedBody)) return handler.fetch(request, fetchOptions);
    return legacy.owns(request) || (await isLegacyRequest(request, fetchOptions.parsedBody, { maxRequestBodySize: config.mcp.limits.maxRequestBytes }))
      ? legacy.fetch(request, fetchOptions)
      : handler.fetch(request, fetchOptions);
  };
  const serveMcp = toNodeListener(routed, {
    maxRequestBytes: config.mcp.limits.maxRequestBytes,
    onerror: (error) => logger.warn({ event: "mcp-adapter-error", error: redactor.text(error.message) }),
  });

  const hostsFor = (listen: string) => {
    const { host } = parseListen(listen);
    const bracketed = host.includes(":") ? `[${host}]` : host;
    const own = host === "0.0.0.0" || host === "::" || host === "" ? [] : [bracketed];
    return [...new Set([...LOOPBACK_NAMES, ...own, ...config.mcp.allowedHosts.map((name) => name.toLowerCase())])];
  };
  const agentHosts = hostsFor(agentListen);
  const adminHosts = hostsFor(adminListen);

  /** DNS-rebinding protection: the Host must name us, and a browser's Origin must too. */
  const hostRejection = (request: IncomingMessage, allowed: string[]): string | undefined => {
    const host = validateHostHeader(request.headers.host, allowed);
    if (!host.ok) return `Host "${String(request.headers.host ?? "")}" is not allowed (add it to mcp.allowedHosts if agents reach the guard by that name)`;
    const originHeader = request.headers.origin;
    if (originHeader !== undefined && originHeader !== "") {
      const origin = validateOriginHeader(originHeader, allowed);
      if (!origin.ok) return `Origin "${originHeader}" is not allowed`;
    }
    return undefined;
  };

  const agentServer = createServer(async (request, response) => {
    try {
      const path = (request.url ?? "/").split("?")[0];
      if (path !== "/mcp") return jsonError(response, 404, "not found: the MCP endpoint is /mcp");
      const rejected = hostRejection(request, agentHosts);
      if (rejected !== undefined) {
        metrics.authFailures.inc({ reason: "host-or-origin" });
        return jsonError(response, 403, `forbidden: ${rejected}`);
      }
      // A present but malformed Authorization header counts as a wrong token, not a missing one.
      const presented = request.headers.authorization === undefined ? undefined : (bearerToken(request.headers.authorization) ?? "");
      const agent = agents.verify(presented);
      if (agent === undefined) {
        metrics.authFailures.inc({ reason: presented === undefined ? "missing-token" : "invalid-token" });
        const challenge = presented === undefined ? 'Bearer realm="perimeter-mcp-guard"' : 'Bearer realm="perimeter-mcp-guard", error="invalid_token", error_description="unknown or revoked token"';
        return jsonError(response, 401, presented === undefined ? "unauthorized: send Authorization: Bearer <the agent's token>" : "unauthorized: the token is not valid", {
          "www-authenticate": challenge,
        });
      }
      // The SDK hands authInfo to the server factory; the token itself stays here.
      const authInfo: AuthInfo = { token: "", clientId: agent, scopes: [] };
      await serveMcp(request, response, authInfo);
    } catch (error) {
      logger.error({ event: "agent-endpoint-error", error: redactor.text((error as Error).message) });
      if (!response.headersSent) jsonError(response, 500, "internal error");
      else response.end();
    }
  });
  agentServer.headersTimeout = 10_000;
  agentServer.requestTimeout = 60_000;
  agentServer.maxHeadersCount = 100;

  const approvalsApi = createApprovalsApi({
    store: approvals,
    authenticate: (authorization) => admins.verify(bearerToken(authorization)),
    onDecision: (event) => logger.info({ event: "approval-decision", ...event }, "approval decided"),
  });
  // The dashboard on another host reads this guard's records through here (docs/dashboard.md).
  const auditFeed = createAuditFeed({ database, authenticate: (authorization) => admins.verify(bearerToken(authorization)) });
  const adminServer = createServer(async (request, response) => {
    try {
      const path = (request.url ?? "/").split("?")[0];
      if (path === "/healthz") {
        const upstreamStates = Object.fromEntries([...upstreams].map(([name, upstream]) => [name, upstream.state().state]));
        // 503 while starting (a client listing tools now could miss an upstream's) and while records are being lost
        // (refusals are still answered then, but nothing would show them).
        const status = starting && !firstSyncDone ? "starting" : auditHealth.healthy() ? "ok" : "audit-failing";
        // The approver bot's state is shown but does not fail the probe: the terminal and dashboard still decide.
        const body = JSON.stringify({ status, upstreams: upstreamStates, ...(telegram === undefined ? {} : { telegram: telegram.state().state }) });
        response.writeHead(status === "ok" ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
        response.end(body);
        return;
      }
      if (path === "/metrics") {
        const text = await metrics.registry.metrics();
        response.writeHead(200, { "content-type": metrics.registry.contentType });
        response.end(text);
        return;
      }
      const rejected = hostRejection(request, adminHosts);
      if (rejected !== undefined) return jsonError(response, 403, `forbidden: ${rejected}`);
      if (await approvalsApi(request, response)) return;
      if (auditFeed(request, response)) return;
      jsonError(response, 404, "not found: /v1/approvals, /v1/audit/records, /v1/audit/head, /metrics, /healthz");
    } catch (error) {
      logger.error({ event: "admin-endpoint-error", error: redactor.text((error as Error).message) });
      if (!response.headersSent) jsonError(response, 500, "internal error");
      else response.end();
    }
  });
  adminServer.headersTimeout = 10_000;
  adminServer.requestTimeout = 30_000;

  let started = false;
  return {
    approvals,
    pins,
    catalog,
    metrics,
    calls,
    upstream: (name) => upstreams.get(name),
    async listen() {
      if (!started) {
        started = true;
        for (const upstream of upstreams.values()) upstream.start();
        telegram?.start();
        const bound = options.firstListWaitMs ?? 10_000;
        startingWindow = Promise.race([firstSync, new Promise<void>((resolve) => setTimeout(resolve, bound).unref())]).then(() => {
          starting = false;
        });
      }
      const agent = await listenOn(agentServer, agentListen);
      const admin = await listenOn(adminServer, adminListen);
      logger.info({ event: "listening", agent: `${agent.address}:${agent.port}`, admin: `${admin.address}:${admin.port}`, servers: [...upstreams.keys()] }, "mcp-guard listening");
      return { agent, admin };
    },
    async ready(timeoutMs = 30_000) {
      await Promise.race([Promise.all(firstAttempts.values()), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    },
    async close() {
      unsubscribe();
      announcer.close();
      await telegram?.close();
      await legacy.close();
      await handler.close().catch(() => undefined);
      const closing = [agentServer, adminServer].map(
        (server) =>
          new Promise<void>((resolve) => {
            if (!server.listening) return resolve();
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      );
      await Promise.all(closing);
      await Promise.all([...upstreams.values()].map((upstream) => upstream.close()));
      calls.flush();
      approvals.close();
    },
  };
}
