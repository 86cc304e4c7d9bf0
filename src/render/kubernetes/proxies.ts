// The two proxies between the agent and the internet: egress-proxy (the agent's only way out, and the approver
// bot's as a client of its own), the sandbox's own egress proxy (only the sandbox allowlist), and llm-proxy (the only
// holder of provider keys). Each gets its workload, its NetworkPolicy and, with Cilium, its FQDN policy.
import { isIP } from "node:net";
import type { IVolume } from "kubernetes-models/v1/Volume";
import type { INetworkPolicyEgressRule } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule";
import type { HostRuleInput } from "../../config/index.ts";
import {
  EGRESS_PROXY,
  LLM_PROXY,
  RUNTIME_CONFIG_PATH,
  SANDBOX_EGRESS_CONFIG_PATH,
  SANDBOX_EGRESS_PROXY,
  approverEgressClient,
  egressMetricsPort,
  renderedEgressClients,
  urlPort,
} from "../plan.ts";
import { observabilityIngress, secretsOf } from "./context.ts";
import type { KubernetesOutput, KubernetesPlan } from "./context.ts";
import { dashboardIngress } from "./dashboard.ts";
import { fqdnPolicy, ruleCidrs, rulePorts } from "./fqdn.ts";
import { selectorLabels } from "./names.ts";
import { inNamespace, networkPolicy, publicInternet, tcp } from "./network.ts";
import { inClusterService } from "./objects.ts";
import { perimeterService } from "./perimeter-service.ts";

export function egressProxyObjects(plan: KubernetesPlan, out: KubernetesOutput): void {
  const { config, ns, cilium } = plan;
  const approverClient = approverEgressClient(config);
  const egressRules = config.egress.allow.concat(renderedEgressClients(config).flatMap((client) => client.allow));
  // Its metrics listener serves /healthz and the audit feed to the dashboard, and /metrics to Prometheus when enabled.
  const metricsPort = egressMetricsPort(config);
  out.serviceFiles.push({
    path: "egress-proxy.yaml",
    objects: perimeterService(plan, {
      name: EGRESS_PROXY,
      service: "egress-proxy",
      port: plan.ports.egress,
      configPath: RUNTIME_CONFIG_PATH,
      secrets: secretsOf(plan, EGRESS_PROXY),
      resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "1", memory: "256Mi" } },
      tmpSize: "64Mi",
      extraPorts: [{ name: "metrics", port: metricsPort }],
      metricsPort: plan.observability === undefined ? undefined : metricsPort,
    }),
  });
  const egress: INetworkPolicyEgressRule[] = [];
  if (!cilium && egressRules.length > 0) egress.push(publicInternet(rulePorts(egressRules)));
  for (const cidr of ruleCidrs(egressRules)) egress.push({ to: [{ ipBlock: { cidr } }], ports: tcp(rulePorts(egressRules)) });
  out.policyObjects.push(
    networkPolicy(config, {
      name: EGRESS_PROXY,
      namespace: ns.tools,
      podLabels: selectorLabels(config, EGRESS_PROXY),
      ingress: [
        { from: [plan.peers.agent], ports: tcp([plan.ports.egress]) },
        ...(approverClient === undefined ? [] : [{ from: [plan.peers.guard], ports: tcp([plan.ports.egress]) }]),
        dashboardIngress(config, metricsPort),
        ...observabilityIngress(plan, [metricsPort]),
      ],
      egress,
      annotations: ruleCidrs(egressRules).length === 0 ? undefined : { "perimeter.dev/ignore": "K8S-NETPOL-IPBLOCK-IN-CLUSTER=allowCidr exceptions the operator declared in egress rules" },
    }),
  );
  if (cilium && egressRules.length > 0) out.ciliumObjects.push(fqdnPolicy(config, EGRESS_PROXY, ns.tools, egressRules));
}

