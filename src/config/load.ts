// Loading perimeter.yaml: YAML with source positions, strict validation, and errors that name file, line, column
// and the fix. A config either loads whole or not at all; nothing is silently replaced by a default.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument } from "yaml";
import type { Node } from "yaml";
import { z } from "zod";
import { perimeterConfigSchema } from "./schema.ts";
import type { PerimeterConfig } from "./schema.ts";
import { ConfigError } from "./errors.ts";
import type { ConfigProblem } from "./errors.ts";

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j] as number;
      const cost = a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1;
      row[j] = Math.min(current + 1, (row[j - 1] as number) + 1, previous + cost);
      previous = current;
    }
  }
  return row[b.length] as number;
}

/** The closest candidate within a distance proportional to the word's length, if any. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

type AnySchema = z.core.$ZodType;

/** The keys a strict object accepts at `path`, found by walking the schema (unwrapping defaults, unions, records). */
function knownKeysAt(schema: AnySchema, path: readonly PropertyKey[]): string[] {
  const def = (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
  const type = def.type as string;
  if (type === "default" || type === "prefault" || type === "optional" || type === "nullable" || type === "pipe" || type === "catch" || type === "readonly") {
    const inner = (def.innerType ?? def.in) as AnySchema | undefined;
    return inner === undefined ? [] : knownKeysAt(inner, path);
  }
  if (type === "union") {
    return (def.options as AnySchema[]).flatMap((option) => knownKeysAt(option, path));
  }
  if (path.length === 0) {
    return type === "object" ? Object.keys(def.shape as object) : [];
  }
  const [head, ...rest] = path;
  if (type === "object") {
    const child = (def.shape as Record<string, AnySchema>)[String(head)];
    return child === undefined ? [] : knownKeysAt(child, rest);
  }
  if (type === "record") return knownKeysAt(def.valueType as AnySchema, rest);
  if (type === "array") return knownKeysAt(def.element as AnySchema, rest);
  return [];
}

interface Located {
  line: number;
  column: number;
}

function position(node: Node | null | undefined, lines: LineCounter): Located | undefined {
  const range = node?.range;
  if (range === undefined || range === null) return undefined;
  const { line, col } = lines.linePos(range[0]);
  return { line, column: col };
}

/** Finds the node at `path`; for an unknown key, the key node itself. Falls back to the nearest existing parent. */
function locate(document: ReturnType<typeof parseDocument>, lines: LineCounter, path: readonly PropertyKey[], key?: string): Located {
  let node: unknown = document.contents;
  let found = position(node as Node, lines) ?? { line: 1, column: 1 };
  const steps = key === undefined ? path : [...path, key];
  for (const [index, step] of steps.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(step));
      if (pair === undefined) break;
      const isLastKey = key !== undefined && index === steps.length - 1;
      const here = position((isLastKey ? pair.key : (pair.value ?? pair.key)) as Node, lines);
      if (here !== undefined) found = here;
      node = pair.value;
    } else if (isSeq(node) && typeof step === "number") {
      const item = node.items[step];
      if (item === undefined) break;
      const here = position(item as Node, lines);
      if (here !== undefined) found = here;
      node = item;
    } else break;
  }
  return found;
}

