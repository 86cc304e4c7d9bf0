// The upstream stage: the request goes to each hop of its failover chain in turn until one answers. A hop is left for
// the next one only before any byte reached the agent: on a failed connection the dialer calls retryable, or on a
// 5xx. A 4xx (or a last hop's failure) is answered in the agent's format; a 2xx is relayed (relay.ts), then the
// reservation is settled with the provider's usage and the outcome recorded before the answer's end.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { AdmittedRequest } from "./admit.ts";
import type { ReservedRequest } from "./budget.ts";
import { errorReason, upstreamErrorDetails } from "./errors.ts";
import type { ProxyError } from "./errors.ts";
import { failRequest, recordOutcome } from "./record.ts";
import { relayAnswer } from "./relay.ts";
import { planWire } from "./routing.ts";
import type { ModelTarget, ProviderKind } from "./routing.ts";
import type { PreparedChain } from "./scan.ts";
import type { LlmExchange, LlmProxyState } from "./state.ts";
import { createAnswerTranslator, translatedErrorStatus } from "./translate-answer.ts";
import type { Translation } from "./translate.ts";
import type { UpstreamProvider } from "./upstream.ts";
import { costOf } from "./usage.ts";
import type { Route } from "./usage.ts";

const MAX_ERROR_BODY = 64 * 1024;

/** The headers of the request to a provider: its key, in its own scheme; ours, never the agent's, for the rest. */
export function upstreamHeaders(kind: ProviderKind, provider: UpstreamProvider, incoming: IncomingHttpHeaders, length: number, stream: boolean): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    "content-type": "application/json",
    "content-length": length,
    accept: stream ? "text/event-stream" : "application/json",
    // We read usage from the body, so ask for it uncompressed.
    "accept-encoding": "identity",
    "user-agent": "perimeter-llm-proxy/0.1",
  };
  if (kind === "anthropic") {
    if (provider.apiKey !== undefined) headers["x-api-key"] = provider.apiKey;
    headers["anthropic-version"] = typeof incoming["anthropic-version"] === "string" ? incoming["anthropic-version"] : "2023-06-01";
    if (typeof incoming["anthropic-beta"] === "string") headers["anthropic-beta"] = incoming["anthropic-beta"];
  } else {
    if (provider.apiKey !== undefined) headers.authorization = `Bearer ${provider.apiKey}`;
    if (typeof incoming["openai-beta"] === "string") headers["openai-beta"] = incoming["openai-beta"];
  }
  return headers;
}

/** At most `limit` bytes of a body, as text, once it ends (or breaks). */
export function readLimited(stream: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = () => resolve(Buffer.concat(chunks).toString("utf8"));
    stream.on("data", (chunk: Buffer) => {
      if (size < limit) chunks.push(chunk.subarray(0, limit - size));
      size += chunk.length;
    });
    stream.on("end", finish);
    stream.on("error", finish);
    stream.on("close", finish);
  });
}

/**
 * Whether the answer streams, and whether its usage-only last chunk must be hidden: a streamed chat completion asks
 * the provider for usage (set in `body`) so budgets settle on real numbers, and hides that chunk from an agent that
 * did not ask for it.
 */
export function streamMode(route: Route, body: Record<string, unknown>): { stream: boolean; stripUsageChunk: boolean } {
  const stream = body.stream === true && route !== "embeddings";
  if (!stream || route !== "chat-completions") return { stream, stripUsageChunk: false };
  const existing = typeof body.stream_options === "object" && body.stream_options !== null ? (body.stream_options as Record<string, unknown>) : {};
  body.stream_options = { ...existing, include_usage: true };
  return { stream, stripUsageChunk: existing.include_usage !== true };
}

/** One request being forwarded: its stages' results and how it streams. */
interface Forwarding {
  readonly state: LlmProxyState;
  readonly exchange: LlmExchange;
  readonly admitted: AdmittedRequest;
  readonly prepared: PreparedChain;
  readonly reserved: ReservedRequest;
  readonly stream: boolean;
  readonly stripUsageChunk: boolean;
}

type HopResult = { readonly kind: "done" } | { readonly kind: "next"; readonly error: ProxyError } | { readonly kind: "stop"; readonly error: ProxyError };

