// mcp-guard on Kubernetes: the agent's one MCP endpoint, holding every upstream credential in Secrets of its own; its
// policy admits the agent on the MCP port and the dashboard on the admin port, and lets it reach exactly its upstreams.
import { isIP } from "node:net";
import type { INetworkPolicyEgressRule } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule";
import { EGRESS_PROXY, KUBERNETES_MCP, KUBERNETES_MCP_PORT, MCP_GUARD, RUNTIME_CONFIG_PATH, SANDBOX_RUNNER, approverEgressClient, externalHttpServers, stdioServers, urlPort } from "../plan.ts";
import { observabilityIngress } from "./context.ts";
import type { KubernetesOutput, KubernetesPlan } from "./context.ts";
import { dashboardIngress } from "./dashboard.ts";
import { fqdnPolicy } from "./fqdn.ts";
import { selectorLabels } from "./names.ts";
import { inNamespace, networkPolicy, publicInternet, tcp } from "./network.ts";
import { inClusterService } from "./objects.ts";
import { perimeterService } from "./perimeter-service.ts";

export function mcpGuardObjects(plan: KubernetesPlan, out: KubernetesOutput): void {
  const { config, ns, observability } = plan;
  const { admin: adminPort, mcp: mcpPort } = plan.ports;
  const stdio = stdioServers(config);
  out.serviceFiles.push({
    path: "mcp-guard.yaml",
    objects: perimeterService(plan, {
      name: MCP_GUARD,
      service: "mcp-guard",
      port: mcpPort,
      configPath: RUNTIME_CONFIG_PATH,
      secrets: plan.secrets.filter((secret) => secret.workload === MCP_GUARD).map((secret) => ({ name: secret.name, keys: secret.keys })),
      resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "1", memory: stdio.length > 0 ? "1Gi" : "512Mi" } },
      tmpSize: stdio.length > 0 ? "1Gi" : "128Mi",
      // The admin port: the dashboard's approvals and mcp-guard's audit feed (and Prometheus when enabled).
      extraPorts: [{ name: "admin", port: adminPort }],
      metricsPort: observability === undefined ? undefined : adminPort,
    }),
  });
  out.policyObjects.push(
    networkPolicy(config, {
      name: MCP_GUARD,
      namespace: ns.tools,
      podLabels: selectorLabels(config, MCP_GUARD),
      ingress: [{ from: [plan.peers.agent], ports: tcp([mcpPort]) }, dashboardIngress(config, adminPort), ...observabilityIngress(plan, [adminPort])],
      egress: guardEgress(plan, out, stdio),
    }),
  );
}

/** Where mcp-guard may connect: the approver bot's proxy, its deployed upstreams by selector, and the internet only for external or stdio servers. */
function guardEgress(plan: KubernetesPlan, out: KubernetesOutput, stdio: readonly string[]): INetworkPolicyEgressRule[] {
  const { config, ns, cilium } = plan;
  const egress: INetworkPolicyEgressRule[] = [];
  if (approverEgressClient(config) !== undefined) egress.push({ to: [inNamespace(ns.tools, selectorLabels(config, EGRESS_PROXY))], ports: tcp([plan.ports.egress]) });
  if (plan.sandboxServer !== undefined) egress.push({ to: [inNamespace(ns.tools, selectorLabels(config, SANDBOX_RUNNER))], ports: tcp([plan.ports.sandbox]) });
  if (plan.kubernetesServer !== undefined) egress.push({ to: [inNamespace(ns.tools, selectorLabels(config, KUBERNETES_MCP))], ports: tcp([KUBERNETES_MCP_PORT]) });
  for (const server of plan.deployedServers) egress.push({ to: [inNamespace(ns.tools, selectorLabels(config, server.workload))], ports: tcp([server.port]) });
  // An upstream addressed by Service name (<service>.<namespace>.svc) is reached by namespace selector, like seed
  // 003's colony MCP; one addressed by IP literal cannot be named safely and is refused reachability with a warning.
  const external: Array<[string, URL]> = [];
  for (const [name, url] of externalHttpServers(config)) {
    const inCluster = inClusterService(url.hostname);
    if (inCluster !== undefined) egress.push({ to: [inNamespace(inCluster.namespace)], ports: tcp([urlPort(url)]) });
    else if (isIP(url.hostname.replace(/^\[|\]$/g, "")) !== 0) out.warnings.push(`mcp.servers.${name}: ${url.hostname} is an address literal, which a NetworkPolicy cannot match reliably (DNAT); mcp-guard may not reach it. Use its Service name (<service>.<namespace>.svc) or deploy it with image.`);
    else external.push([name, url]);
  }
  const internetPorts = [...external.map(([, url]) => urlPort(url)), ...(stdio.length > 0 ? [443] : [])];
  if (internetPorts.length > 0 && !cilium) egress.push(publicInternet(internetPorts));
  if (internetPorts.length > 0 && cilium) {
    if (stdio.length > 0) {
      // stdio children call hosts render cannot know; keep the broad rule for them and say so.
      egress.push(publicInternet(internetPorts));
      out.warnings.push(`stdio MCP servers (${stdio.join(", ")}) run inside mcp-guard and call hosts render cannot list: mcp-guard keeps a public-internet egress rule on 443 even with cni: cilium`);
    } else {
      out.ciliumObjects.push(fqdnPolicy(config, MCP_GUARD, ns.tools, external.map(([, url]) => ({ host: url.hostname, ports: [urlPort(url)], requireSni: true }))));
    }
  }
  return egress;
}
