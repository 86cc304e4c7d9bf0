// What we know about Hermes Agent (DESIGN.md "Hermes Agent facts"): how to recognise the agent in a manifest or a
// compose file, which environment variables are credentials, and the rules that apply to its environment wherever it
// is written (.env, compose environment, a pod's env).
import { isLoopbackHost } from "../shared/index.ts";
import type { Collector, Subject } from "./collector.ts";
import type { Path } from "./yaml-source.ts";

/** `nousresearch/hermes-agent` with any registry in front and any tag or digest. */
const AGENT_IMAGE = /(^|\/)nousresearch\/hermes-agent([:@]|$)/;

export function isAgentImage(image: string | undefined): boolean {
  return image !== undefined && AGENT_IMAGE.test(image);
}

/** `gateway run` as separate arguments or inside a shell string. */
export function runsGateway(words: readonly string[]): boolean {
  for (let index = 0; index < words.length; index++) {
    if (words[index] === "gateway" && words[index + 1] === "run") return true;
    if (/(^|\s)gateway\s+run(\s|$)/.test(words[index] ?? "")) return true;
  }
  return false;
}

export function hasAgentLabels(labels: Record<string, unknown> | undefined): boolean {
  if (labels === undefined) return false;
  return labels["app.kubernetes.io/name"] === "hermes" || labels.app === "hermes";
}

/** LLM provider keys: they belong to llm-proxy, never to the agent's environment. */
const PROVIDER_KEY =
  /^(OPENAI|ANTHROPIC|OPENROUTER|MINIMAX|MINIMAX_CN|GEMINI|GOOGLE|GOOGLE_AI|GROQ|MISTRAL|DEEPSEEK|XAI|TOGETHER|FIREWORKS|COHERE|NOUS|HF|HUGGINGFACE|KIMI|MOONSHOT|ZAI|GLM|DASHSCOPE|AZURE_OPENAI|PERPLEXITY|NVIDIA|CEREBRAS|SAMBANOVA|VOYAGE|ELEVENLABS|NEBIUS|ARCEE|KILOCODE|AI_GATEWAY)_API_KEY$|^(ANTHROPIC_AUTH_TOKEN|HF_TOKEN|AWS_BEARER_TOKEN_BEDROCK)$/;

export function isProviderKey(name: string): boolean {
  return PROVIDER_KEY.test(name);
}

/** Any variable whose name says it holds a credential. */
export function isCredentialName(name: string): boolean {
  return isProviderKey(name) || /(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|PRIVATE_KEY|ACCESS_KEY|_PAT)$/i.test(name) || /_KEY$/.test(name);
}

/** Chat platforms: the variable holding the bot credential and the allowlist variable Hermes reads. */
export const PLATFORMS: ReadonlyArray<{ platform: string; tokens: readonly string[]; allowlist: string }> = [
  { platform: "Telegram", tokens: ["TELEGRAM_BOT_TOKEN"], allowlist: "TELEGRAM_ALLOWED_USERS" },
  { platform: "Discord", tokens: ["DISCORD_BOT_TOKEN"], allowlist: "DISCORD_ALLOWED_USERS" },
  { platform: "Slack", tokens: ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"], allowlist: "SLACK_ALLOWED_USERS" },
  { platform: "WhatsApp", tokens: ["WHATSAPP_ENABLED"], allowlist: "WHATSAPP_ALLOWED_USERS" },
  { platform: "Signal", tokens: ["SIGNAL_ACCOUNT", "SIGNAL_HTTP_URL"], allowlist: "SIGNAL_ALLOWED_USERS" },
  { platform: "Matrix", tokens: ["MATRIX_ACCESS_TOKEN", "MATRIX_PASSWORD"], allowlist: "MATRIX_ALLOWED_USERS" },
  { platform: "Mattermost", tokens: ["MATTERMOST_TOKEN"], allowlist: "MATTERMOST_ALLOWED_USERS" },
  { platform: "Email", tokens: ["EMAIL_PASSWORD"], allowlist: "EMAIL_ALLOWED_USERS" },
];

/**
 * Hermes toolsets that reach the network or act outside the perimeter by themselves (toolsets.py:95 in Hermes
 * 0.18.0; messaging and moa exist in 0.16.0 only). A config that keeps shell and code in Perimeter's sandbox must turn
 * these off too; render/hermes.ts disables the same list (hermes.test.ts holds them equal).
 */
export const PERIMETER_BYPASS_TOOLSETS: readonly string[] = [
  "browser", "computer_use", "cronjob", "discord", "discord_admin", "feishu_doc", "feishu_drive", "homeassistant", "image_gen", "kanban", "messaging",
  "moa", "search", "spotify", "tts", "video", "video_gen", "vision", "web", "x_search", "yuanbao",
];

export function isTruthy(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value.trim());
}

/** A value we cannot see: a compose `${VAR}` interpolation or a reference to a Secret. */
export const UNKNOWN_VALUE = Symbol("unknown value");

