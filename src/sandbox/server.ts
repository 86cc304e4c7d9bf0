// `perimeter serve sandbox`: an MCP server (Streamable HTTP at /mcp, bearer token) whose tools run each task in a
// disposable sandbox. mcp-guard is its one expected client; it forwards which agent is calling in
// X-Perimeter-Caller, which keys the per-caller quotas and named workspaces (trusted only because the caller holds
// the token). Metrics are served on a listener of their own (listenMetrics), without that token.
//
// A request's way through the modules: server-http.ts (route, token, Host, caller, bounded body, cancellations) →
// the MCP handler → server-tools.ts (the tool for this caller) → server-run.ts (check and quota, record the start,
// slot, run on the backend, workspace, record the result, answer with server-output.ts). The state all of them
// take is built once in server-state.ts; admission (slots, quotas) is server-admission.ts.
import { createMcpHandler } from "@modelcontextprotocol/server";
import { toNodeHandler } from "@modelcontextprotocol/node";
import type { Registry } from "prom-client";
import { listenRunner, mcpRequestHandler, metricsRequestHandler } from "./server-http.ts";
import { createServerState } from "./server-state.ts";
import type { SandboxServerOptions } from "./server-state.ts";
import { toolServerFor } from "./server-tools.ts";

export type { CallerQuotas } from "./server-admission.ts";
export type { SandboxAuditSink, SandboxServerOptions } from "./server-state.ts";

export interface SandboxServer {
  listen(target: string): Promise<{ host: string; port: number; url: string }>;
  /**
   * Serves GET /metrics (Prometheus) and /healthz on a listener of its own, without a token: a scraper must not hold
   * the token that runs commands, and this listener runs none. The MCP listener does not serve /metrics.
   */
  listenMetrics(target: string): Promise<{ host: string; port: number; url: string }>;
  readonly registry: Registry;
  close(): Promise<void>;
}

export function createSandboxServer(options: SandboxServerOptions): SandboxServer {
  const state = createServerState(options);
  const handler = createMcpHandler((context) => toolServerFor(state, context), { maxRequestBodySize: state.maxRequestBytes });
  const serveMcp = toNodeHandler(handler, { maxRequestBodySize: state.maxRequestBytes, onerror: (error) => state.logger.error({ event: "mcp-error", error: error.message }, "MCP request failed") });
  const onRequest = mcpRequestHandler(state, serveMcp);
  const onMetricsRequest = metricsRequestHandler(state);
  return {
    registry: state.metrics.registry,
    async listen(target) {
      const { loopback, ...address } = await listenRunner(state, target, onRequest, "/mcp");
      state.loopbackOnly = loopback;
      return address;
    },
    async listenMetrics(target) {
      const { loopback: _loopback, ...address } = await listenRunner(state, target, onMetricsRequest, "/metrics");
      return address;
    },
    async close() {
      clearInterval(state.sweeper);
      await handler.close();
      await Promise.all(
        state.servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
      // Records still queued for this turn's commit are written before the caller closes the audit log.
      state.recorder.flush();
    },
  };
}
