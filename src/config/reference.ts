// The config reference in the README, generated from the schema so that the two cannot drift apart
// (a test compares them; `node scripts/config-reference.ts --write` rewrites the README block).
import { configJsonSchema } from "./load.ts";

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  required?: string[];
}

function typeOf(schema: JsonSchema): string {
  if (schema.enum !== undefined) return schema.enum.map((value) => JSON.stringify(value)).join(" \\| ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.anyOf !== undefined) return schema.anyOf.map(typeOf).join(" \\| ");
  if (schema.type === "array") return `list of ${schema.items === undefined ? "any" : typeOf(schema.items)}`;
  if (Array.isArray(schema.type)) return schema.type.join(" \\| ");
  if (schema.type === "object" && schema.properties === undefined && typeof schema.additionalProperties === "object") return "map";
  return schema.type ?? "any";
}

function rows(schema: JsonSchema, path: string, required: boolean, out: string[]): void {
  const described = (schema.description ?? "").replace(/\s*@default .*$/, "").replace(/\|/g, "\\|");
  const hasDefault = schema.default !== undefined && !(typeof schema.default === "object" && schema.default !== null && Object.keys(schema.default).length === 0 && !Array.isArray(schema.default));
  const fallback = hasDefault ? `\`${JSON.stringify(schema.default)}\`` : required ? "required" : "";
  if (path !== "") out.push(`| \`${path}\` | ${typeOf(schema)} | ${fallback} | ${described} |`);
  if (schema.properties !== undefined) {
    for (const [key, child] of Object.entries(schema.properties)) rows(child, path === "" ? key : `${path}.${key}`, schema.required?.includes(key) ?? false, out);
  } else if (typeof schema.additionalProperties === "object" && schema.additionalProperties.properties !== undefined) {
    rows(schema.additionalProperties, `${path}.<name>`, false, out);
  } else if (schema.type === "array" && schema.items?.properties !== undefined) {
    rows(schema.items, `${path}[]`, false, out);
  } else if (schema.anyOf !== undefined) {
    for (const option of schema.anyOf) {
      if (option.properties !== undefined) rows(option, path, false, out);
      if (option.type === "array" && option.items?.properties !== undefined) rows(option.items, `${path}[]`, false, out);
    }
  }
}

export function configReferenceMarkdown(): string {
  const out = ["| key | type | default | meaning |", "|---|---|---|---|"];
  rows(configJsonSchema() as JsonSchema, "", true, out);
  // Paths reached twice through unions would repeat; keep the first.
  return [...new Set(out)].join("\n");
}

export const REFERENCE_START = "<!-- config-reference:start (generated from src/config/schema.ts; node scripts/config-reference.ts --write) -->";
export const REFERENCE_END = "<!-- config-reference:end -->";
