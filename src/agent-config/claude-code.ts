// Claude Code (@anthropic-ai/claude-code): ~/.claude/settings.json (its `env` block and permissions) and an MCP
// file for `--mcp-config FILE --strict-mcp-config`. Claude Code speaks Anthropic Messages: llm-proxy serves it from
// a `kind: anthropic` provider. Generated from its documented settings; not run end to end here (docs/agents.md).
import type { EnvironmentEntry } from "../render/index.ts";
import type { AgentFacts } from "./facts.ts";
import type { AgentConfiguration } from "./types.ts";

/** Built-in tools that run commands or touch files beside the agent's keys: denied when commands run in sandboxes. */
export const CLAUDE_SANDBOX_DENIED_TOOLS = ["Bash", "BashOutput", "KillShell", "Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "Glob", "Grep", "LS"] as const;
/** WebSearch runs at the provider with its own reach: always denied. WebFetch goes through the egress proxy. */
export const CLAUDE_NETWORK_DENIED_TOOLS = ["WebSearch"] as const;

export function claudeCodeConfiguration(facts: AgentFacts): AgentConfiguration {
  const settings = {
    env: {
      ANTHROPIC_BASE_URL: facts.llmOrigin,
      // Every model Claude Code would pick for itself (main, background, subagents) is the perimeter's model.
      ANTHROPIC_MODEL: facts.model,
      ANTHROPIC_DEFAULT_OPUS_MODEL: facts.model,
      ANTHROPIC_DEFAULT_SONNET_MODEL: facts.model,
      ANTHROPIC_DEFAULT_HAIKU_MODEL: facts.model,
      CLAUDE_CODE_SUBAGENT_MODEL: facts.model,
      // Telemetry, error reporting, the auto-updater and feedback: none of it leaves.
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      DISABLE_TELEMETRY: "1",
      DISABLE_ERROR_REPORTING: "1",
      DISABLE_AUTOUPDATER: "1",
      MCP_TIMEOUT: String(facts.mcpConnectSeconds * 1000),
      MCP_TOOL_TIMEOUT: String(facts.mcpCallSeconds * 1000),
      HTTPS_PROXY: facts.egressProxyUrl,
      HTTP_PROXY: facts.egressProxyUrl,
      NO_PROXY: facts.noProxy,
    },
    permissions: { deny: [...(facts.sandboxOnly ? CLAUDE_SANDBOX_DENIED_TOOLS : []), ...CLAUDE_NETWORK_DENIED_TOOLS] },
    // WebFetch would first ask api.anthropic.com whether a domain is allowed; the egress allowlist decides instead.
    skipWebFetchPreflight: true,
    enableAllProjectMcpServers: false,
  };
  const mcp = {
    mcpServers: {
      [facts.mcpServerName]: { type: "http", url: facts.mcpUrl, headers: { Authorization: `Bearer \${${facts.agentTokenVariable}}` } },
    },
  };
  const environment: EnvironmentEntry[] = [
    // Claude Code reads its key from ANTHROPIC_API_KEY: the virtual key goes there, never a provider key.
    { name: "ANTHROPIC_API_KEY", secretKey: facts.llmKeyVariable },
    { name: facts.agentTokenVariable, secretKey: facts.agentTokenVariable },
  ];
  return {
    agent: "claude-code",
    files: [
      { name: "settings", path: "~/.claude/settings.json", content: `${JSON.stringify(settings, null, 2)}\n` },
      { name: "mcp", path: "~/.claude/perimeter-mcp.json", content: `${JSON.stringify(mcp, null, 2)}\n` },
    ],
    environment,
    usage: ['claude -p --output-format stream-json --verbose --mcp-config ~/.claude/perimeter-mcp.json --strict-mcp-config "PROMPT"'],
  };
}
