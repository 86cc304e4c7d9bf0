// The egress policy: what callers hand to the proxy (plain data, from perimeter.yaml, the command line or the sandbox
// runner) and the compiled form the decision function reads. Compiling validates everything up front and throws a
// PolicyError naming each problem, so that a running proxy never holds a half-valid policy: a reload either swaps in a
// whole new policy or keeps the old one.
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { parseHostRule, readSecret, requireSecrets } from "../config/index.ts";
import { PerimeterError } from "../shared/errors.ts";
import type { EgressConfig, Environment, HostRule, HostRuleInput, SecretNeed } from "../config/index.ts";

/** One allow rule as a caller may write it: `host[:ports]`, an already parsed HostRule, or the config's object form. */
export type RuleInput =
  | string
  | HostRule
  | { readonly host: string; readonly ports?: readonly number[]; readonly allowCidr?: readonly string[]; readonly requireSni?: boolean };

export interface ClientInput {
  /** Shown in audit records, metrics and denials. */
  readonly name: string;
  /** Proxy-Authorization token (Bearer, or the password of Basic). Compared as a SHA-256 hash in constant time. */
  readonly token?: string;
  /** Source addresses or CIDRs that identify this client when it sends no credentials. */
  readonly sources?: readonly string[];
  /** This client's own rules, on top of the global list. */
  readonly allow?: readonly RuleInput[];
  /** Deny-set exceptions for every rule of this client (in addition to each rule's own allowCidr). */
  readonly allowCidrs?: readonly string[];
}

export interface EgressLimits {
  /** Concurrent CONNECT tunnels one client may hold; the next gets 503. @default 256 */
  readonly tunnelsPerClient: number;
  /** Concurrent tunnels for all clients together. @default 4096 */
  readonly tunnelsTotal: number;
  /** Sustained requests (CONNECTs and plain HTTP requests) per second per client; bursts up to the same number. @default 50 */
  readonly requestsPerSecondPerClient: number;
  /** A connection or tunnel with no traffic either way for this long is closed. @default 300 */
  readonly idleTimeoutSeconds: number;
  /** Time a client has to send a complete request head, and the TLS ClientHello on a CONNECT to 443 (slowloris). @default 10 */
  readonly headerTimeoutSeconds: number;
  /** Largest request head accepted (431 beyond). Applies to listeners opened after the change. @default 16384 */
  readonly maxHeaderBytes: number;
  /** A tunnel (or one plain HTTP exchange) is closed after this long whatever it is doing. @default 3600 */
  readonly tunnelLifetimeSeconds: number;
  /** Give up dialling an upstream after this long (504). @default 10 */
  readonly connectTimeoutSeconds: number;
}

export const DEFAULT_LIMITS: EgressLimits = {
  tunnelsPerClient: 256,
  tunnelsTotal: 4096,
  requestsPerSecondPerClient: 50,
  idleTimeoutSeconds: 300,
  headerTimeoutSeconds: 10,
  maxHeaderBytes: 16384,
  tunnelLifetimeSeconds: 3600,
  connectTimeoutSeconds: 10,
};

export interface EgressPolicyInput {
  /** Rules for every client. */
  readonly allow?: readonly RuleInput[];
  /** Deny-set exceptions applied to every rule (the command line's --allow-cidr). */
  readonly allowCidrs?: readonly string[];
  readonly clients?: readonly ClientInput[];
  /** What a client that no entry identifies gets: nothing, or the global list. @default "deny" */
  readonly unknownClients?: "deny" | "global";
  readonly limits?: Partial<EgressLimits>;
  /**
   * Commit each decision to the audit log before anything of the request reaches the origin. Otherwise the request
   * goes out while its record commits (in the same event-loop turn) and the answer is held until it has.
   * @default false
   */
  readonly auditBeforeForwarding?: boolean;
}

/** A host rule with everything the proxy needs to act on it. */
export interface PolicyRule extends HostRule {
  /** The only ranges of the SSRF deny set this rule may reach. */
  readonly allowCidrs: readonly string[];
  /** CONNECT to 443 must carry a TLS SNI equal to the CONNECT host. */
  readonly requireSni: boolean;
}

export interface PolicyClient {
  readonly name: string;
  /** SHA-256 of the token; never the token itself. */
  readonly tokenHash: Buffer | undefined;
  readonly sources: readonly string[];
  readonly rules: readonly PolicyRule[];
}

