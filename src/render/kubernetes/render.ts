// `perimeter render -t kubernetes`: seed 000's architecture with seed 003's details, as a kustomize directory.
// Files are grouped by component; every object carries app.kubernetes.io labels; nothing holds a secret value.
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IVolume } from "kubernetes-models/v1/Volume";
import type { INetworkPolicyEgressRule } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule";
import type { INetworkPolicyIngressRule } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyIngressRule";
import { isIP } from "node:net";
import type { PerimeterConfig } from "../../config/index.ts";
import { parseHostRule } from "../../config/index.ts";
import type { HostRule, HostRuleInput } from "../../config/index.ts";
import { endpoints as endpointsFor } from "../endpoints.ts";
import type { Endpoints } from "../endpoints.ts";
import { HERMES_ENV_PATH, hermesAgentFiles } from "../hermes.ts";
import {
  AGENT_WORKLOAD,
  CONFIG_DIRECTORY,
  DASHBOARD,
  EGRESS_PROXY,
  HERMES_UID,
  KUBERNETES_MCP,
  KUBERNETES_MCP_IMAGE,
  KUBERNETES_MCP_PORT,
  LLM_PROXY,
  MCP_GUARD,
  RUNTIME_CONFIG_PATH,
  RenderError,
  SANDBOX_EGRESS_CONFIG_PATH,
  SANDBOX_EGRESS_PROXY,
  SANDBOX_METRICS_PORT,
  SANDBOX_RUNNER,
  approverEgressClient,
  builtinServer,
  deployedMcpServers,
  egressMetricsPort,
  externalHttpServers,
  feedTokenSecret,
  portOf,
  renderedEgressClients,
  sandboxAllowlist,
  sandboxServerName,
  secretPlan,
  servedModels,
  stdioServers,
  urlPort,
} from "../plan.ts";
import type { PerimeterService, SecretSpec } from "../plan.ts";
import { runtimeConfig, sandboxEgressConfig } from "../runtime-config.ts";
import { toYaml, toYamlStream } from "../yaml.ts";
import { sandboxAdmissionObjects } from "./admission.ts";
import { dashboardIngress, dashboardObjects } from "./dashboard.ts";
import { annotateConfigHashes } from "./config-hash.ts";
import { createSecretsScript } from "./secrets-script.ts";
import { AGENT_SERVICES, agentServiceNames, dnsNamesPolicy, hostsOnly, nameResolution, pinnedClusterIP } from "./dns.ts";
import { namespaces, selectorLabels, serviceHost, standardLabels } from "./names.ts";
import { API_SERVER_IPBLOCK_NOTE, allowDns, apiServer, defaultDeny, inNamespace, networkPolicy, publicInternet, tcp } from "./network.ts";
import { SANDBOX_JOB_TEMPLATE_KEY, SANDBOX_TASK_SERVICE_ACCOUNT, sandboxJobTemplate } from "./sandbox-job.ts";
import {
  AGENT_SECURITY_NOTE,
  agentPodSecurity,
  restrictedContainerSecurity,
  restrictedPodSecurity,
  STATE_MOUNT,
  TMP_MOUNT,
  clusterService,
  environment,
  persistentVolumeClaim,
  scratchVolume,
  secretEnvironment,
  singletonDeployment,
  stateVolume,
  tcpProbes,
} from "./workloads.ts";

type KubernetesObject = { apiVersion: string; kind: string; metadata?: { name?: string; namespace?: string } };

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

const AGENT_SECURITY_IGNORES = [
  "K8S-RUN-AS-ROOT=the Hermes image's s6 init starts as root and drops the gateway to uid 10000; runAsNonRoot breaks it (seed 003)",
  "K8S-CAPABILITIES-NOT-DROPPED=drops NET_RAW; s6 needs CHOWN/SETUID/SETGID to drop to uid 10000 (seed 003)",
  "K8S-READONLY-ROOTFS=the agent installs packages for the skills it writes (seed 003); /opt/data and /tmp are volumes",
].join("\n");

const SANDBOX_RUNNER_IGNORES = [
  "K8S-SA-TOKEN-AUTOMOUNT=the sandbox runner creates one Job per task; its Role is limited to Jobs, ConfigMaps and pod logs in the sandbox namespace",
  "K8S-RBAC-CREATE-PODS=the sandbox runner creates Jobs in the sandbox namespace only, which holds no Secret, no PVC and a token-less ServiceAccount; every Job is the rendered hardened template",
].join("\n");

const KUBERNETES_MCP_IGNORES =
  "K8S-SA-TOKEN-AUTOMOUNT=kubernetes-mcp-server reads the cluster with this token; its Roles grant get/list/watch on named resources in the configured namespaces only";

function ruleOf(input: HostRuleInput): HostRule {
  const parsed = typeof input === "string" ? parseHostRule(input) : parseHostRule(input.host, input.ports);
  if (!parsed.ok) throw new RenderError(parsed.reason);
  return parsed.rule;
}

function rulePorts(rules: readonly HostRuleInput[]): number[] {
  return [...new Set(rules.flatMap((rule) => ruleOf(rule).ports))].sort((a, b) => a - b);
}

function ruleCidrs(rules: readonly HostRuleInput[]): string[] {
  return [...new Set(rules.flatMap((rule) => (typeof rule === "string" ? [] : (rule.allowCidr ?? []))))].sort();
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

function configMap(config: PerimeterConfig, name: string, namespace: string, component: string, data: Record<string, string>) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace, labels: standardLabels(config, name, component) }, data };
}

function serviceAccount(config: PerimeterConfig, name: string, namespace: string, component: string, automount: boolean) {
  return {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name, namespace, labels: standardLabels(config, name, component) },
    automountServiceAccountToken: automount,
  };
}

