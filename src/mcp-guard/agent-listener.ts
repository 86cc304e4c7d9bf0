// The agent's listener: only /mcp, only with a Host (and Origin) that names the guard, only with an agent's bearer
// token. The token stops here; the MCP endpoint (mcp-endpoint.ts) learns only which agent it is.
import { createServer } from "node:http";
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import type { AuthInfo } from "@modelcontextprotocol/server";
import { bearerToken } from "../shared/index.ts";
import type { GuardState } from "./guard-state.ts";
import { allowedHostsFor, hostRejection, jsonError, pathOf } from "./listener-http.ts";
import type { McpEndpoint } from "./mcp-endpoint.ts";

export function createAgentListener(state: GuardState, endpoint: McpEndpoint): HttpServer {
  const allowed = allowedHostsFor(state.listen.agent, state.config.mcp.allowedHosts);
  const server = createServer(async (request, response) => {
    try {
      await serveAgentRequest(state, endpoint, allowed, request, response);
    } catch (error) {
      state.logger.error({ event: "agent-endpoint-error", error: state.redactor.text((error as Error).message) });
      if (!response.headersSent) jsonError(response, 500, "internal error");
      else response.end();
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;
  server.maxHeadersCount = 100;
  return server;
}

async function serveAgentRequest(state: GuardState, endpoint: McpEndpoint, allowed: string[], request: IncomingMessage, response: ServerResponse): Promise<void> {
  const { metrics } = state;
  if (pathOf(request) !== "/mcp") return jsonError(response, 404, "not found: the MCP endpoint is /mcp");
  const rejected = hostRejection(request, allowed);
  if (rejected !== undefined) {
    metrics.authFailures.inc({ reason: "host-or-origin" });
    return jsonError(response, 403, `forbidden: ${rejected}`);
  }
  // A present but malformed Authorization header counts as a wrong token, not a missing one.
  const presented = request.headers.authorization === undefined ? undefined : (bearerToken(request.headers.authorization) ?? "");
  const agent = state.tokens.agents.verify(presented);
  if (agent === undefined) {
    metrics.authFailures.inc({ reason: presented === undefined ? "missing-token" : "invalid-token" });
    const challenge = presented === undefined ? 'Bearer realm="perimeter-mcp-guard"' : 'Bearer realm="perimeter-mcp-guard", error="invalid_token", error_description="unknown or revoked token"';
    return jsonError(response, 401, presented === undefined ? "unauthorized: send Authorization: Bearer <the agent's token>" : "unauthorized: the token is not valid", {
      "www-authenticate": challenge,
    });
  }
  // The SDK hands authInfo to the server factory; the token itself stays here.
  const authInfo: AuthInfo = { token: "", clientId: agent, scopes: [] };
  await endpoint.serve(request, response, authInfo);
}
