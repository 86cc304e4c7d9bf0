// The perimeter.yaml the services read at run time: the operator's declaration with the deployment filled in —
// listen addresses for a container network, the in-cluster (or Compose) addresses of builtin and deployed MCP
// servers and served models, and the sandbox backend the target supports. It still holds no secret values: only
// variable names, which each service finds in its own Secret.
import type { PerimeterConfig } from "../config/index.ts";
import { composeAuditAlias } from "./endpoints.ts";
import type { Endpoints } from "./endpoints.ts";
import { dashboardSettings } from "./dashboard.ts";
import {
  DEFAULT_SANDBOX_IMAGE,
  DEFAULT_SIGNING_KEY,
  EGRESS_PROXY,
  MCP_GUARD,
  approverEgressClient,
  builtinServer,
  deployedMcpServers,
  egressMetricsPort,
  feedTokenSecret,
  portOf,
  sandboxAllowlist,
  sandboxServerName,
  servedModels,
} from "./plan.ts";

type Json = Record<string, unknown>;

function anyAddress(hostPort: string): string {
  return `0.0.0.0:${portOf(hostPort)}`;
}

/** Where a listener only the dashboard (and, on Kubernetes, Prometheus) may reach binds. */
export function auditOnly(endpoints: Endpoints, service: string, port: number): string {
  return endpoints.target === "compose" ? `${composeAuditAlias(service)}:${port}` : `0.0.0.0:${port}`;
}

export function runtimeConfig(config: PerimeterConfig, endpoints: Endpoints): Json {
  const runtime = structuredClone(config) as PerimeterConfig;

  runtime.llm.listen = anyAddress(config.llm.listen);
  runtime.mcp.listen = anyAddress(config.mcp.listen);
  runtime.sandbox.listen = anyAddress(config.sandbox.listen);
  runtime.egress.listen = anyAddress(config.egress.listen);
  // The admin API (approvals, mcp-guard's audit feed) and egress-proxy's metrics listener (its health and audit feed)
  // are read by the dashboard. On Kubernetes they listen on the pod's address and a NetworkPolicy admits only the
  // dashboard (and Prometheus when enabled). Compose has no such policy, and mcp-guard and egress-proxy share the
  // agent's network (tool servers share tools/egress), so there they bind their alias on the `audit` network only:
  // on 0.0.0.0 the agent would reach approvals and the feed with a bearer token as the only wall.
  runtime.mcp.admin.listen = auditOnly(endpoints, MCP_GUARD, portOf(config.mcp.admin.listen));
  runtime.egress.metrics = auditOnly(endpoints, EGRESS_PROXY, egressMetricsPort(config));
  // Every rendered component serves its audit feed to this read-only token: the dashboard copies and verifies each chain.
  runtime.audit.feedTokenSecret = feedTokenSecret(config);
  runtime.dashboard = { ...runtime.dashboard, ...dashboardSettings(config, endpoints) };
  // The approver bot calls the Bot API through the egress proxy as a client of its own, allowed only that host.
  const approver = approverEgressClient(config);
  if (approver !== undefined && runtime.approvals.telegram !== undefined) {
    runtime.approvals.telegram = { ...runtime.approvals.telegram, proxy: endpoints.egressProxyUrl, proxyTokenSecret: approver.tokenSecret };
    // With no clients the proxy gives every caller the global list; adding the bot's client must not change that.
    if (config.egress.clients.length === 0 && config.egress.unknownClients === "deny") runtime.egress.unknownClients = "global";
    runtime.egress.clients = [...runtime.egress.clients, approver];
  }
  // mcp-guard refuses a Host it does not know (DNS rebinding); the agent calls it by this name.
  runtime.mcp.allowedHosts = [...new Set([...(config.mcp.allowedHosts ?? []), endpoints.mcpGuardHost])].sort();
  // Unsigned checkpoints cannot reveal a rewrite of a whole log, so every rendered component signs: its key is
  // created on first start in its own state volume (never in the render), and the runbook takes the public key off.
  runtime.audit.signingKeyFile = config.audit.signingKeyFile ?? DEFAULT_SIGNING_KEY;

  // Kubernetes: each task is a Job (bubblewrap cannot create namespaces in a restricted pod). Compose: bubblewrap
  // inside the runner container (docs/render.md explains the privileges that takes).
  runtime.sandbox.backend = endpoints.target === "kubernetes" ? "kubernetes" : "bubblewrap";
  if (endpoints.target === "kubernetes") runtime.sandbox.image = config.sandbox.image ?? DEFAULT_SANDBOX_IMAGE;

  const sandboxServer = sandboxServerName(config);
  if (sandboxServer !== undefined) {
    const declared = config.mcp.servers[sandboxServer];
    runtime.mcp.servers[sandboxServer] = {
      ...(declared ?? { env: {}, secrets: [], namespaces: [], arguments: {}, timeoutSeconds: config.sandbox.limits.timeoutSeconds + 60, tools: { allow: ["*"], approve: [], annotations: {} } }),
      builtin: "sandbox",
      url: endpoints.sandboxRunnerUrl,
      headers: { ...(declared?.headers ?? {}), Authorization: `Bearer \${${config.sandbox.tokenSecret}}` },
    };
  }
  const kubernetesServer = builtinServer(config, "kubernetes-readonly");
  if (kubernetesServer !== undefined) {
    const [name, entry] = kubernetesServer;
    runtime.mcp.servers[name] = { ...entry, url: endpoints.kubernetesMcpUrl };
  }
  for (const server of deployedMcpServers(config)) {
    const entry = runtime.mcp.servers[server.server];
    if (entry === undefined) continue;
    // The pod has only its own credentials; mcp-guard keeps the headers it injects. Env belongs to the pod.
    runtime.mcp.servers[server.server] = { ...entry, url: `${endpoints.mcpServerOrigin(server.workload, server.port)}${server.path}`, env: {}, secrets: [] };
  }
  for (const model of servedModels(config)) {
    const provider = runtime.llm.providers[model.provider];
    if (provider !== undefined) runtime.llm.providers[model.provider] = { ...provider, baseUrl: endpoints.servedModelUrl(model.provider), allowPrivateAddress: true };
  }
  return runtime as unknown as Json;
}

/**
 * The second egress proxy's config: the same file with the sandbox allowlist as its only rules. The sandbox's
 * proxy then cannot grant the agent's destinations, and the agent's cannot grant the sandbox's.
 */
export function sandboxEgressConfig(config: PerimeterConfig, endpoints: Endpoints): Json | undefined {
  const allow = sandboxAllowlist(config);
  if (allow === undefined) return undefined;
  const runtime = runtimeConfig(config, endpoints) as unknown as PerimeterConfig;
  runtime.egress = { ...runtime.egress, allow, clients: [] };
  return runtime as unknown as Json;
}
