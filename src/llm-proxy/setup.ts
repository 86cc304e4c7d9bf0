// What a configuration gives llm-proxy to serve with: the providers with their keys, the prompt scanner primed with
// every secret value the perimeter holds, the DLP mode. Built at start and on every reload, whole or not at all: a
// reload that fails here leaves the previous runtime in force.
import { placeholdersIn, readSecret, requireSecrets, secretValues } from "../config/index.ts";
import type { Environment, PerimeterConfig, SecretNeed } from "../config/index.ts";
import { MIN_SECRET_LENGTH } from "../dlp/index.ts";
import { PerimeterError } from "../shared/index.ts";
import { createPromptScanner } from "./dlp.ts";
import type { KnownSecret, PromptScanner } from "./dlp.ts";
import type { ConfigClientKey } from "./keys.ts";
import type { LlmSection } from "./routing.ts";
import type { UpstreamProvider } from "./upstream.ts";

/** A configuration the proxy cannot run with, with what to change. */
export class LlmProxySetupError extends PerimeterError {
  constructor(message: string) {
    super("config", message);
    this.name = "LlmProxySetupError";
  }
}

/** The part of the configuration requests read, replaced whole on reload. */
export interface LlmRuntime {
  readonly config: PerimeterConfig;
  readonly llm: LlmSection;
  readonly providers: ReadonlyMap<string, UpstreamProvider>;
  readonly scanner: PromptScanner;
  readonly dlpMode: "redact" | "block";
}

/** Every secret name the configuration references, labelled by what it is (names are safe to log; values never). */
export function referencedSecrets(config: PerimeterConfig): Array<{ name: string; label: string }> {
  const names: Array<{ name: string; label: string }> = [];
  const add = (name: string | undefined, label: string) => {
    if (name !== undefined) names.push({ name, label: `${label} ${name}` });
  };
  for (const provider of Object.values(config.llm.providers)) add(provider.apiKeySecret, "provider key");
  for (const client of config.llm.clients) add(client.keySecret, "client key");
  for (const canary of config.llm.canaries) add(canary, "canary");
  for (const platform of Object.values(config.agent.platforms)) {
    add(platform?.tokenSecret, "secret");
    for (const extra of platform?.extraSecrets ?? []) add(extra, "secret");
  }
  add(config.agent.apiServer.keySecret, "secret");
  add(config.mcp.admin.tokenSecret, "secret");
  for (const agent of config.mcp.agents) add(agent.tokenSecret, "secret");
  for (const server of Object.values(config.mcp.servers)) {
    for (const name of server.secrets) add(name, "secret");
    for (const value of [...Object.values(server.headers), ...Object.values(server.env)]) for (const name of placeholdersIn(value)) add(name, "secret");
  }
  add(config.sandbox.tokenSecret, "secret");
  add(config.audit.feedTokenSecret, "secret");
  for (const client of config.egress.clients) add(client.tokenSecret, "secret");
  return names;
}

/** Every variable the `llm` section names. */
export function llmSecretNeeds(config: PerimeterConfig): SecretNeed[] {
  return [
    ...Object.entries(config.llm.providers).flatMap(([name, provider]) => (provider.apiKeySecret === undefined ? [] : [{ name: provider.apiKeySecret, usedFor: `llm-proxy provider ${name}` }])),
    ...config.llm.canaries.map((canary) => ({ name: canary, usedFor: "llm-proxy (llm.canaries)" })),
    ...config.llm.clients.map((client) => ({ name: client.keySecret, usedFor: `llm-proxy client ${client.name}` })),
  ];
}

/** Validates the `llm` section against the environment and builds what requests need. Throws on any problem. */
export function buildRuntime(config: PerimeterConfig, environment: Environment): LlmRuntime {
  // A failover to a provider of the other kind is valid: chat completions and messages are translated (translate.ts).
  // Every unset variable in one error, so the operator fixes them in one round rather than one per failed start.
  requireSecrets(environment, llmSecretNeeds(config));
  const providers = new Map<string, UpstreamProvider>();
  for (const [name, provider] of Object.entries(config.llm.providers)) {
    const apiKey = provider.apiKeySecret === undefined ? undefined : readSecret(environment, provider.apiKeySecret, `llm-proxy provider ${name}`);
    providers.set(name, { name, config: provider, apiKey });
  }
  // A canary the proxy cannot see is a protection silently switched off: refuse to start instead.
  for (const canary of config.llm.canaries) {
    // The scanner ignores values this short (they would match ordinary words), so such a canary would guard nothing.
    if (readSecret(environment, canary, "llm-proxy (llm.canaries)").length < MIN_SECRET_LENGTH) {
      throw new LlmProxySetupError(`llm.canaries: the value of ${canary} is too short to be recognised; a canary needs at least ${MIN_SECRET_LENGTH} characters (plant a random one, e.g. openssl rand -hex 16)`);
    }
  }
  for (const client of config.llm.clients) readSecret(environment, client.keySecret, `llm-proxy client ${client.name}`);
  const known: KnownSecret[] = [];
  const seen = new Set<string>();
  for (const { name, label } of referencedSecrets(config)) {
    if (seen.has(name)) continue;
    seen.add(name);
    for (const value of secretValues(environment, [name])) known.push({ label, value });
  }
  return { config, llm: config.llm, providers, scanner: createPromptScanner(known), dlpMode: config.llm.dlp.mode };
}

/** The `llm.clients` keys with their values, for the key store. */
export function configClientKeys(config: PerimeterConfig, environment: Environment): ConfigClientKey[] {
  return config.llm.clients.map((client) => ({
    name: client.name,
    value: readSecret(environment, client.keySecret, `llm-proxy client ${client.name}`),
    policy: { models: client.models, limits: client.limits, budget: client.budget },
  }));
}
