// The engine of `perimeter check`: reads every input, decides what each file is, runs the rules and resolves
// suppressions. Pure with respect to its inputs: the same files and options give the same result.
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { checkCompose, looksLikeCompose } from "./compose.ts";
import { createCollector } from "./collector.ts";
import type { Subject } from "./collector.ts";
import { checkDockerfile, parseDockerfile } from "./dockerfile.ts";
import { checkEmbeddedConfig, checkEmbeddedEnv } from "./embedded.ts";
import { checkEnvFile, parseEnvText } from "./env-file.ts";
import type { EnvFile } from "./env-file.ts";
import { checkDataDirectory, checkEnvMode, isHermesDataDirectory } from "./files.ts";
import { chatEvidenceIn, checkHermesConfig, looksLikeHermesConfig } from "./hermes-config.ts";
import { isCredentialName } from "./hermes-facts.ts";
import { checkKubernetes, objectsOfDocument } from "./kubernetes.ts";
import { KUSTOMIZATION_FILES, buildKustomization, kustomizationFileIn } from "./kustomize.ts";
import type { CheckReport } from "./model.ts";
import { lineDirectiveRange, parseBaseline, resolveFindings } from "./suppress.ts";
import type { BaselineEntry } from "./suppress.ts";
import { collectYaml, displayPath } from "./run.ts";
import type { CheckOptions, Run } from "./run.ts";
import { parseYamlFile } from "./yaml-source.ts";
import type { YamlDocument } from "./yaml-source.ts";

export { displayPath } from "./run.ts";
export type { CheckOptions } from "./run.ts";

const SKIPPED_DIRECTORIES = new Set([".git", "node_modules"]);
const MAXIMUM_WALK_ENTRIES = 100_000;
const YAML_FILE = /\.ya?ml$/i;
const ENV_FILE = /^(\.env(\..+)?|.+\.env)$/;
const DOCKERFILE = /^(Dockerfile(\..+)?|Containerfile|.+\.[Dd]ockerfile)$/;
const EXAMPLE_ENV = /\.(example|sample|template|dist)$/;


export function runCheck(paths: readonly string[], options: CheckOptions): CheckReport {
  const run: Run = { options, collector: createCollector(), errors: [], inputs: [], skipped: [], objects: [], comments: [], annotated: [], handled: new Set(), kustomizations: [] };
  const display = (path: string) => displayPath(path, options.cwd);
  for (const path of paths) {
    if (path === "-") {
      checkYamlText(run, "<stdin>", options.stdinText ?? "", true);
      continue;
    }
    const full = resolve(options.cwd, path);
    if (!existsSync(full)) {
      run.errors.push({ location: { file: path, line: 1, column: 1 }, message: "no such file or directory" });
      continue;
    }
    if (statSync(full).isDirectory()) walkDirectory(run, full, { entries: 0 });
    else checkFile(run, full, true);
  }
  const included = new Set(run.kustomizations.flatMap((directory) => [...includedDirectories(directory, 0)]));
  for (const directory of run.kustomizations) if (!included.has(directory)) checkKustomization(run, directory);
  checkKubernetes(run.objects, run.collector, { embeddedHermesConfig: (entry) => checkEmbeddedConfig(run, entry), embeddedEnvFile: (entry) => checkEmbeddedEnv(run, entry) });
  run.annotated.push(...run.objects);
  let baseline: BaselineEntry[] = [];
  if (options.baselineFile !== undefined) {
    const parsed = parseBaseline(resolve(options.cwd, options.baselineFile), display(resolve(options.cwd, options.baselineFile)));
    baseline = parsed.entries;
    run.errors.push(...parsed.errors);
  }
  const today = options.today ?? new Date().toISOString().slice(0, 10);
  const findings = resolveFindings(run.collector, { comments: run.comments, baseline, annotated: run.annotated, today });
  findings.sort((a, b) => a.location.file.localeCompare(b.location.file) || a.location.line - b.location.line || a.location.column - b.location.column || a.ruleId.localeCompare(b.ruleId));
  run.errors.sort((a, b) => a.location.file.localeCompare(b.location.file) || a.location.line - b.location.line);
  return { findings, errors: run.errors, inputs: run.inputs, skipped: run.skipped };
}


