// Redaction of everything the guard hands back to the agent or writes down: the credential values it injected into
// upstreams (exact strings and their encodings) and credential-shaped text (SECRET_SHAPES plus mcp.redact). An
// upstream that echoes its own token, prints its environment or embeds a key in an error message must not turn the
// guard into the leak it exists to prevent. The matching is src/dlp's scanner, the one llm-proxy's DLP uses.
import { createSecretScanner, MIN_SECRET_LENGTH, SecretPatternError } from "../dlp/index.ts";
// errors.ts directly: this module is loaded where the rest of shared/ (pino) need not be.
import { PerimeterError } from "../shared/errors.ts";

export const REDACTED = "[REDACTED]";

/** Values shorter than this are not treated as secrets: redacting every "info" or "true" would destroy results. */
export { MIN_SECRET_LENGTH };

export interface Redactor {
  /** The text with every secret value and credential shape replaced by [REDACTED]. */
  text(value: string): string;
  /** A deep copy of a JSON value with strings (and object keys) redacted; base64 `data`/`blob` fields are checked decoded. */
  value<T>(value: T): T;
  /** Whether the text holds something that would be redacted. */
  contains(value: string): boolean;
}

export class RedactPatternError extends PerimeterError {
  constructor(pattern: string, reason: string) {
    super("config", `mcp.redact: "${pattern}" is not a valid regular expression (${reason})`);
  }
}

const marker = (): string => REDACTED;

export function createRedactor(options: { secrets: Iterable<string>; patterns?: readonly string[] }): Redactor {
  let scanner: ReturnType<typeof createSecretScanner>;
  try {
    scanner = createSecretScanner({
      known: [...new Set(options.secrets)].map((value) => ({ label: "secret", value })),
      patterns: (options.patterns ?? []).map((source) => ({ kind: "mcp.redact pattern", source })),
    });
  } catch (error) {
    if (error instanceof SecretPatternError) throw new RedactPatternError(error.source, error.reason);
    throw error;
  }
  const text = (value: string): string => scanner.redact(value, marker).text;
  const contains = (value: string): boolean => scanner.contains(value);

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
