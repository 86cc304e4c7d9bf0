// The dashboard's state: one typed object per service (DashboardState) built once by createDashboard, and one per
// request (DashboardRequest) built by the dispatcher; every route module takes them. Also the answers every route
// shares (security headers, secret masking, refusals recorded in the audit log) and the checks every request passes
// (Host against DNS rebinding, Origin and the form body of a state change).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ApprovalsClient } from "../approvals/index.ts";
import type { Logger } from "../shared/index.ts";
import { BodyTooLargeError, PerimeterError, closeAfterAnswerIfBodyUnread, readBoundedBody } from "../shared/index.ts";
import type { ErrorCode } from "../shared/index.ts";
import type { AuditFilter, AuditIndex } from "./audit-index.ts";
import type { ChainMonitor } from "./chain.ts";
import { escapeHtml } from "./html.ts";
import type { SafeHtml } from "./html.ts";
import { errorPage } from "./pages.ts";
import type { KeySpend, PageContext } from "./pages.ts";
import type { Session, SessionStore } from "./session.ts";

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

/** An open /events stream with the filter it shows and the last index id it was sent. */
export interface LiveTail {
  readonly response: ServerResponse;
  readonly filter: AuditFilter;
  after: number;
}

export interface DashboardState {
  readonly options: DashboardOptions;
  readonly logger: Logger;
  readonly index: AuditIndex;
  readonly chain: ChainMonitor;
  readonly now: () => number;
  readonly sessions: SessionStore;
  /** Served over TLS: cookies are __Host- and Secure, an Origin must be https. */
  readonly secure: boolean;
  readonly cookieName: string;
  /** Lower-cased names the Host header may carry. */
  readonly allowedHosts: ReadonlySet<string>;
  readonly assets: ReadonlyMap<string, { body: Buffer; type: string }>;
  /** Known secrets, longest first, so a secret containing another is masked whole. */
  readonly secrets: readonly string[];
  readonly tails: Set<LiveTail>;
  /** An ingest tick is running (ticks never overlap). */
  ingesting: boolean;
}

export interface DashboardRequest {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly url: URL;
  readonly path: string;
  readonly method: string;
  readonly session: Session | undefined;
}

/**
 * A refusal of a malformed request, answered with its code's HTTP status; `reason` is what the refusal is recorded
 * as in the audit log ("too-large", "bad-filter", ...).
 */
export class RequestError extends PerimeterError {
  readonly reason: string;
  constructor(code: ErrorCode, reason: string, message: string) {
    super(code, message);
    this.reason = reason;
  }
  get status(): number {
    return this.httpStatus;
  }
}

export const MAX_BODY = 16 * 1024;
/** A form is a few hundred bytes: a client still sending one after this long is holding a connection, not typing. */
export const FORM_TIMEOUT_MS = 10_000;
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
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

/** Every known secret in `text`, also HTML-escaped or JSON-escaped, replaced by [REDACTED]. */
export function scrubSecrets(secrets: readonly string[], text: string): string {
  let out = text;
  for (const secret of secrets) for (const form of new Set([secret, escapeHtml(secret), JSON.stringify(secret).slice(1, -1)])) out = out.split(form).join("[REDACTED]");
  return out;
}

/** Writes a dashboard event; a failure to write is logged, never thrown (the answer stands either way). */
export function record(state: DashboardState, type: string, fields: Record<string, unknown>): void {
  if (state.options.audit === undefined) return;
  try {
    state.options.audit.append({ component: "dashboard", type, ...fields });
  } catch (error) {
    state.logger.error({ event: "audit-write-failed", type, error: scrubSecrets(state.secrets, (error as Error).message) });
  }
}

export function send(state: DashboardState, response: ServerResponse, status: number, body: string | SafeHtml, headers: Record<string, string> = {}): void {
  const text = scrubSecrets(state.secrets, typeof body === "string" ? body : body.text);
  // A refusal of an unread body ends the connection: say so, so that no client sends its next request down it.
  const closing = closeAfterAnswerIfBodyUnread(response);
  response.writeHead(status, { ...SECURITY_HEADERS, ...(closing ? { connection: "close" } : {}), "content-type": "text/html; charset=utf-8", "content-length": String(Buffer.byteLength(text)), ...headers });
  response.end(text);
}

export function sendJsonAnswer(state: DashboardState, response: ServerResponse, status: number, body: unknown): void {
  send(state, response, status, JSON.stringify(body), { "content-type": "application/json" });
}

export function redirect(response: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  closeAfterAnswerIfBodyUnread(response);
  response.writeHead(303, { ...SECURITY_HEADERS, location, "content-length": "0", ...headers });
  response.end();
}

export function pageContext(state: DashboardState, session: Session | undefined): PageContext {
  return { csrf: session?.csrf, chain: state.chain.status(), sources: state.index.sources(), now: state.now() };
}

/** What a refusal is recorded with: never the query string (it may hold filter values), at most 200 characters. */
export function refusalFields(request: IncomingMessage, status: number, reason: string): Record<string, unknown> {
  return { reason, method: request.method ?? "", path: (request.url ?? "").split("?")[0]?.slice(0, 200) ?? "", status, remote: request.socket.remoteAddress ?? null };
}

export function refuse(state: DashboardState, context: Pick<DashboardRequest, "request" | "response" | "session">, status: number, reason: string, message: string): void {
  record(state, "dashboard-refusal", refusalFields(context.request, status, reason));
  state.logger.warn({ event: "dashboard-refusal", reason, status });
  send(state, context.response, status, errorPage(pageContext(state, context.session), "Refused", message));
}

/** DNS rebinding: the Host must name this dashboard. */
export function hostAllowed(allowedHosts: ReadonlySet<string>, request: IncomingMessage): boolean {
  const host = (request.headers.host ?? "").toLowerCase();
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0] ?? "";
  return allowedHosts.has(name);
}

/**
 * A state change must come from a page of this dashboard: its Origin (browsers send one with every POST) must be
 * ours. A request without Origin is accepted only when it does not come from a browser at all (no Sec-Fetch-Site),
 * and then it still needs the CSRF token, which only a page of this origin can read.
 */
export function sameOrigin(secure: boolean, request: IncomingMessage): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return request.headers["sec-fetch-site"] === undefined || request.headers["sec-fetch-site"] === "same-origin";
  try {
    const parsed = new URL(origin);
    return parsed.protocol === (secure ? "https:" : "http:") && parsed.host.toLowerCase() === (request.headers.host ?? "").toLowerCase();
  } catch {
    return false;
  }
}

/** The form fields of a state change: an urlencoded body of at most MAX_BODY bytes, or a RequestError. */
export async function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  let body: Buffer;
  try {
    body = await readBoundedBody(request, { limit: MAX_BODY, timeoutMs: FORM_TIMEOUT_MS });
  } catch (error) {
    if (error instanceof BodyTooLargeError) throw new RequestError("too_large", "too-large", error.message);
    if (error instanceof PerimeterError && error.code === "timeout") throw new RequestError("slow_client", "slow-body", error.message);
    throw error;
  }
  const type = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") throw new RequestError("unsupported_media", "unsupported-type", "send the form as application/x-www-form-urlencoded");
  return new URLSearchParams(body.toString("utf8"));
}
