// Kubernetes objects as check reads them: one YAML document (or a kind: List) becomes typed objects that know their
// namespace, their pod spec's path and where each of their fields sits in the file.
import type { IgnoreAnnotation, Subject } from "../collector.ts";
import type { CheckError, SourceLocation } from "../model.ts";
import { asArray, asRecord, asString } from "../yaml-source.ts";
import type { Path, YamlDocument } from "../yaml-source.ts";

export interface KubeObject extends Subject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly objectName: string;
  /** metadata.namespace, or "default" when absent (what `kubectl apply` without -n does on a fresh context). */
  readonly namespace: string;
  readonly value: Record<string, unknown>;
  /** The YAML document it was read from, when it has one (for embedded files such as a ConfigMap's config.yaml). */
  readonly document?: YamlDocument;
  /** Prefix of the object's path inside its document (kind: List items). */
  readonly basePath: Path;
  /** ConfigMap keys generated from files (kustomize configMapGenerator): key -> path of the file on disk. */
  readonly generatedFrom?: ReadonlyMap<string, string>;
}

export const IGNORE_ANNOTATION = "perimeter.dev/ignore";

const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass", "CustomResourceDefinition", "Node", "PriorityClass", "RuntimeClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "IngressClass", "APIService", "CSIDriver"]);

/** Kubernetes objects of one YAML document (expanding `kind: List`); anything that is not an object is an error. */
export function objectsOfDocument(document: YamlDocument, errors: CheckError[], locateOverride?: (path: Path) => SourceLocation): KubeObject[] {
  const root = asRecord(document.value);
  if (document.value === null || document.value === undefined) return [];
  if (root === undefined) {
    errors.push({ location: document.locate([]), message: `document ${document.index + 1} is not a Kubernetes object (a mapping with apiVersion and kind)` });
    return [];
  }
  if (root.kind === "List" || (typeof root.kind === "string" && root.kind.endsWith("List") && Array.isArray(root.items))) {
    return asArray(root.items).flatMap((item, index) => {
      const object = asRecord(item);
      if (object === undefined) {
        errors.push({ location: document.locate(["items", index]), message: `items[${index}] is not a Kubernetes object` });
        return [];
      }
      return toObject(document, object, ["items", index], errors, locateOverride);
    });
  }
  return toObject(document, root, [], errors, locateOverride);
}

function toObject(document: YamlDocument, value: Record<string, unknown>, basePath: Path, errors: CheckError[], locateOverride?: (path: Path) => SourceLocation): KubeObject[] {
  const apiVersion = asString(value.apiVersion);
  const kind = asString(value.kind);
  const metadata = asRecord(value.metadata);
  if (apiVersion === undefined || kind === undefined) {
    errors.push({ location: document.locate(basePath), message: `document ${document.index + 1} has no ${apiVersion === undefined ? "apiVersion" : "kind"}: not a Kubernetes object` });
    return [];
  }
  const objectName = asString(metadata?.name) ?? asString(metadata?.generateName) ?? "(unnamed)";
  const namespace = CLUSTER_SCOPED.has(kind) ? "" : (asString(metadata?.namespace) ?? "default");
  const locate = locateOverride ?? ((path: Path) => document.locate([...basePath, ...path]));
  return [
    {
      apiVersion,
      kind,
      objectName,
      namespace,
      value,
      document,
      basePath,
      file: document.file,
      name: namespace === "" ? `${kind}/${objectName}` : `${kind}/${namespace}/${objectName}`,
      locate,
      ignoreAnnotations: ignoreAnnotationsOf(value, locate),
    },
  ];
}

function ignoreAnnotationsOf(value: Record<string, unknown>, locate: (path: Path) => SourceLocation): IgnoreAnnotation[] {
  const found: IgnoreAnnotation[] = [];
  const add = (path: Path, annotations: Record<string, unknown> | undefined) => {
    const text = asString(annotations?.[IGNORE_ANNOTATION]);
    if (text !== undefined) found.push({ text, location: locate([...path, IGNORE_ANNOTATION]) });
  };
  add(["metadata", "annotations"], asRecord(asRecord(value.metadata)?.annotations));
  const template = podTemplateMetadataPath(asString(value.kind) ?? "");
  if (template !== undefined) add([...template, "annotations"], asRecord(asRecord(getAt(value, template))?.annotations));
  return found;
}

export function getAt(value: unknown, path: Path): unknown {
  let current = value;
  for (const segment of path) {
    if (typeof segment === "number") current = Array.isArray(current) ? current[segment] : undefined;
    else current = asRecord(current)?.[segment];
    if (current === undefined) return undefined;
  }
  return current;
}


const POD_SPEC_PATHS: Record<string, Path> = {
  Pod: ["spec"],
  Deployment: ["spec", "template", "spec"],
  StatefulSet: ["spec", "template", "spec"],
  DaemonSet: ["spec", "template", "spec"],
  ReplicaSet: ["spec", "template", "spec"],
  ReplicationController: ["spec", "template", "spec"],
  Job: ["spec", "template", "spec"],
  CronJob: ["spec", "jobTemplate", "spec", "template", "spec"],
  PodTemplate: ["template", "spec"],
};

export function podSpecPath(kind: string): Path | undefined {
  return POD_SPEC_PATHS[kind];
}

function podTemplateMetadataPath(kind: string): Path | undefined {
  const spec = POD_SPEC_PATHS[kind];
  return spec === undefined || kind === "Pod" ? undefined : [...spec.slice(0, -1), "metadata"];
}
