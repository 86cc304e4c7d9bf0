// Where each component is reached from the others, per target: Kubernetes Service DNS names, or Compose service
// names on the project networks.
import type { PerimeterConfig } from "../config/index.ts";
import { namespaces, serviceHost } from "./kubernetes/names.ts";
import {
  EGRESS_PROXY,
  KUBERNETES_MCP,
  KUBERNETES_MCP_PORT,
  LLM_PATH,
  LLM_PROXY,
  MCP_GUARD,
  MCP_PATH,
  SANDBOX_EGRESS_PROXY,
  SANDBOX_RUNNER,
  portOf,
  servedModels,
} from "./plan.ts";
import type { Target } from "./plan.ts";

export interface Endpoints {
  readonly target: Target;
  readonly mcpGuardHost: string;
  readonly mcpGuardUrl: string;
  readonly llmProxyHost: string;
  readonly llmProxyUrl: string;
  readonly egressProxyUrl: string;
  readonly sandboxEgressProxyUrl: string;
  readonly sandboxRunnerUrl: string;
  readonly kubernetesMcpUrl: string;
  /** A deployed MCP server's base address (scheme, host and port); render keeps the config's path. */
  readonly mcpServerOrigin: (workload: string, port: number) => string;
  /** A served model's baseUrl. */
  readonly servedModelUrl: (provider: string) => string;
  /** A perimeter component's address on one of its ports (the dashboard reads the feeds and health there). */
  readonly serviceOrigin: (component: string, port: number) => string;
}

/**
 * Compose: a perimeter service's name on the `audit` network only (a network-scoped alias in compose.yaml). Its
 * admin and audit-feed listeners bind this name, which Docker's embedded DNS answers with the container's address on
 * `audit`, so they are not on the interface the agent's or a tool server's network reaches; the dashboard dials it.
 */
export function composeAuditAlias(service: string): string {
  return `${service}-audit`;
}

export function endpoints(config: PerimeterConfig, target: Target): Endpoints {
  const { tools, llm } = namespaces(config);
  const host = (service: string, namespace: string) => (target === "kubernetes" ? serviceHost(service, namespace) : service);
  const mcpGuardHost = host(MCP_GUARD, tools);
  const llmProxyHost = host(LLM_PROXY, tools);
  const served = new Map(servedModels(config).map((model) => [model.provider, model]));
  return {
    target,
    mcpGuardHost,
    mcpGuardUrl: `http://${mcpGuardHost}:${portOf(config.mcp.listen)}${MCP_PATH}`,
    llmProxyHost,
    llmProxyUrl: `http://${llmProxyHost}:${portOf(config.llm.listen)}${LLM_PATH}`,
    egressProxyUrl: `http://${host(EGRESS_PROXY, tools)}:${portOf(config.egress.listen)}`,
    sandboxEgressProxyUrl: `http://${host(SANDBOX_EGRESS_PROXY, tools)}:${portOf(config.egress.listen)}`,
    sandboxRunnerUrl: `http://${host(SANDBOX_RUNNER, tools)}:${portOf(config.sandbox.listen)}${MCP_PATH}`,
    kubernetesMcpUrl: `http://${host(KUBERNETES_MCP, tools)}:${KUBERNETES_MCP_PORT}${MCP_PATH}`,
    mcpServerOrigin: (workload, port) => `http://${host(workload, tools)}:${port}`,
    serviceOrigin: (component, port) => `http://${target === "compose" ? composeAuditAlias(component) : host(component, tools)}:${port}`,
    servedModelUrl: (provider) => {
      const model = served.get(provider);
      if (model === undefined) throw new Error(`internal: ${provider} is not served`);
      const service = target === "kubernetes" ? provider : `llm-${provider}`;
      return `http://${host(service, llm)}:${model.port}${model.path}`;
    },
  };
}
