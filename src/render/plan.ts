// What a perimeter.yaml deploys, decided once for both targets: the components, their ports and addresses, which
// secret lives in which component's Secret, and the checks that a config can actually be deployed. The Kubernetes
// and Compose writers only translate this plan into their own syntax.
import type { McpServerConfig, PerimeterConfig } from "../config/index.ts";
import { placeholdersIn } from "../config/index.ts";
import { PerimeterError, parseTcp } from "../shared/index.ts";

export type Target = "kubernetes" | "compose" | "vps";

/** A config that is valid but cannot be rendered as asked; the CLI maps it to exit 2 with the message. */
/**
 * Issue 14: the bubblewrap backend (Compose, vps) runs tasks on the runner's own /usr, which has no Python; a
 * declared sandbox.image would be silently ignored there, and a pypi allowlist with it.
 */
export function refuseSandboxImage(config: PerimeterConfig, target: string): void {
  if (config.sandbox.image === undefined) return;
  throw new RenderError(
    `sandbox.image ${config.sandbox.image} cannot be honoured on the ${target} target: its sandbox (bubblewrap) runs each task on the runner's own /usr, not in an image (and that has no Python). Remove sandbox.image for ${target}, or render for kubernetes, where every task runs in a Job from sandbox.image`,
  );
}

export class RenderError extends PerimeterError {
  constructor(message: string) {
    // A declaration that cannot be deployed as asked is a config problem: exit 2, with the fix in the message.
    super("config", message);
  }
}

export const AGENT_WORKLOAD = "hermes-gateway";
export const EGRESS_PROXY = "egress-proxy";
/** A second egress proxy that holds only the sandbox allowlist, so that sandbox tasks and the agent never share one. */
export const SANDBOX_EGRESS_PROXY = "egress-proxy-sandbox";
export const MCP_GUARD = "mcp-guard";
export const SANDBOX_RUNNER = "sandbox-runner";
export const LLM_PROXY = "llm-proxy";
/** The operator's web UI (`perimeter serve dashboard`): loopback only, reads every component's audit feed. */
export const DASHBOARD = "dashboard";
/** The variable of the read-only audit feed token when the declaration names none: every render turns the feed on. */
export const DEFAULT_FEED_TOKEN_SECRET = "PERIMETER_AUDIT_FEED_TOKEN";
/** The Telegram approver bot's egress client (render adds it so the bot's traffic goes through the egress proxy). */
export const APPROVER_EGRESS_CLIENT = "approvals-telegram";
export const APPROVER_EGRESS_TOKEN = "PERIMETER_APPROVER_EGRESS_TOKEN";
export const KUBERNETES_MCP = "kubernetes-mcp-server";
export const KUBERNETES_MCP_PORT = 8080;
/** Pinned: its config format (read_only, toolsets, enabled_tools, denied_resources) is what render writes. */
export const KUBERNETES_MCP_IMAGE = "quay.io/containers/kubernetes-mcp-server:v0.0.60";
export const EGRESS_METRICS_PORT = 9090;
/** The sandbox runner's separate metrics listener (`--metrics-listen`), rendered only when Prometheus scrapes. */
export const SANDBOX_METRICS_PORT = 9464;
/** The Hermes image's user (its s6 init drops the gateway to this uid). */
export const HERMES_UID = 10000;
/** Our services' uid: the distroless "nonroot" user, baked into the Dockerfile. */
export const SERVICE_UID = 65532;
export const CONFIG_DIRECTORY = "/etc/perimeter";
export const RUNTIME_CONFIG_PATH = "/etc/perimeter/perimeter.yaml";
export const SANDBOX_EGRESS_CONFIG_PATH = "/etc/perimeter/sandbox-egress.yaml";
export const STATE_DIRECTORY = "/var/lib/perimeter";
/** The image of a sandbox task's Job when sandbox.image is not set (the kubernetes backend alone runs one). */
export const DEFAULT_SANDBOX_IMAGE = "python:3.12-slim";
/** Each rendered component's checkpoint signing key, created on its first start in its own state directory. */
export const DEFAULT_SIGNING_KEY = `${STATE_DIRECTORY}/audit-signing.pem`;
/** The path mcp-guard and the sandbox runner serve MCP on, and llm-proxy's OpenAI-compatible prefix. */
export const MCP_PATH = "/mcp";
export const LLM_PATH = "/v1";

