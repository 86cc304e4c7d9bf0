// The runner's HTTP edge. The MCP listener: /healthz, then /mcp only, the bearer token checked before any body is
// read, loopback Host names only when it listens on loopback (DNS rebinding), the caller taken from
// X-Perimeter-Caller, the body read (bounded) to catch cancellations and handed to the MCP handler. The metrics
// listener: GET /metrics and /healthz, no token, nothing that runs a command.
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { validateHostHeader } from "@modelcontextprotocol/server";
import type { AuthInfo } from "@modelcontextprotocol/server";
import { bearerToken, bindServer, BodyTooLargeError, closeAfterAnswerIfBodyUnread, parseListenAddress, readBoundedBody, withAuditFeed } from "../shared/index.ts";
import type { TcpAddress } from "../shared/index.ts";
import type { SandboxServerState } from "./server-state.ts";
import { cancelInFlight, DEFAULT_CALLER } from "./server-tools.ts";

export type RunnerRequestHandler = (request: IncomingMessage, response: ServerResponse) => Promise<void>;
/** The MCP SDK's Node handler, given the request with its AuthInfo (or a buffered stand-in for it). */
export type McpNodeHandler = (request: IncomingMessage | (AsyncIterable<Buffer> & { method?: string; url?: string; headers: IncomingMessage["headers"]; auth: AuthInfo }), response: ServerResponse) => Promise<void>;

const CALLER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const UNHEALTHY = "audit log failing: every run is refused; see the runner's log\n";

function answerHealth(state: SandboxServerState, response: ServerResponse): void {
  // Unhealthy while the audit log refuses writes: every run is refused then, and a probe should say so.
  if (state.recorder.healthy()) response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
  else response.writeHead(503, { "content-type": "text/plain" }).end(UNHEALTHY);
}

/** Answers what is not an authorized MCP request on an allowed Host; true when it did. */
function refusedBeforeMcp(state: SandboxServerState, request: IncomingMessage, response: ServerResponse, path: string | undefined): boolean {
  if (path === "/metrics") {
    closeAfterAnswerIfBodyUnread(response);
    response.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are served on the metrics listener (perimeter serve sandbox --metrics-listen HOST:PORT), without a token\n");
    return true;
  }
  if (path !== "/mcp") {
    closeAfterAnswerIfBodyUnread(response);
    response.writeHead(404, { "content-type": "text/plain" }).end("not found: the MCP endpoint is /mcp\n");
    return true;
  }
  if (state.token.verify(bearerToken(request.headers.authorization)) === undefined) {
    const presented = request.headers.authorization !== undefined;
    // Refused before its body is read: the body never is (src/shared/refusal.ts).
    closeAfterAnswerIfBodyUnread(response);
    response
      .writeHead(401, { "content-type": "application/json", "www-authenticate": `Bearer realm="perimeter-sandbox"${presented ? ', error="invalid_token"' : ""}` })
      .end(JSON.stringify({ error: presented ? "invalid_token" : "unauthorized", error_description: "present the sandbox runner's token as Authorization: Bearer TOKEN" }));
    return true;
  }
  // DNS rebinding: on loopback, only loopback names may address us.
  if (state.loopbackOnly && !validateHostHeader(request.headers.host ?? null, ["localhost", "127.0.0.1", "[::1]"]).ok) {
    closeAfterAnswerIfBodyUnread(response);
    response.writeHead(403, { "content-type": "text/plain" }).end("forbidden host\n");
    return true;
  }
  return false;
}

