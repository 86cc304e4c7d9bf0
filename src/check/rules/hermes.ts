// Rules on Hermes' own config.yaml and its environment (.env, compose environment, a pod's env).
import type { RuleDefinition } from "../model.ts";
import { rule } from "./define.ts";

export const HERMES_RULES: readonly RuleDefinition[] = [
  rule(
    "HERMES-APPROVALS-OFF", "critical",
    "Hermes approvals are off (yolo)",
    "With approvals off a prompt-injected message runs any command unasked. Seed 004: \"Production VPS deployments should not use approvals.mode: off, --yolo, /yolo, or HERMES_YOLO_MODE=1\".",
    "Set approvals.mode: manual (or smart) and remove HERMES_YOLO_MODE.",
    `
approvals:
  mode: manual
  cron_mode: deny
`,
  ),
  rule(
    "HERMES-CRON-APPROVALS", "medium",
    "Cron jobs run dangerous commands without approval",
    "approvals.cron_mode: approve lets scheduled jobs (which nobody watches) run flagged commands; a job planted by a prompt injection runs on its own. Seed 004 sets cron_mode: deny.",
    "Set approvals.cron_mode: deny.",
    `
approvals:
  cron_mode: deny
`,
  ),
  rule(
    "HERMES-ALLOW-ALL-USERS", "critical",
    "Every chat user may drive the agent",
    "\"a bot token is effectively public, and without an allowlist anyone who finds your bot can drive a shell-executing agent\" (seed 003). Seed 004: \"avoid GATEWAY_ALLOW_ALL_USERS=true\".",
    "Remove *_ALLOW_ALL_USERS and list user ids in <PLATFORM>_ALLOWED_USERS.",
    `
TELEGRAM_ALLOWED_USERS=987654321
`,
  ),
  rule(
    "HERMES-PLATFORM-NO-ALLOWLIST", "high",
    "A chat platform is configured without a user allowlist",
    "\"TELEGRAM_ALLOWED_USERS restricts who the bot will respond to. Never leave it empty\" (seed 003).",
    "Set <PLATFORM>_ALLOWED_USERS to the ids allowed to talk to the agent.",
    `
TELEGRAM_BOT_TOKEN=...            # in the Secret, not here
TELEGRAM_ALLOWED_USERS=987654321
`,
  ),
  rule(
    "HERMES-API-SERVER-KEY", "critical",
    "The API server is enabled with an empty or short key",
    "An empty API_SERVER_KEY accepts every request: anyone who reaches port 8642 drives the agent. A short key is guessable.",
    "Set API_SERVER_KEY to a random value of at least 32 characters (openssl rand -hex 32), or disable the API server.",
    `
API_SERVER_ENABLED=true
API_SERVER_KEY=${"${HERMES_API_SERVER_KEY}"}   # 32+ random characters, from a Secret
`,
  ),
  rule(
    "HERMES-API-SERVER-EXPOSED", "high",
    "The API server binds beyond loopback",
    "Seed 004: \"The Hermes API server and dashboard are powerful interfaces. Do not expose either directly to the internet.\"",
    "Bind API_SERVER_HOST to 127.0.0.1 and reach it over a VPN or an SSH tunnel, or put authentication in front.",
    `
API_SERVER_HOST=127.0.0.1
`,
  ),
  rule(
    "HERMES-DASHBOARD-EXPOSED", "high",
    "The dashboard binds beyond loopback without authentication",
    "The dashboard administers the agent: \"Treat the dashboard as private unless you have intentionally placed authentication in front of it\" (seed 004).",
    "Bind the dashboard to 127.0.0.1 (HERMES_DASHBOARD_HOST or --host; HERMES_DASHBOARD=1 alone binds 0.0.0.0:9119), or give it an auth provider (HERMES_DASHBOARD_OAUTH_CLIENT_ID, or HERMES_DASHBOARD_BASIC_AUTH_USERNAME with _PASSWORD_HASH) and never HERMES_DASHBOARD_INSECURE.",
    `
command: ["dashboard", "--host", "127.0.0.1"]
`,
  ),
  rule(
    "HERMES-PRIVATE-URLS", "high",
    "allow_private_urls is on",
    "\"Do not set security.allow_private_urls: true on an internet-facing gateway unless you explicitly accept the risk of prompt-injected URLs reaching private network services\" (seed 004).",
    "Set security.allow_private_urls: false; reach internal services through mcp-guard.",
    `
security:
  allow_private_urls: false
`,
  ),
  rule(
    "HERMES-REDACT-OFF", "high",
    "Secret redaction is off",
    "With redact_secrets: false, tokens that appear in tool output go to the model provider and into logs and sessions.",
    "Set security.redact_secrets: true.",
    `
security:
  redact_secrets: true
`,
  ),
  rule(
    "HERMES-DOCKER-EXTRA-ARGS", "critical",
    "docker_extra_args undo the Docker backend's hardening",
    "The Docker terminal backend drops capabilities and sets no-new-privileges; --privileged, --network host, --cap-add or a socket mount in docker_extra_args give the sandbox back everything it took away.",
    "Remove those arguments from terminal.docker_extra_args.",
    `
terminal:
  backend: docker
  docker_extra_args: []
`,
  ),
  rule(
    "HERMES-FORWARD-PROVIDER-KEYS", "high",
    "Credentials are forwarded into the terminal sandbox",
    "Seed 004: \"Only forward environment variables that the agent truly needs.\" A provider key or bot token forwarded with docker_forward_env is readable by every command the model runs.",
    "Remove credentials from terminal.docker_forward_env.",
    `
terminal:
  docker_forward_env: []
`,
  ),
  rule(
    "HERMES-MCP-LITERAL-TOKEN", "critical",
    "A credential is pasted literally into mcp_servers",
    "Seed 003: \"MCP tokens are ${VAR} references to the Secret — not pasted into config.yaml\". config.yaml is readable by the agent and copied into backups and ConfigMaps.",
    "Write the header as \"Bearer ${VAR}\" and put the value in the environment (Secret or .env); with Perimeter, mcp-guard injects it instead.",
    `
mcp_servers:
  perimeter:
    url: http://mcp-guard.hermes-tools.svc.cluster.local:8700/mcp
    headers:
      Authorization: Bearer ${"${PERIMETER_AGENT_TOKEN}"}
`,
  ),
  rule(
    "HERMES-LOCAL-TERMINAL-PUBLIC-CHAT", "high",
    "Local terminal backend on a gateway that serves chat platforms",
    "With the local backend the agent \"直接擁有與使用者帳號相同的 filesystem access\" (seed 000): a message from a chat platform can become a shell command next to the agent's keys and memories. Seed 000: \"不要: Hermes gateway 裡面直接 shell command\".",
    "Disable Hermes' terminal and code_execution toolsets (agent.disabled_toolsets) and run commands in Perimeter's sandbox through mcp-guard, or use a sandboxed backend (terminal.backend: docker with no extra args).",
    `
# what perimeter render writes: shell and code run only in sandboxes behind mcp-guard
terminal:
  backend: local
agent:
  disabled_toolsets: [code_execution, file, terminal]
# or, without Perimeter's sandbox: terminal: { backend: docker, docker_forward_env: [] }
`,
  ),
  rule(
    "HERMES-PROVIDER-KEY-IN-ENV", "medium",
    "An LLM provider key is in the agent's .env",
    "Secrets in the agent's environment are readable by its child processes (/proc/<pid>/environ). With Perimeter the provider key lives in llm-proxy and the agent holds a revocable virtual key.",
    "Move the key to llm-proxy's environment and point the agent's model.base_url at llm-proxy.",
    `
model:
  provider: custom
  base_url: http://llm-proxy:8702/v1
  api_key: ${"${HERMES_LLM_KEY}"}
`,
  ),
  rule(
    "HERMES-DM-PAIRING", "high",
    "Strangers' DMs are answered with pairing codes",
    "With unauthorized_dm_behavior: pair an unknown user gets a pairing code, and a pairing approved once is admitted past <PLATFORM>_ALLOWED_USERS from then on: the allowlist is no longer the list of who drives the agent (gateway/config.py, gateway/authz_mixin.py).",
    "Set unauthorized_dm_behavior: ignore (globally and in any platforms.<name> block) and add users to the allowlist instead.",
    `
unauthorized_dm_behavior: ignore
`,
  ),
  rule(
    "HERMES-ALLOW-BOTS", "high",
    "Other bots may drive the agent past the user allowlist",
    "DISCORD_ALLOW_BOTS (or FEISHU_ALLOW_BOTS) set to all or mentions admits messages from other bots before the user allowlist is consulted: anyone who can run a bot in a shared server can drive the agent.",
    "Leave DISCORD_ALLOW_BOTS unset (none).",
    `
DISCORD_ALLOW_BOTS=none
`,
  ),
  rule(
    "HERMES-PROXY-BYPASS", "high",
    "The agent's environment sends traffic around the egress proxy",
    "Hermes loads /opt/data/.env over its environment (override=True), so an empty HTTPS_PROXY or NO_PROXY=* there undoes the proxy the container was given: the agent's HTTP clients go direct, and only the network wall is left.",
    "Remove the proxy variables from the .env (Perimeter mounts its own .env read-only) or set them to the egress proxy; list only the perimeter's own services in NO_PROXY.",
    `
HTTPS_PROXY=http://egress-proxy:3128
NO_PROXY=mcp-guard,llm-proxy,localhost,127.0.0.1,::1
`,
  ),
  rule(
    "HERMES-PERIMETER-BYPASS", "high",
    "A feature outside the perimeter stays on while shell and code run in the sandbox",
    "Turning off terminal and code_execution moves commands into Perimeter's sandbox, but Hermes has other ways out on by default: a local Chromium without proxy handling, web, vision, image and TTS tools, cron jobs run by a plain subprocess, cross-platform messaging, kanban workers, PyPI installs at run time, local stdio MCP servers and MCP sampling.",
    "Disable those toolsets in agent.disabled_toolsets, set security.allow_lazy_installs: false and kanban.dispatch_in_gateway: false, give every MCP server sampling: { enabled: false } and reach tools through mcp-guard only.",
    `
agent:
  disabled_toolsets: [browser, code_execution, computer_use, cronjob, file, image_gen, kanban, messaging, terminal, tts, vision, web]
security:
  allow_lazy_installs: false
kanban:
  dispatch_in_gateway: false
mcp_servers:
  perimeter:
    url: http://mcp-guard:8700/mcp
    sampling: { enabled: false }
`,
  ),
  rule(
    "HERMES-UNKNOWN-KEY", "medium",
    "Unknown key in a security section of config.yaml",
    "Hermes ignores keys it does not know, so security.redact_secret: true or approval: { mode: manual } silently leaves the default in force.",
    "Fix the spelling; the finding names the closest known key.",
    `
approvals:
  mode: manual
security:
  redact_secrets: true
`,
  ),
];
