// Qwen Code (@qwen-code/qwen-code): ~/.qwen/settings.json. Setting names are those of its settings reference
// (docs/configuration/settings.md in the package); the versions verified end to end are in docs/agents.md.
import type { EnvironmentEntry } from "../render/index.ts";
import type { AgentFacts } from "./facts.ts";
import { proxyEnvironment } from "./facts.ts";
import type { AgentConfiguration } from "./types.ts";

/** Built-in tools that run commands or read and write files beside the agent's keys: off when commands must run in
 * the sandbox (the counterpart of Hermes' terminal, file and code_execution toolsets). A whole-tool deny rule removes
 * a built-in from the registry, so the model is never offered it. */
export const QWEN_SANDBOX_DENIED_TOOLS = [
  "run_shell_command",
  "monitor",
  "read_file",
  "write_file",
  "edit",
  "notebook_edit",
  "glob",
  "grep_search",
  "list_directory",
  "zoom_image",
  "enter_worktree",
  "exit_worktree",
  "cron_create",
  "cron_list",
  "cron_delete",
] as const;

/** Built-in tools that would reach third parties with keys of their own (search providers): always off. web_fetch
 * stays: it goes through the egress proxy like any other request, so only allowlisted hosts answer. */
export const QWEN_NETWORK_DENIED_TOOLS = ["web_search"] as const;

/** Qwen's own bounds for mcp.toolIdleTimeoutMs. */
const IDLE_TIMEOUT_RANGE_MS = [10_000, 3_600_000] as const;
/** Qwen's default idle timeout; kept unless the longest silent call needs more. */
const IDLE_TIMEOUT_DEFAULT_MS = 300_000;

export function qwenCodeConfiguration(facts: AgentFacts): AgentConfiguration {
  const idleTimeoutMs = Math.min(IDLE_TIMEOUT_RANGE_MS[1], Math.max(IDLE_TIMEOUT_DEFAULT_MS, IDLE_TIMEOUT_RANGE_MS[0], facts.mcpSilentSeconds * 1000));
  const settings = {
    // The model: one OpenAI-compatible provider, llm-proxy, with the virtual key read from envKey at start.
    modelProviders: { openai: [{ id: facts.model, name: `${facts.model} (perimeter ${facts.perimeterName})`, baseUrl: facts.llmBaseUrl, envKey: facts.llmKeyVariable }] },
    model: { name: facts.model },
    security: { auth: { selectedType: "openai" } },
    mcpServers: {
      [facts.mcpServerName]: {
        description: `mcp-guard of perimeter ${facts.perimeterName}: every tool, filtered, argument-checked and approved there`,
        httpUrl: facts.mcpUrl,
        // Qwen expands ${VAR} in settings from its environment.
        headers: { Authorization: `Bearer \${${facts.agentTokenVariable}}` },
        // The hard deadline of one call: a held call waits up to approvals.timeoutSeconds for a human.
        timeout: facts.mcpCallSeconds * 1000,
        // Qwen's own per-call confirmation is mcp-guard's job (tools.approve): without a terminal nobody could answer it.
        trust: true,
        // Declared to the model up front rather than behind Qwen's tool_search bridge: mcp-guard already cut the list
        // to the allowed tools, and the model sees each one's pinned description.
        alwaysLoadTools: true,
      },
    },
    // Reset by every progress notification (mcp-guard sends one every 10 s while a call waits for a human).
    mcp: { toolIdleTimeoutMs: idleTimeoutMs },
    // Qwen's own requests (web_fetch) go through the egress proxy; the perimeter's hosts are in NO_PROXY.
    proxy: facts.egressProxyUrl,
    // web_fetch, the agent's one built-in way to the web (through that proxy), declared up front too.
    tools: { visible: ["web_fetch"] },
    general: { enableAutoUpdate: false },
    privacy: { usageStatisticsEnabled: false },
    telemetry: { enabled: false },
    permissions: {
      // Headless, a tool that asks first is refused; web_fetch reaches only what the egress allowlist lets through.
      allow: ["web_fetch"],
      deny: [...(facts.sandboxOnly ? QWEN_SANDBOX_DENIED_TOOLS : []), ...QWEN_NETWORK_DENIED_TOOLS],
    },
  };
  const environment: EnvironmentEntry[] = [
    { name: facts.llmKeyVariable, secretKey: facts.llmKeyVariable },
    { name: facts.agentTokenVariable, secretKey: facts.agentTokenVariable },
    ...proxyEnvironment(facts),
  ];
  return {
    agent: "qwen-code",
    files: [{ name: "settings", path: "~/.qwen/settings.json", content: `${JSON.stringify(settings, null, 2)}\n` }],
    environment,
    usage: ['qwen --output-format stream-json "PROMPT"   (headless; settings from ~/.qwen/settings.json)'],
  };
}
