// Pods render writes: the Hermes gateway (seed 003's hard-won shape), our four services and the servers they call.
// Typed against kubernetes-models so that a misspelled field is a compile error, not a silently dropped setting.
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IEnvVar } from "kubernetes-models/v1/EnvVar";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IVolume } from "kubernetes-models/v1/Volume";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IService } from "kubernetes-models/v1/Service";
import type { IPersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import type { PerimeterConfig } from "../../config/index.ts";
import type { EnvironmentEntry } from "../hermes.ts";
import { HERMES_UID, SERVICE_UID, STATE_DIRECTORY } from "../plan.ts";
import { selectorLabels, standardLabels } from "./names.ts";

/** The restricted Pod Security profile, pod level: non-root, RuntimeDefault seccomp. */
export function restrictedPodSecurity(): NonNullable<IPodSpec["securityContext"]> {
  return { runAsNonRoot: true, runAsUser: SERVICE_UID, runAsGroup: SERVICE_UID, fsGroup: SERVICE_UID, seccompProfile: { type: "RuntimeDefault" } };
}

/** The restricted profile, container level: no escalation, read-only root, no capabilities. */
export function restrictedContainerSecurity(): NonNullable<IContainer["securityContext"]> {
  return { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } };
}

export interface Resources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

export function environment(entries: readonly EnvironmentEntry[], secretName: string): IEnvVar[] {
  return entries.map((entry) =>
    "value" in entry ? { name: entry.name, value: entry.value } : { name: entry.name, valueFrom: { secretKeyRef: { name: secretName, key: entry.secretKey } } },
  );
}

/** Environment from several Secrets: one entry per key, so a pod gets exactly the keys named, never a whole Secret. */
export function secretEnvironment(secrets: ReadonlyArray<{ name: string; keys: readonly string[] }>): IEnvVar[] {
  return secrets.flatMap((secret) => secret.keys.map((key) => ({ name: key, valueFrom: { secretKeyRef: { name: secret.name, key } } })));
}

export function persistentVolumeClaim(config: PerimeterConfig, name: string, namespace: string, component: string, size: string): IPersistentVolumeClaim {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, namespace, labels: standardLabels(config, name, component) },
    spec: {
      accessModes: ["ReadWriteOnce"],
      ...(config.agent.data.storageClass === undefined ? {} : { storageClassName: config.agent.data.storageClass }),
      resources: { requests: { storage: size } },
    },
  };
}

/** `clusterIP` pins the address, for Services the agent or the tasks reach without DNS (kubernetes/dns.ts). */
export function clusterService(config: PerimeterConfig, name: string, namespace: string, component: string, ports: ReadonlyArray<{ name: string; port: number }>, clusterIP?: string): IService {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace, labels: standardLabels(config, name, component) },
    spec: {
      type: "ClusterIP",
      ...(clusterIP === undefined ? {} : { clusterIP }),
      selector: selectorLabels(config, name),
      ports: ports.map((port) => ({ name: port.name, port: port.port, targetPort: port.name, protocol: "TCP" })),
    },
  };
}

export interface DeploymentOptions {
  readonly name: string;
  readonly namespace: string;
  readonly component: string;
  readonly serviceAccountName: string;
  /** Only the sandbox runner and the Kubernetes MCP server talk to the API server. */
  readonly automountServiceAccountToken: boolean;
  readonly container: IContainer;
  readonly initContainers?: IContainer[];
  readonly volumes: IVolume[];
  readonly podSecurityContext: IPodSpec["securityContext"];
  readonly podAnnotations?: Record<string, string>;
  readonly annotations?: Record<string, string>;
  /** How the pod resolves names, when not the cluster's DNS (kubernetes/dns.ts). */
  readonly nameResolution?: Pick<IPodSpec, "dnsPolicy" | "dnsConfig" | "hostAliases">;
}

/**
 * One replica, Recreate: every workload here owns a ReadWriteOnce volume (SQLite state or the agent's data dir),
 * and a rolling update would run two writers on it for a moment.
 */
export function singletonDeployment(config: PerimeterConfig, options: DeploymentOptions): IDeployment {
  const labels = standardLabels(config, options.name, options.component);
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: options.name, namespace: options.namespace, labels, ...(options.annotations === undefined ? {} : { annotations: options.annotations }) },
    spec: {
      replicas: 1,
      strategy: { type: "Recreate" },
      revisionHistoryLimit: 3,
      selector: { matchLabels: selectorLabels(config, options.name) },
      template: {
        metadata: { labels, ...(options.podAnnotations === undefined ? {} : { annotations: options.podAnnotations }) },
        spec: {
          serviceAccountName: options.serviceAccountName,
          automountServiceAccountToken: options.automountServiceAccountToken,
          enableServiceLinks: false,
          ...(options.nameResolution ?? {}),
          securityContext: options.podSecurityContext,
          ...(options.initContainers === undefined ? {} : { initContainers: options.initContainers }),
          containers: [options.container],
          volumes: options.volumes,
        },
      },
    },
  };
}

export function tcpProbes(portName: string): Pick<IContainer, "readinessProbe" | "livenessProbe"> {
  return {
    readinessProbe: { tcpSocket: { port: portName }, periodSeconds: 10, failureThreshold: 3 },
    livenessProbe: { tcpSocket: { port: portName }, initialDelaySeconds: 10, periodSeconds: 20, failureThreshold: 3 },
  };
}

export function scratchVolume(size: string): IVolume {
  return { name: "tmp", emptyDir: { sizeLimit: size } };
}

export function stateVolume(claimName: string): IVolume {
  return { name: "state", persistentVolumeClaim: { claimName } };
}

export const STATE_MOUNT = { name: "state", mountPath: STATE_DIRECTORY };
export const TMP_MOUNT = { name: "tmp", mountPath: "/tmp" };

/** The agent's pod security: seed 003's working shape for the unmodified s6 image. */
export function agentPodSecurity(): NonNullable<IPodSpec["securityContext"]> {
  return { fsGroup: HERMES_UID, seccompProfile: { type: "RuntimeDefault" } };
}

/**
 * Why the agent container is not `restricted`: written onto the Deployment so `kubectl describe` shows it.
 */
export const AGENT_SECURITY_NOTE =
  "The nousresearch/hermes-agent image starts s6-overlay as root to chown /opt/data, then drops every service to uid 10000. runAsNonRoot or dropping ALL capabilities breaks that init (seed 003), so this container drops NET_RAW only and keeps allowPrivilegeEscalation false and seccomp RuntimeDefault. readOnlyRootFilesystem is off because the agent installs packages for the skills it writes. Containment is the network policy, the missing token, the absent host mounts, and the perimeter: no provider key or tool credential is in this pod.";
