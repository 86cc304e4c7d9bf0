// The upstream leg of plain-HTTP forwarding: a pool of idle keep-alive connections and one request/response exchange
// on a connection, framed by the strict parser in http1.ts. A connection goes back to the pool only after an exchange
// that ended exactly where its framing said (no stray bytes, no close requested, request body fully sent); anything
// else is destroyed, so one response can never be read as part of another. Pools are keyed by client and checked
// address, so two clients never share an upstream connection.
import type { IncomingMessage } from "node:http";
import type net from "node:net";
import { CRLF, LAST_CHUNK, createChunkedDecoder, encodeChunk, parseResponseHead, responseHasBody } from "./http1.ts";
import type { ChunkedDecoder, ResponseHead } from "./http1.ts";

/** How long an idle pooled connection is kept: below the 5 s keep-alive timeout of Node and Apache origins. */
const POOL_IDLE_MS = 4000;
const MAX_IDLE_PER_KEY = 256;
const MAX_IDLE_TOTAL = 1024;
/** Interim responses accepted before the final one: enough for 100 and 103s, not an endless stream of them. */
const MAX_INFORMATIONAL = 16;

export interface UpstreamPool {
  /** An idle connection for `key`, or undefined. The connection is the caller's until it gives it back. */
  take(key: string): net.Socket | undefined;
  /** Whether `key` has an idle connection now (it may still die before take). */
  has(key: string): boolean;
  /** Keeps a connection whose last exchange ended cleanly; destroys it when the pool is full. */
  give(key: string, socket: net.Socket): void;
  idle(): number;
  /** Destroys every idle connection (and those of keys matching `filter`, when given). */
  clear(filter?: (key: string) => boolean): void;
}

export function createUpstreamPool(): UpstreamPool {
  const idle = new Map<string, Set<net.Socket>>();
  const cleanups = new Map<net.Socket, () => void>();
  let total = 0;

  function remove(key: string, socket: net.Socket): void {
    const cleanup = cleanups.get(socket);
    if (cleanup === undefined) return;
    cleanups.delete(socket);
    cleanup();
    const set = idle.get(key);
    set?.delete(socket);
    if (set?.size === 0) idle.delete(key);
    total -= 1;
  }

  return {
    take(key) {
      const set = idle.get(key);
      if (set === undefined) return undefined;
      for (const socket of set) {
        remove(key, socket);
        if (!socket.destroyed && socket.readable && socket.writable) return socket;
        socket.destroy();
      }
      return undefined;
    },
    has: (key) => idle.has(key),
    give(key, socket) {
      if (socket.destroyed || !socket.readable || !socket.writable || total >= MAX_IDLE_TOTAL || (idle.get(key)?.size ?? 0) >= MAX_IDLE_PER_KEY) {
        socket.destroy();
        return;
      }
      // While idle, any byte, end or error means the connection is not reusable.
      const drop = () => {
        remove(key, socket);
        socket.destroy();
      };
      socket.on("data", drop);
      socket.on("end", drop);
      socket.on("error", drop);
      socket.on("close", drop);
      socket.on("timeout", drop);
      socket.setTimeout(POOL_IDLE_MS);
      cleanups.set(socket, () => {
        socket.off("data", drop);
        socket.off("end", drop);
        socket.off("error", drop);
        socket.off("close", drop);
        socket.off("timeout", drop);
        socket.setTimeout(0);
      });
      let set = idle.get(key);
      if (set === undefined) idle.set(key, (set = new Set()));
      set.add(socket);
      total += 1;
      // Flowing while idle, so that a close or a stray byte from the origin is seen at once.
      socket.resume();
    },
    idle: () => total,
    clear(filter) {
      for (const [key, set] of [...idle]) {
        if (filter !== undefined && !filter(key)) continue;
        for (const socket of [...set]) {
          remove(key, socket);
          socket.destroy();
        }
      }
    },
  };
}

/**
 * Methods a proxy may send again on its own (RFC 9110 section 9.2.2: "A proxy MUST NOT automatically retry
 * non-idempotent requests"): a POST or PATCH the origin received just before closing may already have taken effect.
 */
