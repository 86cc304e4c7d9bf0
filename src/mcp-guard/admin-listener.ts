// The admin listener (mcp.admin.listen, never where the agent connects):
//   /healthz, /metrics                    no token (a probe and a scraper)
//   /v1/approvals...                      the admin token only (src/approvals/api.ts)
//   /v1/audit/head, /v1/audit/records     the admin token, or the read-only feed token (audit.feedTokenSecret), so
//                                         that a dashboard on another host copies the chain without the admin token
// The feed token opens the feed routes and nothing else; an agent's token opens nothing here.
import { createServer } from "node:http";
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import { createApprovalsApi } from "../approvals/index.ts";
import { createAuditFeed } from "../audit-log/index.ts";
import { bearerToken, closeAfterAnswerIfBodyUnread } from "../shared/index.ts";
import type { GuardState } from "./guard-state.ts";
import { allowedHostsFor, hostRejection, jsonError, pathOf } from "./listener-http.ts";

type Route = (request: IncomingMessage, response: ServerResponse) => boolean | Promise<boolean>;

export function createAdminListener(state: GuardState): HttpServer {
  const { tokens, logger } = state;
  const allowed = allowedHostsFor(state.listen.admin, state.config.mcp.allowedHosts);
  const admin = (authorization: string | undefined) => tokens.admins.verify(bearerToken(authorization));
  const approvalsApi = createApprovalsApi({
    store: state.approvals,
    authenticate: admin,
    onDecision: (event) => logger.info({ event: "approval-decision", ...event }, "approval decided"),
  });
  // The dashboard on another host reads this guard's records through here (docs/dashboard.md).
  const auditFeed = createAuditFeed({
    database: state.database,
    authenticate: (authorization) => tokens.feedReaders.verify(bearerToken(authorization)),
    ...(state.config.audit.feedTokenSecret === undefined ? {} : { tokenHint: "the admin token or the audit feed token (audit.feedTokenSecret)" }),
  });
  const routes: Route[] = [approvalsApi, auditFeed];
  const server = createServer(async (request, response) => {
    try {
      await serveAdminRequest(state, allowed, routes, request, response);
    } catch (error) {
      logger.error({ event: "admin-endpoint-error", error: state.redactor.text((error as Error).message) });
      if (!response.headersSent) jsonError(response, 500, "internal error");
      else response.end();
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return server;
}

async function serveAdminRequest(state: GuardState, allowed: string[], routes: readonly Route[], request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = pathOf(request);
  // No token is needed for these two, so a body sent anyway is not drained (src/shared/refusal.ts).
  if (path === "/healthz" || path === "/metrics") closeAfterAnswerIfBodyUnread(response);
  if (path === "/healthz") return health(state, response);
  if (path === "/metrics") {
    const text = await state.metrics.registry.metrics();
    response.writeHead(200, { "content-type": state.metrics.registry.contentType });
    response.end(text);
    return;
  }
  const rejected = hostRejection(request, allowed);
  if (rejected !== undefined) return jsonError(response, 403, `forbidden: ${rejected}`);
  for (const route of routes) if (await route(request, response)) return;
  jsonError(response, 404, "not found: /v1/approvals, /v1/audit/records, /v1/audit/head, /metrics, /healthz");
}

function health(state: GuardState, response: ServerResponse): void {
  const { startup, telegram } = state;
  const upstreams = Object.fromEntries([...state.upstreams].map(([name, upstream]) => [name, upstream.state().state]));
  // 503 while starting (a client listing tools now could miss an upstream's) and while records are being lost
  // (refusals are still answered then, but nothing would show them).
  const status = startup.starting && !startup.firstSyncDone ? "starting" : state.auditHealth.healthy() ? "ok" : "audit-failing";
  // The approver bot's state is shown but does not fail the probe: the terminal and dashboard still decide.
  const body = JSON.stringify({ status, upstreams, ...(telegram === undefined ? {} : { telegram: telegram.state().state }) });
  response.writeHead(status === "ok" ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
  response.end(body);
}
