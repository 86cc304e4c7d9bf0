// What Perimeter knows about the Hermes releases it renders for, and where Hermes' own source reads every key and
// variable Perimeter writes or checks. Each citation is file:line in NousResearch/hermes-agent at the release commit
// named in HERMES_RELEASES (read from a mirror of its mainline). docs/hermes-compatibility.md is generated from this
// file (hermes.test.ts fails when it is stale), so the table and the code cannot drift apart.

export type HermesVersion = "0.16.0" | "0.17.0" | "0.18.0";

export interface HermesRelease {
  /** The image tag the release workflow pushes: the GitHub release's CalVer tag (.github/workflows/docker-publish.yml, merge job). */
  readonly tag: string;
  /** hermes_cli/__init__.py __version__ and pyproject.toml version at the release commit. */
  readonly version: HermesVersion;
  readonly commit: string;
  /** hermes_cli/config.py DEFAULT_CONFIG["_config_version"]: a seed carrying it is not migrated at boot. */
  readonly configVersion: number;
  /** tools/mcp_tool.py _DEFAULT_TOOL_TIMEOUT: what an MCP call gets when mcp_servers.<name>.timeout is unset. */
  readonly mcpDefaultTimeoutSeconds: number;
}

export const HERMES_RELEASES: readonly HermesRelease[] = [
  { tag: "v2026.6.5", version: "0.16.0", commit: "3c231eb3979ab9c57d5cd6d02f1d577a3b718b43", configVersion: 27, mcpDefaultTimeoutSeconds: 120 },
  { tag: "v2026.6.19", version: "0.17.0", commit: "2bd1977d8fad185c9b4be47884f7e87f1add0ce3", configVersion: 30, mcpDefaultTimeoutSeconds: 300 },
  { tag: "v2026.7.1", version: "0.18.0", commit: "7c1a029553d87c43ecff8a3821336bc95872213b", configVersion: 32, mcpDefaultTimeoutSeconds: 300 },
];

/** The image `agent.image` defaults to: the newest release every citation below was checked against. */
export const DEFAULT_HERMES_IMAGE = "nousresearch/hermes-agent:v2026.7.1";

/** The release an image reference names by tag, or undefined (latest, main, a digest, an unverified tag). */
export function hermesRelease(image: string): HermesRelease | undefined {
  const withoutDigest = image.split("@")[0] ?? image;
  const slash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.lastIndexOf(":");
  if (colon <= slash) return undefined;
  const tag = withoutDigest.slice(colon + 1);
  return HERMES_RELEASES.find((release) => release.tag === tag);
}

export interface HermesSource {
  /** The key, variable, file or behaviour. */
  readonly subject: string;
  /** What Perimeter does with it: "render: ..." writes it, "check: ..." reports it, "fact: ..." designs around it. */
  readonly perimeter: string;
  /** Where Hermes reads or defines it, per release. */
  readonly at: Readonly<Record<HermesVersion, string>>;
}