const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/** An upstream failure; `retryable` when a reused connection failed before any byte of the answer arrived. */
export class UpstreamError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  constructor(message: string, code: string, retryable = false) {
    super(message);
    this.name = "UpstreamError";
    this.code = code;
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
  const { socket, request } = options;
  let buffered: Buffer | undefined;
  let head: ResponseHead | undefined;
  let remaining = 0;
  let decoder: ChunkedDecoder | undefined;
  let receivedAny = false;
  let informational = 0;
  let requestDone = options.body === "none";
  let finished = false;
  // A stale pooled connection may be tried again only when nothing is lost by sending the request twice.
  const repeatable = options.reused && options.body === "none" && IDEMPOTENT_METHODS.has(options.method);
  /** Room for head bytes beyond `buffered` (see appendHeadBytes). */
  let headStore: Buffer | undefined;

  /** Appends to the head bytes read so far with a doubling store: linear in the head's size, however it is split. */
  function appendHeadBytes(previous: Buffer | undefined, chunk: Buffer): Buffer {
    if (previous === undefined) return chunk;
    const length = previous.length + chunk.length;
    if (headStore === undefined || headStore.buffer !== previous.buffer || headStore.byteOffset !== previous.byteOffset || headStore.length < length) {
      const grown = Buffer.allocUnsafe(Math.max(length, 2 * (headStore?.length ?? 0), 4096));
      previous.copy(grown, 0);
      headStore = grown;
    }
    chunk.copy(headStore, previous.length);
    return headStore.subarray(0, length);
  }

  function detach(): void {
    socket.off("data", onData);
    socket.off("end", onEnd);
    socket.off("error", onSocketError);
    socket.off("close", onClose);
    socket.off("drain", onDrain);
    socket.off("timeout", onTimeout);
    socket.setTimeout(0);
    request.off("data", onRequestData);
    request.off("end", onRequestEnd);
    request.off("close", onRequestClose);
  }

  function fail(error: UpstreamError): void {
    if (finished) return;
    finished = true;
    detach();
    socket.destroy();
    if (!requestDone) request.resume();
    options.onError(error, head !== undefined);
  }

  function complete(leftover: boolean): void {
    if (finished) return;
    finished = true;
    detach();
    const reusable = !leftover && requestDone && head !== undefined && !head.close && !socket.destroyed;
    if (!reusable) socket.destroy();
    if (!requestDone) request.resume();
    options.onEnd(reusable);
  }

  function deliver(data: Buffer): void {
    if (data.length > 0 && !options.onData(data)) socket.pause();
  }

  function onBody(chunk: Buffer): void {
    if (head === undefined) return;
    if (head.framing.kind === "close" && decoder === undefined && remaining === -1) {
      deliver(chunk);
      return;
    }
    if (decoder !== undefined) {
      let used: number;
      try {
        used = decoder.push(chunk, deliver);
      } catch (error) {
        fail(new UpstreamError((error as Error).message, "ERR_UPSTREAM_MALFORMED"));
        return;
      }
      if (decoder.done) complete(used < chunk.length);
      return;
    }
    const take = Math.min(remaining, chunk.length);
    remaining -= take;
    deliver(take === chunk.length ? chunk : chunk.subarray(0, take));
    if (remaining === 0) complete(take < chunk.length);
  }

