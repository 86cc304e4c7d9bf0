// Canonical JSON for hashing and signing: object keys sorted by code unit, no whitespace. JSON.stringify is already
// deterministic for strings and numbers, so sorting keys is all it takes; inputs are validated first so that what is
// hashed is exactly what is stored and read back.
import { hash } from "node:crypto";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  // Plain loops and concatenation rather than map/join: this runs on every audit append.
  if (Array.isArray(value)) {
    let text = "[";
    for (let index = 0; index < value.length; index++) text += (index === 0 ? "" : ",") + canonicalJson(value[index] as JsonValue);
    return `${text}]`;
  }
  const keys = Object.keys(value).sort();
  let text = "{";
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index] as string;
    text += `${index === 0 ? "" : ","}${JSON.stringify(key)}:${canonicalJson(value[key] as JsonValue)}`;
  }
  return `${text}}`;
}

export function sha256Hex(text: string): string {
  // One-shot hash: no Hash object per record.
  return hash("sha256", text, "hex");
}

const MAX_DEPTH = 64;

/**
 * Checks that `value` is made of JSON values only and returns a copy with `undefined` object properties dropped
 * (as JSON.stringify would: callers often pass `error: result.error`). Anything JSON would silently change — NaN,
 * Infinity, a Date, a Map, a class instance, `undefined` in an array — is refused so that the record says exactly
 * what the caller meant. Throws TypeError naming the offending path.
 */
export function toJsonValue(value: unknown, path: string): JsonValue {
  return convert(value, path, [], new Set(), { indexKeys: false, omit: undefined }, 0);
}

/**
 * toJsonValue and canonicalJson of the result in one go. The copy's object keys are inserted in sorted order, so
 * JSON.stringify (several times faster than canonicalJson) already writes the canonical text, except when a key looks
 * like an array index: JavaScript orders those first, numerically, whatever the insertion order.
 */
export function toCanonicalJson(value: unknown, path: string, omit?: ReadonlySet<string>): { value: JsonValue; text: string } {
  const flags: Flags = { indexKeys: false, omit };
  const converted = convert(value, path, [], new Set(), flags, 0);
  return { value: converted, text: flags.indexKeys ? canonicalJson(converted) : JSON.stringify(converted) };
}

/** Keys that JavaScript orders before all others in an object (array indices, 0 to 2^32 - 2). */
const INDEX_KEY = /^(?:0|[1-9][0-9]{0,9})$/;

/** The path of the value being converted, built only for an error message (appends are hot: no string per field). */
function pathOf(root: string, keys: ReadonlyArray<string | number>): string {
  return keys.reduce<string>((text, key) => (typeof key === "number" ? `${text}[${key}]` : `${text}.${key}`), root);
}

interface Flags {
  /** Set when a key looks like an array index (see toCanonicalJson). */
  indexKeys: boolean;
  /** Keys of the outermost object left out of the copy (an event's component and type, kept in their own columns). */
  readonly omit: ReadonlySet<string> | undefined;
}

function convert(value: unknown, root: string, keys: Array<string | number>, seen: Set<object>, flags: Flags, depth: number): JsonValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${pathOf(root, keys)} is ${String(value)}, which JSON cannot represent; record it as a string or null`);
    return Object.is(value, -0) ? 0 : value;
  }
  if (typeof value !== "object") {
    throw new TypeError(`${pathOf(root, keys)} is a ${typeof value}; audit fields must be JSON values (string, number, boolean, null, array, plain object)`);
  }
  const path = () => pathOf(root, keys);
  if (depth >= MAX_DEPTH) throw new TypeError(`${path()} is nested more than ${MAX_DEPTH} levels deep`);
  if (seen.has(value)) throw new TypeError(`${path()} refers to itself (a cycle); audit fields must be JSON values`);
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      const result: JsonValue[] = new Array<JsonValue>(value.length);
      for (let index = 0; index < value.length; index++) {
        const item: unknown = value[index];
        keys.push(index);
        if (item === undefined) throw new TypeError(`${pathOf(root, keys)} is undefined; use null`);
        result[index] = convert(item, root, keys, seen, flags, depth + 1);
        keys.pop();
      }
      return result;
    }
    const prototype = Object.getPrototypeOf(value) as unknown;
    if (prototype !== Object.prototype && prototype !== null) {
      const name = (value as { constructor?: { name?: string } }).constructor?.name ?? "object";
      const hint = value instanceof Date ? "; pass date.toISOString()" : value instanceof Error ? "; pass error.message" : "";
      throw new TypeError(`${path()} is a ${name}, not a plain object${hint}`);
    }
    const result: { [key: string]: JsonValue } = {};
    for (const key of Object.keys(value).sort()) {
      const item = (value as Record<string, unknown>)[key];
      if (item === undefined || (depth === 0 && flags.omit?.has(key) === true)) continue;
      const first = key.charCodeAt(0);
      if (!flags.indexKeys && first >= 48 && first <= 57 && INDEX_KEY.test(key) && Number(key) < 2 ** 32 - 1) flags.indexKeys = true;
      let converted: JsonValue;
      // Strings, booleans, null and safe numbers are taken as they are, without a call per field (appends are hot).
      if (typeof item === "string" || typeof item === "boolean" || item === null || (typeof item === "number" && Number.isFinite(item) && !Object.is(item, -0))) converted = item;
      else {
        keys.push(key);
        converted = convert(item, root, keys, seen, flags, depth + 1);
        keys.pop();
      }
      // A "__proto__" key (tool arguments are agent-controlled) must stay a field: assignment would set the prototype.
      // Every other key is a plain own data property on assignment, which is much cheaper than defineProperty.
      if (key === "__proto__") Object.defineProperty(result, key, { value: converted, enumerable: true, writable: true, configurable: true });
      else result[key] = converted;
    }
    return result;
  } finally {
    seen.delete(value);
  }
}
