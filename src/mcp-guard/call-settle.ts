// The settle stage of a tools/call that went upstream: its result record (what came back, how large, how long it
// took) is committed before the agent receives the result; when it cannot be, the result is withheld (fail closed).
// Then the call is counted.
import type { CallToolResult } from "@modelcontextprotocol/client";
import type { DispatchFields } from "./call-record.ts";
import { errorResult } from "./call-result.ts";
import type { RelayedResult } from "./call-result.ts";
import type { ActiveCall, CallerState } from "./call-state.ts";

export async function settleCall(state: CallerState, call: ActiveCall, fields: DispatchFields, relayed: RelayedResult): Promise<CallToolResult> {
  const { result, failure, resultBytes } = relayed;
  try {
    await state.recorder.record({
      ...call.base,
      ...call.argumentsField(),
      ...fields,
      decision: "allow",
      reason: fields.approvalId === null ? "allowed by policy" : "approved by a human",
      latencyMs: call.latency(),
      resultBytes,
      isError: result.isError === true,
      error: failure ?? null,
    });
  } catch (error) {
    state.logger.error({ event: "audit-error", callId: call.callId, error: (error as Error).message }, "audit write failed; result withheld");
    call.finish("error");
    return errorResult("perimeter: the result was withheld because the audit log cannot be written (fail closed); tell the operator");
  }
  call.finish(failure === undefined ? "allow" : "error");
  return result;
}
