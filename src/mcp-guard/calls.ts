// The tools/call pipeline: every decision the guard makes about one call, in order, each refusal recorded.
//   concurrency → [namespace → allowlist → pinned definition → argument constraints → approval needed: decide-call.ts]
//   → human approval → audit (dispatch) → upstream → redaction → audit (result)
// Fail closed throughout: a refusal, an exception or an audit write that fails means the agent gets an error and the
// upstream is not called (or, after the call, its result is withheld).
import { randomUUID } from "node:crypto";
import type { CallToolResult, Progress } from "@modelcontextprotocol/client";
import type { Approval, ApprovalStore, AuditAppender, CallBinding } from "../approvals/index.ts";
import { createAuditRecorder } from "../audit-log/index.ts";
import type { AuditEventInput, AuditLog } from "../audit-log/index.ts";
import type { McpServerConfig, PerimeterConfig } from "../config/index.ts";
import type { Logger } from "../shared/index.ts";
import type { CompiledConstraint } from "./arguments.ts";
import { measureArguments, recordedArguments, reviewableArguments } from "./call-arguments.ts";
import type { MeasuredArguments, RecordedArgumentsFields } from "./call-arguments.ts";
import type { Catalog } from "./catalog.ts";
import { decideCall } from "./decide-call.ts";
import type { CallDecisionContext } from "./decide-call.ts";
import type { GuardMetrics } from "./metrics.ts";
import { approvalsRequired, splitToolName, toolAllowed } from "./policy.ts";
import type { Redactor } from "./redact.ts";
import type { Upstream } from "./upstream.ts";

export interface CallContext {
  agent: string;
  /** Aborted when the agent cancels or disconnects. */
  signal: AbortSignal;
  progressToken?: string | number;
  notify: (notification: { method: string; params?: Record<string, unknown> }) => Promise<void>;
}

