// Kubernetes rules. Pod rules run only on kinds that carry a pod spec (never on a Service or a CRD that happens to have
// `containers`), on every container kind (init, regular, ephemeral), with pod-level securityContext inherited the way
// the kubelet does it. Cross-object rules look at the whole set of inputs: NetworkPolicies against the pods they
// select, RBAC, Services and Ingresses in front of the agent, Secrets shared between the agent and other workloads.
import { closest } from "../config/index.ts";
import type { Collector, IgnoreAnnotation, Origin, Subject } from "./collector.ts";
import type { CheckError, SourceLocation } from "./model.ts";
import { UNKNOWN_VALUE, checkHermesEnvironment, commandWords, exposedDashboardHost, hasAgentLabels, isAgentImage, isProviderKey, runsGateway } from "./hermes-facts.ts";
import type { EnvEntry } from "./hermes-facts.ts";
import { builtInClusterRoles, clusterRoleView, effectiveClusterRoleSources, grantField, grantsEverything, grantsOf, policyRuleOf, powersOfRule, subjectsOf, wildcardField } from "./rbac.ts";
import type { ClusterRoleView, PolicyRule, RuleSource } from "./rbac.ts";
import { asArray, asRecord, asString } from "./yaml-source.ts";
import type { Path, YamlDocument } from "./yaml-source.ts";

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

// ---------------------------------------------------------------------------------------------------------------
// Pods

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

type ContainerKind = "initContainers" | "containers" | "ephemeralContainers";

interface Container {
  readonly kind: ContainerKind;
  readonly index: number;
  readonly value: Record<string, unknown>;
  readonly path: Path;
  readonly name: string;
  readonly isAgent: boolean;
}

export interface Workload {
  readonly object: KubeObject;
  readonly specPath: Path;
  readonly spec: Record<string, unknown>;
  readonly labels: Record<string, unknown>;
  readonly labelsPath: Path;
  readonly containers: readonly Container[];
  readonly isAgent: boolean;
  /** How many pods run at once: replicas, or many for a DaemonSet. */
  readonly replicas: number;
}

function workloadOf(object: KubeObject): Workload | undefined {
  const specPath = podSpecPath(object.kind);
  if (specPath === undefined) return undefined;
  const spec = asRecord(getAt(object.value, specPath));
  if (spec === undefined) return undefined;
  const labelsPath = object.kind === "Pod" ? ["metadata", "labels"] : [...specPath.slice(0, -1), "metadata", "labels"];
  const labels = asRecord(getAt(object.value, labelsPath)) ?? {};
  const raw: Array<Omit<Container, "isAgent"> & { matches: boolean }> = [];
  for (const kind of ["initContainers", "containers", "ephemeralContainers"] as const) {
    asArray(spec[kind]).forEach((item, index) => {
      const value = asRecord(item);
      if (value === undefined) return;
      const words = [...commandWords(value.command), ...commandWords(value.args)];
      // Only regular containers run the gateway under s6: an init container with the agent's image runs a command
      // instead of /init, so it gets no exemption.
      const matches = kind === "containers" && (isAgentImage(asString(value.image)) || runsGateway(words));
      raw.push({ kind, index, value, path: [...specPath, kind, index], name: asString(value.name) ?? `${kind}[${index}]`, matches });
    });
  }
  const byContainer = raw.some((container) => container.matches);
  const usesAgentImage = raw.some((container) => isAgentImage(asString(container.value.image)));
  const byLabel = hasAgentLabels(labels) || hasAgentLabels(asRecord(asRecord(object.value.metadata)?.labels));
  const isAgent = byContainer || byLabel || usesAgentImage;
  // Recognised by label alone: every regular container is the agent's.
  const containers = raw.map(({ matches, ...container }) => ({ ...container, isAgent: byContainer ? matches : byLabel && container.kind === "containers" }));
  const replicasValue = getAt(object.value, ["spec", "replicas"]);
  const replicas = object.kind === "DaemonSet" ? Infinity : object.kind === "Pod" || object.kind === "Job" || object.kind === "CronJob" || object.kind === "PodTemplate" ? 1 : typeof replicasValue === "number" ? replicasValue : 1;
  return { object, specPath, spec, labels, labelsPath, containers, isAgent, replicas };
}

const RUNTIME_SOCKETS = ["/var/run/docker.sock", "/run/docker.sock", "/var/run/containerd/containerd.sock", "/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/run/crio/crio.sock", "/var/run/cri-dockerd.sock", "/run/podman/podman.sock", "/var/run", "/run", "/var/run/docker", "/run/containerd"];

function normalisePath(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? "/" : trimmed;
}

const ALLOWED_CAPABILITY = "NET_BIND_SERVICE";

