// Recording a request and answering its refusals. Record before acting: a request's decision to forward is committed
// before anything goes to a provider, its outcome settles that decision before the answer's end, and a refusal is
// committed before it is answered. Metrics are counted here too, once per request, from the same outcome.
import { performance } from "node:perf_hooks";
import { closeAfterAnswerIfBodyUnread, stopReadingBody } from "../shared/index.ts";
import { errorReason, errorResponse } from "./errors.ts";
import type { ProxyError } from "./errors.ts";
import type { LlmExchange, LlmOutcome, LlmProxyState } from "./state.ts";

/** What every record of a request says about it (the model name is the agent's text: redacted like a prompt). */
export function describeExchange(state: LlmProxyState, exchange: LlmExchange) {
  return {
    requestId: exchange.id,
    route: exchange.route,
    client: exchange.key?.client ?? null,
    keyId: exchange.key?.id ?? null,
    model: exchange.requested === undefined ? null : state.runtime.scanner.redact(exchange.requested).text.slice(0, 256),
    provider: exchange.provider ?? null,
    upstreamModel: exchange.upstreamModel ?? null,
    ...(exchange.translation === undefined ? {} : { translation: exchange.translation }),
    stream: exchange.stream,
    dlpHits: exchange.dlpHits.map((hit) => ({ kind: hit.kind, location: hit.location })),
  };
}

/**
 * Commits the decision to forward (an `llm-request` record, decision allow) before anything goes to a provider.
 * False when it cannot be committed: the request is then refused (fail closed).
 */
export async function commitDecision(state: LlmProxyState, exchange: LlmExchange, reserved: { tokens: number; cost: number }): Promise<boolean> {
  try {
    const record = await state.recorder.record({ type: "llm-request", ...describeExchange(state, exchange), decision: "allow", reason: "forwarding", reservedTokens: reserved.tokens, reservedCost: reserved.cost });
    // Null only from a sink that keeps no records (tests): the request is decided all the same.
    exchange.decisionSeq = record?.seq ?? null;
    return true;
  } catch {
    return false;
  }
}

function countOutcome(state: LlmProxyState, exchange: LlmExchange, outcome: LlmOutcome, latencyMs: number): void {
  const { metrics } = state;
  metrics.requests.inc({ route: exchange.route, decision: outcome.decision, reason: outcome.reason.split(":")[0] ?? outcome.reason });
  metrics.duration.observe({ route: exchange.route, provider: exchange.provider ?? "none" }, latencyMs / 1000);
  if (exchange.provider !== undefined && (outcome.tokensIn ?? 0) + (outcome.tokensOut ?? 0) > 0) {
    metrics.tokens.inc({ provider: exchange.provider, direction: "input" }, outcome.tokensIn ?? 0);
    metrics.tokens.inc({ provider: exchange.provider, direction: "output" }, outcome.tokensOut ?? 0);
    if ((outcome.cost ?? 0) > 0) metrics.cost.inc({ provider: exchange.provider }, outcome.cost ?? 0);
  }
}

/**
 * Records how a request ended, resolving once the record is committed (false when it could not be). A forwarded
 * request's outcome settles its committed decision (`llm-response`, naming it by `decisionSeq`: status, usage,
 * cost); the answer streams to the agent meanwhile, but its end waits for this commit (a failed one cuts it). A
 * request refused or failed before a decision to forward is one `llm-request` record, committed before the refusal
 * is answered (its failure is logged whole and turns /healthz unhealthy; the refusal stands).
 */
export function recordOutcome(state: LlmProxyState, exchange: LlmExchange, outcome: LlmOutcome): Promise<boolean> {
  const latencyMs = Math.round((performance.now() - exchange.started) * 1000) / 1000;
  countOutcome(state, exchange, outcome, latencyMs);
  const result = {
    decision: outcome.decision,
    reason: outcome.reason,
    status: outcome.status,
    tokensIn: outcome.tokensIn ?? 0,
    tokensOut: outcome.tokensOut ?? 0,
    usageSource: outcome.usageSource ?? "none",
    cost: outcome.cost ?? 0,
    latencyMs,
    ...(outcome.firstChunkMs === undefined ? {} : { firstChunkMs: Math.round(outcome.firstChunkMs * 1000) / 1000 }),
    ...(exchange.failovers.length > 0 ? { failovers: exchange.failovers } : {}),
    ...(exchange.clientGone ? { cancelled: true } : {}),
  };
  if (exchange.decisionSeq === undefined) return state.recorder.refusal({ type: "llm-request", ...describeExchange(state, exchange), ...result }).then(() => true);
  const settlement = { type: "llm-response", requestId: exchange.id, decisionSeq: exchange.decisionSeq, provider: exchange.provider ?? null, upstreamModel: exchange.upstreamModel ?? null, ...(exchange.translation === undefined ? {} : { translation: exchange.translation }), ...result };
  return new Promise((resolve) => state.recorder.commit(settlement, (error) => resolve(error === null)));
}

/** Answers an error in the agent's wire format, unless an answer has started; returns the status it maps to. */
export function sendError(exchange: LlmExchange, error: ProxyError, extraHeaders: Readonly<Record<string, string | string[]>> = {}): number {
  const mapped = errorResponse(error, exchange.flavor);
  const response = exchange.response;
  if (!response.headersSent && !response.destroyed) {
    // Refused before its body was read (no route, no key, a bad key...): the body is never read (src/shared/refusal.ts).
    closeAfterAnswerIfBodyUnread(response);
    response.writeHead(mapped.status, { ...mapped.headers, ...extraHeaders, "x-perimeter-request-id": exchange.id });
    response.end(mapped.body);
  }
  return mapped.status;
}

/** Refuses a request before anything went upstream: its record is committed, then the refusal is answered. */
export async function deny(state: LlmProxyState, exchange: LlmExchange, error: ProxyError): Promise<void> {
  // Stop reading an unread body now, not only once the answer is sent: the commit takes a turn or more.
  stopReadingBody(exchange.response.req);
  await recordOutcome(state, exchange, { decision: "deny", reason: errorReason(error), status: errorResponse(error, exchange.flavor).status });
  sendError(exchange, error);
}

/** Ends a request that failed before any answer was forwarded: recorded, then answered. */
export async function failRequest(state: LlmProxyState, exchange: LlmExchange, error: ProxyError, extraHeaders: Readonly<Record<string, string | string[]>> = {}): Promise<void> {
  await recordOutcome(state, exchange, { decision: "error", reason: errorReason(error), status: errorResponse(error, exchange.flavor).status });
  sendError(exchange, error, extraHeaders);
}
