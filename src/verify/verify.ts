// One verification: the agent-side probe (isolation and MCP in one run of the probe program), the operator's checks
// and the host review, all at once, each bounded by its own timeout, so `verify all` takes about as long as its
// slowest probe.
import { createServer } from "node:net";
import type { PerimeterConfig } from "../config/index.ts";
import type { Server } from "node:net";
import { networkInterfaces } from "node:os";
import { hostResults } from "./host.ts";
import type { HostOptions } from "./host.ts";
import { isolationProbes, isolationResults } from "./isolation.ts";
import type { Address, IsolationPlan } from "./isolation.ts";
import { mcpProbe, mcpResults } from "./mcp.ts";
import type { McpFacts } from "./mcp.ts";
import { fail, skip } from "./model.ts";
import type { CheckResult, Suite } from "./model.ts";
import type { ProbeRequest } from "./probe.ts";
import { runProbe } from "./runners.ts";
import type { ProbeRun, Vantage } from "./runners.ts";

/** Seconds each network probe may take (a timeout is "blocked"); the whole probe run gets a bounded multiple. */
export const PROBE_TIMEOUT_SECONDS = 2.5;
const PROBE_DEADLINE_MS = 13_000;

export interface TargetSetup {
  readonly config: PerimeterConfig;
  /** Where the agent-side probes run; undefined with `noVantage` saying why. */
  readonly vantage: Vantage | undefined;
  readonly noVantage?: string;
  /** Where the MCP probe runs (the agent's vantage, or the operator's side with the agent's token). */
  readonly mcpVantage: Vantage | undefined;
  readonly isolation: IsolationPlan;
  /** Checks made from the operator's side (NetworkPolicies, pod spec, unit file, the agent's routes). */
  readonly operatorIsolation: () => Promise<CheckResult[]>;
  readonly mcpUrl: string;
  readonly tokenVariable: string;
  readonly mcpFacts: () => Promise<McpFacts>;
  /** undefined: the host review does not apply (kubernetes, compose) and says why. */
  readonly host: HostOptions | undefined;
  readonly hostNotApplicable?: string;
  readonly notes: readonly string[];
  readonly close: () => Promise<void>;
}

/** Order within a suite: the operator's isolation checks first, as seed 003's script prints them. */
export async function runVerification(setup: TargetSetup, suites: ReadonlySet<Suite>): Promise<CheckResult[]> {
  const probes: ProbeRequest[] = [];
  if (suites.has("isolation")) probes.push(...isolationProbes(setup.isolation));
  const mcpHere = suites.has("mcp") && setup.mcpVantage === setup.vantage && setup.mcpVantage !== undefined;
  if (mcpHere) probes.push(mcpProbe(setup.config, setup.mcpUrl, setup.tokenVariable));

  const started = performance.now();
  const noRun: ProbeRun = { ok: false, error: setup.noVantage ?? "no vantage point for the agent" };
  const agentRun = setup.vantage === undefined || probes.length === 0 ? Promise.resolve(noRun) : runProbe(setup.vantage, { timeout: PROBE_TIMEOUT_SECONDS, probes }, PROBE_DEADLINE_MS);
  const mcpRun: Promise<ProbeRun> = !suites.has("mcp")
    ? Promise.resolve(noRun)
    : mcpHere
      ? agentRun
      : setup.mcpVantage === undefined
        ? Promise.resolve(noRun)
        : runProbe(setup.mcpVantage, { timeout: PROBE_TIMEOUT_SECONDS, probes: [mcpProbe(setup.config, setup.mcpUrl, setup.tokenVariable)] }, PROBE_DEADLINE_MS);
  const timed = async <T>(work: Promise<T>) => {
    const value = await work;
    return { value, seconds: (performance.now() - started) / 1000 };
  };
  const [operator, agent, mcp, facts, host] = await Promise.all([
    suites.has("isolation") ? timed(setup.operatorIsolation()) : undefined,
    timed(agentRun),
    timed(mcpRun),
    suites.has("mcp") ? setup.mcpFacts() : undefined,
    suites.has("host") && setup.host !== undefined ? timed(hostResults(setup.host)) : undefined,
  ]);
  const withTime = (results: readonly CheckResult[], seconds: number) => results.map((result) => ({ ...result, seconds: Number(seconds.toFixed(3)) }));
  const results: CheckResult[] = [];
  if (operator !== undefined) results.push(...withTime(operator.value, operator.seconds), ...withTime(isolationResults(setup.isolation, agent.value), agent.seconds));
  if (facts !== undefined) results.push(...withTime(mcpResults(setup.config, mcp.value, facts), mcp.seconds));
  if (suites.has("host")) {
    if (host !== undefined) results.push(...withTime(host.value, host.seconds));
    else results.push(skip("host", "host", setup.hostNotApplicable ?? "the host review applies to vps and local"));
  }
  return results;
}

export interface Canary {
  /** The addresses (non-loopback addresses of this host, each at the canary's port) the agent must not reach. */
  readonly addresses: readonly Address[];
  readonly port: number;
  close(): Promise<void>;
}

/**
 * verify's own always-listening target on this host (what the Kubernetes API ClusterIP is in seed 003): a TCP
 * listener on every address, probed from the agent's side on each non-loopback address of this host. A connect
 * there reaches something that is not the perimeter. It accepts and closes; nothing is read.
 */
export async function openCanary(): Promise<Canary> {
  const server: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "0.0.0.0", port: 0 }, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const addresses: Address[] = [];
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) if (entry.family === "IPv4" && !entry.internal) addresses.push({ host: entry.address, port });
  }
  return { addresses, port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

export function unreachable(id: string, why: string): CheckResult {
  return fail(id, "isolation", why, "see docs/verify.md for how verify reaches this target");
}