/** The sandbox's own egress proxy, only with a sandbox allowlist: reachable from task pods alone. */
export function sandboxEgressProxyObjects(plan: KubernetesPlan, out: KubernetesOutput): void {
  const { config, ns, cilium, sandboxAllow } = plan;
  if (plan.sandboxServer === undefined || sandboxAllow === undefined) return;
  const metricsPort = egressMetricsPort(config);
  const configVolume: IVolume = { name: "config", configMap: { name: "perimeter-config", items: [{ key: "sandbox-egress.yaml", path: "sandbox-egress.yaml" }] } };
  out.serviceFiles.push({
    path: "egress-proxy-sandbox.yaml",
    objects: perimeterService(plan, {
      name: SANDBOX_EGRESS_PROXY,
      service: "egress-proxy",
      port: plan.ports.egress,
      configPath: SANDBOX_EGRESS_CONFIG_PATH,
      secrets: secretsOf(plan, SANDBOX_EGRESS_PROXY),
      resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { cpu: "500m", memory: "256Mi" } },
      tmpSize: "64Mi",
      configVolume,
      extraPorts: [{ name: "metrics", port: metricsPort }],
    }),
  });
  out.policyObjects.push(
    networkPolicy(config, {
      name: SANDBOX_EGRESS_PROXY,
      namespace: ns.tools,
      podLabels: selectorLabels(config, SANDBOX_EGRESS_PROXY),
      ingress: [{ from: [inNamespace(ns.sandbox, selectorLabels(config, "perimeter-sandbox-task"))], ports: tcp([plan.ports.egress]) }, dashboardIngress(config, metricsPort)],
      egress: cilium ? [] : [publicInternet(rulePorts(sandboxAllow))],
    }),
  );
  if (cilium) out.ciliumObjects.push(fqdnPolicy(config, SANDBOX_EGRESS_PROXY, ns.tools, sandboxAllow));
}

export function llmProxyObjects(plan: KubernetesPlan, out: KubernetesOutput): void {
  const { config, ns, cilium } = plan;
  const llmPort = plan.ports.llm;
  out.serviceFiles.push({
    path: "llm-proxy.yaml",
    objects: perimeterService(plan, {
      name: LLM_PROXY,
      service: "llm-proxy",
      port: llmPort,
      configPath: RUNTIME_CONFIG_PATH,
      secrets: secretsOf(plan, LLM_PROXY),
      resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "1", memory: "512Mi" } },
      tmpSize: "64Mi",
      metricsPort: llmPort,
    }),
  });
  const egress: INetworkPolicyEgressRule[] = [];
  const publicProviderHosts: HostRuleInput[] = [];
  const servedNames = new Set(plan.served.map((model) => model.provider));
  for (const [name, provider] of Object.entries(config.llm.providers)) {
    if (servedNames.has(name)) continue;
    const url = new URL(provider.baseUrl);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const inCluster = inClusterService(host);
    if (inCluster !== undefined) {
      egress.push({ to: [inNamespace(inCluster.namespace)], ports: tcp([urlPort(url)]) });
    } else if (isIP(host) !== 0) {
      egress.push({ to: [{ ipBlock: { cidr: `${host}/${isIP(host) === 4 ? 32 : 128}` } }], ports: tcp([urlPort(url)]) });
      out.warnings.push(`llm.providers.${name}: ${host} is an address literal; render allowed it with an ipBlock, which only matches if no Service DNAT sits in front of it. Prefer a Service name (<service>.<namespace>.svc).`);
    } else {
      if (provider.allowPrivateAddress) out.warnings.push(`llm.providers.${name}: ${host} is allowed a private address, but render can only open the public internet for a name it cannot place; use its Service name (<service>.<namespace>.svc) or serve it with serve:`);
      publicProviderHosts.push({ host, ports: [urlPort(url)], requireSni: true });
    }
  }
  for (const model of plan.served) egress.push({ to: [inNamespace(ns.llm, selectorLabels(config, model.provider))], ports: tcp([model.port]) });
  if (publicProviderHosts.length > 0) {
    if (cilium) out.ciliumObjects.push(fqdnPolicy(config, LLM_PROXY, ns.tools, publicProviderHosts));
    else egress.push(publicInternet(rulePorts(publicProviderHosts)));
  }
  const hasLiteralProvider = egress.some((rule) => rule.to?.some((peer) => peer.ipBlock !== undefined && peer.ipBlock.cidr !== "0.0.0.0/0" && peer.ipBlock.cidr !== "::/0"));
  out.policyObjects.push(
    networkPolicy(config, {
      name: LLM_PROXY,
      namespace: ns.tools,
      podLabels: selectorLabels(config, LLM_PROXY),
      ingress: [{ from: [plan.peers.agent], ports: tcp([llmPort]) }, dashboardIngress(config, llmPort), ...observabilityIngress(plan, [llmPort])],
      egress,
      annotations: hasLiteralProvider ? { "perimeter.dev/ignore": "K8S-NETPOL-IPBLOCK-IN-CLUSTER=an llm provider is configured by address literal" } : undefined,
    }),
  );
}
