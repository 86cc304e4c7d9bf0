// The upstream leg of plain-HTTP forwarding: one request/response exchange on a connection, framed by the strict
// parser in http1.ts. An exchange says the connection is reusable only when it ended exactly where its framing said
// (no stray bytes, no close requested, request body fully sent); anything else is destroyed, so one response can
// never be read as part of another. Idle connections wait in upstream-pool.ts.
import type { IncomingMessage } from "node:http";
import type net from "node:net";
import { CRLF, LAST_CHUNK, createChunkedDecoder, encodeChunk, parseResponseHead, responseHasBody } from "./http1.ts";
import type { ChunkedDecoder, ResponseHead } from "./http1.ts";
import { PerimeterError } from "../shared/errors.ts";

/** Interim responses accepted before the final one: enough for 100 and 103s, not an endless stream of them. */
const MAX_INFORMATIONAL = 16;

/**
 * Methods a proxy may send again on its own (RFC 9110 section 9.2.2: "A proxy MUST NOT automatically retry
 * non-idempotent requests"): a POST or PATCH the origin received just before closing may already have taken effect.
 */
const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/**
 * An upstream failure; `socketCode` is the errno-style code (ECONNRESET, ERR_UPSTREAM_TIMEOUT...) the refusal reason
 * is read from, `retryable` when a reused connection failed before any byte of the answer arrived.
 */
export class UpstreamError extends PerimeterError {
  readonly socketCode: string;
  readonly retryable: boolean;
  constructor(message: string, socketCode: string, retryable = false) {
    super(socketCode === "ERR_UPSTREAM_TIMEOUT" ? "timeout" : "upstream", message);
    this.socketCode = socketCode;
    this.retryable = retryable;
  }
}

export interface ExchangeOptions {
  readonly socket: net.Socket;
  /** The connection came from the pool (a failure before any answer byte may be a stale connection). */
  readonly reused: boolean;
  readonly method: string;
  /** The complete request head, latin1 (header values keep their bytes). */
  readonly head: string;
  /** How the request body is sent upstream: none, as received under its Content-Length, or re-chunked. */
  readonly body: "none" | "length" | "chunked";
  readonly request: IncomingMessage;
  readonly maxHeadBytes: number;
  readonly idleTimeoutMs: number;
  /** A final response head arrived; `hasBody` says whether body bytes will follow. */
  onHead(head: ResponseHead, hasBody: boolean): void;
  /** An informational (1xx) response other than 101. */
  onInformational(head: ResponseHead): void;
  /** Body bytes; return false to pause until `resume()`. The buffer may be reused after the call returns. */
  onData(data: Buffer): boolean;
  /** The response is complete; the connection is reusable (and detached) or already destroyed. */
  onEnd(reusable: boolean): void;
  /** The exchange failed; the connection is destroyed. */
  onError(error: UpstreamError, responseStarted: boolean): void;
}

export interface Exchange {
  /** Stops reading the answer: nothing is delivered until `resume()` (errors still end the exchange). */
  pause(): void;
  resume(): void;
  /** Destroys the connection; no callback follows. */
  abort(): void;
}

/** Runs one request/response exchange on `socket`. Exactly one of onEnd or onError is called, unless aborted. */
export function exchange(options: ExchangeOptions): Exchange {
  return new UpstreamExchange(options);
}

/**
 * One exchange's reading state. A class rather than a closure so that each step (head, body, end, failure) reads on
 * its own; the socket and request listeners are fields so that `detach` removes exactly what was added.
 */
class UpstreamExchange implements Exchange {
  private readonly options: ExchangeOptions;
  private readonly socket: net.Socket;
  private readonly request: IncomingMessage;
  private buffered: Buffer | undefined;
  private head: ResponseHead | undefined;
  private remaining = 0;
  private decoder: ChunkedDecoder | undefined;
  private receivedAny = false;
  private informational = 0;
  private requestDone: boolean;
  private finished = false;
  /** A stale pooled connection may be tried again only when nothing is lost by sending the request twice. */
  private readonly repeatable: boolean;
  /** Room for head bytes beyond `buffered` (see appendHeadBytes). */
  private headStore: Buffer | undefined;