function walkDirectory(run: Run, directory: string, budget: { entries: number }): void {
  if (run.handled.has(directory)) return;
  const display = (path: string) => displayPath(path, run.options.cwd);
  const kustomization = kustomizationFileIn(directory);
  if (kustomization !== undefined) {
    if (!run.kustomizations.includes(directory)) run.kustomizations.push(directory);
    return;
  }
  let names: string[];
  try {
    names = readdirSync(directory).sort();
  } catch (error) {
    run.errors.push({ location: { file: display(directory), line: 1, column: 1 }, message: `cannot read directory: ${(error as Error).message}` });
    return;
  }
  if (isHermesDataDirectory(directory, names)) {
    checkDataDirectoryInput(run, directory, names);
    return;
  }
  for (const name of names) {
    budget.entries += 1;
    if (budget.entries > MAXIMUM_WALK_ENTRIES) {
      run.errors.push({ location: { file: display(directory), line: 1, column: 1 }, message: `more than ${MAXIMUM_WALK_ENTRIES} entries: name the directories to check` });
      return;
    }
    const full = join(directory, name);
    const stats = lstatSync(full);
    if (stats.isSymbolicLink()) continue;
    if (stats.isDirectory()) {
      if (!SKIPPED_DIRECTORIES.has(name)) walkDirectory(run, full, budget);
    } else if (stats.isFile()) {
      checkFile(run, full, false);
    }
  }
}

/** Directories a kustomization pulls in as resources, bases or components, transitively (bounded depth). */
function includedDirectories(directory: string, depth: number): Set<string> {
  const found = new Set<string>();
  const file = kustomizationFileIn(directory);
  if (file === undefined || depth > 20) return found;
  let value: unknown;
  try {
    value = parseYamlFile(file, readFileSync(file, "utf8")).documents[0]?.value;
  } catch {
    return found;
  }
  const record = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  for (const key of ["resources", "bases", "components"]) {
    for (const entry of Array.isArray(record[key]) ? (record[key] as unknown[]) : []) {
      if (typeof entry !== "string") continue;
      const target = resolve(directory, entry);
      if (existsSync(target) && statSync(target).isDirectory() && !found.has(target)) {
        found.add(target);
        for (const nested of includedDirectories(target, depth + 1)) found.add(nested);
      }
    }
  }
  return found;
}

function checkKustomization(run: Run, directory: string): void {
  const display = (path: string) => displayPath(path, run.options.cwd);
  const build = buildKustomization(directory, display, run.options.kustomize ?? "auto");
  run.errors.push(...build.errors);
  run.objects.push(...build.objects);
  run.inputs.push({ file: display(directory), kind: "kustomization" });
  run.handled.add(directory);
  for (const file of build.files) {
    run.handled.add(resolve(run.options.cwd, file));
    // Comments in the resource files still suppress.
    if (YAML_FILE.test(file) && !KUSTOMIZATION_FILES.includes(basename(file))) {
      const parsed = parseYamlFile(file, readFileSync(resolve(run.options.cwd, file), "utf8"));
      for (const directive of parsed.directives) run.comments.push({ file, text: directive.text, location: directive.location, fromLine: directive.fromLine, toLine: directive.toLine });
    }
  }
}

function checkDataDirectoryInput(run: Run, directory: string, names: readonly string[]): void {
  const display = (path: string) => displayPath(path, run.options.cwd);
  run.inputs.push({ file: display(directory), kind: "data-directory" });
  checkDataDirectory(directory, display(directory), run.collector);
  const envPath = join(directory, ".env");
  let envFile: EnvFile | undefined;
  if (names.includes(".env")) envFile = checkEnvInput(run, envPath, true);
  for (const name of ["config.yaml", "config.yml"]) {
    if (!names.includes(name)) continue;
    const full = join(directory, name);
    run.inputs.push({ file: display(full), kind: "hermes-config" });
    const parsed = parseYamlFile(display(full), readFileSync(full, "utf8"));
    collectYaml(run, parsed);
    const evidence = envFile === undefined ? undefined : chatEvidenceIn(envFile.variables);
    for (const document of parsed.documents) {
      checkHermesConfig(document, fileSubject(document), { servesChat: evidence !== undefined, chatEvidence: evidence }, run.collector);
    }
  }
}

function fileSubject(document: YamlDocument): Subject {
  return { file: document.file, name: basename(document.file), locate: (path) => document.locate(path) };
}


function checkEnvInput(run: Run, full: string, agentEnv: boolean): EnvFile {
  const display = displayPath(full, run.options.cwd);
  run.inputs.push({ file: display, kind: "env" });
  const envFile = parseEnvText(display, readFileSync(full, "utf8"));
  run.errors.push(...envFile.errors);
  for (const directive of envFile.directives) run.comments.push(lineDirectiveRange(display, directive));
  checkEnvFile(envFile, agentEnv, run.collector);
  const holdsSecrets = envFile.variables.some((variable) => isCredentialName(variable.name) && variable.value !== "");
  if ((agentEnv || holdsSecrets) && !EXAMPLE_ENV.test(full)) checkEnvMode(full, display, statSync(full), run.collector);
  return envFile;
}

