// Prometheus metrics of one guard, on its own Registry (several services may share a process in tests or `up`).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface GuardMetrics {
  registry: Registry;
  toolCalls: Counter<"server" | "decision">;
  toolCallSeconds: Histogram<"server">;
  upstreamUp: Gauge<"server">;
  authFailures: Counter<"reason">;
  auditFailures: Counter;
  approvalsPending: Gauge<"kind">;
  approvalRequests: Counter<"kind">;
  approvalHookFailures: Counter;
  toolDefinitions: Gauge<"status">;
}

export function createGuardMetrics(collect: { approvalsPending: (kind: "tool-call" | "tool-definition") => number; definitions: () => Record<string, number> }): GuardMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "perimeter_mcp_guard_" });
  return {
    registry,
    toolCalls: new Counter({ name: "perimeter_mcp_guard_tool_calls_total", help: "tools/call requests by outcome: allow, deny, error (upstream or audit failure), cancelled", labelNames: ["server", "decision"], registers: [registry] }),
    toolCallSeconds: new Histogram({
      name: "perimeter_mcp_guard_tool_call_seconds",
      help: "Time from the agent's tools/call to the guard's answer, including upstream time and approval waits",
      labelNames: ["server"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600],
      registers: [registry],
    }),
    upstreamUp: new Gauge({ name: "perimeter_mcp_guard_upstream_up", help: "1 when the upstream is connected and its tools synced", labelNames: ["server"], registers: [registry] }),
    authFailures: new Counter({ name: "perimeter_mcp_guard_auth_failures_total", help: "Requests refused before MCP: bad token, Host or Origin", labelNames: ["reason"], registers: [registry] }),
    auditFailures: new Counter({ name: "perimeter_mcp_guard_audit_failures_total", help: "Audit writes that failed (a dispatch or result record refuses its call; a refusal or cancellation record is logged)", registers: [registry] }),
    approvalsPending: new Gauge({
      name: "perimeter_mcp_guard_approvals_pending",
      help: "Requests waiting for a human",
      labelNames: ["kind"],
      registers: [registry],
      collect() {
        this.set({ kind: "tool-call" }, collect.approvalsPending("tool-call"));
        this.set({ kind: "tool-definition" }, collect.approvalsPending("tool-definition"));
      },
    }),
    approvalRequests: new Counter({ name: "perimeter_mcp_guard_approval_requests_total", help: "Requests opened for a human: held calls and definitions waiting for review (alert on its rate)", labelNames: ["kind"], registers: [registry] }),
    approvalHookFailures: new Counter({ name: "perimeter_mcp_guard_approval_hook_failures_total", help: "approvals.hook runs that failed, timed out or were skipped", registers: [registry] }),
    toolDefinitions: new Gauge({
      name: "perimeter_mcp_guard_tool_definitions",
      help: "Pinned tool definitions by status (pending = quarantined)",
      labelNames: ["status"],
      registers: [registry],
      collect() {
        for (const [status, count] of Object.entries(collect.definitions())) this.set({ status }, count);
      },
    }),
  };
}
