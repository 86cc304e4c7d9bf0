// The policy decision, a pure function: who is asking (Proxy-Authorization or source address), and may they reach
// this host and port. No DNS, no sockets, no clocks: the server adds what needs them (the SSRF check of resolved
// addresses, rate and tunnel limits, the TLS SNI check) and maps every outcome to a response.
import { timingSafeEqual } from "node:crypto";
import { normalizeHostname, ruleMatchesHost } from "../config/index.ts";
import { checkAddress, cidrContains, embeddedIpv4, parseIpLiteral } from "../net/index.ts";
import { hashToken } from "./policy.ts";
import type { EgressPolicy, PolicyClient, PolicyRule } from "./policy.ts";

export interface EgressRequest {
  /** A CONNECT tunnel or a plain (absolute-form) HTTP request. */
  readonly kind: "connect" | "http";
  /** The host as the client wrote it (CONNECT authority or URL host), brackets removed for IPv6. */
  readonly host: string;
  readonly port: number;
  /** The client's address as the socket reports it. */
  readonly sourceAddress: string;
  /** The Proxy-Authorization header, if any. */
  readonly proxyAuthorization?: string | undefined;
}

/** Every reason a request is refused before any upstream is contacted. */
export type EgressDenyReason =
  | "not-allowlisted"
  | "port-not-allowed"
  | "private-address"
  | "unknown-client"
  | "bad-credentials"
  | "invalid-host";

export type ClientIdentity =
  | { readonly kind: "client"; readonly client: PolicyClient; readonly by: "token" | "source" }
  | { readonly kind: "unknown" }
  | { readonly kind: "bad-credentials"; readonly detail: string };

export type EgressDecision =
  | {
      readonly allow: true;
      /** Client name, or `unknown` for a client under the default policy. */
      readonly client: string;
      /** Normalised (lower-case ASCII) host. */
      readonly host: string;
      readonly port: number;
      /** Sources of the rules that admitted the request. */
      readonly rules: readonly string[];
      /** Deny-set exceptions of those rules: the only private ranges the resolved address may fall in. */
      readonly allowCidrs: readonly string[];
      readonly requireSni: boolean;
    }
  | {
      readonly allow: false;
      readonly client: string;
      readonly host: string;
      readonly port: number;
      readonly reason: EgressDenyReason;
      /** One line for the client: what was refused and what to add to the allowlist. */
      readonly message: string;
    };

/** The token a Proxy-Authorization header carries: Bearer TOKEN, or Basic with the token as password (or user). */
export function credentialsToken(header: string): string | undefined {
  const match = /^\s*(basic|bearer)\s+(\S+)\s*$/i.exec(header);
  if (match === null) return undefined;
  const scheme = (match[1] as string).toLowerCase();
  const value = match[2] as string;
  if (scheme === "bearer") return value;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return undefined;
  const decoded = Buffer.from(value, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon === -1) return decoded === "" ? undefined : decoded;
  const password = decoded.slice(colon + 1);
  return password !== "" ? password : decoded.slice(0, colon) || undefined;
}

/**
 * Who is asking. Credentials win over the source address; credentials that match no client are an error rather
 * than a fall back to the default policy, so a mistyped token gets a clear answer. Every client's hash is compared
 * (no early exit) so the time taken says nothing about which client, if any, nearly matched.
 */
export function identifyClient(request: Pick<EgressRequest, "sourceAddress" | "proxyAuthorization">, clients: readonly PolicyClient[]): ClientIdentity {
  if (request.proxyAuthorization !== undefined) {
    const token = credentialsToken(request.proxyAuthorization);
    if (token === undefined) return { kind: "bad-credentials", detail: "Proxy-Authorization must be Basic (token as password) or Bearer TOKEN" };
    const presented = hashToken(token);
    let found: PolicyClient | undefined;
    for (const client of clients) {
      if (client.tokenHash !== undefined && timingSafeEqual(presented, client.tokenHash) && found === undefined) found = client;
    }
    if (found === undefined) return { kind: "bad-credentials", detail: "the Proxy-Authorization token matches no client" };
    return { kind: "client", client: found, by: "token" };
  }
  // Parsed only when some client is identified by source: this runs for every request.
  let source = clients.some((client) => client.sources.length > 0) ? parseIpLiteral(request.sourceAddress)?.address : undefined;
  // A listener on [::] reports IPv4 clients as ::ffff:a.b.c.d; they are the IPv4 address for source rules.
  if (source?.startsWith("0:0:0:0:0:ffff:") === true) source = embeddedIpv4(source) ?? source;
  if (source !== undefined) {
    for (const client of clients) {
      if (client.sources.some((cidr) => cidrContains(cidr, source))) return { kind: "client", client, by: "source" };
    }
  }
  return { kind: "unknown" };
}

