// Sessions: the admin token is shown once at the login form and exchanged for a random session id in an HttpOnly,
// SameSite=Strict cookie (Secure and __Host- prefixed over TLS). Each session carries its own CSRF token, which every
// state-changing request must echo (a form field or the x-csrf-token header). Sessions live in memory: a restart
// logs everyone out, which is the safe direction.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export interface Session {
  readonly id: string;
  readonly csrf: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface SessionStore {
  /** Constant-time check of a presented admin token. */
  tokenMatches(presented: string): boolean;
  create(): Session;
  /** The live session for this cookie value, or undefined (unknown, expired). */
  get(id: string | undefined): Session | undefined;
  destroy(id: string): void;
  /** Whether the request's CSRF token is this session's (constant time). */
  csrfMatches(session: Session, presented: string | undefined): boolean;
  /** A failed login counts against a global budget: false when the budget is spent (answer 429). */
  allowAttempt(): boolean;
  readonly size: number;
}

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();

/** Equal-length digests, so neither the length nor the content of the secret leaks through timing. */
export function constantTimeEquals(left: string, right: string): boolean {
  return timingSafeEqual(digest(left), digest(right));
}

export interface SessionOptions {
  adminToken: string;
  lifetimeMs: number;
  now?: () => number;
  /** Failed logins allowed per minute (all sources together: the listener is meant for one operator). @default 10 */
  attemptsPerMinute?: number;
  /** Live sessions kept at most; the oldest is dropped past it. @default 64 */
  maxSessions?: number;
}

export function createSessionStore(options: SessionOptions): SessionStore {
  if (options.adminToken.length < 16) throw new Error("the admin token is shorter than 16 characters: generate a long random one (openssl rand -hex 32)");
  const now = options.now ?? Date.now;
  const sessions = new Map<string, Session>();
  const maxSessions = options.maxSessions ?? 64;
  const perMinute = options.attemptsPerMinute ?? 10;
  let windowStart = 0;
  let attempts = 0;
  const prune = () => {
    const at = now();
    for (const [id, session] of sessions) if (session.expiresAt <= at) sessions.delete(id);
  };
  return {
    tokenMatches: (presented) => constantTimeEquals(presented, options.adminToken),
    create() {
      prune();
      while (sessions.size >= maxSessions) sessions.delete(sessions.keys().next().value as string);
      const created = now();
      const session: Session = { id: randomBytes(32).toString("base64url"), csrf: randomBytes(32).toString("base64url"), createdAt: created, expiresAt: created + options.lifetimeMs };
      sessions.set(session.id, session);
      return session;
    },
    get(id) {
      if (id === undefined || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
      const session = sessions.get(id);
      if (session === undefined) return undefined;
      if (session.expiresAt <= now()) {
        sessions.delete(id);
        return undefined;
      }
      return session;
    },
    destroy: (id) => void sessions.delete(id),
    csrfMatches: (session, presented) => typeof presented === "string" && presented.length > 0 && constantTimeEquals(presented, session.csrf),
    allowAttempt() {
      const at = now();
      if (at - windowStart >= 60_000) {
        windowStart = at;
        attempts = 0;
      }
      attempts += 1;
      return attempts <= perMinute;
    },
    get size() {
      return sessions.size;
    },
  };
}

/** Parses a Cookie header defensively (browsers and attackers both write it). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined || header.length > 8192) return undefined;
  for (const part of header.split(";")) {
    const index = part.indexOf("=");
    if (index < 0) continue;
    if (part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}
