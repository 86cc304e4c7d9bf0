// The SSRF deny set (DESIGN.md "Facts from the field", derived from the IANA special-purpose registries) and the
// parsing that must happen before deciding. Written by hand on purpose: it is small, it is the security boundary of
// every outbound connection we make or allow, and it must handle the odd notations (octal, hex, integer IPv4; IPv4 embedded in IPv6) that libraries and
// resolvers disagree on. The decision is a pure function; dialling is the caller's job (dial the checked address).
import { isIP, isIPv4 } from "node:net";
import { IPV4_SPECIAL_PURPOSE, IPV6_SPECIAL_PURPOSE } from "./special-purpose-registries.ts";
import type { SpecialPurposeBlock } from "./special-purpose-registries.ts";

export type AddressFamily = 4 | 6;

interface Range {
  readonly name: string;
  readonly family: AddressFamily;
  readonly network: bigint;
  readonly bits: number;
}

/** Parses a canonical dotted-quad or IPv6 text into a bigint; undefined when it is not one. */
function toBigInt(address: string): { family: AddressFamily; value: bigint } | undefined {
  const family = isIP(address);
  if (family === 4) {
    return { family: 4, value: address.split(".").reduce((sum, part) => (sum << 8n) | BigInt(Number(part)), 0n) };
  }
  if (family === 6) {
    let text = address.toLowerCase();
    const zone = text.indexOf("%");
    if (zone !== -1) text = text.slice(0, zone);
    // A trailing dotted quad (::ffff:1.2.3.4) becomes two hextets.
    const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
    if (dotted !== null) {
      const v4 = toBigInt(dotted[1] as string);
      if (v4 === undefined) return undefined;
      text = text.slice(0, dotted.index) + `${(v4.value >> 16n).toString(16)}:${(v4.value & 0xffffn).toString(16)}`;
    }
    const [head, tail] = text.split("::") as [string, string | undefined];
    const headParts = head === "" ? [] : head.split(":");
    const tailParts = tail === undefined || tail === "" ? [] : tail.split(":");
    const missing = 8 - headParts.length - tailParts.length;
    const parts = tail === undefined ? headParts : [...headParts, ...Array<string>(missing).fill("0"), ...tailParts];
    if (parts.length !== 8) return undefined;
    return { family: 6, value: parts.reduce((sum, part) => (sum << 16n) | BigInt(parseInt(part, 16)), 0n) };
  }
  return undefined;
}

function range(name: string, cidr: string): Range {
  const [address, bits] = cidr.split("/") as [string, string];
  const parsed = toBigInt(address);
  if (parsed === undefined) throw new Error(`bad built-in range ${cidr}`);
  return { name, family: parsed.family, network: parsed.value, bits: Number(bits) };
}

function contains(entry: Range, family: AddressFamily, value: bigint): boolean {
  if (entry.family !== family) return false;
  const width = family === 4 ? 32 : 128;
  const shift = BigInt(width - entry.bits);
  return value >> shift === entry.network >> shift;
}

/** The registry rows the deny set takes: every block not marked globally reachable (False, N/A, or terminated). */
function notGloballyReachable(rows: readonly SpecialPurposeBlock[]): Range[] {
  return rows.filter((row) => row.globallyReachable !== true).map((row) => range(`${row.name} (${row.rfc})`, row.block));
}

/**
 * Denied beyond what the special-purpose registries mark: multicast lives in other registries; the NAT64 well-known
 * prefix is globally reachable by the registry but carries an IPv4 address, so it is denied as a whole and only an
 * allowCidr covering the embedded address opens it; the deprecated IPv4-compatible, SIIT and site-local forms are
 * gone from the registries but still parse, and a resolver may still hand them out.
 */
const BEYOND_REGISTRIES: readonly Range[] = [
  range("multicast (RFC 5771)", "224.0.0.0/4"),
  range("multicast (RFC 4291)", "ff00::/8"),
  range("IPv4-IPv6 translation, embedded IPv4 (RFC 6052)", "64:ff9b::/96"),
  range("IPv4-compatible, deprecated (RFC 4291)", "::/96"),
  range("IPv4-translated, SIIT (RFC 2765)", "::ffff:0:0:0/96"),
  range("site-local, deprecated (RFC 3879)", "fec0::/10"),
];

/**
 * Every range no outbound connection may reach unless a rule explicitly excepts it: derived from the IANA
 * special-purpose registries (special-purpose-registries.ts), plus BEYOND_REGISTRIES. Nested rows stay listed; the
 * first match names the refusal, so the registry's order (wider block first) gives the wider name.
 */
export const DENIED_RANGES: readonly Range[] = [...notGloballyReachable(IPV4_SPECIAL_PURPOSE), ...notGloballyReachable(IPV6_SPECIAL_PURPOSE), ...BEYOND_REGISTRIES];

const NOT_IPV4_NOTATION = /[^0-9a-fA-FxX.\[\]\s]/;

/**
 * Parses what a user or a URL might put where an address goes, the way inet_aton and browsers do: `0x7f.1`,
 * `2130706433`, `0177.0.0.1`, `127.1`, bracketed IPv6. Returns the canonical address, or undefined when the text
 * is a name (to be resolved) rather than an address.
 */
