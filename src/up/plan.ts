// What `perimeter up` runs for a perimeter.yaml, decided once and without side effects: which services the config
// enables, the arguments of each `perimeter serve` child, where each is reached and probed, which secrets each needs
// (and which of those are local credentials Perimeter may generate), and the environment an agent on this host needs.
import { PerimeterError } from "../shared/index.ts";
import { dirname, isAbsolute, resolve } from "node:path";
import { placeholdersIn, splitHostPort } from "../config/index.ts";
import type { McpServerConfig, PerimeterConfig } from "../config/index.ts";

export type ServiceName = "egress-proxy" | "llm-proxy" | "sandbox" | "mcp-guard" | "dashboard";

/** Start order when printed; all of them start at once. */
export const SERVICE_ORDER: readonly ServiceName[] = ["egress-proxy", "llm-proxy", "sandbox", "mcp-guard", "dashboard"];

/** A config that is valid but cannot run on one host as written; the CLI maps it to exit 2 with the message. */
export class UpPlanError extends PerimeterError {
  constructor(message: string) {
    super("config", message);
  }
}

export interface SecretNeed {
  readonly name: string;
  /** Which setting references it, for the message naming a missing one. */
  readonly usedFor: string;
  /**
   * A credential between the agent and the perimeter that only Perimeter issues and checks (the agent's mcp-guard
   * token, the admin token, the sandbox token, virtual keys, egress client tokens): `up` may generate it. Provider
   * keys, upstream credentials and canaries come from elsewhere and are never invented.
   */
  readonly local: boolean;
  /** false: passed to the service when set, never required (e.g. mcp.servers.*.secrets, which it only redacts). */
  readonly required?: boolean;
}

export interface ListenNeed {
  /** The config key, for messages ("mcp.listen"). */
  readonly key: string;
  readonly host: string;
  readonly port: number;
}

export interface ServicePlan {
  readonly name: ServiceName;
  /** Arguments after `perimeter serve <name>`. */
  readonly args: readonly string[];
  /** What an operator or agent dials. */
  readonly endpoint: string;
  readonly healthUrl: string;
  readonly listens: readonly ListenNeed[];
  readonly secrets: readonly SecretNeed[];
  /** mcp-guard: upstreams this `up` starts itself, which must be connected before the guard counts as ready. */
  readonly localUpstreams: readonly string[];
  readonly note?: string;
}

export interface UpPlan {
  readonly services: readonly ServicePlan[];
  /** The config the children read: the operator's, with what one host needs filled in (see runtimeConfig). */
  readonly runtimeConfig: PerimeterConfig;
  /** Directory of the audit database: the runtime config, state file and generated secrets live beside it. */
  readonly stateDirectory: string;
  readonly auditPath: string;
  readonly agentEnvironment: ReadonlyArray<{ name: string; value: string }>;
  readonly mcpUrl: string | undefined;
  readonly agentTokenSecret: string | undefined;
  readonly notes: readonly string[];
}

export interface PlanOptions {
  /** The directory relative paths in the config are resolved against (the CLI's working directory). */
  readonly cwd: string;
  /** A free loopback port for egress-proxy's /healthz when egress.metrics is not set (its proxy port has none). */
  readonly egressMetricsPort: number;
  /** NAME=ADDRESS pins handed to egress-proxy (--resolve). */
  readonly resolve?: readonly string[];
}

/** A listen address as a client on this host dials it: a wildcard bind is reached on loopback. */
export function dialAddress(host: string, port: number): string {
  const dialHost = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return dialHost.includes(":") ? `[${dialHost}]:${port}` : `${dialHost}:${port}`;
}

function listenNeed(key: string, address: string): ListenNeed {
  const parsed = splitHostPort(address);
  // The schema already refused anything else; this guards the runtime config we derive.
  if (parsed === undefined) throw new UpPlanError(`${key} "${address}" is not HOST:PORT`);
  return { key, host: parsed.host.replace(/^\[|\]$/g, ""), port: parsed.port };
}

function url(need: ListenNeed, path = ""): string {
  return `http://${dialAddress(need.host, need.port)}${path}`;
}

/**
 * The builtin sandbox server the guard serves: the declared one, or (as render does) one named "sandbox" when the
 * agent's terminal is the sandbox. Kept beside render's copy on purpose: importing render would load its renderers.
 */
export function sandboxServerName(config: PerimeterConfig): string | undefined {
  const declared = Object.entries(config.mcp.servers).filter(([, server]) => server.builtin === "sandbox");
  if (declared.length > 1) throw new UpPlanError(`mcp.servers declares ${declared.length} builtin sandbox servers (${declared.map(([name]) => name).join(", ")}): declare one`);
  if (declared[0] !== undefined) return declared[0][0];
  if (config.agent.terminal !== "sandbox") return undefined;
  if (config.mcp.servers.sandbox !== undefined) {
    throw new UpPlanError("agent.terminal is sandbox and mcp.servers.sandbox is not the builtin sandbox: rename that server, or declare it as { builtin: sandbox }");
  }
  return "sandbox";
}