/** The pod rules for one workload. */
function checkWorkload(workload: Workload, context: KubeContext, collector: Collector): void {
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

// ---------------------------------------------------------------------------------------------------------------
// Unknown keys where a typo silently drops a protection

const POD_SPEC_KEYS = ["activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers", "dnsConfig", "dnsPolicy", "enableServiceLinks", "ephemeralContainers", "hostAliases", "hostIPC", "hostNetwork", "hostPID", "hostUsers", "hostname", "hostnameOverride", "imagePullSecrets", "initContainers", "nodeName", "nodeSelector", "os", "overhead", "preemptionPolicy", "priority", "priorityClassName", "readinessGates", "resourceClaims", "resources", "restartPolicy", "runtimeClassName", "schedulerName", "schedulingGates", "securityContext", "serviceAccount", "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace", "subdomain", "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints", "volumes"];
const CONTAINER_KEYS = ["args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe", "name", "ports", "readinessProbe", "resizePolicy", "resources", "restartPolicy", "restartPolicyRules", "securityContext", "startupProbe", "stdin", "stdinOnce", "targetContainerName", "terminationMessagePath", "terminationMessagePolicy", "tty", "volumeDevices", "volumeMounts", "workingDir"];
const CONTAINER_SECURITY_KEYS = ["allowPrivilegeEscalation", "appArmorProfile", "capabilities", "privileged", "procMount", "readOnlyRootFilesystem", "runAsGroup", "runAsNonRoot", "runAsUser", "seLinuxOptions", "seccompProfile", "windowsOptions"];
const POD_SECURITY_KEYS = ["appArmorProfile", "fsGroup", "fsGroupChangePolicy", "runAsGroup", "runAsNonRoot", "runAsUser", "seLinuxChangePolicy", "seLinuxOptions", "seccompProfile", "supplementalGroups", "supplementalGroupsPolicy", "sysctls", "windowsOptions"];
const CAPABILITY_KEYS = ["add", "drop"];
const SECCOMP_KEYS = ["type", "localhostProfile"];
const SERVICE_ACCOUNT_KEYS = ["apiVersion", "kind", "metadata", "automountServiceAccountToken", "imagePullSecrets", "secrets"];
const NETWORK_POLICY_SPEC_KEYS = ["podSelector", "policyTypes", "ingress", "egress"];
const NETWORK_POLICY_RULE_KEYS = { ingress: ["from", "ports"], egress: ["to", "ports"] } as const;
const NETWORK_POLICY_PEER_KEYS = ["ipBlock", "namespaceSelector", "podSelector"];

function reportUnknownKeys(object: KubeObject, record: Record<string, unknown> | undefined, known: readonly string[], path: Path, where: string, collector: Collector): void {
  if (record === undefined) return;
  for (const key of Object.keys(record)) {
    if (known.includes(key)) continue;
    const suggestion = closest(key, known);
    collector.add("K8S-UNKNOWN-KEY", object, [...path, key], `unknown key "${key}" in ${where}${suggestion !== undefined ? ` — did you mean "${suggestion}"?` : ""}; Kubernetes drops it, so the setting is not applied`);
  }
}

function checkUnknownKeys(object: KubeObject, spec: Record<string, unknown>, specPath: Path, collector: Collector): void {
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

// ---------------------------------------------------------------------------------------------------------------
// Across objects

interface KubeContext {
  readonly serviceAccounts: ReadonlyMap<string, KubeObject>;
}

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
  const context: KubeContext = { serviceAccounts };
  const workloads = objects.map(workloadOf).filter((workload): workload is Workload => workload !== undefined);
  for (const workload of workloads) checkWorkload(workload, context, collector);

  const claims = new Map<string, KubeObject>();
  for (const object of objects) if (object.kind === "PersistentVolumeClaim") claims.set(`${object.namespace}/${object.objectName}`, object);
  checkAgentVolumes(workloads, claims, collector);
  checkSharedSecrets(workloads, objects, collector);
  checkNetworkPolicies(objects, workloads, collector);
  checkPodSecurityLabels(objects, collector);
  checkRbac(objects, collector);
  checkExposure(objects, workloads, collector);

  if (hooks.embeddedHermesConfig !== undefined) {
    const agentConfigMaps = new Set<string>();
    for (const workload of workloads) {
      if (!workload.isAgent) continue;
      for (const item of asArray(workload.spec.volumes)) {
        const name = asString(asRecord(asRecord(item)?.configMap)?.name);
        if (name !== undefined) agentConfigMaps.add(`${workload.object.namespace}/${name}`);
        for (const source of asArray(asRecord(asRecord(item)?.projected)?.sources)) {
          const projected = asString(asRecord(asRecord(source)?.configMap)?.name);
          if (projected !== undefined) agentConfigMaps.add(`${workload.object.namespace}/${projected}`);
        }
      }
    }
    for (const object of objects) {
      if (object.kind !== "ConfigMap") continue;
      for (const [key, text] of Object.entries(asRecord(object.value.data) ?? {})) {
        if (/^config\.ya?ml$/.test(key) && typeof text === "string") hooks.embeddedHermesConfig(object, key, agentConfigMaps.has(`${object.namespace}/${object.objectName}`));
      }
    }
  }
}

function claimsOf(workload: Workload): Array<{ claim: string; volumeIndex: number; volumeName: string }> {
  const found: Array<{ claim: string; volumeIndex: number; volumeName: string }> = [];
  asArray(workload.spec.volumes).forEach((item, index) => {
    const volume = asRecord(item);
    const claim = asString(asRecord(volume?.persistentVolumeClaim)?.claimName);
    if (claim !== undefined) found.push({ claim, volumeIndex: index, volumeName: asString(volume?.name) ?? "" });
  });
  return found;
}

/** The agent's data volume: the claim mounted at /opt/data in an agent container (any claim of the agent pod otherwise). */
function agentDataClaims(workload: Workload): Set<string> {
  const claims = claimsOf(workload);
  const atData = new Set<string>();
  for (const container of workload.containers) {
    if (!container.isAgent) continue;
    for (const item of asArray(container.value.volumeMounts)) {
      const mount = asRecord(item);
      if (asString(mount?.mountPath)?.replace(/\/+$/, "") !== "/opt/data") continue;
      const claim = claims.find((entry) => entry.volumeName === asString(mount?.name));
      if (claim !== undefined) atData.add(claim.claim);
    }
  }
  return atData.size > 0 ? atData : new Set(claims.map((entry) => entry.claim));
}

function checkAgentVolumes(workloads: readonly Workload[], claims: ReadonlyMap<string, KubeObject>, collector: Collector): void {
  const agentClaims = new Map<string, Workload>();
  for (const workload of workloads) {
    if (!workload.isAgent) continue;
    for (const claim of agentDataClaims(workload)) agentClaims.set(`${workload.object.namespace}/${claim}`, workload);
  }
  for (const workload of workloads) {
    const { object } = workload;
    for (const { claim, volumeIndex } of claimsOf(workload)) {
      const key = `${object.namespace}/${claim}`;
      const owner = agentClaims.get(key);
      const volumePath = [...workload.specPath, "volumes", volumeIndex, "persistentVolumeClaim", "claimName"];
      if (owner !== undefined && owner.object.name !== object.name) {
        collector.add("K8S-AGENT-DATA-SHARED", object, volumePath, `mounts the agent's data volume "${claim}" (used by ${owner.object.name})`);
      }
      const pvc = claims.get(key);
      const modes = asArray(getAt(pvc?.value, ["spec", "accessModes"])).map(String);
      const readWriteOnce = pvc === undefined ? owner !== undefined : modes.some((mode) => mode === "ReadWriteOnce" || mode === "ReadWriteOncePod");
      if (readWriteOnce && workload.replicas > 1 && (owner?.object.name === object.name || pvc !== undefined)) {
        collector.add(
          "K8S-AGENT-REPLICAS",
          object,
          object.kind === "DaemonSet" ? ["kind"] : ["spec", "replicas"],
          `${object.kind === "DaemonSet" ? "a DaemonSet runs one pod per node" : `replicas: ${workload.replicas}`} and every pod writes the ReadWriteOnce volume "${claim}"`,
        );
      }
    }
    if (workload.isAgent && object.kind === "Deployment" && claimsOf(workload).length > 0) {
      const strategy = asString(getAt(object.value, ["spec", "strategy", "type"]));
      if (strategy !== "Recreate") {
        collector.add("K8S-AGENT-STRATEGY", object, strategy === undefined ? ["spec"] : ["spec", "strategy", "type"], `strategy ${strategy ?? "RollingUpdate (the default)"} overlaps the old and new agent pods on one data volume`);
      }
    }
  }
}

interface SecretUse {
  readonly secret: string;
  readonly path: Path;
}

function secretUses(workload: Workload): SecretUse[] {
  const uses: SecretUse[] = [];
  const { spec, specPath } = workload;
  asArray(spec.volumes).forEach((item, index) => {
    const volume = asRecord(item);
    const name = asString(asRecord(volume?.secret)?.secretName);
    if (name !== undefined) uses.push({ secret: name, path: [...specPath, "volumes", index, "secret", "secretName"] });
    asArray(asRecord(volume?.projected)?.sources).forEach((source, sourceIndex) => {
      const projected = asString(asRecord(asRecord(source)?.secret)?.name);
      if (projected !== undefined) uses.push({ secret: projected, path: [...specPath, "volumes", index, "projected", "sources", sourceIndex, "secret", "name"] });
    });
  });
  for (const container of workload.containers) {
    asArray(container.value.envFrom).forEach((item, index) => {
      const name = asString(asRecord(asRecord(item)?.secretRef)?.name);
      if (name !== undefined) uses.push({ secret: name, path: [...container.path, "envFrom", index, "secretRef", "name"] });
    });
    asArray(container.value.env).forEach((item, index) => {
      const name = asString(getAt(item, ["valueFrom", "secretKeyRef", "name"]));
      if (name !== undefined) uses.push({ secret: name, path: [...container.path, "env", index, "valueFrom", "secretKeyRef", "name"] });
    });
  }
  return uses;
}

function checkSharedSecrets(workloads: readonly Workload[], objects: readonly KubeObject[], collector: Collector): void {
  const agentSecrets = new Map<string, Workload>();
  for (const workload of workloads) {
    if (!workload.isAgent) continue;
    for (const use of secretUses(workload)) agentSecrets.set(`${workload.object.namespace}/${use.secret}`, workload);
  }
  for (const workload of workloads) {
    if (workload.isAgent) continue;
    for (const use of secretUses(workload)) {
      const agent = agentSecrets.get(`${workload.object.namespace}/${use.secret}`);
      if (agent !== undefined) collector.add("K8S-SECRET-SHARED", workload.object, use.path, `Secret "${use.secret}" is also consumed by the agent (${agent.object.name}): split it so each component holds only its own keys`);
    }
  }
  // Provider keys visible in the agent's pod: literal env names, or keys of a Secret in the inputs it imports whole.
  const secrets = new Map<string, KubeObject>();
  for (const object of objects) if (object.kind === "Secret") secrets.set(`${object.namespace}/${object.objectName}`, object);
  for (const workload of workloads) {
    for (const container of workload.containers) {
      if (!container.isAgent) continue;
      asArray(container.value.env).forEach((item, index) => {
        const name = asString(asRecord(item)?.name);
        if (name !== undefined && isProviderKey(name)) collector.add("K8S-PROVIDER-KEY-IN-AGENT", workload.object, [...container.path, "env", index, "name"], `${name} is in the agent's environment; give it to llm-proxy and the agent a virtual key`);
      });
      asArray(container.value.envFrom).forEach((item, index) => {
        const name = asString(asRecord(asRecord(item)?.secretRef)?.name);
        const secret = name === undefined ? undefined : secrets.get(`${workload.object.namespace}/${name}`);
        if (secret === undefined) return;
        const keys = [...Object.keys(asRecord(secret.value.data) ?? {}), ...Object.keys(asRecord(secret.value.stringData) ?? {})].filter(isProviderKey);
        if (keys.length > 0) collector.add("K8S-PROVIDER-KEY-IN-AGENT", workload.object, [...container.path, "envFrom", index], `envFrom Secret "${name}" puts ${keys.join(", ")} in the agent's environment`);
      });
    }
  }
}

// --- NetworkPolicy ---------------------------------------------------------------------------------------------

/** Kubernetes label selector semantics: empty or null selects everything. */
export function selectorMatches(selector: unknown, labels: Record<string, unknown>): boolean {
  if (selector === null || selector === undefined) return true;
  const record = asRecord(selector);
  if (record === undefined) return false;
  for (const [key, value] of Object.entries(asRecord(record.matchLabels) ?? {})) {
    if (String(labels[key]) !== String(value) || labels[key] === undefined) return false;
  }
  for (const item of asArray(record.matchExpressions)) {
    const expression = asRecord(item);
    const key = asString(expression?.key) ?? "";
    const values = asArray(expression?.values).map(String);
    const present = labels[key] !== undefined;
    const value = present ? String(labels[key]) : undefined;
    switch (asString(expression?.operator)) {
      case "In": if (value === undefined || !values.includes(value)) return false; break;
      case "NotIn": if (value !== undefined && values.includes(value)) return false; break;
      case "Exists": if (!present) return false; break;
      case "DoesNotExist": if (present) return false; break;
      default: return false;
    }
  }
  return true;
}

function isEmptySelector(selector: unknown): boolean {
  if (selector === null || selector === undefined) return true;
  const record = asRecord(selector);
  return record !== undefined && Object.keys(asRecord(record.matchLabels) ?? {}).length === 0 && asArray(record.matchExpressions).length === 0;
}

function policyTypes(spec: Record<string, unknown>): Set<string> {
  const declared = asArray(spec.policyTypes).map(String);
  if (declared.length > 0) return new Set(declared);
  // Kubernetes' default: Ingress always, Egress when the policy has an egress section.
  return new Set(spec.egress === undefined ? ["Ingress"] : ["Ingress", "Egress"]);
}

const PRIVATE_V4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
const METADATA_V4 = ["169.254.0.0/16", "100.64.0.0/10"];
const PRIVATE_V6 = ["fc00::/7", "fe80::/10"];

function parseV4Cidr(cidr: string): { base: number; bits: number } | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (match === null) return undefined;
  const octets = match.slice(1, 5).map(Number);
  if (octets.some((octet) => octet > 255)) return undefined;
  const bits = Number(match[5]);
  if (bits > 32) return undefined;
  const address = ((octets[0] as number) * 2 ** 24 + (octets[1] as number) * 2 ** 16 + (octets[2] as number) * 2 ** 8 + (octets[3] as number)) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (address & mask) >>> 0, bits };
}