/** Names normalizeHostname would return unchanged: valid lower-case labels, no trailing dot, no xn-- label. */
const ALREADY_NORMAL = /^(?=.{1,253}$)(?!(?:.*\.)?xn--)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

function formatAuthority(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Decides one request against a policy. Pure: same input, same answer. */
export function decide(request: EgressRequest, policy: EgressPolicy): EgressDecision {
  const identity = identifyClient(request, policy.clients);
  const clientName = identity.kind === "client" ? identity.client.name : "unknown";
  // Messages are built only on the refusing paths: this runs for every request.
  const refused = () => `${request.kind === "connect" ? "CONNECT" : "HTTP request to"} ${formatAuthority(request.host, request.port)} refused`;
  const deny = (reason: EgressDenyReason, message: string, host = request.host): EgressDecision => ({ allow: false, client: clientName, host, port: request.port, reason, message: `${refused()}: ${message}` });

  if (identity.kind === "bad-credentials") return deny("bad-credentials", identity.detail);

  // An address written in any notation (0x7f.1, 2130706433, [::ffff:127.0.0.1]) is decided as the address it is.
  const literal = parseIpLiteral(request.host);
  if (literal !== undefined) {
    const address = checkAddress(literal.address);
    if (!address.allowed) return deny("private-address", `${literal.address} is in the SSRF deny set (${address.range}); rules name hosts, and only a rule's allowCidr reaches private ranges`, literal.address);
    return deny("not-allowlisted", `rules allow host names, not addresses; connect to the name and add it to egress.allow (or --allow NAME:${request.port})`, literal.address);
  }
  // Already-normal names (lower-case ASCII labels, no punycode) skip IDNA: the common case, on every request.
  const host = ALREADY_NORMAL.test(request.host) ? request.host : normalizeHostname(request.host);
  if (host === undefined || !/^[\x21-\x7e]+$/.test(request.host)) return deny("invalid-host", `"${request.host.slice(0, 100)}" is not a valid host name`);

  let rules: readonly PolicyRule[];
  if (identity.kind === "client") rules = [...policy.rules, ...identity.client.rules];
  else if (policy.unknownClients === "global") rules = policy.rules;
  else return deny("unknown-client", `this client is not identified; send Proxy-Authorization (Bearer TOKEN, or Basic with the token as password) or add its address to a client's sources`, host);

  const forHost = rules.filter((rule) => ruleMatchesHost(rule, host));
  const hint = () => `add "${host}${request.port === 443 ? "" : `:${request.port}`}" to egress.allow${identity.kind === "client" ? ` (or client "${clientName}"'s allow list)` : ""} in perimeter.yaml, or pass --allow ${host}:${request.port}`;
  if (forHost.length === 0) return deny("not-allowlisted", `${host} is not allowlisted for client "${clientName}"; ${hint()}`, host);
  const matching = forHost.filter((rule) => rule.ports.includes(request.port));
  if (matching.length === 0) {
    const ports = [...new Set(forHost.flatMap((rule) => rule.ports))].sort((a, b) => a - b).join(",");
    return deny("port-not-allowed", `${host} is allowlisted for port ${ports} only; ${hint()}`, host);
  }
  return {
    allow: true,
    client: clientName,
    host,
    port: request.port,
    rules: matching.map((rule) => rule.source),
    allowCidrs: matching.length === 1 ? (matching[0] as PolicyRule).allowCidrs : [...new Set(matching.flatMap((rule) => rule.allowCidrs))],
    // The strictest rule wins: one rule relaxing SNI does not relax another that covers the same host.
    requireSni: matching.some((rule) => rule.requireSni),
  };
}
