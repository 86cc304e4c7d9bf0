// How the proxy says no: every refusal reason with its HTTP status, whether it is a denial (policy) or an error (could
// not serve), and the one-line answer a client gets, on a raw socket (CONNECT, parse errors) or an HTTP response.
// No state: the server's stages pick a reason; this file turns it into bytes.
import type http from "node:http";
import type net from "node:net";
import { closeAfterAnswerIfBodyUnread } from "../shared/index.ts";
import type { EgressDenyReason } from "./decide.ts";
import { UpstreamError } from "./upstream.ts";

/** Reasons beyond the pure decision's, for responses, audit records and metrics. */
export type RefusalReason =
  | EgressDenyReason
  | "proxy-address"
  | "dns-failure"
  | "rate-limited"
  | "tunnel-limit"
  | "sni-missing"
  | "sni-mismatch"
  | "sni-timeout"
  | "not-tls"
  | "malformed-client-hello"
  | "host-mismatch"
  | "loop-detected"
  | "origin-form-request"
  | "use-connect-for-https"
  | "method-not-allowed"
  | "upgrade-not-supported"
  | "bad-request"
  | "duplicate-header"
  | "duplicate-content-length"
  | "content-length-with-transfer-encoding"
  | "invalid-transfer-encoding"
  | "invalid-header"
  | "headers-too-large"
  | "header-timeout"
  | "audit-unavailable"
  | UpstreamFailure;

export type UpstreamFailure = "upstream-refused" | "upstream-reset" | "upstream-unreachable" | "upstream-timeout" | "upstream-error";

export interface Refusal {
  readonly reason: RefusalReason;
  readonly message: string;
}

export const STATUS: Readonly<Record<RefusalReason, number>> = {
  "not-allowlisted": 403,
  "port-not-allowed": 403,
  "private-address": 403,
  "proxy-address": 403,
  "sni-missing": 403,
  "sni-mismatch": 403,
  "sni-timeout": 403,
  "not-tls": 403,
  "malformed-client-hello": 403,
  "host-mismatch": 403,
  "unknown-client": 407,
  "bad-credentials": 407,
  "invalid-host": 400,
  "origin-form-request": 400,
  "use-connect-for-https": 400,
  "bad-request": 400,
  "duplicate-header": 400,
  "duplicate-content-length": 400,
  "content-length-with-transfer-encoding": 400,
  "invalid-transfer-encoding": 400,
  "invalid-header": 400,
  "method-not-allowed": 405,
  "header-timeout": 408,
  "rate-limited": 429,
  "headers-too-large": 431,
  "upgrade-not-supported": 501,
  "tunnel-limit": 503,
  "audit-unavailable": 503,
  "loop-detected": 508,
  "dns-failure": 502,
  "upstream-refused": 502,
  "upstream-reset": 502,
  "upstream-unreachable": 502,
  "upstream-error": 502,
  "upstream-timeout": 504,
};

const REASON_PHRASES: Readonly<Record<number, string>> = {
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  508: "Loop Detected",
};

/** The refusal every stage answers when the audit log will not take a record: nothing passes unrecorded. */
export const AUDIT_UNAVAILABLE: Refusal = { reason: "audit-unavailable", message: "the audit log cannot be written, so nothing is let through; see the proxy's log" };

/** Refusals are "deny" (policy said no: X-Perimeter-Denied); failures are "error" (could not serve: X-Perimeter-Error). */
export function outcomeOf(reason: RefusalReason): "deny" | "error" {
  const status = STATUS[reason];
  return status === 502 || status === 504 || reason === "audit-unavailable" ? "error" : "deny";
}

/** The one mapping from a socket error to an upstream failure reason. */
export function upstreamFailure(error: unknown): UpstreamFailure {
  const code = error instanceof UpstreamError ? error.socketCode : (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ECONNREFUSED") return "upstream-refused";
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ECONNABORTED") return "upstream-reset";
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "EADDRNOTAVAIL") return "upstream-unreachable";
  if (code === "ETIMEDOUT" || code === "ERR_UPSTREAM_TIMEOUT") return "upstream-timeout";
  return "upstream-error";
}

