// Kubernetes rules. Pod rules run only on kinds that carry a pod spec (never on a Service or a CRD that happens to have
// `containers`), on every container kind (init, regular, ephemeral), with pod-level securityContext inherited the way
// the kubelet does it. Cross-object rules look at the whole set of inputs: NetworkPolicies against the pods they
// select, RBAC, Services and Ingresses in front of the agent, Secrets shared between the agent and other workloads.
// This file runs them in order; each family lives in kubernetes/<family>.ts.
import type { Collector } from "./collector.ts";
import { checkPodSecurityLabels, checkRbac } from "./kubernetes/cluster-access.ts";
import { checkExposure } from "./kubernetes/exposure.ts";
import { checkNetworkPolicies } from "./kubernetes/network-policy.ts";
import type { KubeObject } from "./kubernetes/objects.ts";
import { checkWorkload } from "./kubernetes/pod.ts";
import { SERVICE_ACCOUNT_KEYS, reportUnknownKeys } from "./kubernetes/unknown-keys.ts";
import { checkAgentVolumes, checkSharedSecrets } from "./kubernetes/volumes-secrets.ts";
import { workloadOf } from "./kubernetes/workload.ts";
import type { Workload } from "./kubernetes/workload.ts";
import { asArray, asRecord, asString } from "./yaml-source.ts";

export { objectsOfDocument } from "./kubernetes/objects.ts";
export type { KubeObject } from "./kubernetes/objects.ts";
export { isPinned } from "./kubernetes/pod.ts";

export interface KubernetesCheckHooks {
  /** Called for every ConfigMap key that may hold a Hermes config.yaml, with whether an agent workload mounts it. */
  readonly embeddedHermesConfig?: (object: KubeObject, key: string, mountedByAgent: boolean) => void;
}

export function checkKubernetes(objects: readonly KubeObject[], collector: Collector, hooks: KubernetesCheckHooks = {}): void {
  const serviceAccounts = new Map<string, KubeObject>();
  for (const object of objects) {
    if (object.kind === "ServiceAccount") {
      serviceAccounts.set(`${object.namespace}/${object.objectName}`, object);
      reportUnknownKeys(object, object.value, SERVICE_ACCOUNT_KEYS, [], "a ServiceAccount", collector);
    }
  }
  const workloads = objects.map(workloadOf).filter((workload): workload is Workload => workload !== undefined);
  for (const workload of workloads) checkWorkload(workload, { serviceAccounts }, collector);

  const claims = new Map<string, KubeObject>();
  for (const object of objects) if (object.kind === "PersistentVolumeClaim") claims.set(`${object.namespace}/${object.objectName}`, object);
  checkAgentVolumes(workloads, claims, collector);
  checkSharedSecrets(workloads, objects, collector);
  checkNetworkPolicies(objects, workloads, collector);
  checkPodSecurityLabels(objects, collector);
  checkRbac(objects, collector);
  checkExposure(objects, workloads, collector);

  if (hooks.embeddedHermesConfig !== undefined) {
    const mountedByAgent = agentConfigMaps(workloads);
    for (const object of objects) {
      if (object.kind !== "ConfigMap") continue;
      for (const [key, text] of Object.entries(asRecord(object.value.data) ?? {})) {
        if (/^config\.ya?ml$/.test(key) && typeof text === "string") hooks.embeddedHermesConfig(object, key, mountedByAgent.has(`${object.namespace}/${object.objectName}`));
      }
    }
  }
}

/** namespace/name of every ConfigMap an agent workload mounts, directly or through a projected volume. */
function agentConfigMaps(workloads: readonly Workload[]): Set<string> {
  const found = new Set<string>();
  for (const workload of workloads) {
    if (!workload.isAgent) continue;
    for (const item of asArray(workload.spec.volumes)) {
      const name = asString(asRecord(asRecord(item)?.configMap)?.name);
      if (name !== undefined) found.add(`${workload.object.namespace}/${name}`);
      for (const source of asArray(asRecord(asRecord(item)?.projected)?.sources)) {
        const projected = asString(asRecord(asRecord(source)?.configMap)?.name);
        if (projected !== undefined) found.add(`${workload.object.namespace}/${projected}`);
      }
    }
  }
  return found;
}
