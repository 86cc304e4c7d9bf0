// Kubernetes rules. Pod rules run only on kinds that carry a pod spec (never on a Service or a CRD that happens to have
// `containers`), on every container kind (init, regular, ephemeral), with pod-level securityContext inherited the way
// the kubelet does it. Cross-object rules look at the whole set of inputs: NetworkPolicies against the pods they
// select, RBAC, Services and Ingresses in front of the agent, Secrets shared between the agent and other workloads.
// This file runs them in order; each family lives in kubernetes/<family>.ts.
import type { Collector } from "./collector.ts";
import { checkPodSecurityLabels, checkRbac } from "./kubernetes/cluster-access.ts";
import { checkConfigMapValue, configMapKeys } from "./kubernetes/configmaps.ts";
import type { ConfigMapKey } from "./kubernetes/configmaps.ts";
import { checkExposure } from "./kubernetes/exposure.ts";
import { checkNetworkPolicies } from "./kubernetes/network-policy.ts";
import type { KubeObject } from "./kubernetes/objects.ts";
import { checkWorkload } from "./kubernetes/pod.ts";
import { SERVICE_ACCOUNT_KEYS, reportUnknownKeys } from "./kubernetes/unknown-keys.ts";
import { checkAgentVolumes, checkSharedSecrets } from "./kubernetes/volumes-secrets.ts";
import { workloadOf } from "./kubernetes/workload.ts";
import type { Workload } from "./kubernetes/workload.ts";

export { objectsOfDocument } from "./kubernetes/objects.ts";
export type { KubeObject } from "./kubernetes/objects.ts";
export { isPinned } from "./kubernetes/pod.ts";
export { checkConfigMapEnv, checkConfigMapValue } from "./kubernetes/configmaps.ts";
export type { ConfigMapKey } from "./kubernetes/configmaps.ts";

export interface KubernetesCheckHooks {
  /** Called for every ConfigMap key that may hold a Hermes config.yaml (the entry says whether an agent mounts it). */
  readonly embeddedHermesConfig?: (entry: ConfigMapKey) => void;
  /** Called for every ConfigMap key holding a .env file; it reads the text and hands the variables to checkConfigMapEnv. */
  readonly embeddedEnvFile?: (entry: ConfigMapKey) => void;
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

  for (const entry of configMapKeys(objects, workloads)) {
    if (entry.holds === "hermes-config") hooks.embeddedHermesConfig?.(entry);
    else if (entry.holds === "env") hooks.embeddedEnvFile?.(entry);
    else checkConfigMapValue(entry, collector);
  }
}
