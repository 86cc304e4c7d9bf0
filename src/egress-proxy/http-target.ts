// The request-shaped checks and rewrites of plain-HTTP forwarding, with no state: is this absolute-form request one
// we forward (and to which host and port), the head we send upstream (re-framed, hop-by-hop headers dropped, our
// Via added), and the origin's response headers as the client gets them. forward.ts runs the exchange around them.
import type http from "node:http";
import { normalizeHostname, splitHostPort } from "../config/index.ts";
import { parseIpLiteral } from "../net/index.ts";
import type { ResponseHead } from "./http1.ts";
import type { Refusal, RefusalReason } from "./refusals.ts";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-authenticate",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
const FORWARDED_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Headers whose repetition makes a request ambiguous between us and the origin. */
const SINGLE_HEADERS = new Set(["host", "content-length", "transfer-encoding", "proxy-authorization"]);

export interface HttpTarget {
  readonly url: URL;
  /** The URL's host, brackets removed for IPv6. */
  readonly host: string;
  readonly port: number;
}

/** How the request body is sent upstream: none, as received under its Content-Length, or re-chunked. */
export type BodyFraming = "none" | "length" | "chunked";

/** The first header that must appear once and appears more often, lower-cased. */
export function duplicateHeader(request: http.IncomingMessage): string | undefined {
  const seen = new Set<string>();
  for (let index = 0; index < request.rawHeaders.length; index += 2) {
    const name = (request.rawHeaders[index] as string).toLowerCase();
    if (!SINGLE_HEADERS.has(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/** Checks that an absolute-form request is one we forward; the target, or the refusal. */
export function parseHttpTarget(request: http.IncomingMessage, viaToken: string): { ok: true; target: HttpTarget } | { ok: false; refusal: Refusal } {
  const raw = request.url ?? "";
  const fail = (reason: RefusalReason, message: string) => ({ ok: false as const, refusal: { reason, message } });
  if (raw.startsWith("/") || raw === "*") return fail("origin-form-request", "this is a forward proxy: point HTTP_PROXY/HTTPS_PROXY at it and request absolute URLs (metrics and health are on the metrics listener)");
  if (/^https:\/\//i.test(raw)) return fail("use-connect-for-https", "send https:// URLs through a CONNECT tunnel (HTTPS_PROXY), not as plain proxy requests");
  if (!/^http:\/\//i.test(raw)) return fail("bad-request", `"${raw.slice(0, 100)}" is not an absolute http:// URL`);
  if (!FORWARDED_METHODS.has(request.method ?? "")) return fail("method-not-allowed", `method ${request.method} is not forwarded (allowed: ${[...FORWARDED_METHODS].join(", ")}; CONNECT for tunnels)`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail("bad-request", `"${raw.slice(0, 100)}" is not a valid URL`);
  }
  if (url.username !== "" || url.password !== "") return fail("bad-request", "credentials in the URL are not forwarded; send them in an Authorization header");
  const duplicate = duplicateHeader(request);
  if (duplicate !== undefined) return fail("duplicate-header", `the ${duplicate} header appears more than once`);
  const transferEncoding = request.headers["transfer-encoding"];
  if (transferEncoding !== undefined && transferEncoding.trim().toLowerCase() !== "chunked") {
    return fail("invalid-transfer-encoding", `Transfer-Encoding "${transferEncoding.slice(0, 50)}" is not forwarded; only chunked is`);
  }
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === "" ? 80 : Number(url.port);
  const hostHeader = request.headers.host;
  // Most clients send exactly the URL's authority; anything else is compared in canonical form. The origin routes by
  // Host, so a Host naming another site than the URL is virtual-host fronting.
  if (hostHeader !== undefined && hostHeader !== url.host && !sameAuthority(hostHeader, host, port)) {
    return fail("host-mismatch", `the Host header "${hostHeader.slice(0, 100)}" names another site than the request URL ${url.host}`);
  }
  const via = request.headers.via;
  if (via !== undefined && via.includes(viaToken)) return fail("loop-detected", "this request already passed through this proxy");
  return { ok: true, target: { url, host, port } };
}

/** Whether a Host header names `host:port`, in any notation of the same name or address. */
export function sameAuthority(hostHeader: string, host: string, port: number): boolean {
  const parsed = splitHostPort(hostHeader) ?? (hostHeader.includes(":") && !hostHeader.startsWith("[") ? undefined : { host: hostHeader.replace(/^\[(.*)\]$/, "$1"), port: 80 });
  const canonical = (text: string) => parseIpLiteral(text)?.address ?? normalizeHostname(text);
  const headerHost = parsed === undefined ? undefined : canonical(parsed.host);
  return parsed !== undefined && headerHost !== undefined && headerHost === canonical(host) && parsed.port === port;
}

/** The request head sent upstream, and how its body follows. */
export function upstreamRequestHead(request: http.IncomingMessage, url: URL, viaToken: string): { head: string; body: BodyFraming } {
  const connectionTokens = new Set((request.headers.connection ?? "").toLowerCase().split(",").map((token) => token.trim()));
  // The request body as received: none, under its Content-Length, or (Node has de-chunked it) re-chunked by us.
  const contentLength = request.headers["content-length"];
  const body = request.headers["transfer-encoding"] !== undefined ? "chunked" : contentLength !== undefined && contentLength !== "0" ? "length" : "none";
  let head = `${request.method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
  for (let index = 0; index < request.rawHeaders.length; index += 2) {
    const name = request.rawHeaders[index] as string;
    const lower = name.toLowerCase();
    // Expect is answered here (checkContinue), after the decision: the origin sees a plain request. The body's
    // framing is written below from what Node parsed, never left to the header loop: a client's "Connection:
    // content-length" would otherwise strip it while the body is still sent, and the origin would read the body
    // as a second request (to any virtual host, never decided or audited).
    if (HOP_BY_HOP.has(lower) || connectionTokens.has(lower) || lower === "host" || lower === "expect" || lower === "content-length") continue;
    head += `${name}: ${request.rawHeaders[index + 1] as string}\r\n`;
  }
  const framing = body === "chunked" ? "Transfer-Encoding: chunked\r\n" : contentLength !== undefined ? `Content-Length: ${contentLength}\r\n` : "";
  head += `Host: ${url.host}\r\nVia: ${request.httpVersion} ${viaToken}\r\n${framing}\r\n`;
  return { head, body };
}

export function headerValues(head: ResponseHead, lowerName: string): string[] {
  const values: string[] = [];
  for (let index = 0; index < head.rawHeaders.length; index += 2) if ((head.rawHeaders[index] as string).toLowerCase() === lowerName) values.push(head.rawHeaders[index + 1] as string);
  return values;
}

/** The origin's response headers minus hop-by-hop ones (and those its Connection header names), plus our Via. */
export function responseHeaders(head: ResponseHead, viaToken: string): string[] {
  const headers: string[] = [];
  for (let index = 0; index < head.rawHeaders.length; index += 2) {
    const name = head.rawHeaders[index] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || head.connectionTokens.has(lower)) continue;
    headers.push(name, head.rawHeaders[index + 1] as string);
  }
  headers.push("Via", `1.${head.minor} ${viaToken}`);
  return headers;
}
