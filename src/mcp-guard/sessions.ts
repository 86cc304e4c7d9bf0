// Serving 2025-11-25 clients with sessions. The SDK's default 2025 fallback is stateless (a fresh server per request,
// no GET stream), which loses what most 2025 clients (Hermes among them) rely on: a session id, concurrent SSE
// streams, list_changed notifications pushed on the GET stream, and cancellation. Each session is bound to the agent
// whose token opened it (another agent's token cannot ride it), idles out, and is capped per agent and overall.
import { randomUUID } from "node:crypto";
import { WebStandardStreamableHTTPServerTransport, isInitializeRequest, legacyStatelessFallback } from "@modelcontextprotocol/server";
import type { AuthInfo, McpRequestContext, Server } from "@modelcontextprotocol/server";
import type { Logger } from "../shared/index.ts";

export interface LegacySessionsOptions {
  factory: (context: McpRequestContext) => Server;
  logger: Logger;
  maxSessionsPerAgent?: number;
  maxSessions?: number;
  idleTimeoutMs?: number;
  maxRequestBodySize: number;
}

interface Session {
  id: string;
  agent: string;
  transport: WebStandardStreamableHTTPServerTransport;
  server: Server;
  lastUsed: number;
}

export interface LegacySessions {
  /** parsedBody: the POST body already parsed by the caller (the request's own body is then not read). */
  fetch(request: Request, options?: { authInfo?: AuthInfo; parsedBody?: unknown }): Promise<Response>;
  /** Pushes notifications/tools/list_changed to every open session. */
  toolsChanged(): void;
  count(): number;
  /** Whether a request carries the id of an open session (routes it without classifying its body). */
  owns(request: Request): boolean;
  close(): Promise<void>;
}

function jsonRpcError(status: number, code: number, message: string): Response {
  return new Response(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }), { status, headers: { "content-type": "application/json" } });
}

export function createLegacySessions(options: LegacySessionsOptions): LegacySessions {
  const sessions = new Map<string, Session>();
  const perAgent = options.maxSessionsPerAgent ?? 32;
  const total = options.maxSessions ?? 1024;
  const idle = options.idleTimeoutMs ?? 30 * 60_000;
  const stateless = legacyStatelessFallback(options.factory, undefined, { maxRequestBodySize: options.maxRequestBodySize });

  const drop = (session: Session, why: string) => {
    if (!sessions.delete(session.id)) return;
    options.logger.debug({ event: "session-close", agent: session.agent, reason: why });
    void session.transport.close().catch(() => undefined);
    void session.server.close().catch(() => undefined);
  };
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const session of sessions.values()) if (now - session.lastUsed > idle) drop(session, "idle");
  }, Math.min(idle, 60_000));
  sweeper.unref();

  /** Makes room for a new session: the agent's least recently used one first, then anyone's. */
  const makeRoom = (agent: string) => {
    const lru = (candidates: Session[]) => candidates.sort((a, b) => a.lastUsed - b.lastUsed)[0];
    const own = [...sessions.values()].filter((session) => session.agent === agent);
    if (own.length >= perAgent) drop(lru(own) as Session, "per-agent session limit");
    if (sessions.size >= total) drop(lru([...sessions.values()]) as Session, "session limit");
  };

  return {
    async fetch(request, fetchOptions = {}) {
      const agent = fetchOptions.authInfo?.clientId;
      if (agent === undefined) return jsonRpcError(401, -32001, "unauthenticated");
      const sessionId = request.headers.get("mcp-session-id");
      if (sessionId !== null) {
        const session = sessions.get(sessionId);
        // Unknown, expired, or opened by another agent: the client must start a new session (spec: 404).
        if (session === undefined || session.agent !== agent) return jsonRpcError(404, -32001, "Session not found");
        session.lastUsed = Date.now();
        return session.transport.handleRequest(request, { authInfo: fetchOptions.authInfo as AuthInfo, ...(fetchOptions.parsedBody === undefined ? {} : { parsedBody: fetchOptions.parsedBody }) });
      }
      let body: unknown = fetchOptions.parsedBody;
      if (body === undefined && request.method === "POST") {
        try {
          body = await request.clone().json();
        } catch {
          body = undefined;
        }
      }
      const initializing = Array.isArray(body) ? body.some((message) => isInitializeRequest(message)) : isInitializeRequest(body);
      if (!initializing) {
        // A client that never took a session (or a one-off POST) is served statelessly, as the SDK does by default.
        return stateless(request, { authInfo: fetchOptions.authInfo as AuthInfo, ...(body === undefined ? {} : { parsedBody: body }) });
      }
      makeRoom(agent);
      const server = options.factory({ era: "legacy", authInfo: fetchOptions.authInfo as AuthInfo, requestInfo: request });
      let session: Session | undefined;
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        maxRequestBodySize: options.maxRequestBodySize,
        onsessioninitialized: (id) => {
          session = { id, agent, transport, server, lastUsed: Date.now() };
          sessions.set(id, session);
        },
        onsessionclosed: (id) => {
          const closing = sessions.get(id);
          if (closing !== undefined) drop(closing, "client ended the session");
        },
      });
      transport.onclose = () => {
        if (session !== undefined) sessions.delete(session.id);
      };
      await server.connect(transport);
      return transport.handleRequest(request, { authInfo: fetchOptions.authInfo as AuthInfo, ...(body === undefined ? {} : { parsedBody: body }) });
    },
    toolsChanged() {
      for (const session of sessions.values()) void session.server.sendToolListChanged().catch(() => undefined);
    },
    count: () => sessions.size,
    owns(request) {
      const id = request.headers.get("mcp-session-id");
      return id !== null && sessions.has(id);
    },
    async close() {
      clearInterval(sweeper);
      for (const session of [...sessions.values()]) drop(session, "shutdown");
    },
  };
}
