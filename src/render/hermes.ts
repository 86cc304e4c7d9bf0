// The agent side of the perimeter: Hermes' config.yaml seed, its read-only .env and its environment. Every target
// (Kubernetes, Compose, a VPS) takes them from hermesAgentFiles/agentEnvironment unchanged, so what Hermes is told
// (where the model is, where its tools are, which of its own tools are off) is the same everywhere.
//
// Citations "file:line" are NousResearch/hermes-agent at v0.18.0 (7c1a0295, image tag v2026.7.1); the same places in
// 0.16.0 and 0.17.0 are in hermes-sources.ts and docs/hermes-compatibility.md.
import type { PerimeterConfig } from "../config/index.ts";
import type { Endpoints } from "./endpoints.ts";
import { HERMES_RELEASES, hermesRelease } from "./hermes-sources.ts";
import type { HermesRelease } from "./hermes-sources.ts";
import { agentEntry, agentLlmKeySecret, defaultModel, fallbackModels, platformEnvironmentPrefix } from "./plan.ts";
import { runtimeConfig } from "./runtime-config.ts";
import { toCommentedYaml } from "./yaml.ts";

/** The name of the single MCP server Hermes is given: mcp-guard. Its tools appear as mcp_perimeter_<server>__<tool>. */
export const HERMES_MCP_SERVER = "perimeter";

/** Hermes' home in its image (Dockerfile: ENV HERMES_HOME=/opt/data). */
export const HERMES_HOME = "/opt/data";
/** Where Perimeter's .env is mounted read-only: hermes_cli/env_loader.py:238 loads it with override=True. */
export const HERMES_ENV_PATH = `${HERMES_HOME}/.env`;
/** gateway/status.py:33 (_RUNTIME_STATUS_FILE), next to gateway.pid under HERMES_HOME. */
export const HERMES_STATE_PATH = `${HERMES_HOME}/gateway_state.json`;
/** The image's interpreter (docker/stage2-hook.sh runs "$INSTALL_DIR/.venv/bin/python" the same way). */
export const HERMES_PYTHON = "/opt/hermes/.venv/bin/python";

/**
 * Hermes' own toolsets that would run code or read files beside the agent's keys: off when commands must run in the
 * sandbox. `agent.disabled_toolsets` is subtracted after every per-platform selection (hermes_cli/tools_config.py:1653)
 * and strips each disabled toolset's tools from composites such as hermes-telegram (model_tools.py:424).
 */
export const SANDBOX_DISABLED_TOOLSETS = ["code_execution", "file", "terminal"] as const;

/**
 * Toolsets that reach the network or act outside the perimeter by themselves (toolsets.py:95, TOOLSETS), off in
 * every render. An unknown name is skipped by Hermes (model_tools.py: "Unknown toolset"), so names of one release
 * (messaging and moa exist in 0.16.0 only) are harmless in another. The table in docs/render.md says why for each.
 */
export const NETWORK_DISABLED_TOOLSETS = [
  "browser",
  "computer_use",
  "cronjob",
  "discord",
  "discord_admin",
  "feishu_doc",
  "feishu_drive",
  "homeassistant",
  "image_gen",
  "kanban",
  "messaging",
  "moa",
  "search",
  "spotify",
  "tts",
  "video",
  "video_gen",
  "vision",
  "web",
  "x_search",
  "yuanbao",
] as const;

/** Auxiliary model tasks Hermes resolves separately from the main model (agent/auxiliary_client.py:5463). */
const AUXILIARY_TASKS = ["approval", "compression", "mcp", "session_search", "skills_hub", "title_generation", "vision", "web_extract"];

/** Seconds added to the longest hold + upstream call, for the guard's own work and the network. */
const MCP_TIMEOUT_MARGIN_SECONDS = 30;
/** tools/mcp_tool.py:2043 default is 60 s; the guard answers initialize at once (it holds only the first tools/list). */
const MCP_CONNECT_TIMEOUT_SECONDS = 30;
/** gateway/run.py:1536 agent.gateway_timeout: Hermes' default inactivity watchdog of a turn (hermes_cli/config.py:915). */
const HERMES_AGENT_INACTIVITY_DEFAULT_SECONDS = 1800;

