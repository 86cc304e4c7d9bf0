// Prometheus metrics of one proxy instance, in its own Registry (never the global one: several services, and
// several proxies in tests, live in one process).
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export interface EgressMetrics {
  readonly registry: Registry;
  /** Final outcome of every request: decision allow | deny | error, with its reason. */
  readonly decisions: Counter<"decision" | "reason">;
  readonly openTunnels: Gauge;
  /** Bytes relayed, by direction (upstream = client to origin), counted when a tunnel or connection closes. */
  readonly bytes: Counter<"direction">;
  /** From a request head to the upstream connection being ready (decision, DNS, SSRF check, dial). */
  readonly setupSeconds: Histogram<"kind">;
  readonly policyReloads: Counter<"result">;
  /** Audit records that could not be written (each one also went to the operational log at error level). */
  readonly auditFailures: Counter;
}

export function createEgressMetrics(): EgressMetrics {
  const registry = new Registry();
  return {
    registry,
    decisions: new Counter({
      name: "perimeter_egress_decisions_total",
      help: "Egress proxy decisions by outcome (allow, deny, error) and reason.",
      labelNames: ["decision", "reason"],
      registers: [registry],
    }),
    openTunnels: new Gauge({ name: "perimeter_egress_open_tunnels", help: "CONNECT tunnels open now.", registers: [registry] }),
    bytes: new Counter({
      name: "perimeter_egress_bytes_total",
      help: "Bytes relayed; upstream = from clients to origins, downstream = from origins to clients.",
      labelNames: ["direction"],
      registers: [registry],
    }),
    setupSeconds: new Histogram({
      name: "perimeter_egress_setup_seconds",
      help: "Time from a request head to its upstream connection being ready (decision, resolution, SSRF check, dial).",
      labelNames: ["kind"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    policyReloads: new Counter({
      name: "perimeter_egress_policy_reloads_total",
      help: "Policy reloads by result (applied, rejected).",
      labelNames: ["result"],
      registers: [registry],
    }),
    auditFailures: new Counter({
      name: "perimeter_egress_audit_failures_total",
      help: "Audit records that could not be written; while the log fails, every request is refused (audit-unavailable).",
      registers: [registry],
    }),
  };
}
