// A call's arguments as the guard writes them down and shows them to a human: the one place that decides whether
// they can be recorded as they are, and what a reviewer is shown. An agent chooses its arguments, so nothing here
// may fail on them: arguments nested too deep or too large for a record become a placeholder with their size and
// the sha256 of the exact bytes the upstream receives (the SDK client sends `JSON.stringify(arguments)`), and the
// record is written anyway. The same sha256 binds an approval, so the dispatch record, the approval request and the
// upstream's own view of the call can be checked against each other.
import { createHash } from "node:crypto";
import type { JsonValue } from "../approvals/index.ts";
import type { Redactor } from "./redact.ts";

/**
 * Deepest nesting kept in a record or shown for review. The audit log refuses values nested 64 levels deep counted
 * from the record itself; arguments sit one level down, and a human cannot follow 30 levels of brackets anyway.
 */
export const MAX_ARGUMENT_DEPTH = 32;
/** Largest redacted-arguments JSON kept in an audit record (two records per call hold it); above it, a placeholder. */
export const MAX_RECORDED_ARGUMENT_BYTES = 64 * 1024;

/** What is known about a call's arguments without redacting them: their wire form, size, hash and depth. */
export interface MeasuredArguments {
  /** UTF-8 bytes of the JSON text the upstream receives; null when the value has no JSON text (not from JSON). */
  readonly bytes: number | null;
  /** sha256 (hex) of those bytes. */
  readonly sha256: string | null;
  /** Levels of objects and arrays, counted up to MAX_ARGUMENT_DEPTH + 1 (a deeper value stops the count there). */
  readonly depth: number;
}

export function measureArguments(args: unknown): MeasuredArguments {
  let wire: string | undefined;
  try {
    wire = JSON.stringify(args);
  } catch {
    // Only a value that did not come from JSON (a cycle, a BigInt) gets here; it is described by its depth alone.
  }
  return {
    bytes: wire === undefined ? null : Buffer.byteLength(wire, "utf8"),
    sha256: wire === undefined ? null : createHash("sha256").update(wire, "utf8").digest("hex"),
    depth: depthOf(args, MAX_ARGUMENT_DEPTH + 1),
  };
}

/** Nesting depth of objects and arrays, without recursion, stopping once `limit` is reached. */
function depthOf(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: item, depth } = stack.pop() as { value: unknown; depth: number };
    if (item === null || typeof item !== "object") continue;
    const level = depth + 1;
    if (level > deepest) deepest = level;
    if (deepest >= limit) return limit;
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      if (child !== null && typeof child === "object") stack.push({ value: child, depth: level });
    }
  }
  return deepest;
}