/** The approver bot's token for the egress proxy when up routes it there; generated like the other local tokens. */
export const APPROVER_EGRESS_TOKEN = "PERIMETER_APPROVER_EGRESS_TOKEN";
const APPROVER_EGRESS_CLIENT = "approvals-telegram";

/**
 * The Telegram approver bot goes out through this host's egress proxy as a client of its own, allowed only the Bot
 * API's host. A Bot API root on loopback (a local Bot API server) or a proxy the operator set is left as written.
 */
function approverEgress(config: PerimeterConfig): { client: { name: string; tokenSecret: string; sources: string[]; allow: Array<string | { host: string; ports: number[]; requireSni: boolean }> } } | undefined {
  const telegram = config.approvals.telegram;
  if (telegram === undefined || telegram.proxy !== undefined) return undefined;
  const root = new URL(telegram.apiRoot);
  if (/^(localhost|127\.|\[::1\])/.test(root.host)) return undefined;
  if (config.egress.clients.some((client) => client.name === APPROVER_EGRESS_CLIENT)) {
    throw new UpPlanError(`egress.clients already has a client named ${APPROVER_EGRESS_CLIENT}, the name up gives the Telegram approver bot: rename it, or set approvals.telegram.proxy yourself`);
  }
  const port = root.port === "" ? 443 : Number(root.port);
  return { client: { name: APPROVER_EGRESS_CLIENT, tokenSecret: telegram.proxyTokenSecret ?? APPROVER_EGRESS_TOKEN, sources: [], allow: [port === 443 ? root.hostname : { host: root.hostname, ports: [port], requireSni: true }] } };
}

function absolute(cwd: string, path: string): string {
  return isAbsolute(path) ? path : resolve(cwd, path);
}

/**
 * The config the children read. Paths become absolute (children share one audit database whatever their working
 * directory), the sandbox runs with bubblewrap (the Kubernetes backend needs a cluster), the implicit sandbox server
 * is declared, and egress-proxy gets a health listener. It holds no secret values: only variable names.
 */
export function runtimeConfig(config: PerimeterConfig, options: PlanOptions): PerimeterConfig {
  const runtime = structuredClone(config);
  runtime.audit.path = absolute(options.cwd, config.audit.path);
  if (config.audit.signingKeyFile !== undefined) runtime.audit.signingKeyFile = absolute(options.cwd, config.audit.signingKeyFile);
  if (config.llm.keysPath !== undefined) runtime.llm.keysPath = absolute(options.cwd, config.llm.keysPath);
  if (config.egress.auditPath !== undefined) runtime.egress.auditPath = absolute(options.cwd, config.egress.auditPath);
  if (config.dashboard.statePath !== undefined) runtime.dashboard.statePath = absolute(options.cwd, config.dashboard.statePath);
  runtime.dashboard.sources = config.dashboard.sources.map((source) => (source.path === undefined ? source : { ...source, path: absolute(options.cwd, source.path) }));
  if (config.dashboard.tls !== undefined) runtime.dashboard.tls = { certFile: absolute(options.cwd, config.dashboard.tls.certFile), keyFile: absolute(options.cwd, config.dashboard.tls.keyFile) };
  runtime.egress.metrics = config.egress.metrics ?? `127.0.0.1:${options.egressMetricsPort}`;
  runtime.sandbox.backend = "bubblewrap";
  const approver = approverEgress(config);
  if (approver !== undefined && runtime.approvals.telegram !== undefined) {
    const egress = listenNeed("egress.listen", runtime.egress.listen);
    runtime.approvals.telegram = { ...runtime.approvals.telegram, proxy: url(egress), proxyTokenSecret: approver.client.tokenSecret };
    // With no clients the proxy gives everyone the global list; adding the bot's client must not change that.
    if (config.egress.clients.length === 0 && config.egress.unknownClients === "deny") runtime.egress.unknownClients = "global";
    runtime.egress.clients = [...runtime.egress.clients, approver.client];
  }
  const sandboxServer = sandboxServerName(config);
  if (sandboxServer !== undefined && config.mcp.servers[sandboxServer] === undefined) {
    const implicit: McpServerConfig = {
      builtin: "sandbox",
      env: {},
      headers: {},
      secrets: [],
      namespaces: [],
      arguments: {},
      timeoutSeconds: config.sandbox.limits.timeoutSeconds + 60,
      tools: { allow: ["*"], approve: [], annotations: {} },
    };
    runtime.mcp.servers[sandboxServer] = implicit;
  }
  return runtime;
}

