// The SSRF deny set (DESIGN.md "Facts from the field") and the parsing that must happen before deciding.
// Written by hand on purpose: it is small, it is the security boundary of every outbound connection we make or
// allow, and it must handle the odd notations (octal, hex, integer IPv4; IPv4 embedded in IPv6) that libraries and
// resolvers disagree on. The decision is a pure function; dialling is the caller's job (dial the checked address).
import { isIP, isIPv4 } from "node:net";

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

/** Every range no outbound connection may reach unless a rule explicitly excepts it. */
export const DENIED_RANGES: readonly Range[] = [
  range("this-network", "0.0.0.0/8"),
  range("private", "10.0.0.0/8"),
  range("carrier-grade-nat", "100.64.0.0/10"),
  range("loopback", "127.0.0.0/8"),
  range("link-local (cloud metadata)", "169.254.0.0/16"),
  range("private", "172.16.0.0/12"),
  range("ietf-protocol-assignments", "192.0.0.0/24"),
  range("documentation", "192.0.2.0/24"),
  range("private", "192.168.0.0/16"),
  range("benchmarking", "198.18.0.0/15"),
  range("documentation", "198.51.100.0/24"),
  range("documentation", "203.0.113.0/24"),
  range("multicast", "224.0.0.0/4"),
  range("reserved", "240.0.0.0/4"),
  range("unspecified", "::/128"),
  range("loopback", "::1/128"),
  range("ipv4-mapped", "::ffff:0:0/96"),
  range("ipv4-translated (SIIT)", "::ffff:0:0:0/96"),
  range("ipv4-compatible (deprecated)", "::/96"),
  range("nat64", "64:ff9b::/96"),
  range("nat64-local", "64:ff9b:1::/48"),
  range("discard-only", "100::/64"),
  range("teredo", "2001::/32"),
  range("ietf-protocol-assignments", "2001::/23"),
  range("documentation", "2001:db8::/32"),
  range("6to4", "2002::/16"),
  range("unique-local", "fc00::/7"),
  range("link-local", "fe80::/10"),
  range("site-local (deprecated)", "fec0::/10"),
  range("multicast", "ff00::/8"),
];

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
 * The decision for one resolved address. Pure: no DNS, no sockets. An address inside an explicit allow-cidr is
 * allowed even if private; the proxy's own addresses are denied even then.
 */
export function checkAddress(address: string, options: AddressPolicyOptions = {}): AddressDecision {
  const literal = parseIpLiteral(address);
  if (literal === undefined) return { allowed: false, reason: "invalid-address", range: "not an IP address" };
  for (const self of options.selfAddresses ?? []) {
    const own = parseIpLiteral(self);
    if (own !== undefined && own.address === literal.address) return { allowed: false, reason: "proxy-address", range: "the proxy's own address" };
  }
  if ((options.allowCidrs ?? []).some((cidr) => cidrContains(cidr, literal.address))) return { allowed: true };
  const parsed = toBigInt(literal.address) as { family: AddressFamily; value: bigint };
  for (const entry of DENIED_RANGES) {
    if (contains(entry, parsed.family, parsed.value)) {
      // An embedded IPv4 that an exception allows is still allowed (e.g. ::ffff:10.43.0.10 with 10.43.0.0/16).
      const inner = embeddedIpv4(literal.address);
      if (inner !== undefined && (options.allowCidrs ?? []).some((cidr) => cidrContains(cidr, inner))) return { allowed: true };
      return { allowed: false, reason: "private-address", range: entry.name };
    }
  }
  const inner = embeddedIpv4(literal.address);
  if (inner !== undefined) {
    const decision = checkAddress(inner, options);
    if (!decision.allowed) return decision;
  }
  return { allowed: true };
}
