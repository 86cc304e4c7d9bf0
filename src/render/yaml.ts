// Deterministic YAML: the same config renders to the same bytes, so a re-render diffs clean and golden files pin
// the output. Keys are sorted, except that apiVersion, kind and metadata (and a few other "identity" keys) come
// first, as cdk8s and kubectl write them; arrays keep their order, which render chooses deliberately.
import { Document, isMap, isPair, isScalar, isSeq } from "yaml";
import type { Node, Pair } from "yaml";

const LEADING_KEYS = ["apiVersion", "kind", "metadata", "name", "namespace"];

function keyRank(key: string): number {
  const index = LEADING_KEYS.indexOf(key);
  return index === -1 ? LEADING_KEYS.length : index;
}

export function compareKeys(a: string, b: string): number {
  const rank = keyRank(a) - keyRank(b);
  if (rank !== 0) return rank;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A deep copy with object keys in render order and `undefined` members dropped. */
export function sortedDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedDeep);
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, member]) => member !== undefined)
      .sort(([a], [b]) => compareKeys(a, b));
    return Object.fromEntries(entries.map(([key, member]) => [key, sortedDeep(member)]));
  }
  return value;
}

const STRINGIFY_OPTIONS = { lineWidth: 0, minContentWidth: 0, indentSeq: true } as const;
/**
 * YAML 1.1 scalars: kubectl (go-yaml v2) and Hermes (PyYAML) read `yes`, `on`, `y` as booleans, so strings that
 * look like them must be quoted. Writing as 1.1 makes the library quote them.
 */
const DOCUMENT_OPTIONS = { version: "1.1" } as const;

/** One YAML document, keys sorted. */
export function toYaml(value: unknown): string {
  return new Document(sortedDeep(value), DOCUMENT_OPTIONS).toString(STRINGIFY_OPTIONS);
}

/** Several documents separated by `---`, in the given order. */
export function toYamlStream(values: readonly unknown[]): string {
  return values.map((value) => toYaml(value)).join("---\n");
}

/**
 * A document with comments attached to keys: `comments` maps a dotted key path (`security.redact_secrets`) to the
 * comment written above that key. Used for files an operator reads and edits (the Hermes config seed, compose.yaml).
 * `sortKeys: false` keeps the order the caller built (deterministic too, since code builds it), for files read top
 * to bottom.
 */
export function toCommentedYaml(value: unknown, comments: Readonly<Record<string, string>>, header?: string, options: { sortKeys?: boolean } = {}): string {
  const document = new Document(options.sortKeys === false ? value : sortedDeep(value), DOCUMENT_OPTIONS);
  for (const [path, comment] of Object.entries(comments)) {
    const pair = findPair(document.contents, path.split("."));
    if (pair === undefined) throw new Error(`internal: no key ${path} to comment`);
    const key = pair.key as Node;
    key.commentBefore = comment
      .split("\n")
      .map((line) => (line === "" ? "" : ` ${line}`))
      .join("\n");
  }
  if (header !== undefined) {
    document.commentBefore = header
      .split("\n")
      .map((line) => (line === "" ? "" : ` ${line}`))
      .join("\n");
  }
  return document.toString(STRINGIFY_OPTIONS);
}

function findPair(node: unknown, path: readonly string[]): Pair | undefined {
  const [head, ...rest] = path;
  if (head === undefined) return undefined;
  if (isSeq(node)) {
    const index = Number(head);
    return Number.isInteger(index) ? findPair(node.items[index], rest) : undefined;
  }
  if (!isMap(node)) return undefined;
  const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && item.key.value === head);
  if (pair === undefined) return undefined;
  return rest.length === 0 ? pair : findPair(pair.value, rest);
}
