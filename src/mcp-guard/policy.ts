// Tool-level policy: namespacing, the allowlist, which calls wait for a human, and which annotations the agent sees.
// Pure functions over the config; the server only maps their answers to MCP results and audit records.
import { globMatches } from "../config/index.ts";
import type { McpServerConfig, PerimeterConfig } from "../config/index.ts";
import type { PolicyVerdict } from "./arguments.ts";

/** `<server>__<tool>`: server names cannot contain "_", so the first "__" always ends the server name. */
export const NAMESPACE_SEPARATOR = "__";

export function namespacedName(server: string, tool: string): string {
  return `${server}${NAMESPACE_SEPARATOR}${tool}`;
}

export function splitToolName(name: string): { server: string; tool: string } | undefined {
  const at = name.indexOf(NAMESPACE_SEPARATOR);
  if (at <= 0 || at + NAMESPACE_SEPARATOR.length >= name.length) return undefined;
  return { server: name.slice(0, at), tool: name.slice(at + NAMESPACE_SEPARATOR.length) };
}

/** Deny by default: a tool is exposed only when one of the server's `tools.allow` globs matches its upstream name. */
export function toolAllowed(server: McpServerConfig, tool: string): PolicyVerdict {
  if (server.tools.allow.some((pattern) => globMatches(pattern, tool))) return { allow: true };
  return { allow: false, reason: server.tools.allow.length === 0 ? "the server has no tools.allow entries (deny by default)" : `"${tool}" matches no tools.allow pattern` };
}

/**
 * How many distinct people must approve a call: 0 when none need to. The server's `tools.approve` asks for one; an
 * `approvals.tools` entry for its `approvers` (the two-person rule); the strictest matching rule wins.
 */
export function approvalsRequired(config: PerimeterConfig, serverName: string, tool: string): number {
  const server = config.mcp.servers[serverName];
  let required = server?.tools.approve.some((pattern) => globMatches(pattern, tool)) === true ? 1 : 0;
  const name = namespacedName(serverName, tool);
  for (const entry of config.approvals.tools) {
    const [pattern, approvers] = typeof entry === "string" ? [entry, 1] : [entry.tool, entry.approvers];
    if (globMatches(pattern, name)) required = Math.max(required, approvers);
  }
  return required;
}

/** A call waits for a human when at least one approval is required. */
export function approvalRequired(config: PerimeterConfig, serverName: string, tool: string): boolean {
  return approvalsRequired(config, serverName, tool) > 0;
}

export interface ToolAnnotationsConfig {
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

/**
 * The annotations the agent sees: only ours. Upstream hints are untrusted (a malicious server calls its delete tool
 * read-only); with none configured the agent gets none, which MCP clients read as the cautious defaults
 * (not read-only, possibly destructive, open world). Matching globs merge in config order, later ones winning.
 */
export function annotationsFor(server: McpServerConfig, tool: string): ToolAnnotationsConfig | undefined {
  let merged: ToolAnnotationsConfig | undefined;
  for (const [pattern, annotations] of Object.entries(server.tools.annotations)) {
    if (globMatches(pattern, tool)) merged = { ...merged, ...annotations };
  }
  return merged;
}