export interface EgressPolicy {
  readonly rules: readonly PolicyRule[];
  readonly clients: readonly PolicyClient[];
  readonly unknownClients: "deny" | "global";
  readonly limits: EgressLimits;
  readonly auditBeforeForwarding: boolean;
}

/** An egress policy that does not compile, with every problem found (a config or flag mistake: exit 2). */
export class PolicyError extends PerimeterError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super("config", `invalid egress policy:\n  ${problems.join("\n  ")}`);
    this.problems = problems;
  }
}

export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128). Returns the canonical CIDR or a reason. */
export function normalizeCidr(text: string): { ok: true; cidr: string } | { ok: false; reason: string } {
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = isIP(address);
  const max = family === 4 ? 32 : 128;
  const bits = slash === -1 ? String(max) : text.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > max) {
    return { ok: false, reason: `"${text}" is not a CIDR block (write 10.43.0.0/16 or fd00::/8)` };
  }
  return { ok: true, cidr: `${address}/${Number(bits)}` };
}

function compileCidrs(list: readonly string[] | undefined, where: string, problems: string[]): string[] {
  const result: string[] = [];
  for (const entry of list ?? []) {
    const parsed = normalizeCidr(entry);
    if (parsed.ok) result.push(parsed.cidr);
    else problems.push(`${where}: ${parsed.reason}`);
  }
  return result;
}

function isHostRule(rule: RuleInput): rule is HostRule {
  return typeof rule === "object" && "match" in rule && "source" in rule;
}

function compileRule(rule: RuleInput, inherited: readonly string[], where: string, problems: string[]): PolicyRule | undefined {
  if (isHostRule(rule)) {
    // Re-parse rather than trust: a HostRule built by hand could hold a broad pattern.
    const parsed = parseHostRule(`${rule.match === "subdomains" ? "*." : rule.match === "apex-and-subdomains" ? "." : ""}${rule.host}`, rule.ports);
    if (!parsed.ok) {
      problems.push(`${where}: ${parsed.reason}`);
      return undefined;
    }
    return { ...parsed.rule, source: rule.source, allowCidrs: [...inherited], requireSni: true };
  }
  const text = typeof rule === "string" ? rule : rule.host;
  const parsed = parseHostRule(text, typeof rule === "string" ? undefined : rule.ports);
  if (!parsed.ok) {
    problems.push(`${where}: ${parsed.reason}`);
    return undefined;
  }
  const own = typeof rule === "string" ? [] : compileCidrs(rule.allowCidr, `${where} allowCidr`, problems);
  const requireSni = typeof rule === "string" ? true : rule.requireSni !== false;
  return { ...parsed.rule, allowCidrs: [...new Set([...inherited, ...own])], requireSni };
}

function compileLimits(input: Partial<EgressLimits> | undefined, problems: string[]): EgressLimits {
  const limits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(input ?? {}) as Array<[keyof EgressLimits, unknown]>) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) {
      problems.push(`limits.${key}: unknown limit (known: ${Object.keys(DEFAULT_LIMITS).join(", ")})`);
    } else if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      problems.push(`limits.${key}: must be a positive number`);
    } else {
      limits[key] = value;
    }
  }
  return limits;
}

/** Validates and compiles one client; problems are appended, undefined when the client is unusable. */
export function compileClient(client: ClientInput, globalCidrs: readonly string[], problems: string[]): PolicyClient | undefined {
  const before = problems.length;
  const where = `client "${client.name}"`;
  if (typeof client.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(client.name)) {
    problems.push(`${where}: a client name is 1-100 letters, digits, '.', '_' or '-'`);
  }
  if (client.name === "unknown") {
    problems.push(`${where}: "unknown" is what the proxy calls unidentified clients in its records, limits and pools; choose another name`);
  }
  if (client.token !== undefined && (typeof client.token !== "string" || client.token.length < 16)) {
    problems.push(`${where}: a token must be at least 16 characters (generate one with: openssl rand -hex 32)`);
  }
  const sources = compileCidrs(client.sources, `${where} sources`, problems);
  if (client.token === undefined && sources.length === 0) {
    problems.push(`${where}: give it a token (Proxy-Authorization) or sources (CIDRs), or nothing can identify it`);
  }
  const cidrs = [...globalCidrs, ...compileCidrs(client.allowCidrs, `${where} allowCidrs`, problems)];
  const rules: PolicyRule[] = [];
  (client.allow ?? []).forEach((rule, index) => {
    const compiled = compileRule(rule, cidrs, `${where} allow[${index}]`, problems);
    if (compiled !== undefined) rules.push(compiled);
  });
  if (problems.length > before) return undefined;
  return { name: client.name, tokenHash: client.token === undefined ? undefined : hashToken(client.token), sources, rules };
}

