// The sandbox runner's one typed state (SandboxServerState): its options, metrics, admission (slots and quotas),
// named workspaces, audit recorder, runs in flight and listeners. Built once by createServerState; every request
// stage (server-http.ts, server-tools.ts, server-run.ts) takes it instead of closing over it.
import type { Server } from "node:http";
import type { CallToolResult } from "@modelcontextprotocol/server";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { createAuditRecorder } from "../audit-log/index.ts";
import type { AuditRecord, AuditRecorder, RecorderLog } from "../audit-log/index.ts";
import type { AuditFeedRoute, Logger, TokenVerifier } from "../shared/index.ts";
import { createTokenVerifier, silentLogger } from "../shared/index.ts";
import { createCallerQuota, createRunSlots } from "./server-admission.ts";
import type { CallerQuota, CallerQuotas, RunSlots } from "./server-admission.ts";
import { toolError } from "./server-output.ts";
import type { SandboxBackend, SandboxHostRule, SandboxLimits } from "./task.ts";
import { createWorkspaceStore } from "./workspaces.ts";
import type { WorkspaceLimits, WorkspaceStore } from "./workspaces.ts";

/** The audit log (src/audit-log) the runner records through: a run's start is committed before it starts. */
export type SandboxAuditSink = RecorderLog;

export interface SandboxServerOptions {
  readonly backend: SandboxBackend;
  /** The bearer token clients must present. */
  readonly token: string;
  readonly audit: SandboxAuditSink;
  /** Tasks running at once; more wait in the queue. */
  readonly concurrency: number;
  /** Tasks that may wait; beyond it a run is refused as busy. */
  readonly queueLimit: number;
  readonly quotas: CallerQuotas;
  readonly workspaces: WorkspaceLimits;
  /** The most a call may ask for (timeout in particular). */
  readonly ceiling: SandboxLimits;
  /** When set, a run may ask for network "proxy" and gets this allowlist. */
  readonly networkAllow?: readonly SandboxHostRule[];
  /** Largest request body (files travel in it, base64). @default 32 MiB */
  readonly maxRequestBytes?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** The read-only audit feed (audit.feedTokenSecret), served on the metrics listener to the feed token only. */
  readonly auditFeed?: AuditFeedRoute;
}

export interface SandboxMetrics {
  readonly registry: Registry;
  readonly runsTotal: Counter<"outcome">;
  readonly runDuration: Histogram;
  readonly auditFailures: Counter;
}

export interface SandboxServerState {
  readonly options: SandboxServerOptions;
  readonly logger: Logger;
  readonly now: () => number;
  /** The runner's bearer token, kept as its sha256 and compared in constant time. */
  readonly token: TokenVerifier;
  readonly auditFeed: AuditFeedRoute | undefined;
  readonly maxRequestBytes: number;
  readonly store: WorkspaceStore;
  readonly sweeper: NodeJS.Timeout;
  readonly metrics: SandboxMetrics;
  readonly slots: RunSlots;
  readonly quota: CallerQuota;
  readonly recorder: AuditRecorder;
  /** Runs in flight by caller and JSON-RPC id, for cancellations that arrive in a request of their own. */
  readonly inFlight: Map<string, Set<AbortController>>;
  readonly servers: Server[];
  /** Whether the MCP listener is on loopback (then only loopback Host names are accepted: DNS rebinding). */
  loopbackOnly: boolean;
}

function createMetrics(): SandboxMetrics & { running: Gauge; queued: Gauge } {
  const registry = new Registry();
  const runsTotal = new Counter({ name: "perimeter_sandbox_runs_total", help: "Sandbox runs by how they ended (or were refused).", labelNames: ["outcome"], registers: [registry] });
  const runDuration = new Histogram({ name: "perimeter_sandbox_run_duration_seconds", help: "Wall-clock time of sandbox runs.", buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600], registers: [registry] });
  const queued = new Gauge({ name: "perimeter_sandbox_queue_length", help: "Runs waiting for a slot.", registers: [registry] });
  const running = new Gauge({ name: "perimeter_sandbox_running", help: "Runs in progress.", registers: [registry] });
  const auditFailures = new Counter({ name: "perimeter_sandbox_audit_failures_total", help: "Audit records that could not be written (each one refused or withheld an operation).", registers: [registry] });
  return { registry, runsTotal, runDuration, auditFailures, running, queued };
}

export function createServerState(options: SandboxServerOptions): SandboxServerState {
  const logger = options.logger ?? silentLogger();
  const now = options.now ?? Date.now;
  const store = createWorkspaceStore(options.workspaces, now);
  const sweeper = setInterval(() => store.sweep(), Math.max(1000, Math.min(60_000, options.workspaces.ttlMs / 2)));
  sweeper.unref();
  const metrics = createMetrics();
  // One recorder (src/audit-log/recorder.ts): a run's start is committed before it starts, its end settles it
  // (decisionSeq) before the result is returned, refusals are committed before they are answered.
  const recorder = createAuditRecorder(options.audit, { component: "sandbox", logger, onFailure: () => metrics.auditFailures.inc() });
  return {
    options,
    logger,
    now,
    token: createTokenVerifier([{ name: "sandbox", token: options.token }]),
    auditFeed: options.auditFeed,
    maxRequestBytes: options.maxRequestBytes ?? 32 * 1024 * 1024,
    store,
    sweeper,
    metrics,
    slots: createRunSlots(options.concurrency, options.queueLimit, { running: (count) => metrics.running.set(count), queued: (count) => metrics.queued.set(count) }),
    quota: createCallerQuota(options.quotas, now),
    recorder,
    inFlight: new Map(),
    servers: [],
    loopbackOnly: true,
  };
}

/** A refused call: counted, committed to the audit log, then answered with the reason. */
export async function refuseCall(state: SandboxServerState, caller: string, type: string, reason: string, fields: Record<string, unknown> = {}): Promise<CallToolResult> {
  state.metrics.runsTotal.inc({ outcome: "refused" });
  await state.recorder.refusal({ type, phase: "refused", caller, reason, ...fields });
  return toolError(reason);
}

/** Commits an audit record; the record, or undefined when the log is off for this event. Throws when it cannot be written. */
export function recordSandboxEvent(state: SandboxServerState, event: { type: string; [field: string]: unknown }): Promise<AuditRecord | undefined> {
  return state.recorder.record(event);
}
