// The record stage of a tools/call: nothing is answered or sent upstream before its record is committed.
// - A call that goes upstream commits its dispatch record first; when that fails the call is refused (fail closed).
// - A call that does not (a refusal, a cancellation, an error inside the guard) commits its record before the agent
//   hears of it. A failure to write it cannot make the answer any more of a refusal than it is: it is logged (the
//   audit wrapper in audit-health.ts counts it and turns /healthz unhealthy) and the answer says so.
import type { CallToolResult } from "@modelcontextprotocol/client";
import type { RecorderEvent } from "../audit-log/index.ts";
import { errorResult } from "./call-result.ts";
import { boundedText } from "./call-state.ts";
import type { ActiveCall, CallerState } from "./call-state.ts";

const UNRECORDED_NOTE = " (this refusal could not be written to the audit log; tell the operator)";

/**
 * A policy refusal as the agent is configured to hear it (mcp.agents[].refusals): an MCP tool error, or a normal
 * result that says so (Hermes counts tool errors toward a breaker that closes every tool of the server).
 */
export function refusalResult(state: CallerState, agent: string, message: string): CallToolResult {
  return state.refusalsAsResults.has(agent) ? { content: [{ type: "text", text: `refused by the perimeter: ${message}` }], isError: false } : errorResult(`perimeter: ${message}`);
}

/** Commits the record of a call that does not go upstream; resolves with whether it was written. */
export async function recordRefusal(state: CallerState, event: RecorderEvent, what: string, callId: string): Promise<boolean> {
  try {
    await state.recorder.record(event);
    return true;
  } catch {
    state.logger.error({ event: "audit-error", callId }, what);
    return false;
  }
}

/** A refusal: recorded, counted, and explained to the model in the result text. */
export async function refuse(state: CallerState, call: ActiveCall, reason: string, message: string, extra: Record<string, unknown> = {}): Promise<CallToolResult> {
  const event = { ...call.base, ...call.argumentsField(), decision: "deny", reason: boundedText(state.redactor, reason), latencyMs: call.latency(), ...extra };
  const written = await recordRefusal(state, event, "audit write failed for a refused call", call.callId);
  call.finish("deny");
  return refusalResult(state, call.context.agent, `${message}${written ? "" : UNRECORDED_NOTE}`);
}

/** A bug or a failing store (the approval table, the audit log under it): the call is refused, and recorded. */
export async function refuseAfterError(state: CallerState, call: ActiveCall, error: unknown): Promise<CallToolResult> {
  const message = boundedText(state.redactor, (error as Error).message ?? String(error));
  state.logger.error({ event: "call-error", callId: call.callId, error: message }, "tool call failed inside the guard");
  const event = { ...call.base, ...call.argumentsField(), decision: "error", reason: `internal error: ${message}`, latencyMs: call.latency() };
  const written = await recordRefusal(state, event, "audit write failed for a call that failed inside the guard", call.callId);
  call.finish("error");
  return errorResult(`perimeter: internal error while handling the call (${message})${written ? "" : UNRECORDED_NOTE}`);
}

/** The fields the dispatch and result records share: the pinned definition and the approval that let it through. */
export interface DispatchFields {
  readonly definitionHash: string;
  readonly approvalId: string | null;
  readonly approver: string | null;
}

/** Commits the dispatch record; undefined when committed, or the fail-closed answer when it cannot be. */
export async function recordDispatch(state: CallerState, call: ActiveCall, fields: DispatchFields): Promise<CallToolResult | undefined> {
  try {
    await state.recorder.record({ ...call.base, type: "tool-dispatch", ...call.argumentsField(), ...fields, decision: "allow" });
    return undefined;
  } catch (error) {
    state.logger.error({ event: "audit-error", callId: call.callId, error: (error as Error).message }, "audit write failed; call refused");
    call.finish("error");
    return errorResult("perimeter: the call was refused because the audit log cannot be written (fail closed); tell the operator");
  }
}
