// Files held in a ConfigMap's data keys — Hermes' config.yaml and a .env such as the hermes.env the Kubernetes render
// mounts at /opt/data/.env — read with their positions mapped to the manifest (inside a literal block scalar) or to
// the file kustomize generated the key from, so findings and suppressions point at the line that holds them.
import { readFileSync } from "node:fs";
import { isScalar } from "yaml";
import type { Subject } from "./collector.ts";
import { parseEnvText } from "./env-file.ts";
import { checkHermesConfig, looksLikeHermesConfig } from "./hermes-config.ts";
import type { EnvEntry } from "./hermes-facts.ts";
import { checkConfigMapEnv, checkConfigMapValue } from "./kubernetes.ts";
import type { ConfigMapKey, KubeObject } from "./kubernetes.ts";
import type { SourceLocation } from "./model.ts";
import { collectYaml, displayPath } from "./run.ts";
import type { Run } from "./run.ts";
import { nodeAt, parseYamlFile } from "./yaml-source.ts";
import type { Path, PositionMapper, YamlFile } from "./yaml-source.ts";

/** A Hermes config.yaml held in a ConfigMap: checked with positions mapped to the file that holds it. */
export function checkEmbeddedConfig(run: Run, entry: ConfigMapKey): void {
  const { object, key, mountedByAgent } = entry;
  const generatedFile = object.generatedFrom?.get(key);
  let parsed: YamlFile;
  if (generatedFile !== undefined) {
    parsed = parseYamlFile(displayPath(generatedFile, run.options.cwd), readFileSync(generatedFile, "utf8"));
  } else {
    parsed = parseYamlFile(object.file, entry.text, embeddedMapper(object, key));
  }
  const document = parsed.documents[0];
  if (parsed.errors.length > 0 || document === undefined || !looksLikeHermesConfig(document.value, key)) {
    // Not a Hermes config after all (another program's config.yaml): only what any ConfigMap value is checked for.
    if (parsed.errors.length > 0 && document !== undefined && looksLikeHermesConfig(document.value, key)) run.errors.push(...parsed.errors);
    else checkConfigMapValue(entry, run.collector);
    return;
  }
  collectYaml(run, { ...parsed, errors: [] });
  const subject: Subject = { file: parsed.file, name: `${object.name} ${key}`, locate: (path) => document.locate(path), ignoreAnnotations: object.ignoreAnnotations };
  run.annotated.push(subject);
  run.inputs.push({ file: `${parsed.file} (${object.name} ${key})`, kind: "hermes-config" });
  checkHermesConfig(document, subject, { servesChat: mountedByAgent, chatEvidence: "the agent's gateway pod mounts this config" }, run.collector);
}

/** Offsets inside a literal block scalar map to lines of the manifest; anything else maps to the value's key. */
function embeddedMapper(object: KubeObject, key: string): PositionMapper {
  const valuePath: Path = ["data", key];
  const fallback: PositionMapper = () => object.locate(valuePath);
  const document = object.document;
  if (document === undefined || document.file !== object.file) return fallback;
  const node = nodeAt(document.document, [...object.basePath, ...valuePath]);
  if (!isScalar(node) || node.type !== "BLOCK_LITERAL" || node.range === undefined || node.range === null) return fallback;
  const text = document.sourceText;
  const contentStart = text.indexOf("\n", node.range[0]) + 1;
  if (contentStart <= 0) return fallback;
  const firstContentLine = text.slice(0, contentStart).split("\n").length;
  const indent = /^( *)\S/m.exec(text.slice(contentStart))?.[1]?.length ?? 0;
  const inner = String(node.value);
  const lineStarts = [0];
  for (let index = 0; index < inner.length; index++) if (inner[index] === "\n") lineStarts.push(index + 1);
  return (offset): SourceLocation => {
    let line = 0;
    while (line + 1 < lineStarts.length && (lineStarts[line + 1] as number) <= offset) line += 1;
    return { file: document.file, line: firstContentLine + line, column: indent + offset - (lineStarts[line] as number) + 1 };
  };
}

/** A .env file held in a ConfigMap key: its variables judged by checkConfigMapEnv, each at its own line. */
export function checkEmbeddedEnv(run: Run, entry: ConfigMapKey): void {
  const { object, key } = entry;
  const generatedFile = object.generatedFrom?.get(key);
  let file = object.file;
  let text = entry.text;
  let lineAt: (line: number, column: number) => SourceLocation;
  if (generatedFile !== undefined) {
    file = displayPath(generatedFile, run.options.cwd);
    text = readFileSync(generatedFile, "utf8");
    lineAt = (line, column) => ({ file, line, column });
  } else {
    const mapper = embeddedMapper(object, key);
    const lineStarts = [0];
    for (let index = 0; index < text.length; index++) if (text[index] === "\n") lineStarts.push(index + 1);
    lineAt = (line, column) => mapper((lineStarts[line - 1] ?? 0) + column - 1);
  }
  const envFile = parseEnvText(file, text);
  run.errors.push(...envFile.errors.map((error) => ({ ...error, location: lineAt(error.location.line, error.location.column) })));
  for (const directive of envFile.directives) {
    const covered = lineAt(directive.covers, 1).line;
    run.comments.push({ file, text: directive.text, location: lineAt(directive.line, directive.column), fromLine: covered, toLine: covered });
  }
  const lineOf = new Map(envFile.variables.map((variable) => [variable.name, variable.line]));
  const subject: Subject = {
    file,
    name: `${object.name} ${key}`,
    locate: (path) => lineAt(typeof path[0] === "string" ? (lineOf.get(path[0]) ?? 1) : 1, 1),
    ignoreAnnotations: object.ignoreAnnotations,
  };
  run.annotated.push(subject);
  run.inputs.push({ file: `${file} (${object.name} ${key})`, kind: "env" });
  const entries: EnvEntry[] = envFile.variables.map((variable) => ({ name: variable.name, value: variable.value, subject, path: [variable.name] }));
  checkConfigMapEnv(entry, entries, run.collector);
}
