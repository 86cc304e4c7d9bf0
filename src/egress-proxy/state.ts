// The state of one egress proxy instance, as one typed object every stage takes: the policy in force, the limiters,
// the recorder, the listeners, the open connections and tunnels, the upstream pool. Nothing lives in module scope:
// several proxies (tests, a sandbox runner's per-task proxy, `perimeter up`) share one process.
import type http from "node:http";
import type { Counter, Histogram } from "prom-client";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { cachingResolver, systemResolver } from "../net/index.ts";
import type { AddressFamily, Resolver } from "../net/index.ts";
import { createAuditRecorder } from "../audit-log/index.ts";
import type { AuditRecorder, RecorderLog } from "../audit-log/index.ts";
import { silentLogger } from "../shared/index.ts";
import type { AuditFeedRoute, BoundAddress, Logger } from "../shared/index.ts";
import { createRateLimiter, createTunnelCounter } from "./limits.ts";
import type { RateLimiter, TunnelCounter } from "./limits.ts";
import { createEgressMetrics } from "./metrics.ts";
import type { EgressMetrics } from "./metrics.ts";
import { compilePolicy } from "./policy.ts";
import type { EgressPolicy, EgressPolicyInput, PolicyClient } from "./policy.ts";
import { createUpstreamPool } from "./upstream-pool.ts";
import type { UpstreamPool } from "./upstream-pool.ts";

/**
 * Where the audit records go: the audit-log module's AuditLog satisfies this. `append` throws when it cannot record.
 * A sink that also offers `prepare` and `appendPrepared` (the AuditLog does) gets group commit: the records of one
 * event-loop turn are written in one transaction, and no answer reaches a client before its record is committed.
 */
export type AuditSink = RecorderLog;

/**
 * Opens the upstream connection. Always given an IP address that passed the SSRF check, never a name. `onread`, when
 * given, must be passed to net.connect: tunnels read into their own buffer instead of allocating one per read.
 */
export type Dialer = (target: { readonly host: string; readonly port: number; readonly family: AddressFamily; readonly onread?: net.OnReadOpts }) => net.Socket;

export interface EgressProxyDependencies {
  /** Name resolution; the proxy resolves each name once per request. @default cachingResolver(systemResolver()) */
  readonly resolver?: Resolver;
  /** @default net.connect */
  readonly dial?: Dialer;
  /** Audit records. Without one, records go to the operational log at info level (never dropped). */
  readonly audit?: AuditSink;
  /** Operational log (JSON lines on stderr in the CLI). @default silent */
  readonly logger?: Logger;
  /**
   * The read-only audit feed (src/shared/service-host.ts), served on the metrics listener beside /metrics and
   * /healthz, so a dashboard can copy this component's chain with the feed token (audit.feedTokenSecret).
   */
  readonly auditFeed?: AuditFeedRoute;
}

/** One client connection to the proxy, for its connection-close record. */
export interface ConnectionState {
  readonly startedAt: number;
  readonly source: string;
  client: string;
  requests: number;
  readonly hosts: Set<string>;
  tunnel: boolean;
  upstreamErrors: number;
}

/** An open CONNECT tunnel, so that revoking a client or closing the proxy can end it. */
export interface OpenTunnel {
  readonly client: string;
  finish(reason: string): void;
}

export interface Listener {
  readonly server: http.Server;
  readonly address: BoundAddress;
}