export interface HermesTimeouts {
  /** mcp_servers.perimeter.timeout: a held call waits up to approvals.timeoutSeconds, then runs upstream. */
  readonly mcpCallSeconds: number;
  readonly mcpConnectSeconds: number;
  /** agent.gateway_timeout: never shorter than one MCP call, or the watchdog kills a turn waiting for a human. */
  readonly agentInactivitySeconds: number;
}

/**
 * Hermes gives an MCP call a hard deadline (tools/mcp_tool.py:2268 `timeout`, default 120 s in 0.16.0, 300 s
 * later) and counts a timeout toward its circuit breaker. mcp-guard may hold a call for approvals.timeoutSeconds and
 * then wait for the upstream for its timeoutSeconds (the sandbox's is its task limit + 60 s), so the deadline covers both.
 */
export function hermesTimeouts(config: PerimeterConfig, endpoints: Endpoints): HermesTimeouts {
  const runtime = runtimeConfig(config, endpoints) as unknown as PerimeterConfig;
  const upstreamSeconds = Math.max(0, ...Object.values(runtime.mcp.servers).map((server) => server.timeoutSeconds));
  const mcpCallSeconds = config.approvals.timeoutSeconds + upstreamSeconds + MCP_TIMEOUT_MARGIN_SECONDS;
  return {
    mcpCallSeconds,
    mcpConnectSeconds: MCP_CONNECT_TIMEOUT_SECONDS,
    agentInactivitySeconds: Math.max(HERMES_AGENT_INACTIVITY_DEFAULT_SECONDS, mcpCallSeconds + 60),
  };
}

/** The toolsets render disables for this config. */
export function disabledToolsets(config: PerimeterConfig): string[] {
  return [...new Set([...(config.agent.terminal === "sandbox" ? SANDBOX_DISABLED_TOOLSETS : []), ...NETWORK_DISABLED_TOOLSETS])].sort();
}

