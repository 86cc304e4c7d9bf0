// kustomization.yaml directories. With kubectl on PATH the directory is built by `kubectl kustomize` (offline, the
// same logic `kubectl apply -k` uses) and each built object is mapped back to the resource file it came from, so
// findings point at lines the operator edits. Without kubectl a minimal builder handles resources, namespace,
// name prefix/suffix, labels, annotations, images and generators; anything else (patches, components, replacements,
// helm charts) is an error asking for kubectl rather than a silently different result.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import type { CheckError, SourceLocation } from "./model.ts";
import { objectsOfDocument } from "./kubernetes.ts";
import type { KubeObject } from "./kubernetes.ts";
import { asArray, asRecord, asString, parseYamlFile } from "./yaml-source.ts";
import type { Path, YamlDocument } from "./yaml-source.ts";

export const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

export type KustomizeMode = "auto" | "kubectl" | "builtin";

export interface KustomizeBuild {
  readonly objects: KubeObject[];
  readonly errors: CheckError[];
  /** Every file read, as displayed. */
  readonly files: string[];
  /** Which builder ran. */
  readonly builder: "kubectl" | "builtin";
}

export function kustomizationFileIn(directory: string): string | undefined {
  for (const name of KUSTOMIZATION_FILES) if (existsSync(join(directory, name))) return join(directory, name);
  return undefined;
}

const SUPPORTED_BUILTIN = new Set(["apiVersion", "kind", "metadata", "resources", "bases", "namespace", "namePrefix", "nameSuffix", "commonLabels", "labels", "commonAnnotations", "images", "configMapGenerator", "secretGenerator", "generatorOptions", "sortOptions", "buildMetadata"]);

interface SourceObject {
  readonly object: KubeObject;
  readonly document: YamlDocument;
}

interface Resolution {
  readonly sources: SourceObject[];
  readonly errors: CheckError[];
  readonly files: string[];
  /** Objects after the builtin transformations (only meaningful for the builtin builder). */
  readonly built: KubeObject[];
  /** ConfigMap name (after prefix/suffix) -> key -> file on disk, from configMapGenerator. */
  readonly generated: Map<string, Map<string, string>>;
}

function kubectlAvailable(): boolean {
  const probe = spawnSync("kubectl", ["version", "--client"], { stdio: "ignore", timeout: 10_000 });
  return probe.error === undefined && probe.status === 0;
}

export function buildKustomization(directory: string, display: (path: string) => string, mode: KustomizeMode): KustomizeBuild {
  const useKubectl = mode === "kubectl" || (mode === "auto" && kubectlAvailable());
  const resolution: Resolution = { sources: [], errors: [], files: [], built: [], generated: new Map() };
  resolveKustomization(directory, display, resolution, new Set(), useKubectl ? "collect" : "build", 0);
  if (!useKubectl || resolution.errors.length > 0) {
    return { objects: resolution.built, errors: resolution.errors, files: resolution.files, builder: useKubectl ? "kubectl" : "builtin" };
  }
  const result = spawnSync("kubectl", ["kustomize", directory], { encoding: "utf8", timeout: 60_000, maxBuffer: 256 * 1024 * 1024 });
  const kustomizationFile = kustomizationFileIn(directory) ?? directory;
  const at: SourceLocation = { file: display(kustomizationFile), line: 1, column: 1 };
  if (result.error !== undefined || result.status !== 0) {
    const message = (result.stderr || result.error?.message || "failed").trim().split("\n").slice(-3).join(" ");
    return { objects: [], errors: [{ location: at, message: `kubectl kustomize: ${message}` }], files: resolution.files, builder: "kubectl" };
  }
  const built = parseYamlFile(`${display(kustomizationFile)} (built)`, result.stdout);
  const errors: CheckError[] = [...built.errors];
  const objects: KubeObject[] = [];
  for (const document of built.documents) {
    for (const object of objectsOfDocument(document, errors)) objects.push(mapBack(object, resolution, at));
  }
  return { objects, errors, files: resolution.files, builder: "kubectl" };
}

