// The state one Kubernetes render shares across its object families: the facts decided once from the declaration
// (`KubernetesPlan`, read-only) and the lists each family appends to (`KubernetesOutput`). Each family module is a
// function of both, so a reader changing one family reads one file.
import type { IVolume } from "kubernetes-models/v1/Volume";
import type { INetworkPolicyIngressRule } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyIngressRule";
import type { INetworkPolicyPeer } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer";
import type { McpServerConfig, PerimeterConfig } from "../../config/index.ts";
import { endpoints as endpointsFor } from "../endpoints.ts";
import type { Endpoints } from "../endpoints.ts";
import {
  AGENT_WORKLOAD,
  LLM_PROXY,
  MCP_GUARD,
  RenderError,
  SANDBOX_EGRESS_PROXY,
  builtinServer,
  deployedMcpServers,
  feedTokenSecret,
  portOf,
  sandboxAllowlist,
  sandboxServerName,
  secretPlan,
  servedModels,
} from "../plan.ts";
import type { DeployedMcpServer, SecretSpec, ServedModel } from "../plan.ts";
import { nameResolution } from "./dns.ts";
import type { NameResolution } from "./dns.ts";
import { namespaces, selectorLabels } from "./names.ts";
import { inNamespace, tcp } from "./network.ts";
import type { KubernetesObject } from "./objects.ts";

export interface KubernetesPlan {
  readonly config: PerimeterConfig;
  readonly ns: ReturnType<typeof namespaces>;
  readonly endpoints: Endpoints;
  readonly secrets: readonly SecretSpec[];
  readonly sandboxServer: string | undefined;
  readonly kubernetesServer: [string, McpServerConfig] | undefined;
  readonly deployedServers: readonly DeployedMcpServer[];
  readonly served: readonly ServedModel[];
  readonly sandboxAllow: ReturnType<typeof sandboxAllowlist>;
  readonly cilium: boolean;
  /** The namespace Prometheus scrapes from, when enabled. */
  readonly observability: string | undefined;
  readonly apiServerCidr: string | undefined;
  readonly resolution: NameResolution;
  readonly ports: { readonly mcp: number; readonly admin: number; readonly llm: number; readonly egress: number; readonly sandbox: number };
  readonly peers: { readonly agent: INetworkPolicyPeer; readonly guard: INetworkPolicyPeer; readonly llmProxy: INetworkPolicyPeer };
  /** perimeter.yaml from the perimeter-config ConfigMap, as every perimeter pod mounts it. */
  readonly configVolume: IVolume;
}

/** What the object families add, in the order the manifests list them. */
export interface KubernetesOutput {
  readonly warnings: string[];
  readonly configObjects: KubernetesObject[];
  /** One manifest file per component, written in this order after the shared files. */
  readonly serviceFiles: Array<{ path: string; objects: KubernetesObject[] }>;
  readonly rbacObjects: KubernetesObject[];
  readonly policyObjects: KubernetesObject[];
  readonly ciliumObjects: KubernetesObject[];
  readonly sandboxObjects: KubernetesObject[];
  readonly llmObjects: KubernetesObject[];
}

export function planKubernetes(config: PerimeterConfig): KubernetesPlan {
  const ns = namespaces(config);
  const secrets = secretPlan(config);
  const sandboxServer = sandboxServerName(config);
  const sandboxAllow = sandboxAllowlist(config);
  // The sandbox's own egress proxy serves its audit feed too; only this target runs it as a workload of its own.
  if (sandboxServer !== undefined && sandboxAllow !== undefined) {
    secrets.push({ name: SANDBOX_EGRESS_PROXY, workload: SANDBOX_EGRESS_PROXY, namespace: "tools", keys: [feedTokenSecret(config)], purpose: "the audit feed token" });
  }
  const kubernetesServer = builtinServer(config, "kubernetes-readonly");
  const apiServerCidr = config.kubernetes.apiServerCidr;
  if ((sandboxServer !== undefined || kubernetesServer !== undefined) && apiServerCidr === undefined) {
    throw new RenderError(
      `kubernetes.apiServerCidr is required: the ${sandboxServer !== undefined ? "sandbox runner" : "read-only Kubernetes MCP server"} must reach the API server, and NetworkPolicy sees its address after the kubernetes Service's DNAT. Set it to the endpoint address, e.g. the output of \`kubectl get endpoints kubernetes -n default -o jsonpath='{.subsets[0].addresses[0].ip}'\` with /32 (k3s: the server node's IP)`,
    );
  }
  return {
    config,
    ns,
    endpoints: endpointsFor(config, "kubernetes"),
    secrets,
    sandboxServer,
    kubernetesServer,
    deployedServers: deployedMcpServers(config),
    served: servedModels(config),
    sandboxAllow,
    cilium: config.kubernetes.cni === "cilium",
    observability: config.kubernetes.observability.enabled ? config.kubernetes.observability.namespace : undefined,
    apiServerCidr,
    // DNS is a way out that no proxy sees: the agent and the tasks resolve only their few in-cluster names (dns.ts).
    resolution: nameResolution(config, { sandboxProxy: sandboxServer !== undefined && sandboxAllow !== undefined }),
    ports: {
      mcp: portOf(config.mcp.listen),
      admin: portOf(config.mcp.admin.listen),
      llm: portOf(config.llm.listen),
      egress: portOf(config.egress.listen),
      sandbox: portOf(config.sandbox.listen),
    },
    peers: {
      agent: inNamespace(ns.system, selectorLabels(config, AGENT_WORKLOAD)),
      guard: inNamespace(ns.tools, selectorLabels(config, MCP_GUARD)),
      llmProxy: inNamespace(ns.tools, selectorLabels(config, LLM_PROXY)),
    },
    configVolume: { name: "config", configMap: { name: "perimeter-config", items: [{ key: "perimeter.yaml", path: "perimeter.yaml" }] } },
  };
}

export function emptyOutput(): KubernetesOutput {
  return { warnings: [], configObjects: [], serviceFiles: [], rbacObjects: [], policyObjects: [], ciliumObjects: [], sandboxObjects: [], llmObjects: [] };
}

export function secretFor(plan: KubernetesPlan, name: string): SecretSpec | undefined {
  return plan.secrets.find((secret) => secret.name === name);
}

/** The named Secrets that exist, as the key lists a pod's environment reads. */
export function secretsOf(plan: KubernetesPlan, ...names: string[]): Array<{ name: string; keys: readonly string[] }> {
  return names.flatMap((name) => {
    const secret = secretFor(plan, name);
    return secret === undefined ? [] : [{ name: secret.name, keys: secret.keys }];
  });
}

/** Prometheus' ingress to these ports, when observability is enabled. */
export function observabilityIngress(plan: KubernetesPlan, ports: number[]): INetworkPolicyIngressRule[] {
  return plan.observability === undefined ? [] : [{ from: [inNamespace(plan.observability)], ports: tcp(ports) }];
}
