// The wire-level pieces of the guard's HTTP client transport (http-transport.ts) that need none of its state: the
// headers it reserves, what a message is, the errors it raises, and reading one answer off a node:http exchange
// within a byte bound.
import type { ClientRequest, IncomingMessage } from "node:http";
import { SdkError, SdkErrorCode } from "@modelcontextprotocol/client";
import type { RequestId } from "@modelcontextprotocol/client";
// errors.ts directly: this module is loaded where the rest of shared/ (pino) need not be.
import { PerimeterError } from "../shared/errors.ts";

/** Names the transport sets itself: neither the configured headers nor per-request headers may override them. */
export const RESERVED_HEADERS = new Set([
  "accept",
  "connection",
  "content-length",
  "content-type",
  "host",
  "keep-alive",
  "last-event-id",
  "mcp-method",
  "mcp-name",
  "mcp-protocol-version",
  "mcp-session-id",
  "transfer-encoding",
  "upgrade",
]);
/** `Mcp-Name` mirrors this params field of these methods (2026-07-28). */
export const MCP_NAME_FIELD: Readonly<Record<string, string>> = {
  "tools/call": "name",
  "prompts/get": "name",
  "resources/read": "uri",
  "tasks/get": "taskId",
  "tasks/update": "taskId",
  "tasks/cancel": "taskId",
};
export const FIRST_MODERN_PROTOCOL_VERSION = "2026-07-28";
export const LONG_LIVED_METHODS = new Set(["subscriptions/listen"]);

/** A JSON answer or an event larger than the limit: refused, the connection itself is fine. */
export class UpstreamAnswerTooLargeError extends PerimeterError {
  readonly limit: number;
  constructor(limit: number, what: string) {
    super("too_large", `the upstream's ${what} is larger than the ${limit}-byte limit (maxMessageBytes); it was refused, not read`);
    this.limit = limit;
  }
}

/** The upstream stayed silent longer than idleTimeoutMs. */
export class UpstreamIdleTimeoutError extends PerimeterError {
  constructor(milliseconds: number) {
    super("timeout", `the upstream sent nothing for ${milliseconds} ms (idle timeout); the request was abandoned`);
  }
}

/** One HTTP request in flight, with what is needed to end it deliberately. */
export interface Exchange {
  request: ClientRequest;
  response: IncomingMessage | undefined;
  /** Set when the transport ended it on purpose (close, cancellation): its errors are then not errors. */
  aborted: boolean;
  /** Why it failed, when it failed on its own (idle timeout, size limit). */
  failure: Error | undefined;
}

export type RequestIdLike = RequestId;

export interface StreamOutcome {
  lastEventId: string | undefined;
  /** Why the stream stopped, when it did not end cleanly. */
  error: Error | undefined;
}

/** Failures after which resuming would only fetch the same refusal again. */
export function isFinal(error: Error | undefined): boolean {
  return error instanceof UpstreamAnswerTooLargeError || error instanceof UpstreamIdleTimeoutError;
}

export interface StreamContext {
  /** Ids of requests in the POST whose responses are still due on this stream. */
  pending: Set<RequestIdLike>;
  /** The exchange currently carrying the stream (replaced when it is resumed). */
  exchange: Exchange;
}

export function mediaType(contentType: string | undefined): string {
  if (contentType === undefined) return "";
  const semicolon = contentType.indexOf(";");
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A request (has a method and an id). The Protocol validates every message it receives; this only routes. */
export function isRequest(message: unknown): message is { method: string; id: RequestIdLike; params?: unknown } {
  return isObject(message) && typeof message.method === "string" && (typeof message.id === "string" || typeof message.id === "number");
}

export function isResponse(message: unknown): message is { id: RequestIdLike } {
  return isObject(message) && message.method === undefined && ("result" in message || "error" in message) && (typeof message.id === "string" || typeof message.id === "number");
}

/** An HTTP field value as the 2026-07-28 header rules want it: plain visible ASCII as is, anything else base64. */
export function headerValue(value: string): string {
  const plain = value.length > 0 && value === value.trim() && /^[\t\x20-\x7e]*$/.test(value) && !(value.startsWith("=?base64?") && value.endsWith("?="));
  return plain ? value : `=?base64?${Buffer.from(value, "utf8").toString("base64")}?=`;
}

/** node:http reports a response cut short by the peer as the error "aborted" (ECONNRESET), before "close". */
export function isCutShort(error: Error): boolean {
  return (error as NodeJS.ErrnoException).code === "ECONNRESET";
}

export function closeReason(what: string): Error {
  return new SdkError(SdkErrorCode.ConnectionClosed, what);
}

/** Reads a whole body, refusing it past `limit` bytes (or, for error bodies, keeping only the first `limit`). */
export function readAnswerBody(exchange: Exchange, response: IncomingMessage, limit: number, truncate: boolean): Promise<string> {
  const declared = Number(response.headers["content-length"]);
  if (!truncate && Number.isFinite(declared) && declared > limit) {
    exchange.failure = new UpstreamAnswerTooLargeError(limit, `answer (Content-Length ${declared})`);
    response.destroy();
    return Promise.reject(exchange.failure);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (error: Error | undefined) => {
      if (settled) return;
      settled = true;
      if (error === undefined) resolve(Buffer.concat(chunks, size).toString("utf8"));
      else reject(error);
    };
    response.on("data", (chunk: Buffer) => {
      if (settled) return;
      if (size + chunk.length > limit) {
        if (truncate) {
          chunks.push(chunk.subarray(0, limit - size));
          size = limit;
          response.destroy();
          finish(undefined);
          return;
        }
        exchange.failure = new UpstreamAnswerTooLargeError(limit, "answer");
        response.destroy();
        finish(exchange.failure);
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
    });
    response.once("end", () => finish(undefined));
    response.once("error", (error) => finish(exchange.failure ?? (isCutShort(error) ? closeReason("the upstream closed the connection before its answer was complete") : error)));
    response.once("close", () => finish(response.complete ? undefined : (exchange.failure ?? closeReason("the upstream closed the connection before its answer was complete"))));
  });
}

/** The response headers of an exchange; rejects when it fails (or is ended by the guard) before answering. */
export function responseOf(exchange: Exchange): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const { request } = exchange;
    const onResponse = (response: IncomingMessage) => {
      request.off("error", onError);
      request.off("close", onClose);
      exchange.response = response;
      // A failure after the headers surfaces on the response; keep the request's own errors from going unhandled.
      request.on("error", () => undefined);
      resolve(response);
    };
    const onError = (error: Error) => {
      request.off("response", onResponse);
      request.off("close", onClose);
      reject(exchange.failure ?? (exchange.aborted ? closeReason("the request was ended by the guard") : error));
    };
    // A request destroyed without an error ends with "close" alone.
    const onClose = () => {
      if (exchange.response === undefined) onError(closeReason("the connection to the upstream closed before it answered"));
    };
    request.once("response", onResponse);
    request.once("error", onError);
    request.once("close", onClose);
  });
}
