// Which provider and model a request goes to, and whether a virtual key may use it. Pure functions over the `llm`
// section: no I/O, so every rule is tested directly.
import { modelsGrantedBy, ownersOfModel } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import type { Translation } from "./translate.ts";
import type { Route } from "./usage.ts";

export type LlmSection = PerimeterConfig["llm"];

export type GlobMatcher = (pattern: string, value: string) => boolean;

/**
 * The same `*`/`?` semantics as config's globMatches, compiled once per pattern: allowlists are checked on every
 * request, and building a RegExp each time showed in profiles. Each proxy owns one matcher (and its cache).
 */
export function createGlobMatcher(): GlobMatcher {
  const compiledGlobs = new Map<string, RegExp>();
  return (pattern, value) => {
    let compiled = compiledGlobs.get(pattern);
    if (compiled === undefined) {
      compiled = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s");
      if (compiledGlobs.size < 10_000) compiledGlobs.set(pattern, compiled);
    }
    return compiled.test(value);
  };
}
export type ProviderKind = "openai" | "anthropic";

export interface ModelTarget {
  readonly provider: string;
  readonly model: string;
}

export type ModelResolution =
  | { ok: true; target: ModelTarget; requested: string; alias?: string }
  | { ok: false; reason: string };

/** `provider/model`: the provider is the part before the first slash (model names may contain slashes). */
export function splitModelReference(reference: string): ModelTarget | undefined {
  const slash = reference.indexOf("/");
  if (slash <= 0 || slash === reference.length - 1) return undefined;
  return { provider: reference.slice(0, slash), model: reference.slice(slash + 1) };
}

export function targetId(target: ModelTarget): string {
  return `${target.provider}/${target.model}`;
}

function aliasTarget(llm: LlmSection, name: string): string | undefined {
  if (Object.hasOwn(llm.aliases, name)) return llm.aliases[name];
  if (name === "default") return llm.default;
  return undefined;
}

/**
 * Resolves what the agent wrote in `model`: an alias (`default` → llm.default, llm.aliases), `provider/model`, or a
 * bare model name that exactly one provider lists. A model a provider does not list is refused rather than guessed.
 */
export function resolveModel(llm: LlmSection, requested: string): ModelResolution {
  const aliased = aliasTarget(llm, requested);
  if (aliased !== undefined) {
    const target = splitModelReference(aliased);
    if (target === undefined) return { ok: false, reason: `alias "${requested}" points at "${aliased}", which is not provider/model` };
    return { ok: true, target, requested, alias: requested };
  }
  if (requested === "default") {
    return { ok: false, reason: `model "default" is not configured: set llm.default to provider/model` };
  }
  const split = splitModelReference(requested);
  if (split !== undefined && Object.hasOwn(llm.providers, split.provider)) {
    const provider = llm.providers[split.provider];
    if (provider !== undefined && provider.models.includes(split.model)) return { ok: true, target: split, requested };
    return { ok: false, reason: `provider ${split.provider} does not serve "${split.model}" (it lists ${provider?.models.join(", ")})` };
  }
  const owners = Object.entries(llm.providers).filter(([, provider]) => provider.models.includes(requested));
  if (owners.length === 1) {
    const [name] = owners[0] as [string, unknown];
    return { ok: true, target: { provider: name, model: requested }, requested };
  }
  if (owners.length > 1) {
    return { ok: false, reason: `model "${requested}" is served by several providers (${owners.map(([name]) => name).join(", ")}): write provider/model` };
  }
  const known = listModelIds(llm);
  return { ok: false, reason: `unknown model "${requested}"; use provider/model or an alias (${known.slice(0, 10).join(", ") || "no providers configured"})` };
}

/** Every `provider/model` the configuration serves, in config order. */
export function listModelIds(llm: LlmSection): string[] {
  return Object.entries(llm.providers).flatMap(([name, provider]) => provider.models.map((model) => `${name}/${model}`));
}

/** Every alias name with its target, `default` included when configured. */
export function listAliases(llm: LlmSection): Array<{ alias: string; target: string }> {
  const aliases = Object.entries(llm.aliases).map(([alias, target]) => ({ alias, target }));
  if (llm.default !== undefined && !Object.hasOwn(llm.aliases, "default")) aliases.unshift({ alias: "default", target: llm.default });
  return aliases;
}

/**
 * A key's allowlist entry grants a model when it is a glob over `provider/model`, or an alias naming it (so granting
 * `default` grants whatever `default` points at, under either name).
 */
export function modelAllowed(llm: LlmSection, patterns: readonly string[], resolution: { target: ModelTarget; alias?: string }, globMatches: GlobMatcher = createGlobMatcher()): boolean {
  const id = targetId(resolution.target);
  for (const pattern of patterns) {
    if (resolution.alias !== undefined && pattern === resolution.alias) return true;
    const aliased = aliasTarget(llm, pattern);
    if (aliased !== undefined) {
      if (aliased === id) return true;
      continue;
    }
    if (globMatches(pattern, id)) return true;
    // A bare model name grants what a request naming it resolves to: the one provider listing it (none if several).
    if (pattern === resolution.target.model && !pattern.includes("/")) {
      const owners = ownersOfModel(llm, pattern);
      if (owners.length === 1 && owners[0] === resolution.target.provider) return true;
    }
  }
  return false;
}

/** Whether an allowlist entry names anything at all (for `llm-keys create --models`). */
export function patternMatchesSomething(llm: LlmSection, pattern: string): boolean {
  return modelsGrantedBy(llm, pattern).length > 0;
}

/**
 * The providers to try in order: the chosen one, then its `failoverTo` chain (cycles cut, at most 4). On failover the
 * same model name is used when the next provider lists it, otherwise that provider's first model.
 */
export function failoverChain(llm: LlmSection, first: ModelTarget): ModelTarget[] {
  const chain: ModelTarget[] = [first];
  const seen = new Set([first.provider]);
  let current = llm.providers[first.provider];
  while (current?.failoverTo !== undefined && chain.length < 4 && !seen.has(current.failoverTo)) {
    const name = current.failoverTo;
    const next = llm.providers[name];
    if (next === undefined) break;
    seen.add(name);
    chain.push({ provider: name, model: next.models.includes(first.model) ? first.model : (next.models[0] as string) });
    current = next;
  }
  return chain;
}

/**
 * How a request on `route` reaches a provider of `kind`: the path below its base URL, and the translation between
 * wire formats when the agent and the provider speak different ones (chat completions <-> messages, both ways).
 * The Responses and embeddings APIs have no Anthropic counterpart.
 */
export type WirePlan =
  | { ok: true; upstreamPath: string; translation: Translation | undefined }
  | { ok: false; reason: string };

export function planWire(route: Route, kind: ProviderKind): WirePlan {
  if (kind === "openai") {
    if (route === "messages") return { ok: true, upstreamPath: "/chat/completions", translation: "messages-to-chat" };
    return { ok: true, upstreamPath: route === "chat-completions" ? "/chat/completions" : `/${route}`, translation: undefined };
  }
  if (route === "messages") return { ok: true, upstreamPath: "/messages", translation: undefined };
  if (route === "chat-completions") return { ok: true, upstreamPath: "/messages", translation: "chat-to-messages" };
  return { ok: false, reason: `/v1/${route} has no Anthropic counterpart; call POST /v1/chat/completions or /v1/messages for a model of an anthropic provider` };
}