  constructor(options: ExchangeOptions) {
    this.options = options;
    this.socket = options.socket;
    this.request = options.request;
    this.requestDone = options.body === "none";
    this.repeatable = options.reused && options.body === "none" && IDEMPOTENT_METHODS.has(options.method);
    const { socket, request } = this;
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("error", this.onSocketError);
    socket.on("close", this.onClose);
    socket.on("timeout", this.onTimeout);
    socket.setTimeout(options.idleTimeoutMs);
    socket.resume();
    socket.write(options.head, "latin1");
    if (options.body !== "none") {
      socket.on("drain", this.onDrain);
      request.on("data", this.onRequestData);
      request.on("end", this.onRequestEnd);
      request.on("close", this.onRequestClose);
    }
    request.resume();
  }

  pause(): void {
    if (!this.finished) this.socket.pause();
  }

  resume(): void {
    if (!this.finished) this.socket.resume();
  }

  abort(): void {
    if (this.finished) return;
    this.finished = true;
    this.detach();
    this.socket.destroy();
  }

  /** Appends to the head bytes read so far with a doubling store: linear in the head's size, however it is split. */
  private appendHeadBytes(previous: Buffer | undefined, chunk: Buffer): Buffer {
    if (previous === undefined) return chunk;
    const length = previous.length + chunk.length;
    let store = this.headStore;
    if (store === undefined || store.buffer !== previous.buffer || store.byteOffset !== previous.byteOffset || store.length < length) {
      const grown = Buffer.allocUnsafe(Math.max(length, 2 * (store?.length ?? 0), 4096));
      previous.copy(grown, 0);
      store = this.headStore = grown;
    }
    chunk.copy(store, previous.length);
    return store.subarray(0, length);
  }

  private detach(): void {
    const { socket, request } = this;
    socket.off("data", this.onData);
    socket.off("end", this.onEnd);
    socket.off("error", this.onSocketError);
    socket.off("close", this.onClose);
    socket.off("drain", this.onDrain);
    socket.off("timeout", this.onTimeout);
    socket.setTimeout(0);
    request.off("data", this.onRequestData);
    request.off("end", this.onRequestEnd);
    request.off("close", this.onRequestClose);
  }

  private fail(error: UpstreamError): void {
    if (this.finished) return;
    this.finished = true;
    this.detach();
    this.socket.destroy();
    if (!this.requestDone) this.request.resume();
    this.options.onError(error, this.head !== undefined);
  }

  private complete(leftover: boolean): void {
    if (this.finished) return;
    this.finished = true;
    this.detach();
    const reusable = !leftover && this.requestDone && this.head !== undefined && !this.head.close && !this.socket.destroyed;
    if (!reusable) this.socket.destroy();
    if (!this.requestDone) this.request.resume();
    this.options.onEnd(reusable);
  }

  private readonly deliver = (data: Buffer): void => {
    if (data.length > 0 && !this.options.onData(data)) this.socket.pause();
  };

  private onBody(chunk: Buffer): void {
    const head = this.head;
    if (head === undefined) return;
    if (head.framing.kind === "close" && this.decoder === undefined && this.remaining === -1) {
      this.deliver(chunk);
      return;
    }
    if (this.decoder !== undefined) {
      let used: number;
      try {
        used = this.decoder.push(chunk, this.deliver);
      } catch (error) {
        this.fail(new UpstreamError((error as Error).message, "ERR_UPSTREAM_MALFORMED"));
        return;
      }
      if (this.decoder.done) this.complete(used < chunk.length);
      return;
    }
    const take = Math.min(this.remaining, chunk.length);
    this.remaining -= take;
    this.deliver(take === chunk.length ? chunk : chunk.subarray(0, take));
    if (this.remaining === 0) this.complete(take < chunk.length);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.receivedAny = true;
    if (this.head !== undefined) {
      this.onBody(chunk);
      return;
    }
    const scannedBefore = this.buffered === undefined ? 0 : this.buffered.length;
    this.buffered = this.appendHeadBytes(this.buffered, chunk);
    this.readHeads(this.buffered, scannedBefore);
  };

