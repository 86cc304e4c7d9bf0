// The two pieces of state the tools/call pipeline works on, so that each stage (call-approval, call-record,
// call-forward, call-result, call-settle) is a top-level function reading what it needs from them:
// - CallerState: one per guard, built once from the configuration and the guard's parts; it changes only in the
//   per-agent count of calls in flight and the bounded policy cache.
// - ActiveCall: one per tools/call, built when it arrives: its id, its agent, the fields every record of it carries,
//   its arguments measured once and recorded one way, and its clock.
import { randomUUID } from "node:crypto";
import type { ApprovalStore } from "../approvals/index.ts";
import { createAuditRecorder } from "../audit-log/index.ts";
import type { AuditLog, AuditRecorder } from "../audit-log/index.ts";
import type { AuditAppender } from "../approvals/index.ts";
import type { McpServerConfig, PerimeterConfig } from "../config/index.ts";
import type { Logger } from "../shared/index.ts";
import type { CompiledConstraint } from "./arguments.ts";
import { measureArguments, recordedArguments } from "./call-arguments.ts";
import type { MeasuredArguments, RecordedArgumentsFields } from "./call-arguments.ts";
import type { Catalog } from "./catalog.ts";
import { toolPolicy } from "./decide-call.ts";
import type { CallDecisionContext, ToolPolicy } from "./decide-call.ts";
import type { GuardMetrics } from "./metrics.ts";
import { splitToolName } from "./policy.ts";
import type { Redactor } from "./redact.ts";
import type { Upstream } from "./upstream.ts";

/** What the transport knows of one call: who makes it, and how to talk back while it runs. */
export interface CallContext {
  agent: string;
  /** Aborted when the agent cancels or disconnects. */
  signal: AbortSignal;
  progressToken?: string | number;
  notify: (notification: { method: string; params?: Record<string, unknown> }) => Promise<void>;
}

export interface CallParams {
  name: string;
  arguments?: Record<string, unknown> | undefined;
}

export interface ToolCallerOptions {
  config: PerimeterConfig;
  catalog: Catalog;
  upstreams: ReadonlyMap<string, Upstream>;
  constraints: ReadonlyMap<string, readonly CompiledConstraint[]>;
  approvals: ApprovalStore;
  /** With `prepare` and `appendPrepared` (the audit log has them) records are group-committed; otherwise appended one by one. */
  audit: AuditAppender & Partial<Pick<AuditLog, "prepare" | "appendPrepared">>;
  redactor: Redactor;
  metrics: GuardMetrics;
  logger: Logger;
  /** How often a waiting call tells the agent it is still waiting (progress notifications). */
  progressIntervalMs?: number;
}

export interface CallerState {
  readonly config: PerimeterConfig;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly approvals: ApprovalStore;
  /** The one recorder every service records through (src/audit-log/recorder.ts), with group commit. */
  readonly recorder: AuditRecorder;
  readonly redactor: Redactor;
  readonly metrics: GuardMetrics;
  readonly logger: Logger;
  readonly progressIntervalMs: number;
  /** Calls in flight per agent. */
  readonly inFlight: Map<string, number>;
  /** Agents whose policy refusals come as normal results (mcp.agents[].refusals: result). */
  readonly refusalsAsResults: ReadonlySet<string>;
  /** What the pure decision (decide-call.ts) reads of the running guard. */
  readonly decisionContext: CallDecisionContext;
}

/** Agent-chosen names and reasons are kept in records up to this many characters (after redaction). */
export const MAX_RECORDED_TEXT = 300;
const MAX_CACHED_POLICIES = 4096;

