// Resolve once, check every address, hand back the one to dial. Callers must connect to `address` and never pass the
// name to a socket API again: a second lookup is exactly what DNS rebinding exploits.
import { promises as dns } from "node:dns";
import { checkAddressRemembered, parseIpLiteral } from "./address-policy.ts";
import type { AddressFamily, AddressPolicyOptions } from "./address-policy.ts";

export interface Resolver {
  /** Every A and AAAA address of `host`. Rejects (or returns []) when the name does not resolve. */
  lookup(host: string): Promise<string[]>;
  /** The answer `lookup` would give at once, when it is already known (a cache hit); undefined otherwise. */
  cached?(host: string): readonly string[] | undefined;
}

/** getaddrinfo through Node (honours /etc/hosts and the system resolver), all families, in resolver order. */
export function systemResolver(): Resolver {
  return {
    async lookup(host) {
      const results = await dns.lookup(host, { all: true, order: "verbatim" });
      return results.map((entry) => entry.address);
    },
  };
}

export interface CachingResolverOptions {
  /** How long a successful answer is reused. getaddrinfo reports no TTL, so this is a fixed bound. @default 30000 */
  readonly ttlMs?: number;
  /** Names remembered at most; the oldest is forgotten first. @default 4096 */
  readonly maxEntries?: number;
  /** @default performance.now */
  readonly now?: () => number;
}

/**
 * Remembers successful answers of `inner` for a short time and shares one lookup among concurrent callers of the same
 * name, as squid's ipcache does: without it every request through a proxy waits for a DNS round trip. Failures are
 * not remembered. Safe against rebinding because callers check every returned address on each use and dial the
 * address they checked, never the name.
 */
export function cachingResolver(inner: Resolver, options: CachingResolverOptions = {}): Resolver {
  const ttlMs = options.ttlMs ?? 30_000;
  const maxEntries = options.maxEntries ?? 4096;
  const now = options.now ?? (() => performance.now());
  const answers = new Map<string, { addresses: readonly string[]; expires: number }>();
  const pending = new Map<string, Promise<string[]>>();
  return {
    cached(host) {
      const key = host.toLowerCase();
      const cached = answers.get(key);
      return cached !== undefined && cached.expires > now() ? cached.addresses : undefined;
    },
    lookup(host) {
      const key = host.toLowerCase();
      const cached = answers.get(key);
      if (cached !== undefined) {
        if (cached.expires > now()) return Promise.resolve([...cached.addresses]);
        answers.delete(key);
      }
      const inFlight = pending.get(key);
      if (inFlight !== undefined) return inFlight.then((addresses) => [...addresses]);
      const lookup = inner.lookup(host).then(
        (addresses) => {
          pending.delete(key);
          if (addresses.length > 0) {
            if (answers.size >= maxEntries) answers.delete(answers.keys().next().value as string);
            answers.set(key, { addresses: Object.freeze([...addresses]), expires: now() + ttlMs });
          }
          return addresses;
        },
        (error: unknown) => {
          pending.delete(key);
          throw error;
        },
      );
      pending.set(key, lookup);
      return lookup.then((addresses) => [...addresses]);
    },
  };
}

/** A resolver from a fixed table, for tests and for pinning names in a config; unknown names fail to resolve. */
export function staticResolver(table: Readonly<Record<string, readonly string[]>>): Resolver {
  return {
    async lookup(host) {
      const found = table[host.toLowerCase()];
      if (found === undefined) throw Object.assign(new Error(`${host} does not resolve`), { code: "ENOTFOUND" });
      return [...found];
    },
  };
}

/** An address of a name that passed the deny-set check, in canonical form: the only kind a service may dial. */
export interface CheckedAddress {
  readonly address: string;
  readonly family: AddressFamily;
}

export type ResolveResult =
  | {
      ok: true;
      /** The first of `candidates`: the resolver's preferred address. */
      address: string;
      family: AddressFamily;
      addresses: string[];
      /** Every address of the name, each checked, in canonical form and resolver order: the only ones to dial. */
      candidates: CheckedAddress[];
    }
  | { ok: false; reason: "private-address" | "proxy-address" | "dns-failure" | "invalid-address"; detail: string; addresses: string[] };

export interface ResolveOptions extends AddressPolicyOptions {
  readonly resolver: Resolver;
  /** Give up on a lookup after this long. @default 5000 */
  readonly timeoutMs?: number;
}

/**
 * Resolves `host` (a name or any IP notation) and checks every address against the deny set. One private address
 * among public ones denies the whole name: which one a client would get is not ours to guess.
 */
export async function resolveChecked(host: string, options: ResolveOptions): Promise<ResolveResult> {
  const literal = parseIpLiteral(host);
  let addresses: string[];
  // A cached answer needs no lookup, so no timeout either (the common case: every request of a client to its API).
  const known = literal === undefined ? options.resolver.cached?.(host) : undefined;
  if (literal !== undefined) {
    addresses = [literal.address];
  } else if (known !== undefined && known.length > 0) {
    addresses = [...known];
  } else {
    const timeoutMs = options.timeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    try {
      addresses = await Promise.race([
        options.resolver.lookup(host),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`lookup timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      return { ok: false, reason: "dns-failure", detail: `${host}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, addresses: [] };
    } finally {
      clearTimeout(timer);
    }
    if (addresses.length === 0) return { ok: false, reason: "dns-failure", detail: `${host}: no addresses`, addresses: [] };
  }
  for (const address of addresses) {
    const decision = checkAddressRemembered(address, options);
    if (!decision.allowed) return { ok: false, reason: decision.reason, detail: `${host} resolves to ${address} (${decision.range})`, addresses };
  }
  const candidates = addresses.map((address) => parseIpLiteral(address) as CheckedAddress);
  const chosen = candidates[0] as CheckedAddress;
  return { ok: true, address: chosen.address, family: chosen.family, addresses, candidates };
}