function dotted(path: readonly PropertyKey[]): string {
  return path.map((step) => (typeof step === "number" ? `[${step}]` : String(step))).join(".").replace(/\.\[/g, "[");
}

/** The path of the first own "__proto__" key in parsed YAML, if any. */
function prototypeKeyIn(value: unknown, path: PropertyKey[]): PropertyKey[] | undefined {
  if (value === null || typeof value !== "object") return undefined;
  for (const [key, child] of Object.entries(value)) {
    if (key === "__proto__") return [...path, key];
    const found = prototypeKeyIn(child, [...path, Array.isArray(value) ? Number(key) : key]);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Validates already-read text. `file` is used in messages only. */
export function parseConfig(text: string, file = "perimeter.yaml"): PerimeterConfig {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => {
        const { line, col } = lines.linePos(error.pos[0]);
        return { file, line, column: col, path: "", message: `YAML syntax: ${error.message.split("\n")[0]}` };
      }),
    );
  }
  const data: unknown = document.toJS({ maxAliasCount: 100 });
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new ConfigError([{ file, line: 1, column: 1, path: "", message: "the file must be a YAML mapping starting with `version: 1` and `name: ...`" }]);
  }
  // zod drops a "__proto__" key without a word (assigning it would replace a prototype), so a constraint or rule
  // written under that name would be ignored in silence: refuse it instead.
  const prototypeKey = prototypeKeyIn(data, []);
  if (prototypeKey !== undefined) {
    const location = locate(document, lines, prototypeKey.slice(0, -1), "__proto__");
    throw new ConfigError([{ file, ...location, path: dotted(prototypeKey), message: 'a key cannot be named "__proto__" (it would be ignored); rename it' }]);
  }
  // Without zod's JIT: it compiles a fast path for every object schema on its first parse, which pays off for a schema
  // parsed thousands of times; a config is parsed a few times per process (first parse 42-59 -> 32-41 ms).
  const result = perimeterConfigSchema.safeParse(data, { jitless: true });
  if (result.success) return result.data;

  const problems: ConfigProblem[] = [];
  for (const issue of result.error.issues) {
    if (issue.code === "unrecognized_keys") {
      const known = knownKeysAt(perimeterConfigSchema, issue.path);
      for (const key of issue.keys) {
        const suggestion = closest(key, known);
        const hint = suggestion !== undefined ? ` — did you mean "${suggestion}"?` : known.length > 0 ? ` (known keys: ${known.join(", ")})` : "";
        problems.push({ file, ...locate(document, lines, issue.path, key), path: dotted([...issue.path, key]), message: `unknown key "${key}"${hint}` });
      }
      continue;
    }
    let message = issue.message;
    const defaultMessage = /^Invalid/.test(issue.message);
    if (issue.code === "invalid_value" && "values" in issue && defaultMessage) {
      const received: unknown = document.getIn(issue.path as PropertyKey[]);
      const options = (issue.values as unknown[]).map(String);
      const suggestion = typeof received === "string" ? closest(received, options) : undefined;
      message = `must be one of ${options.join(", ")}${suggestion !== undefined ? ` — did you mean "${suggestion}"?` : ""}`;
    } else if (issue.code === "invalid_type" && defaultMessage && document.getIn(issue.path as PropertyKey[]) === undefined) {
      message = `is required (${issue.expected})`;
    } else if (issue.code === "invalid_type" && defaultMessage && issue.expected === "object" && document.getIn(issue.path as PropertyKey[]) === null) {
      // `kubernetes:` with every line under it commented out: YAML reads an empty value, not an empty mapping.
      message = "is empty (everything under it is commented out?): give it at least one key, write `{}`, or remove the line";
    }
    problems.push({ file, ...locate(document, lines, issue.path), path: dotted(issue.path), message });
  }
  problems.sort((a, b) => a.line - b.line || a.column - b.column);
  throw new ConfigError(problems);
}

/** Configs already loaded in this process, by file, with the text they were parsed from (see loadConfig). */
const loaded = new Map<string, { text: string; config: PerimeterConfig }>();
const LOADED_FILES = 16;

/**
 * Reads and validates a config file; a missing or unreadable file is a ConfigError that says so. While the file's
 * text is unchanged, a second load in this process is a copy of the first parse: `perimeter up` runs every service
 * in its own process, and each loads the same file (a parse is 8-50 ms, most of it zod's; a copy well under 1 ms).
 * Each caller gets its own copy to change as it likes. A changed file (a reload) is parsed again.
 */
export function loadConfig(file: string): PerimeterConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file (pass the path with -c FILE)" : `cannot read it (${code ?? (error as Error).message})`;
    throw new ConfigError([{ file, line: 1, column: 1, path: "", message: reason }]);
  }
  const key = resolve(file);
  const known = loaded.get(key);
  if (known !== undefined && known.text === text) return structuredClone(known.config);
  const config = parseConfig(text, file);
  loaded.delete(key);
  loaded.set(key, { text, config: structuredClone(config) });
  if (loaded.size > LOADED_FILES) loaded.delete(loaded.keys().next().value as string);
  return config;
}

/** JSON Schema of perimeter.yaml for editors (`perimeter schema`). */
export function configJsonSchema(): object {
  return z.toJSONSchema(perimeterConfigSchema, { io: "input", unrepresentable: "any", target: "draft-2020-12" });
}