export function parseIpLiteral(text: string): { address: string; family: AddressFamily } | undefined {
  // Fast path, same answer: a canonical dotted quad (no leading zeros, each part <= 255) is already itself. This runs
  // several times per proxied request.
  if (isIPv4(text)) return { address: text, family: 4 };
  // Fast path, same answer: without a colon only IPv4 notations remain, and they are made of hex digits, x, dots (and
  // the brackets and blanks trimmed below); any other character makes the text a name.
  if (!text.includes(":") && NOT_IPV4_NOTATION.test(text)) return undefined;
  let host = text.trim();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (isIP(host) === 6) {
    const parsed = toBigInt(host);
    return parsed === undefined ? undefined : { address: formatIpv6(parsed.value), family: 6 };
  }
  const parts = host.split(".");
  if (parts.length < 1 || parts.length > 4) return undefined;
  const numbers: number[] = [];
  for (const part of parts) {
    let value: number;
    if (/^0x[0-9a-f]*$/i.test(part)) value = part.length === 2 ? 0 : parseInt(part.slice(2), 16);
    else if (/^0[0-7]+$/.test(part)) value = parseInt(part, 8);
    else if (/^(0|[1-9]\d*)$/.test(part)) value = Number(part);
    else return undefined;
    if (!Number.isSafeInteger(value)) return undefined;
    numbers.push(value);
  }
  // inet_aton: the last part fills the remaining bytes.
  const last = numbers.pop() as number;
  if (numbers.some((value) => value > 255) || last >= 256 ** (4 - numbers.length)) return undefined;
  let value = 0n;
  for (const part of numbers) value = (value << 8n) | BigInt(part);
  value = (value << BigInt(8 * (4 - numbers.length))) | BigInt(last);
  const address = [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
  return { address, family: 4 };
}

function formatIpv6(value: bigint): string {
  const parts: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) parts.push(((value >> shift) & 0xffffn).toString(16));
  return parts.join(":");
}

/** The IPv4 address carried inside an IPv6 one (mapped, compatible, NAT64, 6to4, Teredo), if any. */
export function embeddedIpv4(address: string): string | undefined {
  const parsed = toBigInt(address);
  if (parsed === undefined || parsed.family !== 6) return undefined;
  const value = parsed.value;
  const v4 = (bits: bigint) => [24n, 16n, 8n, 0n].map((shift) => String((bits >> shift) & 0xffn)).join(".");
  if (value >> 32n === 0xffffn || value >> 32n === 0n || value >> 32n === 0x0064ff9b0000000000000000n) return v4(value & 0xffffffffn);
  if (value >> 112n === 0x2002n) return v4((value >> 80n) & 0xffffffffn);
  if (value >> 96n === 0x20010000n) return v4(~value & 0xffffffffn);
  return undefined;
}

export type AddressDecision = { allowed: true } | { allowed: false; reason: "private-address" | "proxy-address" | "invalid-address"; range: string };

export interface AddressPolicyOptions {
  /** CIDRs that a rule explicitly excepts from the deny set (e.g. an in-cluster service range). */
  readonly allowCidrs?: readonly string[];
  /** Addresses of the perimeter service itself: reaching them would loop back through it. */
  readonly selfAddresses?: readonly string[];
}

/** Whether an address (canonical text) lies inside a CIDR. */
export function cidrContains(cidr: string, address: string): boolean {
  const [network, bits] = cidr.split("/");
  const parsedAddress = toBigInt(address);
  const parsedNetwork = toBigInt(network ?? "");
  if (parsedAddress === undefined || parsedNetwork === undefined || bits === undefined) return false;
  return contains({ name: cidr, family: parsedNetwork.family, network: parsedNetwork.value, bits: Number(bits) }, parsedAddress.family, parsedAddress.value);
}

const remembered = new Map<string, AddressDecision>();
const REMEMBERED_MAX = 4096;

/**
 * checkAddress with its answers remembered (bounded): it is pure, so the same address under the same exceptions
 * always gets the same decision, and a proxy sees the same few addresses over and over. The key holds every input.
 */
export function checkAddressRemembered(address: string, options: AddressPolicyOptions = {}): AddressDecision {
  const key = `${address}\n${options.allowCidrs?.join(",") ?? ""}\n${options.selfAddresses?.join(",") ?? ""}`;
  const known = remembered.get(key);
  if (known !== undefined) return known;
  const decision = checkAddress(address, options);
  if (remembered.size >= REMEMBERED_MAX) remembered.clear();
  remembered.set(key, Object.freeze(decision));
  return decision;
}

/**
 * Whether a listener's address is a wildcard (0.0.0.0, ::, ::ffff:0.0.0.0 in any notation): such a listener answers
 * on every local address, so all of them are the service's own.
 */
export function isUnspecifiedAddress(address: string): boolean {
  const literal = parseIpLiteral(address);
  if (literal === undefined) return false;
  const parsed = toBigInt(literal.address) as { family: AddressFamily; value: bigint };
  return parsed.value === 0n || (parsed.family === 6 && parsed.value === 0xffff00000000n);
}