/** Replaces the reservation by what was spent at `provider` (nothing without one); returns the cost. */
function settleWith(forwarding: Forwarding, provider: UpstreamProvider | undefined, tokensIn: number, tokensOut: number): number {
  const cost = provider === undefined ? 0 : costOf({ input: tokensIn, output: tokensOut }, provider.config.costPer1kTokens);
  forwarding.state.ledger.settle(forwarding.reserved.reservation, { tokensIn, tokensOut, cost });
  return cost;
}

/** A provider's error answer, in the agent's format; the provider's own message is redacted like a prompt. */
async function answerUpstreamError(forwarding: Forwarding, provider: UpstreamProvider, translation: Translation | undefined, upstream: IncomingMessage, status: number): Promise<void> {
  const { state, exchange } = forwarding;
  const details = upstreamErrorDetails(await readLimited(upstream, MAX_ERROR_BODY));
  const scanner = state.runtime.scanner;
  // Translated: the other API's error type means nothing to the agent's SDK, so the status decides the type and the
  // provider's own type stays readable in the message.
  const error: ProxyError =
    translation === undefined
      ? {
          kind: "upstream-error",
          provider: provider.name,
          status,
          message: scanner.redact(details.message).text,
          ...(details.type === undefined ? {} : { upstreamType: details.type }),
          ...(details.code === undefined ? {} : { upstreamCode: details.code }),
        }
      : {
          kind: "upstream-error",
          provider: provider.name,
          status: translatedErrorStatus(status, translation),
          message: scanner.redact(`${details.message}${details.type === undefined ? "" : ` (${details.type})`}`).text,
        };
  settleWith(forwarding, provider, 0, 0);
  const retryAfter = upstream.headers["retry-after"];
  await failRequest(state, exchange, error, retryAfter === undefined ? {} : { "retry-after": retryAfter });
}

/** Relays a 2xx answer, settles the reservation with the provider's usage, and records the outcome before the end. */
async function relayAndSettle(forwarding: Forwarding, provider: UpstreamProvider, translation: Translation | undefined, upstream: IncomingMessage, status: number): Promise<void> {
  const { state, exchange, stream, reserved } = forwarding;
  const translator =
    translation === undefined ? undefined : createAnswerTranslator(translation, { includeUsage: stream && !forwarding.stripUsageChunk, redact: (text) => state.runtime.scanner.redact(text).text, now: state.now });
  const result = await relayAnswer(exchange, upstream, forwarding.stripUsageChunk, translator);
  if (exchange.clientGone) state.metrics.upstreamCancelled.inc({ provider: provider.name });
  const firstChunkMs = result.firstChunkAt === undefined ? undefined : result.firstChunkAt - exchange.started;
  if (firstChunkMs !== undefined && stream) state.metrics.timeToFirstToken.observe({ provider: provider.name }, firstChunkMs / 1000);
  const reported = result.complete && result.usage.input !== undefined && result.usage.output !== undefined;
  // Without the provider's numbers (a cut stream, a provider that reports none) the reservation is charged.
  const tokensIn = reported ? (result.usage.input as number) : (result.usage.input ?? reserved.promptTokens);
  const tokensOut = reported ? (result.usage.output as number) : reserved.outputTokens;
  const cost = settleWith(forwarding, provider, tokensIn, tokensOut);
  const recorded = await recordOutcome(state, exchange, {
    decision: result.complete ? "allow" : "error",
    reason: result.complete ? "ok" : exchange.clientGone ? "client-disconnected" : "upstream-stream-broken",
    status: result.complete ? status : exchange.clientGone ? 499 : 502,
    tokensIn,
    tokensOut,
    usageSource: reported ? "provider" : "reserved",
    cost,
    ...(firstChunkMs === undefined ? {} : { firstChunkMs }),
  });
  const response = exchange.response;
  if (result.complete && !response.destroyed) {
    // The agent has every byte but the end: a complete answer ends only once its outcome is on record.
    if (recorded) response.end();
    else response.destroy();
  }
}

