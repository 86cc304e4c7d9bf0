// What a model allowlist entry of the llm section grants, and which of those providers have no price. One reading
// for the schema (llm.clients), `perimeter llm-keys create` and llm-proxy, so that what a key may use, what it can be
// charged for and what a request may name cannot drift apart.

/** The parts of the llm section these rules read (structural, so the schema can call them on its own output). */
export interface LlmModelSection {
  readonly providers: Readonly<Record<string, { readonly models: readonly string[]; readonly failoverTo?: string | undefined; readonly costPer1kTokens?: unknown }>>;
  readonly aliases: Readonly<Record<string, string>>;
  readonly default?: string | undefined;
}

export interface GrantedModel {
  readonly provider: string;
  readonly model: string;
}

function globExpression(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s");
}

/** The target of an alias name (`default` is llm.default unless an alias of that name exists). */
export function aliasTargetOf(llm: LlmModelSection, name: string): string | undefined {
  if (Object.hasOwn(llm.aliases, name)) return llm.aliases[name];
  if (name === "default") return llm.default;
  return undefined;
}

/** The providers listing a bare model name: exactly one owner makes the name usable without its provider. */
export function ownersOfModel(llm: LlmModelSection, model: string): string[] {
  return Object.entries(llm.providers)
    .filter(([, provider]) => provider.models.includes(model))
    .map(([name]) => name);
}

/**
 * The models an allowlist entry grants: an alias grants its target; otherwise a `*`/`?` glob over provider/model;
 * a bare model name (no `/`) that exactly one provider lists grants that model, as a request may name it so.
 */
export function modelsGrantedBy(llm: LlmModelSection, pattern: string): GrantedModel[] {
  const aliased = aliasTargetOf(llm, pattern);
  if (aliased !== undefined) {
    const slash = aliased.indexOf("/");
    const target = { provider: aliased.slice(0, slash), model: aliased.slice(slash + 1) };
    return slash > 0 && llm.providers[target.provider]?.models.includes(target.model) === true ? [target] : [];
  }
  const expression = globExpression(pattern);
  const granted = Object.entries(llm.providers).flatMap(([provider, entry]) => entry.models.filter((model) => expression.test(`${provider}/${model}`)).map((model) => ({ provider, model })));
  if (granted.length > 0 || pattern.includes("/")) return granted;
  const owners = ownersOfModel(llm, pattern);
  return owners.length === 1 ? [{ provider: owners[0] as string, model: pattern }] : [];
}

export interface UnpricedProvider {
  readonly provider: string;
  /** Set when the provider is reached only as a failover: the provider it stands in for. */
  readonly failoverOf?: string;
}

/**
 * The providers a key with these allowlist entries may end up being served by — the granted models' providers and
 * every provider of their failover chains — that have no `costPer1kTokens`. A cost budget over such a provider could
 * never count what it spends there, so it must be refused.
 */
export function unpricedProvidersFor(llm: LlmModelSection, patterns: readonly string[]): UnpricedProvider[] {
  const reached = new Map<string, string | undefined>();
  for (const pattern of patterns) {
    for (const { provider } of modelsGrantedBy(llm, pattern)) {
      if (reached.has(provider) && reached.get(provider) === undefined) continue;
      reached.set(provider, undefined);
      let current = provider;
      for (let next = llm.providers[current]?.failoverTo; next !== undefined && next !== provider; next = llm.providers[current]?.failoverTo) {
        if (llm.providers[next] === undefined || reached.has(next)) break;
        reached.set(next, provider);
        current = next;
      }
    }
  }
  return [...reached]
    .filter(([provider]) => llm.providers[provider] !== undefined && llm.providers[provider]?.costPer1kTokens === undefined)
    .map(([provider, failoverOf]) => (failoverOf === undefined ? { provider } : { provider, failoverOf }));
}

/** "provider free has no price (failover of chained)", for messages. */
export function describeUnpriced(unpriced: readonly UnpricedProvider[]): string {
  return unpriced.map(({ provider, failoverOf }) => `provider ${provider} has no price${failoverOf === undefined ? "" : ` (failover of ${failoverOf})`}`).join("; ");
}

/** How to fix it, naming the first unpriced provider's setting. */
export function pricingFix(unpriced: readonly UnpricedProvider[]): string {
  const names = unpriced.map(({ provider }) => `llm.providers.${provider}.costPer1kTokens: { input, output }`);
  return `set ${names.join(" and ")} (the price per 1,000 tokens, in the budget's currency)`;
}
