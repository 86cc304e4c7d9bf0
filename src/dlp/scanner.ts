// One secret scanner for the two places where a secret can leave through text the agent controls: llm-proxy scans
// prompts before a model provider sees them, mcp-guard redacts what tools hand back. Both used to carry their own
// copy and the copies drifted (one redacted a whole PEM key, the other only its first line); now both call this.
//
// What it finds:
// - known values (keys and tokens the perimeter holds, planted canaries) as is, JSON-escaped, URL-encoded, in base64
//   (standard and URL-safe) at any byte alignment, and in hex (either case), also when wrapped over several lines
//   (`base64` wraps at 76 columns, `xxd -p` at 60; real or JSON-escaped line breaks);
// - credential shapes (SECRET_SHAPES, Perimeter virtual keys) and any extra patterns the caller adds.
// A finding is reported by kind (a label such as "canary CANARY_TOKEN (base64)"), never by value.
import { PerimeterError } from "../shared/index.ts";
import { SECRET_SHAPES } from "../config/index.ts";

/** Values shorter than this are not treated as secrets: redacting every "info" or "true" would destroy text. */
export const MIN_SECRET_LENGTH = 8;

/** Virtual keys issued by `perimeter llm-keys create` look like this (and match the OpenAI-style shape too). */
export const VIRTUAL_KEY_PREFIX = "sk-perimeter-";

export interface KnownSecret {
  /** What it is, safe to log: e.g. "canary CANARY_TOKEN", "provider key MINIMAX_API_KEY". */
  readonly label: string;
  readonly value: string;
}

export interface SecretPattern {
  readonly kind: string;
  /** A regular expression source, compiled with the `u` flag. */
  readonly source: string;
}

/** A stretch of text to remove, and every kind found in it (overlapping findings are merged into one span). */
export interface SecretSpan {
  readonly start: number;
  readonly end: number;
  readonly kinds: readonly string[];
}

export interface SecretScanner {
  /** The spans to remove, in order, and the kinds found (in order of appearance). */
  scan(text: string): { spans: SecretSpan[]; kinds: string[] };
  /** The text with every span replaced by `marker(first kind in the span)`. */
  redact(text: string, marker: (kind: string) => string): { text: string; kinds: string[] };
  /** Whether the text holds anything `redact` would remove. */
  contains(text: string): boolean;
}

export class SecretPatternError extends PerimeterError {
  readonly source: string;
  readonly reason: string;
  constructor(source: string, reason: string) {
    super("config", `"${source}" is not a valid regular expression (${reason})`);
    this.source = source;
    this.reason = reason;
  }
}

const EXTRA_SHAPES: ReadonlyArray<{ kind: string; pattern: RegExp }> = [
  { kind: "Perimeter virtual key", pattern: /(?<![A-Za-z0-9])sk-perimeter-[A-Za-z0-9_-]{20,}/ },
];

/**
 * The base64 text that a value's bytes produce wherever they sit in a longer plaintext. Encoding works on 3-byte
 * groups, so bytes at offset k appear as one of three fixed strings (k mod 3), once the first and last characters
 * (which mix in the neighbouring bytes) are dropped: encode the value behind 0, 1 or 2 filler bytes and keep the
 * characters whose 6 bits all come from the value.
 */
export function base64Cores(bytes: Buffer): string[] {
  const cores: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString("base64");
    const first = Math.ceil((8 * shift) / 6);
    const end = Math.floor((8 * (shift + bytes.length)) / 6);
    cores.push(encoded.slice(first, end));
  }
  return cores;
}

/** Every form of a known value worth matching, each with the label to report. */
function formsOf(secret: KnownSecret): Array<[form: string, label: string]> {
  const bytes = Buffer.from(secret.value, "utf8");
  const forms: Array<[string, string]> = [
    [secret.value, secret.label],
    [JSON.stringify(secret.value).slice(1, -1), secret.label],
    [encodeURIComponent(secret.value), secret.label],
  ];
  const base64Label = `${secret.label} (base64)`;
  const full = bytes.toString("base64");
  for (const form of [full, full.replace(/=+$/, ""), ...base64Cores(bytes)]) {
    forms.push([form, base64Label], [form.replaceAll("+", "-").replaceAll("/", "_"), base64Label]);
  }
  const hex = bytes.toString("hex");
  forms.push([hex, `${secret.label} (hex)`], [hex.toUpperCase(), `${secret.label} (hex)`]);
  return forms;
}

