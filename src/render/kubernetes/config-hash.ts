// Changes take effect on `kubectl apply -k`: a Deployment rolls only when its pod template changes, and a ConfigMap
// the pod mounts is not part of the template. Each pod template therefore carries a hash of exactly the ConfigMap
// data its pod reads (the mounted keys, env references), so an edit rolls the workloads that read it and no other.
// Secret values are never known at render time: rotating one is a `kubectl rollout restart` (RUNBOOK.md).
import { createHash } from "node:crypto";

export const CONFIG_HASH_ANNOTATION = "perimeter.dev/config-hash";

interface ConfigMapLike {
  kind: string;
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, string>;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- walks pod specs of several typed builders */
type Loose = any;

/** [configmap, key] pairs a pod spec reads; key undefined means every key of that ConfigMap. */
function configReferences(pod: Loose): Array<[string, string | undefined]> {
  const references: Array<[string, string | undefined]> = [];
  const fromSource = (source: Loose) => {
    if (source?.name === undefined) return;
    const items: Loose[] | undefined = source.items;
    if (items === undefined || items.length === 0) references.push([source.name, undefined]);
    else for (const item of items) references.push([source.name, item.key]);
  };
  for (const volume of pod?.volumes ?? []) {
    fromSource(volume.configMap);
    for (const projected of volume.projected?.sources ?? []) fromSource(projected.configMap);
  }
  for (const container of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]) {
    for (const entry of container.env ?? []) {
      const reference = entry.valueFrom?.configMapKeyRef;
      if (reference?.name !== undefined) references.push([reference.name, reference.key]);
    }
    for (const source of container.envFrom ?? []) if (source.configMapRef?.name !== undefined) references.push([source.configMapRef.name, undefined]);
  }
  return references;
}

/** sha256 over the data a pod reads, or undefined when it reads no ConfigMap. */
export function podConfigHash(pod: Loose, namespace: string, configMaps: readonly ConfigMapLike[]): string | undefined {
  const references = configReferences(pod);
  if (references.length === 0) return undefined;
  const entries = new Set<string>();
  for (const [name, key] of references) {
    const found = configMaps.find((object) => object.metadata?.name === name && object.metadata?.namespace === namespace);
    // A ConfigMap from outside the render: its name is all render knows, so only renaming it rolls the pod.
    if (found === undefined) {
      entries.add(JSON.stringify([name, key ?? "*", null]));
      continue;
    }
    const data = found.data ?? {};
    for (const dataKey of key === undefined ? Object.keys(data) : [key]) entries.add(JSON.stringify([name, dataKey, data[dataKey] ?? null]));
  }
  return createHash("sha256").update([...entries].sort().join("\n")).digest("hex");
}

/** Writes the annotation into the pod template of every Deployment among `objects`. */
export function annotateConfigHashes(objects: readonly Loose[]): void {
  const configMaps = objects.filter((object) => object.kind === "ConfigMap") as ConfigMapLike[];
  for (const object of objects) {
    if (object.kind !== "Deployment") continue;
    const template = object.spec?.template;
    const hash = podConfigHash(template?.spec, object.metadata?.namespace, configMaps);
    if (template === undefined || hash === undefined) continue;
    template.metadata = { ...(template.metadata ?? {}), annotations: { ...(template.metadata?.annotations ?? {}), [CONFIG_HASH_ANNOTATION]: hash } };
  }
}
