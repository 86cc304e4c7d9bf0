// The tools/call pipeline: every decision the guard makes about one call, in order, each stage its own module taking
// the guard's state and the call's context (call-state.ts):
//   concurrency → decide (decide-call.ts, pure: namespace, allowlist, pinned definition, argument constraints,
//   approval needed) → approval (call-approval.ts) → record the dispatch (call-record.ts) → act (call-forward.ts)
//   → redact (call-result.ts) → settle: the result record, then the answer (call-settle.ts)
// Fail closed throughout: a refusal, an exception or an audit write that fails means the agent gets an error and the
// upstream is not called (or, after the call, its result is withheld).
import type { CallToolResult } from "@modelcontextprotocol/client";
import type { Approval } from "../approvals/index.ts";
import { holdForApproval } from "./call-approval.ts";
import { forwardCall } from "./call-forward.ts";
import { recordDispatch, refuse, refuseAfterError } from "./call-record.ts";
import type { DispatchFields } from "./call-record.ts";
import { errorResult, relayedResult } from "./call-result.ts";
import { settleCall } from "./call-settle.ts";
import { createCallerState, startCall } from "./call-state.ts";
import type { ActiveCall, CallContext, CallerState, CallParams, ToolCallerOptions } from "./call-state.ts";
import { decideCall } from "./decide-call.ts";

export type { CallContext, ToolCallerOptions } from "./call-state.ts";
export { MAX_RESULT_BYTES } from "./call-result.ts";

export interface ToolCaller {
  call(params: CallParams, context: CallContext): Promise<CallToolResult>;
  /** Calls in flight per agent (for shutdown and tests). */
  inFlight(agent: string): number;
  /** Writes the audit records still queued for this turn's commit (before the audit log is closed). */
  flush(): void;
}

export function createToolCaller(options: ToolCallerOptions): ToolCaller {
  const state = createCallerState(options);
  return {
    call: (params, context) => runCall(state, params, context),
    inFlight: (agent) => state.inFlight.get(agent) ?? 0,
    flush: () => state.recorder.flush(),
  };
}

export async function runCall(state: CallerState, params: CallParams, context: CallContext): Promise<CallToolResult> {
  const call = startCall(state, params, context);
  const limit = state.config.mcp.limits.concurrentCallsPerAgent;
  const agentCalls = state.inFlight.get(context.agent) ?? 0;
  if (agentCalls >= limit) return refuse(state, call, `more than ${limit} calls in flight`, `too many calls in flight (limit ${limit}); wait for some to finish`);
  state.inFlight.set(context.agent, agentCalls + 1);
  try {
    return await guardedCall(state, call);
  } catch (error) {
    return refuseAfterError(state, call, error);
  } finally {
    const remaining = (state.inFlight.get(context.agent) ?? 1) - 1;
    if (remaining <= 0) state.inFlight.delete(context.agent);
    else state.inFlight.set(context.agent, remaining);
  }
}

async function guardedCall(state: CallerState, call: ActiveCall): Promise<CallToolResult> {
  // The pure decision, the one `perimeter replay` runs too; what follows depends on the moment.
  const decided = decideCall(state.decisionContext, { name: call.name, arguments: call.arguments, measure: call.measure });
  if (decided.decision === "deny") return refuse(state, call, decided.reason, decided.message, decided.definitionHash === undefined ? {} : { definitionHash: decided.definitionHash });

  let approval: Approval | undefined;
  if (decided.decision === "hold") {
    const held = await holdForApproval(state, call, decided);
    if ("answer" in held) return held.answer;
    approval = held.approval;
  }

  const fields: DispatchFields = { definitionHash: decided.definitionHash, approvalId: approval?.id ?? null, approver: approval?.approver ?? null };
  const refused = await recordDispatch(state, call, fields);
  if (refused !== undefined) return refused;

  const upstream = state.upstreams.get(decided.server);
  if (upstream === undefined) return errorResult(`perimeter: upstream "${decided.server}" is not configured`);
  const forwarded = await forwardCall(state, call, upstream, decided.tool, decided.serverConfig);
  const relayed = relayedResult(state.redactor, forwarded, `${decided.server}__${decided.tool}`);
  return settleCall(state, call, fields, relayed);
}