  /** Informational responses come before the final one, possibly in the same read. */
  private readHeads(bytes: Buffer, scannedBefore: number): void {
    let buffered = bytes;
    for (let scanned = scannedBefore; ; scanned = 0) {
      const parsed = parseResponseHead(buffered, this.options.maxHeadBytes, scanned);
      if (parsed.kind === "need-more") return;
      if (parsed.kind === "invalid") return this.fail(new UpstreamError(`malformed response: ${parsed.detail}`, "ERR_UPSTREAM_MALFORMED"));
      const rest = buffered.subarray(parsed.head.length);
      if (parsed.head.status === 101) return this.fail(new UpstreamError("the origin switched protocols without being asked", "ERR_UPSTREAM_MALFORMED"));
      if (parsed.head.status >= 200) return this.onFinalHead(parsed.head, rest);
      this.informational += 1;
      if (this.informational > MAX_INFORMATIONAL) {
        return this.fail(new UpstreamError(`the origin sent more than ${MAX_INFORMATIONAL} informational (1xx) responses`, "ERR_UPSTREAM_MALFORMED"));
      }
      this.options.onInformational(parsed.head);
      if (this.finished) return;
      buffered = rest;
      this.buffered = rest.length === 0 ? undefined : rest;
      if (rest.length === 0) return;
    }
  }

  private onFinalHead(head: ResponseHead, rest: Buffer): void {
    this.head = head;
    this.buffered = undefined;
    const hasBody = responseHasBody(this.options.method, head.status);
    if (!hasBody) this.remaining = 0;
    else if (head.framing.kind === "length") this.remaining = head.framing.length;
    else if (head.framing.kind === "chunked") this.decoder = createChunkedDecoder();
    else this.remaining = -1;
    const empty = !hasBody || (head.framing.kind === "length" && head.framing.length === 0);
    this.options.onHead(head, !empty);
    if (this.finished) return;
    if (empty) this.complete(rest.length > 0);
    else if (rest.length > 0) this.onBody(rest);
  }

  private readonly onEnd = (): void => {
    if (this.head !== undefined && this.head.framing.kind === "close" && this.remaining === -1 && this.decoder === undefined) {
      this.complete(true);
      return;
    }
    this.fail(this.closedEarly());
  };

  private closedEarly(): UpstreamError {
    if (!this.receivedAny) return new UpstreamError("the origin closed the connection without answering", "ECONNRESET", this.repeatable);
    return new UpstreamError(this.head === undefined ? "the origin closed the connection in the middle of the response head" : "the origin closed the connection before the response was complete", "ECONNRESET");
  }

  private readonly onSocketError = (error: NodeJS.ErrnoException): void => {
    this.fail(new UpstreamError(error.message, error.code ?? "ERR_UPSTREAM", !this.receivedAny && this.repeatable));
  };

  private readonly onClose = (): void => {
    this.fail(this.closedEarly());
  };

  private readonly onTimeout = (): void => {
    this.fail(new UpstreamError(`the origin sent nothing for ${this.options.idleTimeoutMs / 1000} s`, "ERR_UPSTREAM_TIMEOUT"));
  };

  private readonly onDrain = (): void => {
    this.request.resume();
  };

  private readonly onRequestData = (chunk: Buffer): void => {
    const ok = this.options.body === "chunked" ? this.writeChunk(chunk) : this.socket.write(chunk);
    if (!ok) this.request.pause();
  };

  private writeChunk(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    const [size, data] = encodeChunk(chunk);
    this.socket.write(size as Buffer);
    this.socket.write(data as Buffer);
    return this.socket.write(CRLF);
  }

  private readonly onRequestEnd = (): void => {
    this.requestDone = true;
    if (this.options.body === "chunked") this.socket.write(LAST_CHUNK);
    this.request.off("data", this.onRequestData);
    this.socket.off("drain", this.onDrain);
  };

  private readonly onRequestClose = (): void => {
    // The client went away before its body was complete: the upstream must not see a truncated request as whole.
    if (!this.requestDone) this.fail(new UpstreamError("the client closed the connection before its request body was complete", "ERR_CLIENT_ABORTED"));
  };
}