export interface EgressProxyState {
  /** The policy from the caller's input (replaced by reload). */
  configPolicy: EgressPolicy;
  /** Clients added at run time (addClient), kept across reloads. */
  readonly runtimeClients: Map<symbol, PolicyClient>;
  /** configPolicy plus the runtime clients: what every decision reads. */
  effective: EgressPolicy;
  readonly resolver: Resolver;
  readonly dial: Dialer;
  readonly logger: Logger;
  readonly metrics: EgressMetrics;
  /** Children of metrics resolved once: they are counted on every request. */
  readonly allowedDecisions: Counter.Internal;
  readonly setupTimers: { readonly connect: Histogram.Internal<"kind">; readonly http: Histogram.Internal<"kind"> };
  readonly rateLimiter: RateLimiter;
  readonly tunnelCounter: TunnelCounter;
  readonly tunnels: Set<OpenTunnel>;
  readonly connections: Map<net.Socket, ConnectionState>;
  readonly servers: Listener[];
  readonly metricsServers: Listener[];
  /** Addresses (and ranges) that reach this process: a request to them would loop. */
  selfAddresses: string[];
  closing: boolean;
  /** Via token for loop detection: a request that already passed through this instance is refused. */
  readonly viaToken: string;
  /** Idle keep-alive connections to origins, keyed by client and checked address (see upstream-pool.ts). */
  readonly upstreamPool: UpstreamPool;
  /** Every tunnel's first upstream read lands here and is copied at once (see relay.ts). */
  readonly firstReadBuffer: Buffer;
  /**
   * The one recorder every service records through (src/audit-log/recorder.ts); absent, records go to the logger.
   * Its health is false from a failed commit until the next one succeeds: meanwhile every request waits for its
   * record's commit before anything of it goes out, whatever auditBeforeForwarding says.
   */
  readonly recorder: AuditRecorder | undefined;
  readonly auditFeed: AuditFeedRoute | undefined;
}

const defaultDial: Dialer = ({ host, port, family, onread }) => net.connect({ host, port, family, noDelay: true, ...(onread !== undefined ? { onread } : {}) });

/** Compiles the policy (throws PolicyError) and builds the state of a proxy that listens nowhere yet. */
export function createProxyState(input: EgressPolicyInput, dependencies: EgressProxyDependencies): EgressProxyState {
  const configPolicy = compilePolicy(input);
  const logger = dependencies.logger ?? silentLogger();
  const metrics = createEgressMetrics();
  return {
    configPolicy,
    runtimeClients: new Map(),
    effective: configPolicy,
    resolver: dependencies.resolver ?? cachingResolver(systemResolver()),
    dial: dependencies.dial ?? defaultDial,
    logger,
    metrics,
    allowedDecisions: metrics.decisions.labels("allow", "allowlisted"),
    setupTimers: { connect: metrics.setupSeconds.labels("connect"), http: metrics.setupSeconds.labels("http") },
    rateLimiter: createRateLimiter(),
    tunnelCounter: createTunnelCounter(),
    tunnels: new Set(),
    connections: new Map(),
    servers: [],
    metricsServers: [],
    selfAddresses: [],
    closing: false,
    viaToken: `perimeter-egress-${randomBytes(6).toString("hex")}`,
    upstreamPool: createUpstreamPool(),
    firstReadBuffer: Buffer.allocUnsafe(16 * 1024),
    recorder: dependencies.audit === undefined ? undefined : createAuditRecorder(dependencies.audit, { component: "egress-proxy", logger, onFailure: () => metrics.auditFailures.inc() }),
    auditFeed: dependencies.auditFeed,
  };
}

export function auditHealthy(state: EgressProxyState): boolean {
  return state.recorder?.healthy() ?? true;
}

/**
 * Whether an allowed request may go to the origin while its decision record is being committed. The record is
 * queued first and commits at the end of this event-loop turn, before any answer from the origin can be read (that
 * needs a later turn), and the answer is held until the commit anyway: what is traded is only that the request's
 * bytes may have left when a commit fails. That failure is loud (the record goes to the operational log, the answer
 * is withheld) and switches the proxy to commit-first until the log accepts writes again.
 */
export function mayForwardWhileCommitting(state: EgressProxyState): boolean {
  return state.recorder?.grouped === true && !state.effective.auditBeforeForwarding && auditHealthy(state);
}

export function rebuildEffective(state: EgressProxyState): void {
  state.effective = { ...state.configPolicy, clients: [...state.configPolicy.clients, ...state.runtimeClients.values()] };
}

/** Unidentified clients are told apart by source address: for rate limits, tunnel limits and pooled connections. */
export function clientKey(client: string, source: string): string {
  return client === "unknown" ? `unknown:${source}` : `client:${client}`;
}