const MAXIMUM_FILE_BYTES = 16 * 1024 * 1024;

function checkFile(run: Run, full: string, explicit: boolean): void {
  if (run.handled.has(full)) return;
  const name = basename(full);
  const display = displayPath(full, run.options.cwd);
  const candidate = explicit || KUSTOMIZATION_FILES.includes(name) || ENV_FILE.test(name) || DOCKERFILE.test(name) || YAML_FILE.test(name);
  if (candidate && statSync(full).size > MAXIMUM_FILE_BYTES) {
    // Bounded memory: no manifest, compose file or config is this large.
    run.errors.push({ location: { file: display, line: 1, column: 1 }, message: `larger than ${MAXIMUM_FILE_BYTES / 1024 / 1024} MiB: not checked; split it or name the files to check` });
    return;
  }
  if (KUSTOMIZATION_FILES.includes(name)) {
    if (!run.kustomizations.includes(dirname(full))) run.kustomizations.push(dirname(full));
    return;
  }
  if (ENV_FILE.test(name)) {
    const siblingConfig = ["config.yaml", "config.yml"].some((config) => existsSync(join(dirname(full), config)) && looksLikeHermesConfig(safeValue(join(dirname(full), config)), config));
    checkEnvInput(run, full, name === ".env" && siblingConfig);
    return;
  }
  if (DOCKERFILE.test(name)) {
    run.inputs.push({ file: display, kind: "dockerfile" });
    const dockerfile = parseDockerfile(display, readFileSync(full, "utf8"));
    run.errors.push(...dockerfile.errors);
    for (const directive of dockerfile.directives) run.comments.push(lineDirectiveRange(display, directive));
    if (dockerfile.errors.length === 0) checkDockerfile(dockerfile, run.collector);
    return;
  }
  if (YAML_FILE.test(name) || explicit) {
    checkYamlText(run, display, readFileSync(full, "utf8"), explicit, full);
  }
}

function safeValue(full: string): unknown {
  try {
    return parseYamlFile(full, readFileSync(full, "utf8")).documents[0]?.value;
  } catch {
    return undefined;
  }
}

function checkYamlText(run: Run, display: string, text: string, explicit: boolean, full?: string): void {
  const parsed = parseYamlFile(display, text);
  collectYaml(run, parsed);
  if (parsed.errors.length > 0) return;
  const values = parsed.documents.map((document) => document.value).filter((value) => value !== null && value !== undefined);
  if (values.length === 0) {
    run.skipped.push({ file: display, reason: "empty" });
    return;
  }
  const isKubernetes = values.some((value) => typeof value === "object" && value !== null && "kind" in value && "apiVersion" in value);
  if (isKubernetes) {
    run.inputs.push({ file: display, kind: "kubernetes" });
    for (const document of parsed.documents) run.objects.push(...objectsOfDocument(document, run.errors));
    return;
  }
  const first = parsed.documents.find((document) => document.value !== null && document.value !== undefined) as YamlDocument;
  if (values.length === 1 && looksLikeCompose(first.value)) {
    run.inputs.push({ file: display, kind: "compose" });
    checkCompose(first, full === undefined ? run.options.cwd : dirname(full), run.collector, run.errors, run.skipped);
    return;
  }
  if (values.length === 1 && looksLikeHermesConfig(first.value, basename(display))) {
    run.inputs.push({ file: display, kind: "hermes-config" });
    let evidence: string | undefined;
    if (full !== undefined && existsSync(join(dirname(full), ".env"))) evidence = chatEvidenceIn(parseEnvText(".env", readFileSync(join(dirname(full), ".env"), "utf8")).variables);
    checkHermesConfig(first, fileSubject(first), { servesChat: evidence !== undefined, chatEvidence: evidence }, run.collector);
    return;
  }
  const root = first.value as Record<string, unknown>;
  const declaration = typeof root === "object" && root !== null && root.version === 1 && root.name !== undefined;
  if (declaration && run.options.validateDeclaration !== undefined) {
    run.inputs.push({ file: display, kind: "perimeter-config" });
    run.errors.push(...run.options.validateDeclaration(text, display));
    return;
  }
  const reason = declaration ? "Perimeter's own configuration (perimeter render validates it)" : "not a Kubernetes manifest, compose file, kustomization or Hermes config.yaml";
  if (explicit) run.errors.push({ location: first.locate([]), message: reason });
  else run.skipped.push({ file: display, reason });
}
