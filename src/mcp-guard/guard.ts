// mcp-guard: the agent's one MCP endpoint. It authenticates the agent, serves the tools it may use (namespaced,
// pinned, filtered), runs every call through the policy pipeline (calls.ts) and forwards it to the upstream with the
// upstream's own credentials, which the agent never sees. A second, admin listener serves the approvals API, the
// audit feed, /metrics and /healthz.
//   guard-state.ts     everything the guard holds, built once (stores, catalog, upstreams, tokens, the call pipeline)
//   mcp-endpoint.ts    the MCP methods for both protocol revisions
//   agent-listener.ts  /mcp: Host, token, then the endpoint       admin-listener.ts  the admin routes
// This file starts and stops them in order.
import type { AddressInfo } from "node:net";
import type { ApprovalStore } from "../approvals/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { createAdminListener } from "./admin-listener.ts";
import { createAgentListener } from "./agent-listener.ts";
import type { ToolCaller } from "./calls.ts";
import type { Catalog } from "./catalog.ts";
import { createGuardState } from "./guard-state.ts";
import type { GuardState, McpGuardDependencies, McpGuardOptions } from "./guard-state.ts";
import { closeListener, listenOn } from "./listener-http.ts";
import { createMcpEndpoint } from "./mcp-endpoint.ts";
import type { GuardMetrics } from "./metrics.ts";
import type { PinStore } from "./pins.ts";
import type { Upstream } from "./upstream.ts";

export { GUARD_VERSION } from "./guard-state.ts";
export type { McpGuardDependencies, McpGuardOptions } from "./guard-state.ts";

export interface McpGuard {
  listen(): Promise<{ agent: AddressInfo; admin: AddressInfo }>;
  /** Resolves once every upstream has finished its first connection attempt (success or failure) or after timeoutMs. */
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
  readonly approvals: ApprovalStore;
  readonly pins: PinStore;
  readonly catalog: Catalog;
  readonly metrics: GuardMetrics;
  readonly calls: ToolCaller;
  upstream(name: string): Upstream | undefined;
}

export function createMcpGuard(config: PerimeterConfig, dependencies: McpGuardDependencies, options: McpGuardOptions = {}): McpGuard {
  const state = createGuardState(config, dependencies, options);
  const endpoint = createMcpEndpoint(state);
  const agentServer = createAgentListener(state, endpoint);
  const adminServer = createAdminListener(state);
  // A decided definition review changes what the agent may see.
  const unsubscribe = state.approvals.subscribe((event) => {
    if (event.type !== "approval-decision" || event.approval.kind !== "tool-definition") return;
    const { server, tool, definitionHash, status, approver } = event.approval;
    state.pins.decide(server, tool, definitionHash, status === "approved" ? "trusted" : "denied", approver ?? "unknown");
    if (state.catalog.refresh(server)) state.toolsChanged();
  });

  let started = false;
  return {
    approvals: state.approvals,
    pins: state.pins,
    catalog: state.catalog,
    metrics: state.metrics,
    calls: state.calls,
    upstream: (name) => state.upstreams.get(name),
    async listen() {
      if (!started) {
        started = true;
        start(state);
      }
      const agent = await listenOn(agentServer, state.listen.agent);
      const admin = await listenOn(adminServer, state.listen.admin);
      state.logger.info({ event: "listening", agent: `${agent.address}:${agent.port}`, admin: `${admin.address}:${admin.port}`, servers: [...state.upstreams.keys()] }, "mcp-guard listening");
      return { agent, admin };
    },
    async ready(timeoutMs = 30_000) {
      await Promise.race([Promise.all(state.startup.firstAttempts.values()), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    },
    async close() {
      unsubscribe();
      state.announcer.close();
      await state.telegram?.close();
      await endpoint.close();
      await Promise.all([agentServer, adminServer].map(closeListener));
      await Promise.all([...state.upstreams.values()].map((upstream) => upstream.close()));
      state.calls.flush();
      state.approvals.close();
    },
  };
}

/** Connects the upstreams and the approver bot, and opens the starting window a tools/list waits within. */
function start(state: GuardState): void {
  const { startup } = state;
  for (const upstream of state.upstreams.values()) upstream.start();
  state.telegram?.start();
  const bound = state.options.firstListWaitMs ?? 10_000;
  startup.startingWindow = Promise.race([startup.firstSync, new Promise<void>((resolve) => setTimeout(resolve, bound).unref())]).then(() => {
    startup.starting = false;
  });
}
