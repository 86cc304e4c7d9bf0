// NetworkPolicies against the pods they select: a default deny per namespace, an Egress policy on the agent, and rules
// that open the LAN, the cloud metadata service or DNS to anyone.
import type { Collector } from "../collector.ts";
import { asArray, asRecord, asString } from "../yaml-source.ts";
import type { KubeObject } from "./objects.ts";
import { NETWORK_POLICY_PEER_KEYS, NETWORK_POLICY_RULE_KEYS, NETWORK_POLICY_SPEC_KEYS, reportUnknownKeys } from "./unknown-keys.ts";
import type { Workload } from "./workload.ts";

/** Kubernetes label selector semantics: empty or null selects everything. */
export function selectorMatches(selector: unknown, labels: Record<string, unknown>): boolean {
  if (selector === null || selector === undefined) return true;
  const record = asRecord(selector);
  if (record === undefined) return false;
  for (const [key, value] of Object.entries(asRecord(record.matchLabels) ?? {})) {
    if (String(labels[key]) !== String(value) || labels[key] === undefined) return false;
  }
  for (const item of asArray(record.matchExpressions)) {
    const expression = asRecord(item);
    const key = asString(expression?.key) ?? "";
    const values = asArray(expression?.values).map(String);
    const present = labels[key] !== undefined;
    const value = present ? String(labels[key]) : undefined;
    switch (asString(expression?.operator)) {
      case "In": if (value === undefined || !values.includes(value)) return false; break;
      case "NotIn": if (value !== undefined && values.includes(value)) return false; break;
      case "Exists": if (!present) return false; break;
      case "DoesNotExist": if (present) return false; break;
      default: return false;
    }
  }
  return true;
}

function isEmptySelector(selector: unknown): boolean {
  if (selector === null || selector === undefined) return true;
  const record = asRecord(selector);
  return record !== undefined && Object.keys(asRecord(record.matchLabels) ?? {}).length === 0 && asArray(record.matchExpressions).length === 0;
}

function policyTypes(spec: Record<string, unknown>): Set<string> {
  const declared = asArray(spec.policyTypes).map(String);
  if (declared.length > 0) return new Set(declared);
  // Kubernetes' default: Ingress always, Egress when the policy has an egress section.
  return new Set(spec.egress === undefined ? ["Ingress"] : ["Ingress", "Egress"]);
}

const PRIVATE_V4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
const METADATA_V4 = ["169.254.0.0/16", "100.64.0.0/10"];
const PRIVATE_V6 = ["fc00::/7", "fe80::/10"];

function parseV4Cidr(cidr: string): { base: number; bits: number } | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (match === null) return undefined;
  const octets = match.slice(1, 5).map(Number);
  if (octets.some((octet) => octet > 255)) return undefined;
  const bits = Number(match[5]);
  if (bits > 32) return undefined;
  const address = ((octets[0] as number) * 2 ** 24 + (octets[1] as number) * 2 ** 16 + (octets[2] as number) * 2 ** 8 + (octets[3] as number)) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (address & mask) >>> 0, bits };
}

/** Whether `inner` lies entirely inside `outer` (IPv4); IPv6 compares prefixes textually, which suffices for ::/0 excepts. */
function cidrWithin(inner: string, outer: string): boolean {
  const a = parseV4Cidr(inner);
  const b = parseV4Cidr(outer);
  if (a !== undefined && b !== undefined) {
    if (a.bits < b.bits) return false;
    const mask = b.bits === 0 ? 0 : (0xffffffff << (32 - b.bits)) >>> 0;
    return ((a.base & mask) >>> 0) === b.base;
  }
  return inner.trim().toLowerCase() === outer.trim().toLowerCase();
}

