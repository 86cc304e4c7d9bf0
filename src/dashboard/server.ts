// The dashboard's HTTP server: a thin adapter from requests to the index, the chain monitor, the approvals admin
// API and the page renderers. Every answer carries a strict Content-Security-Policy (no inline script, nothing from
// another origin); every page but /login needs a session; every state change needs the session's CSRF token and a
// same-origin Origin; every body is bounded; every value that is a known secret is masked before it leaves.
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { ApprovalsApiError } from "../approvals/index.ts";
import type { Approval, ApprovalsClient } from "../approvals/index.ts";
import type { Logger } from "../shared/index.ts";
import { closeAfterAnswerIfBodyUnread } from "../shared/index.ts";
import type { AuditFilter, AuditIndex } from "./audit-index.ts";
import type { ChainMonitor } from "./chain.ts";
import { escapeHtml } from "./html.ts";
import type { SafeHtml } from "./html.ts";
import { approvalsPage, auditPage, chainBanner, egressPage, errorPage, healthPage, llmPage, loginPage, recordRow, reviewsPage } from "./pages.ts";
import type { KeySpend, PageContext, ServiceHealth } from "./pages.ts";
import { createSessionStore, readCookie } from "./session.ts";
import type { Session } from "./session.ts";

export interface DashboardAudit {
  append(event: { component: "dashboard"; type: string; [field: string]: unknown }): unknown;
}

export interface DashboardOptions {
  /** HOST:PORT; port 0 picks a free one (tests). */
  listen: string;
  adminToken: string;
  sessionMinutes: number;
  approvals: ApprovalsClient;
  index: AuditIndex;
  chain: ChainMonitor;
  /** Service name to its /healthz URL. */
  health: Record<string, string>;
  keySpend: () => { keys: KeySpend[]; errors: string[] };
  /** Values never to show (the admin token is always among them). */
  secrets: readonly string[];
  allowedHosts?: readonly string[];
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Records logins and refused requests; a failure to record is logged (the refusal stands either way). */
  audit?: DashboardAudit;
  logger: Logger;
  /** How often new audit records are indexed and pushed to live tails. @default 500 */
  ingestIntervalMs?: number;
  now?: () => number;
}

export interface Dashboard {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

const MAX_BODY = 16 * 1024;
const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  // Not no-referrer: with it Chromium sends "Origin: null" on the page's own form posts, which the Origin check refuses.
  "referrer-policy": "same-origin",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=()",
  "cache-control": "no-store",
};
const STATIC: Record<string, { file: string; type: string }> = {
  "/static/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/static/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
};

class RequestError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  if (match === null) throw new Error(`dashboard.listen "${listen}" is not HOST:PORT`);
  return { host: match[1] ?? match[2] ?? "", port: Number(match[3]) };
}