/** Whether `inner` lies entirely inside `outer` (IPv4); IPv6 compares prefixes textually, which suffices for ::/0 excepts. */
function cidrWithin(inner: string, outer: string): boolean {
  const a = parseV4Cidr(inner);
  const b = parseV4Cidr(outer);
  if (a !== undefined && b !== undefined) {
    if (a.bits < b.bits) return false;
    const mask = b.bits === 0 ? 0 : (0xffffffff << (32 - b.bits)) >>> 0;
    return ((a.base & mask) >>> 0) === b.base;
  }
  return inner.trim().toLowerCase() === outer.trim().toLowerCase();
}

function checkNetworkPolicies(objects: readonly KubeObject[], workloads: readonly Workload[], collector: Collector): void {
  const policies = objects.filter((object) => object.kind === "NetworkPolicy");
  const namespaces = new Map<string, Workload[]>();
  for (const workload of workloads) {
    // Jobs and CronJobs count too: a sandbox Job is exactly what a default deny must cover.
    if (workload.object.kind === "PodTemplate") continue;
    const list = namespaces.get(workload.object.namespace) ?? [];
    list.push(workload);
    namespaces.set(workload.object.namespace, list);
  }
  const namespaceObjects = new Map(objects.filter((object) => object.kind === "Namespace").map((object) => [object.objectName, object]));

  for (const [namespace, members] of namespaces) {
    const inNamespace = policies.filter((policy) => policy.namespace === namespace);
    const denies = { Ingress: false, Egress: false };
    for (const policy of inNamespace) {
      const spec = asRecord(policy.value.spec) ?? {};
      if (!isEmptySelector(spec.podSelector)) continue;
      const types = policyTypes(spec);
      if (types.has("Ingress") && asArray(spec.ingress).length === 0) denies.Ingress = true;
      if (types.has("Egress") && asArray(spec.egress).length === 0) denies.Egress = true;
    }
    const missing = (["Ingress", "Egress"] as const).filter((direction) => !denies[direction]);
    if (missing.length > 0) {
      const at = namespaceObjects.get(namespace) ?? (members[0] as Workload).object;
      collector.add(
        "K8S-NETPOL-NO-DEFAULT-DENY",
        at,
        at.kind === "Namespace" ? ["metadata", "name"] : ["metadata", "namespace"],
        `namespace "${namespace}" runs ${members.length} workload(s) and no NetworkPolicy with an empty podSelector denies ${missing.join(" and ")} by default`,
      );
    }
    for (const workload of members) {
      if (!workload.isAgent) continue;
      const restricted = inNamespace.some((policy) => {
        const spec = asRecord(policy.value.spec) ?? {};
        return policyTypes(spec).has("Egress") && selectorMatches(spec.podSelector, workload.labels);
      });
      if (!restricted) collector.add("K8S-NETPOL-AGENT-UNSELECTED", workload.object, workload.labelsPath, `no Egress NetworkPolicy in "${namespace}" selects the agent's pods (labels ${JSON.stringify(workload.labels)})`);
    }
  }

  for (const policy of policies) {
    const spec = asRecord(policy.value.spec) ?? {};
    reportUnknownKeys(policy, spec, NETWORK_POLICY_SPEC_KEYS, ["spec"], "the NetworkPolicy spec", collector);
    const members = namespaces.get(policy.namespace);
    if (members !== undefined && !isEmptySelector(spec.podSelector) && !members.some((workload) => selectorMatches(spec.podSelector, workload.labels))) {
      collector.add("K8S-NETPOL-SELECTS-NOTHING", policy, ["spec", "podSelector"], `podSelector ${JSON.stringify(spec.podSelector)} matches none of the ${members.length} workload(s) in "${policy.namespace}"`);
    }
    for (const direction of ["ingress", "egress"] as const) {
      asArray(spec[direction]).forEach((item, ruleIndex) => {
        const rulePath = ["spec", direction, ruleIndex];
        const ruleValue = asRecord(item);
        reportUnknownKeys(policy, ruleValue, NETWORK_POLICY_RULE_KEYS[direction], rulePath, `a NetworkPolicy ${direction} rule`, collector);
        const peersKey = direction === "egress" ? "to" : "from";
        asArray(ruleValue?.[peersKey]).forEach((peer, peerIndex) => reportUnknownKeys(policy, asRecord(peer), NETWORK_POLICY_PEER_KEYS, [...rulePath, peersKey, peerIndex], "a NetworkPolicy peer", collector));
      });
    }
    if (!policyTypes(spec).has("Egress")) continue;
    asArray(spec.egress).forEach((item, ruleIndex) => {
      const egressRule = asRecord(item) ?? {};
      const rulePath = ["spec", "egress", ruleIndex];
      const peers = asArray(egressRule.to);
      const ports = asArray(egressRule.ports).map((port) => asRecord(port)?.port);
      if (peers.length === 0) {
        if (ports.length > 0 && ports.every((port) => port === 53 || port === "53" || port === "dns" || port === "dns-tcp")) {
          collector.add("K8S-NETPOL-DNS-UNSCOPED", policy, rulePath, "egress on port 53 has no `to`: the pods may query any resolver, on the LAN or outside");
        } else {
          collector.add("K8S-NETPOL-EGRESS-ANYWHERE", policy, rulePath, `egress rule without \`to\` allows every destination${ports.length > 0 ? ` on ports ${ports.map(String).join(", ")}` : " on every port"}, the LAN and the cluster included`);
        }
        return;
      }
      peers.forEach((peerValue, peerIndex) => {
        const ipBlock = asRecord(asRecord(peerValue)?.ipBlock);
        const cidr = asString(ipBlock?.cidr);
        if (cidr === undefined) return;
        const peerPath = [...rulePath, "to", peerIndex, "ipBlock"];
        const excepts = asArray(ipBlock?.except).map(String);
        const covered = (range: string) => excepts.some((except) => cidrWithin(range, except));
        const v4Parsed = parseV4Cidr(cidr);
        if (cidr.trim() === "0.0.0.0/0" || cidr.trim() === "::/0") {
          const required = cidr.includes(":") ? PRIVATE_V6 : PRIVATE_V4;
          const open = required.filter((range) => !covered(range));
          if (open.length > 0) collector.add("K8S-NETPOL-EGRESS-ANYWHERE", policy, [...peerPath, "cidr"], `ipBlock ${cidr} does not except ${open.join(", ")}: the pods reach the LAN and the cluster`);
          else if (!cidr.includes(":")) {
            const metadata = METADATA_V4.filter((range) => !covered(range));
            if (metadata.length > 0) collector.add("K8S-NETPOL-METADATA-REACHABLE", policy, [...peerPath, "except"], `ipBlock ${cidr} does not except ${metadata.join(", ")} (cloud metadata at 169.254.169.254, CGNAT/Tailscale)`);
          }
        } else if (v4Parsed !== undefined && [...PRIVATE_V4, "100.64.0.0/10"].some((range) => cidrWithin(cidr, range))) {
          collector.add("K8S-NETPOL-IPBLOCK-IN-CLUSTER", policy, [...peerPath, "cidr"], `ipBlock ${cidr} is a private address: a node, NodePort/LoadBalancer, ingress or Service IP is DNATed before the policy is evaluated, so this rule never matches; select the backing pods instead`);
        }
      });
    });
  }
}

