// The admission stage, after the pure decision: the client's request rate, its tunnel count, then the name resolved
// once and every address checked against the SSRF deny set (src/net). What comes out is a refusal, or the checked
// addresses the dial stage may connect to.
import { resolveChecked } from "../net/index.ts";
import type { CheckedAddress } from "../net/index.ts";
import type { EgressDecision } from "./decide.ts";
import type { Refusal, RefusalReason } from "./refusals.ts";
import { clientKey } from "./state.ts";
import type { EgressProxyState } from "./state.ts";

export type Admission =
  | {
      readonly ok: false;
      readonly refusal: Refusal;
      /** The first address the name resolved to, when the refusal is about it. */
      readonly address?: string | undefined;
    }
  | {
      readonly ok: true;
      /** The first checked address (the one the record names until a dial says which one answered). */
      readonly address: string;
      /** Every checked address, in the resolver's order. */
      readonly candidates: readonly CheckedAddress[];
      /** Gives the tunnel slot back (CONNECT only). */
      readonly release?: () => void;
    };

/** Rate limit (denied requests count too), tunnel limit, then resolve and check every address. */
export async function admit(state: EgressProxyState, decision: EgressDecision, source: string, kind: "connect" | "http"): Promise<Admission> {
  const limits = state.effective.limits;
  const key = clientKey(decision.client, source);
  if (!state.rateLimiter.take(key, limits.requestsPerSecondPerClient, performance.now())) {
    if (!decision.allow) return { ok: false, refusal: { reason: decision.reason, message: decision.message } };
    return { ok: false, refusal: { reason: "rate-limited", message: `client "${decision.client}" is over ${limits.requestsPerSecondPerClient} requests per second; slow down or raise egress.limits.requestsPerSecondPerClient` } };
  }
  if (!decision.allow) return { ok: false, refusal: { reason: decision.reason, message: decision.message } };
  let release: (() => void) | undefined;
  if (kind === "connect") {
    const slot = state.tunnelCounter.acquire(key, limits.tunnelsPerClient, limits.tunnelsTotal);
    if (!slot.ok) {
      const message =
        slot.scope === "client"
          ? `client "${decision.client}" already holds ${limits.tunnelsPerClient} tunnels; close some or raise egress.limits.tunnelsPerClient`
          : `the proxy already holds ${limits.tunnelsTotal} tunnels; retry later or raise egress.limits.tunnelsTotal`;
      return { ok: false, refusal: { reason: "tunnel-limit", message } };
    }
    release = slot.release;
  }
  const resolved = await resolveChecked(decision.host, { resolver: state.resolver, allowCidrs: decision.allowCidrs, selfAddresses: state.selfAddresses, timeoutMs: limits.connectTimeoutSeconds * 1000 });
  if (!resolved.ok) {
    release?.();
    const message =
      resolved.reason === "dns-failure"
        ? `${decision.host} could not be resolved (${resolved.detail})`
        : resolved.reason === "proxy-address"
          ? `${resolved.detail}: that is this proxy, and a request to it would loop`
          : `${resolved.detail}, which is in the SSRF deny set; if this host really lives in a private range, give its rule an allowCidr for that range`;
    const reason: RefusalReason = resolved.reason === "invalid-address" ? "private-address" : resolved.reason;
    return { ok: false, refusal: { reason, message }, address: resolved.addresses[0] };
  }
  return { ok: true, address: resolved.address, candidates: resolved.candidates, ...(release !== undefined ? { release } : {}) };
}
