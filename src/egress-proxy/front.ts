// The listeners: the proxy port's node:http server, which routes each request to its stage (plain HTTP to
// forward.ts, CONNECT to tunnel.ts, parse errors and upgrades refused here) and tracks client connections for their
// close records; and the separate metrics listener (/metrics, /healthz).
import http from "node:http";
import type net from "node:net";
import { closeAfterAnswerIfBodyUnread } from "../shared/index.ts";
import { handleHttp } from "./forward.ts";
import { finishRecord, openRecord, recordConnectionClose } from "./record.ts";
import { clientErrorRefusal, refuseRaw, respondRefusal } from "./refusals.ts";
import type { Refusal } from "./refusals.ts";
import { auditHealthy } from "./state.ts";
import type { ConnectionState, EgressProxyState } from "./state.ts";
import { handleConnect } from "./tunnel.ts";

export function applyTimeouts(state: EgressProxyState, server: http.Server): void {
  const limits = state.effective.limits;
  server.headersTimeout = limits.headerTimeoutSeconds * 1000;
  server.requestTimeout = Math.max(limits.tunnelLifetimeSeconds * 1000, server.headersTimeout);
  server.keepAliveTimeout = limits.idleTimeoutSeconds * 1000;
  // No socket idle timeout on client connections: while a request waits on its upstream the client side is
  // idle by design, and the upstream's own idle timeout answers it with a 504 instead of a silent close.
  server.timeout = 0;
}

export function createFrontServer(state: EgressProxyState): http.Server {
  const limits = state.effective.limits;
  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    requireHostHeader: false,
    // Checked often enough that the header timeout holds to within half a second.
    connectionsCheckingInterval: Math.min(500, limits.headerTimeoutSeconds * 500),
    headersTimeout: limits.headerTimeoutSeconds * 1000,
    requestTimeout: Math.max(limits.tunnelLifetimeSeconds * 1000, limits.headerTimeoutSeconds * 1000),
    keepAliveTimeout: limits.idleTimeoutSeconds * 1000,
    noDelay: true,
  });
  applyTimeouts(state, server);
  server.on("connection", (socket: net.Socket) => onConnection(state, socket));
  const serveHttp = (expectsContinue: boolean) => (request: http.IncomingMessage, response: http.ServerResponse) => {
    handleHttp(state, request, response, expectsContinue).catch((error: unknown) => {
      state.logger.error({ err: error }, "request handler failed");
      respondRefusal(response, { reason: "upstream-error", message: "internal error in the proxy" }, false);
    });
  };
  server.on("request", serveHttp(false));
  // Expect: 100-continue is answered after the decision is recorded, so a refused upload is never read.
  server.on("checkContinue", serveHttp(true));
  server.on("connect", (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    handleConnect(state, request, socket, head).catch((error: unknown) => {
      state.logger.error({ err: error }, "CONNECT handler failed");
      socket.destroy();
    });
  });
  server.on("upgrade", (request: http.IncomingMessage, socket: net.Socket) => {
    const record = openRecord(socket.remoteAddress ?? "unix", request.method ?? "", request.url ?? "");
    const refusal: Refusal = { reason: "upgrade-not-supported", message: "protocol upgrades (WebSocket over plain http) are not forwarded; use wss:// through CONNECT" };
    finishRecord(state, record, { decision: "deny", reason: refusal.reason, detail: refusal.message });
    refuseRaw(socket, refusal);
  });
  server.on("clientError", (error: NodeJS.ErrnoException & { reason?: string }, socket: net.Socket) => handleClientError(state, error, socket));
  return server;
}

function onConnection(state: EgressProxyState, socket: net.Socket): void {
  const connection: ConnectionState = { startedAt: performance.now(), source: socket.remoteAddress ?? "unix", client: "unknown", requests: 0, hosts: new Set(), tunnel: false, upstreamErrors: 0 };
  state.connections.set(socket, connection);
  socket.once("close", () => {
    state.connections.delete(socket);
    // A tunnel writes its own close record; a connection that carried no request has nothing to say.
    if (connection.tunnel || connection.requests === 0) return;
    recordConnectionClose(state, connection, socket);
  });
}

/** Errors Node's parser raises before a request exists: malformed heads, oversized heads, slow heads. */
function handleClientError(state: EgressProxyState, error: NodeJS.ErrnoException & { reason?: string }, socket: net.Socket): void {
  if (!socket.writable || error.code === "ECONNRESET") {
    socket.destroy();
    return;
  }
  const refusal = clientErrorRefusal(error, state.effective.limits);
  finishRecord(state, openRecord(socket.remoteAddress ?? "unix", "", ""), { decision: "deny", reason: refusal.reason, detail: refusal.message });
  refuseRaw(socket, refusal);
}

/** The metrics listener: /metrics (Prometheus) and /healthz, never on the proxy port. */
export function metricsHandler(state: EgressProxyState, request: http.IncomingMessage, response: http.ServerResponse): void {
  const path = (request.url ?? "").split("?")[0];
  // Nothing here reads a body: one sent anyway is not drained (the listener is reachable by more than the scraper).
  closeAfterAnswerIfBodyUnread(response);
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.writeHead(405, { Allow: "GET, HEAD" }).end();
    return;
  }
  if (path === "/healthz") {
    // Unhealthy while the audit log refuses writes: every request is refused then, and a probe should say so. The
    // next successful commit (any request's) makes it healthy again.
    const problem =
      state.closing || state.servers.length === 0 ? "not listening" : !auditHealthy(state) ? "audit log failing: every request is refused (audit-unavailable); see the proxy's log" : undefined;
    response.writeHead(problem === undefined ? 200 : 503, { "Content-Type": "text/plain; charset=utf-8" }).end(problem === undefined ? "ok\n" : `${problem}\n`);
    return;
  }
  if (path === "/metrics") {
    state.metrics.registry.metrics().then(
      (text) => response.writeHead(200, { "Content-Type": state.metrics.registry.contentType }).end(text),
      (error: unknown) => {
        state.logger.error({ err: error }, "metrics collection failed");
        response.writeHead(500).end();
      },
    );
    return;
  }
  response.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("not found: try /metrics or /healthz\n");
}