/** Problems that only show when clients are seen together: duplicate names or tokens. */
export function clientConflicts(clients: readonly PolicyClient[]): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  const hashes = new Set<string>();
  for (const client of clients) {
    if (names.has(client.name)) problems.push(`client "${client.name}" is defined twice: client names must be unique`);
    names.add(client.name);
    if (client.tokenHash !== undefined) {
      const key = client.tokenHash.toString("hex");
      // The message names the client, never the token.
      if (hashes.has(key)) problems.push(`client "${client.name}" has the same token as another client: give each client its own token`);
      hashes.add(key);
    }
  }
  return problems;
}

/** Validates and compiles a whole policy; throws PolicyError listing every problem. */
export function compilePolicy(input: EgressPolicyInput): EgressPolicy {
  const problems: string[] = [];
  const globalCidrs = compileCidrs(input.allowCidrs, "allowCidrs", problems);
  const rules: PolicyRule[] = [];
  (input.allow ?? []).forEach((rule, index) => {
    const compiled = compileRule(rule, globalCidrs, `allow[${index}]`, problems);
    if (compiled !== undefined) rules.push(compiled);
  });
  const clients: PolicyClient[] = [];
  for (const client of input.clients ?? []) {
    const compiled = compileClient(client, globalCidrs, problems);
    if (compiled !== undefined) clients.push(compiled);
  }
  problems.push(...clientConflicts(clients));
  const unknownClients = input.unknownClients ?? "deny";
  if (unknownClients !== "deny" && unknownClients !== "global") problems.push(`unknownClients must be "deny" or "global"`);
  const limits = compileLimits(input.limits, problems);
  const auditBeforeForwarding = input.auditBeforeForwarding ?? false;
  if (typeof auditBeforeForwarding !== "boolean") problems.push("auditBeforeForwarding must be true or false");
  if (problems.length > 0) throw new PolicyError(problems);
  return { rules, clients, unknownClients, limits, auditBeforeForwarding };
}

/** The environment variables the egress section names: one token per client that has one. */
export function egressSecretNeeds(egress: EgressConfig): SecretNeed[] {
  return egress.clients.flatMap((client) => (client.tokenSecret === undefined ? [] : [{ name: client.tokenSecret, usedFor: `egress client "${client.name}"` }]));
}

function ruleFromConfig(rule: HostRuleInput): RuleInput {
  return typeof rule === "string" ? rule : { host: rule.host, ports: rule.ports, allowCidr: rule.allowCidr, requireSni: rule.requireSni };
}

/**
 * The policy input for perimeter.yaml's `egress` section. Client tokens are read from the environment variables the
 * config names (a missing one throws MissingSecretError, naming the variable). `allowCidrs` are extra exceptions for
 * every rule (the command line's --allow-cidr); `allow` extra global rules (--allow).
 *
 * With no clients defined, every client is unidentified, and `unknownClients: deny` would make the proxy refuse
 * everything: the global list then applies to every client that can reach the proxy (the rendered network policy
 * decides who can), and `notes` says so for the operator's log.
 */
export function policyFromConfig(
  egress: EgressConfig,
  environment: Environment,
  extra: { allow?: readonly string[]; allowCidrs?: readonly string[]; auditBeforeForwarding?: boolean } = {},
): { policy: EgressPolicyInput; notes: string[] } {
  const notes: string[] = [];
  requireSecrets(environment, egressSecretNeeds(egress));
  const clients: ClientInput[] = egress.clients.map((client) => ({
    name: client.name,
    token: client.tokenSecret === undefined ? undefined : readSecret(environment, client.tokenSecret, `egress client "${client.name}"`),
    sources: client.sources,
    allow: client.allow.map(ruleFromConfig),
  }));
  let unknownClients = egress.unknownClients;
  if (clients.length === 0 && unknownClients === "deny") {
    unknownClients = "global";
    notes.push("no egress clients are defined: every client that can reach the proxy gets the global allowlist");
  }
  return {
    policy: {
      allow: [...egress.allow.map(ruleFromConfig), ...(extra.allow ?? [])],
      allowCidrs: extra.allowCidrs,
      clients,
      unknownClients,
      limits: { ...egress.limits },
      auditBeforeForwarding: extra.auditBeforeForwarding ?? egress.auditBeforeForwarding,
    },
    notes,
  };
}