export const HERMES_SOURCES: readonly HermesSource[] = [
  { subject: "model.provider / base_url / api_key / default", perimeter: "render: custom provider at llm-proxy with the agent's virtual key", at: { "0.16.0": "hermes_cli/runtime_provider.py:192", "0.17.0": "hermes_cli/runtime_provider.py:208", "0.18.0": "hermes_cli/runtime_provider.py:280" } },
  { subject: "fallback_providers", perimeter: "render: every fallback through llm-proxy", at: { "0.16.0": "gateway/run.py:1237", "0.17.0": "gateway/run.py:1680", "0.18.0": "gateway/run.py:1829" } },
  { subject: "auxiliary.<task>", perimeter: "render: every side task pinned to llm-proxy", at: { "0.16.0": "agent/auxiliary_client.py:4686", "0.17.0": "agent/auxiliary_client.py:4895", "0.18.0": "agent/auxiliary_client.py:5463" } },
  { subject: "mcp_servers.perimeter.url", perimeter: "render: mcp-guard's address", at: { "0.16.0": "tools/mcp_tool.py:1564", "0.17.0": "tools/mcp_tool.py:1955", "0.18.0": "tools/mcp_tool.py:2035" } },
  { subject: "mcp_servers.perimeter.headers", perimeter: "render: Bearer ${agent token}", at: { "0.16.0": "tools/mcp_tool.py:1565", "0.17.0": "tools/mcp_tool.py:1956", "0.18.0": "tools/mcp_tool.py:2036" } },
  { subject: "mcp_servers.perimeter.timeout", perimeter: "render: approvals.timeoutSeconds + the longest upstream timeout + 30 s", at: { "0.16.0": "tools/mcp_tool.py:1763", "0.17.0": "tools/mcp_tool.py:2176", "0.18.0": "tools/mcp_tool.py:2268" } },
  { subject: "MCP tool-call timeout default", perimeter: "fact: 120 s in 0.16.0, 300 s from 0.17.0 (too short for a held call)", at: { "0.16.0": "tools/mcp_tool.py:260", "0.17.0": "tools/mcp_tool.py:277", "0.18.0": "tools/mcp_tool.py:287" } },
  { subject: "mcp_servers.perimeter.connect_timeout", perimeter: "render: 30 s", at: { "0.16.0": "tools/mcp_tool.py:1572", "0.17.0": "tools/mcp_tool.py:1963", "0.18.0": "tools/mcp_tool.py:2043" } },
  { subject: "mcp_servers.perimeter.sampling.enabled", perimeter: "render: false (no server-initiated model calls)", at: { "0.16.0": "tools/mcp_tool.py:1767", "0.17.0": "tools/mcp_tool.py:2180", "0.18.0": "tools/mcp_tool.py:2272" } },
  { subject: "Streamable HTTP read timeout", perimeter: "fact: 300 s between bytes, not configurable: a held call must stream", at: { "0.16.0": "tools/mcp_tool.py:1692", "0.17.0": "tools/mcp_tool.py:2085", "0.18.0": "tools/mcp_tool.py:2169" } },
  { subject: "MCP circuit breaker threshold", perimeter: "fact: 3 consecutive errors open it for every tool of the server", at: { "0.16.0": "tools/mcp_tool.py:2004", "0.17.0": "tools/mcp_tool.py:2434", "0.18.0": "tools/mcp_tool.py:2568" } },
  { subject: "MCP circuit breaker cool-down", perimeter: "fact: 60 s, then one probe call; not configurable per server", at: { "0.16.0": "tools/mcp_tool.py:2005", "0.17.0": "tools/mcp_tool.py:2435", "0.18.0": "tools/mcp_tool.py:2569" } },
  { subject: "what counts toward the breaker", perimeter: "fact: isError results, timeouts, exceptions; a non-error result resets it", at: { "0.16.0": "tools/mcp_tool.py:2690", "0.17.0": "tools/mcp_tool.py:3218", "0.18.0": "tools/mcp_tool.py:3450" } },
  { subject: "one call at a time per MCP server", perimeter: "fact: calls to one server are serialised (a held call delays the others)", at: { "0.16.0": "tools/mcp_tool.py:2634", "0.17.0": "tools/mcp_tool.py:3160", "0.18.0": "tools/mcp_tool.py:3392" } },
  { subject: "approvals.mode", perimeter: "render: manual or smart; check: off/yolo", at: { "0.16.0": "tools/approval.py:914", "0.17.0": "tools/approval.py:1064", "0.18.0": "tools/approval.py:1769" } },
  { subject: "approvals.gateway_timeout", perimeter: "render: approvals.timeoutSeconds (what the gateway waits for a chat approval)", at: { "0.16.0": "tools/approval.py:1177", "0.17.0": "tools/approval.py:1330", "0.18.0": "tools/approval.py:2150" } },
  { subject: "approvals.timeout", perimeter: "render: approvals.timeoutSeconds (the CLI prompt's wait)", at: { "0.16.0": "tools/approval.py:921", "0.17.0": "tools/approval.py:1071", "0.18.0": "tools/approval.py:1797" } },
  { subject: "approvals.cron_mode", perimeter: "render: deny; check: approve", at: { "0.16.0": "tools/approval.py:143", "0.17.0": "tools/approval.py:144", "0.18.0": "tools/approval.py:188" } },
  { subject: "agent.gateway_timeout", perimeter: "render: at least the MCP timeout + 60 s (inactivity watchdog of a turn)", at: { "0.16.0": "gateway/run.py:1002", "0.17.0": "gateway/run.py:1442", "0.18.0": "gateway/run.py:1536" } },
  { subject: "agent.disabled_toolsets", perimeter: "render: every toolset that reaches the network or runs code outside the perimeter", at: { "0.16.0": "hermes_cli/tools_config.py:1464", "0.17.0": "hermes_cli/tools_config.py:1533", "0.18.0": "hermes_cli/tools_config.py:1653" } },
  { subject: "disabled toolsets strip composite toolsets", perimeter: "fact: applied after hermes-<platform>, removes each disabled toolset's tools", at: { "0.16.0": "model_tools.py:383", "0.17.0": "model_tools.py:396", "0.18.0": "model_tools.py:424" } },
  { subject: "toolset names", perimeter: "fact: the names render disables and check expects", at: { "0.16.0": "toolsets.py:88", "0.17.0": "toolsets.py:89", "0.18.0": "toolsets.py:95" } },
  { subject: "unauthorized_dm_behavior", perimeter: "render: ignore; check: pair", at: { "0.16.0": "gateway/config.py:783", "0.17.0": "gateway/config.py:881", "0.18.0": "gateway/config.py:911" } },
  { subject: "unauthorized DM default", perimeter: "fact: explicit per-platform, then global non-pair, then ignore when an allowlist is set", at: { "0.16.0": "gateway/run.py:7286", "0.17.0": "gateway/authz_mixin.py:455", "0.18.0": "gateway/authz_mixin.py:584" } },
  { subject: "security.redact_secrets", perimeter: "render: true; check: false", at: { "0.16.0": "gateway/run.py:1029", "0.17.0": "gateway/run.py:1469", "0.18.0": "gateway/run.py:1563" } },
  { subject: "security.allow_private_urls", perimeter: "render: false; check: true", at: { "0.16.0": "tools/url_safety.py:8", "0.17.0": "tools/url_safety.py:8", "0.18.0": "tools/url_safety.py:8" } },
  { subject: "HERMES_ALLOW_PRIVATE_URLS", perimeter: "check: truthy (overrides the config key)", at: { "0.16.0": "tools/url_safety.py:110", "0.17.0": "tools/url_safety.py:151", "0.18.0": "tools/url_safety.py:210" } },
  { subject: "security.website_blocklist", perimeter: "render: agent.websiteBlocklist", at: { "0.16.0": "tools/website_policy.py:120", "0.17.0": "tools/website_policy.py:120", "0.18.0": "tools/website_policy.py:120" } },
  { subject: "security.tirith_enabled", perimeter: "render: false (it downloads its binary from GitHub at start)", at: { "0.16.0": "tools/tirith_security.py:608", "0.17.0": "tools/tirith_security.py:609", "0.18.0": "tools/tirith_security.py:642" } },
  { subject: "security.allow_lazy_installs", perimeter: "render: false (no PyPI installs at run time); check", at: { "0.16.0": "tools/lazy_deps.py:246", "0.17.0": "tools/lazy_deps.py:252", "0.18.0": "tools/lazy_deps.py:444" } },
  { subject: "kanban.dispatch_in_gateway", perimeter: "render: false (no spawned hermes chat workers); check", at: { "0.16.0": "gateway/run.py:5240", "0.17.0": "gateway/kanban_watchers.py:119", "0.18.0": "gateway/kanban_watchers.py:153" } },
  { subject: "model_catalog.enabled", perimeter: "render: false (no catalog fetch from the docs site)", at: { "0.16.0": "hermes_cli/model_catalog.py:107", "0.17.0": "hermes_cli/model_catalog.py:107", "0.18.0": "hermes_cli/model_catalog.py:107" } },
  { subject: "terminal.backend", perimeter: "render: local (its tools disabled with terminal: sandbox); check", at: { "0.16.0": "tools/terminal_tool.py:569", "0.17.0": "tools/terminal_tool.py:569", "0.18.0": "tools/terminal_tool.py:688" } },
  { subject: "terminal.docker_extra_args", perimeter: "check: privileged/host/cap-add arguments", at: { "0.16.0": "tools/terminal_tool.py:1128", "0.17.0": "tools/terminal_tool.py:1116", "0.18.0": "tools/terminal_tool.py:1267" } },
  { subject: "terminal.docker_forward_env", perimeter: "check: credentials forwarded", at: { "0.16.0": "tools/terminal_tool.py:1097", "0.17.0": "tools/terminal_tool.py:1113", "0.18.0": "tools/terminal_tool.py:1264" } },
  { subject: "mcp_servers.<name>.command (stdio)", perimeter: "check: a local MCP server outside mcp-guard", at: { "0.16.0": "tools/mcp_tool.py:1366", "0.17.0": "tools/mcp_tool.py:1755", "0.18.0": "tools/mcp_tool.py:1808" } },
  { subject: "_config_version", perimeter: "render: the image's schema version (27 / 30 / 32)", at: { "0.16.0": "hermes_cli/config.py:2423", "0.17.0": "hermes_cli/config.py:2751", "0.18.0": "hermes_cli/config.py:3109" } },
  { subject: "HERMES_SKIP_CONFIG_MIGRATION", perimeter: "render: 1 (the boot hook never rewrites the seeded config)", at: { "0.16.0": "scripts/docker_config_migrate.py:44", "0.17.0": "scripts/docker_config_migrate.py:44", "0.18.0": "scripts/docker_config_migrate.py:54" } },
  { subject: "HERMES_GATEWAY_NO_SUPERVISE", perimeter: "render: 1 (gateway run is the container's main process, not an s6 service)", at: { "0.16.0": "hermes_cli/gateway.py:5898", "0.17.0": "hermes_cli/gateway.py:6502", "0.18.0": "hermes_cli/gateway.py:6364" } },
  { subject: "/opt/data/.env loaded with override", perimeter: "render: a read-only mount of Perimeter's .env; check reads it", at: { "0.16.0": "hermes_cli/env_loader.py:238", "0.17.0": "hermes_cli/env_loader.py:238", "0.18.0": "hermes_cli/env_loader.py:238" } },
  { subject: "boot hook chowns and chmods .env", perimeter: "fact: a root-owned 0444 .env would be handed back to the agent's user", at: { "0.16.0": "docker/stage2-hook.sh:346", "0.17.0": "docker/stage2-hook.sh:331", "0.18.0": "docker/stage2-hook.sh:401" } },
  { subject: "cron runs reload .env with override", perimeter: "fact: the same read-only file applies", at: { "0.16.0": "cron/scheduler.py:1571", "0.17.0": "cron/scheduler.py:1627", "0.18.0": "cron/scheduler.py:2549" } },
  { subject: "gateway_state.json", perimeter: "render: the healthcheck reads it", at: { "0.16.0": "gateway/status.py:32", "0.17.0": "gateway/status.py:33", "0.18.0": "gateway/status.py:33" } },
  { subject: "gateway_state.json pid / start_time", perimeter: "render: the healthcheck requires a live pid with that start time", at: { "0.16.0": "gateway/status.py:208", "0.17.0": "gateway/status.py:268", "0.18.0": "gateway/status.py:401" } },
  { subject: "gateway_state running", perimeter: "render: the healthcheck requires running and each platform connected", at: { "0.16.0": "gateway/run.py:4698", "0.17.0": "gateway/run.py:5594", "0.18.0": "gateway/run.py:4020" } },
  { subject: "boot hook's synthetic running state", perimeter: "fact: no pid; the healthcheck refuses it", at: { "0.16.0": "hermes_cli/container_boot.py:192", "0.17.0": "hermes_cli/container_boot.py:196", "0.18.0": "hermes_cli/container_boot.py:226" } },
  { subject: "<PLATFORM>_ALLOWED_USERS", perimeter: "render: agent.platforms.<p>.allowedUsers; check: missing or empty", at: { "0.16.0": "gateway/run.py:7097", "0.17.0": "gateway/authz_mixin.py:228", "0.18.0": "gateway/authz_mixin.py:347" } },
  { subject: "* in an allowlist", perimeter: "check: allows everyone", at: { "0.16.0": "gateway/run.py:7264", "0.17.0": "gateway/authz_mixin.py:418", "0.18.0": "gateway/authz_mixin.py:547" } },
  { subject: "<PLATFORM>_ALLOW_ALL_USERS / GATEWAY_ALLOW_ALL_USERS", perimeter: "check: truthy", at: { "0.16.0": "gateway/run.py:7123", "0.17.0": "gateway/authz_mixin.py:255", "0.18.0": "gateway/authz_mixin.py:374" } },
  { subject: "<PLATFORM>_GROUP_ALLOWED_CHATS", perimeter: "check: *", at: { "0.16.0": "gateway/run.py:7079", "0.17.0": "gateway/authz_mixin.py:210", "0.18.0": "gateway/authz_mixin.py:312" } },
  { subject: "DISCORD_ALLOW_BOTS / FEISHU_ALLOW_BOTS", perimeter: "check: all or mentions (bots bypass the allowlist)", at: { "0.16.0": "gateway/run.py:7143", "0.17.0": "gateway/authz_mixin.py:276", "0.18.0": "gateway/authz_mixin.py:333" } },
  { subject: "HERMES_YOLO_MODE", perimeter: "check: truthy", at: { "0.16.0": "tools/approval.py:29", "0.17.0": "tools/approval.py:30", "0.18.0": "tools/approval.py:33" } },
  { subject: "API_SERVER_ENABLED", perimeter: "render: agent.apiServer.enabled; check", at: { "0.16.0": "gateway/config.py:1508", "0.17.0": "gateway/config.py:1680", "0.18.0": "gateway/config.py:1556" } },
  { subject: "API_SERVER_KEY", perimeter: "render: from agent.apiServer.keySecret; check: empty or short", at: { "0.16.0": "gateway/config.py:1509", "0.17.0": "gateway/config.py:1681", "0.18.0": "gateway/config.py:1557" } },
  { subject: "API_SERVER_HOST", perimeter: "render: 0.0.0.0 behind a NetworkPolicy; check: beyond loopback", at: { "0.16.0": "gateway/config.py:1512", "0.17.0": "gateway/config.py:1684", "0.18.0": "gateway/config.py:1560" } },
  { subject: "HERMES_DASHBOARD", perimeter: "check: truthy starts the dashboard (s6 service)", at: { "0.16.0": "docker/s6-rc.d/dashboard/run:9", "0.17.0": "docker/s6-rc.d/dashboard/run:9", "0.18.0": "docker/s6-rc.d/dashboard/run:9" } },
  { subject: "HERMES_DASHBOARD_HOST", perimeter: "check: defaults to 0.0.0.0", at: { "0.16.0": "docker/s6-rc.d/dashboard/run:30", "0.17.0": "docker/s6-rc.d/dashboard/run:30", "0.18.0": "docker/s6-rc.d/dashboard/run:30" } },
  { subject: "HERMES_DASHBOARD_INSECURE", perimeter: "check: truthy drops the auth gate", at: { "0.16.0": "docker/s6-rc.d/dashboard/run:46", "0.17.0": "docker/s6-rc.d/dashboard/run:46", "0.18.0": "docker/s6-rc.d/dashboard/run:44" } },
  { subject: "HERMES_DASHBOARD_OAUTH_CLIENT_ID", perimeter: "check: an auth provider for the dashboard", at: { "0.16.0": "hermes_cli/config.py:1472", "0.17.0": "hermes_cli/config.py:1686", "0.18.0": "hermes_cli/config.py:1849" } },
  { subject: "HERMES_DASHBOARD_BASIC_AUTH_USERNAME / _PASSWORD(_HASH)", perimeter: "check: an auth provider for the dashboard", at: { "0.16.0": "hermes_cli/config.py:1492", "0.17.0": "hermes_cli/config.py:1706", "0.18.0": "hermes_cli/config.py:1869" } },
];

