// Bearer tokens, in one place for every service: a token is read from the environment once, kept only as its
// sha256, and compared in constant time against the sha256 of what a request presents, so neither the comparison's
// timing nor a heap dump gives it away.
import { createHash, timingSafeEqual } from "node:crypto";

export interface TokenEntry {
  /** Who holds the token (an agent's name, "admin", "feed"). */
  name: string;
  token: string;
}

export interface TokenVerifier {
  /** The name of the holder of this token, or undefined. */
  verify(token: string | undefined): string | undefined;
}

const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest();

export function createTokenVerifier(entries: readonly TokenEntry[]): TokenVerifier {
  const hashed = entries.filter((entry) => entry.token !== "").map((entry) => ({ name: entry.name, hash: digest(entry.token) }));
  return {
    verify(token) {
      if (token === undefined || token === "") return undefined;
      const presented = digest(token);
      let holder: string | undefined;
      // Compare against every entry, without stopping at a match, so the time taken does not say which one matched.
      for (const entry of hashed) if (timingSafeEqual(presented, entry.hash) && holder === undefined) holder = entry.name;
      return holder;
    },
  };
}

/** Whether `presented` is `expected`, compared as sha256 digests in constant time. */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined || presented === "" || expected === "") return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

/** The token of an `Authorization: Bearer <token>` header; undefined when absent or of another scheme. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const match = /^[ \t]*Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(value);
  return match?.[1];
}
