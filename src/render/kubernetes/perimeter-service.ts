// One perimeter service as Kubernetes objects: the perimeter image running `perimeter serve <service>` on the pod's
// address, restricted, one replica with its own state volume, and a ClusterIP Service (pinned when the agent reaches
// it without DNS).
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IVolume } from "kubernetes-models/v1/Volume";
import { CONFIG_DIRECTORY } from "../plan.ts";
import type { PerimeterService } from "../plan.ts";
import type { KubernetesPlan } from "./context.ts";
import { pinnedClusterIP } from "./dns.ts";
import { serviceAccount } from "./objects.ts";
import type { KubernetesObject } from "./objects.ts";
import {
  STATE_MOUNT,
  TMP_MOUNT,
  clusterService,
  persistentVolumeClaim,
  restrictedContainerSecurity,
  restrictedPodSecurity,
  scratchVolume,
  secretEnvironment,
  singletonDeployment,
  stateVolume,
  tcpProbes,
} from "./workloads.ts";

export interface PerimeterServiceSpec {
  readonly name: string;
  readonly service: PerimeterService;
  readonly port: number;
  readonly configPath: string;
  readonly secrets: ReadonlyArray<{ name: string; keys: readonly string[] }>;
  readonly resources: { requests: { cpu: string; memory: string }; limits: { cpu: string; memory: string } };
  readonly tmpSize: string;
  readonly extraPorts?: ReadonlyArray<{ name: string; port: number }>;
  readonly automountServiceAccountToken?: boolean;
  readonly configVolume?: IVolume;
  readonly annotations?: Record<string, string>;
  /** The port Prometheus scrapes (written as annotations only when observability is enabled). */
  readonly metricsPort?: number;
  /** Flags after `--listen`, e.g. a separate metrics listener. */
  readonly extraArguments?: readonly string[];
}

export function perimeterService(plan: KubernetesPlan, spec: PerimeterServiceSpec): KubernetesObject[] {
  const { config, ns } = plan;
  const stateClaim = `${spec.name}-state`;
  const ports = [{ name: "http", port: spec.port }, ...(spec.extraPorts ?? [])];
  const container: IContainer = {
    name: spec.name,
    image: config.kubernetes.perimeterImage,
    imagePullPolicy: "IfNotPresent",
    command: ["perimeter", "serve", spec.service, "-c", spec.configPath, "--listen", `0.0.0.0:${spec.port}`, ...(spec.extraArguments ?? [])],
    env: [{ name: "HOME", value: "/tmp" }, ...secretEnvironment(spec.secrets)],
    ports: ports.map((port) => ({ name: port.name, containerPort: port.port, protocol: "TCP" })),
    ...tcpProbes("http"),
    resources: spec.resources,
    securityContext: restrictedContainerSecurity(),
    volumeMounts: [{ name: "config", mountPath: CONFIG_DIRECTORY, readOnly: true }, STATE_MOUNT, TMP_MOUNT],
  };
  const podAnnotations =
    plan.observability === undefined || spec.metricsPort === undefined
      ? undefined
      : { "prometheus.io/scrape": "true", "prometheus.io/port": String(spec.metricsPort), "prometheus.io/path": "/metrics" };
  return [
    serviceAccount(config, spec.name, ns.tools, spec.name, spec.automountServiceAccountToken ?? false),
    persistentVolumeClaim(config, stateClaim, ns.tools, spec.name, "1Gi"),
    singletonDeployment(config, {
      name: spec.name,
      namespace: ns.tools,
      component: spec.name,
      serviceAccountName: spec.name,
      automountServiceAccountToken: spec.automountServiceAccountToken ?? false,
      container,
      volumes: [spec.configVolume ?? plan.configVolume, stateVolume(stateClaim), scratchVolume(spec.tmpSize)],
      podSecurityContext: restrictedPodSecurity(),
      podAnnotations,
      annotations: spec.annotations,
    }),
    clusterService(config, spec.name, ns.tools, spec.name, ports, pinnedClusterIP(plan.resolution, spec.name)),
  ];
}