/** The MCP listener's handler. */
export function mcpRequestHandler(state: SandboxServerState, serveMcp: McpNodeHandler): RunnerRequestHandler {
  return async (request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      // No token is needed for a probe, so a body sent anyway is not drained (src/shared/refusal.ts).
      closeAfterAnswerIfBodyUnread(response);
      return answerHealth(state, response);
    }
    if (refusedBeforeMcp(state, request, response, path)) return;
    const named = request.headers["x-perimeter-caller"];
    const caller = typeof named === "string" && CALLER.test(named) ? named : DEFAULT_CALLER;
    // A call is served within one HTTP exchange: if the client drops it, the run it started is stopped.
    const disconnected = new AbortController();
    response.on("close", () => {
      if (!response.writableFinished) disconnected.abort();
    });
    const auth: AuthInfo = { token: "bearer", clientId: caller, scopes: [], extra: { disconnected: disconnected.signal } };
    if (request.method !== "POST") return serveMcp(Object.assign(request, { auth }), response);
    // Buffer the body (bounded) to look for cancellations, then hand the same bytes to the MCP handler.
    let body: Buffer;
    try {
      body = await readBoundedBody(request, { limit: state.maxRequestBytes });
    } catch (error) {
      if (!(error instanceof BodyTooLargeError)) throw error;
      // The rest is never read: the answer goes out and the connection closes (src/shared/refusal.ts).
      closeAfterAnswerIfBodyUnread(response);
      response.writeHead(413, { "content-type": "text/plain" }).end(`request body over ${state.maxRequestBytes} bytes: send large files in several write_file calls\n`);
      return;
    }
    if (body.length < 65536 && body.includes("notifications/cancelled")) {
      try {
        cancelInFlight(state, caller, JSON.parse(body.toString("utf8")));
      } catch {
        // Not JSON: the MCP handler answers with a parse error.
      }
    }
    const buffered = {
      method: request.method,
      url: request.url,
      headers: request.headers,
      auth,
      async *[Symbol.asyncIterator]() {
        yield body;
      },
    };
    await serveMcp(buffered, response);
  };
}

/**
 * The metrics listener's handler: /metrics and /healthz, GET only, no token (it runs nothing); with an audit feed,
 * its /v1/audit/* routes too, to the feed token only.
 */
export function metricsRequestHandler(state: SandboxServerState): RunnerRequestHandler {
  const feed = withAuditFeed(state.auditFeed, metricsAndHealth(state));
  return async (request, response) => feed(request, response);
}

function metricsAndHealth(state: SandboxServerState): RunnerRequestHandler {
  return async (request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    closeAfterAnswerIfBodyUnread(response);
    if (path !== "/metrics" && path !== "/healthz") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: this listener serves /metrics and /healthz only (MCP is on the main listener)\n");
    } else if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { "content-type": "text/plain", allow: "GET, HEAD" }).end("the metrics listener answers GET only\n");
    } else if (path === "/metrics") {
      response.writeHead(200, { "content-type": state.metrics.registry.contentType }).end(await state.metrics.registry.metrics());
    } else {
      answerHealth(state, response);
    }
  };
}

/** Whether a listen host is loopback for the Host header check (the names the MCP SDK's validation accepts). */
const LOOPBACK_LISTEN_HOSTS = new Set(["127.0.0.1", "::1", "localhost"]);

/** Listens on HOST:PORT (port 0: any free port) with `handle`; a crash in a request is that request's 500. */
export async function listenRunner(state: SandboxServerState, target: string, handle: RunnerRequestHandler, path: string): Promise<{ host: string; port: number; url: string; loopback: boolean }> {
  // Without { unix: true } the parser gives TCP addresses only.
  const address = parseListenAddress(target, { example: "127.0.0.1:8701" }) as TcpAddress;
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      state.logger.error({ event: "request-crashed", error: (error as Error).stack }, "sandbox server request failed");
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" });
      response.end("internal error\n");
    });
  });
  server.requestTimeout = 0; // runs may take minutes; the task's own timeout bounds them
  const bound = await bindServer(server, address);
  state.servers.push(server);
  if (bound.kind !== "tcp") throw new Error("the sandbox runner listens on TCP only");
  return { host: bound.host, port: bound.port, url: `${bound.url}${path}`, loopback: LOOPBACK_LISTEN_HOSTS.has(address.host) };
}