/** docs/hermes-compatibility.md, generated. */
export function hermesCompatibilityMarkdown(): string {
  const versions = HERMES_RELEASES.map((release) => release.version);
  const lines = [
    "# Hermes compatibility",
    "",
    "Generated from `src/render/hermes-sources.ts` (do not edit by hand; `src/render/hermes.test.ts` fails when this",
    "file is stale). Every key and variable `perimeter render` writes into Hermes' `config.yaml`, `.env` or",
    "environment, and every one `perimeter check` reports, with the place Hermes' own source reads it",
    "(NousResearch/hermes-agent, file:line at each release commit). `agent.image` defaults to",
    `\`${DEFAULT_HERMES_IMAGE}\`; an image whose tag is not listed here gets the keys of every listed release.`,
    "",
    "| Release | Image tag | Commit | `_config_version` | MCP call timeout default |",
    "| --- | --- | --- | --- | --- |",
    ...HERMES_RELEASES.map((release) => `| ${release.version} | \`${release.tag}\` | \`${release.commit.slice(0, 12)}\` | ${release.configVersion} | ${release.mcpDefaultTimeoutSeconds} s |`),
    "",
    `| Key / variable | Perimeter | ${versions.join(" | ")} |`,
    `| --- | --- | ${versions.map(() => "---").join(" | ")} |`,
    ...HERMES_SOURCES.map((source) => `| \`${source.subject.replace(/\|/g, "\\|")}\` | ${source.perimeter.replace(/\|/g, "\\|")} | ${versions.map((version) => `\`${source.at[version]}\``).join(" | ")} |`),
    "",
  ];
  return lines.join("\n");
}
