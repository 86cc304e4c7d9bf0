// Secrets never carry values in a render: either ExternalSecret objects (one remote key per variable, named like it)
// or the exact `kubectl create secret` command for each (create-secrets.sh holds the runnable form).
import type { SecretSpec } from "../plan.ts";
import type { KubernetesPlan } from "./context.ts";
import { standardLabels } from "./names.ts";
import type { KubernetesObject } from "./objects.ts";

export function externalSecretObjects(plan: KubernetesPlan): KubernetesObject[] {
  const { config, ns } = plan;
  const store = config.kubernetes.externalSecrets;
  if (store === undefined) return [];
  return plan.secrets.map((secret) => ({
    apiVersion: "external-secrets.io/v1",
    kind: "ExternalSecret",
    metadata: { name: secret.name, namespace: secret.namespace === "system" ? ns.system : ns.tools, labels: standardLabels(config, secret.name, "secrets") },
    spec: {
      refreshInterval: "1h",
      secretStoreRef: { name: store.storeName, kind: store.storeKind },
      target: { name: secret.name, creationPolicy: "Owner" },
      data: secret.keys.map((key) => ({ secretKey: key, remoteRef: { key } })),
    },
  }));
}

/** The exact command for one Secret; each value comes from the shell variable of the same name. */
export function kubectlCreateSecret(secret: SecretSpec, namespace: string): string[] {
  return [
    `kubectl create secret generic ${secret.name} --namespace=${namespace} \\`,
    ...secret.keys.map((key, index) => `  --from-literal=${key}="\${${key}:?set ${key}}"${index === secret.keys.length - 1 ? "" : " \\"}`),
  ];
}