export type PerimeterService = "egress-proxy" | "mcp-guard" | "sandbox" | "llm-proxy" | "dashboard";

export function portOf(hostPort: string): number {
  const address = parseTcp(hostPort);
  if (address === undefined) throw new RenderError(`"${hostPort}" has no port`);
  return address.port;
}

/** The agent Hermes runs as: the first entry of mcp.agents (one Hermes gateway per perimeter). */
export function agentEntry(config: PerimeterConfig): { name: string; tokenSecret: string } {
  const agent = config.mcp.agents[0];
  if (agent === undefined) throw new RenderError("mcp.agents is empty: declare the agent, e.g. [{ name: hermes, tokenSecret: PERIMETER_AGENT_TOKEN }]");
  return agent;
}

/** The variable holding the agent's llm-proxy virtual key: the llm client named like the agent, else the first one. */
export function agentLlmKeySecret(config: PerimeterConfig): string {
  const agent = agentEntry(config);
  const client = config.llm.clients.find((entry) => entry.name === agent.name) ?? config.llm.clients[0];
  return client?.keySecret ?? "PERIMETER_LLM_KEY";
}

/** The model Hermes asks for: llm.default, else the first model of the first provider. */
export function defaultModel(config: PerimeterConfig): string {
  if (config.llm.default !== undefined) return config.llm.default;
  for (const [name, provider] of Object.entries(config.llm.providers)) {
    const model = provider.models[0];
    if (model !== undefined) return `${name}/${model}`;
  }
  throw new RenderError("llm.providers is empty: the agent needs at least one model behind llm-proxy (e.g. minimax with apiKeySecret MINIMAX_API_KEY)");
}

/** Models Hermes may fall back to, all through llm-proxy: every other provider's models, else the default again. */
export function fallbackModels(config: PerimeterConfig): string[] {
  const primary = defaultModel(config);
  const models = Object.entries(config.llm.providers).flatMap(([name, provider]) => provider.models.map((model) => `${name}/${model}`));
  const others = models.filter((model) => model !== primary);
  return others.length > 0 ? others : [primary];
}

export function platformEnvironmentPrefix(platform: string): string {
  return platform.toUpperCase();
}

export interface ServedModel {
  readonly provider: string;
  readonly engine: "vllm" | "ollama";
  readonly image: string;
  readonly model: string;
  readonly servedNames: readonly string[];
  readonly port: number;
  readonly path: string;
  readonly gpus: number;
  readonly resources: { cpu: string; memory: string };
}

export function servedModels(config: PerimeterConfig): ServedModel[] {
  return Object.entries(config.llm.providers).flatMap(([name, provider]) => {
    const serve = provider.serve;
    if (serve === undefined) return [];
    const path = new URL(provider.baseUrl).pathname.replace(/\/$/, "");
    return [
      {
        provider: name,
        engine: serve.engine,
        image: serve.image,
        model: serve.model,
        servedNames: provider.models,
        port: serve.port ?? (serve.engine === "vllm" ? 8000 : 11434),
        path: path === "" ? LLM_PATH : path,
        gpus: serve.gpus,
        resources: serve.resources,
      },
    ];
  });
}

/** An MCP server render deploys from its own image (Streamable HTTP on the url's port and path). */
export interface DeployedMcpServer {
  readonly server: string;
  readonly workload: string;
  readonly image: string;
  readonly port: number;
  readonly path: string;
  readonly config: McpServerConfig;
}

export function deployedMcpServers(config: PerimeterConfig): DeployedMcpServer[] {
  return Object.entries(config.mcp.servers).flatMap(([server, entry]) => {
    if (entry.image === undefined || entry.builtin !== undefined) return [];
    if (entry.url === undefined) {
      throw new RenderError(
        `mcp.servers.${server}: a stdio server (command) cannot run from its own image, because mcp-guard talks to stdio servers as child processes: remove image (the command then runs inside mcp-guard), or serve it over Streamable HTTP and give url (e.g. http://${server}:8000/mcp)`,
      );
    }
    const url = new URL(entry.url);
    const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
    return [{ server, workload: `mcp-${server}`, image: entry.image, port, path: url.pathname, config: entry }];
  });
}