export function hermesConfigSeed(config: PerimeterConfig, endpoints: Endpoints): string {
  const keyVariable = agentLlmKeySecret(config);
  const apiKey = `\${${keyVariable}}`;
  const model = defaultModel(config);
  const sandbox = config.agent.terminal === "sandbox";
  const release = hermesRelease(config.agent.image);
  const timeouts = hermesTimeouts(config, endpoints);
  const seed = {
    // hermes_cli/config.py:3109. With the image's own schema version, docker_config_migrate.py finds nothing to do.
    ...(release === undefined ? {} : { _config_version: release.configVersion }),
    model: { provider: "custom", base_url: endpoints.llmProxyUrl, api_key: apiKey, default: model },
    fallback_providers: fallbackModels(config).map((fallback) => ({ provider: "custom", model: fallback, base_url: endpoints.llmProxyUrl, key_env: keyVariable })),
    auxiliary: Object.fromEntries(AUXILIARY_TASKS.map((task) => [task, { provider: "main", base_url: endpoints.llmProxyUrl, api_key: apiKey, model }])),
    mcp_servers: {
      [HERMES_MCP_SERVER]: {
        url: endpoints.mcpGuardUrl, // tools/mcp_tool.py:2035
        headers: { Authorization: `Bearer \${${agentEntry(config).tokenSecret}}` }, // tools/mcp_tool.py:2036
        timeout: timeouts.mcpCallSeconds, // tools/mcp_tool.py:2268
        connect_timeout: timeouts.mcpConnectSeconds, // tools/mcp_tool.py:2043
        sampling: { enabled: false }, // tools/mcp_tool.py:2272
      },
    },
    approvals: {
      mode: config.agent.approvals, // tools/approval.py:1769
      gateway_timeout: config.approvals.timeoutSeconds, // tools/approval.py:2150, what the gateway waits for a chat approval
      timeout: config.approvals.timeoutSeconds, // tools/approval.py:1797, the CLI prompt's wait
      cron_mode: config.agent.cronApprovals, // tools/approval.py:188
    },
    unauthorized_dm_behavior: "ignore", // gateway/config.py:911
    security: {
      redact_secrets: true, // gateway/run.py:1563
      allow_private_urls: false, // tools/url_safety.py:8
      website_blocklist: { enabled: config.agent.websiteBlocklist.length > 0, domains: config.agent.websiteBlocklist }, // tools/website_policy.py:120
      tirith_enabled: false, // tools/tirith_security.py:642: otherwise it downloads its binary from GitHub at start
      allow_lazy_installs: false, // tools/lazy_deps.py:444
    },
    terminal: { backend: "local" }, // tools/terminal_tool.py:688
    agent: {
      disabled_toolsets: disabledToolsets(config), // hermes_cli/tools_config.py:1653, model_tools.py:424
      gateway_timeout: timeouts.agentInactivitySeconds, // gateway/run.py:1536
    },
    kanban: { dispatch_in_gateway: false }, // gateway/kanban_watchers.py:153
    model_catalog: { enabled: false }, // hermes_cli/model_catalog.py:107
  };
  const comments: Record<string, string> = {
    model: "Every model call goes to llm-proxy with this agent's virtual key; the provider key never enters this pod.",
    fallback_providers: "Fallbacks go through llm-proxy too (it fails over between providers itself), never straight to a provider.",
    auxiliary: "Side tasks (titles, compression, vision, approval classification...) resolve their own provider:\npin every one to llm-proxy so none probes OpenRouter/Nous directly (seed 003's errors.log noise).",
    mcp_servers: [
      "One MCP server: mcp-guard. It holds every upstream's credentials, filters tools and arguments and",
      "enforces approvals outside the agent. ${VAR} is expanded by Hermes from the pod's environment.",
      `timeout ${timeouts.mcpCallSeconds} s = approvals.timeoutSeconds (a held call) + the longest upstream timeout + ${MCP_TIMEOUT_MARGIN_SECONDS} s:`,
      "Hermes' default (120 s in 0.16, 300 s later) would cut a call waiting for a human and count it toward its",
      "circuit breaker (3 errors in a row block every perimeter tool for 60 s; docs/render.md).",
      "sampling off: an upstream must not make this agent call its model on the upstream's behalf.",
      "Read by tools/mcp_tool.py:2035-2272 (Hermes 0.18.0; every key's source: docs/hermes-compatibility.md).",
    ].join("\n"),
    approvals: "Hermes' own gate for its built-in tools; never off. MCP calls are gated by mcp-guard instead.\ngateway_timeout is what the gateway reads (chat approvals, tools/approval.py:2150), timeout what the CLI\nprompt reads (tools/approval.py:1797).",
    unauthorized_dm_behavior: "A stranger's DM is dropped, never answered with a pairing code (an approved pairing would bypass\nthe <PLATFORM>_ALLOWED_USERS allowlist). gateway/config.py:911.",
    security: "redact_secrets and the SSRF guard stay on; reach internal services through mcp-guard, not URLs.\nNo tirith download from GitHub and no PyPI installs at run time: the egress proxy refuses both anyway.",
    terminal: sandbox
      ? "Hermes' local backend is configured but its terminal, code-execution and file tools are disabled below:\ncommands run only in disposable sandboxes, through the sandbox tools behind mcp-guard."
      : "terminal: in-pod (perimeter.yaml): commands run in this pod with its network policy (seed 003).",
    agent: [
      "disabled_toolsets: Hermes' global suppression list, applied after every per-platform selection. Off: every",
      "toolset that reaches the network or acts outside the perimeter by itself (browser, web, vision, image and video",
      "generation, TTS, cron jobs, cross-platform messaging, kanban workers, smart-home and app integrations)",
      ...(sandbox ? ["and, with the sandbox, terminal, code_execution and file (they would read /opt/data/.env and rewrite this file)."] : ["."]),
      "Read by hermes_cli/tools_config.py:1653 and model_tools.py:424 (strips the tools of composite toolsets).",
      "gateway_timeout: the turn's inactivity watchdog (gateway/run.py:1536), at least one MCP call long.",
    ].join("\n"),
    kanban: "No dispatcher in the gateway: kanban workers are separate hermes chat processes (gateway/kanban_watchers.py:153).",
    model_catalog: "No model list fetched from the docs site at start; the model is fixed above (hermes_cli/model_catalog.py:107).",
  };
  if (release !== undefined) {
    comments._config_version = `The schema version of Hermes ${release.version} (${config.agent.image}): the boot hook's migration\n(scripts/docker_config_migrate.py) leaves a current config alone; HERMES_SKIP_CONFIG_MIGRATION=1 stops it anyway.`;
  }
  const header = [
    `Hermes config.yaml seeded by perimeter render (perimeter ${config.name}).`,
    "Copied onto the data volume only when no config.yaml exists yet, so in-chat changes (/model) survive restarts;",
    "delete /opt/data/config.yaml to re-seed after changing perimeter.yaml.",
    ...(release === undefined
      ? [`${config.agent.image} is not a release render knows (${HERMES_RELEASES.map((known) => known.tag).join(", ")}): keys of every one are written.`]
      : []),
  ].join("\n");
  return toCommentedYaml(seed, comments, header, { sortKeys: false });
}

