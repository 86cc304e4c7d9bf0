// Tool definitions as the pinning store sees them: the fields that tell a model what a tool does (name, title,
// description, input and output schemas, annotations), their hash, a field-level diff for the reviewer, and a scan
// for instructions hidden from the human but read by the model (tool poisoning).
import { hashOf } from "./canonical.ts";

export interface ToolDefinition {
  name: string;
  title?: string;
  description?: string;
  inputSchema: unknown;
  outputSchema?: unknown;
  annotations?: unknown;
}

/** The pinned part of an upstream `Tool` (icons, _meta, execution hints are not served to the agent, so not pinned). */
export function definitionOf(tool: { name: string; title?: string; description?: string; inputSchema?: unknown; outputSchema?: unknown; annotations?: unknown }): ToolDefinition {
  const definition: ToolDefinition = { name: tool.name, inputSchema: tool.inputSchema ?? { type: "object" } };
  if (tool.title !== undefined) definition.title = tool.title;
  if (tool.description !== undefined) definition.description = tool.description;
  if (tool.outputSchema !== undefined) definition.outputSchema = tool.outputSchema;
  if (tool.annotations !== undefined) definition.annotations = tool.annotations;
  return definition;
}

export function definitionHash(definition: ToolDefinition): string {
  return hashOf(definition);
}

export interface DefinitionChange {
  path: string;
  before?: unknown;
  after?: unknown;
}

/** Leaf-level differences between two JSON values, by dotted path. */
export function diffDefinitions(before: unknown, after: unknown, path = "", out: DefinitionChange[] = [], limit = 200): DefinitionChange[] {
  if (out.length >= limit) return out;
  const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === "object" && !Array.isArray(value);
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const key of keys) diffDefinitions(before[key], after[key], path === "" ? key : `${path}.${key}`, out, limit);
    return out;
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    before.forEach((item, index) => diffDefinitions(item, after[index], `${path}[${index}]`, out, limit));
    return out;
  }
  if (hashOf(before) !== hashOf(after)) {
    const change: DefinitionChange = { path: path === "" ? "(definition)" : path };
    if (before !== undefined) change.before = before;
    if (after !== undefined) change.after = after;
    out.push(change);
  }
  return out;
}

export interface Finding {
  /** Where in the definition, e.g. `description` or `inputSchema.properties.path.description`. */
  field: string;
  kind: "invisible-unicode" | "bidi-control" | "tag-block" | "url" | "instruction-phrase" | "oversized";
  excerpt: string;
}

// Zero-width and other format characters (Cf) except the bidi controls, reported separately; Unicode "tag"
// characters (U+E0000-E007F) spell hidden ASCII; variation selectors and private use areas carry nothing legitimate
// in a tool description.
const INVISIBLE = /[\p{Cf}\u{E0000}-\u{E007F}\u{FE00}-\u{FE0F}\u{E0100}-\u{E01EF}\p{Co}]/u;
const BIDI = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/u;
const TAG_BLOCK = /<\s*\/?\s*(important|system|instructions?|hidden|secret|admin|prompt|assistant|user|note|context)\b[^>]*>/iu;
const URL = /\b(?:https?|ftp|file|data|javascript):[^\s"'<>]*|\bwww\.[a-z0-9-]+\.[a-z]{2,}/iu;
const PHRASES: readonly RegExp[] = [
  /\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:previous|prior|above|earlier|all|other|system)\b.{0,20}\b(?:instructions?|prompts?|rules?|messages?)/iu,
  /\b(?:do not|don't|never)\b.{0,30}\b(?:tell|mention|inform|reveal|show|notify)\b.{0,20}\b(?:the )?user/iu,
  /\bbefore (?:using|calling|running) (?:this|any|the) tool\b/iu,
  /\byou (?:must|should) (?:first|always|now)\b/iu,
  /(?:~\/\.ssh|id_rsa|id_ed25519|\.aws\/credentials|\.env\b|\/etc\/passwd|mcp\.json|\.kube\/config)/iu,
  /\b(?:send|upload|post|forward|exfiltrate|include)\b.{0,40}\b(?:api[_ -]?keys?|tokens?|credentials?|passwords?|secrets?|private keys?)\b/iu,
  /\bsystem prompt\b/iu,
];
const MAX_DESCRIPTION = 4000;

function excerptAround(text: string, index: number): string {
  const start = Math.max(0, index - 30);
  const raw = text.slice(start, index + 50);
  // Make the invisible visible for the reviewer.
  return raw.replace(/[^\P{Cf}]|[\u{E0000}-\u{E007F}]|[\p{Co}]/gu, (char) => `<U+${char.codePointAt(0)?.toString(16).toUpperCase().padStart(4, "0")}>`);
}

function scanText(field: string, text: string, findings: Finding[], characterChecksOnly = false): void {
  const check = (kind: Finding["kind"], pattern: RegExp) => {
    const match = pattern.exec(text);
    if (match !== null) findings.push({ field, kind, excerpt: excerptAround(text, match.index) });
  };
  check("bidi-control", BIDI);
  const withoutBidi = text.replace(new RegExp(BIDI.source, "gu"), "");
  const invisible = INVISIBLE.exec(withoutBidi);
  if (invisible !== null) findings.push({ field, kind: "invisible-unicode", excerpt: excerptAround(withoutBidi, invisible.index) });
  if (characterChecksOnly) return;
  check("tag-block", TAG_BLOCK);
  check("url", URL);
  for (const phrase of PHRASES) {
    const match = phrase.exec(text);
    if (match !== null) {
      findings.push({ field, kind: "instruction-phrase", excerpt: excerptAround(text, match.index) });
      break;
    }
  }
  if (text.length > MAX_DESCRIPTION) findings.push({ field, kind: "oversized", excerpt: `${text.length} characters` });
}

/** Every string the model reads: title, description, and any title/description/default/enum text inside the schemas. */
export function scanForHiddenInstructions(definition: ToolDefinition): Finding[] {
  const findings: Finding[] = [];
  const walk = (value: unknown, path: string, depth: number): void => {
    if (depth > 32) return;
    if (typeof value === "string") {
      scanText(path, value, findings);
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => walk(item, `${path}[${index}]`, depth + 1));
    } else if (value !== null && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) {
        // Property names reach the model too, but ordinary names ("system_prompt") are legitimate: only hidden
        // characters count there. `$schema`/`$id` are URLs by definition.
        scanText(`${path}.${key} (name)`, key, findings, true);
        if (!key.startsWith("$")) walk(item, `${path}.${key}`, depth + 1);
      }
    }
  };
  if (definition.title !== undefined) scanText("title", definition.title, findings);
  if (definition.description !== undefined) scanText("description", definition.description, findings);
  walk(definition.inputSchema, "inputSchema", 0);
  if (definition.outputSchema !== undefined) walk(definition.outputSchema, "outputSchema", 0);
  return findings;
}
