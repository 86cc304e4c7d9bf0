// Serving the SDK's web-standard MCP handlers (Request → Response) on node:http. It does what
// @modelcontextprotocol/node's toNodeHandler does, with less work per request for a guard that parses every body
// itself: the body is read from the socket once (bounded), parsed once, and handed to the SDK parsed, so the web
// Request carries no body to copy; an answer that is not an event stream (2026-07-28 JSON results, errors, 202) goes out
// as one write with its length instead of a chunked stream. Event streams (2025-11-25 answers, progress while a call
// waits for approval, subscriptions) are relayed chunk by chunk with backpressure, as before.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AuthInfo } from "@modelcontextprotocol/server";

export type WebHandler = (request: Request, options: { authInfo: AuthInfo; parsedBody?: unknown }) => Promise<Response>;

export interface NodeAdapterOptions {
  /** Largest request body, in bytes; larger ones get 413 and the connection is closed. */
  maxRequestBytes: number;
  /** The handler threw: reported here, answered 500. */
  onerror?: (error: Error) => void;
  /**
   * An event stream silent this long gets an SSE comment (": keep-alive"), which clients skip. A call held for a human
   * sends nothing for minutes, and Hermes' MCP client reads Streamable HTTP with a fixed 300 s read timeout
   * (tools/mcp_tool.py:2169 in Hermes 0.18.0): without bytes the call dies there and counts toward its circuit breaker.
   * @default 15000
   */
  keepAliveMs?: number;
}

const DEFAULT_KEEP_ALIVE_MS = 15_000;

function jsonRpcError(response: ServerResponse, status: number, code: number, message: string, id: string | number | null, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id });
  response.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), "cache-control": "no-store", ...headers });
  response.end(body);
}

/** The id to echo on an error answer: the body's, when it is one request with a usable id. */
function echoableId(body: unknown): string | number | null {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return null;
  const { method, id } = body as { method?: unknown; id?: unknown };
  return typeof method === "string" && (typeof id === "string" || typeof id === "number") ? id : null;
}

/** Reads the whole body, or reports that it is over the limit (then nothing more is buffered). */
function readBody(request: IncomingMessage, limit: number): Promise<{ tooLarge: true } | { tooLarge: false; text: string }> {
  const declared = Number(request.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ tooLarge: true });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done = true;
        request.off("data", onData);
        request.pause();
        resolve({ tooLarge: true });
        return;
      }
      chunks.push(chunk);
    };
    request.on("data", onData);
    request.once("end", () => {
      if (done) return;
      done = true;
      resolve({ tooLarge: false, text: chunks.length === 1 ? (chunks[0] as Buffer).toString("utf8") : Buffer.concat(chunks, size).toString("utf8") });
    });
    request.once("error", (error) => {
      if (done) return;
      done = true;
      reject(error);
    });
    // An agent that goes away mid-body may end the stream with "close" alone.
    request.once("close", () => {
      if (done) return;
      done = true;
      reject(new Error("the agent closed the connection before its request body was complete"));
    });
  });
}

function webHeaders(request: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = request.rawHeaders;
  for (let index = 0; index + 1 < raw.length; index += 2) {
    const name = raw[index] as string;
    if (name.charCodeAt(0) === 0x3a) continue; // HTTP/2 pseudo-headers
    headers.append(name, raw[index + 1] as string);
  }
  return headers;
}

/**
 * A node:http handler that serves `handler` to an agent already authenticated (authInfo). `parsedBody` reaches the handler when the POST body is JSON; a body that
 * is not JSON is passed as text so that the SDK answers it with its own parse error.
 */
export function toNodeListener(handler: WebHandler, options: NodeAdapterOptions): (request: IncomingMessage, response: ServerResponse, authInfo: AuthInfo) => Promise<void> {
  return async (request, response, authInfo) => {
    const method = (request.method ?? "GET").toUpperCase();
    let text: string | undefined;
    let parsedBody: unknown;
    if (method !== "GET" && method !== "HEAD") {
      let read: Awaited<ReturnType<typeof readBody>>;
      try {
        read = await readBody(request, options.maxRequestBytes);
      } catch {
        // The agent went away before its request was complete: nobody is left to answer.
        response.destroy();
        return;
      }
      if (read.tooLarge) {
        // The rest of the body is not read: close the connection after answering rather than drain it.
        jsonRpcError(response, 413, -32000, `Payload Too Large: the request body must not exceed ${options.maxRequestBytes} bytes (mcp.limits.maxRequestBytes)`, null, { connection: "close" });
        response.once("finish", () => request.destroy());
        return;
      }
      text = read.text;
      if (text.length > 0) {
        try {
          parsedBody = JSON.parse(text) as unknown;
        } catch {
          parsedBody = undefined;
        }
      }
    }

    // The SDK cancels a 2026-07-28 call (and ends subscriptions) when the agent closes its stream.
    const abort = new AbortController();
    let finished = false;
    response.once("close", () => {
      if (!finished) abort.abort();
    });
    let answer: Response;
    try {
      const webRequest = new Request(`http://${request.headers.host ?? "localhost"}${request.url ?? "/"}`, {
        method,
        headers: webHeaders(request),
        signal: abort.signal,
        ...(parsedBody === undefined && text !== undefined && text.length > 0 ? { body: text } : {}),
      });
      answer = await handler(webRequest, parsedBody === undefined ? { authInfo } : { authInfo, parsedBody });
    } catch (error) {
      options.onerror?.(error instanceof Error ? error : new Error(String(error)));
      finished = true;
      if (!response.headersSent) jsonRpcError(response, 500, -32603, "Internal server error", echoableId(parsedBody));
      else response.end();
      return;
    }

    const headers: Record<string, string> = {};
    for (const [name, value] of answer.headers) headers[name] = value;
    // An answer to an authenticated agent (tool results, tool lists) is nobody else's: no cache may keep it. The SDK
    // marks its event streams no-cache but its JSON answers not at all.
    headers["cache-control"] ??= "no-store";
    const body = answer.body;
    if (body === null) {
      finished = true;
      response.writeHead(answer.status, headers);
      response.end();
      return;
    }
    const type = answer.headers.get("content-type") ?? "";
    if (!type.toLowerCase().startsWith("text/event-stream")) {
      // A complete answer: one write, with its length, and no chunked framing.
      const bytes = Buffer.from(await answer.arrayBuffer());
      finished = true;
      headers["content-length"] = String(bytes.length);
      delete headers["transfer-encoding"];
      response.writeHead(answer.status, headers);
      response.end(bytes);
      return;
    }
    // The headers go out with the first event (one write), as with the SDK's adapter.
    response.writeHead(answer.status, headers);
    const reader = body.getReader();
    const closed = new Promise<void>((resolve) => abort.signal.addEventListener("abort", () => resolve(), { once: true }));
    // The SDK enqueues each event whole, so a comment written between reads falls between events.
    const keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
    let lastWrite = Date.now();
    const keepAlive = setInterval(() => {
      if (Date.now() - lastWrite < keepAliveMs || response.writableNeedDrain) return;
      lastWrite = Date.now();
      response.write(": keep-alive\n\n");
    }, keepAliveMs);
    keepAlive.unref();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || abort.signal.aborted) break;
        lastWrite = Date.now();
        if (!response.write(value)) await Promise.race([new Promise<void>((resolve) => response.once("drain", () => resolve())), closed]);
      }
    } catch {
      // The stream failed or was cancelled: end the answer.
    } finally {
      clearInterval(keepAlive);
      if (abort.signal.aborted) await reader.cancel().catch(() => undefined);
      reader.releaseLock();
    }
    finished = true;
    response.end();
  };
}
