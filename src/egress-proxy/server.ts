// The egress proxy server: a thin adapter around the pure decision (decide.ts). Written by hand on node:http and
// node:net rather than on a proxy library because it is the security boundary of every byte the agent sends out and
// small enough to own. Client requests are parsed by Node's strict llhttp (duplicate Content-Length, CL with TE,
// obs-fold and invalid characters are rejected there, and we reject the rest); every request is re-framed, never
// passed through raw, so a request smuggled past us cannot reach an origin. The upstream leg of plain HTTP is ours
// too (upstream.ts, http1.ts): a strict response parser and a keep-alive pool per client and address.
//
// One proxy is one state object (state.ts) that every stage takes; per request, the stages are:
//   front.ts     routes a request to its stage, refuses parse errors and upgrades, tracks client connections
//   forward.ts   plain HTTP: checks (http-target.ts), decide, admit, one exchange with the origin (upstream.ts)
//   tunnel.ts    CONNECT: decide, admit, dial, the TLS SNI check, then relay.ts
//   admit.ts     rate and tunnel limits, the name resolved once and every address checked (src/net)
//   dial.ts      connects to a checked address only (RFC 8305 across several)
//   record.ts    the request's one decision record, finished once: metrics and the audit log (group commit: the
//                request goes out while its record commits, or after with auditBeforeForwarding; nothing comes back
//                before the commit, and nothing more goes out if it fails)
//   refusals.ts  reasons, statuses and the answers a client gets
// This file holds the instance's life: listeners, policy reloads, runtime clients, close.
import http from "node:http";
import { PolicyError, clientConflicts, compileClient, compilePolicy } from "./policy.ts";
import type { ClientInput, EgressPolicy, EgressPolicyInput } from "./policy.ts";
import type { EgressMetrics } from "./metrics.ts";
import { applyTimeouts, createFrontServer, metricsHandler } from "./front.ts";
import { listenOn, selfAddressesOf } from "./listen.ts";
import { createProxyState, rebuildEffective } from "./state.ts";
import type { ListenTarget } from "./listen.ts";
import type { EgressProxyDependencies, EgressProxyState } from "./state.ts";
import { withAuditFeed } from "../shared/index.ts";
import type { BoundAddress } from "../shared/index.ts";

export type { AuditSink, Dialer, EgressProxyDependencies } from "./state.ts";
export type { ListenTarget } from "./listen.ts";

export interface RuntimeClient {
  readonly name: string;
  /** Revokes the client: its token stops working at once and its open tunnels are closed. Idempotent. */
  remove(): void;
}

export type ReloadResult = { readonly ok: true } | { readonly ok: false; readonly problems: readonly string[] };

export interface EgressProxy {
  /** Starts accepting proxy clients on `host:port` (`[::1]:3128`), `{ host, port }` or a Unix socket path. May be called more than once. */
  listen(target: ListenTarget): Promise<BoundAddress>;
  /** Serves `/metrics` (Prometheus), `/healthz` and the audit feed (when given one) on a separate listener, never on the proxy port. */
  listenMetrics(target: ListenTarget): Promise<BoundAddress>;
  /** Proxy listeners (not metrics), in the order they were opened. */
  addresses(): BoundAddress[];
  metricsAddresses(): BoundAddress[];
  /** Swaps in a new policy atomically; open tunnels stay open. An invalid policy keeps the old one and says why. */
  reload(policy: EgressPolicyInput): ReloadResult;
  /** Adds a client at run time (e.g. one per sandbox task) with its own token and allowlist. Throws PolicyError. */
  addClient(client: ClientInput): RuntimeClient;
  /** The policy in force, runtime clients included. */
  policy(): EgressPolicy;
  stats(): { openTunnels: number; openConnections: number };
  readonly metrics: EgressMetrics;
  /** Stops listening and closes every tunnel and connection. */
  close(): Promise<void>;
}

