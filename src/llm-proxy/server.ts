// The llm-proxy HTTP server: a thin adapter that runs each request through its stages. Provider keys live here and
// nowhere in the agent: the agent holds a virtual key, the proxy checks it, redacts secrets from the prompt, reserves
// the worst-case cost, and relays the provider's answer chunk by chunk. The stages, in order:
//   admit.ts    route, virtual key, body, model (and GET /v1/models)
//   scan.ts     DLP on the body, and on each translation the failover chain needs
//   budget.ts   worst-case reservation against the key's limits, then the decision committed to the audit log
//   forward.ts  the failover chain upstream; relay.ts streams a 2xx answer back, translated where needed
//   record.ts   every record and refusal; state.ts the proxy's state and the request's
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { bindServer, closeAfterAnswerIfBodyUnread, withAuditFeed } from "../shared/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { admitRequest } from "./admit.ts";
import { reserveBudget } from "./budget.ts";
import { errorResponse } from "./errors.ts";
import { forwardRequest } from "./forward.ts";
import type { LlmProxyMetrics } from "./metrics.ts";
import { recordOutcome, sendError } from "./record.ts";
import { scanAndPrepare } from "./scan.ts";
import { buildRuntime, configClientKeys } from "./setup.ts";
import { createExchange, createLlmProxyState, relativePath, routeOf } from "./state.ts";
import type { LlmExchange, LlmProxyDependencies, LlmProxyState, RouteInfo } from "./state.ts";

export interface LlmProxy {
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then cuts them. */
  close(graceMs?: number): Promise<void>;
  /** Applies a new configuration (providers, aliases, clients, DLP); the old one stays if the new one is invalid. */
  reload(config: PerimeterConfig): void;
  readonly metrics: LlmProxyMetrics;
}

/** One request through the stages; each stage answers (and records) what it refuses, and returns undefined then. */
async function serveRequest(state: LlmProxyState, exchange: LlmExchange, request: IncomingMessage, pathname: string, relative: string, info: RouteInfo | undefined): Promise<void> {
  const admitted = await admitRequest(state, exchange, request, pathname, relative, info);
  if (admitted === undefined) return;
  const prepared = await scanAndPrepare(state, exchange, admitted);
  if (prepared === undefined) return;
  const reserved = await reserveBudget(state, exchange, admitted, prepared);
  if (reserved === undefined) return;
  try {
    await forwardRequest(state, exchange, admitted, prepared, reserved);
  } finally {
    // Whatever happened, a reservation never stays in flight forever; unsettled means charged in full.
    if (!reserved.reservation.settled) state.ledger.settle(reserved.reservation, { tokensIn: reserved.promptTokens, tokensOut: reserved.outputTokens, cost: reserved.cost });
  }
}

/** /healthz (unhealthy while the audit log cannot be written) and /metrics; false for every other path. */
async function serveOperational(state: LlmProxyState, request: IncomingMessage, response: ServerResponse, pathname: string): Promise<boolean> {
  if (pathname === "/healthz") {
    // No key is needed here, so a body sent anyway is not drained (src/shared/refusal.ts).
    closeAfterAnswerIfBodyUnread(response);
    const healthy = state.recorder.healthy();
    response.writeHead(healthy ? 200 : 503, { "content-type": "application/json" });
    response.end(JSON.stringify({ status: healthy ? "ok" : "audit-unavailable" }));
    return true;
  }
  if (pathname === "/metrics" && request.method === "GET") {
    closeAfterAnswerIfBodyUnread(response);
    const text = await state.metrics.registry.metrics();
    response.writeHead(200, { "content-type": state.metrics.registry.contentType });
    response.end(text);
    return true;
  }
  return false;
}

export async function handleLlmRequest(state: LlmProxyState, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const { pathname, relative } = relativePath(request);
  if (await serveOperational(state, request, response, pathname)) return;
  const info = routeOf(relative);
  const exchange = createExchange(relative, info, response);
  response.on("close", () => {
    if (!response.writableFinished) {
      exchange.clientGone = true;
      exchange.upstreamRequest?.destroy();
    }
  });
  try {
    await serveRequest(state, exchange, request, pathname, relative, info);
  } catch (error) {
    // A bug in one request must not take the server down, and the request is still recorded.
    state.logger.error({ err: (error as Error).stack ?? String(error), requestId: exchange.id }, "llm-request crashed");
    if (!response.headersSent) sendError(exchange, { kind: "internal", detail: "see the llm-proxy logs" });
    else response.destroy();
    void recordOutcome(state, exchange, { decision: "error", reason: "internal", status: 500 });
  }
}

function createHttpServer(state: LlmProxyState): http.Server {
  // The audit feed answers its own paths first (to the feed token only); it is not an LLM request.
  const handler = withAuditFeed(state.auditFeed, (request, response) => {
    state.metrics.inFlight.inc();
    response.once("close", () => state.metrics.inFlight.dec());
    handleLlmRequest(state, request, response).catch((error: unknown) => {
      // A bug in one request must not take the server down: answer 500 (or cut the stream) and keep serving.
      state.logger.error({ err: (error as Error).stack ?? String(error), url: request.url }, "llm-request crashed");
      if (!response.headersSent) {
        const mapped = errorResponse({ kind: "internal", detail: "see the llm-proxy logs" }, "openai");
        response.writeHead(mapped.status, mapped.headers);
        response.end(mapped.body);
      } else {
        response.destroy();
      }
    });
  });
  const server = http.createServer({ headersTimeout: 30_000, requestTimeout: 120_000, keepAliveTimeout: 5_000, maxHeaderSize: 32 * 1024 }, handler);
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    else socket.destroy();
  });
  return server;
}

export function createLlmProxy(config: PerimeterConfig, dependencies: LlmProxyDependencies): LlmProxy {
  const state = createLlmProxyState(config, dependencies);
  const server = createHttpServer(state);
  return {
    metrics: state.metrics,
    async listen(host, port) {
      const bound = await bindServer(server, { kind: "tcp", host, port });
      if (bound.kind !== "tcp") throw new Error("llm-proxy listens on TCP only");
      state.logger.info({ host: bound.host, port: bound.port, providers: [...state.runtime.providers.keys()] }, "llm-proxy listening");
      return { host: bound.host, port: bound.port };
    },
    async close(graceMs = 5_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
      state.dialer.close();
    },
    reload(next) {
      const built = buildRuntime(next, state.environment);
      state.keyStore.syncConfigClients(configClientKeys(next, state.environment));
      state.runtime = built;
      state.logger.info({ providers: [...built.providers.keys()] }, "llm-proxy configuration reloaded");
    },
  };
}
