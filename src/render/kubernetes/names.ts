// Names and labels shared by every Kubernetes object render writes. Kept in one place so the sandbox runner, the
// NetworkPolicies and the check capability agree on them.
import type { PerimeterConfig } from "../../config/index.ts";

export const PART_OF = "perimeter";
export const MANAGED_BY = "perimeter-render";

/** The namespaces render creates; `llm` only exists when a provider is served in-cluster. */
export function namespaces(config: PerimeterConfig) {
  return {
    system: `${config.name}-system`,
    tools: `${config.name}-tools`,
    sandbox: `${config.name}-sandbox`,
    llm: `${config.name}-llm`,
  } as const;
}

/**
 * The recommended app.kubernetes.io labels. `name` identifies the workload (and is what pod selectors and
 * NetworkPolicies match on), `instance` the perimeter it belongs to.
 */
export function standardLabels(config: PerimeterConfig, name: string, component: string): Record<string, string> {
  return {
    "app.kubernetes.io/component": component,
    "app.kubernetes.io/instance": config.name,
    "app.kubernetes.io/managed-by": MANAGED_BY,
    "app.kubernetes.io/name": name,
    "app.kubernetes.io/part-of": PART_OF,
  };
}

/** The labels a pod selector uses: stable across upgrades, unlike the version or component labels. */
export function selectorLabels(config: PerimeterConfig, name: string): Record<string, string> {
  return { "app.kubernetes.io/instance": config.name, "app.kubernetes.io/name": name };
}

/** A Service's in-cluster name: what URLs, NO_PROXY, /etc/hosts entries and Cilium DNS rules all spell the same. */
export function serviceHost(service: string, namespace: string): string {
  return `${service}.${namespace}.svc.cluster.local`;
}
