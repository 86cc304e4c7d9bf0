// The dashboard's HTTP server: a thin adapter from requests to the index, the chain monitor, the approvals admin
// API and the page renderers. Every answer carries a strict Content-Security-Policy (no inline script, nothing from
// another origin); every page but /login needs a session; every state change needs the session's CSRF token and a
// same-origin Origin; every body is bounded; every value that is a known secret is masked before it leaves.
// This file builds the service state and dispatches; the routes live in routes-*.ts, the shared answers in state.ts.
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { closeAfterAnswerIfBodyUnread, isWildcardHost, parseListenAddress } from "../shared/index.ts";
import type { TcpAddress } from "../shared/index.ts";
import { errorPage } from "./pages.ts";
import { auditRoute, eventsRoute, ingestTick, keepTailsAlive } from "./routes-audit.ts";
import { chainJsonRoute, chainStatusRoute, healthRoute } from "./routes-chain.ts";
import { handleAction, handleLogin } from "./routes-decisions.ts";
import { approvalsRoute, egressRoute, llmRoute, reviewsRoute } from "./routes-pages.ts";
import { createSessionStore, readCookie } from "./session.ts";
import { RequestError, SECURITY_HEADERS, hostAllowed, pageContext, record, redirect, refusalFields, refuse, scrubSecrets, send, sendJsonAnswer } from "./state.ts";
import type { DashboardOptions, DashboardRequest, DashboardState } from "./state.ts";

export type { DashboardAudit, DashboardOptions } from "./state.ts";

export interface Dashboard {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];
const STATIC: Record<string, { file: string; type: string }> = {
  "/static/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/static/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
};

type Route = (state: DashboardState, context: DashboardRequest) => void | Promise<void>;

/** GET pages that need a session, by path. */
const PAGES: Readonly<Record<string, Route>> = {
  "/": (_state, context) => redirect(context.response, "/approvals"),
  "/approvals": approvalsRoute,
  "/reviews": reviewsRoute,
  "/audit": auditRoute,
  "/events": eventsRoute,
  "/chain.json": chainJsonRoute,
  "/chain-status": chainStatusRoute,
  "/egress": egressRoute,
  "/llm": llmRoute,
  "/health": healthRoute,
};

function parseDashboardListen(listen: string): TcpAddress {
  return parseListenAddress(listen, { what: "dashboard.listen", example: "127.0.0.1:8720" }) as TcpAddress;
}

/** The Host names a request may carry: loopback, the listen host unless it is a wildcard, and the configured ones. */
export function allowedHostNames(listenHost: string, extra: readonly string[] = []): Set<string> {
  const ownHost = isWildcardHost(listenHost) ? [] : [listenHost.includes(":") ? `[${listenHost}]` : listenHost];
  return new Set([...LOOPBACK_NAMES, ...ownHost, ...extra].map((name) => name.toLowerCase()));
}

function createState(options: DashboardOptions): DashboardState {
  const now = options.now ?? Date.now;
  const secure = options.tls !== undefined;
  const assets = new Map(Object.entries(STATIC).map(([path, asset]) => [path, { body: readFileSync(new URL(`./static/${asset.file}`, import.meta.url)), type: asset.type }]));
  const secrets = [...new Set([options.adminToken, ...options.secrets].filter((value) => value.length >= 6))].sort((left, right) => right.length - left.length);
  return {
    options,
    logger: options.logger,
    index: options.index,
    chain: options.chain,
    now,
    sessions: createSessionStore({ adminToken: options.adminToken, lifetimeMs: options.sessionMinutes * 60_000, now }),
    secure,
    cookieName: secure ? "__Host-perimeter-session" : "perimeter-session",
    allowedHosts: allowedHostNames(parseDashboardListen(options.listen).host, options.allowedHosts),
    assets,
    secrets,
    tails: new Set(),
    ingesting: false,
  };
}

function serveAsset(response: ServerResponse, asset: { body: Buffer; type: string }): void {
  closeAfterAnswerIfBodyUnread(response);
  response.writeHead(200, { ...SECURITY_HEADERS, "content-type": asset.type, "content-length": String(asset.body.length), "cache-control": "no-cache" });
  response.end(asset.body);
}