// --- Pod Security admission --------------------------------------------------------------------------------------

function checkPodSecurityLabels(objects: readonly KubeObject[], collector: Collector): void {
  for (const object of objects) {
    if (object.kind !== "Namespace") continue;
    const labels = asRecord(asRecord(object.value.metadata)?.labels) ?? {};
    const enforce = asString(labels["pod-security.kubernetes.io/enforce"]);
    const warn = asString(labels["pod-security.kubernetes.io/warn"]);
    const audit = asString(labels["pod-security.kubernetes.io/audit"]);
    const labelsPath = object.value.metadata !== undefined && asRecord(object.value.metadata)?.labels !== undefined ? ["metadata", "labels"] : ["metadata"];
    if (enforce === undefined) {
      collector.add("K8S-PSA-LABELS", object, labelsPath, `namespace "${object.objectName}" has no pod-security.kubernetes.io/enforce label: nothing stops a privileged pod`);
    } else if (enforce !== "baseline" && enforce !== "restricted") {
      collector.add("K8S-PSA-LABELS", object, [...labelsPath, "pod-security.kubernetes.io/enforce"], `namespace "${object.objectName}" enforces "${enforce}": use restricted (baseline for the agent's namespace)`);
    } else if (enforce === "baseline" && warn !== "restricted" && audit !== "restricted") {
      collector.add("K8S-PSA-LABELS", object, [...labelsPath, "pod-security.kubernetes.io/enforce"], `namespace "${object.objectName}" enforces baseline without warn/audit: restricted, so violations of the restricted profile go unseen`);
    }
  }
}