export function builtinServer(config: PerimeterConfig, kind: "sandbox" | "kubernetes-readonly"): [string, McpServerConfig] | undefined {
  const found = Object.entries(config.mcp.servers).filter(([, entry]) => entry.builtin === kind);
  if (found.length > 1) {
    throw new RenderError(`mcp.servers declares ${found.length} builtin ${kind} servers (${found.map(([name]) => name).join(", ")}): declare one${kind === "kubernetes-readonly" ? " and list every namespace it may read in it" : ""}`);
  }
  return found[0];
}

/** The sandbox runner is deployed when a builtin sandbox server is declared or the agent's terminal is the sandbox. */
export function sandboxServerName(config: PerimeterConfig): string | undefined {
  const declared = builtinServer(config, "sandbox");
  if (declared !== undefined) return declared[0];
  if (config.agent.terminal !== "sandbox") return undefined;
  const existing = config.mcp.servers.sandbox;
  if (existing !== undefined) {
    throw new RenderError('agent.terminal is sandbox and mcp.servers.sandbox is not the builtin sandbox: rename that server, or declare it as { builtin: sandbox }');
  }
  return "sandbox";
}

export function sandboxAllowlist(config: PerimeterConfig) {
  return config.sandbox.network === "none" ? undefined : config.sandbox.network.allow;
}

/** An HTTP upstream outside the perimeter (not a builtin, not one we deploy). */
export function externalHttpServers(config: PerimeterConfig): Array<[string, URL]> {
  return Object.entries(config.mcp.servers).flatMap(([name, entry]): Array<[string, URL]> => {
    if (entry.builtin !== undefined || entry.image !== undefined || entry.url === undefined) return [];
    return [[name, new URL(entry.url)]];
  });
}

export function stdioServers(config: PerimeterConfig): string[] {
  return Object.entries(config.mcp.servers)
    .filter(([, entry]) => entry.command !== undefined && entry.builtin === undefined)
    .map(([name]) => name);
}

/**
 * mcp-guard reaches the internet itself (on 443 or the URLs' ports) when it has external HTTP upstreams or stdio
 * children (which run inside its container and usually call an API).
 */
export function mcpGuardNeedsInternet(config: PerimeterConfig): boolean {
  return externalHttpServers(config).length > 0 || stdioServers(config).length > 0;
}

/** egress-proxy's metrics listener port: its /metrics, /healthz and audit feed (the dashboard reads the last two). */
export function egressMetricsPort(config: PerimeterConfig): number {
  return config.egress.metrics === undefined ? EGRESS_METRICS_PORT : portOf(config.egress.metrics);
}

/** The variable of the audit feed token every rendered component serves its records with (and the dashboard reads them). */
export function feedTokenSecret(config: PerimeterConfig): string {
  return config.audit.feedTokenSecret ?? DEFAULT_FEED_TOKEN_SECRET;
}

type EgressClient = PerimeterConfig["egress"]["clients"][number];

/**
 * The Telegram approver bot as an egress client of its own, allowed only the Bot API's host: render points the bot
 * at the egress proxy with this client's token. None when approvals.telegram is absent, names its own proxy, or its
 * Bot API root is on loopback (a local Bot API server, reached without a proxy).
 */
export function approverEgressClient(config: PerimeterConfig): EgressClient | undefined {
  const telegram = config.approvals.telegram;
  if (telegram === undefined || telegram.proxy !== undefined) return undefined;
  const root = new URL(telegram.apiRoot);
  if (/^(localhost|127\.|\[::1\])/.test(root.host)) return undefined;
  if (config.egress.clients.some((client) => client.name === APPROVER_EGRESS_CLIENT)) {
    throw new RenderError(`egress.clients already has a client named ${APPROVER_EGRESS_CLIENT}, the name render gives the Telegram approver bot: rename it, or set approvals.telegram.proxy (and its client) yourself`);
  }
  const port = urlPort(root);
  return { name: APPROVER_EGRESS_CLIENT, tokenSecret: telegram.proxyTokenSecret ?? APPROVER_EGRESS_TOKEN, sources: [], allow: [port === 443 ? root.hostname : { host: root.hostname, ports: [port], requireSni: true }] };
}

