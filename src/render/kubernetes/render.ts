// `perimeter render -t kubernetes`: seed 000's architecture with seed 003's details, as a kustomize directory.
// Files are grouped by component; every object carries app.kubernetes.io labels; nothing holds a secret value. This
// file orders the object families (one module each) and writes the manifests; context.ts holds what they share.
import type { PerimeterConfig } from "../../config/index.ts";
import { DASHBOARD } from "../plan.ts";
import type { SecretSpec } from "../plan.ts";
import { runtimeConfig, sandboxEgressConfig } from "../runtime-config.ts";
import { toYaml, toYamlStream } from "../yaml.ts";
import { agentObjects } from "./agent.ts";
import { annotateConfigHashes } from "./config-hash.ts";
import { emptyOutput, planKubernetes, secretFor } from "./context.ts";
import type { KubernetesOutput, KubernetesPlan } from "./context.ts";
import { dashboardObjects } from "./dashboard.ts";
import { llmServingObjects } from "./llm-serving.ts";
import { mcpGuardObjects } from "./mcp-guard.ts";
import { allowDns, defaultDeny } from "./network.ts";
import { configMap, namespaceObject } from "./objects.ts";
import type { KubernetesObject } from "./objects.ts";
import { egressProxyObjects, llmProxyObjects, sandboxEgressProxyObjects } from "./proxies.ts";
import { sandboxObjects } from "./sandbox.ts";
import { externalSecretObjects } from "./secret-objects.ts";
import { createSecretsScript } from "./secrets-script.ts";
import { deployedMcpServerObjects, kubernetesMcpObjects } from "./tool-servers.ts";

export interface RenderedFile {
  readonly path: string;
  readonly content: string;
  /** The objects of a manifest file (absent for plain files such as a script). */
  readonly objects?: readonly KubernetesObject[];
}

export interface KubernetesRender {
  readonly files: readonly RenderedFile[];
  readonly secrets: readonly SecretSpec[];
  readonly warnings: readonly string[];
}

export function renderKubernetes(config: PerimeterConfig): KubernetesRender {
  const plan = planKubernetes(config);
  const out = emptyOutput();
  out.configObjects.push(runtimeConfigMap(plan));
  out.policyObjects.push(defaultDeny(config, plan.ns.tools), allowDns(config, plan.ns.tools));
  // The order of these calls is the order of the manifest files and of the objects in them.
  egressProxyObjects(plan, out);
  sandboxEgressProxyObjects(plan, out);
  mcpGuardObjects(plan, out);
  llmProxyObjects(plan, out);
  sandboxObjects(plan, out);
  kubernetesMcpObjects(plan, out);
  deployedMcpServerObjects(plan, out);
  llmServingObjects(plan, out);
  // The dashboard: loopback in its pod, opened with kubectl port-forward; reads every feed, reachable by nothing.
  const dashboard = dashboardObjects(config, secretFor(plan, DASHBOARD), plan.configVolume);
  out.serviceFiles.push({ path: "dashboard.yaml", objects: dashboard.workload as KubernetesObject[] });
  out.policyObjects.push(dashboard.policy);
  const agent = agentObjects(plan, out);
  const files = manifestFiles(plan, out, agent);
  return { files, secrets: plan.secrets, warnings: out.warnings };
}

/** perimeter-config: the runtime perimeter.yaml every service reads, and the sandbox egress proxy's own. */
function runtimeConfigMap(plan: KubernetesPlan): KubernetesObject {
  const data: Record<string, string> = { "perimeter.yaml": toYaml(runtimeConfig(plan.config, plan.endpoints)) };
  const sandboxEgress = sandboxEgressConfig(plan.config, plan.endpoints);
  if (sandboxEgress !== undefined) data["sandbox-egress.yaml"] = toYaml(sandboxEgress);
  return configMap(plan.config, "perimeter-config", plan.ns.tools, "config", data);
}

function namespaceObjects(plan: KubernetesPlan): KubernetesObject[] {
  const { config, ns } = plan;
  const objects: KubernetesObject[] = [
    namespaceObject(config, ns.system, "agent", "baseline", "The Hermes image's s6 init starts as root to chown /opt/data and drops to uid 10000, so restricted (runAsNonRoot, drop ALL) cannot be enforced here; restricted is warned and audited so a rootless image can tighten this namespace (seed 003)."),
    namespaceObject(config, ns.tools, "tools", "restricted"),
  ];
  if (plan.sandboxServer !== undefined) objects.push(namespaceObject(config, ns.sandbox, "sandbox", "restricted"));
  if (plan.served.length > 0) objects.push(namespaceObject(config, ns.llm, "llm", "restricted"));
  return objects;
}

function manifestFiles(plan: KubernetesPlan, out: KubernetesOutput, agent: { objects: KubernetesObject[]; policies: KubernetesObject[] }): RenderedFile[] {
  const files: RenderedFile[] = [];
  const manifest = (path: string, objects: readonly KubernetesObject[]) => {
    if (objects.length > 0) files.push({ path, content: toYamlStream(objects), objects });
  };
  manifest("namespaces.yaml", namespaceObjects(plan));
  manifest("rbac.yaml", out.rbacObjects);
  manifest("config.yaml", out.configObjects);
  manifest("agent.yaml", agent.objects);
  for (const file of out.serviceFiles) manifest(file.path, file.objects);
  manifest("llm-serving.yaml", out.llmObjects);
  manifest("sandbox.yaml", out.sandboxObjects);
  manifest("network-policies.yaml", [...agent.policies, ...out.policyObjects]);
  manifest("cilium-network-policies.yaml", out.ciliumObjects);
  manifest("external-secrets.yaml", externalSecretObjects(plan));
  // Every manifest is built: each pod template gets the hash of the ConfigMap data it reads, so apply -k rolls
  // exactly the workloads whose configuration changed (config-hash.ts). Written after, so no file is missed.
  annotateConfigHashes(files.flatMap((file) => file.objects ?? []));
  files.forEach((file, index) => {
    if (file.objects !== undefined) files[index] = { ...file, content: toYamlStream(file.objects) };
  });
  const resources = files.map((file) => file.path);
  files.push({
    path: "kustomization.yaml",
    content: toYaml({
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      // A plain resources list: builds with the kustomize inside kubectl 1.20 as well as current releases.
      resources,
    }),
  });
  if (plan.config.kubernetes.externalSecrets === undefined) files.push({ path: "create-secrets.sh", content: createSecretsScript(plan.config, plan.secrets) });
  return files;
}
