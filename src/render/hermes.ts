// The agent side of the perimeter: Hermes' config.yaml seed and its environment. Both targets use them unchanged,
// so what Hermes is told (where the model is, where its tools are, which of its own tools are off) is the same on
// Kubernetes and on a Docker host.
import type { PerimeterConfig } from "../config/index.ts";
import type { Endpoints } from "./endpoints.ts";
import { agentEntry, agentLlmKeySecret, defaultModel, fallbackModels, platformEnvironmentPrefix } from "./plan.ts";
import { toCommentedYaml } from "./yaml.ts";

/** The name of the single MCP server Hermes is given: mcp-guard. Its tools appear as mcp_perimeter_<server>__<tool>. */
export const HERMES_MCP_SERVER = "perimeter";

/**
 * Hermes' own toolsets switched off when commands must run in the sandbox. `agent.disabled_toolsets` is Hermes'
 * global suppression list, applied after every per-platform selection (NousResearch/hermes-agent,
 * hermes_cli/tools_config.py, `_get_platform_tools`: "agent.disabled_toolsets ... runs LAST so it overrides
 * everything above"); the toolset names and their tools are in website/docs/reference/toolsets-reference.md.
 */
export const SANDBOX_DISABLED_TOOLSETS = ["code_execution", "file", "terminal"] as const;

/** Auxiliary model tasks Hermes resolves separately from the main model (features/fallback-providers.md). */
const AUXILIARY_TASKS = ["approval", "compression", "mcp", "session_search", "skills_hub", "title_generation", "vision", "web_extract"];

export function hermesConfigSeed(config: PerimeterConfig, endpoints: Endpoints): string {
  const keyVariable = agentLlmKeySecret(config);
  const apiKey = `\${${keyVariable}}`;
  const model = defaultModel(config);
  const sandbox = config.agent.terminal === "sandbox";
  const seed = {
    model: { provider: "custom", base_url: endpoints.llmProxyUrl, api_key: apiKey, default: model },
    fallback_providers: fallbackModels(config).map((fallback) => ({ provider: "custom", model: fallback, base_url: endpoints.llmProxyUrl, key_env: keyVariable })),
    auxiliary: Object.fromEntries(AUXILIARY_TASKS.map((task) => [task, { provider: "main", base_url: endpoints.llmProxyUrl, api_key: apiKey, model }])),
    mcp_servers: {
      [HERMES_MCP_SERVER]: {
        url: endpoints.mcpGuardUrl,
        headers: { Authorization: `Bearer \${${agentEntry(config).tokenSecret}}` },
      },
    },
    approvals: { mode: config.agent.approvals, timeout: config.approvals.timeoutSeconds, cron_mode: config.agent.cronApprovals },
    security: {
      redact_secrets: true,
      allow_private_urls: false,
      website_blocklist: { enabled: config.agent.websiteBlocklist.length > 0, domains: config.agent.websiteBlocklist },
    },
    terminal: { backend: "local" },
    ...(sandbox ? { agent: { disabled_toolsets: [...SANDBOX_DISABLED_TOOLSETS] } } : {}),
  };
  const comments: Record<string, string> = {
    model: "Every model call goes to llm-proxy with this agent's virtual key; the provider key never enters this pod.",
    fallback_providers: "Fallbacks go through llm-proxy too (it fails over between providers itself), never straight to a provider.",
    auxiliary: "Side tasks (titles, compression, vision, approval classification...) resolve their own provider:\npin every one to llm-proxy so none probes OpenRouter/Nous directly (seed 003's errors.log noise).",
    mcp_servers: "One MCP server: mcp-guard. It holds every upstream's credentials, filters tools and arguments and\nenforces approvals outside the agent. ${VAR} is expanded by Hermes from the pod's environment.",
    approvals: "Hermes' own gate for its built-in tools; never off. MCP calls are gated by mcp-guard instead.",
    security: "redact_secrets and the SSRF guard stay on; reach internal services through mcp-guard, not URLs.",
    terminal: sandbox
      ? "Hermes' local backend is configured but its terminal, code-execution and file tools are disabled below:\ncommands run only in disposable sandboxes, through the sandbox tools behind mcp-guard."
      : "terminal: in-pod (perimeter.yaml): commands run in this pod with its network policy (seed 003).",
  };
  if (sandbox) {
    comments.agent = [
      "agent.disabled_toolsets is Hermes' global suppression list, applied after every per-platform selection:",
      "NousResearch/hermes-agent hermes_cli/tools_config.py, _get_platform_tools() (\"runs LAST so it overrides",
      "everything above\"). Toolset names: website/docs/reference/toolsets-reference.md — terminal (terminal,",
      "process_manage), code_execution (execute_code), file (read_file, write_file, patch, search_files: with the",
      "local backend they would read /opt/data/.env and rewrite this file).",
    ].join("\n");
  }
  const header = [
    `Hermes config.yaml seeded by perimeter render (perimeter ${config.name}).`,
    "Copied onto the data volume only when no config.yaml exists yet, so in-chat changes (/model) survive restarts;",
    "delete /opt/data/config.yaml to re-seed after changing perimeter.yaml.",
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
    entries.push({ name: `${prefix}_ALLOWED_USERS`, value: settings.allowedUsers.join(",") });
  }
  const agent = agentEntry(config);
  entries.push({ name: agent.tokenSecret, secretKey: agent.tokenSecret });
  const llmKey = agentLlmKeySecret(config);
  entries.push({ name: llmKey, secretKey: llmKey });
  const api = config.agent.apiServer;
  entries.push({ name: "API_SERVER_ENABLED", value: api.enabled ? "true" : "false" });
  if (api.enabled && api.keySecret !== undefined) {
    entries.push({ name: "API_SERVER_HOST", value: "0.0.0.0" }, { name: "API_SERVER_PORT", value: String(api.port) }, { name: "API_SERVER_KEY", secretKey: api.keySecret });
  }
  const noProxy = agentNoProxy(endpoints);
  for (const name of ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"]) entries.push({ name, value: endpoints.egressProxyUrl });
  entries.push({ name: "NO_PROXY", value: noProxy }, { name: "no_proxy", value: noProxy });
  return entries;
}

