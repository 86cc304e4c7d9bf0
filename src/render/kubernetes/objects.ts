// Small object builders every Kubernetes family uses: ConfigMaps, ServiceAccounts, Namespaces with their Pod Security
// labels, and the quantity arithmetic of the sandbox quota.
import type { PerimeterConfig } from "../../config/index.ts";
import { RenderError } from "../plan.ts";
import { standardLabels } from "./names.ts";

export type KubernetesObject = { apiVersion: string; kind: string; metadata?: { name?: string; namespace?: string } };

export function configMap(config: PerimeterConfig, name: string, namespace: string, component: string, data: Record<string, string>) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace, labels: standardLabels(config, name, component) }, data };
}

export function serviceAccount(config: PerimeterConfig, name: string, namespace: string, component: string, automount: boolean) {
  return {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name, namespace, labels: standardLabels(config, name, component) },
    automountServiceAccountToken: automount,
  };
}

export function namespaceObject(config: PerimeterConfig, name: string, component: string, level: "restricted" | "baseline", reason?: string) {
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name,
      labels: {
        ...standardLabels(config, name, component),
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "latest",
      },
      ...(reason === undefined ? {} : { annotations: { "perimeter.dev/pod-security-reason": reason } }),
    },
  };
}

/** `<service>.<namespace>.svc[.cluster.local]`: an in-cluster Service, reachable by namespace selector. */
export function inClusterService(host: string): { service: string; namespace: string } | undefined {
  const match = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?$/.exec(host);
  return match === null ? undefined : { service: match[1] as string, namespace: match[2] as string };
}

/** Multiplies a Kubernetes quantity by a whole number (for the sandbox ResourceQuota). */
export function multiplyQuantity(quantity: string, factor: number): string {
  const match = /^(\d+(?:\.\d+)?)(.*)$/.exec(quantity);
  if (match === null) throw new RenderError(`"${quantity}" is not a quantity`);
  const value = Number(match[1]) * factor;
  return `${Number.isInteger(value) ? value : Number(value.toFixed(3))}${match[2]}`;
}
