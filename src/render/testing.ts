// Helpers shared by the render tests: the bundled examples, rendered and parsed back from the bytes render writes.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, parse } from "yaml";
import { loadConfig, parseConfig } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { renderTarget } from "./render.ts";
import type { Target } from "./plan.ts";

export const EXAMPLES = ["k3s-telegram-minimax", "kubernetes-full", "compose-vps"] as const;
export type Example = (typeof EXAMPLES)[number];
// The container targets every example renders for; the VPS target needs a host: section (src/render/vps).
export const TARGETS: ReadonlyArray<Exclude<Target, "vps">> = ["kubernetes", "compose"];

export function examplePath(example: string): string {
  return fileURLToPath(new URL(`../../examples/${example}.yaml`, import.meta.url));
}

export function exampleConfig(example: string): PerimeterConfig {
  return loadConfig(examplePath(example));
}

/** A config from text, for tests that vary one setting. */
export function configFrom(text: string): PerimeterConfig {
  return parseConfig(text, "test.yaml");
}

export function exampleText(example: string): string {
  return readFileSync(examplePath(example), "utf8");
}

export function renderedFiles(config: PerimeterConfig, target: Target): Map<string, string> {
  return new Map(renderTarget(config, target).files.map((file) => [file.path, file.content]));
}

// The shape tests read; every field optional because the parsed YAML is untyped input.
export interface AnyObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** Every Kubernetes object of a render, parsed from the manifest files (not kustomization.yaml). */
export function manifestObjects(files: Map<string, string>): AnyObject[] {
  const objects: AnyObject[] = [];
  for (const [path, content] of files) {
    if (!path.endsWith(".yaml") || path === "kustomization.yaml") continue;
    for (const document of parseAllDocuments(content, { version: "1.1" })) {
      if (document.errors.length > 0) throw new Error(`${path}: ${document.errors[0]?.message}`);
      objects.push(document.toJS() as AnyObject);
    }
  }
  return objects;
}

export function find(objects: readonly AnyObject[], kind: string, name: string, namespace?: string): AnyObject {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name && (namespace === undefined || object.metadata.namespace === namespace));
  if (found === undefined) throw new Error(`no ${kind} ${namespace === undefined ? "" : `${namespace}/`}${name} in the render`);
  return found;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- tests walk untyped manifests */
export type Loose = any;

/** The pod spec of a workload object (Deployment or Job), or undefined. */
export function podSpec(object: AnyObject): Loose {
  const spec = object.spec as Loose;
  return spec?.template?.spec;
}

export function containersOf(object: AnyObject): Loose[] {
  const pod = podSpec(object);
  return pod === undefined ? [] : [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
}

export function yamlOf(text: string): Loose {
  return parse(text, { version: "1.1" });
}

/** A Compose service's network names, from the short (list) or long (mapping, with aliases) form. */
export function composeNetworks(service: Loose): string[] {
  const networks = service?.networks ?? [];
  return Array.isArray(networks) ? networks : Object.keys(networks);
}
