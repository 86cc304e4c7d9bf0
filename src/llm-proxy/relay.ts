// The relay stage: a provider's 2xx answer goes to the agent chunk by chunk, with backpressure, while usage is read on
// the way (always from the provider's own events). With a translator the agent gets its own wire format instead: SSE
// event by event, a JSON answer once it is whole. A provider that breaks off mid-answer is reported in the stream's
// own format (or the body is cut), never ended cleanly; the answer's end is left to the caller (record first).
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { errorResponse } from "./errors.ts";
import type { ApiFlavor } from "./errors.ts";
import type { LlmExchange } from "./state.ts";
import { TranslationError } from "./translate.ts";
import type { AnswerTranslator } from "./translate-answer.ts";
import { createSseSplitter, createStreamUsageTracker, usageFromTail, usageIn } from "./usage.ts";
import type { SseEvent } from "./usage.ts";

const MAX_JSON_KEPT = 8 * 1024 * 1024;
const TAIL_KEPT = 64 * 1024;
const RELAYED_HEADERS = ["content-type", "cache-control", "x-request-id", "request-id", "openai-processing-ms", "openai-version", "retry-after"];

export interface RelayResult {
  readonly complete: boolean;
  readonly usage: { input?: number; output?: number };
  readonly firstChunkAt: number | undefined;
}

/** An error in the stream's own format, so an SDK reading SSE raises it instead of seeing a silent truncation. */
export function streamErrorEvent(flavor: ApiFlavor, message: string): string {
  if (flavor === "anthropic") return `event: error\ndata: ${JSON.stringify({ type: "error", error: { type: "api_error", message } })}\n\n`;
  return `data: ${JSON.stringify({ error: { message, type: "server_error", param: null, code: "upstream_stream_broken" } })}\n\n`;
}

/** How an answer is relayed, read from the provider's headers. */
export interface AnswerShape {
  readonly headers: OutgoingHttpHeaders;
  /** Compressed despite our `accept-encoding: identity`: relayed byte for byte, unparsed (usage: reserved). */
  readonly encoded: boolean;
  readonly sse: boolean;
  /** A JSON answer to translate, held until it is whole: its head waits with it. */
  readonly buffered: boolean;
}

/** The agent's response headers and how to relay the body, from the provider's headers. */
export function answerShape(requestId: string, upstream: IncomingHttpHeaders, translated: boolean): AnswerShape {
  const headers: OutgoingHttpHeaders = { "x-perimeter-request-id": requestId };
  for (const name of RELAYED_HEADERS) {
    const value = upstream[name];
    if (value !== undefined) headers[name] = value;
  }
  const contentType = String(upstream["content-type"] ?? "");
  const encoding = upstream["content-encoding"];
  const encoded = encoding !== undefined && encoding !== "identity";
  if (encoded && !translated) headers["content-encoding"] = encoding;
  const sse = contentType.includes("text/event-stream") && !encoded;
  // A translated answer is ours: its type is the agent's format's, and its length is known only once written.
  if (translated) headers["content-type"] = sse ? "text/event-stream; charset=utf-8" : "application/json";
  if (sse) headers["cache-control"] = "no-cache";
  // A JSON body is relayed unchanged, so its length holds (and spares the chunked terminator's extra write).
  else if (!translated && upstream["content-length"] !== undefined && upstream["transfer-encoding"] === undefined) headers["content-length"] = upstream["content-length"];
  return { headers, encoded, sse, buffered: translated && !sse };
}

/** One answer in transit; `result` settles once it is whole or broken. */
class AnswerRelay {
  readonly result: Promise<RelayResult>;
  readonly #exchange: LlmExchange;
  readonly #response: ServerResponse;
  readonly #upstream: IncomingMessage;
  readonly #stripUsageChunk: boolean;
  readonly #translator: AnswerTranslator | undefined;
  readonly #shape: AnswerShape;
  readonly #splitter: ReturnType<typeof createSseSplitter> | undefined;
  readonly #tracker: ReturnType<typeof createStreamUsageTracker> | undefined;
  #resolve: (result: RelayResult) => void = () => {};
  #resolved = false;
  #firstChunkAt: number | undefined;
  #paused = false;
  /** The whole JSON body while it fits MAX_JSON_KEPT (to translate it, or to read its usage). */
  #kept: Buffer[] | undefined = [];
  #keptBytes = 0;
  /** The last TAIL_KEPT bytes or so, where every format puts its usage. */
  readonly #recent: Buffer[] = [];
  #recentBytes = 0;

