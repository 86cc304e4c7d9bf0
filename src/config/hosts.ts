// Host allow rules, shared by the egress proxy, the sandbox's network allowlist and the config validator.
// A rule is `host[:ports]` where host is an exact name, `*.suffix` (subdomains only) or `.suffix` (apex and
// subdomains). Ports default to 443 alone: plain HTTP must be asked for. Broad patterns are refused here, at load
// time, so that no running service ever holds one.
import { domainToASCII } from "node:url";
import { isIP } from "node:net";
import { getPublicSuffix } from "tldts";

export type HostMatch = "exact" | "subdomains" | "apex-and-subdomains";

export interface HostRule {
  /** The rule as written, for messages and audit records. */
  readonly source: string;
  /** Lower-case ASCII (punycode) name without the wildcard prefix or a trailing dot. */
  readonly host: string;
  readonly match: HostMatch;
  readonly ports: readonly number[];
}

export type HostRuleResult = { ok: true; rule: HostRule } | { ok: false; reason: string };

/** Default port set when a rule names none: HTTPS only. */
export const DEFAULT_PORTS: readonly number[] = [443];

/** Normalises a DNS name: lower case, IDNA to punycode, no trailing dot. Returns undefined when it is not a name. */
export function normalizeHostname(name: string): string | undefined {
  const trimmed = name.trim().replace(/\.$/, "");
  if (trimmed === "" || trimmed.length > 253) return undefined;
  const ascii = domainToASCII(trimmed).toLowerCase();
  if (ascii === "") return undefined;
  const labels = ascii.split(".");
  for (const label of labels) {
    if (!/^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label)) return undefined;
  }
  return ascii;
}

function parsePorts(text: string): number[] | string {
  const ports: number[] = [];
  for (const part of text.split(",")) {
    if (!/^\d{1,5}$/.test(part)) return `"${part}" is not a port number`;
    const port = Number(part);
    if (port < 1 || port > 65535) return `port ${port} is out of range 1-65535`;
    if (!ports.includes(port)) ports.push(port);
  }
  return ports.sort((a, b) => a - b);
}

/**
 * Parses one rule. `ports` given separately (object form in the config) wins over a `:port` suffix.
 * Refuses `*`, a bare TLD, a public suffix (`*.com`, `.co.uk`, `*.github.io`) and IP literals (use allow-cidr).
 */
export function parseHostRule(source: string, ports?: readonly number[]): HostRuleResult {
  let text = source.trim();
  const url = urlRuleSuggestion(text);
  if (url !== undefined) return { ok: false, reason: url };
  let portList: number[] | undefined;
  const colon = text.lastIndexOf(":");
  if (colon !== -1) {
    if (text.startsWith("[") || text.indexOf(":") !== colon) {
      return { ok: false, reason: `"${source}" is an IP literal; allow addresses with an allow-cidr exception, not a host rule` };
    }
    const parsed = parsePorts(text.slice(colon + 1));
    if (typeof parsed === "string") return { ok: false, reason: `${parsed} in "${source}"` };
    portList = parsed;
    text = text.slice(0, colon);
  }
  if (ports !== undefined) portList = [...ports];
  let match: HostMatch = "exact";
  if (text.startsWith("*.")) {
    match = "subdomains";
    text = text.slice(2);
  } else if (text.startsWith(".")) {
    match = "apex-and-subdomains";
    text = text.slice(1);
  }
  if (text === "*" || text === "" || text.includes("*")) {
    return { ok: false, reason: `"${source}" is too broad: name a domain such as api.example.com or *.example.com` };
  }
  if (isIP(text) !== 0) {
    return { ok: false, reason: `"${source}" is an IP literal; allow addresses with an allow-cidr exception, not a host rule` };
  }
  const host = normalizeHostname(text);
  if (host === undefined) return { ok: false, reason: `"${source}" is not a valid host name` };
  if (!host.includes(".") && match !== "exact") {
    return { ok: false, reason: `"${source}" is too broad: ${host} is a top-level domain, so the rule would allow every site under it` };
  }
  if (!host.includes(".")) {
    return { ok: false, reason: `"${source}" is too broad or not a public name: a rule needs at least two labels (example.com)` };
  }
  if (match !== "exact") {
    const suffix = getPublicSuffix(host, { allowPrivateDomains: true });
    if (suffix === host) {
      return { ok: false, reason: `"${source}" is too broad: ${host} is a public suffix, so the rule would allow every site under it` };
    }
  }
  return { ok: true, rule: { source, host, match, ports: portList ?? DEFAULT_PORTS } };
}

/** Whether a rule admits this (already normalised) host, ignoring ports. */
export function ruleMatchesHost(rule: HostRule, host: string): boolean {
  switch (rule.match) {
    case "exact":
      return host === rule.host;
    case "subdomains":
      return host.endsWith(`.${rule.host}`);
    case "apex-and-subdomains":
      return host === rule.host || host.endsWith(`.${rule.host}`);
  }
}

/** Splits `host:port` / `[v6]:port` without breaking IPv6 (never `split(":")`). */
export function splitHostPort(authority: string): { host: string; port: number } | undefined {
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(authority);
  const plain = /^([^:[\]]+):(\d{1,5})$/.exec(authority);
  const found = bracketed ?? plain;
  if (found === null) return undefined;
  const port = Number(found[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (found[1] as string).toLowerCase(), port };
}

/** A pasted URL ("https://api.telegram.org/") is the commonest mistake in a rule; say which rule was meant. */
function urlRuleSuggestion(text: string): string | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return undefined;
  let host: string;
  try {
    const url = new URL(text);
    const port = url.port !== "" ? url.port : url.protocol === "http:" || url.protocol === "ws:" ? "80" : "";
    host = `${url.hostname}${port === "" ? "" : `:${port}`}`;
  } catch {
    return `"${text}" is a URL; a rule names the host alone (host or host:port, e.g. api.example.com)`;
  }
  return `"${text}" is a URL; a rule names the host alone: write "${host}"${host.includes(":") ? "" : " (port 443)"}`;
}
