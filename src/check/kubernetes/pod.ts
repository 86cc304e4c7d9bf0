// The pod rules for one workload: token automount, host namespaces and mounts, and each container's security context,
// resources, image and (for the agent) environment, with pod-level settings inherited the way the kubelet does it.
import type { Collector } from "../collector.ts";
import { UNKNOWN_VALUE, checkHermesEnvironment, commandWords, exposedDashboardHost } from "../hermes-facts.ts";
import type { EnvEntry } from "../hermes-facts.ts";
import { asArray, asRecord, asString } from "../yaml-source.ts";
import type { KubeObject } from "./objects.ts";
import { checkUnknownKeys } from "./unknown-keys.ts";
import type { Container, Workload } from "./workload.ts";

/** ServiceAccounts among the inputs, by namespace/name: whether a pod gets a token depends on its account too. */
export interface PodRuleContext {
  readonly serviceAccounts: ReadonlyMap<string, KubeObject>;
}

const RUNTIME_SOCKETS = ["/var/run/docker.sock", "/run/docker.sock", "/var/run/containerd/containerd.sock", "/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/run/crio/crio.sock", "/var/run/cri-dockerd.sock", "/run/podman/podman.sock", "/var/run", "/run", "/var/run/docker", "/run/containerd"];

function normalisePath(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? "/" : trimmed;
}

const ALLOWED_CAPABILITY = "NET_BIND_SERVICE";

/** The pod rules for one workload. */
export function checkWorkload(workload: Workload, context: PodRuleContext, collector: Collector): void {
  const { object, spec, specPath } = workload;
  const podSecurity = asRecord(spec.securityContext) ?? {};

  // Token automount: the pod's own setting wins; otherwise its ServiceAccount's; otherwise Kubernetes mounts it.
  const podAutomount = spec.automountServiceAccountToken;
  const accountName = asString(spec.serviceAccountName) ?? asString(spec.serviceAccount) ?? "default";
  const account = context.serviceAccounts.get(`${object.namespace}/${accountName}`);
  if (podAutomount === true) {
    collector.add("K8S-SA-TOKEN-AUTOMOUNT", object, [...specPath, "automountServiceAccountToken"], "automountServiceAccountToken: true mounts the ServiceAccount token into every container");
  } else if (podAutomount !== false && account?.value.automountServiceAccountToken !== false) {
    const why = account === undefined ? `ServiceAccount "${accountName}" is not among the inputs, and Kubernetes mounts its token by default` : `its ServiceAccount "${accountName}" does not set automountServiceAccountToken: false either`;
    collector.add("K8S-SA-TOKEN-AUTOMOUNT", object, specPath, `the pod does not set automountServiceAccountToken: false and ${why}`);
  }

  for (const field of ["hostNetwork", "hostPID", "hostIPC"] as const) {
    if (spec[field] === true) collector.add("K8S-HOST-NAMESPACES", object, [...specPath, field], `${field}: true shares the node's ${field.slice(4)} namespace`);
  }

  asArray(spec.volumes).forEach((item, index) => {
    const volume = asRecord(item);
    const hostPath = asString(asRecord(volume?.hostPath)?.path);
    if (hostPath === undefined) return;
    const path = [...specPath, "volumes", index, "hostPath"];
    if (RUNTIME_SOCKETS.includes(normalisePath(hostPath))) {
      collector.add("K8S-DOCKER-SOCKET", object, path, `volume "${asString(volume?.name) ?? index}" mounts the container runtime socket ${hostPath} from the node`);
    } else {
      collector.add("K8S-HOSTPATH", object, path, `volume "${asString(volume?.name) ?? index}" mounts ${hostPath} from the node`);
    }
  });

  checkRootGroup(workload, podSecurity, collector);
  for (const container of workload.containers) checkContainer(workload, container, podSecurity, collector);
  checkUnknownKeys(object, spec, specPath, collector);
}

