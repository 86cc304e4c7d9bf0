// NetworkPolicy building blocks. In-cluster peers are always namespace + pod selectors: NetworkPolicy is evaluated
// after DNAT, so an ipBlock for a Service, node or ingress address never matches what it was meant to (seed 003).
// ipBlocks appear only for the public internet (with every private range excepted) and for the API server.
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { INetworkPolicyEgressRule } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule";
import type { INetworkPolicyIngressRule } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyIngressRule";
import type { INetworkPolicyPeer } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer";
import type { INetworkPolicyPort } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort";
import type { PerimeterConfig } from "../../config/index.ts";
import { standardLabels } from "./names.ts";

/** Never reachable from "the internet" rules: RFC 1918, loopback, link-local (cloud metadata), CGNAT, reserved. */
export const PRIVATE_IPV4 = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

/** The IPv6 equivalents: loopback, ULA, link-local, multicast and the ranges that embed IPv4 (NAT64, 6to4, Teredo). */
export const PRIVATE_IPV6 = ["::1/128", "::ffff:0:0/96", "64:ff9b::/96", "2001::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8"];

export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

export function inNamespace(namespace: string, podLabels?: Record<string, string>): INetworkPolicyPeer {
  return {
    namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: namespace } },
    ...(podLabels === undefined ? {} : { podSelector: { matchLabels: podLabels } }),
  };
}

export function tcp(ports: readonly number[]): INetworkPolicyPort[] {
  return [...new Set(ports)].sort((a, b) => a - b).map((port) => ({ protocol: "TCP", port }));
}

/** DNS to the cluster resolver only (kube-dns pods in kube-system), never "port 53 anywhere" (seed 003). */
export const DNS_EGRESS: INetworkPolicyEgressRule = {
  to: [{ namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
  ports: [
    { protocol: "UDP", port: 53 },
    { protocol: "TCP", port: 53 },
  ],
};

export function publicInternet(ports: readonly number[]): INetworkPolicyEgressRule {
  return {
    to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_IPV4 } }, { ipBlock: { cidr: "::/0", except: PRIVATE_IPV6 } }],
    ports: tcp(ports),
  };
}

/** The API server as the pod sees it after the kubernetes Service's DNAT: the endpoint address on 443 or 6443. */
export function apiServer(cidr: string): INetworkPolicyEgressRule {
  return { to: [{ ipBlock: { cidr } }], ports: tcp([443, 6443]) };
}

export const API_SERVER_IPBLOCK_NOTE =
  "K8S-NETPOL-IPBLOCK-IN-CLUSTER=kubernetes.apiServerCidr is the API server endpoint as seen after the kubernetes Service's DNAT (the node address on 6443 on k3s); no pod selector can name it, so this is the one legitimate in-cluster ipBlock";

export interface PolicyOptions {
  readonly name: string;
  readonly namespace: string;
  /** Labels of the pods it selects; undefined selects every pod in the namespace. */
  readonly podLabels?: Record<string, string>;
  readonly ingress?: INetworkPolicyIngressRule[];
  readonly egress?: INetworkPolicyEgressRule[];
  readonly annotations?: Record<string, string>;
}

/**
 * A policy for one workload. Both policy types are always listed, so a workload whose policy has no egress rules is
 * denied egress rather than left open (the default deny covers it too; this keeps each policy readable alone).
 */
export function networkPolicy(config: PerimeterConfig, options: PolicyOptions): INetworkPolicy {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: options.name,
      namespace: options.namespace,
      labels: standardLabels(config, options.name, "network-policy"),
      ...(options.annotations === undefined ? {} : { annotations: options.annotations }),
    },
    spec: {
      podSelector: options.podLabels === undefined ? {} : { matchLabels: options.podLabels },
      policyTypes: ["Ingress", "Egress"],
      ingress: options.ingress ?? [],
      egress: options.egress ?? [],
    },
  };
}

export function defaultDeny(config: PerimeterConfig, namespace: string): INetworkPolicy {
  return networkPolicy(config, { name: "default-deny-all", namespace });
}

/**
 * Every name, through kube-dns, for every pod of a namespace: only for our own services' namespace. The agent's and
 * the sandbox's namespaces never get it (kubernetes/dns.ts says how they resolve instead).
 */
export function allowDns(config: PerimeterConfig, namespace: string): INetworkPolicy {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "allow-dns-to-kube-system", namespace, labels: standardLabels(config, "allow-dns-to-kube-system", "network-policy") },
    spec: { podSelector: {}, policyTypes: ["Egress"], egress: [DNS_EGRESS] },
  };
}
