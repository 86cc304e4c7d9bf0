// Token accounting: the worst case a request may cost (reserved before it is sent) and the real usage read back
// from the provider's answer — the JSON body, or the SSE stream parsed incrementally while it is relayed.
import { StringDecoder } from "node:string_decoder";
import type { LlmProviderConfig } from "../config/index.ts";

export type Route = "chat-completions" | "responses" | "embeddings" | "messages";

export interface TokenUsage {
  readonly input: number;
  readonly output: number;
}

/** Output tokens reserved when the agent sets no limit: a model may write this much, and we must not overshoot. */
export const DEFAULT_MAX_OUTPUT_TOKENS = 4096;
/** Reserved per image or audio part: vision inputs cost up to ~1,600 tokens at the providers' maximum resolution. */
export const MEDIA_PART_TOKENS = 2000;
/** Per-message template overhead (role markers, separators), generous. */
const MESSAGE_OVERHEAD_TOKENS = 8;

const MEDIA_DATA_URL = /^data:(?:image|audio|video)\//i;

/**
 * An upper bound on prompt tokens. Byte-level BPE tokenizers never produce more tokens than UTF-8 bytes, so counting
 * bytes of every string (plus template overhead per message, plus a fixed cost per media part whose base64 payload
 * is not text) bounds the real count from above: that is what "reserve the worst case" needs.
 */
export function estimatePromptTokens(body: unknown): number {
  let tokens = 0;
  const visit = (value: unknown, key: string | undefined, parent: Record<string, unknown> | undefined, depth: number): void => {
    if (depth > 64) return;
    if (typeof value === "string") {
      if (MEDIA_DATA_URL.test(value.slice(0, 16)) || (key === "data" && parent?.type === "base64")) {
        tokens += MEDIA_PART_TOKENS;
        return;
      }
      if (key === "model") return;
      tokens += Buffer.byteLength(value);
      return;
    }
    if (typeof value === "number") {
      // Embeddings accept token arrays: each number is one token.
      tokens += 1;
      return;
    }
    if (Array.isArray(value)) {
      for (const item of value) visit(item, undefined, undefined, depth + 1);
      return;
    }
    if (typeof value === "object" && value !== null) {
      const record = value as Record<string, unknown>;
      if (typeof record.role === "string") tokens += MESSAGE_OVERHEAD_TOKENS;
      const type = record.type;
      if (type === "image_url" || type === "input_image" || type === "input_audio" || type === "image") {
        if (!(typeof record.source === "object" && record.source !== null && (record.source as { type?: unknown }).type === "base64")) tokens += MEDIA_PART_TOKENS;
      }
      for (const name of Object.keys(record)) {
        // Numbers that are parameters (max_tokens, temperature) are not prompt.
        const item = record[name];
        if (typeof item === "number") continue;
        visit(item, name, record, depth + 1);
      }
    }
  };
  visit(body, undefined, undefined, 0);
  return tokens + MESSAGE_OVERHEAD_TOKENS;
}

function positiveInteger(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.ceil(value) : undefined;
}

/** The most output a request may produce: its own limit (times `n` choices), or the default cap. */
export function maxOutputTokens(route: Route, body: Record<string, unknown>): number {
  if (route === "embeddings") return 0;
  let limit: number | undefined;
  if (route === "chat-completions") limit = positiveInteger(body.max_completion_tokens) ?? positiveInteger(body.max_tokens);
  else if (route === "responses") limit = positiveInteger(body.max_output_tokens);
  else limit = positiveInteger(body.max_tokens);
  const choices = route === "chat-completions" ? Math.max(1, Math.min(128, positiveInteger(body.n) ?? 1)) : 1;
  return (limit ?? DEFAULT_MAX_OUTPUT_TOKENS) * choices;
}

export type Pricing = LlmProviderConfig["costPer1kTokens"];

export function costOf(usage: TokenUsage, pricing: Pricing): number {
  if (pricing === undefined) return 0;
  return (usage.input / 1000) * pricing.input + (usage.output / 1000) * pricing.output;
}

