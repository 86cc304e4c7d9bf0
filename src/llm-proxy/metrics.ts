// Prometheus metrics of one llm-proxy, in its own Registry (never the global one: two proxies in one process, as in
// tests, must not share counters). Labels are bounded: route, provider, decision, reason kind, DLP kind.
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export interface LlmProxyMetrics {
  readonly registry: Registry;
  readonly requests: Counter<"route" | "decision" | "reason">;
  readonly dlpHits: Counter<"kind" | "action">;
  readonly tokens: Counter<"provider" | "direction">;
  readonly cost: Counter<"provider">;
  readonly failovers: Counter<"from" | "to">;
  readonly duration: Histogram<"route" | "provider">;
  readonly timeToFirstToken: Histogram<"provider">;
  readonly inFlight: Gauge;
  readonly auditFailures: Counter;
  readonly upstreamCancelled: Counter<"provider">;
}

export function createLlmProxyMetrics(): LlmProxyMetrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    requests: new Counter({ name: "llm_proxy_requests_total", help: "Requests by route and decision (allow, deny, error) with the reason.", labelNames: ["route", "decision", "reason"], registers }),
    dlpHits: new Counter({ name: "llm_proxy_dlp_hits_total", help: "Secrets found in prompts, by kind and action (redacted, blocked). Never the value.", labelNames: ["kind", "action"], registers }),
    tokens: new Counter({ name: "llm_proxy_tokens_total", help: "Tokens settled, by provider and direction (input, output).", labelNames: ["provider", "direction"], registers }),
    cost: new Counter({ name: "llm_proxy_cost_total", help: "Cost settled, in the unit of costPer1kTokens, by provider.", labelNames: ["provider"], registers }),
    failovers: new Counter({ name: "llm_proxy_failovers_total", help: "Requests moved to the failover provider.", labelNames: ["from", "to"], registers }),
    duration: new Histogram({
      name: "llm_proxy_request_duration_seconds",
      help: "Time from request to the end of the response, by route and provider.",
      labelNames: ["route", "provider"],
      buckets: [0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    timeToFirstToken: new Histogram({
      name: "llm_proxy_time_to_first_chunk_seconds",
      help: "Time from request to the first streamed chunk sent to the agent.",
      labelNames: ["provider"],
      buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    inFlight: new Gauge({ name: "llm_proxy_requests_in_flight", help: "Requests being served.", registers }),
    auditFailures: new Counter({ name: "llm_proxy_audit_failures_total", help: "Audit appends that failed (requests are refused until the log recovers).", registers }),
    upstreamCancelled: new Counter({ name: "llm_proxy_upstream_cancelled_total", help: "Upstream requests cancelled because the agent went away.", labelNames: ["provider"], registers }),
  };
}