/** How many capture groups a pattern source has (they shift the numbering of the combined expression's groups). */
function groupCount(source: string): number {
  return (new RegExp(`${source}|`, "u").exec("")?.length ?? 1) - 1;
}

// Line breaks inside an encoded value — real ones, or `\n`/`\r` escaped inside a JSON string once or more — are
// skipped when matching known values, so base64 or hex wrapped at any column (`base64` wraps at 76, `xxd -p` at 60)
// is caught, and only the value's own stretch of lines is removed.
const LINE_BREAKS = /\r|\n|\\+[rn]/g;

/** Where a line break (as LINE_BREAKS sees it) starts at `index`, the index after it; otherwise -1. */
function lineBreakEnd(text: string, index: number): number {
  const code = text.charCodeAt(index);
  if (code === 10 || code === 13) return index + 1;
  if (code !== 92) return -1;
  let next = index + 1;
  while (text.charCodeAt(next) === 92) next++;
  const letter = text.charCodeAt(next);
  return letter === 110 || letter === 114 ? next + 1 : -1;
}

// Known values are found with a rolling hash (Rabin-Karp) over the first WINDOW characters of every form: one pass
// whose cost does not grow with the number of values or forms, where one regular-expression alternative per form
// did. The hash shifts 4 bits per character into 32, so it holds exactly the last 8 characters with nothing to
// subtract (a polynomial hash, which must remove the outgoing character, ran at a third of the speed); a 64 Ki-bit
// filter spares the map lookup almost everywhere, and every candidate is compared in full.
const WINDOW = 8;
const FILTER_MASK = (1 << 16) - 1;
const hashStep = (hash: number, code: number): number => (hash << 4) ^ code;
const filterIndex = (hash: number): number => (hash ^ (hash >>> 15)) & FILTER_MASK;

type KnownMatcher = (text: string, found: RawSpan[]) => void;

function createKnownMatcher(forms: ReadonlyMap<string, string>): KnownMatcher | undefined {
  const buckets = new Map<number, Array<{ form: string; label: string }>>();
  const filter = new Uint8Array(FILTER_MASK + 1);
  for (const [raw, label] of forms) {
    const form = raw.replace(LINE_BREAKS, "");
    if (form.length < WINDOW) continue;
    let hash = 0;
    for (let index = 0; index < WINDOW; index++) hash = hashStep(hash, form.charCodeAt(index));
    filter[filterIndex(hash)] = 1;
    const bucket = buckets.get(hash) ?? [];
    bucket.push({ form, label });
    // Longest first, so a value containing another is named (and removed) by the longer one.
    bucket.sort((a, b) => b.form.length - a.form.length);
    buckets.set(hash, bucket);
  }
  if (buckets.size === 0) return undefined;

  // Where each of the last WINDOW characters (line breaks skipped) sits in the text, to find a window's start.
  const positions = new Int32Array(WINDOW);
  // The end of `form` matched from `start` with line breaks in the text skipped, or -1.
  const matchAt = (text: string, start: number, form: string): number => {
    let index = start;
    for (let position = 0; position < form.length; position++) {
      for (let end = lineBreakEnd(text, index); end !== -1; end = lineBreakEnd(text, index)) index = end;
      if (text.charCodeAt(index) !== form.charCodeAt(position)) return -1;
      index++;
    }
    return index;
  };

  return (text, found) => {
    let hash = 0;
    let count = 0;
    for (let index = 0; index < text.length; index++) {
      const code = text.charCodeAt(index);
      if (code === 10 || code === 13 || code === 92) {
        const end = lineBreakEnd(text, index);
        if (end !== -1) {
          index = end - 1;
          continue;
        }
      }
      hash = hashStep(hash, code);
      positions[count & (WINDOW - 1)] = index;
      count++;
      if (count < WINDOW || filter[filterIndex(hash)] !== 1) continue;
      const candidates = buckets.get(hash);
      if (candidates === undefined) continue;
      const start = positions[count & (WINDOW - 1)] as number;
      for (const candidate of candidates) {
        const end = matchAt(text, start, candidate.form);
        if (end === -1) continue;
        found.push({ start, end, kinds: [candidate.label], known: true });
        break;
      }
    }
  };
}

/**
 * Builds the scanner once (per configuration). A text is scanned in one pass for the known values (however many)
 * and one pass of a single combined expression for the shapes (most specific first) and `patterns`; findings that
 * overlap are merged into one span, so nothing of either is left between them.
 */
