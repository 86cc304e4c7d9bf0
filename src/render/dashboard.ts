// The dashboard every rendered deployment runs: where it listens and what it reads. Each component keeps its own
// audit database on its own volume, so the dashboard copies each chain from that component's audit feed (read-only,
// the feed token) and verifies it itself; it decides approvals through mcp-guard's admin API with the admin token.
import type { PerimeterConfig } from "../config/index.ts";
import type { Endpoints } from "./endpoints.ts";
import {
  DASHBOARD,
  EGRESS_PROXY,
  LLM_PROXY,
  MCP_GUARD,
  SANDBOX_EGRESS_PROXY,
  SANDBOX_METRICS_PORT,
  SANDBOX_RUNNER,
  STATE_DIRECTORY,
  egressMetricsPort,
  portOf,
  sandboxAllowlist,
  sandboxServerName,
} from "./plan.ts";

/** A component whose audit feed the dashboard copies: the port that serves it (and its /healthz). */
export interface AuditFeed {
  /** The workload (Kubernetes Deployment, Compose service) and the dashboard's name for its log. */
  readonly component: string;
  readonly port: number;
  /** The health name the dashboard shows (the service's own name for itself). */
  readonly health: string;
}

/** Where each deployed component serves its audit feed (docs/dashboard.md): the listener that holds no agent traffic where there is one. */
export function auditFeeds(config: PerimeterConfig, target: Endpoints["target"]): AuditFeed[] {
  const feeds: AuditFeed[] = [
    { component: EGRESS_PROXY, port: egressMetricsPort(config), health: "egress-proxy" },
    // llm-proxy has one listener: the agent's port serves the feed too, to the feed token only.
    { component: LLM_PROXY, port: portOf(config.llm.listen), health: "llm-proxy" },
    { component: MCP_GUARD, port: portOf(config.mcp.admin.listen), health: "mcp-guard" },
  ];
  if (sandboxServerName(config) !== undefined) {
    feeds.push({ component: SANDBOX_RUNNER, port: SANDBOX_METRICS_PORT, health: "sandbox" });
    // Only Kubernetes runs the sandbox's egress proxy as a service of its own (bubblewrap runs it inside the runner).
    if (target === "kubernetes" && sandboxAllowlist(config) !== undefined) feeds.push({ component: SANDBOX_EGRESS_PROXY, port: egressMetricsPort(config), health: SANDBOX_EGRESS_PROXY });
  }
  return feeds;
}

/** The dashboard's listen port (its pod or container; published on Compose on 127.0.0.1 only). */
export function dashboardPort(config: PerimeterConfig): number {
  return portOf(config.dashboard.listen);
}

/**
 * The dashboard section of the runtime config. Kubernetes and the VPS bind loopback: kubectl port-forward and an SSH
 * tunnel both arrive on the pod's or host's 127.0.0.1. Compose must bind the container's address for Docker to
 * publish the port, which it publishes on the host's 127.0.0.1 only, from a network the agent is not on.
 */
export function dashboardSettings(config: PerimeterConfig, endpoints: Endpoints): Partial<PerimeterConfig["dashboard"]> {
  const feeds = auditFeeds(config, endpoints.target);
  const origin = (feed: AuditFeed) => endpoints.serviceOrigin(feed.component, feed.port);
  return {
    listen: `${endpoints.target === "compose" ? "0.0.0.0" : "127.0.0.1"}:${dashboardPort(config)}`,
    statePath: `${STATE_DIRECTORY}/dashboard.db`,
    // Its own log (refused logins, CSRF attempts) is a file on its own volume; every other log is a feed.
    sources: [{ name: DASHBOARD, path: config.audit.path }, ...feeds.map((feed) => ({ name: feed.component, url: origin(feed) }))],
    health: Object.fromEntries(feeds.map((feed) => [feed.health, `${origin(feed)}/healthz`])),
    adminUrl: endpoints.serviceOrigin(MCP_GUARD, portOf(config.mcp.admin.listen)),
  };
}
