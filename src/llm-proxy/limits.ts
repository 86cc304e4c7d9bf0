// Rate limits and budgets per virtual key. Admission RESERVES the worst case a request may cost (prompt estimate +
// max output) against every limit at once, before anything is sent; settlement replaces the reservation by the real
// usage. Node runs admission to completion without yielding, so N concurrent requests see each other's reservations
// and together can never pass a budget. Reservations live in this process (one llm-proxy per key store); settled
// usage is persisted in the key store.
import type { BudgetName, ProxyError } from "./errors.ts";
import type { KeyBudget, KeyLimits, LlmKeyStore, VirtualKey } from "./keys.ts";

export interface WorstCase {
  /** Prompt estimate + max output tokens. */
  readonly tokens: number;
  /** The same at the most expensive provider of the failover chain. */
  readonly cost: number;
  /** Providers of the failover chain without a price: what is spent there cannot be counted against a cost budget. */
  readonly unpricedProviders?: readonly string[];
}

export interface Reservation {
  readonly keyId: string;
  readonly day: string;
  readonly tokens: number;
  readonly cost: number;
  settled: boolean;
}

export type BudgetAdmission = { ok: true; reservation: Reservation } | { ok: false; error: ProxyError };

export interface UsageLedger {
  admit(key: VirtualKey, worst: WorstCase): BudgetAdmission;
  /** Replaces the reservation by what the request really cost; idempotent. */
  settle(reservation: Reservation, actual: { tokensIn: number; tokensOut: number; cost: number }): void;
}

interface Bucket {
  level: number;
  updatedAt: number;
}

interface KeyState {
  day: string;
  settled: { dayTokens: number; dayCost: number; totalTokens: number; totalCost: number };
  inFlight: Map<string, { tokens: number; cost: number }>;
  requests?: Bucket;
  tokens?: Bucket;
}

/** Refills a bucket of `capacity` that refills completely in one minute. */
function refill(bucket: Bucket | undefined, capacity: number, now: number): Bucket {
  if (bucket === undefined) return { level: capacity, updatedAt: now };
  const level = Math.min(capacity, bucket.level + ((now - bucket.updatedAt) * capacity) / 60_000);
  return { level, updatedAt: now };
}