async function readBody(request: IncomingMessage): Promise<string> {
  const declared = Number(request.headers["content-length"] ?? "0");
  if (declared > MAX_BODY) throw new RequestError(413, "too-large", `the body is larger than ${MAX_BODY} bytes`);
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new RequestError(413, "too-large", `the body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function formFields(request: IncomingMessage, body: string): URLSearchParams {
  const type = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") throw new RequestError(415, "unsupported-type", "send the form as application/x-www-form-urlencoded");
  return new URLSearchParams(body);
}

export function createDashboard(options: DashboardOptions): Dashboard {
  const { logger, index, chain } = options;
  const now = options.now ?? Date.now;
  const sessions = createSessionStore({ adminToken: options.adminToken, lifetimeMs: options.sessionMinutes * 60_000, now });
  const secure = options.tls !== undefined;
  const cookieName = secure ? "__Host-perimeter-session" : "perimeter-session";
  const { host: listenHost } = parseListen(options.listen);
  const ownHost = listenHost === "0.0.0.0" || listenHost === "::" ? [] : [listenHost.includes(":") ? `[${listenHost}]` : listenHost];
  const allowedHosts = new Set([...LOOPBACK_NAMES, ...ownHost, ...(options.allowedHosts ?? [])].map((name) => name.toLowerCase()));
  const assets = new Map(Object.entries(STATIC).map(([path, asset]) => [path, { body: readFileSync(new URL(`./static/${asset.file}`, import.meta.url)), type: asset.type }]));
  // Longest first, so a secret containing another is masked whole.
  const secrets = [...new Set([options.adminToken, ...options.secrets].filter((value) => value.length >= 6))].sort((left, right) => right.length - left.length);
  const scrub = (text: string): string => {
    let out = text;
    for (const secret of secrets) for (const form of new Set([secret, escapeHtml(secret), JSON.stringify(secret).slice(1, -1)])) out = out.split(form).join("[REDACTED]");
    return out;
  };

  const record = (type: string, fields: Record<string, unknown>) => {
    if (options.audit === undefined) return;
    try {
      options.audit.append({ component: "dashboard", type, ...fields });
    } catch (error) {
      logger.error({ event: "audit-write-failed", type, error: scrub((error as Error).message) });
    }
  };

  const send = (response: ServerResponse, status: number, body: string | SafeHtml, headers: Record<string, string> = {}) => {
    const text = scrub(typeof body === "string" ? body : body.text);
    // A refusal of an unread body ends the connection: say so, so that no client sends its next request down it.
    const closing = closeAfterAnswerIfBodyUnread(response);
    response.writeHead(status, { ...SECURITY_HEADERS, ...(closing ? { connection: "close" } : {}), "content-type": "text/html; charset=utf-8", "content-length": String(Buffer.byteLength(text)), ...headers });
    response.end(text);
  };
  const sendJson = (response: ServerResponse, status: number, body: unknown) => send(response, status, JSON.stringify(body), { "content-type": "application/json" });
  const redirect = (response: ServerResponse, location: string, headers: Record<string, string> = {}) => {
    closeAfterAnswerIfBodyUnread(response);
    response.writeHead(303, { ...SECURITY_HEADERS, location, "content-length": "0", ...headers });
    response.end();
  };

  const sessionCookie = (session: Session) =>
    `${cookieName}=${session.id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.round((session.expiresAt - session.createdAt) / 1000)}${secure ? "; Secure" : ""}`;
  const clearCookie = `${cookieName}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? "; Secure" : ""}`;

  const context = (session: Session | undefined): PageContext => ({ csrf: session?.csrf, chain: chain.status(), sources: index.sources(), now: now() });

  /** DNS rebinding: the Host must name this dashboard. */
  const hostAllowed = (request: IncomingMessage): boolean => {
    const host = (request.headers.host ?? "").toLowerCase();
    const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0] ?? "";
    return allowedHosts.has(name);
  };

  /**
   * A state change must come from a page of this dashboard: its Origin (browsers send one with every POST) must be
   * ours. A request without Origin is accepted only when it does not come from a browser at all (no Sec-Fetch-Site),
   * and then it still needs the CSRF token, which only a page of this origin can read.
   */
  const sameOrigin = (request: IncomingMessage): boolean => {
    const origin = request.headers.origin;
    if (origin === undefined) return request.headers["sec-fetch-site"] === undefined || request.headers["sec-fetch-site"] === "same-origin";
    try {
      const parsed = new URL(origin);
      return parsed.protocol === (secure ? "https:" : "http:") && parsed.host.toLowerCase() === (request.headers.host ?? "").toLowerCase();
    } catch {
      return false;
    }
  };

  const refuse = (request: IncomingMessage, response: ServerResponse, status: number, reason: string, message: string, session: Session | undefined) => {
    record("dashboard-refusal", { reason, method: request.method ?? "", path: (request.url ?? "").split("?")[0]?.slice(0, 200) ?? "", status, remote: request.socket.remoteAddress ?? null });
    logger.warn({ event: "dashboard-refusal", reason, status });
    send(response, status, errorPage(context(session), "Refused", message));
  };

  const approvalsData = async () => {
    try {
      const [pending, all] = await Promise.all([options.approvals.list({ status: "pending" }), options.approvals.list({})]);
      const decided = all.filter((approval) => approval.status !== "pending").slice(0, 50);
      return { pending, decided };
    } catch (error) {
      const message = error instanceof ApprovalsApiError ? error.message : `cannot list approvals: ${(error as Error).message}`;
      return { pending: [] as Approval[], decided: [] as Approval[], error: message };
    }
  };

  const readFilter = (query: URLSearchParams): AuditFilter => {
    const filter: AuditFilter = {};
    for (const field of ["component", "type", "decision", "agent", "tool", "host", "from", "to"] as const) {
      const value = query.get(field);
      if (value !== null && value !== "") {
        if (value.length > 256) throw new RequestError(400, "bad-filter", `the ${field} filter is longer than 256 characters`);
        filter[field] = value;
      }
    }
    for (const field of ["from", "to"] as const) {
      if (filter[field] !== undefined && Number.isNaN(Date.parse(filter[field] as string))) throw new RequestError(400, "bad-filter", `${field} must be an ISO time such as 2026-01-31T12:00:00Z`);
      if (filter[field] !== undefined) filter[field] = new Date(Date.parse(filter[field] as string)).toISOString();
    }
    const before = query.get("before");
    if (before !== null && before !== "") {
      if (!/^\d{1,15}$/.test(before)) throw new RequestError(400, "bad-filter", "before must be a record id from the previous page");
      filter.before = Number(before);
    }
    return filter;
  };

  const probe = async (name: string, url: string): Promise<ServiceHealth> => {
    try {
      const answer = await fetch(url, { signal: AbortSignal.timeout(1500), redirect: "error" });
      const text = (await answer.text()).slice(0, 300);
      return { name, url, status: answer.ok ? "ok" : "unhealthy", code: answer.status, detail: text };
    } catch (error) {
      return { name, url, status: "unreachable", detail: ((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message).slice(0, 200) };
    }
  };

  // Live tails: each open /events stream, with the filter it shows.
  const streams = new Set<{ response: ServerResponse; filter: AuditFilter; after: number }>();
  const matches = (filter: AuditFilter, row: { component: string; type: string; decision: string | null; agent: string | null; tool: string | null; host: string | null; time: string }) =>
    (["component", "type", "decision", "agent", "tool", "host"] as const).every((field) => filter[field] === undefined || filter[field] === row[field]) &&
    (filter.from === undefined || row.time >= filter.from) &&
    (filter.to === undefined || row.time < filter.to);

  let ingesting = false;
  const ingestTick = () => {
    if (ingesting) return;
    ingesting = true;
    try {
      // Bounded per tick, so a first indexing of a large log never holds the event loop for long; the next tick
      // continues where this one stopped.
      const { more } = index.ingest(2_000);
      if (streams.size > 0) {
        const oldest = Math.min(...[...streams].map((stream) => stream.after));
        const rows = index.since(oldest, 200);
        for (const stream of streams) {
          const fresh = rows.filter((row) => row.id > stream.after);
          if (fresh.length === 0) continue;
          stream.after = fresh.at(-1)?.id ?? stream.after;
          const shown = fresh.filter((row) => matches(stream.filter, row));
          for (const row of shown) stream.response.write(`event: record\ndata: ${JSON.stringify({ id: row.id, component: row.component, type: row.type, html: scrub(recordRow(row).text) })}\n\n`);
          if (fresh.some((row) => row.component === "approvals")) stream.response.write(`event: approvals\ndata: {}\n\n`);
        }
      }
      if (more) setImmediate(ingestTick);
    } catch (error) {
      logger.error({ event: "index-failed", error: scrub((error as Error).message) });
    } finally {
      ingesting = false;
    }
  };
  const ingestTimer = setInterval(ingestTick, options.ingestIntervalMs ?? 500);
  ingestTimer.unref();
  const keepAlive = setInterval(() => {
    for (const stream of streams) stream.response.write(": keep-alive\n\n");
  }, 15_000);
  keepAlive.unref();

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? "/", "http://dashboard.invalid");
    const path = url.pathname;
    const method = request.method ?? "GET";
    if (path === "/healthz") return sendJson(response, 200, { status: "ok" });
    if (!hostAllowed(request)) return refuse(request, response, 403, "host", `Host "${String(request.headers.host ?? "")}" is not allowed: reach the dashboard at its listen address or add the name to dashboard.allowedHosts`, undefined);
    const asset = assets.get(path);
    if (asset !== undefined && method === "GET") {
      closeAfterAnswerIfBodyUnread(response);
      response.writeHead(200, { ...SECURITY_HEADERS, "content-type": asset.type, "content-length": String(asset.body.length), "cache-control": "no-cache" });
      response.end(asset.body);
      return;
    }
    const session = sessions.get(readCookie(request.headers.cookie, cookieName));

    if (path === "/login") {
      if (method === "GET") return send(response, 200, loginPage());
      if (method !== "POST") return send(response, 405, "use GET or POST", { allow: "GET, POST", "content-type": "text/plain" });
      if (!sameOrigin(request)) return refuse(request, response, 403, "cross-origin-login", "A login must come from this dashboard's own page.", undefined);
      if (!sessions.allowAttempt()) return refuse(request, response, 429, "login-throttled", "Too many login attempts: wait a minute.", undefined);
      const token = formFields(request, await readBody(request)).get("token") ?? "";
      if (!sessions.tokenMatches(token)) {
        record("dashboard-login", { outcome: "refused", remote: request.socket.remoteAddress ?? null });
        return send(response, 401, loginPage("That is not the admin token."));
      }
      const created = sessions.create();
      record("dashboard-login", { outcome: "ok", remote: request.socket.remoteAddress ?? null, expiresAt: new Date(created.expiresAt).toISOString() });
      return redirect(response, "/approvals", { "set-cookie": sessionCookie(created) });
    }

    if (session === undefined) {
      if (method === "GET" && !path.startsWith("/events") && !path.endsWith(".json")) return redirect(response, "/login");
      return refuse(request, response, 401, request.headers.cookie === undefined ? "no-session" : "bad-session", "Log in first: this needs a session.", undefined);
    }

    if (method === "POST") {
      if (!sameOrigin(request)) return refuse(request, response, 403, "cross-origin", "Refused: the request did not come from this dashboard (Origin).", session);
      const fields = formFields(request, await readBody(request));
      if (!sessions.csrfMatches(session, fields.get("csrf") ?? (request.headers["x-csrf-token"] as string | undefined))) {
        return refuse(request, response, 403, "csrf", "Refused: the form's CSRF token is missing or wrong. Reload the page and try again.", session);
      }
      if (path === "/logout") {
        sessions.destroy(session.id);
        return redirect(response, "/login", { "set-cookie": clearCookie });
      }
      const decide = /^\/approvals\/([a-z0-9]{1,40})\/decide$/.exec(path);
      if (decide !== null) {
        const id = decide[1] as string;
        const decision = fields.get("decision");
        if (decision !== "approve" && decision !== "deny") throw new RequestError(400, "bad-decision", "decision must be approve or deny");
        const reason = (fields.get("reason") ?? "").slice(0, 500);
        try {
          const decided = await options.approvals.decide(id, decision, { approver: "dashboard", ...(reason === "" ? {} : { reason }) });
          const back = decided.kind === "tool-definition" ? "/reviews" : "/approvals";
          return redirect(response, `${back}?decided=${encodeURIComponent(id)}&status=${decided.status}`);
        } catch (error) {
          const status = error instanceof ApprovalsApiError && error.status >= 400 ? error.status : 502;
          return send(response, status, errorPage(context(session), "Not decided", `Request ${id} was not decided: ${(error as Error).message}`));
        }
      }
      throw new RequestError(404, "not-found", "no such action");
    }
    if (method !== "GET") return send(response, 405, "use GET or POST", { allow: "GET, POST", "content-type": "text/plain" });

    switch (path) {
      case "/":
        return redirect(response, "/approvals");
      case "/approvals": {
        const data = await approvalsData();
        const decidedId = url.searchParams.get("decided");
        const notice = decidedId === null ? undefined : `Request ${decidedId} ${url.searchParams.get("status") ?? "decided"}.`;
        const reviews = data.pending.filter((approval) => approval.kind === "tool-definition").length;
        return send(response, 200, approvalsPage(context(session), { ...data, reviews, ...(notice === undefined ? {} : { notice }) }));
      }
      case "/reviews": {
        const data = await approvalsData();
        return send(response, 200, reviewsPage(context(session), { pending: data.pending, decided: data.decided.filter((approval) => approval.kind === "tool-definition"), ...(data.error === undefined ? {} : { error: data.error }) }));
      }
      case "/audit": {
        const started = performance.now();
        const filter = readFilter(url.searchParams);
        const { rows, next } = index.query(filter, 50);
        const failing = index.sources().filter((source) => source.state !== "ok");
        return send(
          response,
          200,
          auditPage(context(session), {
            filter,
            rows,
            next,
            lastId: index.lastId(),
            components: index.distinct("component"),
            decisions: index.distinct("decision"),
            tookMs: Math.round(performance.now() - started),
            ...(failing.length === 0 ? {} : { error: failing.map((source) => `${source.name}: ${"message" in source ? source.message : "unavailable"}`).join("; ") }),
          }),
        );
      }
      case "/events": {
        const filter = readFilter(url.searchParams);
        const afterText = url.searchParams.get("after") ?? "";
        const after = /^\d{1,15}$/.test(afterText) ? Number(afterText) : index.lastId();
        response.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/event-stream", connection: "keep-alive" });
        response.write(": live tail of the audit log\n\n");
        const stream = { response, filter, after };
        streams.add(stream);
        request.socket.setTimeout(0);
        response.on("close", () => streams.delete(stream));
        return;
      }
      case "/chain.json":
        return sendJson(response, 200, { chain: chain.status(), sources: index.sources() });
      case "/chain-status":
        return send(response, 200, chainBanner(chain.status(), index.sources()));
      case "/egress":
        return send(response, 200, egressPage(context(session), { allowed: index.egressTop("allow", 10), refused: index.egressTop("deny", 10) }));
      case "/llm": {
        const { keys, errors } = options.keySpend();
        return send(response, 200, llmPage(context(session), { keys, ...(errors.length === 0 ? {} : { error: errors.join("; ") }) }));
      }
      case "/health": {
        const services = await Promise.all(Object.entries(options.health).map(([name, probeUrl]) => probe(name, probeUrl)));
        return send(response, 200, healthPage(context(session), { services }));
      }
      default:
        throw new RequestError(404, "not-found", `no page ${path}`);
    }
  };

  const onRequest = (request: IncomingMessage, response: ServerResponse) => {
    handle(request, response).catch((error: unknown) => {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      if (error instanceof RequestError) {
        if (error.status === 413 || error.status === 415 || error.status === 400) {
          record("dashboard-refusal", { reason: error.code, method: request.method ?? "", path: (request.url ?? "").split("?")[0]?.slice(0, 200) ?? "", status: error.status, remote: request.socket.remoteAddress ?? null });
        }
        return send(response, error.status, errorPage(context(undefined), "Refused", error.message));
      }
      logger.error({ event: "dashboard-error", error: scrub((error as Error).stack ?? String(error)) });
      send(response, 500, errorPage(context(undefined), "Error", "internal error (logged)"));
    });
  };
  const server: Server = options.tls === undefined ? createHttpServer(onRequest) : createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, onRequest);
  server.headersTimeout = 10_000;
  server.requestTimeout = 0; // live tails stay open; bodies are bounded and read with their own limit
  server.maxHeadersCount = 100;

  return {
    listen() {
      const { host, port } = parseListen(options.listen);
      // Index what is there before the first page, within the same bound as a tick.
      ingestTick();
      void chain.check();
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
      for (const stream of streams) stream.response.end();
      streams.clear();
      await new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await chain.close();
    },
  };
}
