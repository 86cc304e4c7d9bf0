// YAML with positions. Every document of a multi-document stream keeps its own AST so that a path inside any of them
// maps to the right line and column of the file, and `# perimeter:ignore` comments map to the node they precede.
import { LineCounter, isMap, isPair, isScalar, isSeq, parseAllDocuments, visit } from "yaml";
import type { Document, Node, Pair } from "yaml";
import { loadAll } from "js-yaml";
import type { CheckError, SourceLocation } from "./model.ts";

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

/** Maps an offset in the parsed text to a place in the file the operator edits. */
export type PositionMapper = (offset: number) => SourceLocation;

export interface CommentDirective {
  readonly text: string;
  readonly location: SourceLocation;
  /** Lines of the file (1-based, inclusive) the directive covers. */
  readonly fromLine: number;
  readonly toLine: number;
}

export interface YamlDocument {
  readonly file: string;
  /** The text the document was parsed from (for mapping embedded files back). */
  readonly sourceText: string;
  readonly index: number;
  readonly document: Document.Parsed;
  /** The plain JavaScript value of the document. */
  readonly value: unknown;
  /** Where a path inside this document is written; falls back to the closest existing ancestor. */
  locate(path: Path): SourceLocation;
}

export interface YamlFile {
  readonly file: string;
  readonly text: string;
  readonly documents: readonly YamlDocument[];
  readonly directives: readonly CommentDirective[];
  readonly errors: readonly CheckError[];
}

const IGNORE_DIRECTIVE = /(?:^|\s)#\s*perimeter:ignore\b(.*)$/;

/**
 * Parses every document of `text`. `mapper` translates offsets when the text is embedded in another file (a
 * Hermes config.yaml inside a ConfigMap); by default offsets map to lines of `file` itself.
 *
 * Two passes, for speed: values come from js-yaml (about eight times faster than building the `yaml` AST), and the
 * positioned `yaml` AST is built only for files that need positions — a finding to locate, a `# perimeter:ignore`
 * comment, an embedded file, or a parse error to explain. Most files in a repository have no finding, so most never
 * pay for the AST.
 */
export function parseYamlFile(file: string, text: string, mapper?: PositionMapper): YamlFile {
  if (mapper !== undefined || text.includes("perimeter:ignore")) return parsePositioned(file, text, mapper);
  let values: unknown[];
  try {
    values = loadAll(text, { filename: file, maxAliases: 100, json: false });
  } catch (error) {
    const positioned = parsePositioned(file, text, mapper);
    if (positioned.errors.length > 0) return positioned;
    // The two parsers disagree: report js-yaml's complaint at its own position rather than let the file pass.
    const mark = (error as { mark?: { line: number; column: number } }).mark;
    const reason = (error as { reason?: string }).reason ?? (error as Error).message;
    return { ...positioned, documents: [], errors: [{ location: { file, line: (mark?.line ?? 0) + 1, column: (mark?.column ?? 0) + 1 }, message: `YAML: ${reason}` }] };
  }
  let positioned: YamlFile | undefined;
  const full = () => (positioned ??= parsePositioned(file, text, mapper));
  const documents: YamlDocument[] = values.map((value, index) => ({
    file,
    sourceText: text,
    index,
    value,
    get document() {
      const document = full().documents.find((candidate) => candidate.index === index);
      if (document === undefined) throw new Error(`${file}: document ${index + 1} has no positioned parse`);
      return document.document;
    },
    locate: (path) => full().documents.find((candidate) => candidate.index === index)?.locate(path) ?? { file, line: 1, column: 1 },
  }));
  return { file, text, documents, directives: [], errors: [] };
}

/** The `yaml` library's AST, with positions for every node, errors with locations, and comment directives. */
function parsePositioned(file: string, text: string, mapper?: PositionMapper): YamlFile {
  const lineCounter = new LineCounter();
  const toLocation: PositionMapper =
    mapper ??
    ((offset) => {
      const position = lineCounter.linePos(offset);
      return { file, line: position.line, column: position.col };
    });
  const parsed = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const documents: YamlDocument[] = [];
  const errors: CheckError[] = [];
  if (!Array.isArray(parsed)) {
    // An empty stream: no documents and nothing wrong.
    return { file, text, documents, directives: [], errors };
  }
  parsed.forEach((document, index) => {
    // An error found at the end of the input (an unclosed bracket) is reported on the last line that has content.
    const lastContent = Math.max(0, text.trimEnd().length - 1);
    for (const error of document.errors) {
      errors.push({ location: toLocation(Math.min(error.pos[0], lastContent)), message: `YAML: ${firstLine(error.message)}` });
    }
    if (document.errors.length > 0) return;
    let value: unknown;
    try {
      // Plain conversion of the composed tree; the library's toJS (anchors, revivers, tags) only when aliases appear.
      value = text.includes("*") ? document.toJS({ maxAliasCount: 100 }) : plainValue(document.contents);
    } catch (error) {
      errors.push({ location: toLocation(document.range[0]), message: `YAML: ${(error as Error).message}` });
      return;
    }
    documents.push({
      file,
      sourceText: text,
      index,
      document,
      value,
      locate: (path) => toLocation(offsetOf(document, path)),
    });
  });
  const directives = errors.length > 0 || !text.includes("perimeter:ignore") ? [] : commentDirectives(text, parsed, lineCounter, toLocation);
  return { file, text, documents, directives, errors };
}

