// The container targets: Kubernetes (kubectl get for the operator's side, kubectl exec with python3 for the agent's)
// and Compose (docker compose config / exec). The decisions on what kubectl and docker print are pure functions,
// tested on their real output shapes; the commands are built by the runners.
import type { PerimeterConfig } from "../config/index.ts";
import { endpoints } from "../render/index.ts";
import type { Exec } from "./host.ts";
import { execProgram } from "./host.ts";
import { directFromAllowed, firstAllowedHost, serviceCredentialNames } from "./isolation.ts";
import type { Address } from "./isolation.ts";
import { DENIED_PROBE } from "./local.ts";
import { fail, pass, skip } from "./model.ts";
import type { CheckResult } from "./model.ts";
import { composeVantage, kubernetesVantage } from "./runners.ts";
import type { TargetSetup } from "./verify.ts";

export const AGENT_WORKLOAD = "hermes-gateway";
export const AGENT_CONTAINER = "hermes";

interface PodSpec {
  automountServiceAccountToken?: boolean;
  serviceAccountName?: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  volumes?: Array<{ name: string; hostPath?: { path: string } }>;
  containers?: Array<{ name: string; securityContext?: { privileged?: boolean; allowPrivilegeEscalation?: boolean }; ports?: Array<{ hostPort?: number }> }>;
}

/** The agent's pod template: no host access of any kind, no token (seed 003's checklist). */
export function podSpecCheck(deployment: { spec?: { template?: { spec?: PodSpec } } } | undefined): CheckResult {
  const id = "isolation.host-access";
  const spec = deployment?.spec?.template?.spec;
  if (spec === undefined) return fail(id, "isolation", `deployment ${AGENT_WORKLOAD} not found`, "apply the render (kubectl apply -k DIR) in the agent's namespace");
  const problems: string[] = [];
  for (const volume of spec.volumes ?? []) if (volume.hostPath !== undefined) problems.push(`hostPath volume ${volume.name} (${volume.hostPath.path})`);
  for (const container of spec.containers ?? []) {
    if (container.securityContext?.privileged === true) problems.push(`container ${container.name} is privileged`);
    for (const port of container.ports ?? []) if (port.hostPort !== undefined) problems.push(`container ${container.name} binds hostPort ${port.hostPort}`);
  }
  if (spec.hostNetwork === true) problems.push("hostNetwork: true");
  if (spec.hostPID === true) problems.push("hostPID: true");
  if (spec.hostIPC === true) problems.push("hostIPC: true");
  if (spec.automountServiceAccountToken !== false) problems.push("automountServiceAccountToken is not false");
  if (problems.length > 0) return fail(id, "isolation", `the agent's pod template has ${problems.join("; ")}`, "remove them from deployment/hermes-gateway (re-render; never patch the live object)");
  return pass(id, "isolation", "no hostPath, privileged, hostNetwork/PID/IPC or hostPort; automountServiceAccountToken: false");
}

interface Binding {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  subjects?: Array<{ kind?: string; name?: string; namespace?: string }>;
  roleRef?: { kind?: string; name?: string };
}

export function roleBindingsCheck(list: { items?: Binding[] } | undefined, namespace: string, serviceAccount: string): CheckResult {
  const id = "isolation.rolebindings";
  if (list === undefined) return fail(id, "isolation", "RoleBindings could not be listed", "run verify with a kubeconfig allowed to list rolebindings and clusterrolebindings");
  const bound = (list.items ?? []).filter((binding) =>
    (binding.subjects ?? []).some(
      (subject) =>
        (subject.kind === "ServiceAccount" && subject.name === serviceAccount && (subject.namespace ?? binding.metadata?.namespace) === namespace) ||
        (subject.kind === "Group" && (subject.name === "system:serviceaccounts" || subject.name === `system:serviceaccounts:${namespace}`)),
    ),
  );
  if (bound.length > 0) {
    return fail(id, "isolation", `the agent's ServiceAccount is bound: ${bound.map((binding) => `${binding.kind ?? "binding"} ${binding.metadata?.namespace === undefined ? "" : `${binding.metadata.namespace}/`}${binding.metadata?.name ?? "?"} → ${binding.roleRef?.kind ?? ""} ${binding.roleRef?.name ?? ""}`).join(", ")}`, "delete these bindings: the agent needs no Kubernetes permission (its read-only Kubernetes tools go through mcp-guard)");
  }
  return pass(id, "isolation", `no RoleBinding or ClusterRoleBinding names ${namespace}/${serviceAccount}`);
}

