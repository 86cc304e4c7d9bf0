// The guard's client side of MCP Streamable HTTP (protocol revisions 2025-11-25 and 2026-07-28), on node:http and
// node:https with a keep-alive agent. The official SDK Client still does the protocol (negotiation, ids, timeouts,
// result validation); this is only the transport under it. It replaces the SDK's StreamableHTTPClientTransport, which
// goes through undici's fetch and web streams: a profile of the guard put about a third of its CPU there, much of it
// in extra socket writes per request. Here one request is one write (headers and body together) on a reused socket,
// and an answer is read from the socket without web-stream adapters.
//
// What it does on the wire, per message the Client sends:
// - POST to the upstream URL, `Content-Type: application/json`, `Accept: application/json, text/event-stream`, the
//   upstream's configured headers (its credentials: never anything of the agent's), `Mcp-Session-Id` once the
//   upstream gave one (2025-11-25), `MCP-Protocol-Version` once negotiated, and for a request whose `_meta` carries a
//   protocol version (2026-07-28) `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` derived from the body.
// - The answer: 202 (a notification or response was accepted), a JSON body, or an event stream carrying
//   notifications, server requests and finally the response. An event stream that ends before the response but after
//   an event id is resumed with GET and `Last-Event-ID` (2025-11-25 servers may close streams to poll); one without
//   an id fails the request at once instead of leaving it to its timeout.
// - After `notifications/initialized` (2025-11-25) a standalone GET event stream for server notifications
//   (list_changed); 405 means the server has none. It is reopened when it ends.
// - Redirects are never followed (the credential headers would follow them). 404 while holding a session means the
//   session expired: the request fails and the transport closes, so the guard reconnects with a new one. Any other
//   non-2xx status fails the request with the status in the message.
// - Every answer is bounded: a JSON body or one event larger than maxMessageBytes is refused (the socket is dropped,
//   nothing more is read), and a request whose answer stays silent for idleTimeoutMs fails.
// - Cancellation: on 2026-07-28 the Client aborts the request's own signal, which closes its stream (the spec's
//   cancellation); on 2025-11-25 it sends notifications/cancelled, after which the stream of that request is closed.
// - close() ends every stream, then sends DELETE with the session id (best effort, bounded), as the spec asks.
import http from "node:http";
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import https from "node:https";
import { PROTOCOL_VERSION_META_KEY, SdkError, SdkErrorCode, SdkHttpError } from "@modelcontextprotocol/client";
import type { JSONRPCMessage, Transport, TransportSendOptions } from "@modelcontextprotocol/client";
import {
  FIRST_MODERN_PROTOCOL_VERSION,
  LONG_LIVED_METHODS,
  MCP_NAME_FIELD,
  RESERVED_HEADERS,
  UpstreamAnswerTooLargeError,
  UpstreamIdleTimeoutError,
  closeReason,
  headerValue,
  isCutShort,
  isFinal,
  isObject,
  isRequest,
  isResponse,
  mediaType,
  readAnswerBody,
  responseOf,
} from "./http-wire.ts";
import type { Exchange, RequestIdLike, StreamContext, StreamOutcome } from "./http-wire.ts";
import { SseEventTooLargeError, SseParser } from "./sse.ts";

export { UpstreamAnswerTooLargeError, UpstreamIdleTimeoutError } from "./http-wire.ts";