function numberField(record: Record<string, unknown>, name: string): number | undefined {
  const value = record[name];
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * Usage from one object of any of the wire formats: OpenAI chat/embeddings (`usage.prompt_tokens`,
 * `completion_tokens`), Responses (`usage.input_tokens` / `response.usage`), Anthropic (`usage.input_tokens` plus
 * cache tokens, `message.usage` in message_start). Fields absent stay undefined.
 */
export function usageIn(object: unknown): { input?: number; output?: number } {
  if (typeof object !== "object" || object === null) return {};
  const record = object as Record<string, unknown>;
  const holder = [record.usage, (record.response as Record<string, unknown> | undefined)?.usage, (record.message as Record<string, unknown> | undefined)?.usage].find(
    (candidate) => typeof candidate === "object" && candidate !== null,
  ) as Record<string, unknown> | undefined;
  if (holder === undefined) return {};
  const prompt = numberField(holder, "prompt_tokens");
  const completion = numberField(holder, "completion_tokens");
  const inputTokens = numberField(holder, "input_tokens");
  const outputTokens = numberField(holder, "output_tokens");
  const cached = (numberField(holder, "cache_creation_input_tokens") ?? 0) + (numberField(holder, "cache_read_input_tokens") ?? 0);
  const input = prompt ?? (inputTokens === undefined ? undefined : inputTokens + cached);
  const output = completion ?? outputTokens;
  const result: { input?: number; output?: number } = {};
  if (input !== undefined) result.input = input;
  if (output !== undefined) result.output = output;
  else if (prompt !== undefined && completion === undefined && numberField(holder, "total_tokens") !== undefined) result.output = 0;
  return result;
}

export interface SseEvent {
  /** The event exactly as received, terminator included, to forward byte for byte. */
  readonly raw: string;
  readonly event: string | undefined;
  readonly data: string;
}

const MAX_PENDING_EVENT = 4 * 1024 * 1024;

/**
 * Splits an SSE byte stream into events as chunks arrive. Holds back only an incomplete event; a multi-byte
 * character split across chunks is kept whole by the decoder.
 */
export function createSseSplitter(): { push(chunk: Buffer): SseEvent[]; end(): SseEvent[] } {
  const decoder = new StringDecoder("utf8");
  let pending = "";
  const parse = (raw: string): SseEvent => {
    let event: string | undefined;
    let data = "";
    let first = true;
    for (const line of raw.split(/\r\n|\r|\n/)) {
      if (line.startsWith("data:")) {
        data += (first ? "" : "\n") + (line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5));
        first = false;
      } else if (line.startsWith("event:")) {
        event = line.slice(line.charCodeAt(6) === 32 ? 7 : 6);
      }
    }
    return { raw, event, data };
  };
  const drain = (): SseEvent[] => {
    const events: SseEvent[] = [];
    for (;;) {
      const lf = pending.indexOf("\n\n");
      const crlf = pending.indexOf("\r\n\r\n");
      let end = -1;
      if (lf !== -1 && (crlf === -1 || lf < crlf)) end = lf + 2;
      else if (crlf !== -1) end = crlf + 4;
      if (end === -1) break;
      events.push(parse(pending.slice(0, end)));
      pending = pending.slice(end);
    }
    return events;
  };
  return {
    push(chunk) {
      pending += decoder.write(chunk);
      const events = drain();
      // A provider that never ends an event must not make us hold its output: pass it on unparsed.
      if (pending.length > MAX_PENDING_EVENT) {
        events.push({ raw: pending, event: undefined, data: "" });
        pending = "";
      }
      return events;
    },
    end() {
      pending += decoder.end();
      const events = drain();
      if (pending !== "") events.push(parse(pending));
      pending = "";
      return events;
    },
  };
}

const USAGE_OBJECT = /"usage"\s*:\s*\{/;

/**
 * Watches relayed SSE events for usage, across formats: OpenAI's final `include_usage` chunk, Responses'
 * `response.completed`, Anthropic's `message_start` (input) and `message_delta` (cumulative output). Only events whose
 * data mentions usage are parsed, so the per-chunk cost stays a substring search.
 */
export function createStreamUsageTracker(): { observe(event: SseEvent): { usageOnlyChunk: boolean }; usage(): { input?: number; output?: number }; sawEnd(): boolean } {
  let input: number | undefined;
  let output: number | undefined;
  let ended = false;
  return {
    observe(event) {
      const data = event.data;
      if (data === "[DONE]" || event.event === "message_stop" || event.event === "response.completed") ended = true;
      if (!data.includes('"usage"') || !USAGE_OBJECT.test(data)) return { usageOnlyChunk: false };
      let parsed: unknown;
      try {
        parsed = JSON.parse(data);
      } catch {
        return { usageOnlyChunk: false };
      }
      const found = usageIn(parsed);
      if (found.input !== undefined) input = found.input;
      if (found.output !== undefined) output = found.output;
      const record = parsed as { choices?: unknown; usage?: unknown; type?: unknown };
      if (record.type === "response.completed" || record.type === "message_stop") ended = true;
      // OpenAI's include_usage chunk: `choices: []` and a usage object, nothing else for the client.
      const usageOnlyChunk = Array.isArray(record.choices) && record.choices.length === 0 && typeof record.usage === "object" && record.usage !== null;
      return { usageOnlyChunk };
    },
    usage() {
      const result: { input?: number; output?: number } = {};
      if (input !== undefined) result.input = input;
      if (output !== undefined) result.output = output;
      return result;
    },
    sawEnd: () => ended,
  };
}

/** Finds a `"usage": {...}` object near the end of a JSON text too large to keep whole (a big embeddings answer). */
export function usageFromTail(tail: string): { input?: number; output?: number } {
  let open = -1;
  for (const match of tail.matchAll(/"usage"\s*:\s*\{/g)) open = match.index + match[0].length - 1;
  if (open === -1) return {};
  let depth = 0;
  for (let position = open; position < tail.length && position < open + 4096; position++) {
    const character = tail[position];
    if (character === "{") depth += 1;
    else if (character === "}") {
      depth -= 1;
      if (depth === 0) {
        try {
          return usageIn({ usage: JSON.parse(tail.slice(open, position + 1)) as unknown });
        } catch {
          return {};
        }
      }
    }
  }
  return {};
}