  constructor(exchange: LlmExchange, upstream: IncomingMessage, stripUsageChunk: boolean, translator: AnswerTranslator | undefined) {
    this.#exchange = exchange;
    this.#response = exchange.response;
    this.#upstream = upstream;
    this.#stripUsageChunk = stripUsageChunk;
    this.#translator = translator;
    this.#shape = answerShape(exchange.id, upstream.headers, translator !== undefined);
    this.#splitter = this.#shape.sse ? createSseSplitter() : undefined;
    this.#tracker = this.#shape.sse ? createStreamUsageTracker() : undefined;
    this.result = new Promise((resolve) => (this.#resolve = resolve));
    if (!this.#shape.buffered) this.#response.writeHead(upstream.statusCode ?? 200, this.#shape.headers);
    upstream.on("data", (chunk: Buffer) => this.#onData(chunk));
    upstream.on("end", () => this.#onEnd());
    upstream.on("error", () => this.#broken());
    upstream.on("close", () => {
      if (!upstream.complete) this.#broken();
    });
  }

  #write(data: string | Buffer): void {
    const response = this.#response;
    if (data.length === 0 || response.destroyed) return;
    this.#firstChunkAt ??= performance.now();
    // Backpressure: a slow agent slows the provider down instead of filling our memory.
    if (!response.write(data) && !this.#paused) {
      this.#paused = true;
      this.#upstream.pause();
      response.once("drain", () => {
        this.#paused = false;
        this.#upstream.resume();
      });
    }
  }

  #forwardEvents(events: SseEvent[]): void {
    const tracker = this.#tracker as ReturnType<typeof createStreamUsageTracker>;
    let out = "";
    for (const event of events) {
      const { usageOnlyChunk } = tracker.observe(event);
      if (this.#translator !== undefined) {
        out += this.#translator.event(event);
        continue;
      }
      if (usageOnlyChunk && this.#stripUsageChunk) continue;
      out += event.raw;
    }
    this.#write(out);
  }

  #onData(chunk: Buffer): void {
    if (this.#splitter !== undefined) {
      this.#forwardEvents(this.#splitter.push(chunk));
      return;
    }
    const { buffered, encoded } = this.#shape;
    if (!buffered) this.#write(chunk);
    if (encoded && !buffered) return;
    if (this.#kept !== undefined) {
      if (this.#keptBytes + chunk.length <= MAX_JSON_KEPT) {
        this.#kept.push(chunk);
        this.#keptBytes += chunk.length;
      } else {
        this.#kept = undefined;
      }
    }
    this.#recent.push(chunk);
    this.#recentBytes += chunk.length;
    while (this.#recent.length > 1 && this.#recentBytes - (this.#recent[0] as Buffer).length >= TAIL_KEPT) this.#recentBytes -= (this.#recent.shift() as Buffer).length;
  }

  #jsonUsage(): { input?: number; output?: number } {
    if (this.#shape.encoded) return {};
    // Every format puts the top-level usage object last: read it from the tail, parse the whole body otherwise.
    const last = this.#recent.at(-1);
    if (last !== undefined) {
      const fromTail = usageFromTail(last.subarray(Math.max(0, last.length - 4096)).toString("utf8"));
      if (fromTail.input !== undefined) return fromTail;
    }
    if (this.#kept !== undefined) {
      try {
        return usageIn(JSON.parse(Buffer.concat(this.#kept).toString("utf8")));
      } catch {
        return {};
      }
    }
    return usageFromTail(Buffer.concat(this.#recent).toString("utf8"));
  }

  #done(complete: boolean): void {
    if (this.#resolved) return;
    this.#resolved = true;
    const usage = this.#tracker !== undefined ? this.#tracker.usage() : complete ? this.#jsonUsage() : {};
    this.#resolve({ complete, usage, firstChunkAt: this.#firstChunkAt });
  }

  /** A translated JSON answer the proxy could not produce: a 502 in the agent's format, never a half answer. */
  #untranslatable(detail: string): void {
    const response = this.#response;
    if (!response.headersSent && !response.destroyed) {
      const exchange = this.#exchange;
      const mapped = errorResponse({ kind: "upstream-error", provider: exchange.provider ?? "", status: 502, message: `its answer could not be translated to the format you called: ${detail}` }, exchange.flavor);
      response.writeHead(mapped.status, { ...mapped.headers, "x-perimeter-request-id": exchange.id });
      response.end(mapped.body);
    }
    this.#done(false);
  }

  #onEnd(): void {
    const translator = this.#translator;
    if (this.#splitter !== undefined) this.#forwardEvents(this.#splitter.end());
    if (translator !== undefined && this.#shape.sse) {
      this.#write(translator.end());
      if (!translator.complete()) {
        // The provider sent an error event or stopped early: the agent has the error in its own format.
        if (!this.#response.destroyed) this.#response.end();
        this.#done(false);
        return;
      }
    }
    if (this.#shape.buffered) {
      let text: string;
      try {
        if (this.#kept === undefined) throw new TranslationError(`it is larger than ${MAX_JSON_KEPT} bytes`);
        text = (translator as AnswerTranslator).json(Buffer.concat(this.#kept).toString("utf8"));
      } catch (error) {
        this.#untranslatable(error instanceof TranslationError ? error.message : "it is not what the provider's format promises");
        return;
      }
      this.#shape.headers["content-length"] = Buffer.byteLength(text);
      this.#response.writeHead(this.#upstream.statusCode ?? 200, this.#shape.headers);
      this.#write(text);
    }
    // The answer's end is the caller's: it waits for the outcome's record (see record.ts recordOutcome).
    this.#done(true);
  }

  #broken(): void {
    if (this.#resolved) return;
    if (this.#shape.buffered) {
      this.#untranslatable("the provider closed the connection before its answer was complete");
      return;
    }
    const exchange = this.#exchange;
    const response = this.#response;
    if (!exchange.clientGone && !response.destroyed) {
      // The provider went away mid-answer: say so in the stream's format, or cut a JSON body (never end it cleanly).
      if (this.#shape.sse) response.end(streamErrorEvent(exchange.flavor, `provider ${exchange.provider ?? ""} closed the stream before it was complete`));
      else response.destroy();
    }
    this.#done(false);
  }
}

/** Relays a 2xx answer (see the file's header); resolves once it is whole or broken, before the answer's end. */
export function relayAnswer(exchange: LlmExchange, upstream: IncomingMessage, stripUsageChunk: boolean, translator?: AnswerTranslator): Promise<RelayResult> {
  return new AnswerRelay(exchange, upstream, stripUsageChunk, translator).result;
}