function checkContainer(workload: Workload, container: Container, podSecurity: Record<string, unknown>, collector: Collector): void {
  const { object } = workload;
  const { value, path, name, kind } = container;
  const security = asRecord(value.securityContext) ?? {};
  const securityPath = [...path, "securityContext"];
  const label = `${kind === "containers" ? "container" : kind === "initContainers" ? "init container" : "ephemeral container"} "${name}"`;

  if (security.privileged === true) collector.add("K8S-PRIVILEGED", object, [...securityPath, "privileged"], `${label} runs privileged`);
  if (security.allowPrivilegeEscalation !== false) {
    collector.add(
      "K8S-PRIV-ESCALATION",
      object,
      security.allowPrivilegeEscalation === undefined ? securityPath : [...securityPath, "allowPrivilegeEscalation"],
      `${label} ${security.allowPrivilegeEscalation === true ? "sets allowPrivilegeEscalation: true" : "does not set allowPrivilegeEscalation: false"}`,
    );
  }

  const capabilities = asRecord(security.capabilities) ?? {};
  const added = asArray(capabilities.add).map((entry) => String(entry).toUpperCase().replace(/^CAP_/, ""));
  const dangerous = added.filter((capability) => capability !== ALLOWED_CAPABILITY);
  if (dangerous.length > 0) collector.add("K8S-CAPABILITIES-ADDED", object, [...securityPath, "capabilities", "add"], `${label} adds ${dangerous.join(", ")}`);
  const dropped = asArray(capabilities.drop).map((entry) => String(entry).toUpperCase().replace(/^CAP_/, ""));
  if (!dropped.includes("ALL")) {
    const dropPath = capabilities.drop === undefined ? securityPath : [...securityPath, "capabilities", "drop"];
    if (container.isAgent) {
      // The s6 init needs CHOWN/SETUID/SETGID (seed 003); raw sockets it never needs.
      if (!dropped.includes("NET_RAW")) collector.add("K8S-CAPABILITIES-NOT-DROPPED", object, dropPath, `agent ${label} does not drop NET_RAW (the Hermes image cannot drop ALL, but raw sockets serve only scanning and spoofing)`);
    } else {
      collector.add("K8S-CAPABILITIES-NOT-DROPPED", object, dropPath, `${label} does not drop ALL capabilities`);
    }
  }

  const seccomp = asString(asRecord(security.seccompProfile)?.type) ?? asString(asRecord(podSecurity.seccompProfile)?.type);
  if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") {
    const fromContainer = asRecord(security.seccompProfile) !== undefined;
    collector.add(
      "K8S-SECCOMP",
      object,
      fromContainer ? [...securityPath, "seccompProfile"] : path,
      seccomp === undefined ? `${label} has no seccomp profile (neither its own nor the pod's)` : `${label} runs with seccomp ${seccomp}${fromContainer ? "" : " inherited from the pod"}`,
    );
  }

  if (!container.isAgent) {
    const runAsNonRoot = security.runAsNonRoot ?? podSecurity.runAsNonRoot;
    const runAsUser = security.runAsUser ?? podSecurity.runAsUser;
    const nonRoot = (runAsNonRoot === true && runAsUser !== 0) || (typeof runAsUser === "number" && runAsUser > 0 && runAsNonRoot !== false);
    if (!nonRoot) {
      collector.add(
        "K8S-RUN-AS-ROOT",
        object,
        security.runAsUser !== undefined || security.runAsNonRoot !== undefined ? securityPath : path,
        runAsUser === 0 ? `${label} runs as UID 0` : `${label} may run as root: neither it nor the pod sets runAsNonRoot: true or a non-zero runAsUser`,
      );
    }
    if (security.readOnlyRootFilesystem !== true) {
      collector.add("K8S-READONLY-ROOTFS", object, security.readOnlyRootFilesystem === undefined ? securityPath : [...securityPath, "readOnlyRootFilesystem"], `${label} has a writable root filesystem`);
    }
  }

  if (kind !== "ephemeralContainers") {
    const resources = asRecord(value.resources) ?? {};
    const missing: string[] = [];
    for (const group of ["requests", "limits"] as const) {
      for (const resource of ["cpu", "memory"] as const) {
        if (asRecord(resources[group])?.[resource] === undefined) missing.push(`${group}.${resource}`);
      }
    }
    if (missing.length > 0) collector.add("K8S-RESOURCES", object, value.resources === undefined ? path : [...path, "resources"], `${label} has no ${missing.join(", ")}`);
  }

  const image = asString(value.image);
  if (image !== undefined && !isPinned(image)) {
    collector.add("K8S-IMAGE-TAG", object, [...path, "image"], `${label} uses ${image}: ${image.includes(":latest") ? "':latest' floats" : "no tag means ':latest'"}`);
  }
  if (container.isAgent) {
    // Hermes' environment rules on what the manifest shows; values from Secrets and ConfigMaps are not visible here.
    const environment: EnvEntry[] = asArray(value.env).flatMap((item, index) => {
      const entry = asRecord(item);
      const name = asString(entry?.name);
      if (name === undefined) return [];
      const literal = entry?.valueFrom === undefined ? (asString(entry?.value) ?? "") : UNKNOWN_VALUE;
      return [{ name, value: literal, subject: object, path: [...path, "env", index] }];
    });
    checkHermesEnvironment(environment, { complete: false }, collector);
    asArray(value.ports).forEach((item, index) => {
      const port = asRecord(item);
      if (port?.hostPort !== undefined) collector.add("K8S-AGENT-EXPOSED", object, [...path, "ports", index, "hostPort"], `agent ${label} publishes hostPort ${String(port.hostPort)} on the node`);
    });
    const dashboardHost = exposedDashboardHost([...commandWords(value.command), ...commandWords(value.args)]);
    if (dashboardHost !== undefined) collector.add("HERMES-DASHBOARD-EXPOSED", object, [...path, "args"], `agent ${label} serves the dashboard on ${dashboardHost}`);
  }
}

