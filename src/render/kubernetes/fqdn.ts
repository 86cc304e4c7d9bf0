// Egress by host rule: the ports and declared CIDR exceptions of a set of allowlist rules, and the Cilium policy that
// lets one proxy reach exactly those names (plain NetworkPolicy cannot name a host).
import type { PerimeterConfig } from "../../config/index.ts";
import { parseHostRule } from "../../config/index.ts";
import type { HostRule, HostRuleInput } from "../../config/index.ts";
import { RenderError } from "../plan.ts";
import { selectorLabels, standardLabels } from "./names.ts";
import type { KubernetesObject } from "./objects.ts";

function ruleOf(input: HostRuleInput): HostRule {
  const parsed = typeof input === "string" ? parseHostRule(input) : parseHostRule(input.host, input.ports);
  if (!parsed.ok) throw new RenderError(parsed.reason);
  return parsed.rule;
}

export function rulePorts(rules: readonly HostRuleInput[]): number[] {
  return [...new Set(rules.flatMap((rule) => ruleOf(rule).ports))].sort((a, b) => a - b);
}

export function ruleCidrs(rules: readonly HostRuleInput[]): string[] {
  return [...new Set(rules.flatMap((rule) => (typeof rule === "string" ? [] : (rule.allowCidr ?? []))))].sort();
}

/** A CiliumNetworkPolicy that lets one proxy reach only the allowlisted names (and DNS, which toFQDNs needs). */
export function fqdnPolicy(config: PerimeterConfig, workload: string, namespace: string, rules: readonly HostRuleInput[]): KubernetesObject {
  const byPorts = new Map<string, { ports: number[]; selectors: Array<Record<string, string>> }>();
  for (const input of rules) {
    const rule = ruleOf(input);
    const key = rule.ports.join(",");
    const group = byPorts.get(key) ?? { ports: [...rule.ports], selectors: [] };
    if (rule.match === "exact" || rule.match === "apex-and-subdomains") group.selectors.push({ matchName: rule.host });
    if (rule.match !== "exact") group.selectors.push({ matchPattern: `*.${rule.host}` });
    byPorts.set(key, group);
  }
  const fqdnRules = [...byPorts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, group]) => ({
      toFQDNs: [...new Map(group.selectors.map((selector) => [JSON.stringify(selector), selector])).values()].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)),
      toPorts: [{ ports: group.ports.map((port) => ({ port: String(port), protocol: "TCP" })) }],
    }));
  return {
    apiVersion: "cilium.io/v2",
    kind: "CiliumNetworkPolicy",
    metadata: { name: `${workload}-fqdn`, namespace, labels: standardLabels(config, `${workload}-fqdn`, "network-policy") },
    spec: {
      endpointSelector: { matchLabels: selectorLabels(config, workload) },
      egress: [
        {
          toEndpoints: [{ matchLabels: { "k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns" } }],
          toPorts: [{ ports: [{ port: "53", protocol: "ANY" }], rules: { dns: [{ matchPattern: "*" }] } }],
        },
        ...fqdnRules,
      ],
    },
  } as KubernetesObject;
}