export function createEgressProxy(input: EgressPolicyInput, dependencies: EgressProxyDependencies = {}): EgressProxy {
  const state = createProxyState(input, dependencies);
  return {
    listen: (target) => listen(state, "proxy", target),
    listenMetrics: (target) => listen(state, "metrics", target),
    addresses: () => state.servers.map((entry) => entry.address),
    metricsAddresses: () => state.metricsServers.map((entry) => entry.address),
    reload: (next) => reload(state, next),
    addClient: (client) => addClient(state, client),
    policy: () => state.effective,
    stats: () => ({ openTunnels: state.tunnels.size, openConnections: state.connections.size }),
    metrics: state.metrics,
    close: () => close(state),
  };
}

async function listen(state: EgressProxyState, kind: "proxy" | "metrics", target: ListenTarget): Promise<BoundAddress> {
  if (state.closing) throw new Error("the proxy is closed");
  const server = kind === "proxy" ? createFrontServer(state) : http.createServer(withAuditFeed(state.auditFeed, (request, response) => metricsHandler(state, request, response)));
  const address = await listenOn(server, target);
  (kind === "proxy" ? state.servers : state.metricsServers).push({ server, address });
  // Every listener is this process: a request to any of them would loop.
  state.selfAddresses = selfAddressesOf([...state.servers, ...state.metricsServers].map((entry) => entry.address));
  if (kind === "proxy") state.logger.info({ address }, "egress proxy listening");
  return address;
}

function reload(state: EgressProxyState, next: EgressPolicyInput): ReloadResult {
  let compiled: EgressPolicy;
  try {
    compiled = compilePolicy(next);
    const conflicts = clientConflicts([...compiled.clients, ...state.runtimeClients.values()]);
    if (conflicts.length > 0) throw new PolicyError(conflicts);
  } catch (error) {
    const problems = error instanceof PolicyError ? error.problems : [(error as Error).message];
    state.metrics.policyReloads.inc({ result: "rejected" });
    state.logger.error({ problems }, "new egress policy is invalid; keeping the current one");
    return { ok: false, problems };
  }
  state.configPolicy = compiled;
  rebuildEffective(state);
  for (const { server } of state.servers) applyTimeouts(state, server);
  state.metrics.policyReloads.inc({ result: "applied" });
  state.logger.info({ rules: compiled.rules.length, clients: compiled.clients.length }, "egress policy reloaded");
  return { ok: true };
}

function addClient(state: EgressProxyState, client: ClientInput): RuntimeClient {
  const problems: string[] = [];
  const compiled = compileClient(client, [], problems);
  if (compiled === undefined) throw new PolicyError(problems);
  const conflicts = clientConflicts([...state.effective.clients, compiled]);
  if (conflicts.length > 0) throw new PolicyError(conflicts);
  const key = Symbol(compiled.name);
  state.runtimeClients.set(key, compiled);
  rebuildEffective(state);
  return {
    name: compiled.name,
    remove() {
      if (!state.runtimeClients.delete(key)) return;
      rebuildEffective(state);
      for (const tunnel of [...state.tunnels]) if (tunnel.client === compiled.name) tunnel.finish("client-removed");
      state.upstreamPool.clear((poolKey) => poolKey.startsWith(`client:${compiled.name}\0`));
    },
  };
}

async function close(state: EgressProxyState): Promise<void> {
  state.closing = true;
  const all = [...state.servers, ...state.metricsServers];
  state.servers.length = 0;
  state.metricsServers.length = 0;
  const closed = all.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
  for (const tunnel of [...state.tunnels]) tunnel.finish("proxy-closed");
  for (const { server } of all) server.closeAllConnections();
  for (const socket of state.connections.keys()) socket.destroy();
  state.upstreamPool.clear();
  // Records still queued for this turn are written before the caller closes the audit log.
  state.recorder?.flush();
  await Promise.all(closed);
}