/**
 * What Node's parser raised before a request existed (malformed, oversized or slow heads), as a refusal. The limits
 * are named in the message so the client learns what to change.
 */
export function clientErrorRefusal(error: NodeJS.ErrnoException & { reason?: string }, limits: { readonly maxHeaderBytes: number; readonly headerTimeoutSeconds: number }): Refusal {
  const detail = error.reason ?? error.message;
  switch (error.code) {
    case "HPE_HEADER_OVERFLOW":
      return { reason: "headers-too-large", message: `the request head is larger than ${limits.maxHeaderBytes} bytes` };
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { reason: "header-timeout", message: `the request head did not arrive within ${limits.headerTimeoutSeconds} s` };
    case "HPE_UNEXPECTED_CONTENT_LENGTH":
      return { reason: "duplicate-content-length", message: `malformed request: ${detail}` };
    case "HPE_INVALID_TRANSFER_ENCODING":
      return /Content-Length/i.test(detail)
        ? { reason: "content-length-with-transfer-encoding", message: `malformed request: ${detail}` }
        : { reason: "invalid-transfer-encoding", message: `malformed request: ${detail}` };
    case "HPE_INVALID_HEADER_TOKEN":
    case "HPE_LF_EXPECTED":
    case "HPE_CR_EXPECTED":
      return { reason: "invalid-header", message: `malformed request: ${detail} (obs-fold and control characters are refused)` };
    default:
      return { reason: "bad-request", message: `malformed request: ${detail}` };
  }
}

export function refusalHeaders(reason: RefusalReason, body: Buffer): Array<[string, string]> {
  const headers: Array<[string, string]> = [
    [outcomeOf(reason) === "deny" ? "X-Perimeter-Denied" : "X-Perimeter-Error", reason],
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ["Cache-Control", "no-store"],
  ];
  if (STATUS[reason] === 407) headers.push(["Proxy-Authenticate", 'Basic realm="perimeter egress"'], ["Proxy-Authenticate", 'Bearer realm="perimeter egress"']);
  return headers;
}

export function refusalBody(refusal: Refusal): Buffer {
  // One line, no control characters from client input (names are echoed).
  return Buffer.from(`perimeter egress-proxy: ${refusal.message.replace(/[\r\n\x00-\x1f\x7f]/g, " ")}\n`, "utf8");
}

/** A complete HTTP/1.1 response for a raw socket (CONNECT, parse errors). */
export function rawRefusal(refusal: Refusal): Buffer {
  const status = STATUS[refusal.reason];
  const body = refusalBody(refusal);
  const lines = [`HTTP/1.1 ${status} ${REASON_PHRASES[status] ?? "Error"}`, ...refusalHeaders(refusal.reason, body).map(([name, value]) => `${name}: ${value}`), "Connection: close", "", ""];
  return Buffer.concat([Buffer.from(lines.join("\r\n"), "latin1"), body]);
}

/** Ends a raw client socket after a refusal, giving the client a moment to read it. */
export function refuseRaw(socket: net.Socket, refusal: Refusal): void {
  if (socket.destroyed) return;
  socket.end(rawRefusal(refusal));
  setTimeout(() => socket.destroy(), 2000).unref();
}

/** Answers a refusal on an HTTP response; a response already under way can only be cut. */
export function respondRefusal(response: http.ServerResponse, refusal: Refusal, keepAlive: boolean): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = refusalBody(refusal);
  // A refused request's body is never read, and its connection is closed a moment after the answer (see
  // src/shared/refusal.ts); otherwise the connection is kept only for a well-formed, fully understood request.
  if (!closeAfterAnswerIfBodyUnread(response) && !keepAlive) response.shouldKeepAlive = false;
  response.writeHead(STATUS[refusal.reason], REASON_PHRASES[STATUS[refusal.reason]], refusalHeaders(refusal.reason, body).flat());
  response.end(body);
}

/** Whether a connection may stay open after this refusal: only for a well-formed, fully understood request. */
export function keepsConnection(reason: RefusalReason): boolean {
  return STATUS[reason] === 403 || STATUS[reason] === 429;
}