/** The order of checks: health, Host, static files, login, session, then a POST action or a GET page. */
async function dispatch(state: DashboardState, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? "/", "http://dashboard.invalid");
  const path = url.pathname;
  const method = request.method ?? "GET";
  if (path === "/healthz") return sendJsonAnswer(state, response, 200, { status: "ok" });
  if (!hostAllowed(state.allowedHosts, request)) {
    return refuse(state, { request, response, session: undefined }, 403, "host", `Host "${String(request.headers.host ?? "")}" is not allowed: reach the dashboard at its listen address or add the name to dashboard.allowedHosts`);
  }
  const asset = state.assets.get(path);
  if (asset !== undefined && method === "GET") return serveAsset(response, asset);
  const session = state.sessions.get(readCookie(request.headers.cookie, state.cookieName));
  const context: DashboardRequest = { request, response, url, path, method, session };
  if (path === "/login") return handleLogin(state, context);
  if (session === undefined) return refuseWithoutSession(state, context);
  if (method === "POST") return handleAction(state, context, session);
  if (method !== "GET") return send(state, response, 405, "use GET or POST", { allow: "GET, POST", "content-type": "text/plain" });
  const route = Object.hasOwn(PAGES, path) ? PAGES[path] : undefined;
  if (route === undefined) throw new RequestError("not_found", "not-found", `no page ${path}`);
  return route(state, context);
}

function refuseWithoutSession(state: DashboardState, context: DashboardRequest): void {
  const { request, response, method, path } = context;
  if (method === "GET" && !path.startsWith("/events") && !path.endsWith(".json")) return redirect(response, "/login");
  refuse(state, context, 401, request.headers.cookie === undefined ? "no-session" : "bad-session", "Log in first: this needs a session.");
}

/** The one error mapper: a RequestError is a recorded refusal with its status, anything else a logged 500. */
function answerFailure(state: DashboardState, request: IncomingMessage, response: ServerResponse, error: unknown): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  if (error instanceof RequestError) {
    if (error.status === 413 || error.status === 415 || error.status === 400 || error.status === 408) record(state, "dashboard-refusal", refusalFields(request, error.status, error.reason));
    return send(state, response, error.status, errorPage(pageContext(state, undefined), "Refused", error.message));
  }
  state.logger.error({ event: "dashboard-error", error: scrubSecrets(state.secrets, (error as Error).stack ?? String(error)) });
  send(state, response, 500, errorPage(pageContext(state, undefined), "Error", "internal error (logged)"));
}

function createHttp(state: DashboardState): Server {
  const onRequest = (request: IncomingMessage, response: ServerResponse) => {
    dispatch(state, request, response).catch((error: unknown) => answerFailure(state, request, response, error));
  };
  const { tls } = state.options;
  const server: Server = tls === undefined ? createHttpServer(onRequest) : createHttpsServer({ cert: tls.cert, key: tls.key }, onRequest);
  server.headersTimeout = 10_000;
  server.requestTimeout = 0; // live tails stay open; bodies are bounded and read with their own limit
  server.maxHeadersCount = 100;
  return server;
}

export function createDashboard(options: DashboardOptions): Dashboard {
  const state = createState(options);
  const server = createHttp(state);
  const ingestTimer = setInterval(() => ingestTick(state), options.ingestIntervalMs ?? 500);
  ingestTimer.unref();
  const keepAlive = setInterval(() => keepTailsAlive(state), 15_000);
  keepAlive.unref();
  return {
    listen() {
      const { host, port } = parseDashboardListen(options.listen);
      // Index what is there before the first page, within the same bound as a tick.
      ingestTick(state);
      void state.chain.check();
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host, port }, () => {
          server.off("error", reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    async close() {
      clearInterval(ingestTimer);
      clearInterval(keepAlive);
      for (const tail of state.tails) tail.response.end();
      state.tails.clear();
      await new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await state.chain.close();
    },
  };
}