export interface HttpTransportOptions {
  /** Headers sent with every request: the upstream's own credentials, already resolved. */
  headers?: Record<string, string>;
  /**
   * Largest JSON answer or single event accepted from the upstream, in bytes. Larger answers are refused: the guard
   * would otherwise buffer whatever an upstream sends. The guard relays at most 8 MiB of result to the agent; base64
   * content and JSON escaping make the wire form larger, hence the margin.
   * @default 16 MiB
   */
  maxMessageBytes?: number;
  /**
   * A request fails when its answer stays silent this long (no headers, no bytes). Long-lived streams (the standalone
   * GET stream, `subscriptions/listen`) are exempt: they are idle by nature.
   * @default 60 s
   */
  idleTimeoutMs?: number;
  /** Extra trusted CA certificates for an https upstream (tests); the default CA store is always used otherwise. */
  ca?: string | Buffer;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** An error answer is read only this far: enough for a JSON-RPC error or a status page, never a whole download. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** How long close() waits for the DELETE that ends the session. */
const DELETE_TIMEOUT_MS = 2_000;
/** Resuming an event stream: the delay before the first retry (the server's `retry:` wins), its growth and bound. */
const RECONNECT_INITIAL_MS = 1_000;
const RECONNECT_GROWTH = 1.5;
const RECONNECT_MAX_MS = 30_000;
/** The shortest delay before reopening an event stream, whatever `retry:` the server sends. */
const RECONNECT_MIN_MS = 250;
/** How long a request's event stream may stay open after the last answer it carries arrived. */
const ANSWERED_STREAM_GRACE_MS = 1_000;
/** Consecutive failed reopen attempts of one event stream before giving up on it. */
const RECONNECT_MAX_FAILURES = 2;

export class NodeHttpClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /** One underlying request per outbound request: on 2026-07-28 the Client cancels by aborting its requestSignal. */
  readonly hasPerRequestStream = true;

  private readonly url: URL;
  private readonly secure: boolean;
  private readonly requestOptions: { hostname: string; port: number; path: string };
  private readonly configuredHeaders: Record<string, string>;
  private readonly maxMessageBytes: number;
  private readonly idleTimeoutMs: number;
  private readonly agent: http.Agent;
  private sessionIdValue: string | undefined;
  private protocolVersionValue: string | undefined;
  private serverRetryMs: number | undefined;
  private started = false;
  private closed = false;
  private readonly exchanges = new Set<Exchange>();
  /** 2025-11-25: the stream of each request in flight, so that notifications/cancelled can end it. */
  private readonly streamsByRequestId = new Map<RequestIdLike, StreamContext>();
  /** Pending delays (reopening streams): close() ends them at once. */
  private readonly timers = new Map<NodeJS.Timeout, () => void>();