export function createCallerState(options: ToolCallerOptions): CallerState {
  const { config, catalog, upstreams, logger } = options;
  // The config does not change while the guard runs, so each tool's policy (allowlist globs, approval globs) is worked
  // out once. Tool names come from the agent: the cache stops growing at a bound and further names are computed.
  const policies = new Map<string, ToolPolicy>();
  const policyFor = (serverConfig: McpServerConfig, server: string, tool: string): ToolPolicy => {
    const key = `${server}\u0000${tool}`;
    const cached = policies.get(key);
    if (cached !== undefined) return cached;
    const policy = toolPolicy(config, serverConfig, server, tool);
    if (policies.size < MAX_CACHED_POLICIES) policies.set(key, policy);
    return policy;
  };
  return {
    config,
    upstreams,
    approvals: options.approvals,
    // Group commit: the records of calls decided in one event-loop turn share a transaction. A call still waits for
    // the commit holding its record before it goes upstream, and again before its result is returned. A failed write
    // is logged whole by the recorder.
    recorder: createAuditRecorder(options.audit, { component: "mcp-guard", logger }),
    redactor: options.redactor,
    metrics: options.metrics,
    logger,
    progressIntervalMs: options.progressIntervalMs ?? 10_000,
    inFlight: new Map(),
    // Hermes counts tool errors toward a breaker that closes every tool of the server after three in a row.
    refusalsAsResults: new Set(config.mcp.agents.filter((agent) => agent.refusals === "result").map((agent) => agent.name)),
    decisionContext: {
      config,
      constraints: options.constraints,
      redactor: options.redactor,
      definition: (exposedName) => catalog.get(exposedName),
      unsynced: (server) => {
        const upstream = upstreams.get(server);
        if (upstream === undefined || upstream.tools() !== undefined) return undefined;
        const state = upstream.state();
        return state.error ?? state.state;
      },
      policyFor,
    },
  };
}

/** Agent-chosen text (a tool name, a reason quoting it) as a record holds it: redacted, then bounded. */
export function boundedText(redactor: Redactor, text: string): string {
  const redacted = redactor.text(text);
  return redacted.length <= MAX_RECORDED_TEXT ? redacted : `${redacted.slice(0, MAX_RECORDED_TEXT)}… (${redacted.length} characters)`;
}

/** The fields every record of one call starts with. */
export interface CallRecordBase {
  readonly component: "mcp-guard";
  readonly type: string;
  readonly callId: string;
  readonly agent: string;
  readonly server: string | null;
  readonly tool: string | null;
  readonly name: string;
}

export interface ActiveCall {
  readonly callId: string;
  readonly context: CallContext;
  readonly name: string;
  readonly arguments: Record<string, unknown>;
  readonly base: CallRecordBase;
  /** The arguments' wire form, measured once and shared by the decision, the approval and the records. */
  measure(): MeasuredArguments;
  /** The one place a record's arguments are decided: as they are, or a placeholder with their size and sha256. */
  argumentsField(): RecordedArgumentsFields;
  /** Milliseconds since the call arrived, as records hold it. */
  latency(): number;
  /** Counts the call's outcome and its duration in the guard's metrics. */
  finish(decision: string): void;
}

export function startCall(state: CallerState, params: CallParams, context: CallContext): ActiveCall {
  const { config, redactor, metrics } = state;
  const started = performance.now();
  const args = params.arguments ?? {};
  const split = splitToolName(params.name);
  const serverName = split?.server ?? null;
  // Metrics are labelled by configured servers only: any other name is the agent's choice, and a label per name
  // would let it grow the registry without bound.
  const metricServer = serverName !== null && Object.hasOwn(config.mcp.servers, serverName) ? serverName : "";
  const callId = randomUUID();
  const base: CallRecordBase = {
    component: "mcp-guard",
    type: "tool-call",
    callId,
    agent: context.agent,
    server: serverName === null ? null : boundedText(redactor, serverName),
    tool: split === undefined ? null : boundedText(redactor, split.tool),
    name: boundedText(redactor, params.name),
  };
  let measured: MeasuredArguments | undefined;
  let recorded: RecordedArgumentsFields | undefined;
  const measure = () => (measured ??= measureArguments(args));
  return {
    callId,
    context,
    name: params.name,
    arguments: args,
    base,
    measure,
    argumentsField: () => (recorded ??= recordedArguments(args, measure(), redactor)),
    latency: () => Math.round((performance.now() - started) * 1000) / 1000,
    finish: (decision) => {
      metrics.toolCalls.inc({ server: metricServer, decision });
      metrics.toolCallSeconds.observe({ server: metricServer }, (performance.now() - started) / 1000);
    },
  };
}