/** Group 0 wherever a pod or container sets it; an unset group is the image's choice and not judged. */
function checkRootGroup(workload: Workload, podSecurity: Record<string, unknown>, collector: Collector): void {
  const { object, specPath } = workload;
  const podPath = [...specPath, "securityContext"];
  if (podSecurity.runAsGroup === 0) {
    const inheriting = workload.containers.filter((container) => asRecord(container.value.securityContext)?.runAsGroup === undefined).map((container) => container.name);
    if (inheriting.length > 0) collector.add("K8S-ROOT-GROUP", object, [...podPath, "runAsGroup"], `runAsGroup: 0 on the pod runs ${inheriting.join(", ")} in the root group`);
  }
  if (podSecurity.fsGroup === 0) collector.add("K8S-ROOT-GROUP", object, [...podPath, "fsGroup"], "fsGroup: 0 makes every volume of the pod root-group owned and adds group 0 to every container");
  if (asArray(podSecurity.supplementalGroups).some((group) => group === 0)) collector.add("K8S-ROOT-GROUP", object, [...podPath, "supplementalGroups"], "supplementalGroups holds 0: every container joins the root group");
  for (const container of workload.containers) {
    if (asRecord(container.value.securityContext)?.runAsGroup === 0) collector.add("K8S-ROOT-GROUP", object, [...container.path, "securityContext", "runAsGroup"], `container "${container.name}" sets runAsGroup: 0`);
  }
}

/** A tag other than latest, or a digest. */
export function isPinned(image: string): boolean {
  if (/@sha256:[a-f0-9]{64}$/.test(image)) return true;
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  const colon = lastSegment.indexOf(":");
  if (colon < 0) return false;
  const tag = lastSegment.slice(colon + 1);
  return tag !== "" && tag !== "latest";
}