  constructor(url: URL, options: HttpTransportOptions = {}) {
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`upstream url ${url.origin} is not http: or https:`);
    if (url.username !== "" || url.password !== "") throw new Error("upstream url must not carry credentials in user:password@ form; put them in the server's headers");
    this.url = url;
    this.secure = url.protocol === "https:";
    this.requestOptions = {
      // URL keeps IPv6 literals in brackets; node:http wants the bare address.
      hostname: url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === "" ? (this.secure ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
    };
    this.configuredHeaders = {};
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      const lower = name.toLowerCase();
      if (!RESERVED_HEADERS.has(lower)) this.configuredHeaders[lower] = value;
    }
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    // Keep-alive: a call reuses a connected socket instead of paying a TCP (and TLS) handshake. Node honours the
    // server's `Keep-Alive: timeout=` hint, so an idle socket is retired before the server closes it under a request.
    this.agent = this.secure
      ? new https.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: "lifo", ...(options.ca === undefined ? {} : { ca: options.ca }) })
      : new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: "lifo" });
  }

  get sessionId(): string | undefined {
    return this.sessionIdValue;
  }

  get protocolVersion(): string | undefined {
    return this.protocolVersionValue;
  }

  setProtocolVersion(version: string): void {
    this.protocolVersionValue = version;
  }

  async start(): Promise<void> {
    if (this.started) throw new Error("transport already started");
    this.started = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [timer, resolve] of this.timers) {
      clearTimeout(timer);
      resolve();
    }
    this.timers.clear();
    for (const exchange of [...this.exchanges]) this.abort(exchange);
    this.streamsByRequestId.clear();
    const sessionId = this.sessionIdValue;
    this.sessionIdValue = undefined;
    if (sessionId !== undefined) await this.terminateSession(sessionId).catch(() => undefined);
    this.agent.destroy();
    this.onclose?.();
  }

  async send(message: JSONRPCMessage, options: TransportSendOptions = {}): Promise<void> {
    if (this.closed) throw closeReason("the upstream transport is closed");
    if (options.resumptionToken !== undefined) {
      // The caller resumes a stream it saw break off: reopen it from that event (the answer comes on it).
      const pending = new Set<RequestIdLike>(isRequest(message) ? [message.id] : []);
      const exchange = await this.openEventStream(options.resumptionToken, this.idleTimeoutMs);
      if (exchange === undefined) throw new Error("the upstream does not allow resuming its event stream (HTTP 405)");
      const context: StreamContext = { pending, exchange };
      this.readStream(context, options.onRequestStreamEnd, options.requestSignal).catch((error: unknown) => this.onerror?.(error as Error));
      return;
    }
    try {
      await this.post(message, options);
    } catch (error) {
      if (options.requestSignal?.aborted !== true) this.onerror?.(error as Error);
      throw error;
    }
  }

  private async post(message: JSONRPCMessage, options: TransportSendOptions): Promise<void> {
    const messages: unknown[] = Array.isArray(message) ? message : [message];
    const requestIds = new Set<RequestIdLike>();
    let initialize = false;
    let longLived = false;
    for (const item of messages) {
      if (!isRequest(item)) continue;
      requestIds.add(item.id);
      if (item.method === "initialize") initialize = true;
      if (LONG_LIVED_METHODS.has(item.method)) longLived = true;
    }

    const headers: OutgoingHttpHeaders = { ...this.configuredHeaders };
    if (this.sessionIdValue !== undefined && !initialize) headers["mcp-session-id"] = this.sessionIdValue;
    if (this.protocolVersionValue !== undefined) headers["mcp-protocol-version"] = this.protocolVersionValue;
    const single = messages.length === 1 ? messages[0] : undefined;
    const enveloped = this.envelopeVersion(single);
    if (enveloped !== undefined && isRequest(single)) {
      headers["mcp-protocol-version"] = enveloped;
      headers["mcp-method"] = single.method;
      const field = Object.hasOwn(MCP_NAME_FIELD, single.method) ? MCP_NAME_FIELD[single.method] : undefined;
      const name = field !== undefined && isObject(single.params) ? single.params[field] : undefined;
      if (typeof name === "string") headers["mcp-name"] = headerValue(name);
    }
    if (options.headers !== undefined) {
      for (const [name, value] of Object.entries(options.headers)) {
        const lower = name.toLowerCase();
        if (!RESERVED_HEADERS.has(lower) && lower !== "authorization") headers[lower] = value;
      }
    }
    headers["content-type"] = "application/json";
    headers.accept = "application/json, text/event-stream";
    const body = JSON.stringify(message);
    headers["content-length"] = Buffer.byteLength(body);

    const exchange = this.open("POST", headers, body, longLived ? 0 : this.idleTimeoutMs);
    const context: StreamContext = { pending: requestIds, exchange };
    for (const id of requestIds) this.streamsByRequestId.set(id, context);
    const onRequestAbort = () => this.abort(context.exchange);
    const requestSignal = options.requestSignal;
    if (requestSignal !== undefined) {
      if (requestSignal.aborted) this.abort(exchange);
      else requestSignal.addEventListener("abort", onRequestAbort, { once: true });
    }
    try {
      const response = await responseOf(exchange);
      const status = response.statusCode ?? 0;
      if (initialize && status >= 200 && status < 300) this.adoptSessionId(response);
      if (status === 202 || (status >= 200 && status < 300 && requestIds.size === 0)) {
        response.resume();
        if (single !== undefined && isObject(single) && single.method === "notifications/initialized") this.openStandaloneStream();
        return;
      }
      if (status < 200 || status >= 300) {
        const text = await readAnswerBody(exchange, response, MAX_ERROR_BODY_BYTES, true);
        if (status === 400 && enveloped !== undefined && enveloped >= FIRST_MODERN_PROTOCOL_VERSION && this.deliverErrorAnswer(text, requestIds)) return;
        throw this.statusError("POST", response, text);
      }
      const type = mediaType(response.headers["content-type"]);
      if (type === "application/json") {
        const text = await readAnswerBody(exchange, response, this.maxMessageBytes, false);
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          // Say what went wrong, not JSON.parse's "Unexpected token" with a piece of the body.
          throw new SdkError(SdkErrorCode.ClientHttpUnexpectedContent, "the upstream answered with a body that is not valid JSON (its Content-Type said application/json)");
        }
        for (const item of Array.isArray(parsed) ? parsed : [parsed]) this.deliver(item, context.pending);
        return;
      }
      if (type === "text/event-stream") {
        await this.readStream(context, options.onRequestStreamEnd, requestSignal);
        return;
      }
      response.destroy();
      throw new SdkError(SdkErrorCode.ClientHttpUnexpectedContent, `the upstream answered with content type "${response.headers["content-type"] ?? "(none)"}"; expected application/json or text/event-stream`, {
        contentType: response.headers["content-type"],
      });
    } catch (error) {
      if (context.exchange.aborted) return;
      throw error;
    } finally {
      if (isObject(single) && single.method === "notifications/cancelled") this.endCancelledStream(single);
      requestSignal?.removeEventListener("abort", onRequestAbort);
      for (const id of requestIds) if (this.streamsByRequestId.get(id) === context) this.streamsByRequestId.delete(id);
    }
  }

  /** The protocol version a request claims in its `_meta` (2026-07-28 requests carry one on every request). */
  private envelopeVersion(message: unknown): string | undefined {
    if (!isRequest(message) || !isObject(message.params)) return undefined;
    const meta = message.params._meta;
    if (!isObject(meta)) return undefined;
    const version = meta[PROTOCOL_VERSION_META_KEY];
    return typeof version === "string" ? version : undefined;
  }

  private adoptSessionId(response: IncomingMessage): void {
    const value = response.headers["mcp-session-id"];
    if (typeof value !== "string" || value === "") return;
    // The spec allows visible ASCII only; anything else would be refused when sent back (or smuggle a header).
    if (!/^[\x21-\x7e]{1,1024}$/.test(value)) throw new Error("the upstream sent an Mcp-Session-Id that is not visible ASCII (at most 1024 characters); refusing the session");
    this.sessionIdValue = value;
  }

  /** A 400 answer to a 2026-07-28 request that is a JSON-RPC error for it: the Client reads it as the answer. */
  private deliverErrorAnswer(text: string, requestIds: Set<RequestIdLike>): boolean {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return false;
    }
    if (!isObject(parsed) || !isObject(parsed.error) || typeof parsed.error.code !== "number") return false;
    if (!requestIds.has(parsed.id as RequestIdLike)) return false;
    this.onmessage?.(parsed as JSONRPCMessage);
    return true;
  }

  private deliver(item: unknown, pending: Set<RequestIdLike>): void {
    if (!isObject(item)) {
      this.onerror?.(new Error("the upstream sent a JSON-RPC message that is not an object"));
      return;
    }
    // A stream carries the answers of its own requests only. A response for any other id (another call's, a
    // duplicate, one on the standalone stream) would settle a request this stream does not carry, with an answer the
    // upstream sent for something else: it is dropped, and only its id is reported (not its content).
    if (isResponse(item) && !pending.delete(item.id)) {
      this.onerror?.(new Error(`the upstream sent a response for request id ${JSON.stringify(item.id)} on a stream that does not carry that request; it was dropped`));
      return;
    }
    try {
      this.onmessage?.(item as JSONRPCMessage);
    } catch (error) {
      this.onerror?.(error as Error);
    }
  }

  /** 2025-11-25 cancellation: the notification went out; the cancelled request's stream is of no further use. */
  private endCancelledStream(notification: Record<string, unknown>): void {
    const params = notification.params;
    if (!isObject(params)) return;
    const context = this.streamsByRequestId.get(params.requestId as RequestIdLike);
    if (context === undefined) return;
    context.pending.delete(params.requestId as RequestIdLike);
    if (context.pending.size === 0) this.abort(context.exchange);
  }

  /**
   * Reads an event stream until it ends, delivering each message. A POST stream that stops before all its responses
   * arrived is resumed with GET + Last-Event-ID when the server gave an event id; otherwise the request fails now
   * rather than at its timeout.
   */
  private async readStream(context: StreamContext, onEnd: (() => void) | undefined, requestSignal: AbortSignal | undefined): Promise<void> {
    // (A function, so that TypeScript does not keep its narrowing of `aborted` across an await.)
    const cancelled = () => requestSignal?.aborted === true;
    let outcome = await this.consumeEvents(context.exchange, context.pending);
    let failures = 0;
    for (;;) {
      if (context.pending.size === 0 || this.closed || context.exchange.aborted || cancelled()) {
        if (!context.exchange.aborted && !cancelled()) onEnd?.();
        return;
      }
      if (isFinal(outcome.error) || outcome.lastEventId === undefined) {
        onEnd?.();
        throw outcome.error ?? new Error("the upstream ended its event stream before answering (and gave no event id to resume from)");
      }
      await this.delay(this.serverRetryMs ?? Math.min(RECONNECT_INITIAL_MS * RECONNECT_GROWTH ** failures, RECONNECT_MAX_MS));
      if (this.isClosed() || cancelled()) return;
      let exchange: Exchange | undefined;
      try {
        exchange = await this.openEventStream(outcome.lastEventId, this.idleTimeoutMs);
      } catch (error) {
        failures += 1;
        if (failures >= RECONNECT_MAX_FAILURES || this.isClosed()) {
          onEnd?.();
          throw new Error(`could not resume the upstream's event stream: ${(error as Error).message}`, { cause: error });
        }
        continue;
      }
      if (exchange === undefined) {
        onEnd?.();
        throw new Error("the upstream ended its event stream before answering and does not allow resuming it (HTTP 405)");
      }
      failures = 0;
      context.exchange = exchange;
      const lastEventId = outcome.lastEventId;
      outcome = await this.consumeEvents(exchange, context.pending);
      outcome.lastEventId ??= lastEventId;
    }
  }

  /** 2025-11-25: the standalone GET stream on which the server sends notifications (list_changed). */
  private openStandaloneStream(): void {
    const run = async () => {
      let failures = 0;
      let lastEventId: string | undefined;
      while (!this.closed) {
        let exchange: Exchange | undefined;
        try {
          exchange = await this.openEventStream(lastEventId, 0);
        } catch (error) {
          if (this.closed) return;
          this.onerror?.(error as Error);
          failures += 1;
          if (failures >= RECONNECT_MAX_FAILURES) return;
          await this.delay(this.serverRetryMs ?? Math.min(RECONNECT_INITIAL_MS * RECONNECT_GROWTH ** failures, RECONNECT_MAX_MS));
          continue;
        }
        if (exchange === undefined) return; // 405: the server offers no standalone stream.
        failures = 0;
        const outcome = await this.consumeEvents(exchange, new Set());
        if (this.closed) return;
        if (outcome.error !== undefined) this.onerror?.(outcome.error);
        // After a refused event, resuming from before it would only replay it: start afresh.
        lastEventId = isFinal(outcome.error) ? undefined : (outcome.lastEventId ?? lastEventId);
        await this.delay(this.serverRetryMs ?? RECONNECT_INITIAL_MS);
      }
    };
    void run();
  }

  /** GET with Accept: text/event-stream; undefined when the server answers 405 (no such stream). */
  private async openEventStream(lastEventId: string | undefined, idleTimeoutMs: number): Promise<Exchange | undefined> {
    const headers: OutgoingHttpHeaders = { ...this.configuredHeaders, accept: "text/event-stream" };
    if (this.sessionIdValue !== undefined) headers["mcp-session-id"] = this.sessionIdValue;
    if (this.protocolVersionValue !== undefined) headers["mcp-protocol-version"] = this.protocolVersionValue;
    if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
    const exchange = this.open("GET", headers, undefined, idleTimeoutMs);
    const response = await responseOf(exchange);
    const status = response.statusCode ?? 0;
    if (status === 405) {
      response.resume();
      return undefined;
    }
    if (status < 200 || status >= 300) {
      const text = await readAnswerBody(exchange, response, MAX_ERROR_BODY_BYTES, true);
      throw this.statusError("GET", response, text);
    }
    if (mediaType(response.headers["content-type"]) !== "text/event-stream") {
      response.destroy();
      throw new SdkError(SdkErrorCode.ClientHttpUnexpectedContent, `the upstream answered GET with content type "${response.headers["content-type"] ?? "(none)"}"; expected text/event-stream`);
    }
    return exchange;
  }

  /**
   * Delivers the messages of an event stream until it ends. Resolves (never rejects) with the last event id seen and,
   * when the stream did not end cleanly, why: a deliberate abort counts as a clean end.
   */
  private consumeEvents(exchange: Exchange, pending: Set<RequestIdLike>): Promise<StreamOutcome> {
    const response = exchange.response as IncomingMessage;
    return new Promise((resolve) => {
      // Messages are handed on one per microtask, in order: the Client runs a notification's handler (progress) a
      // microtask after receiving it, and removes a request's progress handler as soon as its response arrives, so
      // a progress event and the response read in one chunk would otherwise lose the progress.
      let delivery = Promise.resolve();
      const parser = new SseParser({
        maxEventBytes: this.maxMessageBytes,
        // The server's delay is honoured within bounds: `retry: 0` on a stream that ends at once would otherwise
        // make the guard reopen it in a tight loop (a thousand GETs a second).
        onRetry: (milliseconds) => (this.serverRetryMs = Math.min(Math.max(milliseconds, RECONNECT_MIN_MS), RECONNECT_MAX_MS)),
        onEvent: (event) => {
          if (event.event !== "message" || event.data === "") return;
          let parsed: unknown;
          try {
            parsed = JSON.parse(event.data);
          } catch {
            this.onerror?.(new Error("the upstream sent an event whose data is not JSON"));
            return;
          }
          delivery = delivery.then(() => {
            this.deliver(parsed, pending);
            // Every answer this stream carries has arrived. A server SHOULD close the stream now; one that keeps it
            // open (keep-alive comments forever) would otherwise hold a pooled socket per call until none are left.
            // A short grace lets a well-behaved server end it cleanly, keeping the socket for reuse.
            if (carriesAnswers && pending.size === 0 && !settled && answeredTimer === undefined) {
              answeredTimer = setTimeout(() => {
                response.destroy();
                finish(undefined);
              }, ANSWERED_STREAM_GRACE_MS);
            }
          });
        },
      });
      const carriesAnswers = pending.size > 0;
      let answeredTimer: NodeJS.Timeout | undefined;
      let settled = false;
      const finish = (error: Error | undefined) => {
        if (settled) return;
        settled = true;
        if (answeredTimer !== undefined) clearTimeout(answeredTimer);
        parser.end();
        void delivery.then(() => resolve({ lastEventId: parser.lastEventId, error: exchange.aborted ? undefined : error }));
      };
      response.on("data", (chunk: Buffer) => {
        if (settled) return;
        try {
          parser.push(chunk);
        } catch (error) {
          exchange.failure = error instanceof SseEventTooLargeError ? new UpstreamAnswerTooLargeError(this.maxMessageBytes, "event") : (error as Error);
          response.destroy();
          finish(exchange.failure);
        }
      });
      response.once("end", () => finish(undefined));
      response.once("error", (error) => finish(exchange.failure ?? (isCutShort(error) ? new Error("the upstream's event stream broke off") : error)));
      response.once("close", () => finish(response.complete ? undefined : (exchange.failure ?? new Error("the upstream's event stream broke off"))));
    });
  }

  private statusError(method: string, response: IncomingMessage, text: string): Error {
    const status = response.statusCode ?? 0;
    const statusText = response.statusMessage ?? "";
    if (status >= 300 && status < 400) {
      let where = "";
      try {
        const location = response.headers.location;
        if (location !== undefined) where = ` to ${new URL(location, this.url).origin}`;
      } catch {
        where = "";
      }
      return new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `the upstream answered ${method} with a redirect (HTTP ${status})${where}; redirects are not followed (the credential headers would follow them): configure the final URL`, { status, statusText, text });
    }
    if (status === 404 && this.sessionIdValue !== undefined) {
      // The session is gone (the upstream restarted or expired it): this connection is finished; the guard reconnects.
      this.sessionIdValue = undefined;
      setImmediate(() => void this.close());
      return new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `the upstream no longer knows this session (HTTP 404 on ${method}): it expired or the upstream restarted; reconnecting with a new session`, { status, statusText, text });
    }
    const snippet = text.replace(/\s+/g, " ").trim().slice(0, 300);
    const code = status === 401 ? SdkErrorCode.ClientHttpAuthentication : status === 403 ? SdkErrorCode.ClientHttpForbidden : SdkErrorCode.ClientHttpNotImplemented;
    const hint = status === 401 || status === 403 ? " (check the credentials in this server's headers)" : "";
    return new SdkHttpError(code, `the upstream answered ${method} with HTTP ${status}${statusText === "" ? "" : ` ${statusText}`}${hint}${snippet === "" ? "" : `: ${snippet}`}`, { status, statusText, text });
  }

  private async terminateSession(sessionId: string): Promise<void> {
    const headers: OutgoingHttpHeaders = { ...this.configuredHeaders, "mcp-session-id": sessionId };
    if (this.protocolVersionValue !== undefined) headers["mcp-protocol-version"] = this.protocolVersionValue;
    const exchange = this.open("DELETE", headers, undefined, DELETE_TIMEOUT_MS, true);
    const timer = setTimeout(() => this.abort(exchange), DELETE_TIMEOUT_MS);
    try {
      const response = await responseOf(exchange);
      response.resume();
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts one HTTP request. `idleTimeoutMs` 0: no inactivity bound. */
  private open(method: string, headers: OutgoingHttpHeaders, body: string | undefined, idleTimeoutMs: number, evenWhenClosed = false): Exchange {
    if (this.closed && !evenWhenClosed) throw closeReason("the upstream transport is closed");
    const request = (this.secure ? https.request : http.request)({
      ...this.requestOptions,
      method,
      headers,
      agent: this.agent,
    });
    const exchange: Exchange = { request, response: undefined, aborted: false, failure: undefined };
    this.exchanges.add(exchange);
    request.once("close", () => this.exchanges.delete(exchange));
    if (idleTimeoutMs > 0) {
      request.setTimeout(idleTimeoutMs, () => {
        exchange.failure ??= new UpstreamIdleTimeoutError(idleTimeoutMs);
        request.destroy(exchange.failure);
        exchange.response?.destroy(exchange.failure);
      });
    }
    request.end(body);
    return exchange;
  }

  private abort(exchange: Exchange): void {
    if (exchange.aborted) return;
    exchange.aborted = true;
    exchange.request.destroy();
    exchange.response?.destroy();
  }

  /** (A method, so that TypeScript does not keep its narrowing of `closed` across an await.) */
  private isClosed(): boolean {
    return this.closed;
  }

  private delay(milliseconds: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, milliseconds);
      this.timers.set(timer, resolve);
    });
  }
}