export function createSecretScanner(options: { known: readonly KnownSecret[]; patterns?: readonly SecretPattern[] }): SecretScanner {
  const labels = new Map<string, string>();
  for (const secret of options.known) {
    if (secret.value.length < MIN_SECRET_LENGTH) continue;
    for (const [form, label] of formsOf(secret)) if (form.length >= MIN_SECRET_LENGTH && !labels.has(form)) labels.set(form, label);
  }
  const findKnown = createKnownMatcher(labels);

  // Alternatives in priority order; `group` is each one's capture group in the combined expression.
  const alternatives: Array<{ kind: string; source: string; group: number }> = [];
  // Several shapes can match one credential (an Anthropic key is also OpenAI-shaped): the most specific names it.
  for (const shape of [...EXTRA_SHAPES, ...[...SECRET_SHAPES].reverse()]) alternatives.push({ kind: shape.kind, source: shape.pattern.source, group: 0 });
  for (const pattern of options.patterns ?? []) {
    let compiled: RegExp;
    try {
      compiled = new RegExp(pattern.source, "u");
    } catch (error) {
      throw new SecretPatternError(pattern.source, (error as Error).message);
    }
    if (compiled.test("")) throw new SecretPatternError(pattern.source, "it matches the empty string");
    alternatives.push({ kind: pattern.kind, source: pattern.source, group: 0 });
  }
  let nextGroup = 1;
  for (const alternative of alternatives) {
    alternative.group = nextGroup;
    nextGroup += 1 + groupCount(alternative.source);
  }
  const combined = new RegExp(alternatives.map((alternative) => `(${alternative.source})`).join("|"), "gu");
  // Every shape and known form is at least this long, so shorter strings (roles, names, most keys) are skipped.
  const shortest = (options.patterns ?? []).length > 0 ? 1 : MIN_SECRET_LENGTH;

  const kindOf = (match: RegExpExecArray): string => {
    for (const alternative of alternatives) if (match[alternative.group] !== undefined) return alternative.kind;
    return "secret";
  };

  const scan = (text: string): { spans: SecretSpan[]; kinds: string[] } => {
    const spans: RawSpan[] = [];
    if (text.length < shortest) return { spans, kinds: [] };
    findKnown?.(text, spans);
    combined.lastIndex = 0;
    for (let match = combined.exec(text); match !== null; match = combined.exec(text)) {
      // Resume one character on, not after the match: a finding that starts inside this one and runs past it must
      // extend the span, or its tail would go out.
      combined.lastIndex = match.index + 1;
      if (match[0].length > 0) spans.push({ start: match.index, end: match.index + match[0].length, kinds: [kindOf(match)] });
    }
    return spans.length === 0 ? { spans, kinds: [] } : merged(spans);
  };

  const redact = (text: string, marker: (kind: string) => string): { text: string; kinds: string[] } => {
    const { spans, kinds } = scan(text);
    if (spans.length === 0) return { text, kinds };
    let result = "";
    let position = 0;
    for (const span of spans) {
      result += text.slice(position, span.start) + marker(span.kinds[0] ?? "secret");
      position = span.end;
    }
    return { text: result + text.slice(position), kinds };
  };

  return { scan, redact, contains: (text) => scan(text).spans.length > 0 };
}

type RawSpan = { start: number; end: number; kinds: string[]; known?: true };

/**
 * Spans sorted by start, overlapping ones joined with their kinds (each kind once per span). A shape found inside a
 * known value adds nothing (the client's own virtual key is both): the known value's label is the more precise.
 */
function merged(spans: RawSpan[]): { spans: SecretSpan[]; kinds: string[] } {
  spans.sort((a, b) => a.start - b.start || b.end - a.end || (a.known === true ? -1 : 0) - (b.known === true ? -1 : 0));
  const result: Array<{ start: number; end: number; kinds: string[]; knownEnd: number }> = [];
  for (const span of spans) {
    const last = result.at(-1);
    if (last !== undefined && span.start < last.end) {
      if (span.known !== true && span.end <= last.knownEnd) continue;
      last.end = Math.max(last.end, span.end);
      if (span.known === true) last.knownEnd = Math.max(last.knownEnd, span.end);
      for (const kind of span.kinds) if (!last.kinds.includes(kind)) last.kinds.push(kind);
    } else {
      result.push({ start: span.start, end: span.end, kinds: span.kinds, knownEnd: span.known === true ? span.end : -1 });
    }
  }
  return { spans: result.map(({ start, end, kinds }) => ({ start, end, kinds })), kinds: result.flatMap((span) => span.kinds) };
}