/** Points a built object's locations at the resource it came from (prefixes, suffixes and hashes aside). */
function mapBack(object: KubeObject, resolution: Resolution, fallback: SourceLocation): KubeObject {
  const candidates = resolution.sources.filter(({ object: source }) => source.kind === object.kind && object.objectName.includes(source.objectName));
  candidates.sort((a, b) => b.object.objectName.length - a.object.objectName.length || Number(b.object.namespace === object.namespace) - Number(a.object.namespace === object.namespace));
  const source = candidates[0];
  const generated = [...resolution.generated.entries()].find(([name]) => object.kind === "ConfigMap" && new RegExp(`(^|-)${escapeRegExp(name)}(-[a-z0-9]{10})?$`).test(object.objectName))?.[1];
  if (source === undefined) {
    return { ...object, file: fallback.file, locate: () => fallback, generatedFrom: generated, ignoreAnnotations: (object.ignoreAnnotations ?? []).map((annotation) => ({ ...annotation, location: fallback })) };
  }
  const locate = (path: Path) => source.object.locate(path);
  return {
    ...object,
    file: source.object.file,
    document: source.document,
    basePath: source.object.basePath,
    locate,
    generatedFrom: generated,
    ignoreAnnotations: (object.ignoreAnnotations ?? []).map((annotation) => ({ ...annotation, location: source.object.ignoreAnnotations?.[0]?.location ?? locate(["metadata", "annotations"]) })),
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function resolveKustomization(directory: string, display: (path: string) => string, resolution: Resolution, visiting: Set<string>, mode: "collect" | "build", depth: number): KubeObject[] {
  const file = kustomizationFileIn(directory);
  if (file === undefined) {
    resolution.errors.push({ location: { file: display(directory), line: 1, column: 1 }, message: "no kustomization.yaml in this directory" });
    return [];
  }
  if (visiting.has(directory) || depth > 20) {
    resolution.errors.push({ location: { file: display(file), line: 1, column: 1 }, message: "kustomization cycle" });
    return [];
  }
  visiting.add(directory);
  resolution.files.push(display(file));
  const parsed = parseYamlFile(display(file), readFileSync(file, "utf8"));
  resolution.errors.push(...parsed.errors);
  const document = parsed.documents[0];
  const kustomization = asRecord(document?.value) ?? {};
  if (document === undefined) return [];
  if (mode === "build") {
    for (const key of Object.keys(kustomization)) {
      if (!SUPPORTED_BUILTIN.has(key)) resolution.errors.push({ location: document.locate([key]), message: `"${key}" needs kubectl kustomize to build; install kubectl (Debian: kubernetes-client) so the checked objects match what is applied` });
    }
  }
  let objects: KubeObject[] = [];
  const entries = [...asArray(kustomization.resources), ...asArray(kustomization.bases)];
  entries.forEach((entry, index) => {
    const reference = asString(entry);
    if (reference === undefined) return;
    if (/^[a-z]+:\/\/|^git@|^github\.com\//.test(reference)) {
      resolution.errors.push({ location: document.locate(["resources", index]), message: `remote resource "${reference}" is not fetched; vendor it into the repository to check it` });
      return;
    }
    const target = resolve(directory, reference);
    if (!existsSync(target)) {
      resolution.errors.push({ location: document.locate(["resources", index]), message: `resource "${reference}" does not exist` });
      return;
    }
    if (statSync(target).isDirectory()) {
      objects.push(...resolveKustomization(target, display, resolution, visiting, mode, depth + 1));
      return;
    }
    resolution.files.push(display(target));
    const resourceFile = parseYamlFile(display(target), readFileSync(target, "utf8"));
    resolution.errors.push(...resourceFile.errors);
    for (const resourceDocument of resourceFile.documents) {
      for (const object of objectsOfDocument(resourceDocument, resolution.errors)) {
        resolution.sources.push({ object, document: resourceDocument });
        objects.push(object);
      }
    }
  });
  const prefix = asString(kustomization.namePrefix) ?? "";
  const suffix = asString(kustomization.nameSuffix) ?? "";
  for (const [generatorKey, kind] of [["configMapGenerator", "ConfigMap"], ["secretGenerator", "Secret"]] as const) {
    asArray(kustomization[generatorKey]).forEach((item, index) => {
      const generator = asRecord(item) ?? {};
      const name = asString(generator.name) ?? "generated";
      const data: Record<string, string> = {};
      const fromFiles = new Map<string, string>();
      for (const fileEntry of asArray(generator.files)) {
        const text = asString(fileEntry) ?? "";
        const [key, path] = text.includes("=") ? [text.slice(0, text.indexOf("=")), text.slice(text.indexOf("=") + 1)] : [text.slice(text.lastIndexOf("/") + 1), text];
        const full = resolve(directory, path);
        if (!existsSync(full)) {
          resolution.errors.push({ location: document.locate([generatorKey, index, "files"]), message: `generator file "${path}" does not exist` });
          continue;
        }
        data[key] = readFileSync(full, "utf8");
        fromFiles.set(key, full);
        resolution.files.push(display(full));
      }
      for (const literal of asArray(generator.literals)) {
        const text = asString(literal) ?? "";
        data[text.slice(0, text.indexOf("="))] = text.slice(text.indexOf("=") + 1);
      }
      if (kind === "ConfigMap" && fromFiles.size > 0) resolution.generated.set(`${prefix}${name}${suffix}`, fromFiles);
      if (mode !== "build") return;
      // A generator may name its own namespace (kustomize's GeneratorArgs); the kustomization's namespace still wins.
      const namespace = asString(generator.namespace);
      const value: Record<string, unknown> = { apiVersion: "v1", kind, metadata: namespace === undefined ? { name } : { name, namespace }, [kind === "Secret" ? "stringData" : "data"]: data };
      const locate = (path: Path) => document.locate([generatorKey, index, ...(path[0] === "metadata" ? ["name"] : [])]);
      objects.push({ apiVersion: "v1", kind, objectName: name, namespace: namespace ?? "default", value, basePath: [], file: document.file, name: `${kind}/${namespace ?? "default"}/${name}`, locate, generatedFrom: fromFiles });
    });
  }
  visiting.delete(directory);
  if (mode !== "build") return objects;
  objects = objects.map((object) => transform(object, kustomization));
  if (depth === 0) resolution.built.push(...objects);
  return objects;
}

/** The builtin transformations, applied to a copy. */
function transform(object: KubeObject, kustomization: Record<string, unknown>): KubeObject {
  const value = structuredClone(object.value);
  const metadata = (asRecord(value.metadata) ?? {}) as Record<string, unknown>;
  value.metadata = metadata;
  const prefix = asString(kustomization.namePrefix) ?? "";
  const suffix = asString(kustomization.nameSuffix) ?? "";
  const clusterScoped = object.namespace === "";
  if (!["Namespace", "CustomResourceDefinition"].includes(object.kind)) metadata.name = `${prefix}${asString(metadata.name) ?? ""}${suffix}`;
  const namespace = asString(kustomization.namespace);
  if (namespace !== undefined && !clusterScoped) metadata.namespace = namespace;
  const labels: Record<string, string> = {};
  for (const [key, label] of Object.entries(asRecord(kustomization.commonLabels) ?? {})) labels[key] = String(label);
  const templateLabels: Record<string, string> = { ...labels };
  for (const entry of asArray(kustomization.labels)) {
    const pairs = asRecord(asRecord(entry)?.pairs) ?? {};
    for (const [key, label] of Object.entries(pairs)) {
      labels[key] = String(label);
      if (asRecord(entry)?.includeTemplates === true || asRecord(entry)?.includeSelectors === true) templateLabels[key] = String(label);
    }
  }
  metadata.labels = { ...(asRecord(metadata.labels) ?? {}), ...labels };
  const annotations = asRecord(kustomization.commonAnnotations);
  if (annotations !== undefined) metadata.annotations = { ...(asRecord(metadata.annotations) ?? {}), ...annotations };
  const spec = asRecord(value.spec);
  const template = asRecord(spec?.template);
  if (template !== undefined && Object.keys(templateLabels).length > 0) {
    const templateMetadata = (asRecord(template.metadata) ?? {}) as Record<string, unknown>;
    template.metadata = templateMetadata;
    templateMetadata.labels = { ...(asRecord(templateMetadata.labels) ?? {}), ...templateLabels };
  }
  const images = asArray(kustomization.images).map((entry) => asRecord(entry) ?? {});
  if (images.length > 0) {
    const rewrite = (container: unknown) => {
      const record = asRecord(container);
      const image = asString(record?.image);
      if (record === undefined || image === undefined) return;
      const base = image.replace(/@.*$/, "").replace(/:[^:/]+$/, "");
      const rule = images.find((entry) => asString(entry.name) === base);
      if (rule === undefined) return;
      const name = asString(rule.newName) ?? base;
      const digest = asString(rule.digest);
      record.image = digest !== undefined ? `${name}@${digest}` : `${name}:${asString(rule.newTag) ?? (image.includes(":") ? image.slice(image.lastIndexOf(":") + 1) : "latest")}`;
    };
    const visit = (node: unknown) => {
      if (Array.isArray(node)) node.forEach(visit);
      const record = asRecord(node);
      if (record === undefined) return;
      for (const [key, child] of Object.entries(record)) {
        if ((key === "containers" || key === "initContainers" || key === "ephemeralContainers") && Array.isArray(child)) child.forEach(rewrite);
        visit(child);
      }
    };
    visit(value);
  }
  const objectName = asString(metadata.name) ?? object.objectName;
  const finalNamespace = clusterScoped ? "" : (asString(metadata.namespace) ?? "default");
  return { ...object, value, objectName, namespace: finalNamespace, name: finalNamespace === "" ? `${object.kind}/${objectName}` : `${object.kind}/${finalNamespace}/${objectName}` };
}

/** Whether `file` lies inside `directory` (for not checking a kustomize directory's files twice). */
export function isInside(file: string, directory: string): boolean {
  const path = relative(directory, file);
  return path !== "" && !path.startsWith("..") && !path.startsWith("/");
}

export { dirname };