interface NetworkPolicy {
  metadata?: { name?: string };
  spec?: { podSelector?: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] }; policyTypes?: string[]; egress?: unknown[] };
}

export function networkPoliciesCheck(list: { items?: NetworkPolicy[] } | undefined, podLabels: Readonly<Record<string, string>>): CheckResult {
  const id = "isolation.network-policy";
  if (list === undefined) return fail(id, "isolation", "NetworkPolicies could not be listed", "run verify with a kubeconfig allowed to list networkpolicies in the agent's namespace");
  const selects = (policy: NetworkPolicy) => {
    const selector = policy.spec?.podSelector ?? {};
    if ((selector.matchExpressions ?? []).length > 0) return false;
    return Object.entries(selector.matchLabels ?? {}).every(([key, value]) => podLabels[key] === value);
  };
  const egress = (list.items ?? []).filter((policy) => selects(policy) && (policy.spec?.policyTypes ?? []).includes("Egress"));
  if (egress.length === 0) {
    return fail(id, "isolation", `no NetworkPolicy restricts the agent's egress (${(list.items ?? []).length} policies in the namespace)`, "apply the rendered NetworkPolicies (kubectl apply -k DIR): default-deny plus DNS and the perimeter's services");
  }
  return pass(id, "isolation", `egress restricted by ${egress.map((policy) => policy.metadata?.name ?? "?").join(", ")}`);
}

export interface KubernetesOptions {
  readonly config: PerimeterConfig;
  readonly namespace: string | undefined;
  readonly kubectlFlags: readonly string[];
  readonly lan: readonly Address[];
  readonly direct: readonly Address[];
  readonly allowed: Address | undefined;
  readonly exec?: Exec;
}

async function kubectlJson(exec: Exec, flags: readonly string[], args: readonly string[]): Promise<unknown> {
  const result = await exec("kubectl", [...flags, ...args, "--output", "json"]);
  if (result.code !== 0) return undefined;
  try {
    return JSON.parse(result.stdout);
  } catch {
    return undefined;
  }
}

