// The MCP side of the agent's endpoint: the methods the guard answers (tools from the catalog, calls through the
// pipeline in calls.ts, honest empty lists for what it does not pass through), served for both protocol revisions
// (the SDK's per-request entry for 2026-07-28, sessions for 2025-11-25 in sessions.ts) behind one Node listener that
// reads each body once (node-adapter.ts). Authentication and Host checks happen before it (agent-listener.ts).
import type { IncomingMessage, ServerResponse } from "node:http";
import { PROTOCOL_VERSION_META_KEY, Server, createMcpHandler, isLegacyRequest } from "@modelcontextprotocol/server";
import type { AuthInfo, CallToolResult, McpRequestContext } from "@modelcontextprotocol/server";
import type { GuardState } from "./guard-state.ts";
import { GUARD_VERSION } from "./guard-state.ts";
import { toNodeListener } from "./node-adapter.ts";
import { createLegacySessions } from "./sessions.ts";

const CAPABILITIES = {
  tools: { listChanged: true },
  // Resources and prompts of upstreams are not passed through (they are outside the tool policy): the guard answers
  // the methods with empty lists so that clients probing them get a valid, honest answer.
  resources: { subscribe: true },
  prompts: {},
  logging: {},
};

export interface McpEndpoint {
  /** Serves one authenticated agent request. */
  serve(request: IncomingMessage, response: ServerResponse, authInfo: AuthInfo): Promise<void>;
  close(): Promise<void>;
}

/**
 * A single JSON-RPC request (not `initialize`) whose params carry the per-request envelope claim
 * (`_meta["io.modelcontextprotocol/protocolVersion"]`, present with any value): the SDK never classifies one as legacy.
 */
export function claimsModernEnvelope(body: unknown): boolean {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return false;
  const { jsonrpc, id, method, params } = body as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };
  if (jsonrpc !== "2.0" || typeof method !== "string" || method === "initialize" || (typeof id !== "string" && typeof id !== "number")) return false;
  if (typeof params !== "object" || params === null || Array.isArray(params)) return false;
  const meta = (params as { _meta?: unknown })._meta;
  return typeof meta === "object" && meta !== null && !Array.isArray(meta) && PROTOCOL_VERSION_META_KEY in meta;
}

/**
 * One low-level Server per request (the SDK's serving model for 2026-07-28 and its stateless 2025 fallback): it only
 * adapts MCP methods to the catalog and the call pipeline, so building it is cheap.
 */
function serverFor(state: GuardState, context: McpRequestContext): Server {
  const { catalog, calls, startup } = state;
  const agent = context.authInfo?.clientId;
  if (agent === undefined) throw new Error("request reached the MCP handler without an authenticated agent");
  const server = new Server({ name: "perimeter-mcp-guard", version: GUARD_VERSION }, { capabilities: CAPABILITIES });
  server.setRequestHandler("tools/list", async () => {
    if (startup.starting && !startup.firstSyncDone) await startup.startingWindow;
    return { tools: catalog.listed() };
  });
  server.setRequestHandler("tools/call", async (request, requestContext) => {
    const progressToken = requestContext.mcpReq._meta?.progressToken;
    const result: CallToolResult = await calls.call(
      { name: request.params.name, arguments: request.params.arguments as Record<string, unknown> | undefined },
      {
        agent,
        signal: requestContext.mcpReq.signal,
        ...(progressToken === undefined ? {} : { progressToken }),
        notify: (notification) => requestContext.mcpReq.notify(notification as Parameters<typeof requestContext.mcpReq.notify>[0]),
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
}

/** Builds the endpoint and wires the state's toolsChanged to both revisions' notifications. */
export function createMcpEndpoint(state: GuardState): McpEndpoint {
  const { config, logger, redactor } = state;
  const maxRequestBytes = config.mcp.limits.maxRequestBytes;
  const factory = (context: McpRequestContext) => serverFor(state, context);
  // 2026-07-28 requests: the SDK's per-request entry. 2025-11-25 requests: sessions (sessions.ts).
  const handler = createMcpHandler(factory, {
    legacy: "reject",
    maxRequestBodySize: maxRequestBytes,
    onerror: (error) => logger.debug({ event: "mcp-error", error: redactor.text(error.message) }),
  });
  const legacy = createLegacySessions({ factory, logger, maxRequestBodySize: maxRequestBytes });
  state.toolsChanged = () => {
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
    return legacy.owns(request) || (await isLegacyRequest(request, fetchOptions.parsedBody, { maxRequestBodySize: maxRequestBytes }))
      ? legacy.fetch(request, fetchOptions)
      : handler.fetch(request, fetchOptions);
  };
  const serve = toNodeListener(routed, {
    maxRequestBytes,
    onerror: (error) => logger.warn({ event: "mcp-adapter-error", error: redactor.text(error.message) }),
  });
  return {
    serve,
    async close() {
      await legacy.close();
      await handler.close().catch(() => undefined);
    },
  };
}