function guardSecrets(config: PerimeterConfig, sandboxServer: string | undefined): SecretNeed[] {
  const needs: SecretNeed[] = [
    ...config.mcp.agents.map((agent) => ({ name: agent.tokenSecret, usedFor: `mcp.agents ${agent.name} (the agent's token for mcp-guard)`, local: true })),
    { name: config.mcp.admin.tokenSecret, usedFor: "mcp.admin.tokenSecret (the approvals/admin token)", local: true },
  ];
  for (const [name, server] of Object.entries(config.mcp.servers)) {
    for (const variable of [...Object.values(server.headers), ...Object.values(server.env)].flatMap(placeholdersIn)) {
      needs.push({ name: variable, usedFor: `mcp.servers.${name} (a credential mcp-guard injects)`, local: false });
    }
  }
  for (const [name, server] of Object.entries(config.mcp.servers)) {
    for (const variable of server.secrets) needs.push({ name: variable, usedFor: `mcp.servers.${name}.secrets (values mcp-guard redacts)`, local: false, required: false });
  }
  if (sandboxServer !== undefined) needs.push({ name: config.sandbox.tokenSecret, usedFor: "sandbox.tokenSecret (mcp-guard calls the sandbox runner with it)", local: true });
  const telegram = config.approvals.telegram;
  if (telegram !== undefined) {
    needs.push({ name: telegram.tokenSecret, usedFor: "approvals.telegram.tokenSecret (the approver bot's token, from @BotFather)", local: false });
    const proxyToken = telegram.proxyTokenSecret ?? approverEgress(config)?.client.tokenSecret;
    if (proxyToken !== undefined) needs.push({ name: proxyToken, usedFor: "the approver bot's egress proxy token", local: true });
  }
  return needs;
}

function llmSecrets(config: PerimeterConfig): SecretNeed[] {
  return [
    ...Object.entries(config.llm.providers).flatMap(([name, provider]) =>
      provider.apiKeySecret === undefined ? [] : [{ name: provider.apiKeySecret, usedFor: `llm.providers.${name}.apiKeySecret (the provider's API key)`, local: false }],
    ),
    ...config.llm.clients.map((client) => ({ name: client.keySecret, usedFor: `llm.clients ${client.name} (a virtual key of llm-proxy)`, local: true })),
    ...config.llm.canaries.map((canary) => ({ name: canary, usedFor: "llm.canaries (a value that must never leave in a prompt)", local: false })),
  ];
}

function egressSecrets(config: PerimeterConfig): SecretNeed[] {
  const approver = approverEgress(config)?.client;
  return [...config.egress.clients, ...(approver === undefined ? [] : [approver])].flatMap((client) =>
    client.tokenSecret === undefined ? [] : [{ name: client.tokenSecret, usedFor: `egress.clients ${client.name} (its proxy token)`, local: true }],
  );
}

