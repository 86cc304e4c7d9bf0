// What every agent behind the perimeter is told, decided once from perimeter.yaml: where its model is and which
// variable holds its virtual key, where its one MCP server (mcp-guard) is and which variable holds its token, how
// long a call may take (a held call waits for a human), and the egress proxy for everything else. Each agent module
// only writes these facts in its own format, so no agent can be told something another is not.
import type { PerimeterConfig } from "../config/index.ts";
import { HERMES_MCP_SERVER, agentEntry, agentLlmKeySecret, agentNoProxy, defaultModel, endpoints, hermesTimeouts, portOf } from "../render/index.ts";
import type { Endpoints, EnvironmentEntry } from "../render/index.ts";

/** Where the agent runs relative to the services: on their host (perimeter up / serve), or in a rendered deployment. */
export type Placement = "local" | "compose" | "kubernetes";
export const PLACEMENTS: readonly Placement[] = ["local", "compose", "kubernetes"];

export interface AgentFacts {
  readonly perimeterName: string;
  readonly endpoints: Endpoints;
  /** The model name llm-proxy resolves (llm.default, else the first provider's first model). */
  readonly model: string;
  /** The OpenAI-compatible base URL (…/v1). */
  readonly llmBaseUrl: string;
  /** The same without /v1, for Anthropic SDKs (they append /v1/messages themselves). */
  readonly llmOrigin: string;
  /** The variable holding the agent's llm-proxy virtual key (never a provider key). */
  readonly llmKeyVariable: string;
  /** The name the agent gives mcp-guard among its MCP servers. */
  readonly mcpServerName: string;
  readonly mcpUrl: string;
  /** The variable holding the agent's mcp-guard token. */
  readonly agentTokenVariable: string;
  readonly egressProxyUrl: string;
  readonly noProxy: string;
  /** A call's hard deadline: the longest hold for a human, the longest upstream call and a margin. */
  readonly mcpCallSeconds: number;
  /** The longest a call may run without a word from the guard: the longest upstream call and the margin. While a call
   * waits for a human the guard sends progress every 10 s, so an idle timeout of at least this is never reached. */
  readonly mcpSilentSeconds: number;
  readonly mcpConnectSeconds: number;
  /** Commands run only in sandboxes behind mcp-guard: the agent's own shell and file tools must be off. */
  readonly sandboxOnly: boolean;
}

/** A host the agent can dial for a listen address: a wildcard listen is reached on loopback. */
function reachableHost(hostPort: string): string {
  const host = hostPort.slice(0, hostPort.lastIndexOf(":"));
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "[::]") return "[::1]";
  return host;
}

/**
 * On the services' own host the agent dials the listen addresses of perimeter.yaml. Everything else (the sandbox
 * backend, which servers exist) is as in Compose, which also runs the services on one machine with bubblewrap.
 */
function localEndpoints(config: PerimeterConfig): Endpoints {
  const composed = endpoints(config, "compose");
  const url = (hostPort: string, path: string) => `http://${reachableHost(hostPort)}:${portOf(hostPort)}${path}`;
  const bare = (hostPort: string) => reachableHost(hostPort).replace(/^\[(.*)\]$/, "$1");
  return {
    ...composed,
    mcpGuardHost: bare(config.mcp.listen),
    mcpGuardUrl: url(config.mcp.listen, "/mcp"),
    llmProxyHost: bare(config.llm.listen),
    llmProxyUrl: url(config.llm.listen, "/v1"),
    egressProxyUrl: url(config.egress.listen, ""),
    sandboxRunnerUrl: url(config.sandbox.listen, "/mcp"),
  };
}

export function agentFacts(config: PerimeterConfig, placement: Placement): AgentFacts {
  const where = placement === "local" ? localEndpoints(config) : endpoints(config, placement);
  const timeouts = hermesTimeouts(config, where);
  return {
    perimeterName: config.name,
    endpoints: where,
    model: defaultModel(config),
    llmBaseUrl: where.llmProxyUrl,
    llmOrigin: where.llmProxyUrl.replace(/\/v1$/, ""),
    llmKeyVariable: agentLlmKeySecret(config),
    mcpServerName: HERMES_MCP_SERVER,
    mcpUrl: where.mcpGuardUrl,
    agentTokenVariable: agentEntry(config).tokenSecret,
    egressProxyUrl: where.egressProxyUrl,
    noProxy: [...new Set(agentNoProxy(where).split(","))].join(","),
    mcpCallSeconds: timeouts.mcpCallSeconds,
    mcpSilentSeconds: timeouts.mcpCallSeconds - config.approvals.timeoutSeconds,
    mcpConnectSeconds: timeouts.mcpConnectSeconds,
    sandboxOnly: config.agent.terminal === "sandbox",
  };
}

/** The proxy variables, upper and lower case (libraries read either), and what bypasses the proxy: the perimeter. */
export function proxyEnvironment(facts: AgentFacts): EnvironmentEntry[] {
  return [
    ...["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"].map((name) => ({ name, value: facts.egressProxyUrl })),
    { name: "NO_PROXY", value: facts.noProxy },
    { name: "no_proxy", value: facts.noProxy },
  ];
}