export function checkNetworkPolicies(objects: readonly KubeObject[], workloads: readonly Workload[], collector: Collector): void {
  const policies = objects.filter((object) => object.kind === "NetworkPolicy");
  const namespaces = new Map<string, Workload[]>();
  for (const workload of workloads) {
    // Jobs and CronJobs count too: a sandbox Job is exactly what a default deny must cover.
    if (workload.object.kind === "PodTemplate") continue;
    const list = namespaces.get(workload.object.namespace) ?? [];
    list.push(workload);
    namespaces.set(workload.object.namespace, list);
  }
  const namespaceObjects = new Map(objects.filter((object) => object.kind === "Namespace").map((object) => [object.objectName, object]));

  for (const [namespace, members] of namespaces) {
    const inNamespace = policies.filter((policy) => policy.namespace === namespace);
    const denies = { Ingress: false, Egress: false };
    for (const policy of inNamespace) {
      const spec = asRecord(policy.value.spec) ?? {};
      if (!isEmptySelector(spec.podSelector)) continue;
      const types = policyTypes(spec);
      if (types.has("Ingress") && asArray(spec.ingress).length === 0) denies.Ingress = true;
      if (types.has("Egress") && asArray(spec.egress).length === 0) denies.Egress = true;
    }
    const missing = (["Ingress", "Egress"] as const).filter((direction) => !denies[direction]);
    if (missing.length > 0) {
      const at = namespaceObjects.get(namespace) ?? (members[0] as Workload).object;
      collector.add(
        "K8S-NETPOL-NO-DEFAULT-DENY",
        at,
        at.kind === "Namespace" ? ["metadata", "name"] : ["metadata", "namespace"],
        `namespace "${namespace}" runs ${members.length} workload(s) and no NetworkPolicy with an empty podSelector denies ${missing.join(" and ")} by default`,
      );
    }
    for (const workload of members) {
      if (!workload.isAgent) continue;
      const restricted = inNamespace.some((policy) => {
        const spec = asRecord(policy.value.spec) ?? {};
        return policyTypes(spec).has("Egress") && selectorMatches(spec.podSelector, workload.labels);
      });
      if (!restricted) collector.add("K8S-NETPOL-AGENT-UNSELECTED", workload.object, workload.labelsPath, `no Egress NetworkPolicy in "${namespace}" selects the agent's pods (labels ${JSON.stringify(workload.labels)})`);
    }
  }

  for (const policy of policies) {
    const spec = asRecord(policy.value.spec) ?? {};
    reportUnknownKeys(policy, spec, NETWORK_POLICY_SPEC_KEYS, ["spec"], "the NetworkPolicy spec", collector);
    const members = namespaces.get(policy.namespace);
    if (members !== undefined && !isEmptySelector(spec.podSelector) && !members.some((workload) => selectorMatches(spec.podSelector, workload.labels))) {
      collector.add("K8S-NETPOL-SELECTS-NOTHING", policy, ["spec", "podSelector"], `podSelector ${JSON.stringify(spec.podSelector)} matches none of the ${members.length} workload(s) in "${policy.namespace}"`);
    }
    for (const direction of ["ingress", "egress"] as const) {
      asArray(spec[direction]).forEach((item, ruleIndex) => {
        const rulePath = ["spec", direction, ruleIndex];
        const ruleValue = asRecord(item);
        reportUnknownKeys(policy, ruleValue, NETWORK_POLICY_RULE_KEYS[direction], rulePath, `a NetworkPolicy ${direction} rule`, collector);
        const peersKey = direction === "egress" ? "to" : "from";
        asArray(ruleValue?.[peersKey]).forEach((peer, peerIndex) => reportUnknownKeys(policy, asRecord(peer), NETWORK_POLICY_PEER_KEYS, [...rulePath, peersKey, peerIndex], "a NetworkPolicy peer", collector));
      });
    }
    if (!policyTypes(spec).has("Egress")) continue;
    asArray(spec.egress).forEach((item, ruleIndex) => {
      const egressRule = asRecord(item) ?? {};
      const rulePath = ["spec", "egress", ruleIndex];
      const peers = asArray(egressRule.to);
      const ports = asArray(egressRule.ports).map((port) => asRecord(port)?.port);
      if (peers.length === 0) {
        if (ports.length > 0 && ports.every((port) => port === 53 || port === "53" || port === "dns" || port === "dns-tcp")) {
          collector.add("K8S-NETPOL-DNS-UNSCOPED", policy, rulePath, "egress on port 53 has no `to`: the pods may query any resolver, on the LAN or outside");
        } else {
          collector.add("K8S-NETPOL-EGRESS-ANYWHERE", policy, rulePath, `egress rule without \`to\` allows every destination${ports.length > 0 ? ` on ports ${ports.map(String).join(", ")}` : " on every port"}, the LAN and the cluster included`);
        }
        return;
      }
      peers.forEach((peerValue, peerIndex) => {
        const ipBlock = asRecord(asRecord(peerValue)?.ipBlock);
        const cidr = asString(ipBlock?.cidr);
        if (cidr === undefined) return;
        const peerPath = [...rulePath, "to", peerIndex, "ipBlock"];
        const excepts = asArray(ipBlock?.except).map(String);
        const covered = (range: string) => excepts.some((except) => cidrWithin(range, except));
        const v4Parsed = parseV4Cidr(cidr);
        if (cidr.trim() === "0.0.0.0/0" || cidr.trim() === "::/0") {
          const required = cidr.includes(":") ? PRIVATE_V6 : PRIVATE_V4;
          const open = required.filter((range) => !covered(range));
          if (open.length > 0) collector.add("K8S-NETPOL-EGRESS-ANYWHERE", policy, [...peerPath, "cidr"], `ipBlock ${cidr} does not except ${open.join(", ")}: the pods reach the LAN and the cluster`);
          else if (!cidr.includes(":")) {
            const metadata = METADATA_V4.filter((range) => !covered(range));
            if (metadata.length > 0) collector.add("K8S-NETPOL-METADATA-REACHABLE", policy, [...peerPath, "except"], `ipBlock ${cidr} does not except ${metadata.join(", ")} (cloud metadata at 169.254.169.254, CGNAT/Tailscale)`);
          }
        } else if (v4Parsed !== undefined && [...PRIVATE_V4, "100.64.0.0/10"].some((range) => cidrWithin(cidr, range))) {
          collector.add("K8S-NETPOL-IPBLOCK-IN-CLUSTER", policy, [...peerPath, "cidr"], `ipBlock ${cidr} is a private address: a node, NodePort/LoadBalancer, ingress or Service IP is DNATed before the policy is evaluated, so this rule never matches; select the backing pods instead`);
        }
      });
    });
  }
}