function namespaceObject(config: PerimeterConfig, name: string, component: string, level: "restricted" | "baseline", reason?: string) {
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

interface ServiceSpec {
  readonly name: string;
  readonly service: PerimeterService;
  readonly port: number;
  readonly configPath: string;
  readonly secrets: ReadonlyArray<{ name: string; keys: readonly string[] }>;
  readonly resources: { requests: { cpu: string; memory: string }; limits: { cpu: string; memory: string } };
  readonly tmpSize: string;
  readonly extraPorts?: ReadonlyArray<{ name: string; port: number }>;
  readonly automountServiceAccountToken?: boolean;
  readonly configVolume?: IVolume;
  readonly annotations?: Record<string, string>;
  readonly metricsPort?: number;
  /** Flags after `--listen`, e.g. a separate metrics listener. */
  readonly extraArguments?: readonly string[];
}

/** Object counts the sandbox namespace may hold, per task slot: a finished task's Job, pod and inputs ConfigMap linger until garbage-collected, so twice the concurrency. */
const SANDBOX_OBJECTS_PER_SLOT = 2;

export function renderKubernetes(config: PerimeterConfig): KubernetesRender {
  const ns = namespaces(config);
  const endpoints: Endpoints = endpointsFor(config, "kubernetes");
  const warnings: string[] = [];
  const secrets = secretPlan(config);
  // The sandbox's own egress proxy serves its audit feed too; only this target runs it as a workload of its own.
  if (sandboxServerName(config) !== undefined && sandboxAllowlist(config) !== undefined) {
    secrets.push({ name: SANDBOX_EGRESS_PROXY, workload: SANDBOX_EGRESS_PROXY, namespace: "tools", keys: [feedTokenSecret(config)], purpose: "the audit feed token" });
  }
  const secretFor = (name: string) => secrets.find((secret) => secret.name === name);
  const sandboxServer = sandboxServerName(config);
  const kubernetesServer = builtinServer(config, "kubernetes-readonly");
  const deployedServers = deployedMcpServers(config);
  const served = servedModels(config);
  const sandboxAllow = sandboxAllowlist(config);
  const cilium = config.kubernetes.cni === "cilium";
  const observability = config.kubernetes.observability.enabled ? config.kubernetes.observability.namespace : undefined;
  const needsApiServer = sandboxServer !== undefined || kubernetesServer !== undefined;
  const apiServerCidr = config.kubernetes.apiServerCidr;
  if (needsApiServer && apiServerCidr === undefined) {
    throw new RenderError(
      `kubernetes.apiServerCidr is required: the ${sandboxServer !== undefined ? "sandbox runner" : "read-only Kubernetes MCP server"} must reach the API server, and NetworkPolicy sees its address after the kubernetes Service's DNAT. Set it to the endpoint address, e.g. the output of \`kubectl get endpoints kubernetes -n default -o jsonpath='{.subsets[0].addresses[0].ip}'\` with /32 (k3s: the server node's IP)`,
    );
  }
  // DNS is a way out that no proxy sees: the agent and the tasks resolve only their few in-cluster names (dns.ts).
  const resolution = nameResolution(config, { sandboxProxy: sandboxServer !== undefined && sandboxAllow !== undefined });

  const mcpPort = portOf(config.mcp.listen);
  const adminPort = portOf(config.mcp.admin.listen);
  const llmPort = portOf(config.llm.listen);
  const egressPort = portOf(config.egress.listen);
  const sandboxPort = portOf(config.sandbox.listen);
  const agentPeer = inNamespace(ns.system, selectorLabels(config, AGENT_WORKLOAD));
  const guardPeer = inNamespace(ns.tools, selectorLabels(config, MCP_GUARD));
  const llmProxyPeer = inNamespace(ns.tools, selectorLabels(config, LLM_PROXY));
  const observabilityIngress = (ports: number[]): INetworkPolicyIngressRule[] =>
    observability === undefined ? [] : [{ from: [inNamespace(observability)], ports: tcp(ports) }];

  // ---- namespaces
  const namespaceObjects: KubernetesObject[] = [
    namespaceObject(config, ns.system, "agent", "baseline", "The Hermes image's s6 init starts as root to chown /opt/data and drops to uid 10000, so restricted (runAsNonRoot, drop ALL) cannot be enforced here; restricted is warned and audited so a rootless image can tighten this namespace (seed 003)."),
    namespaceObject(config, ns.tools, "tools", "restricted"),
  ];
  if (sandboxServer !== undefined) namespaceObjects.push(namespaceObject(config, ns.sandbox, "sandbox", "restricted"));
  if (served.length > 0) namespaceObjects.push(namespaceObject(config, ns.llm, "llm", "restricted"));

  // ---- runtime configuration
  const runtime = runtimeConfig(config, endpoints);
  const sandboxEgress = sandboxEgressConfig(config, endpoints);
  const configData: Record<string, string> = { "perimeter.yaml": toYaml(runtime) };
  if (sandboxEgress !== undefined) configData["sandbox-egress.yaml"] = toYaml(sandboxEgress);
  const configObjects: KubernetesObject[] = [configMap(config, "perimeter-config", ns.tools, "config", configData)];
  const configVolume: IVolume = { name: "config", configMap: { name: "perimeter-config", items: [{ key: "perimeter.yaml", path: "perimeter.yaml" }] } };

  // ---- our services
  // One manifest file per component, written in this order after the shared files.
  const serviceFiles: Array<{ path: string; objects: KubernetesObject[] }> = [];
  const rbacObjects: KubernetesObject[] = [];
  const policyObjects: KubernetesObject[] = [defaultDeny(config, ns.tools), allowDns(config, ns.tools)];
  const ciliumObjects: KubernetesObject[] = [];

  const perimeterService = (spec: ServiceSpec): KubernetesObject[] => {
    const stateClaim = `${spec.name}-state`;
    const ports = [{ name: "http", port: spec.port }, ...(spec.extraPorts ?? [])];
    const container: IContainer = {
      name: spec.name,
      image: config.kubernetes.perimeterImage,
      imagePullPolicy: "IfNotPresent",
      command: ["perimeter", "serve", spec.service, "-c", spec.configPath, "--listen", `0.0.0.0:${spec.port}`, ...(spec.extraArguments ?? [])],
      env: [{ name: "HOME", value: "/tmp" }, ...secretEnvironment(spec.secrets)],
      ports: ports.map((port) => ({ name: port.name, containerPort: port.port, protocol: "TCP" })),
      ...tcpProbes("http"),
      resources: spec.resources,
      securityContext: restrictedContainerSecurity(),
      volumeMounts: [{ name: "config", mountPath: CONFIG_DIRECTORY, readOnly: true }, STATE_MOUNT, TMP_MOUNT],
    };
    const podAnnotations =
      observability === undefined || spec.metricsPort === undefined
        ? undefined
        : { "prometheus.io/scrape": "true", "prometheus.io/port": String(spec.metricsPort), "prometheus.io/path": "/metrics" };
    return [
      serviceAccount(config, spec.name, ns.tools, spec.name, spec.automountServiceAccountToken ?? false),
      persistentVolumeClaim(config, stateClaim, ns.tools, spec.name, "1Gi"),
      singletonDeployment(config, {
        name: spec.name,
        namespace: ns.tools,
        component: spec.name,
        serviceAccountName: spec.name,
        automountServiceAccountToken: spec.automountServiceAccountToken ?? false,
        container,
        volumes: [spec.configVolume ?? configVolume, stateVolume(stateClaim), scratchVolume(spec.tmpSize)],
        podSecurityContext: restrictedPodSecurity(),
        podAnnotations,
        annotations: spec.annotations,
      }),
      clusterService(config, spec.name, ns.tools, spec.name, ports, pinnedClusterIP(resolution, spec.name)),
    ];
  };
  const secretsOf = (...names: string[]) => names.flatMap((name) => {
    const secret = secretFor(name);
    return secret === undefined ? [] : [{ name: secret.name, keys: secret.keys }];
  });

  // egress-proxy: the agent's only way out (and the approver bot's, as a client of its own).
  const approverClient = approverEgressClient(config);
  const egressRules = config.egress.allow.concat(renderedEgressClients(config).flatMap((client) => client.allow));
  // Its metrics listener serves /healthz and the audit feed to the dashboard, and /metrics to Prometheus when enabled.
  const metricsPort = egressMetricsPort(config);
  serviceFiles.push({
    path: "egress-proxy.yaml",
    objects: perimeterService({
      name: EGRESS_PROXY,
      service: "egress-proxy",
      port: egressPort,
      configPath: RUNTIME_CONFIG_PATH,
      secrets: secretsOf(EGRESS_PROXY),
      resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "1", memory: "256Mi" } },
      tmpSize: "64Mi",
      extraPorts: [{ name: "metrics", port: metricsPort }],
      metricsPort: observability === undefined ? undefined : metricsPort,
    }),
  });
  const egressPolicyEgress: INetworkPolicyEgressRule[] = [];
  if (!cilium && egressRules.length > 0) egressPolicyEgress.push(publicInternet(rulePorts(egressRules)));
  for (const cidr of ruleCidrs(egressRules)) egressPolicyEgress.push({ to: [{ ipBlock: { cidr } }], ports: tcp(rulePorts(egressRules)) });
  policyObjects.push(
    networkPolicy(config, {
      name: EGRESS_PROXY,
      namespace: ns.tools,
      podLabels: selectorLabels(config, EGRESS_PROXY),
      ingress: [
        { from: [agentPeer], ports: tcp([egressPort]) },
        ...(approverClient === undefined ? [] : [{ from: [guardPeer], ports: tcp([egressPort]) }]),
        dashboardIngress(config, metricsPort),
        ...observabilityIngress([metricsPort]),
      ],
      egress: egressPolicyEgress,
      annotations: ruleCidrs(egressRules).length === 0 ? undefined : { "perimeter.dev/ignore": "K8S-NETPOL-IPBLOCK-IN-CLUSTER=allowCidr exceptions the operator declared in egress rules" },
    }),
  );
  if (cilium && egressRules.length > 0) ciliumObjects.push(fqdnPolicy(config, EGRESS_PROXY, ns.tools, egressRules));

  // The sandbox's own egress proxy (only with a sandbox allowlist).
  if (sandboxServer !== undefined && sandboxAllow !== undefined) {
    const sandboxConfigVolume: IVolume = { name: "config", configMap: { name: "perimeter-config", items: [{ key: "sandbox-egress.yaml", path: "sandbox-egress.yaml" }] } };
    serviceFiles.push({
      path: "egress-proxy-sandbox.yaml",
        objects: perimeterService({
        name: SANDBOX_EGRESS_PROXY,
        service: "egress-proxy",
        port: egressPort,
        configPath: SANDBOX_EGRESS_CONFIG_PATH,
        secrets: secretsOf(SANDBOX_EGRESS_PROXY),
        resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { cpu: "500m", memory: "256Mi" } },
        tmpSize: "64Mi",
        configVolume: sandboxConfigVolume,
        extraPorts: [{ name: "metrics", port: metricsPort }],
      }),
    });
    policyObjects.push(
      networkPolicy(config, {
        name: SANDBOX_EGRESS_PROXY,
        namespace: ns.tools,
        podLabels: selectorLabels(config, SANDBOX_EGRESS_PROXY),
        ingress: [{ from: [inNamespace(ns.sandbox, selectorLabels(config, "perimeter-sandbox-task"))], ports: tcp([egressPort]) }, dashboardIngress(config, metricsPort)],
        egress: cilium ? [] : [publicInternet(rulePorts(sandboxAllow))],
      }),
    );
    if (cilium) ciliumObjects.push(fqdnPolicy(config, SANDBOX_EGRESS_PROXY, ns.tools, sandboxAllow));
  }

  // mcp-guard: the agent's one MCP endpoint; holds every upstream credential in its own Secret.
  const guardSecrets = secrets.filter((secret) => secret.workload === MCP_GUARD);
  const stdio = stdioServers(config);
  serviceFiles.push({
    path: "mcp-guard.yaml",
    objects: perimeterService({
      name: MCP_GUARD,
      service: "mcp-guard",
      port: mcpPort,
      configPath: RUNTIME_CONFIG_PATH,
      secrets: guardSecrets.map((secret) => ({ name: secret.name, keys: secret.keys })),
      resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "1", memory: stdio.length > 0 ? "1Gi" : "512Mi" } },
      tmpSize: stdio.length > 0 ? "1Gi" : "128Mi",
      // The admin port: the dashboard's approvals and mcp-guard's audit feed (and Prometheus when enabled).
      extraPorts: [{ name: "admin", port: adminPort }],
      metricsPort: observability === undefined ? undefined : adminPort,
    }),
  });
  const guardEgress: INetworkPolicyEgressRule[] = [];
  if (approverClient !== undefined) guardEgress.push({ to: [inNamespace(ns.tools, selectorLabels(config, EGRESS_PROXY))], ports: tcp([egressPort]) });
  if (sandboxServer !== undefined) guardEgress.push({ to: [inNamespace(ns.tools, selectorLabels(config, SANDBOX_RUNNER))], ports: tcp([sandboxPort]) });
  if (kubernetesServer !== undefined) guardEgress.push({ to: [inNamespace(ns.tools, selectorLabels(config, KUBERNETES_MCP))], ports: tcp([KUBERNETES_MCP_PORT]) });
  for (const server of deployedServers) guardEgress.push({ to: [inNamespace(ns.tools, selectorLabels(config, server.workload))], ports: tcp([server.port]) });
  // An upstream addressed by Service name (<service>.<namespace>.svc) is reached by namespace selector, like seed
  // 003's colony MCP; one addressed by IP literal cannot be named safely and is refused reachability with a warning.
  const external: Array<[string, URL]> = [];
  for (const [name, url] of externalHttpServers(config)) {
    const inCluster = inClusterService(url.hostname);
    if (inCluster !== undefined) guardEgress.push({ to: [inNamespace(inCluster.namespace)], ports: tcp([urlPort(url)]) });
    else if (isIP(url.hostname.replace(/^\[|\]$/g, "")) !== 0) warnings.push(`mcp.servers.${name}: ${url.hostname} is an address literal, which a NetworkPolicy cannot match reliably (DNAT); mcp-guard may not reach it. Use its Service name (<service>.<namespace>.svc) or deploy it with image.`);
    else external.push([name, url]);
  }
  const guardInternetPorts = [...external.map(([, url]) => urlPort(url)), ...(stdio.length > 0 ? [443] : [])];
  if (guardInternetPorts.length > 0 && !cilium) guardEgress.push(publicInternet(guardInternetPorts));
  if (guardInternetPorts.length > 0 && cilium) {
    if (stdio.length > 0) {
      // stdio children call hosts render cannot know; keep the broad rule for them and say so.
      guardEgress.push(publicInternet(guardInternetPorts));
      warnings.push(`stdio MCP servers (${stdio.join(", ")}) run inside mcp-guard and call hosts render cannot list: mcp-guard keeps a public-internet egress rule on 443 even with cni: cilium`);
    } else {
      ciliumObjects.push(fqdnPolicy(config, MCP_GUARD, ns.tools, external.map(([, url]) => ({ host: url.hostname, ports: [urlPort(url)], requireSni: true }))));
    }
  }
  policyObjects.push(
    networkPolicy(config, {
      name: MCP_GUARD,
      namespace: ns.tools,
      podLabels: selectorLabels(config, MCP_GUARD),
      ingress: [{ from: [agentPeer], ports: tcp([mcpPort]) }, dashboardIngress(config, adminPort), ...observabilityIngress([adminPort])],
      egress: guardEgress,
    }),
  );

  // llm-proxy: the only holder of provider keys.
  serviceFiles.push({
    path: "llm-proxy.yaml",
    objects: perimeterService({
      name: LLM_PROXY,
      service: "llm-proxy",
      port: llmPort,
      configPath: RUNTIME_CONFIG_PATH,
      secrets: secretsOf(LLM_PROXY),
      resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "1", memory: "512Mi" } },
      tmpSize: "64Mi",
      metricsPort: llmPort,
    }),
  });
  const llmEgress: INetworkPolicyEgressRule[] = [];
  const publicProviderHosts: HostRuleInput[] = [];
  const servedNames = new Set(served.map((model) => model.provider));
  for (const [name, provider] of Object.entries(config.llm.providers)) {
    if (servedNames.has(name)) continue;
    const url = new URL(provider.baseUrl);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const inCluster = inClusterService(host);
    if (inCluster !== undefined) {
      llmEgress.push({ to: [inNamespace(inCluster.namespace)], ports: tcp([urlPort(url)]) });
    } else if (isIP(host) !== 0) {
      llmEgress.push({ to: [{ ipBlock: { cidr: `${host}/${isIP(host) === 4 ? 32 : 128}` } }], ports: tcp([urlPort(url)]) });
      warnings.push(`llm.providers.${name}: ${host} is an address literal; render allowed it with an ipBlock, which only matches if no Service DNAT sits in front of it. Prefer a Service name (<service>.<namespace>.svc).`);
    } else {
      if (provider.allowPrivateAddress) warnings.push(`llm.providers.${name}: ${host} is allowed a private address, but render can only open the public internet for a name it cannot place; use its Service name (<service>.<namespace>.svc) or serve it with serve:`);
      publicProviderHosts.push({ host, ports: [urlPort(url)], requireSni: true });
    }
  }
  for (const model of served) llmEgress.push({ to: [inNamespace(ns.llm, selectorLabels(config, model.provider))], ports: tcp([model.port]) });
  if (publicProviderHosts.length > 0) {
    if (cilium) ciliumObjects.push(fqdnPolicy(config, LLM_PROXY, ns.tools, publicProviderHosts));
    else llmEgress.push(publicInternet(rulePorts(publicProviderHosts)));
  }
  const hasLiteralProvider = llmEgress.some((rule) => rule.to?.some((peer) => peer.ipBlock !== undefined && peer.ipBlock.cidr !== "0.0.0.0/0" && peer.ipBlock.cidr !== "::/0"));
  policyObjects.push(
    networkPolicy(config, {
      name: LLM_PROXY,
      namespace: ns.tools,
      podLabels: selectorLabels(config, LLM_PROXY),
      ingress: [{ from: [agentPeer], ports: tcp([llmPort]) }, dashboardIngress(config, llmPort), ...observabilityIngress([llmPort])],
      egress: llmEgress,
      annotations: hasLiteralProvider ? { "perimeter.dev/ignore": "K8S-NETPOL-IPBLOCK-IN-CLUSTER=an llm provider is configured by address literal" } : undefined,
    }),
  );

  // sandbox runner + the sandbox namespace.
  const sandboxObjects: KubernetesObject[] = [];
  // The runner's own metrics listener (runs nothing) serves /healthz and the audit feed to the dashboard and /metrics to
  // Prometheus, never the MCP port that runs tasks.
  const sandboxMetricsPort = SANDBOX_METRICS_PORT;
  if (sandboxServer !== undefined && apiServerCidr !== undefined) {
    const template = sandboxJobTemplate(config);
    configObjects.push(configMap(config, "sandbox-job-template", ns.tools, "sandbox", { [SANDBOX_JOB_TEMPLATE_KEY]: toYaml(template) }));
    const runnerConfigVolume: IVolume = {
      name: "config",
      projected: {
        sources: [
          { configMap: { name: "perimeter-config", items: [{ key: "perimeter.yaml", path: "perimeter.yaml" }] } },
          { configMap: { name: "sandbox-job-template", items: [{ key: SANDBOX_JOB_TEMPLATE_KEY, path: `sandbox/${SANDBOX_JOB_TEMPLATE_KEY}` }] } },
        ],
      },
    };
    serviceFiles.push({
      path: "sandbox-runner.yaml",
        objects: perimeterService({
        name: SANDBOX_RUNNER,
        service: "sandbox",
        port: sandboxPort,
        configPath: RUNTIME_CONFIG_PATH,
        secrets: secretsOf(SANDBOX_RUNNER),
        resources: { requests: { cpu: "50m", memory: "128Mi" }, limits: { cpu: "500m", memory: "256Mi" } },
        tmpSize: "128Mi",
        automountServiceAccountToken: true,
        configVolume: runnerConfigVolume,
        annotations: { "perimeter.dev/ignore": SANDBOX_RUNNER_IGNORES },
        metricsPort: observability === undefined ? undefined : sandboxMetricsPort,
        extraPorts: [{ name: "metrics", port: sandboxMetricsPort }],
        extraArguments: ["--metrics-listen", `0.0.0.0:${sandboxMetricsPort}`],
      }),
    });
    rbacObjects.push(
      serviceAccount(config, SANDBOX_TASK_SERVICE_ACCOUNT, ns.sandbox, "sandbox", false),
      // Every namespace gets a `default` ServiceAccount; a pod that names none would run as it, with a token.
      serviceAccount(config, "default", ns.sandbox, "sandbox", false),
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: SANDBOX_RUNNER, namespace: ns.sandbox, labels: standardLabels(config, SANDBOX_RUNNER, "sandbox"), annotations: { "perimeter.dev/ignore": SANDBOX_RUNNER_IGNORES.split("\n")[1] as string } },
        rules: [
          { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "delete", "get", "list", "watch"] },
          { apiGroups: [""], resources: ["configmaps"], verbs: ["create", "delete", "get", "list"] },
          { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
          { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
        ],
      } as KubernetesObject,
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: SANDBOX_RUNNER, namespace: ns.sandbox, labels: standardLabels(config, SANDBOX_RUNNER, "sandbox") },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: SANDBOX_RUNNER },
        subjects: [{ kind: "ServiceAccount", name: SANDBOX_RUNNER, namespace: ns.tools }],
      } as KubernetesObject,
    );
    const limits = config.sandbox.limits;
    const concurrency = config.sandbox.concurrency;
    sandboxObjects.push({
      apiVersion: "v1",
      kind: "ResourceQuota",
      metadata: { name: "sandbox-tasks", namespace: ns.sandbox, labels: standardLabels(config, "sandbox-tasks", "sandbox") },
      spec: {
        hard: {
          pods: String(concurrency),
          "requests.cpu": multiplyQuantity(limits.cpu, concurrency),
          "limits.cpu": multiplyQuantity(limits.cpu, concurrency),
          "requests.memory": multiplyQuantity(limits.memory, concurrency),
          "limits.memory": multiplyQuantity(limits.memory, concurrency),
          "requests.ephemeral-storage": multiplyQuantity(limits.disk, concurrency),
          "limits.ephemeral-storage": multiplyQuantity(limits.disk, concurrency),
          persistentvolumeclaims: "0",
          "services.loadbalancers": "0",
          "services.nodeports": "0",
          // Bounds on what the runner's token can pile up in etcd, whatever it is made to do.
          "count/jobs.batch": String(SANDBOX_OBJECTS_PER_SLOT * concurrency),
          "count/pods": String(SANDBOX_OBJECTS_PER_SLOT * concurrency),
          // +1: kube-root-ca.crt, which Kubernetes publishes into every namespace.
          "count/configmaps": String(SANDBOX_OBJECTS_PER_SLOT * concurrency + 1),
          "count/secrets": "0",
          "count/services": "0",
          "count/persistentvolumeclaims": "0",
        },
      },
    } as KubernetesObject);
    sandboxObjects.push(...(sandboxAdmissionObjects(config) as KubernetesObject[]));
    policyObjects.push(
      networkPolicy(config, {
        name: SANDBOX_RUNNER,
        namespace: ns.tools,
        podLabels: selectorLabels(config, SANDBOX_RUNNER),
        ingress: [{ from: [guardPeer], ports: tcp([sandboxPort]) }, dashboardIngress(config, sandboxMetricsPort), ...observabilityIngress([sandboxMetricsPort])],
        egress: [apiServer(apiServerCidr)],
        annotations: { "perimeter.dev/ignore": API_SERVER_IPBLOCK_NOTE },
      }),
    );
    policyObjects.push(defaultDeny(config, ns.sandbox));
    if (sandboxAllow !== undefined) {
      const taskLabels = selectorLabels(config, "perimeter-sandbox-task");
      // No port-53 rule: tasks find their proxy in /etc/hosts, or (Cilium) ask kube-dns for that one name only.
      if (resolution.kind === "cilium-names") {
        ciliumObjects.push(dnsNamesPolicy(config, { name: "sandbox-task-dns", namespace: ns.sandbox, podLabels: taskLabels, names: [serviceHost(SANDBOX_EGRESS_PROXY, ns.tools)] }));
      }
      policyObjects.push(
        networkPolicy(config, {
          name: "sandbox-task",
          namespace: ns.sandbox,
          podLabels: taskLabels,
          egress: [{ to: [inNamespace(ns.tools, selectorLabels(config, SANDBOX_EGRESS_PROXY))], ports: tcp([egressPort]) }],
        }),
      );
    }
  }

  // kubernetes-mcp-server: read-only, core toolset, a fixed tool list, Secrets denied, Roles in named namespaces.
  if (kubernetesServer !== undefined && apiServerCidr !== undefined) {
    const [, entry] = kubernetesServer;
    configObjects.push(configMap(config, `${KUBERNETES_MCP}-config`, ns.tools, KUBERNETES_MCP, { "config.toml": kubernetesMcpToml() }));
    const objects: KubernetesObject[] = [
      serviceAccount(config, KUBERNETES_MCP, ns.tools, KUBERNETES_MCP, true),
      singletonDeployment(config, {
        name: KUBERNETES_MCP,
        namespace: ns.tools,
        component: KUBERNETES_MCP,
        serviceAccountName: KUBERNETES_MCP,
        automountServiceAccountToken: true,
        container: {
          name: KUBERNETES_MCP,
          image: entry.image ?? KUBERNETES_MCP_IMAGE,
          imagePullPolicy: "IfNotPresent",
          args: ["--config", "/etc/kubernetes-mcp-server/config.toml"],
          env: [{ name: "HOME", value: "/tmp" }],
          ports: [{ name: "http", containerPort: KUBERNETES_MCP_PORT, protocol: "TCP" }],
          ...tcpProbes("http"),
          resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { cpu: "500m", memory: "256Mi" } },
          securityContext: restrictedContainerSecurity(),
          volumeMounts: [{ name: "config", mountPath: "/etc/kubernetes-mcp-server", readOnly: true }, TMP_MOUNT],
        },
        volumes: [{ name: "config", configMap: { name: `${KUBERNETES_MCP}-config` } }, scratchVolume("64Mi")],
        podSecurityContext: restrictedPodSecurity(),
        annotations: { "perimeter.dev/ignore": KUBERNETES_MCP_IGNORES },
      }),
      clusterService(config, KUBERNETES_MCP, ns.tools, KUBERNETES_MCP, [{ name: "http", port: KUBERNETES_MCP_PORT }]),
    ];
    serviceFiles.push({ path: "kubernetes-mcp-server.yaml", objects });
    for (const target of [...entry.namespaces].sort()) {
      rbacObjects.push(
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "Role",
          metadata: { name: `${config.name}-${KUBERNETES_MCP}-read`, namespace: target, labels: standardLabels(config, `${KUBERNETES_MCP}-read`, KUBERNETES_MCP) },
          rules: KUBERNETES_READ_RULES,
        } as KubernetesObject,
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: `${config.name}-${KUBERNETES_MCP}-read`, namespace: target, labels: standardLabels(config, `${KUBERNETES_MCP}-read`, KUBERNETES_MCP) },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: `${config.name}-${KUBERNETES_MCP}-read` },
          subjects: [{ kind: "ServiceAccount", name: KUBERNETES_MCP, namespace: ns.tools }],
        } as KubernetesObject,
      );
    }
    policyObjects.push(
      networkPolicy(config, {
        name: KUBERNETES_MCP,
        namespace: ns.tools,
        podLabels: selectorLabels(config, KUBERNETES_MCP),
        ingress: [{ from: [guardPeer], ports: tcp([KUBERNETES_MCP_PORT]) }],
        egress: [apiServer(apiServerCidr)],
        annotations: { "perimeter.dev/ignore": API_SERVER_IPBLOCK_NOTE },
      }),
    );
  }

  // MCP servers deployed from their own image: each holds only its own credentials.
  if (deployedServers.length > 0) {
    const objects: KubernetesObject[] = [];
    for (const server of deployedServers) {
      const own = secretFor(server.workload);
      const envEntries = Object.entries(server.config.env)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, value]) => ({ name, value: value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, "$($1)") }));
      objects.push(
        serviceAccount(config, server.workload, ns.tools, "mcp-server", false),
        singletonDeploymentWithoutState(config, server.workload, ns.tools, {
          name: "server",
          image: server.image,
          imagePullPolicy: "IfNotPresent",
          // Secrets first: Kubernetes expands $(VAR) only from variables defined earlier in the list.
          env: [{ name: "HOME", value: "/tmp" }, ...secretEnvironment(own === undefined ? [] : [{ name: own.name, keys: own.keys }]), ...envEntries],
          ports: [{ name: "http", containerPort: server.port, protocol: "TCP" }],
          ...tcpProbes("http"),
          resources: { requests: { cpu: "50m", memory: "128Mi" }, limits: { cpu: "500m", memory: "512Mi" } },
          securityContext: restrictedContainerSecurity(),
          volumeMounts: [TMP_MOUNT],
        }),
        clusterService(config, server.workload, ns.tools, "mcp-server", [{ name: "http", port: server.port }]),
      );
      policyObjects.push(
        networkPolicy(config, {
          name: server.workload,
          namespace: ns.tools,
          podLabels: selectorLabels(config, server.workload),
          ingress: [{ from: [guardPeer], ports: tcp([server.port]) }],
          // A tool server calls its own API (Discord, Google...): HTTPS to the public internet, nothing private.
          egress: [publicInternet([443])],
        }),
      );
    }
    serviceFiles.push({ path: "mcp-servers.yaml", objects });
  }

  // Local model serving in <name>-llm: reachable from llm-proxy only; no egress (weights are pre-loaded).
  const llmObjects: KubernetesObject[] = [];
  if (served.length > 0) {
    policyObjects.push(defaultDeny(config, ns.llm));
    for (const model of served) {
      const claim = `${model.provider}-models`;
      const isVllm = model.engine === "vllm";
      const gpuLimits: Record<string, string> = model.gpus > 0 ? { "nvidia.com/gpu": String(model.gpus) } : {};
      llmObjects.push(
        serviceAccount(config, model.provider, ns.llm, "llm-serving", false),
        persistentVolumeClaim(config, claim, ns.llm, "llm-serving", "50Gi"),
        singletonDeployment(config, {
          name: model.provider,
          namespace: ns.llm,
          component: "llm-serving",
          serviceAccountName: model.provider,
          automountServiceAccountToken: false,
          container: {
            name: model.engine,
            image: model.image,
            imagePullPolicy: "IfNotPresent",
            ...(isVllm
              ? { args: ["--model", model.model, "--served-model-name", ...model.servedNames, "--host", "0.0.0.0", "--port", String(model.port), "--download-dir", "/models"] }
              : {}),
            env: isVllm
              ? [
                  { name: "HOME", value: "/tmp" },
                  { name: "HF_HOME", value: "/models/huggingface" },
                  { name: "HF_HUB_OFFLINE", value: "1" },
                  { name: "XDG_CACHE_HOME", value: "/tmp/.cache" },
                ]
              : [
                  { name: "HOME", value: "/tmp" },
                  { name: "OLLAMA_HOST", value: `0.0.0.0:${model.port}` },
                  { name: "OLLAMA_MODELS", value: "/models" },
                ],
            ports: [{ name: "http", containerPort: model.port, protocol: "TCP" }],
            readinessProbe: { tcpSocket: { port: "http" }, periodSeconds: 10, failureThreshold: 60 },
            resources: {
              requests: { cpu: model.resources.cpu, memory: model.resources.memory, ...gpuLimits },
              limits: { cpu: model.resources.cpu, memory: model.resources.memory, ...gpuLimits },
            },
            securityContext: restrictedContainerSecurity(),
            volumeMounts: [{ name: "models", mountPath: "/models" }, TMP_MOUNT, ...(isVllm ? [{ name: "shm", mountPath: "/dev/shm" }] : [])],
          },
          volumes: [
            { name: "models", persistentVolumeClaim: { claimName: claim } },
            scratchVolume("2Gi"),
            ...(isVllm ? [{ name: "shm", emptyDir: { medium: "Memory", sizeLimit: "2Gi" } }] : []),
          ],
          podSecurityContext: restrictedPodSecurity(),
        }),
        clusterService(config, model.provider, ns.llm, "llm-serving", [{ name: "http", port: model.port }]),
      );
      policyObjects.push(
        networkPolicy(config, {
          name: model.provider,
          namespace: ns.llm,
          podLabels: selectorLabels(config, model.provider),
          ingress: [{ from: [llmProxyPeer], ports: tcp([model.port]) }],
        }),
      );
    }
  }

  // ---- the dashboard: loopback in its pod, opened with kubectl port-forward; reads every feed, reachable by nothing.
  const dashboard = dashboardObjects(config, secretFor(DASHBOARD), configVolume);
  serviceFiles.push({ path: "dashboard.yaml", objects: dashboard.workload as KubernetesObject[] });
  policyObjects.push(dashboard.policy);

  // ---- the agent
  const agentSecret = secretFor(AGENT_WORKLOAD);
  const apiEnabled = config.agent.apiServer.enabled;
  const dashboardEnabled = config.agent.dashboard.enabled;
  const agentPorts = [
    ...(apiEnabled ? [{ name: "api", port: config.agent.apiServer.port }] : []),
    ...(dashboardEnabled ? [{ name: "dashboard", port: config.agent.dashboard.port }] : []),
  ];
  const hermes = hermesAgentFiles(config, endpoints);
  const agentObjects: KubernetesObject[] = [
    serviceAccount(config, AGENT_WORKLOAD, ns.system, "agent", false),
    persistentVolumeClaim(config, "hermes-data", ns.system, "agent", config.agent.data.size),
    configMap(config, "hermes-config-seed", ns.system, "agent", { "config.yaml": hermes.configYaml, "hermes.env": hermes.envFile }),
    singletonDeployment(config, {
      name: AGENT_WORKLOAD,
      namespace: ns.system,
      component: "agent",
      serviceAccountName: AGENT_WORKLOAD,
      automountServiceAccountToken: false,
      annotations: { "perimeter.dev/security-notes": AGENT_SECURITY_NOTE, "perimeter.dev/ignore": AGENT_SECURITY_IGNORES },
      initContainers: [
        {
          name: "seed-config",
          image: config.agent.image,
          imagePullPolicy: "IfNotPresent",
          command: [
            "sh",
            "-c",
            'if [ ! -f /opt/data/config.yaml ]; then cp /seed/config.yaml /opt/data/config.yaml && echo "seeded config.yaml"; else echo "config.yaml already present, leaving it"; fi',
          ],
          resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "100m", memory: "64Mi" } },
          securityContext: { ...restrictedContainerSecurity(), runAsUser: HERMES_UID, runAsGroup: HERMES_UID },
          volumeMounts: [
            { name: "data", mountPath: "/opt/data" },
            { name: "seed", mountPath: "/seed", readOnly: true },
          ],
        },
      ],
      container: {
        name: "hermes",
        image: config.agent.image,
        imagePullPolicy: "IfNotPresent",
        args: ["gateway", "run"],
        env: environment(hermes.environment, agentSecret?.name ?? AGENT_WORKLOAD),
        ...(agentPorts.length === 0 ? {} : { ports: agentPorts.map((port) => ({ name: port.name, containerPort: port.port, protocol: "TCP" })) }),
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["NET_RAW"] } },
        // Ready only once this process's gateway runs with every platform connected (gateway_state.json, hermes.ts).
        readinessProbe: {
          exec: { command: [...hermes.healthcheck] },
          initialDelaySeconds: 20,
          periodSeconds: 10,
          timeoutSeconds: 5,
          failureThreshold: 30,
        },
        resources: config.agent.resources,
        volumeMounts: [
          { name: "data", mountPath: "/opt/data" },
          // Hermes loads .env over its environment; read-only, the agent cannot rewrite it to undo the proxy or allowlists.
          { name: "seed", mountPath: HERMES_ENV_PATH, subPath: "hermes.env", readOnly: true },
          { name: "tmp", mountPath: "/tmp" },
        ],
      },
      volumes: [
        { name: "data", persistentVolumeClaim: { claimName: "hermes-data" } },
        { name: "seed", configMap: { name: "hermes-config-seed" } },
        { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
      ],
      podSecurityContext: agentPodSecurity(),
      nameResolution: resolution.kind === "hosts" ? hostsOnly(resolution.addresses, AGENT_SERVICES, ns.tools) : undefined,
    }),
  ];
  if (agentPorts.length > 0) agentObjects.push(clusterService(config, AGENT_WORKLOAD, ns.system, "agent", agentPorts));

  const agentIngress: INetworkPolicyIngressRule[] =
    agentPorts.length > 0 && config.kubernetes.ingressNamespace !== undefined
      ? [{ from: [inNamespace(config.kubernetes.ingressNamespace)], ports: tcp(agentPorts.map((port) => port.port)) }]
      : [];
  // No DNS rule for the agent's namespace: a plain NetworkPolicy that opens port 53 opens it for every name.
  if (resolution.kind === "cilium-names") {
    ciliumObjects.push(dnsNamesPolicy(config, { name: `${AGENT_WORKLOAD}-dns`, namespace: ns.system, podLabels: selectorLabels(config, AGENT_WORKLOAD), names: agentServiceNames(config) }));
  }
  const systemPolicies = [
    defaultDeny(config, ns.system),
    networkPolicy(config, {
      name: AGENT_WORKLOAD,
      namespace: ns.system,
      podLabels: selectorLabels(config, AGENT_WORKLOAD),
      ingress: agentIngress,
      egress: [
        { to: [guardPeer], ports: tcp([mcpPort]) },
        { to: [llmProxyPeer], ports: tcp([llmPort]) },
        { to: [inNamespace(ns.tools, selectorLabels(config, EGRESS_PROXY))], ports: tcp([egressPort]) },
      ],
    }),
  ];

  // ---- secrets: never with values
  const externalSecrets = config.kubernetes.externalSecrets;
  const externalSecretObjects: KubernetesObject[] =
    externalSecrets === undefined
      ? []
      : secrets.map((secret) => ({
          apiVersion: "external-secrets.io/v1",
          kind: "ExternalSecret",
          metadata: { name: secret.name, namespace: secret.namespace === "system" ? ns.system : ns.tools, labels: standardLabels(config, secret.name, "secrets") },
          spec: {
            refreshInterval: "1h",
            secretStoreRef: { name: externalSecrets.storeName, kind: externalSecrets.storeKind },
            target: { name: secret.name, creationPolicy: "Owner" },
            data: secret.keys.map((key) => ({ secretKey: key, remoteRef: { key } })),
          },
        }));

  const files: RenderedFile[] = [];
  const manifest = (path: string, objects: readonly KubernetesObject[]) => {
    if (objects.length > 0) files.push({ path, content: toYamlStream(objects), objects });
  };
  manifest("namespaces.yaml", namespaceObjects);
  manifest("rbac.yaml", rbacObjects);
  manifest("config.yaml", configObjects);
  manifest("agent.yaml", agentObjects);
  for (const file of serviceFiles) manifest(file.path, file.objects);
  manifest("llm-serving.yaml", llmObjects);
  manifest("sandbox.yaml", sandboxObjects);
  manifest("network-policies.yaml", [...systemPolicies, ...policyObjects]);
  manifest("cilium-network-policies.yaml", ciliumObjects);
  manifest("external-secrets.yaml", externalSecretObjects);
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
  if (externalSecrets === undefined) files.push({ path: "create-secrets.sh", content: createSecretsScript(config, secrets) });
  return { files, secrets, warnings };
}

