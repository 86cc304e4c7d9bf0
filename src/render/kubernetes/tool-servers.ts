// The MCP servers mcp-guard calls that run in the cluster: the read-only kubernetes-mcp-server (core toolset, a fixed
// tool list, Secrets and ConfigMaps denied, Roles in the named namespaces only) and servers deployed from their own
// image, each holding only its own credentials. Only mcp-guard reaches them.
import type { IContainer } from "kubernetes-models/v1/Container";
import type { PerimeterConfig } from "../../config/index.ts";
import { KUBERNETES_MCP, KUBERNETES_MCP_IMAGE, KUBERNETES_MCP_PORT } from "../plan.ts";
import { secretFor } from "./context.ts";
import type { KubernetesOutput, KubernetesPlan } from "./context.ts";
import { selectorLabels, standardLabels } from "./names.ts";
import { API_SERVER_IPBLOCK_NOTE, apiServer, networkPolicy, publicInternet, tcp } from "./network.ts";
import { configMap, serviceAccount } from "./objects.ts";
import type { KubernetesObject } from "./objects.ts";
import {
  TMP_MOUNT,
  clusterService,
  restrictedContainerSecurity,
  restrictedPodSecurity,
  scratchVolume,
  secretEnvironment,
  singletonDeployment,
  tcpProbes,
} from "./workloads.ts";

const KUBERNETES_MCP_IGNORES =
  "K8S-SA-TOKEN-AUTOMOUNT=kubernetes-mcp-server reads the cluster with this token; its Roles grant get/list/watch on named resources in the configured namespaces only";

export function kubernetesMcpObjects(plan: KubernetesPlan, out: KubernetesOutput): void {
  const { config, ns, apiServerCidr } = plan;
  if (plan.kubernetesServer === undefined || apiServerCidr === undefined) return;
  const [, entry] = plan.kubernetesServer;
  out.configObjects.push(configMap(config, `${KUBERNETES_MCP}-config`, ns.tools, KUBERNETES_MCP, { "config.toml": kubernetesMcpToml() }));
  const objects: KubernetesObject[] = [
    serviceAccount(config, KUBERNETES_MCP, ns.tools, KUBERNETES_MCP, true),
    singletonDeployment(config, {
      name: KUBERNETES_MCP,
      namespace: ns.tools,
      component: KUBERNETES_MCP,
      serviceAccountName: KUBERNETES_MCP,
      automountServiceAccountToken: true,
      container: {
        name: KUBERNETES_MCP,
        image: entry.image ?? KUBERNETES_MCP_IMAGE,
        imagePullPolicy: "IfNotPresent",
        args: ["--config", "/etc/kubernetes-mcp-server/config.toml"],
        env: [{ name: "HOME", value: "/tmp" }],
        ports: [{ name: "http", containerPort: KUBERNETES_MCP_PORT, protocol: "TCP" }],
        ...tcpProbes("http"),
        resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { cpu: "500m", memory: "256Mi" } },
        securityContext: restrictedContainerSecurity(),
        volumeMounts: [{ name: "config", mountPath: "/etc/kubernetes-mcp-server", readOnly: true }, TMP_MOUNT],
      },
      volumes: [{ name: "config", configMap: { name: `${KUBERNETES_MCP}-config` } }, scratchVolume("64Mi")],
      podSecurityContext: restrictedPodSecurity(),
      annotations: { "perimeter.dev/ignore": KUBERNETES_MCP_IGNORES },
    }),
    clusterService(config, KUBERNETES_MCP, ns.tools, KUBERNETES_MCP, [{ name: "http", port: KUBERNETES_MCP_PORT }]),
  ];
  out.serviceFiles.push({ path: "kubernetes-mcp-server.yaml", objects });
  for (const target of [...entry.namespaces].sort()) {
    const name = `${config.name}-${KUBERNETES_MCP}-read`;
    out.rbacObjects.push(
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name, namespace: target, labels: standardLabels(config, `${KUBERNETES_MCP}-read`, KUBERNETES_MCP) }, rules: KUBERNETES_READ_RULES } as KubernetesObject,
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name, namespace: target, labels: standardLabels(config, `${KUBERNETES_MCP}-read`, KUBERNETES_MCP) },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
        subjects: [{ kind: "ServiceAccount", name: KUBERNETES_MCP, namespace: ns.tools }],
      } as KubernetesObject,
    );
  }
  out.policyObjects.push(
    networkPolicy(config, {
      name: KUBERNETES_MCP,
      namespace: ns.tools,
      podLabels: selectorLabels(config, KUBERNETES_MCP),
      ingress: [{ from: [plan.peers.guard], ports: tcp([KUBERNETES_MCP_PORT]) }],
      egress: [apiServer(apiServerCidr)],
      annotations: { "perimeter.dev/ignore": API_SERVER_IPBLOCK_NOTE },
    }),
  );
}