export type EnvironmentEntry = { name: string; value: string } | { name: string; secretKey: string };

/** Hosts the agent reaches directly (they are the perimeter); everything else goes through the egress proxy. */
export function agentNoProxy(endpoints: Endpoints): string {
  return [endpoints.mcpGuardHost, endpoints.llmProxyHost, "localhost", "127.0.0.1", "::1"].join(",");
}

/**
 * The agent's environment: its platform tokens and allowlists, its mcp-guard token, its virtual key and the proxy
 * settings. Never a provider key or an MCP upstream token (those live in llm-proxy and mcp-guard).
 */
export function agentEnvironment(config: PerimeterConfig, endpoints: Endpoints): EnvironmentEntry[] {
  const entries: EnvironmentEntry[] = [];
  for (const [platform, settings] of Object.entries(config.agent.platforms).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (settings === undefined) continue;
    const prefix = platformEnvironmentPrefix(platform);
    entries.push({ name: settings.tokenSecret, secretKey: settings.tokenSecret });
    for (const extra of settings.extraSecrets) entries.push({ name: extra, secretKey: extra });
    // gateway/authz_mixin.py:347
    entries.push({ name: `${prefix}_ALLOWED_USERS`, value: settings.allowedUsers.join(",") });
  }
  const agent = agentEntry(config);
  entries.push({ name: agent.tokenSecret, secretKey: agent.tokenSecret });
  const llmKey = agentLlmKeySecret(config);
  entries.push({ name: llmKey, secretKey: llmKey });
  const api = config.agent.apiServer;
  // gateway/config.py:1556-1560
  entries.push({ name: "API_SERVER_ENABLED", value: api.enabled ? "true" : "false" });
  if (api.enabled && api.keySecret !== undefined) {
    entries.push({ name: "API_SERVER_HOST", value: "0.0.0.0" }, { name: "API_SERVER_PORT", value: String(api.port) }, { name: "API_SERVER_KEY", secretKey: api.keySecret });
  }
  // hermes_cli/gateway.py:6364: `gateway run` stays the container's main process instead of handing itself to s6,
  // which would restart a crashing gateway inside a container the orchestrator sees as healthy.
  entries.push({ name: "HERMES_GATEWAY_NO_SUPERVISE", value: "1" });
  // scripts/docker_config_migrate.py:54: the boot hook never rewrites the seeded config.yaml (nor backs up .env).
  entries.push({ name: "HERMES_SKIP_CONFIG_MIGRATION", value: "1" });
  const noProxy = agentNoProxy(endpoints);
  for (const name of ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"]) entries.push({ name, value: endpoints.egressProxyUrl });
  entries.push({ name: "NO_PROXY", value: noProxy }, { name: "no_proxy", value: noProxy });
  return entries;
}

/**
 * /opt/data/.env as Perimeter mounts it, read-only. Hermes loads it with override=True
 * (hermes_cli/env_loader.py:238; cron runs reload it, cron/scheduler.py:2549), so a value in a writable .env would
 * beat the proxy and allowlists of the container's environment. The file repeats those non-secret values, so even a
 * process that reads only the file gets them; secrets stay in the container's environment. It must be a read-only
 * mount, not a root-owned file: the boot hook chowns .env to the agent's user and chmods it 600 on every start
 * (docker/stage2-hook.sh:401), and the agent's user owns /opt/data, so it could also rename a new file over it.
 */
export function hermesEnvFile(config: PerimeterConfig, endpoints: Endpoints): string {
  const lines = [
    `# Hermes .env rendered by perimeter render (perimeter ${config.name}); mounted read-only at ${HERMES_ENV_PATH}.`,
    "# Hermes loads this file over its environment, so it holds the perimeter's own values: proxies, allowlists and",
    "# start-up switches. Secrets (bot tokens, the agent's keys) come from the container's environment, not from here.",
    ...agentEnvironment(config, endpoints).flatMap((entry) => ("value" in entry ? [`${entry.name}=${entry.value}`] : [])),
    "",
  ];
  return lines.join("\n");
}

export interface HermesAgentFiles {
  /** Seeded once onto the data volume as /opt/data/config.yaml. */
  readonly configYaml: string;
  /** Mounted read-only as /opt/data/.env. */
  readonly envFile: string;
  readonly environment: readonly EnvironmentEntry[];
  readonly healthcheck: readonly string[];
  readonly release: HermesRelease | undefined;
}

/** Everything a target needs to run Hermes behind the perimeter: each target only mounts these. */
export function hermesAgentFiles(config: PerimeterConfig, endpoints: Endpoints): HermesAgentFiles {
  return {
    configYaml: hermesConfigSeed(config, endpoints),
    envFile: hermesEnvFile(config, endpoints),
    environment: agentEnvironment(config, endpoints),
    healthcheck: hermesHealthcheck(config),
    release: hermesRelease(config.agent.image),
  };
}

/**
 * Ready only when this process's gateway is: gateway_state.json (gateway/status.py:33) names a pid that is alive
 * with the start time the gateway recorded for itself (gateway/status.py:401), its state is "running"
 * (gateway/run.py:4020) and every configured platform is "connected". A stale file from the previous run fails
 * (its pid is gone, or reused with another start time), as does the boot hook's synthetic {"gateway_state":
 * "running"} (hermes_cli/container_boot.py:226: no pid). Log rotation cannot touch it.
 */
export const HERMES_HEALTHCHECK_SCRIPT = [
  "import json,sys",
  "try:",
  " s=json.load(open(sys.argv[1]))",
  " t=open('/proc/%d/stat'%int(s['pid'])).read()",
  " live=int(t[t.rindex(')')+2:].split()[19])==int(s['start_time'])",
  " p=s.get('platforms') or {}",
  " ok=live and s.get('gateway_state')=='running' and all((p.get(n) or {}).get('state')=='connected' for n in sys.argv[2:])",
  "except Exception:",
  " ok=False",
  "sys.exit(0 if ok else 1)",
].join("\n");

/** The healthcheck command: the image's python, the state file, then the platforms that must be connected. */
export function hermesHealthcheck(config: PerimeterConfig): string[] {
  const platforms = Object.keys(config.agent.platforms).filter((platform) => config.agent.platforms[platform as keyof typeof config.agent.platforms] !== undefined).sort();
  return [HERMES_PYTHON, "-c", HERMES_HEALTHCHECK_SCRIPT, HERMES_STATE_PATH, ...platforms];
}