export async function kubernetesSetup(options: KubernetesOptions): Promise<TargetSetup> {
  const { config } = options;
  const exec = options.exec ?? execProgram;
  const namespace = options.namespace ?? `${config.name}-system`;
  const flags = options.kubectlFlags;
  const apiService = (await kubectlJson(exec, flags, ["--namespace", "default", "get", "service", "kubernetes"])) as { spec?: { clusterIP?: string; ports?: Array<{ port?: number }> } } | undefined;
  const clusterIp = apiService?.spec?.clusterIP;
  const decisive = clusterIp === undefined ? [] : [{ host: clusterIp, port: apiService?.spec?.ports?.[0]?.port ?? 443 }];
  const urls = endpoints(config, "kubernetes");
  const allowed = options.allowed ?? firstAllowedHost(config);
  const vantage = kubernetesVantage({ kubectlFlags: flags, namespace, workload: `deployment/${AGENT_WORKLOAD}`, container: AGENT_CONTAINER });
  const podLabels = { "app.kubernetes.io/instance": config.name, "app.kubernetes.io/name": AGENT_WORKLOAD };
  const unknown = "the guard's environment, admin listener and audit log are inside the cluster; read them with kubectl (docs/verify.md)";
  return {
    config,
    vantage,
    mcpVantage: vantage,
    isolation: {
      target: "kubernetes",
      allowed,
      denied: DENIED_PROBE,
      direct: directFromAllowed(allowed, options.direct),
      decisive,
      decisiveWhat: clusterIp === undefined ? "the Kubernetes API ClusterIP (not found)" : `the Kubernetes API ClusterIP ${clusterIp}`,
      lan: options.lan,
      dnsNames: [new URL(urls.mcpGuardUrl).hostname, ...(allowed === undefined ? [] : [allowed.host])],
      forbiddenNames: serviceCredentialNames(config),
      forbiddenDigests: [],
      dockerSockets: ["/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock", "/var/run/crio/crio.sock"],
    },
    operatorIsolation: async () => {
      const [deployment, bindings, clusterBindings, policies] = await Promise.all([
        kubectlJson(exec, flags, ["--namespace", namespace, "get", "deployment", AGENT_WORKLOAD]),
        kubectlJson(exec, flags, ["get", "rolebindings", "--all-namespaces"]),
        kubectlJson(exec, flags, ["get", "clusterrolebindings"]),
        kubectlJson(exec, flags, ["--namespace", namespace, "get", "networkpolicies"]),
      ]);
      const combined = bindings === undefined || clusterBindings === undefined ? undefined : { items: [...((bindings as { items?: Binding[] }).items ?? []), ...((clusterBindings as { items?: Binding[] }).items ?? [])] };
      const serviceAccount = (deployment as { spec?: { template?: { spec?: PodSpec } } } | undefined)?.spec?.template?.spec?.serviceAccountName ?? AGENT_WORKLOAD;
      return [
        podSpecCheck(deployment as { spec?: { template?: { spec?: PodSpec } } } | undefined),
        roleBindingsCheck(combined, namespace, serviceAccount),
        networkPoliciesCheck(policies as { items?: NetworkPolicy[] } | undefined, podLabels),
      ];
    },
    mcpUrl: urls.mcpGuardUrl,
    tokenVariable: config.mcp.agents[0]?.tokenSecret ?? "PERIMETER_AGENT_TOKEN",
    mcpFacts: async () => ({ guardVariables: undefined, upstreamStates: undefined, pendingReviews: undefined, authErrors: undefined, unknownBecause: unknown }),
    host: undefined,
    hostNotApplicable: "the host review is for vps and local; a cluster's nodes are reviewed with the cluster's own tools",
    notes: [],
    close: async () => undefined,
  };
}

interface ComposeService {
  privileged?: boolean;
  network_mode?: string;
  pid?: string;
  ipc?: string;
  cap_add?: string[];
  volumes?: Array<{ type?: string; source?: string; target?: string } | string>;
  ports?: unknown[];
  networks?: Record<string, unknown> | string[];
}

interface ComposeProject {
  services?: Record<string, ComposeService>;
  networks?: Record<string, { internal?: boolean; external?: boolean; name?: string }>;
}