/** Sends the request to one provider and handles what comes back (see tryHop). */
async function sendToProvider(forwarding: Forwarding, target: ModelTarget, provider: UpstreamProvider, path: string, translation: Translation | undefined, hasNext: boolean): Promise<HopResult> {
  const { state, exchange } = forwarding;
  const outgoing = translation === undefined ? forwarding.admitted.body : (forwarding.prepared.translated.get(translation) as Record<string, unknown>);
  outgoing.model = target.model;
  const payload = JSON.stringify(outgoing);
  const outcome = await state.dialer.send({
    provider,
    path,
    headers: upstreamHeaders(provider.config.kind, provider, exchange.response.req.headers, Buffer.byteLength(payload), forwarding.stream),
    body: payload,
    onRequest: (request) => {
      exchange.upstreamRequest = request;
    },
  });
  if (exchange.clientGone) {
    if (outcome.ok) outcome.response.destroy();
    state.metrics.upstreamCancelled.inc({ provider: provider.name });
    // The provider may have started work: charge what was reserved.
    const { promptTokens, outputTokens } = forwarding.reserved;
    const cost = outcome.ok ? settleWith(forwarding, provider, promptTokens, outputTokens) : settleWith(forwarding, provider, 0, 0);
    void recordOutcome(state, exchange, { decision: "error", reason: "client-disconnected", status: 499, ...(outcome.ok ? { tokensIn: promptTokens, tokensOut: outputTokens, usageSource: "reserved", cost } : {}) });
    return { kind: "done" };
  }
  if (!outcome.ok) {
    state.logger.warn({ requestId: exchange.id, provider: provider.name, error: errorReason(outcome.error) }, "upstream-request failed");
    return { kind: outcome.retryable && hasNext ? "next" : "stop", error: outcome.error };
  }
  const upstream = outcome.response;
  const status = upstream.statusCode ?? 502;
  if (status >= 500 && hasNext) {
    upstream.resume();
    return { kind: "next", error: { kind: "upstream-error", provider: provider.name, status, message: "server error" } };
  }
  if (status >= 400 || status < 200) await answerUpstreamError(forwarding, provider, translation, upstream, status);
  else await relayAndSettle(forwarding, provider, translation, upstream, status);
  return { kind: "done" };
}

/** Tries hop `index` of the chain: "next" when the following hop may still be tried, "stop" when not. */
async function tryHop(forwarding: Forwarding, index: number): Promise<HopResult> {
  const { state, exchange } = forwarding;
  const chain = forwarding.prepared.chain;
  const target = chain[index] as ModelTarget;
  const provider = state.runtime.providers.get(target.provider);
  if (provider === undefined) return { kind: "next", error: { kind: "internal", detail: `provider ${target.provider} vanished on reload` } };
  if (index > 0) {
    exchange.failovers.push(`${chain[index - 1]?.provider}->${target.provider}`);
    state.metrics.failovers.inc({ from: chain[index - 1]?.provider ?? "", to: target.provider });
  }
  exchange.provider = target.provider;
  exchange.upstreamModel = target.model;
  // scanAndPrepare kept only hops whose wire plan holds and whose translation (if any) is prepared and scanned.
  const plan = planWire(forwarding.admitted.info.route, provider.config.kind);
  if (!plan.ok || (plan.translation !== undefined && !forwarding.prepared.translated.has(plan.translation))) {
    return { kind: "next", error: { kind: "internal", detail: `provider ${target.provider} changed its kind on reload` } };
  }
  if (plan.translation === undefined) delete exchange.translation;
  else exchange.translation = plan.translation;
  return sendToProvider(forwarding, target, provider, plan.upstreamPath, plan.translation, index + 1 < chain.length);
}

/** The upstream stage (see the file's header). The caller settles a reservation this leaves unsettled. */
export async function forwardRequest(state: LlmProxyState, exchange: LlmExchange, admitted: AdmittedRequest, prepared: PreparedChain, reserved: ReservedRequest): Promise<void> {
  const forwarding: Forwarding = { state, exchange, admitted, prepared, reserved, ...streamMode(admitted.info.route, admitted.body) };
  exchange.stream = forwarding.stream;
  let lastError: ProxyError | undefined;
  for (let index = 0; index < prepared.chain.length; index++) {
    if (exchange.clientGone) {
      // The agent left before anything was sent: send nothing, charge nothing.
      settleWith(forwarding, undefined, 0, 0);
      void recordOutcome(state, exchange, { decision: "error", reason: "client-disconnected", status: 499 });
      return;
    }
    const result = await tryHop(forwarding, index);
    if (result.kind === "done") return;
    lastError = result.error;
    if (result.kind === "stop") break;
  }
  settleWith(forwarding, undefined, 0, 0);
  await failRequest(state, exchange, lastError ?? { kind: "internal", detail: "no provider to try" });
}
