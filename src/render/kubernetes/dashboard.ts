// The dashboard on Kubernetes: one pod in the tools namespace that nothing can reach over the pod network. It binds
// the pod's loopback and is opened with `kubectl port-forward`, which the kubelet carries into the pod's network
// namespace and connects to 127.0.0.1 there (kubernetes/kubernetes#72488), past NetworkPolicy: so its policy admits
// no ingress at all. It reaches only the feed and admin ports of the perimeter's own pods (and DNS).
import type { IVolume } from "kubernetes-models/v1/Volume";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { PerimeterConfig } from "../../config/index.ts";
import { auditFeeds, dashboardPort } from "../dashboard.ts";
import { CONFIG_DIRECTORY, DASHBOARD, RUNTIME_CONFIG_PATH } from "../plan.ts";
import type { SecretSpec } from "../plan.ts";
import { namespaces, selectorLabels, standardLabels } from "./names.ts";
import { inNamespace, networkPolicy, tcp } from "./network.ts";
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
} from "./workloads.ts";

/** Room for the mirror of every component's log and the search index over them. */
const DASHBOARD_STATE_SIZE = "4Gi";

/** The exact command that opens the dashboard from a workstation (the runbook and the next steps print it). */
export function dashboardPortForward(config: PerimeterConfig): string {
  const port = dashboardPort(config);
  return `kubectl -n ${namespaces(config).tools} port-forward deployment/${DASHBOARD} ${port}:${port}`;
}

export function dashboardObjects(config: PerimeterConfig, secret: SecretSpec | undefined, configVolume: IVolume): { workload: object[]; policy: INetworkPolicy } {
  const ns = namespaces(config).tools;
  const port = dashboardPort(config);
  const stateClaim = `${DASHBOARD}-state`;
  const deployment = singletonDeployment(config, {
    name: DASHBOARD,
    namespace: ns,
    component: DASHBOARD,
    serviceAccountName: DASHBOARD,
    automountServiceAccountToken: false,
    container: {
      name: DASHBOARD,
      image: config.kubernetes.perimeterImage,
      imagePullPolicy: "IfNotPresent",
      // dashboard.listen in the runtime config is 127.0.0.1: no --listen here, so nothing binds the pod's address.
      command: ["perimeter", "serve", "dashboard", "-c", RUNTIME_CONFIG_PATH],
      env: [{ name: "HOME", value: "/tmp" }, ...secretEnvironment(secret === undefined ? [] : [{ name: secret.name, keys: secret.keys }])],
      // Named for `kubectl port-forward`; no probe, since the kubelet's probes dial the pod's address, not its loopback.
      ports: [{ name: "http", containerPort: port, protocol: "TCP" }],
      resources: { requests: { cpu: "50m", memory: "128Mi" }, limits: { cpu: "1", memory: "512Mi" } },
      securityContext: restrictedContainerSecurity(),
      volumeMounts: [{ name: "config", mountPath: CONFIG_DIRECTORY, readOnly: true }, STATE_MOUNT, TMP_MOUNT],
    },
    volumes: [configVolume, stateVolume(stateClaim), scratchVolume("64Mi")],
    podSecurityContext: restrictedPodSecurity(),
  });
  const policy = networkPolicy(config, {
    name: DASHBOARD,
    namespace: ns,
    podLabels: selectorLabels(config, DASHBOARD),
    // No ingress: port-forward reaches the pod through the kubelet, not the pod network.
    ingress: [],
    egress: auditFeeds(config, "kubernetes").map((feed) => ({ to: [inNamespace(ns, selectorLabels(config, feed.component))], ports: tcp([feed.port]) })),
  });
  return {
    workload: [
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: DASHBOARD, namespace: ns, labels: standardLabels(config, DASHBOARD, DASHBOARD) }, automountServiceAccountToken: false },
      persistentVolumeClaim(config, stateClaim, ns, DASHBOARD, DASHBOARD_STATE_SIZE),
      deployment,
      // ClusterIP only, for `kubectl port-forward service/dashboard`; the pod answers nothing on its own address.
      clusterService(config, DASHBOARD, ns, DASHBOARD, [{ name: "http", port }]),
    ],
    policy,
  };
}

/** The rule a perimeter pod's policy gets so the dashboard reads its feed: exactly that port, from the dashboard pod only. */
export function dashboardIngress(config: PerimeterConfig, port: number) {
  return { from: [inNamespace(namespaces(config).tools, selectorLabels(config, DASHBOARD))], ports: tcp([port]) };
}
