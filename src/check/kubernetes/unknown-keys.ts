// Unknown keys where a typo silently drops a protection: Kubernetes ignores a misspelt field, so the setting is simply
// not applied.
import { closest } from "../../config/index.ts";
import type { Collector } from "../collector.ts";
import { asArray, asRecord } from "../yaml-source.ts";
import type { Path } from "../yaml-source.ts";
import type { KubeObject } from "./objects.ts";

const POD_SPEC_KEYS = ["activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers", "dnsConfig", "dnsPolicy", "enableServiceLinks", "ephemeralContainers", "hostAliases", "hostIPC", "hostNetwork", "hostPID", "hostUsers", "hostname", "hostnameOverride", "imagePullSecrets", "initContainers", "nodeName", "nodeSelector", "os", "overhead", "preemptionPolicy", "priority", "priorityClassName", "readinessGates", "resourceClaims", "resources", "restartPolicy", "runtimeClassName", "schedulerName", "schedulingGates", "securityContext", "serviceAccount", "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace", "subdomain", "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints", "volumes"];
const CONTAINER_KEYS = ["args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe", "name", "ports", "readinessProbe", "resizePolicy", "resources", "restartPolicy", "restartPolicyRules", "securityContext", "startupProbe", "stdin", "stdinOnce", "targetContainerName", "terminationMessagePath", "terminationMessagePolicy", "tty", "volumeDevices", "volumeMounts", "workingDir"];
const CONTAINER_SECURITY_KEYS = ["allowPrivilegeEscalation", "appArmorProfile", "capabilities", "privileged", "procMount", "readOnlyRootFilesystem", "runAsGroup", "runAsNonRoot", "runAsUser", "seLinuxOptions", "seccompProfile", "windowsOptions"];
const POD_SECURITY_KEYS = ["appArmorProfile", "fsGroup", "fsGroupChangePolicy", "runAsGroup", "runAsNonRoot", "runAsUser", "seLinuxChangePolicy", "seLinuxOptions", "seccompProfile", "supplementalGroups", "supplementalGroupsPolicy", "sysctls", "windowsOptions"];
const CAPABILITY_KEYS = ["add", "drop"];
const SECCOMP_KEYS = ["type", "localhostProfile"];
export const SERVICE_ACCOUNT_KEYS = ["apiVersion", "kind", "metadata", "automountServiceAccountToken", "imagePullSecrets", "secrets"];
export const NETWORK_POLICY_SPEC_KEYS = ["podSelector", "policyTypes", "ingress", "egress"];
export const NETWORK_POLICY_RULE_KEYS = { ingress: ["from", "ports"], egress: ["to", "ports"] } as const;
export const NETWORK_POLICY_PEER_KEYS = ["ipBlock", "namespaceSelector", "podSelector"];

export function reportUnknownKeys(object: KubeObject, record: Record<string, unknown> | undefined, known: readonly string[], path: Path, where: string, collector: Collector): void {
  if (record === undefined) return;
  for (const key of Object.keys(record)) {
    if (known.includes(key)) continue;
    const suggestion = closest(key, known);
    collector.add("K8S-UNKNOWN-KEY", object, [...path, key], `unknown key "${key}" in ${where}${suggestion !== undefined ? ` — did you mean "${suggestion}"?` : ""}; Kubernetes drops it, so the setting is not applied`);
  }
}

export function checkUnknownKeys(object: KubeObject, spec: Record<string, unknown>, specPath: Path, collector: Collector): void {
  reportUnknownKeys(object, spec, POD_SPEC_KEYS, specPath, "the pod spec", collector);
  const podSecurity = asRecord(spec.securityContext);
  reportUnknownKeys(object, podSecurity, POD_SECURITY_KEYS, [...specPath, "securityContext"], "the pod securityContext", collector);
  reportUnknownKeys(object, asRecord(podSecurity?.seccompProfile), SECCOMP_KEYS, [...specPath, "securityContext", "seccompProfile"], "seccompProfile", collector);
  for (const kind of ["initContainers", "containers", "ephemeralContainers"] as const) {
    asArray(spec[kind]).forEach((item, index) => {
      const container = asRecord(item);
      const path = [...specPath, kind, index];
      reportUnknownKeys(object, container, CONTAINER_KEYS, path, "a container", collector);
      const security = asRecord(container?.securityContext);
      reportUnknownKeys(object, security, CONTAINER_SECURITY_KEYS, [...path, "securityContext"], "a container securityContext", collector);
      reportUnknownKeys(object, asRecord(security?.capabilities), CAPABILITY_KEYS, [...path, "securityContext", "capabilities"], "capabilities", collector);
      reportUnknownKeys(object, asRecord(security?.seccompProfile), SECCOMP_KEYS, [...path, "securityContext", "seccompProfile"], "seccompProfile", collector);
    });
  }
}