/** The JavaScript value of an alias-free node: mappings become objects, sequences arrays, scalars their value. */
function plainValue(node: unknown): unknown {
  if (isScalar(node)) return node.value;
  if (isMap(node)) {
    const result: Record<string, unknown> = {};
    for (const pair of node.items) {
      const key = pair.key;
      const name = isScalar(key) ? String(key.value) : key === null || key === undefined ? "" : JSON.stringify(plainValue(key));
      // "__proto__" as a key must stay data, never become the object's prototype.
      Object.defineProperty(result, name, { value: plainValue(pair.value), enumerable: true, writable: true, configurable: true });
    }
    return result;
  }
  if (isSeq(node)) return node.items.map((item) => plainValue(item));
  return node === null || node === undefined ? null : (node as { toJSON?: () => unknown }).toJSON?.() ?? null;
}

function firstLine(message: string): string {
  return message.split("\n")[0] ?? message;
}

/** Offset of the node at `path`, or of the key that introduces it; the closest existing ancestor when absent. */
export function offsetOf(document: Document.Parsed, path: Path): number {
  let node: unknown = document.contents;
  let best = document.contents?.range?.[0] ?? document.range[0];
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => keyText(item) === String(segment));
      if (pair === undefined) break;
      const keyNode = pair.key as Node | null;
      best = keyNode?.range?.[0] ?? best;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment] as Node | undefined;
      if (item === undefined) break;
      best = item.range?.[0] ?? best;
      node = item;
    } else {
      break;
    }
  }
  return best;
}

function keyText(pair: Pair): string | undefined {
  const key = pair.key;
  if (isScalar(key)) return String(key.value);
  return typeof key === "string" ? key : undefined;
}

/** The node at `path` (for block scalars: to map embedded text back). */
export function nodeAt(document: Document.Parsed, path: Path): Node | undefined {
  const node = document.getIn(path as PathSegment[], true);
  return node === undefined || node === null ? undefined : (node as Node);
}

/**
 * `# perimeter:ignore RULE reason` on its own line covers the node that starts on the next content line (the whole
 * document when that is the document's first key); at the end of a line it covers the node on that line.
 */
function commentDirectives(
  text: string,
  documents: readonly Document.Parsed[],
  lineCounter: LineCounter,
  toLocation: PositionMapper,
): CommentDirective[] {
  const lines = text.split("\n");
  const found: Array<{ text: string; line: number; column: number; targetLine: number }> = [];
  lines.forEach((lineText, index) => {
    const match = IGNORE_DIRECTIVE.exec(lineText);
    if (match === null) return;
    const hashColumn = lineText.indexOf("#", match.index) + 1;
    const ownLine = lineText.slice(0, hashColumn - 1).trim() === "";
    let targetLine = index + 1;
    if (ownLine) {
      targetLine = index + 2;
      while (targetLine <= lines.length) {
        const next = (lines[targetLine - 1] ?? "").trim();
        if (next !== "" && !next.startsWith("#")) break;
        targetLine += 1;
      }
    }
    found.push({ text: (match[1] ?? "").trim(), line: index + 1, column: hashColumn, targetLine });
  });
  if (found.length === 0) return [];
  // Line span of every node, keyed by the line it starts on; the outermost node wins.
  const spans = new Map<number, number>();
  const documentSpans: Array<{ firstLine: number; lastLine: number }> = [];
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  const record = (start: number, end: number) => {
    const from = lineOf(start);
    const to = lineOf(Math.max(start, end - 1));
    spans.set(from, Math.max(spans.get(from) ?? from, to));
  };
  for (const document of documents) {
    const contents = document.contents as Node | null;
    const contentRange = contents?.range;
    if (contentRange !== undefined && contentRange !== null) {
      documentSpans.push({ firstLine: lineOf(contentRange[0]), lastLine: lineOf(Math.max(contentRange[0], contentRange[1] - 1)) });
    }
    visit(document, {
      Pair: (_key, pair) => {
        if (!isPair(pair)) return;
        const keyNode = pair.key as Node | null;
        const valueNode = pair.value as Node | null;
        const start = keyNode?.range?.[0];
        const end = valueNode?.range?.[1] ?? keyNode?.range?.[1];
        if (start !== undefined && end !== undefined) record(start, end);
      },
      Seq: (_key, seq) => {
        for (const item of seq.items as Array<Node | null>) {
          const range = item?.range;
          if (range !== undefined && range !== null) record(range[0], range[1]);
        }
      },
    });
  }
  return found.map((entry) => {
    const wholeDocument = documentSpans.find((span) => span.firstLine === entry.targetLine);
    const fromLine = wholeDocument?.firstLine ?? entry.targetLine;
    const toLine = wholeDocument?.lastLine ?? spans.get(entry.targetLine) ?? entry.targetLine;
    const lineStart = (line: number) => toLocation(lineCounter.lineStarts[line - 1] ?? 0);
    const location = lineStart(entry.line);
    return { text: entry.text, location: { ...location, column: location.column + entry.column - 1 }, fromLine: lineStart(fromLine).line, toLine: lineStart(toLine).line };
  });
}

/** Plain-object helpers for third-party input, parsed defensively. */
export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

export function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export function asString(value: unknown): string | undefined {
  return typeof value === "string" ? value : typeof value === "number" || typeof value === "boolean" ? String(value) : undefined;
}

export function dottedPath(path: Path): string {
  let text = "";
  for (const segment of path) text += typeof segment === "number" ? `[${segment}]` : text === "" ? segment : `.${segment}`;
  return text;
}