function singletonDeploymentWithoutState(config: PerimeterConfig, name: string, namespace: string, container: IContainer) {
  return singletonDeployment(config, {
    name,
    namespace,
    component: "mcp-server",
    serviceAccountName: name,
    automountServiceAccountToken: false,
    container,
    volumes: [scratchVolume("128Mi")],
    podSecurityContext: restrictedPodSecurity(),
  });
}

/** get/list/watch on named resources: never secrets, pods/exec, pods/attach, nodes/proxy or serviceaccounts/token. */
export const KUBERNETES_READ_RULES = [
  { apiGroups: [""], resources: ["events", "pods", "pods/log", "services"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["apps"], resources: ["daemonsets", "deployments", "replicasets", "statefulsets"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["batch"], resources: ["cronjobs", "jobs"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["get", "list", "watch"] },
];

/** The tools kubernetes-mcp-server exposes: namespace-scoped reads that the Roles above can answer. */
export const KUBERNETES_MCP_TOOLS = ["events_list", "pods_get", "pods_list_in_namespace", "pods_log", "resources_get", "resources_list"];

/**
 * kubernetes-mcp-server's config, read-only. In a cluster it uses its in-cluster ServiceAccount; on a Compose host,
 * a kubeconfig file mounted for it (the same TOML otherwise, so both targets refuse the same things).
 */
export function kubernetesMcpToml(options: { port: number | string; kubeconfig?: string } = { port: 8080 }): string {
  const quoted = (values: readonly string[]) => `[${values.map((value) => JSON.stringify(value)).join(", ")}]`;
  return [
    "# kubernetes-mcp-server, read-only (rendered by perimeter). Never add the \"config\" toolset: its",
    "# configuration_view returns the kubeconfig, token included.",
    `port = "${options.port}"`,
    "read_only = true",
    "stateless = true",
    ...(options.kubeconfig === undefined
      ? ['cluster_provider_strategy = "in-cluster"']
      : [`kubeconfig = ${JSON.stringify(options.kubeconfig)}`, 'cluster_provider_strategy = "kubeconfig"']),
    'list_output = "yaml"',
    `toolsets = ${quoted(["core"])}`,
    `enabled_tools = ${quoted(KUBERNETES_MCP_TOOLS)}`,
    "",
    "# Refused even where RBAC would allow: Secret contents, and ConfigMaps, which often hold credentials too.",
    "[[denied_resources]]",
    'group = ""',
    'version = "v1"',
    'kind = "Secret"',
    "",
    "[[denied_resources]]",
    'group = ""',
    'version = "v1"',
    'kind = "ConfigMap"',
    "",
  ].join("\n");
}

/** A CiliumNetworkPolicy that lets one proxy reach only the allowlisted names (and DNS, which toFQDNs needs). */
function fqdnPolicy(config: PerimeterConfig, workload: string, namespace: string, rules: readonly HostRuleInput[]): KubernetesObject {
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

/** The exact command for one Secret; each value comes from the shell variable of the same name. */
export function kubectlCreateSecret(secret: SecretSpec, namespace: string): string[] {
  return [
    `kubectl create secret generic ${secret.name} --namespace=${namespace} \\`,
    ...secret.keys.map((key, index) => `  --from-literal=${key}="\${${key}:?set ${key}}"${index === secret.keys.length - 1 ? "" : " \\"}`),
  ];
}
