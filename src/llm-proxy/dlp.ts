// Data-loss prevention on prompts. A prompt-injected agent that has read a secret (its own environment, a file, a
// tool result) leaks it most easily by sending it to the model provider. We scan every string the agent sends —
// message content, system prompts, tool-call arguments, multimodal text parts, Anthropic content blocks, Responses
// API input — and every object key, with the scanner mcp-guard uses too (src/dlp): the exact values the perimeter
// holds (provider keys, client keys, planted canaries, as is, in base64 at any alignment and in hex) and common
// credential shapes; then redact or refuse. A hit records where and what kind, never the value.
import { createSecretScanner as createSharedScanner, VIRTUAL_KEY_PREFIX } from "../dlp/index.ts";
import type { KnownSecret } from "../dlp/index.ts";
import { PerimeterError } from "../shared/index.ts";

export { VIRTUAL_KEY_PREFIX };
export type { KnownSecret };

export interface DlpHit {
  readonly kind: string;
  /** JSON path of the string in the request body, e.g. `messages[2].content[0].text`; `…{key N}` for an object's Nth key. */
  readonly location: string;
  /** The finding is in an object key (a property name), which cannot be redacted without changing the request. */
  readonly inKey?: true;
}

export interface PromptScanner {
  /** The text with every finding replaced by `[REDACTED:<kind>]`, and the kinds found (in order). */
  redact(text: string): { text: string; kinds: string[] };
  /** The kinds found, without changing anything. */
  find(text: string): string[];
}

const marker = (kind: string): string => `[REDACTED:${kind}]`;

export function createPromptScanner(known: readonly KnownSecret[]): PromptScanner {
  const scanner = createSharedScanner({ known });
  return { redact: (text) => scanner.redact(text, marker), find: (text) => scanner.scan(text).kinds };
}

/** MIME types whose base64 payloads are media, not text: scanning them only produces false positives. */
const MEDIA_DATA_URL = /^data:(?:image|audio|video)\/[a-z0-9.+-]+;base64,/i;

function isMediaPayload(key: string | number | undefined, value: string, parent: Record<string, unknown> | undefined): boolean {
  if (MEDIA_DATA_URL.test(value.slice(0, 64))) return true;
  // Anthropic: { type: "base64", media_type: "image/png", data: "..." }; OpenAI input_audio: { data, format }.
  if (key === "data" && parent !== undefined) {
    const mediaType = parent.media_type;
    if (parent.type === "base64" && typeof mediaType === "string" && /^(image|audio|video)\//.test(mediaType)) return true;
    if (typeof parent.format === "string" && /^(wav|mp3|flac|opus|pcm16|aac)$/.test(parent.format)) return true;
  }
  return false;
}

function formatPath(path: ReadonlyArray<string | number>): string {
  let text = "";
  for (const part of path) text += typeof part === "number" ? `[${part}]` : text === "" || part.startsWith("{key ") ? part : `.${part}`;
  return text;
}

export const MAX_DEPTH = 64;

/** A body the scanner cannot read in full: refused (400) rather than forwarded unscanned. */
export class UnscannableBodyError extends PerimeterError {
  readonly param: string | undefined;
  constructor(message: string, param?: string) {
    super("bad_request", message);
    this.name = "UnscannableBodyError";
    this.param = param;
  }
}

export class BodyTooDeepError extends UnscannableBodyError {
  constructor() {
    super(`request body nests deeper than ${MAX_DEPTH} levels`);
    this.name = "BodyTooDeepError";
  }
}

export class TokenIdInputError extends UnscannableBodyError {
  constructor(param: string) {
    super(`${param} given as token ids cannot be scanned for secrets (llm-proxy reads text only); send it as a string or an array of strings`, param);
    this.name = "TokenIdInputError";
  }
}

const isTokenIds = (value: unknown): boolean => Array.isArray(value) && value.some((item) => typeof item === "number" || (Array.isArray(item) && item.some((inner) => typeof inner === "number")));

/**
 * Scans every string and every object key in a parsed request body. In redact mode strings are changed in place
 * (the caller forwards the redacted body); in block mode nothing changes and the hits decide. A hit in a key is
 * marked `inKey`: a key cannot be redacted without changing what the request means (a tool parameter, a schema
 * property), so the caller refuses the request in either mode. Throws UnscannableBodyError for what it cannot
 * read: nesting deeper than MAX_DEPTH, and `input`/`prompt` given as token ids (embeddings, legacy completions).
 */
export function inspectRequestBody(body: unknown, scanner: PromptScanner, mode: "redact" | "block"): DlpHit[] {
  if (typeof body === "object" && body !== null && !Array.isArray(body)) {
    const record = body as Record<string, unknown>;
    for (const param of ["input", "prompt"]) if (isTokenIds(record[param])) throw new TokenIdInputError(param);
  }
  const hits: DlpHit[] = [];
  const path: Array<string | number> = [];
  const visit = (value: unknown, key: string | number | undefined, parent: Record<string, unknown> | unknown[] | undefined, depth: number): void => {
    // Refuse rather than skip: an unscanned branch would be a way around the scanner.
    if (depth > MAX_DEPTH) throw new BodyTooDeepError();
    if (typeof value === "string") {
      if (isMediaPayload(key, value, Array.isArray(parent) ? undefined : parent)) return;
      const { text, kinds } = scanner.redact(value);
      if (kinds.length === 0) return;
      const location = formatPath(path);
      for (const kind of kinds) hits.push({ kind, location });
      if (mode === "redact" && parent !== undefined && key !== undefined) (parent as Record<string | number, unknown>)[key] = text;
      return;
    }
    if (Array.isArray(value)) {
      for (let index = 0; index < value.length; index++) {
        path.push(index);
        visit(value[index], index, value, depth + 1);
        path.pop();
      }
      return;
    }
    if (typeof value === "object" && value !== null) {
      const record = value as Record<string, unknown>;
      const names = Object.keys(record);
      for (let index = 0; index < names.length; index++) {
        const name = names[index] as string;
        const kinds = scanner.find(name);
        // A key that holds a secret is named by its position, here and in the paths below it: the key itself is
        // what must not be written down.
        const part = kinds.length > 0 ? `{key ${index}}` : name;
        if (kinds.length > 0) {
          const location = formatPath([...path, part]);
          for (const kind of kinds) hits.push({ kind, location, inKey: true });
        }
        path.push(part);
        visit(record[name], name, record, depth + 1);
        path.pop();
      }
    }
  };
  visit(body, undefined, undefined, 0);
  return hits;
}