/** `docker compose config --format json`: the agent's service has no host access and sits on internal networks only. */
export function composeChecks(project: ComposeProject | undefined, service = AGENT_WORKLOAD): CheckResult[] {
  const agent = project?.services?.[service];
  if (agent === undefined) {
    return [
      fail("isolation.host-access", "isolation", `service ${service} not found in the compose project`, "run verify in the render's directory (or pass --compose-file)"),
      fail("isolation.network-policy", "isolation", `service ${service} not found in the compose project`, "run verify in the render's directory (or pass --compose-file)"),
    ];
  }
  const problems: string[] = [];
  if (agent.privileged === true) problems.push("privileged: true");
  if (agent.pid === "host") problems.push("pid: host");
  if (agent.ipc === "host") problems.push("ipc: host");
  if ((agent.cap_add ?? []).length > 0) problems.push(`cap_add: ${(agent.cap_add ?? []).join(",")}`);
  for (const volume of agent.volumes ?? []) {
    const source = typeof volume === "string" ? volume.split(":")[0] : volume.type === "bind" ? volume.source : undefined;
    if (source !== undefined && /docker\.sock|containerd\.sock/.test(source)) problems.push(`the Docker socket is mounted (${source})`);
    else if (source !== undefined && source.startsWith("/") && !/\/(config|seed|hermes\.env|\.env)/.test(source)) problems.push(`host path ${source} is mounted`);
  }
  if ((agent.ports ?? []).length > 0) problems.push("ports: are published");
  const host = problems.length > 0
    ? fail("isolation.host-access", "isolation", `the agent's service has ${problems.join("; ")}`, "remove them from the agent's service in compose.yaml (re-render)")
    : pass("isolation.host-access", "isolation", "not privileged, no host pid/ipc, no added capabilities, no Docker socket or host paths, no published ports");
  let network: CheckResult;
  if (agent.network_mode !== undefined) {
    network = fail("isolation.network-policy", "isolation", `network_mode: ${agent.network_mode}`, "remove network_mode from the agent's service; it belongs on the render's internal network only");
  } else {
    const names = Array.isArray(agent.networks) ? agent.networks : Object.keys(agent.networks ?? { default: {} });
    const open = names.filter((name) => project?.networks?.[name]?.internal !== true);
    network = open.length > 0
      ? fail("isolation.network-policy", "isolation", `the agent joins network(s) with a route out: ${open.join(", ")}`, "keep the agent on the render's internal network only (internal: true); the egress proxy is its way out")
      : pass("isolation.network-policy", "isolation", `the agent joins internal networks only: ${names.join(", ")}`);
  }
  return [host, network];
}

export interface ComposeOptions {
  readonly config: PerimeterConfig;
  readonly composeFile: string;
  readonly project: string | undefined;
  readonly lan: readonly Address[];
  readonly direct: readonly Address[];
  readonly allowed: Address | undefined;
  readonly exec?: Exec;
}

export async function composeSetup(options: ComposeOptions): Promise<TargetSetup> {
  const { config } = options;
  const exec = options.exec ?? execProgram;
  const urls = endpoints(config, "compose");
  const allowed = options.allowed ?? firstAllowedHost(config);
  const vantage = composeVantage({ composeFile: options.composeFile, service: AGENT_WORKLOAD, ...(options.project === undefined ? {} : { project: options.project }) });
  const unknown = "the guard's environment, admin listener and audit log are inside its container; read them with docker compose exec (docs/verify.md)";
  return {
    config,
    vantage,
    mcpVantage: vantage,
    isolation: {
      target: "compose",
      allowed,
      denied: DENIED_PROBE,
      direct: directFromAllowed(allowed, options.direct),
      decisive: [],
      decisiveWhat: "no always-listening address is known on a Compose host",
      lan: options.lan,
      dnsNames: [new URL(urls.mcpGuardUrl).hostname],
      forbiddenNames: serviceCredentialNames(config),
      forbiddenDigests: [],
      dockerSockets: ["/var/run/docker.sock", "/run/docker.sock"],
    },
    operatorIsolation: async () => {
      const result = await exec("docker", ["compose", "--file", options.composeFile, ...(options.project === undefined ? [] : ["--project-name", options.project]), "config", "--format", "json"]);
      if (result.code !== 0) {
        const why = result.missing === true ? "docker is not installed" : (result.stderr.trim().slice(0, 200) || `exit ${String(result.code)}`);
        return [fail("isolation.host-access", "isolation", `docker compose config failed: ${why}`, "run verify where docker compose reaches the project"), skip("isolation.network-policy", "isolation", "docker compose config failed")];
      }
      try {
        return composeChecks(JSON.parse(result.stdout) as ComposeProject);
      } catch {
        return composeChecks(undefined);
      }
    },
    mcpUrl: urls.mcpGuardUrl,
    tokenVariable: config.mcp.agents[0]?.tokenSecret ?? "PERIMETER_AGENT_TOKEN",
    mcpFacts: async () => ({ guardVariables: undefined, upstreamStates: undefined, pendingReviews: undefined, authErrors: undefined, unknownBecause: unknown }),
    host: undefined,
    hostNotApplicable: "the host review is for vps and local; run it on the Docker host with -t local",
    notes: [],
    close: async () => undefined,
  };
}
