// Declarations that load but are probably not what the operator meant, or are riskier than they look (issue 14
// item 7). Pure: warnings for render and `perimeter check` to print; refusals belong in the schema instead.
import { parseHostRule, ruleMatchesHost } from "./hosts.ts";
import type { HostRule } from "./hosts.ts";
import type { HostRuleInput, PerimeterConfig } from "./schema.ts";

export function declarationWarnings(config: PerimeterConfig): string[] {
  return [...providerWarnings(config), ...platformWarnings(config), ...toolWarnings(config), ...egressWarnings(config)];
}

function providerWarnings(config: PerimeterConfig): string[] {
  const warnings: string[] = [];
  for (const [name, provider] of Object.entries(config.llm.providers)) {
    // A served model or a private endpoint may well take no key; a public API without one answers 401 on every call.
    if (provider.apiKeySecret !== undefined || provider.serve !== undefined || provider.allowPrivateAddress) continue;
    warnings.push(`llm.providers.${name}: no apiKeySecret, so llm-proxy sends ${provider.baseUrl} no key and every request will be refused; add apiKeySecret: ${suggestedSecret(name)} (the variable llm-proxy reads the key from)`);
  }
  return warnings;
}

function suggestedSecret(provider: string): string {
  return `${provider.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}_API_KEY`;
}

function platformWarnings(config: PerimeterConfig): string[] {
  const telegram = config.agent.platforms.telegram;
  if (telegram === undefined) return [];
  return telegram.allowedUsers
    .filter((user) => !/^\d+$/.test(user))
    .map((user) => `agent.platforms.telegram.allowedUsers: "${user}" is not a numeric user id; a username can change hands, so whoever takes it next drives the agent. Use the numeric id (message @userinfobot to read yours)`);
}

function toolWarnings(config: PerimeterConfig): string[] {
  const warnings: string[] = [];
  for (const [name, server] of Object.entries(config.mcp.servers)) {
    const remote = server.url !== undefined && server.builtin === undefined && server.image === undefined;
    if (!remote || !server.tools.allow.includes("*")) continue;
    warnings.push(`mcp.servers.${name}.tools.allow: "*" on a remote server allows every tool it offers, write tools and any it adds later; list the tools the agent needs (e.g. ["get_*", "list_*", "search_*"]) and put write tools under tools.approve`);
  }
  return warnings;
}

function egressWarnings(config: PerimeterConfig): string[] {
  const rules = config.egress.allow.flatMap((input) => parsed(input));
  const warnings: string[] = [];
  for (const [name, provider] of Object.entries(config.llm.providers)) {
    const host = new URL(provider.baseUrl).hostname.toLowerCase();
    for (const rule of rules) {
      if (!ruleMatchesHost(rule, host)) continue;
      warnings.push(`egress.allow: ${rule.source} is llm.providers.${name}'s host, a path around llm-proxy (its keys, budgets and secret scanning) for the agent; remove it: the agent reaches ${name} through llm-proxy`);
    }
  }
  return warnings;
}

function parsed(input: HostRuleInput): HostRule[] {
  const result = typeof input === "string" ? parseHostRule(input) : parseHostRule(input.host, input.ports);
  return result.ok ? [result.rule] : [];
}