// --- RBAC ---------------------------------------------------------------------------------------------------------

/**
 * Each Role and ClusterRole is judged rule by rule on what it grants (rbac.ts), where the fix goes; each binding is
 * judged on what the role it references grants — local, aggregated or built-in — and names who receives it. A binding's
 * finding carries the suppressions of the role rules it comes from.
 */
function checkRbac(objects: readonly KubeObject[], collector: Collector): void {
  const byKey = new Map<string, KubeObject>();
  const clusterRoles = new Map<string, ClusterRoleView>(builtInClusterRoles().map((role) => [role.name, role]));
  const roles = new Map<string, RuleSource[]>();
  for (const object of objects) {
    if (object.kind !== "Role" && object.kind !== "ClusterRole") continue;
    const key = `${object.kind}/${object.namespace}/${object.objectName}`;
    byKey.set(key, object);
    asArray(object.value.rules).forEach((item, index) => checkRbacRule(object, policyRuleOf(item), ["rules", index], object.kind === "ClusterRole", collector));
    if (object.kind === "ClusterRole") {
      const local = clusterRoleView(object.objectName, object.value, key);
      const builtIn = clusterRoles.get(object.objectName);
      const autoupdate = asString(asRecord(asRecord(object.value.metadata)?.annotations)?.["rbac.authorization.kubernetes.io/autoupdate"]);
      // The API server adds a default role's missing permissions back at every start unless autoupdate is "false".
      clusterRoles.set(object.objectName, builtIn === undefined || autoupdate === "false" ? local : { ...local, labels: { ...builtIn.labels, ...local.labels }, selectors: [...(builtIn.selectors ?? []), ...(local.selectors ?? [])], sources: [...local.sources, ...builtIn.sources] });
    }
    else roles.set(`${object.namespace}/${object.objectName}`, asArray(object.value.rules).map((item, index) => ({ rule: policyRuleOf(item), origin: { objectKey: key, path: ["rules", index] }, roleName: `Role ${object.namespace}/${object.objectName}` })));
  }
  // Aggregation resolved once per ClusterRole, however many bindings reference it.
  const effective = new Map<string, RuleSource[]>();
  for (const object of objects) {
    if (object.kind !== "RoleBinding" && object.kind !== "ClusterRoleBinding") continue;
    const roleRef = asRecord(object.value.roleRef);
    const kind = asString(roleRef?.kind);
    const name = asString(roleRef?.name);
    if (name === undefined) continue;
    let sources: RuleSource[] | undefined;
    let boundName: string;
    if (kind === "Role" && object.kind === "RoleBinding") {
      sources = roles.get(`${object.namespace}/${name}`);
      boundName = `Role ${object.namespace}/${name}`;
    } else if (kind === "ClusterRole") {
      if (clusterRoles.has(name) && !effective.has(name)) effective.set(name, effectiveClusterRoleSources(name, clusterRoles, selectorMatches));
      sources = effective.get(name);
      boundName = `ClusterRole ${name}${byKey.has(`ClusterRole//${name}`) ? "" : " (built-in)"}`;
    } else {
      continue;
    }
    // A role that is neither among the inputs nor built in cannot be judged here.
    if (sources === undefined) continue;
    checkBinding(object, sources, boundName, byKey, collector);
  }
}