/** egress.clients as the rendered egress proxy holds them: the declared ones and the approver bot's. */
export function renderedEgressClients(config: PerimeterConfig): EgressClient[] {
  const approver = approverEgressClient(config);
  return approver === undefined ? [...config.egress.clients] : [...config.egress.clients, approver];
}

export function urlPort(url: URL): number {
  return url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
}

// ---------------------------------------------------------------------------------------------------------------
// Secrets: one Secret (Kubernetes) or env file (Compose) per component, so no workload holds another's credential.

export interface SecretSpec {
  /** Secret name (Kubernetes) and env file name (Compose, `env/<name>.env`). */
  readonly name: string;
  /** The workload that reads it. */
  readonly workload: string;
  /** system (agent), tools, or the component's own namespace. */
  readonly namespace: "system" | "tools";
  readonly keys: readonly string[];
  readonly purpose: string;
}

function unique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}

/** Credentials mcp-guard injects for one upstream (headers and stdio env), plus the server's `secrets`. */
function guardUpstreamKeys(entry: McpServerConfig, deployed: boolean): string[] {
  const names = Object.values(entry.headers).flatMap(placeholdersIn);
  if (!deployed) {
    names.push(...Object.values(entry.env).flatMap(placeholdersIn));
    names.push(...entry.secrets);
  }
  return unique(names);
}

/** Keys of a deployed MCP server's own Secret: its `secrets` and the placeholders of its env. */
function deployedServerKeys(entry: McpServerConfig): string[] {
  return unique([...entry.secrets, ...Object.values(entry.env).flatMap(placeholdersIn)]);
}

export function agentSecretKeys(config: PerimeterConfig): string[] {
  const keys: string[] = [];
  for (const platform of Object.values(config.agent.platforms)) {
    if (platform === undefined) continue;
    keys.push(platform.tokenSecret, ...platform.extraSecrets);
  }
  keys.push(agentEntry(config).tokenSecret, agentLlmKeySecret(config));
  if (config.agent.apiServer.enabled && config.agent.apiServer.keySecret !== undefined) keys.push(config.agent.apiServer.keySecret);
  return unique(keys);
}

export function secretPlan(config: PerimeterConfig): SecretSpec[] {
  // Every component serves its audit feed with this token, and the dashboard reads the feeds with it.
  const feed = feedTokenSecret(config);
  const specs: SecretSpec[] = [
    { name: AGENT_WORKLOAD, workload: AGENT_WORKLOAD, namespace: "system", keys: agentSecretKeys(config), purpose: "chat platform tokens, its mcp-guard token and its llm-proxy virtual key (never a provider key or an MCP upstream token)" },
  ];
  const sandboxServer = sandboxServerName(config);
  specs.push({
    name: MCP_GUARD,
    workload: MCP_GUARD,
    namespace: "tools",
    keys: unique([...config.mcp.agents.map((agent) => agent.tokenSecret), config.mcp.admin.tokenSecret, feed, ...(sandboxServer === undefined ? [] : [config.sandbox.tokenSecret])]),
    purpose: "the agents' tokens it accepts, the admin (approvals) token, the audit feed token, the token it calls the sandbox runner with",
  });
  const telegram = config.approvals.telegram;
  if (telegram !== undefined) {
    // The approver bot runs inside mcp-guard; its token gets a Secret of its own (never the agent's platform token).
    const proxyToken = telegram.proxyTokenSecret ?? approverEgressClient(config)?.tokenSecret;
    specs.push({
      name: `${MCP_GUARD}-telegram-approver`,
      workload: MCP_GUARD,
      namespace: "tools",
      keys: unique([telegram.tokenSecret, ...(proxyToken === undefined ? [] : [proxyToken])]),
      purpose: "the Telegram approver bot's token (a bot of its own: the agent's bot token would let the agent answer the buttons)",
    });
  }
  const deployed = new Set(deployedMcpServers(config).map((server) => server.server));
  for (const [server, entry] of Object.entries(config.mcp.servers).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (entry.builtin !== undefined) continue;
    const keys = guardUpstreamKeys(entry, deployed.has(server));
    if (keys.length > 0) {
      specs.push({ name: `${MCP_GUARD}-upstream-${server}`, workload: MCP_GUARD, namespace: "tools", keys, purpose: `the credential mcp-guard injects when it calls ${server} (its own Secret, so rotating it touches nothing else)` });
    }
    if (deployed.has(server)) {
      const ownKeys = deployedServerKeys(entry);
      if (ownKeys.length > 0) {
        specs.push({ name: `mcp-${server}`, workload: `mcp-${server}`, namespace: "tools", keys: ownKeys, purpose: `the ${server} MCP server's own credentials (only its pod reads them)` });
      }
    }
  }
  if (sandboxServer !== undefined) {
    specs.push({ name: SANDBOX_RUNNER, workload: SANDBOX_RUNNER, namespace: "tools", keys: unique([config.sandbox.tokenSecret, feed]), purpose: "the token mcp-guard must present, the audit feed token" });
  }
  const llmKeys = unique([
    ...Object.values(config.llm.providers).flatMap((provider) => (provider.apiKeySecret === undefined ? [] : [provider.apiKeySecret])),
    ...config.llm.clients.map((client) => client.keySecret),
    ...config.llm.canaries,
    feed,
  ]);
  specs.push({ name: LLM_PROXY, workload: LLM_PROXY, namespace: "tools", keys: llmKeys, purpose: "provider API keys (only here), the virtual keys it accepts, canary values, the audit feed token" });
  const egressKeys = unique([...renderedEgressClients(config).flatMap((client) => (client.tokenSecret === undefined ? [] : [client.tokenSecret])), feed]);
  specs.push({ name: EGRESS_PROXY, workload: EGRESS_PROXY, namespace: "tools", keys: egressKeys, purpose: "the proxy tokens of the clients it identifies, the audit feed token" });
  specs.push({
    name: DASHBOARD,
    workload: DASHBOARD,
    namespace: "tools",
    keys: unique([config.mcp.admin.tokenSecret, feed]),
    purpose: "the admin token (the operator's login, and the approvals it decides through mcp-guard), the audit feed token it copies every component's records with",
  });
  return specs;
}

