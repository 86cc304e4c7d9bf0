// Data-loss prevention on prompts. A prompt-injected agent that has read a secret (its own environment, a file, a
// tool result) leaks it most easily by sending it to the model provider. We scan every string the agent sends —
// message content, system prompts, tool-call arguments, multimodal text parts, Anthropic content blocks, Responses
// API input — for the exact values the perimeter holds (provider keys, client keys, planted canaries, in plain and
// base64 form) and for common credential shapes, then redact or refuse. A hit records where and what kind, never
// the value.
import { SECRET_SHAPES } from "../config/index.ts";

export interface KnownSecret {
  /** What it is, safe to log: e.g. "canary CANARY_TOKEN", "provider key MINIMAX_API_KEY". */
  readonly label: string;
  readonly value: string;
}

export interface DlpHit {
  readonly kind: string;
  /** JSON path of the string in the request body, e.g. `messages[2].content[0].text`. */
  readonly location: string;
}

export interface SecretScanner {
  /** The text with every finding replaced by `[REDACTED:<kind>]`, and the kinds found (in order). */
  redact(text: string): { text: string; kinds: string[] };
  /** The kinds found, without changing anything. */
  find(text: string): string[];
}

/** Virtual keys issued by `perimeter llm-keys create` look like this (and match the OpenAI-style shape too). */
export const VIRTUAL_KEY_PREFIX = "sk-perimeter-";

const EXTRA_SHAPES: ReadonlyArray<{ kind: string; pattern: RegExp }> = [
  { kind: "Perimeter virtual key", pattern: /\bsk-perimeter-[A-Za-z0-9_-]{20,}/ },
];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** The forms of a known value worth catching: as is, and base64 (standard and URL-safe) for longer values. */
function variantsOf(secret: KnownSecret): KnownSecret[] {
  const variants: KnownSecret[] = [secret];
  if (secret.value.length >= 12) {
    const base64 = Buffer.from(secret.value).toString("base64").replace(/=+$/, "");
    variants.push({ label: `${secret.label} (base64)`, value: base64 });
    const urlSafe = Buffer.from(secret.value).toString("base64url");
    if (urlSafe !== base64) variants.push({ label: `${secret.label} (base64)`, value: urlSafe });
  }
  return variants;
}

/**
 * One combined expression per family, so a string is scanned in a single pass: known values first (longest first,
 * so a value containing another is named by the longer one), then the credential shapes.
 */
export function createSecretScanner(known: readonly KnownSecret[]): SecretScanner {
  const unique = new Map<string, string>();
  for (const secret of known.flatMap(variantsOf)) if (secret.value.length >= 4 && !unique.has(secret.value)) unique.set(secret.value, secret.label);
  const knownValues = [...unique.entries()].sort((a, b) => b[0].length - a[0].length);
  const knownPattern = knownValues.length === 0 ? undefined : new RegExp(knownValues.map(([value]) => escapeRegExp(value)).join("|"), "g");
  const knownLabel = new Map(knownValues);

  const shapes = [...SECRET_SHAPES, ...EXTRA_SHAPES];
  const shapePattern = new RegExp(shapes.map((shape) => `(?:${shape.pattern.source})`).join("|"), "g");
  // Several shapes can match one credential (an Anthropic key is also OpenAI-shaped); the most specific — the last
  // in the list that matches at the same start — names it.
  const anchored = shapes.map((shape) => ({ kind: shape.kind, pattern: new RegExp(`^(?:${shape.pattern.source})`) }));
  const shapeKind = (match: string): string => {
    for (let index = anchored.length - 1; index >= 0; index--) {
      const entry = anchored[index] as { kind: string; pattern: RegExp };
      if (entry.pattern.test(match)) return entry.kind;
    }
    return "secret";
  };

  const redact = (text: string): { text: string; kinds: string[] } => {
    const kinds: string[] = [];
    let result = text;
    if (knownPattern !== undefined) {
      result = result.replace(knownPattern, (match) => {
        const kind = knownLabel.get(match) ?? "known secret";
        kinds.push(kind);
        return `[REDACTED:${kind}]`;
      });
    }
    result = result.replace(shapePattern, (match) => {
      const kind = shapeKind(match);
      kinds.push(kind);
      return `[REDACTED:${kind}]`;
    });
    return { text: result, kinds };
  };

  return {
    redact,
    find: (text) => redact(text).kinds,
  };
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
  for (const part of path) text += typeof part === "number" ? `[${part}]` : text === "" ? part : `.${part}`;
  return text;
}

export const MAX_DEPTH = 64;

export class BodyTooDeepError extends Error {
  constructor() {
    super(`request body nests deeper than ${MAX_DEPTH} levels`);
    this.name = "BodyTooDeepError";
  }
}

/**
 * Scans every string in a parsed request body. In redact mode the body is changed in place (the caller forwards the
 * redacted body); in block mode nothing changes and the hits decide. Keys are not scanned (they are schema names).
 */
export function inspectRequestBody(body: unknown, scanner: SecretScanner, mode: "redact" | "block"): DlpHit[] {
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
      for (const name of Object.keys(record)) {
        path.push(name);
        visit(record[name], name, record, depth + 1);
        path.pop();
      }
    }
  };
  visit(body, undefined, undefined, 0);
  return hits;
}