function checkBinding(binding: KubeObject, sources: readonly RuleSource[], boundName: string, roleObjects: ReadonlyMap<string, KubeObject>, collector: Collector): void {
  const subjects = subjectsOf(binding.value, binding.namespace);
  const clusterScope = binding.kind === "ClusterRoleBinding";
  const through = (granting: readonly RuleSource[]) => {
    // Name the roles among the inputs a grant was aggregated from; the built-in aggregation is the built-in role itself.
    const others = [...new Set(granting.filter((source) => source.origin !== undefined).map((source) => source.roleName))].filter((roleName) => roleName !== boundName);
    return `through ${boundName}${others.length > 0 ? ` (aggregated from ${others.join(", ")})` : ""}`;
  };
  // Suppressions carry only when every granting rule is among the inputs; a built-in grant has nowhere to accept it.
  const originsOf = (granting: readonly RuleSource[], field: string): Origin[] | undefined => {
    const origins = granting.map((source) => {
      const subject = source.origin === undefined ? undefined : roleObjects.get(source.origin.objectKey);
      return subject === undefined || source.origin === undefined ? undefined : { subject, path: [...source.origin.path, field] };
    });
    return origins.every((origin) => origin !== undefined) ? (origins as Origin[]) : undefined;
  };
  const everything = sources.filter((source) => grantsEverything(source.rule));
  if (everything.length > 0) {
    const scope = clusterScope ? "in every namespace and on the cluster" : `in namespace "${binding.namespace}"`;
    collector.add("K8S-RBAC-CLUSTER-ADMIN", binding, ["roleRef", "name"], `gives ${subjects} every verb on every resource ${scope} ${through(everything)}: cluster-admin`, originsOf(everything, "verbs"));
    return;
  }
  for (const grant of grantsOf(sources, clusterScope)) {
    collector.add(grant.ruleId, binding, ["roleRef", "name"], `gives ${subjects} ${grant.what} ${through(grant.sources)}`, originsOf(grant.sources, grantField(grant.ruleId)));
  }
}