/** MCP servers deployed from their own image: each holds only its own credentials and reaches only HTTPS outside. */
export function deployedMcpServerObjects(plan: KubernetesPlan, out: KubernetesOutput): void {
  const { config, ns } = plan;
  if (plan.deployedServers.length === 0) return;
  const objects: KubernetesObject[] = [];
  for (const server of plan.deployedServers) {
    const own = secretFor(plan, server.workload);
    const envEntries = Object.entries(server.config.env)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, value]) => ({ name, value: value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, "$($1)") }));
    objects.push(
      serviceAccount(config, server.workload, ns.tools, "mcp-server", false),
      singletonDeploymentWithoutState(config, server.workload, ns.tools, {
        name: "server",
        image: server.image,
        imagePullPolicy: "IfNotPresent",
        // Secrets first: Kubernetes expands $(VAR) only from variables defined earlier in the list.
        env: [{ name: "HOME", value: "/tmp" }, ...secretEnvironment(own === undefined ? [] : [{ name: own.name, keys: own.keys }]), ...envEntries],
        ports: [{ name: "http", containerPort: server.port, protocol: "TCP" }],
        ...tcpProbes("http"),
        resources: { requests: { cpu: "50m", memory: "128Mi" }, limits: { cpu: "500m", memory: "512Mi" } },
        securityContext: restrictedContainerSecurity(),
        volumeMounts: [TMP_MOUNT],
      }),
      clusterService(config, server.workload, ns.tools, "mcp-server", [{ name: "http", port: server.port }]),
    );
    out.policyObjects.push(
      networkPolicy(config, {
        name: server.workload,
        namespace: ns.tools,
        podLabels: selectorLabels(config, server.workload),
        ingress: [{ from: [plan.peers.guard], ports: tcp([server.port]) }],
        // A tool server calls its own API (Discord, Google...): HTTPS to the public internet, nothing private.
        egress: [publicInternet([443])],
      }),
    );
  }
  out.serviceFiles.push({ path: "mcp-servers.yaml", objects });
}

function singletonDeploymentWithoutState(config: PerimeterConfig, name: string, namespace: string, container: IContainer) {
  return singletonDeployment(config, {
    name,
    namespace,
    component: "mcp-server",
    serviceAccountName: name,
    automountServiceAccountToken: false,
    container,
    volumes: [scratchVolume("128Mi")],
    podSecurityContext: restrictedPodSecurity(),
  });
}

/** get/list/watch on named resources: never secrets, pods/exec, pods/attach, nodes/proxy or serviceaccounts/token. */
export const KUBERNETES_READ_RULES = [
  { apiGroups: [""], resources: ["events", "pods", "pods/log", "services"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["apps"], resources: ["daemonsets", "deployments", "replicasets", "statefulsets"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["batch"], resources: ["cronjobs", "jobs"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["get", "list", "watch"] },
];

/** The tools kubernetes-mcp-server exposes: namespace-scoped reads that the Roles above can answer. */
export const KUBERNETES_MCP_TOOLS = ["events_list", "pods_get", "pods_list_in_namespace", "pods_log", "resources_get", "resources_list"];

/**
 * kubernetes-mcp-server's config, read-only. In a cluster it uses its in-cluster ServiceAccount; on a Compose host,
 * a kubeconfig file mounted for it (the same TOML otherwise, so both targets refuse the same things).
 */
export function kubernetesMcpToml(options: { port: number | string; kubeconfig?: string } = { port: 8080 }): string {
  const quoted = (values: readonly string[]) => `[${values.map((value) => JSON.stringify(value)).join(", ")}]`;
  return [
    "# kubernetes-mcp-server, read-only (rendered by perimeter). Never add the \"config\" toolset: its",
    "# configuration_view returns the kubeconfig, token included.",
    `port = "${options.port}"`,
    "read_only = true",
    "stateless = true",
    ...(options.kubeconfig === undefined
      ? ['cluster_provider_strategy = "in-cluster"']
      : [`kubeconfig = ${JSON.stringify(options.kubeconfig)}`, 'cluster_provider_strategy = "kubeconfig"']),
    'list_output = "yaml"',
    `toolsets = ${quoted(["core"])}`,
    `enabled_tools = ${quoted(KUBERNETES_MCP_TOOLS)}`,
    "",
    "# Refused even where RBAC would allow: Secret contents, and ConfigMaps, which often hold credentials too.",
    "[[denied_resources]]",
    'group = ""',
    'version = "v1"',
    'kind = "Secret"',
    "",
    "[[denied_resources]]",
    'group = ""',
    'version = "v1"',
    'kind = "ConfigMap"',
    "",
  ].join("\n");
}
