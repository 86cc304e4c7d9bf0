// The agent (Hermes) in the system namespace: its data volume, its config seed, the Deployment in seed 003's working
// shape for the unmodified s6 image, and the policies that let it reach mcp-guard, llm-proxy and egress-proxy alone.
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { INetworkPolicyIngressRule } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyIngressRule";
import { HERMES_ENV_PATH, hermesAgentFiles } from "../hermes.ts";
import type { HermesAgentFiles } from "../hermes.ts";
import { AGENT_WORKLOAD, EGRESS_PROXY, HERMES_UID } from "../plan.ts";
import { secretFor } from "./context.ts";
import type { KubernetesOutput, KubernetesPlan } from "./context.ts";
import { AGENT_SERVICES, agentServiceNames, dnsNamesPolicy, hostsOnly } from "./dns.ts";
import { selectorLabels } from "./names.ts";
import { defaultDeny, inNamespace, networkPolicy, tcp } from "./network.ts";
import { configMap, serviceAccount } from "./objects.ts";
import type { KubernetesObject } from "./objects.ts";
import { AGENT_SECURITY_NOTE, agentPodSecurity, clusterService, environment, persistentVolumeClaim, restrictedContainerSecurity, singletonDeployment } from "./workloads.ts";

const AGENT_SECURITY_IGNORES = [
  "K8S-RUN-AS-ROOT=the Hermes image's s6 init starts as root and drops the gateway to uid 10000; runAsNonRoot breaks it (seed 003)",
  "K8S-CAPABILITIES-NOT-DROPPED=drops NET_RAW; s6 needs CHOWN/SETUID/SETGID to drop to uid 10000 (seed 003)",
  "K8S-READONLY-ROOTFS=the agent installs packages for the skills it writes (seed 003); /opt/data and /tmp are volumes",
].join("\n");

type AgentPort = { name: string; port: number };

/** The agent's objects and its namespace's policies (written first in network-policies.yaml). */
export function agentObjects(plan: KubernetesPlan, out: KubernetesOutput): { objects: KubernetesObject[]; policies: KubernetesObject[] } {
  const { config, ns } = plan;
  const agentPorts: AgentPort[] = [
    ...(config.agent.apiServer.enabled ? [{ name: "api", port: config.agent.apiServer.port }] : []),
    ...(config.agent.dashboard.enabled ? [{ name: "dashboard", port: config.agent.dashboard.port }] : []),
  ];
  const hermes = hermesAgentFiles(config, plan.endpoints);
  const objects: KubernetesObject[] = [
    serviceAccount(config, AGENT_WORKLOAD, ns.system, "agent", false),
    persistentVolumeClaim(config, "hermes-data", ns.system, "agent", config.agent.data.size),
    configMap(config, "hermes-config-seed", ns.system, "agent", { "config.yaml": hermes.configYaml, "hermes.env": hermes.envFile }),
    agentDeployment(plan, hermes, agentPorts) as KubernetesObject,
  ];
  if (agentPorts.length > 0) objects.push(clusterService(config, AGENT_WORKLOAD, ns.system, "agent", agentPorts));
  return { objects, policies: agentPolicies(plan, out, agentPorts) };
}

function agentDeployment(plan: KubernetesPlan, hermes: HermesAgentFiles, agentPorts: readonly AgentPort[]): IDeployment {
  const { config, ns } = plan;
  const agentSecret = secretFor(plan, AGENT_WORKLOAD);
  return singletonDeployment(config, {
    name: AGENT_WORKLOAD,
    namespace: ns.system,
    component: "agent",
    serviceAccountName: AGENT_WORKLOAD,
    automountServiceAccountToken: false,
    annotations: { "perimeter.dev/security-notes": AGENT_SECURITY_NOTE, "perimeter.dev/ignore": AGENT_SECURITY_IGNORES },
    initContainers: [
      {
        name: "seed-config",
        image: config.agent.image,
        imagePullPolicy: "IfNotPresent",
        command: [
          "sh",
          "-c",
          'if [ ! -f /opt/data/config.yaml ]; then cp /seed/config.yaml /opt/data/config.yaml && echo "seeded config.yaml"; else echo "config.yaml already present, leaving it"; fi',
        ],
        resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "100m", memory: "64Mi" } },
        securityContext: { ...restrictedContainerSecurity(), runAsUser: HERMES_UID, runAsGroup: HERMES_UID },
        volumeMounts: [
          { name: "data", mountPath: "/opt/data" },
          { name: "seed", mountPath: "/seed", readOnly: true },
        ],
      },
    ],
    container: {
      name: "hermes",
      image: config.agent.image,
      imagePullPolicy: "IfNotPresent",
      args: ["gateway", "run"],
      env: environment(hermes.environment, agentSecret?.name ?? AGENT_WORKLOAD),
      ...(agentPorts.length === 0 ? {} : { ports: agentPorts.map((port) => ({ name: port.name, containerPort: port.port, protocol: "TCP" })) }),
      securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["NET_RAW"] } },
      // Ready only once this process's gateway runs with every platform connected (gateway_state.json, hermes.ts).
      readinessProbe: {
        exec: { command: [...hermes.healthcheck] },
        initialDelaySeconds: 20,
        periodSeconds: 10,
        timeoutSeconds: 5,
        failureThreshold: 30,
      },
      resources: config.agent.resources,
      volumeMounts: [
        { name: "data", mountPath: "/opt/data" },
        // Hermes loads .env over its environment; read-only, the agent cannot rewrite it to undo the proxy or allowlists.
        { name: "seed", mountPath: HERMES_ENV_PATH, subPath: "hermes.env", readOnly: true },
        { name: "tmp", mountPath: "/tmp" },
      ],
    },
    volumes: [
      { name: "data", persistentVolumeClaim: { claimName: "hermes-data" } },
      { name: "seed", configMap: { name: "hermes-config-seed" } },
      { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
    ],
    podSecurityContext: agentPodSecurity(),
    nameResolution: plan.resolution.kind === "hosts" ? hostsOnly(plan.resolution.addresses, AGENT_SERVICES, ns.tools) : undefined,
  });
}

function agentPolicies(plan: KubernetesPlan, out: KubernetesOutput, agentPorts: readonly AgentPort[]): KubernetesObject[] {
  const { config, ns } = plan;
  const agentIngress: INetworkPolicyIngressRule[] =
    agentPorts.length > 0 && config.kubernetes.ingressNamespace !== undefined
      ? [{ from: [inNamespace(config.kubernetes.ingressNamespace)], ports: tcp(agentPorts.map((port) => port.port)) }]
      : [];
  // No DNS rule for the agent's namespace: a plain NetworkPolicy that opens port 53 opens it for every name.
  if (plan.resolution.kind === "cilium-names") {
    out.ciliumObjects.push(dnsNamesPolicy(config, { name: `${AGENT_WORKLOAD}-dns`, namespace: ns.system, podLabels: selectorLabels(config, AGENT_WORKLOAD), names: agentServiceNames(config) }));
  }
  return [
    defaultDeny(config, ns.system),
    networkPolicy(config, {
      name: AGENT_WORKLOAD,
      namespace: ns.system,
      podLabels: selectorLabels(config, AGENT_WORKLOAD),
      ingress: agentIngress,
      egress: [
        { to: [plan.peers.guard], ports: tcp([plan.ports.mcp]) },
        { to: [plan.peers.llmProxy], ports: tcp([plan.ports.llm]) },
        { to: [inNamespace(ns.tools, selectorLabels(config, EGRESS_PROXY))], ports: tcp([plan.ports.egress]) },
      ],
    }),
  ];
}