/** The redacted copy of the arguments and where redaction changed them (JSON paths such as `$.headers.token`). */
export interface RedactedArguments {
  readonly value: JsonValue;
  readonly bytes: number;
  readonly redactions: string[];
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const step = (path: string, key: string) => (IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`);

/**
 * A plain-JSON copy with every string and key redacted, noting each place redaction changed. Keys are copied as own
 * data properties (an agent's `"__proto__"` key stays a key, as it does on the wire), and two keys that redact to the
 * same text are kept apart. Call it only on arguments within MAX_ARGUMENT_DEPTH (measureArguments says).
 */
export function redactArguments(args: unknown, redactor: Redactor): RedactedArguments {
  const redactions: string[] = [];
  const copy = (value: unknown, key: string | undefined, path: string): JsonValue => {
    if (typeof value === "string") {
      // `data` and `blob` may hold base64 content: the redactor checks those decoded.
      const redacted = key === "data" || key === "blob" ? (redactor.value({ [key]: value })[key] ?? "") : redactor.text(value);
      if (redacted !== value) redactions.push(path);
      return redacted;
    }
    if (value === null || typeof value !== "object") return typeof value === "number" && !Number.isFinite(value) ? null : (value as JsonValue);
    if (Array.isArray(value)) return value.map((item, index) => copy(item, undefined, `${path}[${index}]`));
    const out: Record<string, JsonValue> = {};
    for (const [name, item] of Object.entries(value as Record<string, unknown>)) {
      let shownName = redactor.text(name);
      if (shownName !== name) {
        for (let suffix = 2; Object.hasOwn(out, shownName); suffix++) shownName = `${redactor.text(name)} (${suffix})`;
        redactions.push(`${step(path, shownName)} (key)`);
      }
      const shown = copy(item, name, step(path, shownName));
      // Assignment would set the copy's prototype for "__proto__"; every other key is cheaper assigned.
      if (shownName === "__proto__") Object.defineProperty(out, shownName, { value: shown, enumerable: true, writable: true, configurable: true });
      else out[shownName] = shown;
    }
    return out;
  };
  const value = copy(args, undefined, "$");
  return { value, bytes: Buffer.byteLength(JSON.stringify(value), "utf8"), redactions };
}

/** The fields every tool-call record carries about the arguments. */
export interface RecordedArgumentsFields {
  /** The redacted arguments, or null when they are not in the record (argumentsOmitted says why). */
  arguments: JsonValue;
  argumentsOmitted: string | null;
  argumentsBytes: number | null;
  argumentsSha256: string | null;
}

export function recordedArguments(args: unknown, measured: MeasuredArguments, redactor: Redactor): RecordedArgumentsFields {
  const known = { argumentsBytes: measured.bytes, argumentsSha256: measured.sha256 };
  if (measured.depth > MAX_ARGUMENT_DEPTH) {
    return { arguments: null, argumentsOmitted: `nested more than ${MAX_ARGUMENT_DEPTH} levels deep (the record keeps arguments up to ${MAX_ARGUMENT_DEPTH})`, ...known };
  }
  if (measured.bytes === null) return { arguments: null, argumentsOmitted: "the arguments are not JSON", ...known };
  // The wire size bounds the redacted size closely (a redaction is short); skip redacting what cannot fit anyway.
  if (measured.bytes > 4 * MAX_RECORDED_ARGUMENT_BYTES) return { arguments: null, argumentsOmitted: largerThanRecord(measured.bytes), ...known };
  const redacted = redactArguments(args, redactor);
  if (redacted.bytes > MAX_RECORDED_ARGUMENT_BYTES) return { arguments: null, argumentsOmitted: largerThanRecord(redacted.bytes), ...known };
  return { arguments: redacted.value, argumentsOmitted: null, ...known };
}

const largerThanRecord = (bytes: number) => `larger than the ${MAX_RECORDED_ARGUMENT_BYTES} bytes a record keeps (${bytes} bytes)`;

/** What a human reviewing a held call is shown, or why the call cannot be held for review. */
export type ReviewableArguments = { reviewable: true; shown: RedactedArguments } | { reviewable: false; reason: string; message: string };

/**
 * A held call's arguments as the reviewer sees them: whole (redacted, with the redacted places listed), so that what
 * a human approves is exactly what runs. Arguments a human cannot review whole — deeper than MAX_ARGUMENT_DEPTH or
 * larger than `maxReviewBytes` once redacted — are not held: the call is denied saying so.
 */
export function reviewableArguments(args: unknown, measured: MeasuredArguments, redactor: Redactor, maxReviewBytes: number): ReviewableArguments {
  if (measured.depth > MAX_ARGUMENT_DEPTH) {
    return {
      reviewable: false,
      reason: `arguments nested more than ${MAX_ARGUMENT_DEPTH} levels deep cannot be shown to a human for review`,
      message: `this call needs human approval, but its arguments are nested more than ${MAX_ARGUMENT_DEPTH} levels deep, too deep to review; it was denied`,
    };
  }
  if (measured.bytes === null || measured.sha256 === null) return { reviewable: false, reason: "the arguments are not JSON", message: "the arguments are not JSON; this call cannot be reviewed" };
  const shown = redactArguments(args, redactor);
  if (shown.bytes > maxReviewBytes) {
    return {
      reviewable: false,
      reason: `arguments of ${shown.bytes} bytes are more than approvals.maxReviewBytes (${maxReviewBytes}) a human is shown for review; raise approvals.maxReviewBytes in perimeter.yaml to hold such calls`,
      message: `this call needs human approval, but its arguments (${shown.bytes} bytes) are larger than a reviewer is shown (${maxReviewBytes} bytes); it was denied. Send smaller arguments, or ask the operator to raise approvals.maxReviewBytes`,
    };
  }
  return { reviewable: true, shown };
}
