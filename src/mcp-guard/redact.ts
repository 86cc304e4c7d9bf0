// Redaction of everything the guard hands back to the agent or writes down: the credential values it injected into
// upstreams (exact strings and their common encodings) and credential-shaped text (SECRET_SHAPES plus mcp.redact).
// An upstream that echoes its own token, prints its environment or embeds a key in an error message must not turn
// the guard into the leak it exists to prevent.
import { SECRET_SHAPES } from "../config/index.ts";

export const REDACTED = "[REDACTED]";

/** Values shorter than this are not treated as secrets: redacting every "info" or "true" would destroy results. */
export const MIN_SECRET_LENGTH = 8;

export interface Redactor {
  /** The text with every secret value and credential shape replaced by [REDACTED]. */
  text(value: string): string;
  /** A deep copy of a JSON value with strings (and object keys) redacted; base64 `data`/`blob` fields are checked decoded. */
  value<T>(value: T): T;
  /** Whether the text holds something that would be redacted. */
  contains(value: string): boolean;
}

export class RedactPatternError extends Error {
  constructor(pattern: string, reason: string) {
    super(`mcp.redact: "${pattern}" is not a valid regular expression (${reason})`);
    this.name = "RedactPatternError";
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The forms a secret value takes on the wire: as is, URL-encoded, base64 (e.g. inside a Basic header), JSON-escaped. */
function variantsOf(secret: string): string[] {
  const variants = new Set([secret, encodeURIComponent(secret), Buffer.from(secret, "utf8").toString("base64"), JSON.stringify(secret).slice(1, -1)]);
  const base64 = Buffer.from(secret, "utf8").toString("base64");
  variants.add(base64.replace(/=+$/, ""));
  return [...variants].filter((variant) => variant.length >= MIN_SECRET_LENGTH);
}

export function createRedactor(options: { secrets: Iterable<string>; patterns?: readonly string[] }): Redactor {
  const alternatives: string[] = [];
  const literal = [...new Set([...options.secrets].filter((secret) => secret.length >= MIN_SECRET_LENGTH).flatMap(variantsOf))];
  // Longest first so that a secret containing another is removed whole.
  literal.sort((a, b) => b.length - a.length);
  if (literal.length > 0) alternatives.push(literal.map(escapeRegExp).join("|"));
  // A whole PEM block, not only its BEGIN line (which is all SECRET_SHAPES needs to recognise one).
  alternatives.push("-----BEGIN [A-Z ]*PRIVATE KEY-----[\\s\\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)");
  for (const { pattern } of SECRET_SHAPES) alternatives.push(pattern.source);
  for (const pattern of options.patterns ?? []) {
    try {
      const compiled = new RegExp(pattern, "u");
      if (compiled.test("")) throw new Error("it matches the empty string");
    } catch (error) {
      throw new RedactPatternError(pattern, (error as Error).message);
    }
    alternatives.push(`(?:${pattern})`);
  }
  // One combined expression: a single scan per string, whatever the number of secrets.
  const combined = new RegExp(alternatives.map((alternative) => `(?:${alternative})`).join("|"), "gu");
  const probe = new RegExp(combined.source, "u");

  const text = (value: string): string => (probe.test(value) ? value.replace(combined, REDACTED) : value);
  const contains = (value: string): boolean => probe.test(value);

  const base64Field = (value: string): string => {
    if (value.length < MIN_SECRET_LENGTH || !/^[A-Za-z0-9+/=\s]+$/.test(value)) return text(value);
    const decoded = Buffer.from(value, "base64").toString("latin1");
    if (!contains(decoded) && !contains(value)) return value;
    // The content itself carried a credential: hand back the redacted text rather than the original bytes.
    return Buffer.from(text(Buffer.from(value, "base64").toString("utf8")), "utf8").toString("base64");
  };

  const walk = (value: unknown, key: string | undefined, depth: number): unknown => {
    if (typeof value === "string") return key === "data" || key === "blob" ? base64Field(value) : text(value);
    if (value === null || typeof value !== "object") return value;
    if (depth > 100) return REDACTED;
    if (Array.isArray(value)) return value.map((item) => walk(item, undefined, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [name, item] of Object.entries(value as Record<string, unknown>)) out[text(name)] = walk(item, name, depth + 1);
    return out;
  };

  return { text, contains, value: <T>(value: T): T => walk(value, undefined, 0) as T };
}
