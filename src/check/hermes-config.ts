// Hermes' own config.yaml (DESIGN.md "Hermes Agent facts"). Hermes ignores keys it does not know, so a misspelled
// security key silently keeps the default: those are reported with "did you mean".
import { closest, literalCredentialIn, secretShapeIn } from "../config/index.ts";
import type { Collector, Subject } from "./collector.ts";
import { PERIMETER_BYPASS_TOOLSETS, PLATFORMS, isCredentialName } from "./hermes-facts.ts";
import type { EnvVariable } from "./env-file.ts";
import { asArray, asRecord, asString } from "./yaml-source.ts";
import type { YamlDocument } from "./yaml-source.ts";

export const HERMES_TOP_LEVEL_KEYS = ["unauthorized_dm_behavior", "kanban", "model_catalog", "gateway", "mcp", "model", "providers", "custom_providers", "fallback_providers", "fallback_model", "auxiliary", "terminal", "approvals", "security", "mcp_servers", "toolsets", "agent", "platforms", "platform_toolsets", "memory", "display", "compression", "tts", "stt", "voice", "browser", "delegation", "updates", "cron", "skills", "logging", "checkpoints", "smart_model_routing", "honcho", "web", "code_execution", "session_reset", "streaming", "context", "quick_commands", "personalities", "prompt_caching", "group_sessions_per_user", "elicitation", "tools", "privacy", "human_delay", "discord", "telegram", "slack", "whatsapp", "dashboard", "api_server", "timezone", "command_allowlist", "_config_version", "network", "bedrock", "auth"];
const SECTION_KEYS: Record<string, readonly string[]> = {
  approvals: ["mode", "timeout", "cron_mode", "allowlist", "permanent_allowlist", "gateway_timeout"],
  security: ["redact_secrets", "allow_private_urls", "website_blocklist", "tirith_enabled", "tirith_path", "tirith_timeout", "tirith_fail_open", "allow_lazy_installs"],
  terminal: ["backend", "cwd", "timeout", "lifetime_seconds", "docker_image", "docker_forward_env", "docker_extra_args", "docker_network", "docker_volumes", "docker_mount_cwd_to_workspace", "container_cpu", "container_memory", "container_disk", "container_persistent", "singularity_image", "modal_image", "daytona_image", "ssh_host", "ssh_user", "ssh_port", "ssh_key", "persistent_shell", "env_passthrough", "sandbox_dir"],
};
const STRONG_KEYS = ["model", "terminal", "approvals", "mcp_servers", "toolsets", "custom_providers", "fallback_providers", "auxiliary", "platform_toolsets", "memory", "compression"];

/** A mapping whose keys are Hermes config keys (and not Kubernetes, Compose or Perimeter's own config). */
export function looksLikeHermesConfig(value: unknown, fileName: string): boolean {
  const root = asRecord(value);
  if (root === undefined || root.apiVersion !== undefined || root.kind !== undefined || root.services !== undefined) return false;
  if (root.version === 1 && root.name !== undefined) return false; // perimeter.yaml
  const keys = Object.keys(root);
  const strong = keys.filter((key) => STRONG_KEYS.includes(key)).length;
  return strong >= 2 || (strong >= 1 && /^config\.ya?ml$/.test(fileName)) || (/^config\.ya?ml$/.test(fileName) && keys.some((key) => key === "security"));
}

export interface HermesConfigContext {
  /** True when the config is used by a gateway that serves chat platforms (an agent pod, a sibling .env with a bot token). */
  readonly servesChat: boolean;
  /** Where the evidence for servesChat came from, for the message. */
  readonly chatEvidence?: string;
}

const DANGEROUS_DOCKER_ARGUMENTS: ReadonlyArray<{ pattern: RegExp; what: string }> = [
  { pattern: /^--privileged(=true)?$/, what: "--privileged" },
  { pattern: /^--(network|net)(=|$)host$|^--(network|net)=host$/, what: "host network" },
  { pattern: /^--(pid|ipc|uts|userns)=host$/, what: "host namespace" },
  { pattern: /^--cap-add/, what: "--cap-add" },
  { pattern: /^--security-opt(=|$)/, what: "--security-opt" },
  { pattern: /docker\.sock/, what: "the Docker socket" },
  { pattern: /^--device/, what: "--device" },
];