export function utcDay(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

const DAY_MS = 86_400_000;

function formatAmount(value: number, isCost: boolean): string {
  return isCost ? value.toFixed(4) : String(Math.round(value));
}

function inFlightTotal(state: KeyState): { tokens: number; cost: number } {
  let tokens = 0;
  let cost = 0;
  for (const entry of state.inFlight.values()) {
    tokens += entry.tokens;
    cost += entry.cost;
  }
  return { tokens, cost };
}

/** The first budget the worst case would exceed, counting what is settled and what is reserved in flight. */
function budgetError(budget: KeyBudget, state: KeyState, worst: WorstCase): ProxyError | undefined {
  // Fail closed: a cost budget that cannot see what a request costs must not wave it through as free. The schema
  // and `llm-keys create` refuse such keys; this catches one created before a price was removed.
  const unpriced = worst.unpricedProviders ?? [];
  if (unpriced.length > 0) {
    const costBudget = budget.costPerDay !== undefined ? "costPerDay" : budget.costTotal !== undefined ? "costTotal" : undefined;
    if (costBudget !== undefined) return { kind: "budget-unpriced", budget: costBudget, providers: unpriced };
  }
  const today = state.inFlight.get(state.day) ?? { tokens: 0, cost: 0 };
  const everywhere = inFlightTotal(state);
  const checks: Array<{ name: BudgetName; limit: number | undefined; used: number; reserved: number; needed: number; cost: boolean }> = [
    { name: "tokensPerDay", limit: budget.tokensPerDay, used: state.settled.dayTokens, reserved: today.tokens, needed: worst.tokens, cost: false },
    { name: "tokensTotal", limit: budget.tokensTotal, used: state.settled.totalTokens, reserved: everywhere.tokens, needed: worst.tokens, cost: false },
    { name: "costPerDay", limit: budget.costPerDay, used: state.settled.dayCost, reserved: today.cost, needed: worst.cost, cost: true },
    { name: "costTotal", limit: budget.costTotal, used: state.settled.totalCost, reserved: everywhere.cost, needed: worst.cost, cost: true },
  ];
  for (const check of checks) {
    if (check.limit === undefined) continue;
    if (check.used + check.reserved + check.needed > check.limit) {
      const amount = (value: number) => formatAmount(value, check.cost);
      return {
        kind: "budget-exhausted",
        budget: check.name,
        detail: `the ${check.name} budget of this key (${amount(check.limit)}) would be exceeded: used ${amount(check.used)}, reserved by requests in flight ${amount(check.reserved)}, this request may need up to ${amount(check.needed)}${check.cost ? "" : " (prompt estimate + max_tokens; a lower max_tokens may fit)"}`,
      };
    }
  }
  return undefined;
}

/**
 * Checks the per-minute buckets. The refilled buckets are returned to be committed only once every check passed; a
 * refusal keeps the refill (so the next request sees the time that passed) but takes nothing.
 */
function rateLimitCheck(state: KeyState, limits: KeyLimits, worst: WorstCase, time: number): { ok: true; requests: Bucket | undefined; tokens: Bucket | undefined } | { ok: false; error: ProxyError } {
  const { requestsPerMinute, tokensPerMinute } = limits;
  let requests: Bucket | undefined;
  if (requestsPerMinute !== undefined) {
    requests = refill(state.requests, requestsPerMinute, time);
    if (requests.level < 1) {
      state.requests = requests;
      return {
        ok: false,
        error: { kind: "rate-limited", limit: "requestsPerMinute", retryAfterSeconds: ((1 - requests.level) * 60) / requestsPerMinute, detail: `rate limit of ${requestsPerMinute} requests per minute reached for this key` },
      };
    }
  }
  let tokens: Bucket | undefined;
  if (tokensPerMinute !== undefined) {
    if (worst.tokens > tokensPerMinute) {
      return {
        ok: false,
        error: { kind: "rate-limited", limit: "tokensPerMinute", retryAfterSeconds: 60, detail: `this request may use up to ${worst.tokens} tokens (prompt estimate + max_tokens), more than this key's limit of ${tokensPerMinute} tokens per minute: lower max_tokens or shorten the prompt` },
      };
    }
    tokens = refill(state.tokens, tokensPerMinute, time);
    if (tokens.level < worst.tokens) {
      state.tokens = tokens;
      return {
        ok: false,
        error: { kind: "rate-limited", limit: "tokensPerMinute", retryAfterSeconds: ((worst.tokens - tokens.level) * 60) / tokensPerMinute, detail: `rate limit of ${tokensPerMinute} tokens per minute reached for this key` },
      };
    }
  }
  return { ok: true, requests, tokens };
}

export function createUsageLedger(store: Pick<LlmKeyStore, "usageTotals" | "addUsage">, now: () => number = Date.now): UsageLedger {
  const states = new Map<string, KeyState>();
  // The UTC day is asked for on every admission; format it only when the clock leaves the cached day.
  let cachedDay = { start: 0, end: 0, text: "" };
  const dayOf = (time: number): string => {
    if (time < cachedDay.start || time >= cachedDay.end) {
      const start = Math.floor(time / DAY_MS) * DAY_MS;
      cachedDay = { start, end: start + DAY_MS, text: utcDay(time) };
    }
    return cachedDay.text;
  };

  const stateOf = (keyId: string, day: string): KeyState => {
    let state = states.get(keyId);
    if (state === undefined) {
      state = { day, settled: store.usageTotals(keyId, day), inFlight: new Map() };
      states.set(keyId, state);
    } else if (state.day !== day) {
      const totals = store.usageTotals(keyId, day);
      state.day = day;
      state.settled = totals;
    }
    return state;
  };

  return {
    admit(key, worst) {
      const time = now();
      const day = dayOf(time);
      const state = stateOf(key.id, day);
      const limited = rateLimitCheck(state, key.limits, worst, time);
      if (!limited.ok) return { ok: false, error: limited.error };
      const { requests, tokens } = limited;
      const exhausted = budgetError(key.budget, state, worst);
      if (exhausted !== undefined) return { ok: false, error: exhausted };

      // Everything fits: commit all of it together.
      if (requests !== undefined) state.requests = { level: requests.level - 1, updatedAt: time };
      if (tokens !== undefined) state.tokens = { level: tokens.level - worst.tokens, updatedAt: time };
      const entry = state.inFlight.get(day) ?? { tokens: 0, cost: 0 };
      state.inFlight.set(day, { tokens: entry.tokens + worst.tokens, cost: entry.cost + worst.cost });
      return { ok: true, reservation: { keyId: key.id, day, tokens: worst.tokens, cost: worst.cost, settled: false } };
    },

    settle(reservation, actual) {
      if (reservation.settled) return;
      reservation.settled = true;
      const state = states.get(reservation.keyId);
      if (state !== undefined) {
        const entry = state.inFlight.get(reservation.day);
        if (entry !== undefined) {
          const tokens = entry.tokens - reservation.tokens;
          const cost = entry.cost - reservation.cost;
          if (tokens <= 0 && cost <= 1e-12) state.inFlight.delete(reservation.day);
          else state.inFlight.set(reservation.day, { tokens, cost: Math.max(0, cost) });
        }
        const used = actual.tokensIn + actual.tokensOut;
        if (state.tokens !== undefined) {
          // Give back what was reserved but not used (or take the excess, if the provider wrote more).
          state.tokens = { level: state.tokens.level + reservation.tokens - used, updatedAt: state.tokens.updatedAt };
        }
        if (state.day === reservation.day) {
          state.settled.dayTokens += used;
          state.settled.dayCost += actual.cost;
        }
        state.settled.totalTokens += used;
        state.settled.totalCost += actual.cost;
      }
      store.addUsage(reservation.keyId, reservation.day, actual.tokensIn, actual.tokensOut, actual.cost);
    },
  };
}