  function onData(chunk: Buffer): void {
    receivedAny = true;
    if (head !== undefined) {
      onBody(chunk);
      return;
    }
    const scannedBefore = buffered === undefined ? 0 : buffered.length;
    buffered = appendHeadBytes(buffered, chunk);
    // Informational responses come before the final one, possibly in the same read.
    for (let scanned = scannedBefore; ; scanned = 0) {
      const parsed = parseResponseHead(buffered, options.maxHeadBytes, scanned);
      if (parsed.kind === "need-more") return;
      if (parsed.kind === "invalid") {
        fail(new UpstreamError(`malformed response: ${parsed.detail}`, "ERR_UPSTREAM_MALFORMED"));
        return;
      }
      const rest = buffered.subarray(parsed.head.length);
      if (parsed.head.status === 101) {
        fail(new UpstreamError("the origin switched protocols without being asked", "ERR_UPSTREAM_MALFORMED"));
        return;
      }
      if (parsed.head.status < 200) {
        informational += 1;
        if (informational > MAX_INFORMATIONAL) {
          fail(new UpstreamError(`the origin sent more than ${MAX_INFORMATIONAL} informational (1xx) responses`, "ERR_UPSTREAM_MALFORMED"));
          return;
        }
        options.onInformational(parsed.head);
        if (finished) return;
        buffered = rest;
        if (rest.length === 0) {
          buffered = undefined;
          return;
        }
        continue;
      }
      head = parsed.head;
      buffered = undefined;
      const hasBody = responseHasBody(options.method, head.status);
      if (!hasBody) remaining = 0;
      else if (head.framing.kind === "length") remaining = head.framing.length;
      else if (head.framing.kind === "chunked") decoder = createChunkedDecoder();
      else remaining = -1;
      options.onHead(head, hasBody && !(head.framing.kind === "length" && head.framing.length === 0));
      if (finished) return;
      if (!hasBody || (head.framing.kind === "length" && head.framing.length === 0)) {
        complete(rest.length > 0);
        return;
      }
      if (rest.length > 0) onBody(rest);
      return;
    }
  }

  function onEnd(): void {
    if (head !== undefined && head.framing.kind === "close" && remaining === -1 && decoder === undefined) {
      complete(true);
      return;
    }
    fail(closedEarly());
  }

  function closedEarly(): UpstreamError {
    if (!receivedAny) return new UpstreamError("the origin closed the connection without answering", "ECONNRESET", repeatable);
    return new UpstreamError(head === undefined ? "the origin closed the connection in the middle of the response head" : "the origin closed the connection before the response was complete", "ECONNRESET");
  }

  function onSocketError(error: NodeJS.ErrnoException): void {
    fail(new UpstreamError(error.message, error.code ?? "ERR_UPSTREAM", !receivedAny && repeatable));
  }

  function onClose(): void {
    fail(closedEarly());
  }

  function onTimeout(): void {
    fail(new UpstreamError(`the origin sent nothing for ${options.idleTimeoutMs / 1000} s`, "ERR_UPSTREAM_TIMEOUT"));
  }

  function onDrain(): void {
    request.resume();
  }

  function onRequestData(chunk: Buffer): void {
    const ok = options.body === "chunked" ? writeChunk(chunk) : socket.write(chunk);
    if (!ok) request.pause();
  }

  function writeChunk(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    const [size, data] = encodeChunk(chunk);
    socket.write(size as Buffer);
    socket.write(data as Buffer);
    return socket.write(CRLF);
  }

  function onRequestEnd(): void {
    requestDone = true;
    if (options.body === "chunked") socket.write(LAST_CHUNK);
    request.off("data", onRequestData);
    socket.off("drain", onDrain);
  }

  function onRequestClose(): void {
    // The client went away before its body was complete: the upstream must not see a truncated request as whole.
    if (!requestDone) fail(new UpstreamError("the client closed the connection before its request body was complete", "ERR_CLIENT_ABORTED"));
  }

  socket.on("data", onData);
  socket.on("end", onEnd);
  socket.on("error", onSocketError);
  socket.on("close", onClose);
  socket.on("timeout", onTimeout);
  socket.setTimeout(options.idleTimeoutMs);
  socket.resume();
  socket.write(options.head, "latin1");
  if (options.body !== "none") {
    socket.on("drain", onDrain);
    request.on("data", onRequestData);
    request.on("end", onRequestEnd);
    request.on("close", onRequestClose);
    request.resume();
  } else {
    request.resume();
  }

  return {
    pause() {
      if (!finished) socket.pause();
    },
    resume() {
      if (!finished) socket.resume();
    },
    abort() {
      if (finished) return;
      finished = true;
      detach();
      socket.destroy();
    },
  };
}
