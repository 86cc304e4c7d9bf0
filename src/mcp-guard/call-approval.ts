// The approval stage of a tools/call the pure decision held: find an unused grant for exactly this call, or join the
// request already waiting for it, or open one; then wait for a human (telling the agent it waits) until a decision,
// the agent's cancellation or the timeout. What comes out is an approval to record with the dispatch, or the reason
// the call does not go upstream.
import type { CallToolResult } from "@modelcontextprotocol/client";
import type { Approval, CallBinding } from "../approvals/index.ts";
import { reviewableArguments } from "./call-arguments.ts";
import type { MeasuredArguments } from "./call-arguments.ts";
import { recordRefusal, refuse } from "./call-record.ts";
import { errorResult } from "./call-result.ts";
import { boundedText } from "./call-state.ts";
import type { ActiveCall, CallerState } from "./call-state.ts";
import type { CallDecision } from "./decide-call.ts";

export type ApprovalOutcome =
  | { ok: true; approval: Approval }
  | { ok: false; cancelled: boolean; reason: string; message: string; approvalId?: string; approver?: string };

type Held = Extract<CallDecision, { decision: "hold" }>;

/** The call goes on with `approval`, or ends with `answer` (already recorded and counted). */
export async function holdForApproval(state: CallerState, call: ActiveCall, decided: Held): Promise<{ approval: Approval } | { answer: CallToolResult }> {
  // The approval binds the sha256 of the exact bytes the upstream will receive: the dispatch record carries the same
  // hash and the approval's id, so anyone can check that what ran is what was approved.
  const binding: CallBinding = { agent: call.context.agent, server: decided.server, tool: decided.tool, definitionHash: decided.definitionHash, argumentsHash: decided.argumentsSha256 };
  const outcome = await awaitApproval(state, call, binding, call.measure(), decided.approvers);
  if (outcome.ok) return { approval: outcome.approval };
  const hashField = { definitionHash: decided.definitionHash };
  if (outcome.cancelled) {
    await recordRefusal(
      state,
      { ...call.base, ...call.argumentsField(), ...hashField, decision: "cancelled", reason: boundedText(state.redactor, outcome.reason), approvalId: outcome.approvalId ?? null, latencyMs: call.latency() },
      "audit write failed for a cancelled call",
      call.callId,
    );
    call.finish("cancelled");
    return { answer: errorResult(`perimeter: ${outcome.message}`) };
  }
  return { answer: await refuse(state, call, outcome.reason, outcome.message, { ...hashField, approvalId: outcome.approvalId ?? null, approver: outcome.approver ?? null }) };
}

/** An unused grant (as an outcome), the request already pending for this binding, a new one, or why none may be opened. */
function requestFor(state: CallerState, call: ActiveCall, binding: CallBinding, wire: MeasuredArguments, requiredApprovals: number): Approval | ApprovalOutcome {
  const { approvals, config, redactor, logger } = state;
  // An approval given after the agent gave up waiting is honoured once, for exactly the same call.
  const grant = approvals.findGrant(binding);
  if (grant !== undefined && approvals.consume(grant.id)) return { ok: true, approval: { ...grant, status: "used" } };
  const pending = approvals.findPending(binding);
  if (pending !== undefined) return pending;
  const limit = config.mcp.limits.pendingApprovalsPerAgent;
  if (approvals.countPending({ kind: "tool-call", agent: binding.agent }) >= limit) {
    return { ok: false, cancelled: false, reason: `more than ${limit} calls waiting for approval`, message: `too many calls are already waiting for human approval (limit ${limit}); this one was denied` };
  }
  const review = reviewableArguments(call.arguments, wire, redactor, config.approvals.maxReviewBytes);
  if (!review.reviewable) return { ok: false, cancelled: false, reason: review.reason, message: review.message };
  const request = approvals.open({
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
  return request;
}

export async function awaitApproval(state: CallerState, call: ActiveCall, binding: CallBinding, wire: MeasuredArguments, requiredApprovals: number): Promise<ApprovalOutcome> {
  const request = requestFor(state, call, binding, wire, requiredApprovals);
  if ("ok" in request) return request;
  const { approvals, config } = state;
  const { context } = call;
  const id = request.id;
  const deadline = request.expiresAt === undefined ? Date.now() + config.approvals.timeoutSeconds * 1000 : Date.parse(request.expiresAt);
  const waiting = new AbortController();
  const timer = setTimeout(() => waiting.abort(), Math.max(0, deadline - Date.now()));
  const onCancel = () => waiting.abort();
  context.signal.addEventListener("abort", onCancel, { once: true });
  const stopTelling = tellWhileWaiting(state, call, id);
  try {
    const decided = await approvals.waitForDecision(id, waiting.signal);
    return outcomeOf(state, call, id, decided);
  } finally {
    clearTimeout(timer);
    stopTelling();
    context.signal.removeEventListener("abort", onCancel);
  }
}

/** Progress notifications while the call waits, so that the agent (and its human) know why; returns the stopper. */
function tellWhileWaiting(state: CallerState, call: ActiveCall, id: string): () => void {
  const { context } = call;
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
  const ticker = setInterval(tell, state.progressIntervalMs);
  return () => clearInterval(ticker);
}

function outcomeOf(state: CallerState, call: ActiveCall, id: string, decided: Approval): ApprovalOutcome {
  const { approvals, config, redactor } = state;
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
  if (call.context.signal.aborted) {
    // Leave the request pending: if a human approves it, the agent's retry of the same call goes through once.
    return { ok: false, cancelled: true, reason: "the agent cancelled the call while it waited for approval", message: "the call was cancelled while waiting for approval", approvalId: id };
  }
  approvals.expire(id, `no decision within ${config.approvals.timeoutSeconds}s`);
  return { ok: false, cancelled: false, reason: `no decision within ${config.approvals.timeoutSeconds}s`, message: `no human approved this call within ${config.approvals.timeoutSeconds} seconds, so it was denied (approval ${id})`, approvalId: id };
}