export interface EnvEntry {
  readonly name: string;
  /** The literal value, or UNKNOWN_VALUE when it comes from elsewhere (interpolation, Secret, file we cannot read). */
  readonly value: string | typeof UNKNOWN_VALUE;
  readonly subject: Subject;
  readonly path: Path;
}

export interface EnvCheckOptions {
  /** True when every variable the process gets is listed (a .env file, a compose service): absence is meaningful. */
  readonly complete: boolean;
  /** Whether provider keys here are a finding, and under which rule. */
  readonly providerKeyRule?: string;
  /** Where to report something that is missing (no allowlist at all). */
  readonly missingAt?: { subject: Subject; path: Path };
}

const MINIMUM_API_KEY_LENGTH = 32;

/** Hermes' environment rules, wherever the environment is written. */
export function checkHermesEnvironment(entries: readonly EnvEntry[], options: EnvCheckOptions, collector: Collector): void {
  const byName = new Map<string, EnvEntry>();
  for (const entry of entries) byName.set(entry.name, entry);
  const literal = (name: string): string | undefined => {
    const value = byName.get(name)?.value;
    return typeof value === "string" ? value : undefined;
  };
  for (const entry of entries) {
    const value = typeof entry.value === "string" ? entry.value : undefined;
    // gateway/authz_mixin.py:374 (<PLATFORM>_ALLOW_ALL_USERS) and :547 ("*" in any allowlist allows everyone), Hermes 0.18.0.
    if (/(^|_)ALLOW_ALL_USERS$/.test(entry.name) && isTruthy(value)) {
      collector.add("HERMES-ALLOW-ALL-USERS", entry.subject, entry.path, `${entry.name}=${value} lets every user of the platform drive the agent`);
    }
    if (/(^|_)(ALLOWED_USERS|GROUP_ALLOWED_CHATS|GROUP_ALLOWED_USERS)$/.test(entry.name) && value !== undefined && value.split(",").some((item) => item.trim() === "*")) {
      collector.add("HERMES-ALLOW-ALL-USERS", entry.subject, entry.path, `${entry.name}=* lets ${/CHATS$/.test(entry.name) ? "every member of any group chat" : "every user of the platform"} drive the agent`);
    }
    // gateway/authz_mixin.py:333: bots admitted by DISCORD_ALLOW_BOTS / FEISHU_ALLOW_BOTS skip the human allowlist.
    if (/^[A-Z]+_ALLOW_BOTS$/.test(entry.name) && value !== undefined && /^(all|mentions)$/i.test(value.trim())) {
      collector.add("HERMES-ALLOW-BOTS", entry.subject, entry.path, `${entry.name}=${value.trim()} lets other bots (anyone who runs one) drive the agent past the user allowlist`);
    }
    // tools/url_safety.py:210: the variable wins over security.allow_private_urls.
    if (entry.name === "HERMES_ALLOW_PRIVATE_URLS" && isTruthy(value)) {
      collector.add("HERMES-PRIVATE-URLS", entry.subject, entry.path, "HERMES_ALLOW_PRIVATE_URLS lets prompt-injected URLs reach private services, whatever config.yaml says");
    }
    // A .env is loaded over the environment (hermes_cli/env_loader.py:238, override=True): an empty proxy or a
    // NO_PROXY of * there undoes the egress proxy Perimeter set.
    if (/^(HTTPS?_PROXY|https?_proxy|ALL_PROXY|all_proxy)$/.test(entry.name) && value !== undefined && value.trim() === "") {
      collector.add("HERMES-PROXY-BYPASS", entry.subject, entry.path, `${entry.name} is empty: the agent's HTTP clients go direct instead of through the egress proxy`);
    }
    if (/^(NO_PROXY|no_proxy)$/.test(entry.name) && value !== undefined && value.split(",").some((item) => item.trim() === "*")) {
      collector.add("HERMES-PROXY-BYPASS", entry.subject, entry.path, `${entry.name}=* sends every destination around the egress proxy`);
    }
    if (entry.name === "HERMES_YOLO_MODE" && isTruthy(value)) {
      collector.add("HERMES-APPROVALS-OFF", entry.subject, entry.path, "HERMES_YOLO_MODE turns every approval off");
    }
    if (options.providerKeyRule !== undefined && isProviderKey(entry.name)) {
      collector.add(options.providerKeyRule, entry.subject, entry.path, `${entry.name} is in the agent's environment; give it to llm-proxy and the agent a virtual key`);
    }
  }
  const apiServer = byName.get("API_SERVER_ENABLED");
  if (apiServer !== undefined && isTruthy(literal("API_SERVER_ENABLED"))) {
    const key = byName.get("API_SERVER_KEY");
    if (key === undefined) {
      if (options.complete) collector.add("HERMES-API-SERVER-KEY", apiServer.subject, apiServer.path, "API_SERVER_ENABLED is on and API_SERVER_KEY is not set: the API server accepts every request");
    } else if (typeof key.value === "string" && key.value.trim().length < MINIMUM_API_KEY_LENGTH) {
      collector.add(
        "HERMES-API-SERVER-KEY",
        key.subject,
        key.path,
        key.value.trim() === "" ? "API_SERVER_KEY is empty: the API server accepts every request" : `API_SERVER_KEY is ${key.value.trim().length} characters; use at least ${MINIMUM_API_KEY_LENGTH} random characters`,
      );
    }
    const host = byName.get("API_SERVER_HOST");
    if (host !== undefined && typeof host.value === "string" && !isLoopbackHost(host.value)) {
      collector.add("HERMES-API-SERVER-EXPOSED", host.subject, host.path, `API_SERVER_HOST=${host.value} exposes the agent's API beyond loopback`);
    }
  }
  checkDashboardEnvironment(byName, collector);
  if (!options.complete) return;
  for (const { platform, tokens, allowlist } of PLATFORMS) {
    const token = tokens.map((name) => byName.get(name)).find((entry) => entry !== undefined && entry.value !== "");
    if (token === undefined) continue;
    const allowed = byName.get(allowlist);
    if (allowed === undefined || (typeof allowed.value === "string" && allowed.value.trim() === "")) {
      const where = allowed ?? token;
      collector.add("HERMES-PLATFORM-NO-ALLOWLIST", where.subject, where.path, `${platform} is configured (${token.name}) but ${allowlist} is ${allowed === undefined ? "not set" : "empty"}: anyone who finds the bot can drive the agent`);
    }
  }
}