/**
 * With trust-on-first-use off, the first start leaves the agent without tools until a person reviews them; the next
 * steps say so, with the command, instead of leaving the operator to find out from a silent agent.
 */
export function firstStartReviewNote(config: PerimeterConfig, approvals: string): string[] {
  // The render adds the sandbox runner's tools even when mcp.servers is empty.
  if (config.mcp.pinning.trustOnFirstUse || (Object.keys(config.mcp.servers).length === 0 && sandboxServerName(config) === undefined)) return [];
  return [
    "  mcp.pinning.trustOnFirstUse is off: the agent has no tools until you review them:",
    `     ${approvals} review   (--approve-clean approves the new, unflagged ones after printing them)`,
  ];
}

/** Secret keys whose value must be the same in two Secrets (the two ends of one credential). */
export function sharedSecretNotes(config: PerimeterConfig): string[] {
  const notes: string[] = [];
  const agent = agentEntry(config);
  notes.push(`${agent.tokenSecret}: the same value in ${AGENT_WORKLOAD} and ${MCP_GUARD} (the agent presents it, mcp-guard checks it)`);
  const llmKey = agentLlmKeySecret(config);
  if (config.llm.clients.some((client) => client.keySecret === llmKey)) {
    notes.push(`${llmKey}: the same value in ${AGENT_WORKLOAD} and ${LLM_PROXY} (the agent's virtual key; llm-proxy stores only its hash)`);
  } else {
    notes.push(`${llmKey}: create the agent's virtual key with \`perimeter llm-keys create --client ${agent.name}\` (its last line is the key) and put it in ${AGENT_WORKLOAD}`);
  }
  if (sandboxServerName(config) !== undefined) {
    notes.push(`${config.sandbox.tokenSecret}: the same value in ${MCP_GUARD} and ${SANDBOX_RUNNER}`);
  }
  notes.push(`${config.mcp.admin.tokenSecret}: the same value in ${MCP_GUARD} and ${DASHBOARD} (the operator logs in to the dashboard with it)`);
  notes.push(`${feedTokenSecret(config)}: the same value in every component's Secret and in ${DASHBOARD} (the read-only audit feed token)`);
  const approver = approverEgressClient(config);
  if (approver?.tokenSecret !== undefined) notes.push(`${approver.tokenSecret}: the same value in ${MCP_GUARD}-telegram-approver and ${EGRESS_PROXY} (the approver bot's egress proxy token)`);
  return notes;
}
