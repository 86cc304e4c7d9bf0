// OpenAI Codex CLI (@openai/codex): $CODEX_HOME/config.toml (~/.codex). Keys are those `codex exec --strict-config`
// accepts in the verified version (docs/agents.md); the agent-config test runs that check when Codex is installed.
import type { EnvironmentEntry } from "../render/index.ts";
import type { AgentFacts } from "./facts.ts";
import { proxyEnvironment } from "./facts.ts";
import type { AgentConfiguration } from "./types.ts";

/**
 * Codex features that reach OpenAI, GitHub or the desktop by themselves, or act outside the perimeter: off. Found
 * by running `codex exec` under a connect trace: with these on it syncs a plugin catalogue from github.com,
 * api.github.com and chatgpt.com at every start.
 */
export const CODEX_DISABLED_FEATURES = [
  "apps",
  "browser_use",
  "computer_use",
  "daemon_auto_start",
  "image_generation",
  "in_app_updates",
  "plugin_sharing",
  "plugins",
  "remote_plugin",
  "skill_mcp_dependency_install",
  "tool_suggest",
] as const;

/** With commands only in sandboxes, Codex's own shell (which runs beside its keys) is off too. */
export const CODEX_SANDBOX_DISABLED_FEATURES = ["shell_tool"] as const;

// A TOML basic string: JSON's escapes are TOML's, except that TOML also refuses a raw DEL.
const toml = (value: string) => JSON.stringify(value).replaceAll("\u007f", "\\u007F");

export function codexConfiguration(facts: AgentFacts): AgentConfiguration {
  const features = [...CODEX_DISABLED_FEATURES, ...(facts.sandboxOnly ? CODEX_SANDBOX_DISABLED_FEATURES : [])].sort();
  const lines = [
    `# Codex config.toml written by perimeter agent-config (perimeter ${facts.perimeterName}).`,
    "# The model is reached only through llm-proxy with the virtual key, tools only through mcp-guard; the",
    "# environment holds HTTPS_PROXY for everything else. Secrets are named here, never written.",
    `model = ${toml(facts.model)}`,
    'model_provider = "perimeter"',
    "# Codex's own prompts have nobody to answer them headless; mcp-guard holds the calls that need a human.",
    'approval_policy = "never"',
    'sandbox_mode = "read-only"',
    "check_for_update_on_startup = false",
    'web_search = "disabled"',
    "",
    "[model_providers.perimeter]",
    `name = ${toml(`perimeter ${facts.perimeterName} llm-proxy`)}`,
    `base_url = ${toml(facts.llmBaseUrl)}`,
    `env_key = ${toml(facts.llmKeyVariable)}`,
    'wire_api = "responses"',
    "",
    `[mcp_servers.${facts.mcpServerName}]`,
    `url = ${toml(facts.mcpUrl)}`,
    `bearer_token_env_var = ${toml(facts.agentTokenVariable)}`,
    `startup_timeout_sec = ${facts.mcpConnectSeconds}`,
    "# A held call waits up to approvals.timeoutSeconds for a human, then the upstream runs.",
    `tool_timeout_sec = ${facts.mcpCallSeconds}`,
    "# Codex's own per-call prompt (headless it refuses the call) is mcp-guard's job: tools.approve holds a call",
    "# for a human outside the agent, where a prompt-injected model cannot answer for them.",
    'default_tools_approval_mode = "approve"',
    "",
    "[features]",
    ...features.map((feature) => `${feature} = false`),
    "",
    "[analytics]",
    "enabled = false",
    "",
    "[feedback]",
    "enabled = false",
    "",
  ];
  const environment: EnvironmentEntry[] = [
    { name: facts.llmKeyVariable, secretKey: facts.llmKeyVariable },
    { name: facts.agentTokenVariable, secretKey: facts.agentTokenVariable },
    ...proxyEnvironment(facts),
  ];
  return {
    agent: "codex",
    files: [{ name: "config", path: "~/.codex/config.toml", content: lines.join("\n") }],
    environment,
    usage: ['codex exec --json --skip-git-repo-check "PROMPT"   (CODEX_HOME=~/.codex holds config.toml)'],
  };
}