/**
 * The image's dashboard service (docker/s6-rc.d/dashboard/run:9-44 in Hermes 0.18.0) starts when HERMES_DASHBOARD is
 * truthy and binds HERMES_DASHBOARD_HOST, 0.0.0.0 by default. Its auth gate needs a provider: Nous OAuth
 * (HERMES_DASHBOARD_OAUTH_CLIENT_ID, hermes_cli/config.py:1849) or a password (HERMES_DASHBOARD_BASIC_AUTH_USERNAME
 * with _PASSWORD or _PASSWORD_HASH, :1869); HERMES_DASHBOARD_INSECURE drops the gate altogether.
 */
function checkDashboardEnvironment(byName: ReadonlyMap<string, EnvEntry>, collector: Collector): void {
  const literal = (name: string): string | undefined => {
    const value = byName.get(name)?.value;
    return typeof value === "string" ? value : undefined;
  };
  const set = (name: string) => byName.has(name) && literal(name) !== "";
  const enabled = byName.get("HERMES_DASHBOARD");
  const host = byName.get("HERMES_DASHBOARD_HOST");
  const hostValue = host === undefined ? "0.0.0.0" : literal("HERMES_DASHBOARD_HOST");
  const started = enabled !== undefined && isTruthy(literal("HERMES_DASHBOARD"));
  if (!started && host === undefined) return;
  if (hostValue === undefined || isLoopbackHost(hostValue)) return;
  const at = host ?? enabled;
  if (at === undefined) return;
  const insecure = byName.get("HERMES_DASHBOARD_INSECURE");
  if (insecure !== undefined && isTruthy(literal("HERMES_DASHBOARD_INSECURE"))) {
    collector.add("HERMES-DASHBOARD-EXPOSED", insecure.subject, insecure.path, `HERMES_DASHBOARD_INSECURE serves the dashboard on ${hostValue} with no authentication at all`);
    return;
  }
  const provider = set("HERMES_DASHBOARD_OAUTH_CLIENT_ID") || (set("HERMES_DASHBOARD_BASIC_AUTH_USERNAME") && (set("HERMES_DASHBOARD_BASIC_AUTH_PASSWORD") || set("HERMES_DASHBOARD_BASIC_AUTH_PASSWORD_HASH")));
  if (!provider) {
    collector.add(
      "HERMES-DASHBOARD-EXPOSED",
      at.subject,
      at.path,
      `${host === undefined ? "HERMES_DASHBOARD alone binds 0.0.0.0:9119" : `HERMES_DASHBOARD_HOST=${hostValue} serves the dashboard beyond loopback`} with no dashboard auth provider (HERMES_DASHBOARD_OAUTH_CLIENT_ID or HERMES_DASHBOARD_BASIC_AUTH_*)`,
    );
  }
}

/** Words of a command line written as a list or a string, for recognising `gateway run` and dashboard flags. */
export function commandWords(value: unknown): string[] {
  if (typeof value === "string") return value.split(/\s+/).filter((word) => word !== "");
  if (Array.isArray(value)) return value.filter((word): word is string => typeof word === "string");
  return [];
}

/** `dashboard --host 0.0.0.0` (or `--host=...`) in a command line: the host it binds, when not loopback. */
export function exposedDashboardHost(words: readonly string[]): string | undefined {
  const joined = words.join(" ");
  if (!/(^|\s)dashboard(\s|$)/.test(joined)) return undefined;
  const match = /--host(?:=|\s+)(\S+)/.exec(joined);
  if (match === null) return undefined;
  const host = match[1] as string;
  return isLoopbackHost(host) ? undefined : host;
}