/** An own address or range, IPv4-mapped ones as the IPv4 they are. */
interface OwnRange {
  readonly family: AddressFamily;
  readonly network: bigint;
  readonly bits: number;
}

const LOOPBACK_V4 = { family: 4, value: 0x7f000001n } as const;
const LOOPBACK_V6 = { family: 6, value: 1n } as const;

function ownRange(entry: string): OwnRange {
  const [text = "", bits, extra] = entry.split("/");
  const literal = parseIpLiteral(text);
  const parsed = literal === undefined ? undefined : toBigInt(literal.address);
  const width = parsed?.family === 4 ? 32 : 128;
  const prefix = bits === undefined ? width : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
  if (parsed === undefined || extra !== undefined || !(prefix >= 0 && prefix <= width)) {
    // Own addresses come from the listeners and the interface table, never from a user: a bad one is a bug here.
    throw new TypeError(`selfAddresses: "${entry}" is not an address or CIDR`);
  }
  if (parsed.family === 6 && parsed.value >> 32n === 0xffffn && prefix >= 96) return { family: 4, network: parsed.value & 0xffffffffn, bits: prefix - 96 };
  return { family: parsed.family, network: parsed.value, bits: prefix };
}

/**
 * Every value under which a destination can reach a local socket: itself, the IPv4 address it embeds (an IPv4-mapped
 * address reaches an IPv4 listener through a dual-stack socket; the other embedding forms are taken as well, to stay
 * on the safe side), and for an unspecified address (0.0.0.0, ::) the loopback address the kernel connects it to.
 */
function destinationIdentities(address: string, parsed: { family: AddressFamily; value: bigint }): Array<{ family: AddressFamily; value: bigint }> {
  const identities: Array<{ family: AddressFamily; value: bigint }> = [parsed];
  const inner = embeddedIpv4(address);
  if (inner !== undefined) identities.push(toBigInt(inner) as { family: AddressFamily; value: bigint });
  for (const identity of [...identities]) {
    if (identity.value === 0n) identities.push(LOOPBACK_V4, LOOPBACK_V6);
  }
  return identities;
}

/**
 * Whether a destination is one of the perimeter service's own addresses. Values are compared, never their text:
 * `::ffff:127.0.0.1`, `::ffff:7f00:1`, `0:0:0:0:0:ffff:7f00:1` and `127.0.0.1` are one address.
 */
function isOwnAddress(address: string, parsed: { family: AddressFamily; value: bigint }, selfAddresses: readonly string[]): boolean {
  if (selfAddresses.length === 0) return false;
  let own = parsedOwnAddresses.get(selfAddresses);
  if (own === undefined) {
    own = selfAddresses.map((entry) => ({ name: "the proxy's own address", ...ownRange(entry) }));
    parsedOwnAddresses.set(selfAddresses, own);
  }
  const ranges = own;
  return destinationIdentities(address, parsed).some((identity) => ranges.some((entry) => contains(entry, identity.family, identity.value)));
}

// A service hands the same list to every check until its listeners change, so each list is parsed once.
const parsedOwnAddresses = new WeakMap<readonly string[], Range[]>();

/**
 * The decision for one resolved address. Pure: no DNS, no sockets. An address inside an explicit allow-cidr is
 * allowed even if private; the proxy's own addresses (`selfAddresses`: addresses or CIDRs) are denied even then.
 */
export function checkAddress(address: string, options: AddressPolicyOptions = {}): AddressDecision {
  const literal = parseIpLiteral(address);
  if (literal === undefined) return { allowed: false, reason: "invalid-address", range: "not an IP address" };
  const parsed = toBigInt(literal.address) as { family: AddressFamily; value: bigint };
  const decision = checkDenySet(literal.address, parsed, options.allowCidrs ?? []);
  // Checked only for what the deny set lets through: a private own address is refused as private already, and an
  // allowCidr or a public own address (a wildcard listener on a public interface) must not reach the proxy either.
  if (decision.allowed && isOwnAddress(literal.address, parsed, options.selfAddresses ?? [])) {
    return { allowed: false, reason: "proxy-address", range: "the proxy's own address" };
  }
  return decision;
}

function checkDenySet(address: string, parsed: { family: AddressFamily; value: bigint }, allowCidrs: readonly string[]): AddressDecision {
  if (allowCidrs.some((cidr) => cidrContains(cidr, address))) return { allowed: true };
  const inner = embeddedIpv4(address);
  for (const entry of DENIED_RANGES) {
    if (contains(entry, parsed.family, parsed.value)) {
      // An embedded IPv4 that an exception allows is still allowed (e.g. ::ffff:10.43.0.10 with 10.43.0.0/16).
      if (inner !== undefined && allowCidrs.some((cidr) => cidrContains(cidr, inner))) return { allowed: true };
      return { allowed: false, reason: "private-address", range: entry.name };
    }
  }
  if (inner !== undefined) return checkDenySet(inner, toBigInt(inner) as { family: AddressFamily; value: bigint }, allowCidrs);
  return { allowed: true };
}
