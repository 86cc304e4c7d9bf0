// How the pods that run untrusted code (the agent, and sandbox tasks) find the perimeter's Services without DNS
// becoming a way out. A lookup of `<secret>.attacker.example` travels through kube-dns to CoreDNS's upstream and on
// to the attacker's name server, past every proxy and audit record; a NetworkPolicy can open port 53 or not, but
// cannot tell one name from another. So:
//   - with fixed addresses (`kubernetes.serviceIPs`) those pods have no DNS at all: the few in-cluster names they
//     use are written into their /etc/hosts (hostAliases) pointing at Services with a pinned clusterIP, and their
//     resolver is their own loopback, where nothing answers, so every other lookup fails at once inside the pod;
//   - with Cilium and no fixed addresses, they keep the cluster resolver, but a CiliumNetworkPolicy lets through
//     only queries for exactly those names (its DNS proxy refuses the rest);
//   - neither: render refuses, saying how to choose the addresses.
// Pinned ClusterIPs were chosen over other DNS-free ways because they are the only stable address a Service has
// (pod IPs change on every restart; service-link variables exist only for Services in the pod's own namespace),
// and keeping the names in /etc/hosts leaves every URL, NO_PROXY entry and Host header exactly as with DNS.
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { PerimeterConfig } from "../../config/index.ts";
import { EGRESS_PROXY, LLM_PROXY, MCP_GUARD, RenderError, SANDBOX_EGRESS_PROXY } from "../plan.ts";
import { namespaces, serviceHost, standardLabels } from "./names.ts";

export type PinnedService = typeof MCP_GUARD | typeof LLM_PROXY | typeof EGRESS_PROXY | typeof SANDBOX_EGRESS_PROXY;

/** The Services the agent calls directly (its HTTPS_PROXY, its model endpoint and its one MCP server). */
export const AGENT_SERVICES = [EGRESS_PROXY, LLM_PROXY, MCP_GUARD] as const;

export type NameResolution =
  | { readonly kind: "hosts"; readonly addresses: Readonly<Partial<Record<PinnedService, string>>> }
  | { readonly kind: "cilium-names" };

/** A resolver nobody answers: lookups fail at once (connection refused) and no query leaves the pod. */
export const NO_RESOLVER: Pick<IPodSpec, "dnsPolicy" | "dnsConfig"> = { dnsPolicy: "None", dnsConfig: { nameservers: ["127.0.0.1"] } };

/**
 * Decides, once per render, how the agent and the tasks resolve names. `sandboxProxy` says whether the sandbox's
 * egress proxy is deployed (a sandbox with `network.allow`), which then needs an address too.
 */
export function nameResolution(config: PerimeterConfig, options: { sandboxProxy: boolean }): NameResolution {
  const pinned = config.kubernetes.serviceIPs;
  const needed: PinnedService[] = [...AGENT_SERVICES, ...(options.sandboxProxy ? [SANDBOX_EGRESS_PROXY as PinnedService] : [])];
  if (pinned === undefined) {
    if (config.kubernetes.cni === "cilium") return { kind: "cilium-names" };
    const example = needed.map((service, index) => `${service}: 10.43.0.${240 + index}`).join(", ");
    throw new RenderError(
      `kubernetes.serviceIPs is required without kubernetes.cni: cilium: a NetworkPolicy cannot limit DNS to some names, so ${options.sandboxProxy ? "the agent and the sandbox tasks get no resolver and reach" : "the agent gets no resolver and reaches"} ${needed.join(", ")} at fixed ClusterIPs written into /etc/hosts. Choose ${needed.length} unused addresses in the cluster's Service CIDR, preferably among its lowest ones, which Kubernetes keeps for fixed assignment (the kubernetes Service holds the first: \`kubectl get service kubernetes -n default -o jsonpath='{.spec.clusterIP}'\`; k3s uses 10.43.0.0/16, kubeadm 10.96.0.0/12), and write e.g. serviceIPs: { ${example} }`,
    );
  }
  const missing = needed.filter((service) => pinned[service] === undefined);
  if (missing.length > 0) {
    throw new RenderError(`kubernetes.serviceIPs has no address for ${missing.join(", ")}: sandbox.network.allow deploys the sandbox's own egress proxy, which the tasks reach by its fixed ClusterIP; add ${missing.map((service) => `${service}: <a free address of the Service CIDR>`).join(", ")}`);
  }
  const holders = new Map<string, string[]>();
  for (const service of needed) holders.set(pinned[service] as string, [...(holders.get(pinned[service] as string) ?? []), service]);
  for (const [address, services] of holders) {
    if (services.length > 1) throw new RenderError(`kubernetes.serviceIPs gives ${address} to ${services.join(" and ")}: each Service needs its own address (the API server would refuse the second one half-way through the apply)`);
  }
  return { kind: "hosts", addresses: Object.fromEntries(needed.map((service) => [service, pinned[service] as string])) };
}

/** The clusterIP a Service is pinned to, when it is one the agent or the tasks reach without DNS. */
export function pinnedClusterIP(resolution: NameResolution, service: string): string | undefined {
  return resolution.kind === "hosts" ? resolution.addresses[service as PinnedService] : undefined;
}

/** Pod fields for a pod that must reach `services` (in `namespace`) with no DNS: /etc/hosts entries and no resolver. */
export function hostsOnly(addresses: Readonly<Partial<Record<PinnedService, string>>>, services: readonly PinnedService[], namespace: string): Pick<IPodSpec, "dnsPolicy" | "dnsConfig" | "hostAliases"> {
  const hostAliases = services.map((service) => {
    const ip = addresses[service];
    if (ip === undefined) throw new RenderError(`internal: no address for ${service}`);
    return { ip, hostnames: [serviceHost(service, namespace)] };
  });
  return { ...NO_RESOLVER, hostAliases };
}

/**
 * A CiliumNetworkPolicy that lets the selected pods ask kube-dns for exactly these names. matchName only: a
 * matchPattern would let a label of the query carry data again.
 */
export function dnsNamesPolicy(config: PerimeterConfig, options: { name: string; namespace: string; podLabels: Record<string, string>; names: readonly string[] }) {
  return {
    apiVersion: "cilium.io/v2",
    kind: "CiliumNetworkPolicy",
    metadata: { name: options.name, namespace: options.namespace, labels: standardLabels(config, options.name, "network-policy") },
    spec: {
      endpointSelector: { matchLabels: options.podLabels },
      egress: [
        {
          toEndpoints: [{ matchLabels: { "k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns" } }],
          toPorts: [{ ports: [{ port: "53", protocol: "ANY" }], rules: { dns: [...options.names].sort().map((name) => ({ matchName: name })) } }],
        },
      ],
    },
  };
}

/** The names the agent looks up: its three perimeter Services, nothing else (the proxy resolves the internet). */
export function agentServiceNames(config: PerimeterConfig): string[] {
  return AGENT_SERVICES.map((service) => serviceHost(service, namespaces(config).tools));
}