export interface ToolCaller {
  call(params: { name: string; arguments?: Record<string, unknown> | undefined }, context: CallContext): Promise<CallToolResult>;
  /** Calls in flight per agent (for shutdown and tests). */
  inFlight(agent: string): number;
  /** Writes the audit records still queued for this turn's commit (before the audit log is closed). */
  flush(): void;
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

/** Agent-chosen names and reasons are kept in records up to this many characters (after redaction). */
const MAX_RECORDED_TEXT = 300;
/** Largest result handed to the agent: a runaway upstream must not make the guard buffer and relay without bound. */
export const MAX_RESULT_BYTES = 8 * 1024 * 1024;
const MAX_CACHED_POLICIES = 4096;

/**
 * The upstream's protocol-level `_meta` keys (the reserved `io.modelcontextprotocol/` namespace: its server info,
 * protocol version...) describe the guard↔upstream hop, not this one: the agent talks to the guard, and must not
 * learn which upstream answered or take its identity for the guard's. Other `_meta` keys are the tool's and pass.
 */
function withoutProtocolMeta(result: CallToolResult): CallToolResult {
  const meta = result._meta;
  if (meta === undefined || meta === null || typeof meta !== "object") return result;
  const kept = Object.fromEntries(Object.entries(meta).filter(([key]) => !key.startsWith("io.modelcontextprotocol/")));
  const { _meta: _dropped, ...rest } = result;
  return Object.keys(kept).length === 0 ? rest : { ...rest, _meta: kept };
}

function errorResult(text: string): CallToolResult {
  return { content: [{ type: "text", text }], isError: true };
}

export function createToolCaller(options: ToolCallerOptions): ToolCaller {
  const { config, catalog, upstreams, approvals, audit, redactor, metrics, logger } = options;
  const inFlight = new Map<string, number>();
  // The one recorder every service records through (src/audit-log/recorder.ts), with group commit: the records of
  // calls decided in one event-loop turn share a transaction. A call still waits for the commit holding its record
  // before it goes upstream, and again before its result is returned. A failed write is logged whole by the recorder.
  const recorder = createAuditRecorder(audit, { component: "mcp-guard", logger });
  /** Resolves once the record is committed; rejects when it cannot be (the caller fails closed). */
  const record = async (event: AuditEventInput): Promise<void> => {
    await recorder.record(event);
  };
  /**
   * The record of a call that does not go upstream (a refusal, a cancellation): committed before the agent hears of
   * it, like every other record. A failure to write it cannot make the answer any more of a refusal than it is; it is
   * logged (the audit log's wrapper in guard.ts counts it and turns /healthz unhealthy) and the answer says so.
   * Resolves with whether the record was written.
   */
  const recordRefusal = async (event: AuditEventInput, what: string, callId: string): Promise<boolean> => {
    try {
      await record(event);
      return true;
    } catch {
      logger.error({ event: "audit-error", callId }, what);
      return false;
    }
  };
  const unrecordedNote = " (this refusal could not be written to the audit log; tell the operator)";
  /** Agent-chosen text (a tool name, a reason quoting it) as a record holds it: redacted, then bounded. */
  const bounded = (text: string) => {
    const redacted = redactor.text(text);
    return redacted.length <= MAX_RECORDED_TEXT ? redacted : `${redacted.slice(0, MAX_RECORDED_TEXT)}… (${redacted.length} characters)`;
  };
  const progressInterval = options.progressIntervalMs ?? 10_000;
  // Per agent (mcp.agents[].refusals): a policy refusal as an MCP tool error, or as a normal result that says so
  // (Hermes counts tool errors toward a breaker that closes every tool of the server after three in a row).
  const refusalsAsResults = new Set(config.mcp.agents.filter((agent) => agent.refusals === "result").map((agent) => agent.name));
  const refusalResult = (agent: string, message: string): CallToolResult =>
    refusalsAsResults.has(agent) ? { content: [{ type: "text", text: `refused by the perimeter: ${message}` }], isError: false } : errorResult(`perimeter: ${message}`);

  // The config does not change while the guard runs, so each tool's policy (allowlist globs, approval globs) is worked
  // out once. Tool names come from the agent: the cache stops growing at a bound and further names are computed.
  const policies = new Map<string, { allowed: ReturnType<typeof toolAllowed>; approval: boolean; approvers: number }>();
  const policyFor = (serverConfig: McpServerConfig, server: string, tool: string) => {
    const key = `${server}\u0000${tool}`;
    const cached = policies.get(key);
    if (cached !== undefined) return cached;
    const approvers = approvalsRequired(config, server, tool);
    const policy = { allowed: toolAllowed(serverConfig, tool), approval: approvers > 0, approvers };
    if (policies.size < MAX_CACHED_POLICIES) policies.set(key, policy);
    return policy;
  };
  // What the pure decision reads of the running guard: the catalog's pins and whether an upstream has synced yet.
  const decisionContext: CallDecisionContext = {
    config,
    constraints: options.constraints,
    redactor,
    definition: (exposedName) => catalog.get(exposedName),
    unsynced: (server) => {
      const upstream = upstreams.get(server);
      if (upstream === undefined || upstream.tools() !== undefined) return undefined;
      const state = upstream.state();
      return state.error ?? state.state;
    },
    policyFor,
  };

  return {
    inFlight: (agent) => inFlight.get(agent) ?? 0,
    flush: () => recorder.flush(),
    async call(params, context) {
      const started = performance.now();
      const callId = randomUUID();
      const args = params.arguments ?? {};
      const split = splitToolName(params.name);
      const serverName = split?.server ?? null;
      // Metrics are labelled by configured servers only: any other name is the agent's choice, and a label per name
      // would let it grow the registry without bound.
      const metricServer = serverName !== null && Object.hasOwn(config.mcp.servers, serverName) ? serverName : "";
      const base = {
        component: "mcp-guard" as const,
        type: "tool-call",
        callId,
        agent: context.agent,
        server: serverName === null ? null : bounded(serverName),
        tool: split === undefined ? null : bounded(split.tool),
        name: bounded(params.name),
      };
      let measured: MeasuredArguments | undefined;
      const measure = () => (measured ??= measureArguments(args));
      let recorded: RecordedArgumentsFields | undefined;
      // The one place a record's arguments are decided (every record type of the call uses it): as they are, or a
      // placeholder with their size and sha256 when the log could not hold them.
      const argumentsField = () => (recorded ??= recordedArguments(args, measure(), redactor));
      const latency = () => Math.round((performance.now() - started) * 1000) / 1000;
      const finish = (decision: string) => {
        metrics.toolCalls.inc({ server: metricServer, decision });
        metrics.toolCallSeconds.observe({ server: metricServer }, (performance.now() - started) / 1000);
      };

      /** A refusal: recorded, counted, and explained to the model in the result text. */
      const refuse = async (reason: string, message: string, extra: Record<string, unknown> = {}): Promise<CallToolResult> => {
        const written = await recordRefusal({ ...base, ...argumentsField(), decision: "deny", reason: bounded(reason), latencyMs: latency(), ...extra }, "audit write failed for a refused call", callId);
        finish("deny");
        return refusalResult(context.agent, `${message}${written ? "" : unrecordedNote}`);
      };

      const agentCalls = inFlight.get(context.agent) ?? 0;
      if (agentCalls >= config.mcp.limits.concurrentCallsPerAgent) {
        return refuse(`more than ${config.mcp.limits.concurrentCallsPerAgent} calls in flight`, `too many calls in flight (limit ${config.mcp.limits.concurrentCallsPerAgent}); wait for some to finish`);
      }
      inFlight.set(context.agent, agentCalls + 1);
      try {
        // The pure decision, the one `perimeter replay` runs too; what follows depends on the moment.
        const decided = decideCall(decisionContext, { name: params.name, arguments: args, measure });
        if (decided.decision === "deny") return refuse(decided.reason, decided.message, decided.definitionHash === undefined ? {} : { definitionHash: decided.definitionHash });
        const { serverConfig } = decided;
        const target = { server: decided.server, tool: decided.tool };
        const upstream = upstreams.get(target.server);
        const hashField = { definitionHash: decided.definitionHash };

        let approval: Approval | undefined;
        if (decided.decision === "hold") {
          const wire = measure();
          // The approval binds the sha256 of the exact bytes the upstream will receive: the dispatch record carries the
          // same hash and the approval's id, so anyone can check that what ran is what was approved.
          const binding: CallBinding = { agent: context.agent, server: target.server, tool: target.tool, definitionHash: decided.definitionHash, argumentsHash: decided.argumentsSha256 };
          const outcome = await awaitApproval(binding, args, wire, context, decided.approvers);
          if (!outcome.ok) {
            if (outcome.cancelled) {
              await recordRefusal(
                { ...base, ...argumentsField(), ...hashField, decision: "cancelled", reason: bounded(outcome.reason), approvalId: outcome.approvalId ?? null, latencyMs: latency() },
                "audit write failed for a cancelled call",
                callId,
              );
              finish("cancelled");
              return errorResult(`perimeter: ${outcome.message}`);
            }
            return refuse(outcome.reason, outcome.message, { ...hashField, approvalId: outcome.approvalId ?? null, approver: outcome.approver ?? null });
          }
          approval = outcome.approval;
        }

        const approvalFields = { approvalId: approval?.id ?? null, approver: approval?.approver ?? null };
        try {
          await record({ ...base, type: "tool-dispatch", ...argumentsField(), ...hashField, ...approvalFields, decision: "allow" });
        } catch (error) {
          logger.error({ event: "audit-error", callId, error: (error as Error).message }, "audit write failed; call refused");
          finish("error");
          return errorResult("perimeter: the call was refused because the audit log cannot be written (fail closed); tell the operator");
        }

        if (upstream === undefined) return errorResult(`perimeter: upstream "${target.server}" is not configured`);
        let result: CallToolResult;
        let failure: string | undefined;
        try {
          const relay =
            context.progressToken === undefined
              ? undefined
              : (progress: Progress) => {
                  void context
                    .notify({
                      method: "notifications/progress",
                      params: {
                        progressToken: context.progressToken,
                        progress: progress.progress,
                        ...(progress.total === undefined ? {} : { total: progress.total }),
                        ...(progress.message === undefined ? {} : { message: redactor.text(progress.message) }),
                      },
                    })
                    .catch(() => undefined);
                };
          const raw = await upstream.callTool(target.tool, args, {
            signal: context.signal,
            timeoutMs: serverConfig.timeoutSeconds * 1000,
            ...(relay === undefined ? {} : { onprogress: relay }),
            caller: context.agent,
          });
          result = withoutProtocolMeta(redactor.value(raw));
        } catch (error) {
          failure = redactor.text((error as Error).message ?? String(error)).slice(0, 2000);
          result = errorResult(`perimeter: ${target.server}__${target.tool} failed: ${failure}`);
        }
        let resultBytes = Buffer.byteLength(JSON.stringify(result));
        if (resultBytes > MAX_RESULT_BYTES) {
          failure = `the result was ${resultBytes} bytes, more than the ${MAX_RESULT_BYTES} the guard relays`;
          result = errorResult(`perimeter: ${target.server}__${target.tool}: ${failure}`);
          resultBytes = Buffer.byteLength(JSON.stringify(result));
        }
        try {
          await record({
            ...base,
            ...argumentsField(),
            ...hashField,
            ...approvalFields,
            decision: "allow",
            reason: approval === undefined ? "allowed by policy" : "approved by a human",
            latencyMs: latency(),
            resultBytes,
            isError: result.isError === true,
            error: failure ?? null,
          });
        } catch (error) {
          logger.error({ event: "audit-error", callId, error: (error as Error).message }, "audit write failed; result withheld");
          finish("error");
          return errorResult("perimeter: the result was withheld because the audit log cannot be written (fail closed); tell the operator");
        }
        finish(failure === undefined ? "allow" : "error");
        return result;
      } catch (error) {
        // A bug or a failing store (the approval table, the audit log under it): the call is refused, and recorded.
        const message = bounded((error as Error).message ?? String(error));
        logger.error({ event: "call-error", callId, error: message }, "tool call failed inside the guard");
        const written = await recordRefusal({ ...base, ...argumentsField(), decision: "error", reason: `internal error: ${message}`, latencyMs: latency() }, "audit write failed for a call that failed inside the guard", callId);
        finish("error");
        return errorResult(`perimeter: internal error while handling the call (${message})${written ? "" : unrecordedNote}`);
      } finally {
        const remaining = (inFlight.get(context.agent) ?? 1) - 1;
        if (remaining <= 0) inFlight.delete(context.agent);
        else inFlight.set(context.agent, remaining);
      }
    },
  };

  type ApprovalOutcome =
    | { ok: true; approval: Approval }
    | { ok: false; cancelled: boolean; reason: string; message: string; approvalId?: string; approver?: string };

  async function awaitApproval(binding: CallBinding, args: Record<string, unknown>, wire: MeasuredArguments, context: CallContext, requiredApprovals: number): Promise<ApprovalOutcome> {
    // An approval given after the agent gave up waiting is honoured once, for exactly the same call.
    const grant = approvals.findGrant(binding);
    if (grant !== undefined && approvals.consume(grant.id)) return { ok: true, approval: { ...grant, status: "used" } };

    let request = approvals.findPending(binding);
    if (request === undefined) {
      if (approvals.countPending({ kind: "tool-call", agent: binding.agent }) >= config.mcp.limits.pendingApprovalsPerAgent) {
        return { ok: false, cancelled: false, reason: `more than ${config.mcp.limits.pendingApprovalsPerAgent} calls waiting for approval`, message: `too many calls are already waiting for human approval (limit ${config.mcp.limits.pendingApprovalsPerAgent}); this one was denied` };
      }
      const review = reviewableArguments(args, wire, redactor, config.approvals.maxReviewBytes);
      if (!review.reviewable) return { ok: false, cancelled: false, reason: review.reason, message: review.message };
      request = approvals.open({
        kind: "tool-call",
        agent: binding.agent,
        server: binding.server,
        tool: binding.tool,
        definitionHash: binding.definitionHash,
        argumentsHash: binding.argumentsHash,
        // The whole redacted arguments, and where they were redacted: what the human approves is what runs.
        detail: {
          exposedName: `${binding.server}__${binding.tool}`,
          arguments: review.shown.value,
          argumentsBytes: wire.bytes,
          argumentsSha256: binding.argumentsHash,
          redactions: review.shown.redactions,
        },
        timeoutMs: config.approvals.timeoutSeconds * 1000,
        // The two-person rule: the request stays pending until this many different people approved it.
        requiredApprovals,
      });
      logger.info({ event: "approval-request", id: request.id, agent: binding.agent, server: binding.server, tool: binding.tool }, "call held for human approval");
    }
    const id = request.id;
    const deadline = request.expiresAt === undefined ? Date.now() + config.approvals.timeoutSeconds * 1000 : Date.parse(request.expiresAt);
    const waiting = new AbortController();
    const timer = setTimeout(() => waiting.abort(), Math.max(0, deadline - Date.now()));
    const onCancel = () => waiting.abort();
    context.signal.addEventListener("abort", onCancel, { once: true });
    let ticks = 0;
    const tell = () => {
      if (context.progressToken === undefined) return;
      ticks += 1;
      void context
        .notify({
          method: "notifications/progress",
          params: { progressToken: context.progressToken, progress: ticks, message: `waiting for human approval ${id} (an operator runs: perimeter approvals approve ${id})` },
        })
        .catch(() => undefined);
    };
    tell();
    const ticker = setInterval(tell, progressInterval);
    try {
      const decided = await approvals.waitForDecision(id, waiting.signal);
      if (decided.status === "approved") {
        if (approvals.consume(id)) return { ok: true, approval: { ...decided, status: "used" } };
        return { ok: false, cancelled: false, reason: `approval ${id} was already used by another call`, message: `approval ${id} was already used; an approval lets exactly one call through`, approvalId: id };
      }
      if (decided.status === "denied") {
        const by = decided.approver ?? "an operator";
        return {
          ok: false,
          cancelled: false,
          reason: `denied by ${by}${decided.reason === undefined ? "" : `: ${decided.reason}`}`,
          message: `a human (${redactor.text(by)}) denied this call${decided.reason === undefined ? "" : `: ${redactor.text(decided.reason)}`}`,
          approvalId: id,
          approver: by,
        };
      }
      if (context.signal.aborted) {
        // Leave the request pending: if a human approves it, the agent's retry of the same call goes through once.
        return { ok: false, cancelled: true, reason: "the agent cancelled the call while it waited for approval", message: "the call was cancelled while waiting for approval", approvalId: id };
      }
      approvals.expire(id, `no decision within ${config.approvals.timeoutSeconds}s`);
      return { ok: false, cancelled: false, reason: `no decision within ${config.approvals.timeoutSeconds}s`, message: `no human approved this call within ${config.approvals.timeoutSeconds} seconds, so it was denied (approval ${id})`, approvalId: id };
    } finally {
      clearTimeout(timer);
      clearInterval(ticker);
      context.signal.removeEventListener("abort", onCancel);
    }
  }
}