function checkRbacRule(object: KubeObject, rule: PolicyRule, path: Path, clusterScope: boolean, collector: Collector): void {
  const wildcard = wildcardField(rule);
  if (wildcard !== undefined) collector.add("K8S-RBAC-WILDCARD", object, [...path, wildcard], `"*" in ${wildcard} grants everything it covers now and whatever is added later`);
  for (const [ruleId, what] of powersOfRule(rule, clusterScope)) collector.add(ruleId, object, [...path, grantField(ruleId)], `grants ${what}`);
}

// --- Exposure -----------------------------------------------------------------------------------------------------

const AUTH_ANNOTATION = /(^|[./-])(auth-url|auth-type|auth-signin|auth-secret|auth-tls-verify-client|basic-auth|forward-auth|oauth|router\.middlewares|auth\.middleware|authentik|authelia|pomerium|cognito|oidc)/i;

function checkExposure(objects: readonly KubeObject[], workloads: readonly Workload[], collector: Collector): void {
  const agents = workloads.filter((workload) => workload.isAgent);
  if (agents.length === 0) return;
  const agentServices = new Map<string, KubeObject>();
  for (const object of objects) {
    if (object.kind !== "Service") continue;
    const selector = asRecord(getAt(object.value, ["spec", "selector"]));
    if (selector === undefined || Object.keys(selector).length === 0) continue;
    const selected = agents.find((agent) => agent.object.namespace === object.namespace && Object.entries(selector).every(([key, value]) => String(agent.labels[key]) === String(value)));
    if (selected === undefined) continue;
    agentServices.set(`${object.namespace}/${object.objectName}`, object);
    const type = asString(getAt(object.value, ["spec", "type"])) ?? "ClusterIP";
    if (type === "NodePort" || type === "LoadBalancer") {
      collector.add("K8S-AGENT-EXPOSED", object, ["spec", "type"], `Service type ${type} exposes the agent (${selected.object.name}) outside the cluster`);
    }
    if (asArray(getAt(object.value, ["spec", "externalIPs"])).length > 0) collector.add("K8S-AGENT-EXPOSED", object, ["spec", "externalIPs"], `externalIPs expose the agent (${selected.object.name})`);
  }
  for (const object of objects) {
    if (object.kind !== "Ingress") continue;
    const annotations = asRecord(asRecord(object.value.metadata)?.annotations) ?? {};
    if (Object.keys(annotations).some((key) => AUTH_ANNOTATION.test(key))) continue;
    const backends: Array<{ service: string; path: Path }> = [];
    const defaultBackend = asString(getAt(object.value, ["spec", "defaultBackend", "service", "name"])) ?? asString(getAt(object.value, ["spec", "backend", "serviceName"]));
    if (defaultBackend !== undefined) backends.push({ service: defaultBackend, path: ["spec", "defaultBackend"] });
    asArray(getAt(object.value, ["spec", "rules"])).forEach((ruleItem, ruleIndex) => {
      asArray(getAt(ruleItem, ["http", "paths"])).forEach((pathItem, pathIndex) => {
        const service = asString(getAt(pathItem, ["backend", "service", "name"])) ?? asString(getAt(pathItem, ["backend", "serviceName"]));
        if (service !== undefined) backends.push({ service, path: ["spec", "rules", ruleIndex, "http", "paths", pathIndex, "backend"] });
      });
    });
    for (const backend of backends) {
      if (agentServices.has(`${object.namespace}/${backend.service}`)) {
        collector.add("K8S-AGENT-EXPOSED", object, backend.path, `Ingress routes to the agent's Service "${backend.service}" with no authentication annotation`);
      }
    }
  }
}
