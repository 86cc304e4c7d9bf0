// Per-client request rate (token bucket) and concurrent tunnel counting. State lives in the proxy instance that
// creates these, never in the module.

export interface RateLimiter {
  /** Takes one request from `key`'s bucket; false when the client is over its rate. */
  take(key: string, perSecond: number, nowMs: number): boolean;
  readonly size: number;
}

/** Buckets hold up to one second's worth of requests, so a client may burst to its rate and then sustain it. */
export function createRateLimiter(maxKeys = 10_000): RateLimiter {
  const buckets = new Map<string, { tokens: number; updatedAt: number }>();
  return {
    take(key, perSecond, nowMs) {
      const capacity = Math.max(1, perSecond);
      let bucket = buckets.get(key);
      if (bucket === undefined) {
        if (buckets.size >= maxKeys) {
          // Forget clients whose buckets have refilled: they lose nothing. Bounded memory under a source-address scan.
          for (const [other, state] of buckets) {
            if (state.tokens + ((nowMs - state.updatedAt) / 1000) * perSecond >= capacity) buckets.delete(other);
          }
          if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value as string);
        }
        bucket = { tokens: capacity, updatedAt: nowMs };
        buckets.set(key, bucket);
      }
      bucket.tokens = Math.min(capacity, bucket.tokens + ((nowMs - bucket.updatedAt) / 1000) * perSecond);
      bucket.updatedAt = nowMs;
      if (bucket.tokens < 1) return false;
      bucket.tokens -= 1;
      return true;
    },
    get size() {
      return buckets.size;
    },
  };
}

export interface TunnelCounter {
  /** Reserves a tunnel for `key`; the reason when a limit is reached. */
  acquire(key: string, perClient: number, total: number): { ok: true; release: () => void } | { ok: false; scope: "client" | "total" };
  readonly total: number;
  count(key: string): number;
}

export function createTunnelCounter(): TunnelCounter {
  const perKey = new Map<string, number>();
  let total = 0;
  return {
    acquire(key, perClient, totalLimit) {
      if (total >= totalLimit) return { ok: false, scope: "total" };
      const current = perKey.get(key) ?? 0;
      if (current >= perClient) return { ok: false, scope: "client" };
      perKey.set(key, current + 1);
      total += 1;
      let released = false;
      return {
        ok: true,
        release() {
          if (released) return;
          released = true;
          total -= 1;
          const left = (perKey.get(key) ?? 1) - 1;
          if (left === 0) perKey.delete(key);
          else perKey.set(key, left);
        },
      };
    },
    get total() {
      return total;
    },
    count(key) {
      return perKey.get(key) ?? 0;
    },
  };
}