export function planUp(config: PerimeterConfig, configFile: string, options: PlanOptions): UpPlan {
  const runtime = runtimeConfig(config, options);
  const auditPath = runtime.audit.path;
  const stateDirectory = dirname(auditPath);
  const runtimeFile = resolve(stateDirectory, "up-runtime.json");
  const notes: string[] = [];
  if (config.sandbox.backend === "kubernetes") notes.push("sandbox.backend is kubernetes: on one host the sandbox runner uses bubblewrap instead");
  const sandboxServer = sandboxServerName(config);
  const services: ServicePlan[] = [];

  const egressListen = listenNeed("egress.listen", runtime.egress.listen);
  const egressMetrics = listenNeed(config.egress.metrics === undefined ? "egress.metrics (chosen by up)" : "egress.metrics", runtime.egress.metrics as string);
  services.push({
    name: "egress-proxy",
    args: ["-c", runtimeFile, ...(options.resolve ?? []).flatMap((pin) => ["--resolve", pin])],
    endpoint: url(egressListen),
    healthUrl: url(egressMetrics, "/healthz"),
    listens: [egressListen, egressMetrics],
    secrets: egressSecrets(config),
    localUpstreams: [],
  });

  if (Object.keys(config.llm.providers).length > 0) {
    const listen = listenNeed("llm.listen", runtime.llm.listen);
    services.push({ name: "llm-proxy", args: ["-c", runtimeFile], endpoint: url(listen, "/v1"), healthUrl: url(listen, "/healthz"), listens: [listen], secrets: llmSecrets(config), localUpstreams: [] });
  } else {
    notes.push("llm.providers is empty: llm-proxy is not started");
  }

  if (sandboxServer !== undefined) {
    const listen = listenNeed("sandbox.listen", runtime.sandbox.listen);
    services.push({
      name: "sandbox",
      args: ["-c", runtimeFile],
      endpoint: url(listen, "/mcp"),
      healthUrl: url(listen, "/healthz"),
      listens: [listen],
      secrets: [{ name: config.sandbox.tokenSecret, usedFor: "sandbox.tokenSecret (the sandbox runner's bearer token)", local: true }],
      localUpstreams: [],
      note: "reached through mcp-guard only",
    });
  }

  let mcpUrl: string | undefined;
  if (Object.keys(runtime.mcp.servers).length > 0) {
    const listen = listenNeed("mcp.listen", runtime.mcp.listen);
    const admin = listenNeed("mcp.admin.listen", runtime.mcp.admin.listen);
    mcpUrl = url(listen, "/mcp");
    services.push({
      name: "mcp-guard",
      args: ["-c", runtimeFile],
      endpoint: mcpUrl,
      healthUrl: url(admin, "/healthz"),
      listens: [listen, admin],
      secrets: guardSecrets(config, sandboxServer),
      localUpstreams: sandboxServer === undefined ? [] : [sandboxServer],
      note: `approvals ${url(admin)}`,
    });
    // The dashboard decides through the guard's admin API with the same token, so it runs where the guard does.
    const dashboard = listenNeed("dashboard.listen", runtime.dashboard.listen);
    services.push({
      name: "dashboard",
      args: ["-c", runtimeFile],
      endpoint: `${runtime.dashboard.tls === undefined ? "http" : "https"}://${dialAddress(dashboard.host, dashboard.port)}/`,
      healthUrl: url(dashboard, "/healthz"),
      listens: [dashboard],
      secrets: [{ name: config.mcp.admin.tokenSecret, usedFor: "mcp.admin.tokenSecret (the dashboard's login and its calls to the approvals API)", local: true }],
      localUpstreams: [],
      note: "log in with the admin token",
    });
  } else {
    notes.push("mcp.servers is empty and agent.terminal is not sandbox: mcp-guard is not started");
  }

  const seen = new Map<string, string>();
  for (const need of services.flatMap((service) => service.listens)) {
    const key = `${need.port}`;
    const other = seen.get(key);
    // Two services cannot share a port even on different loopback addresses without surprising someone; refuse.
    if (other !== undefined) throw new UpPlanError(`${need.key} and ${other} both use port ${need.port}: give each service its own port`);
    seen.set(key, need.key);
  }

  const agentEnvironment: Array<{ name: string; value: string }> = [];
  const proxy = url(egressListen);
  agentEnvironment.push({ name: "HTTPS_PROXY", value: proxy }, { name: "HTTP_PROXY", value: proxy }, { name: "NO_PROXY", value: "localhost,127.0.0.1,::1" });
  const llm = services.find((service) => service.name === "llm-proxy");
  const agent = config.mcp.agents[0];
  if (llm !== undefined) {
    agentEnvironment.push({ name: "OPENAI_BASE_URL", value: llm.endpoint });
    const client = config.llm.clients.find((entry) => entry.name === agent?.name) ?? config.llm.clients[0];
    agentEnvironment.push({ name: "OPENAI_API_KEY", value: client === undefined ? "(create one: perimeter llm-keys create --client NAME)" : `\${${client.keySecret}}` });
  }
  return { services, runtimeConfig: runtime, stateDirectory, auditPath, agentEnvironment, mcpUrl, agentTokenSecret: mcpUrl === undefined ? undefined : agent?.tokenSecret, notes };
}

/**
 * Every variable the config names as a secret, used by a service or not (the agent's platform tokens, its API server
 * key): a child gets only those of its own service, so no service holds another's credentials.
 */
export function configuredSecretNames(config: PerimeterConfig, plan: Pick<UpPlan, "services">): Set<string> {
  const names = new Set(plan.services.flatMap((service) => service.secrets.map((need) => need.name)));
  for (const platform of Object.values(config.agent.platforms)) {
    if (platform === undefined) continue;
    names.add(platform.tokenSecret);
    for (const extra of platform.extraSecrets) names.add(extra);
  }
  if (config.agent.apiServer.keySecret !== undefined) names.add(config.agent.apiServer.keySecret);
  return names;
}

/** Where the runtime config is written; the children read it with -c. */
export function runtimeConfigFile(plan: Pick<UpPlan, "stateDirectory">): string {
  return resolve(plan.stateDirectory, "up-runtime.json");
}

/** Where `up` records its children for `perimeter status`. */
export function stateFile(stateDirectory: string): string {
  return resolve(stateDirectory, "up-state.json");
}