export function checkHermesConfig(document: YamlDocument, subject: Subject, context: HermesConfigContext, collector: Collector): void {
  const root = asRecord(document.value) ?? {};
  for (const key of Object.keys(root)) {
    if (HERMES_TOP_LEVEL_KEYS.includes(key)) continue;
    const suggestion = closest(key, HERMES_TOP_LEVEL_KEYS);
    // Hermes grows new sections every release: only near-misses of known keys are reported.
    if (suggestion !== undefined && ["approvals", "security", "terminal", "mcp_servers", "model"].includes(suggestion)) {
      collector.add("HERMES-UNKNOWN-KEY", subject, [key], `unknown key "${key}" — did you mean "${suggestion}"? Hermes ignores it and keeps the default`);
    }
  }
  for (const [section, known] of Object.entries(SECTION_KEYS)) {
    for (const key of Object.keys(asRecord(root[section]) ?? {})) {
      if (known.includes(key)) continue;
      const suggestion = closest(key, known);
      if (suggestion !== undefined) collector.add("HERMES-UNKNOWN-KEY", subject, [section, key], `unknown key "${section}.${key}" — did you mean "${suggestion}"? Hermes ignores it and keeps the default`);
    }
  }

  const approvals = root.approvals;
  const approvalsRecord = asRecord(approvals);
  const mode = approvalsRecord === undefined ? approvals : approvalsRecord.mode;
  if (mode === false || (typeof mode === "string" && /^(off|yolo|none|disabled?)$/i.test(mode))) {
    collector.add("HERMES-APPROVALS-OFF", subject, approvalsRecord === undefined ? ["approvals"] : ["approvals", "mode"], `approvals mode "${String(mode)}" runs every command without asking`);
  }
  if (asString(approvalsRecord?.cron_mode) === "approve") collector.add("HERMES-CRON-APPROVALS", subject, ["approvals", "cron_mode"], "approvals.cron_mode: approve lets scheduled jobs run flagged commands unasked");

  const security = asRecord(root.security) ?? {};
  if (security.allow_private_urls === true) collector.add("HERMES-PRIVATE-URLS", subject, ["security", "allow_private_urls"], "security.allow_private_urls: true lets prompt-injected URLs reach private services");
  if (security.redact_secrets === false) collector.add("HERMES-REDACT-OFF", subject, ["security", "redact_secrets"], "security.redact_secrets: false sends secrets in tool output to the model and the logs");

  const terminal = asRecord(root.terminal) ?? {};
  asArray(terminal.docker_extra_args).forEach((item, index) => {
    const argument = String(item).trim();
    const next = String(asArray(terminal.docker_extra_args)[index + 1] ?? "");
    const combined = /^--(network|net|pid|ipc)$/.test(argument) ? `${argument}=${next}` : argument;
    const hit = DANGEROUS_DOCKER_ARGUMENTS.find((entry) => entry.pattern.test(combined));
    if (hit !== undefined) collector.add("HERMES-DOCKER-EXTRA-ARGS", subject, ["terminal", "docker_extra_args", index], `docker_extra_args "${argument}" (${hit.what}) undoes the Docker backend's hardening`);
  });
  asArray(terminal.docker_forward_env).forEach((item, index) => {
    const name = String(item);
    if (isCredentialName(name)) collector.add("HERMES-FORWARD-PROVIDER-KEYS", subject, ["terminal", "docker_forward_env", index], `${name} is forwarded into every sandboxed command`);
  });
  const backend = asString(terminal.backend);
  // agent.disabled_toolsets is applied after every per-platform selection: with terminal and code_execution in it,
  // no chat message reaches the local backend (how `perimeter render` configures the agent).
  const disabled = asArray(asRecord(root.agent)?.disabled_toolsets).map(String);
  const localExecutionOff = disabled.includes("terminal") && disabled.includes("code_execution");
  if ((backend === undefined || backend === "local") && context.servesChat && !localExecutionOff) {
    collector.add(
      "HERMES-LOCAL-TERMINAL-PUBLIC-CHAT",
      subject,
      backend === undefined ? (root.terminal === undefined ? [] : ["terminal"]) : ["terminal", "backend"],
      `terminal backend ${backend === undefined ? "is not set (Hermes defaults to local)" : "local"} while ${context.chatEvidence ?? "the gateway serves chat platforms"}: chat messages become shell commands beside the agent's keys`,
    );
  }

  // gateway/config.py:911 (global) and the per-platform key bridged beside it: "pair" answers a stranger's DM with a
  // pairing code, and an approved pairing is admitted past <PLATFORM>_ALLOWED_USERS.
  if (asString(root.unauthorized_dm_behavior)?.trim().toLowerCase() === "pair") {
    collector.add("HERMES-DM-PAIRING", subject, ["unauthorized_dm_behavior"], "unauthorized_dm_behavior: pair answers strangers with pairing codes; an approved pairing bypasses the user allowlist");
  }
  for (const source of ["platforms", "gateway"] as const) {
    const platforms = source === "platforms" ? asRecord(root.platforms) : asRecord(asRecord(root.gateway)?.platforms);
    for (const [platform, raw] of Object.entries(platforms ?? {})) {
      if (asString(asRecord(raw)?.unauthorized_dm_behavior)?.trim().toLowerCase() !== "pair") continue;
      const path = source === "platforms" ? ["platforms", platform, "unauthorized_dm_behavior"] : ["gateway", "platforms", platform, "unauthorized_dm_behavior"];
      collector.add("HERMES-DM-PAIRING", subject, path, `${path.join(".")}: pair answers strangers on ${platform} with pairing codes; an approved pairing bypasses the user allowlist`);
    }
  }

  // A config that keeps shell and code out of the agent (Perimeter's sandbox) claims that nothing else runs or
  // reaches out beside it: the features that would are findings here.
  if (localExecutionOff) checkPerimeterBypass(root, disabled, subject, collector);

  for (const [server, raw] of Object.entries(asRecord(root.mcp_servers) ?? {})) {
    const definition = asRecord(raw) ?? {};
    for (const [header, value] of Object.entries(asRecord(definition.headers) ?? {})) {
      const reason = typeof value === "string" ? literalCredentialIn(header, value) : undefined;
      if (reason !== undefined) collector.add("HERMES-MCP-LITERAL-TOKEN", subject, ["mcp_servers", server, "headers", header], `mcp_servers.${server}.headers.${header}: ${reason}`);
    }
    for (const [name, value] of Object.entries(asRecord(definition.env) ?? {})) {
      const shape = typeof value === "string" ? secretShapeIn(value) : undefined;
      if (shape !== undefined) collector.add("HERMES-MCP-LITERAL-TOKEN", subject, ["mcp_servers", server, "env", name], `mcp_servers.${server}.env.${name} holds what looks like a ${shape}: write \${${name}}`);
    }
    const url = asString(definition.url);
    if (url !== undefined && (/\/\/[^/@\s]+:[^/@\s]+@/.test(url) || /[?&](token|key|api_key|access_token)=(?!\$\{)[^&]+/i.test(url) || secretShapeIn(url) !== undefined)) {
      collector.add("HERMES-MCP-LITERAL-TOKEN", subject, ["mcp_servers", server, "url"], `mcp_servers.${server}.url carries a credential; pass it in a header as \${VAR}`);
    }
  }
}

function checkPerimeterBypass(root: Record<string, unknown>, disabled: readonly string[], subject: Subject, collector: Collector): void {
  const disabledPath = asRecord(root.agent)?.disabled_toolsets === undefined ? ["agent"] : ["agent", "disabled_toolsets"];
  const missing = PERIMETER_BYPASS_TOOLSETS.filter((toolset) => !disabled.includes(toolset));
  // hermes_cli/tools_config.py:1653 and model_tools.py:424 (Hermes 0.18.0): only what is listed is stripped.
  if (missing.length > 0) {
    collector.add("HERMES-PERIMETER-BYPASS", subject, disabledPath, `terminal and code_execution are off, but ${missing.join(", ")} ${missing.length === 1 ? "stays" : "stay"} on: they reach the network or act outside the perimeter by themselves; add them to agent.disabled_toolsets`);
  }
  const security = asRecord(root.security);
  // tools/lazy_deps.py:444: the default (true) installs PyPI packages at run time.
  if (security?.allow_lazy_installs !== false) {
    collector.add("HERMES-PERIMETER-BYPASS", subject, security?.allow_lazy_installs === undefined ? (root.security === undefined ? [] : ["security"]) : ["security", "allow_lazy_installs"], "security.allow_lazy_installs is not false: Hermes installs PyPI packages into its own environment at run time");
  }
  const kanban = asRecord(root.kanban);
  // gateway/kanban_watchers.py:153: the default dispatcher spawns `hermes chat` workers from the gateway.
  if (kanban?.dispatch_in_gateway !== false) {
    collector.add("HERMES-PERIMETER-BYPASS", subject, kanban === undefined ? [] : ["kanban"], "kanban.dispatch_in_gateway is not false: the gateway spawns hermes chat workers of its own");
  }
  for (const [server, raw] of Object.entries(asRecord(root.mcp_servers) ?? {})) {
    const definition = asRecord(raw) ?? {};
    // tools/mcp_tool.py:1808: a command starts a local stdio server beside the agent, outside mcp-guard.
    if (definition.command !== undefined) {
      collector.add("HERMES-PERIMETER-BYPASS", subject, ["mcp_servers", server, "command"], `mcp_servers.${server} starts a local stdio MCP server beside the agent, outside mcp-guard: serve it behind mcp-guard instead`);
    }
    // tools/mcp_tool.py:2272: sampling is on unless sampling.enabled is false.
    if (asRecord(definition.sampling)?.enabled !== false) {
      collector.add("HERMES-PERIMETER-BYPASS", subject, ["mcp_servers", server], `mcp_servers.${server}: sampling is on, so the server can make the agent call its model (set sampling: { enabled: false })`);
    }
  }
}

/** Whether a sibling .env says the gateway serves chat platforms. */
export function chatEvidenceIn(variables: readonly EnvVariable[]): string | undefined {
  for (const { platform, tokens } of PLATFORMS) {
    const token = variables.find((variable) => tokens.includes(variable.name) && variable.value !== "");
    if (token !== undefined) return `${token.name} in the .env configures ${platform}`;
  }
  return undefined;
}
