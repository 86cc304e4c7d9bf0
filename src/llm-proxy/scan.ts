// The DLP stage: the request body is scanned for secrets (redacted in place, or the request refused), then every
// wire format the failover chain needs is made from the scanned body and scanned again. Parsing tool-call arguments
// decodes JSON escapes, so a translation can hold text the first scan could not read.
import type { AdmittedRequest } from "./admit.ts";
import { UnscannableBodyError, inspectRequestBody } from "./dlp.ts";
import type { DlpHit } from "./dlp.ts";
import { deny } from "./record.ts";
import { failoverChain, planWire } from "./routing.ts";
import type { ModelTarget } from "./routing.ts";
import type { LlmExchange, LlmProxyState } from "./state.ts";
import { TranslationError, chatRequestToMessages, messagesRequestToChat } from "./translate.ts";
import type { Translation } from "./translate.ts";

/** The hops a request may take, and the body each translation needs (the agent's own body serves the others). */
export interface PreparedChain {
  readonly chain: readonly ModelTarget[];
  readonly translated: ReadonlyMap<Translation, Record<string, unknown>>;
}

/** "generic API key KEY_NAME (base64)" → "generic API key": the kind as a bounded metrics label. */
export function dlpKindLabel(kind: string): string {
  return kind.replace(/ [A-Z_][A-Z0-9_]*(?: \((?:base64|hex)\))?$/, "");
}

/**
 * Counts and logs DLP hits and says whether they refuse the request: in block mode, or (either mode) for a secret
 * in an object key, which cannot be redacted without changing the request's meaning.
 */
function reportHits(state: LlmProxyState, exchange: LlmExchange, admitted: AdmittedRequest, hits: readonly DlpHit[]): boolean {
  const blocked = admitted.runtime.dlpMode === "block" || hits.some((hit) => hit.inKey === true);
  const action = blocked ? "blocked" : "redacted";
  for (const hit of hits) state.metrics.dlpHits.inc({ kind: dlpKindLabel(hit.kind), action });
  state.logger.warn({ requestId: exchange.id, client: admitted.key.client, hits: hits.map((hit) => `${hit.kind} at ${hit.location}`), action }, "dlp-hit");
  return blocked;
}

/** Scans the agent's body; false once the request is refused. */
async function scanBody(state: LlmProxyState, exchange: LlmExchange, admitted: AdmittedRequest): Promise<boolean> {
  let hits: DlpHit[];
  try {
    hits = inspectRequestBody(admitted.body, admitted.runtime.scanner, admitted.runtime.dlpMode);
  } catch (error) {
    if (error instanceof UnscannableBodyError) {
      await deny(state, exchange, { kind: "bad-request", detail: error.message, ...(error.param === undefined ? {} : { param: error.param }) });
      return false;
    }
    throw error;
  }
  if (hits.length === 0) return true;
  exchange.dlpHits = hits;
  if (!reportHits(state, exchange, admitted, hits)) return true;
  await deny(state, exchange, { kind: "dlp-blocked", kinds: [...new Set(hits.map((hit) => hit.kind))] });
  return false;
}

type Translated = { ok: true; output: Record<string, unknown> } | { ok: false; refused: true } | { ok: false; refused: false };

/**
 * Makes and scans one translation. For the first hop a failure refuses the request; for a failover hop the hop is
 * left out of the chain instead (never half-sent).
 */
async function translateFor(state: LlmProxyState, exchange: LlmExchange, admitted: AdmittedRequest, translation: Translation, target: ModelTarget, isFirst: boolean): Promise<Translated> {
  const { scanner, dlpMode } = admitted.runtime;
  let output: Record<string, unknown>;
  let translationHits: DlpHit[];
  try {
    output = translation === "chat-to-messages" ? chatRequestToMessages(admitted.body) : messagesRequestToChat(admitted.body);
    translationHits = inspectRequestBody(output, scanner, dlpMode);
  } catch (error) {
    if (!(error instanceof TranslationError) && !(error instanceof UnscannableBodyError)) throw error;
    if (isFirst) {
      await deny(state, exchange, { kind: "bad-request", detail: error.message, ...(error.param === undefined ? {} : { param: error.param }) });
      return { ok: false, refused: true };
    }
    // The failover provider cannot take this request in its format: it is left out of the chain, not half-sent.
    state.logger.warn({ requestId: exchange.id, provider: target.provider, reason: error.message }, "failover-skipped");
    return { ok: false, refused: false };
  }
  if (translationHits.length > 0) {
    const located = translationHits.map((hit) => ({ ...hit, location: `(translated ${translation}) ${hit.location}` }));
    exchange.dlpHits = [...exchange.dlpHits, ...located];
    if (reportHits(state, exchange, admitted, located)) {
      await deny(state, exchange, { kind: "dlp-blocked", kinds: [...new Set(located.map((hit) => hit.kind))] });
      return { ok: false, refused: true };
    }
  }
  return { ok: true, output };
}

/** The DLP stage: undefined once the request is refused. */
export async function scanAndPrepare(state: LlmProxyState, exchange: LlmExchange, admitted: AdmittedRequest): Promise<PreparedChain | undefined> {
  if (!(await scanBody(state, exchange, admitted))) return undefined;
  const llm = admitted.runtime.llm;
  const translated = new Map<Translation, Record<string, unknown>>();
  const chain: ModelTarget[] = [];
  for (const target of failoverChain(llm, admitted.target)) {
    const plan = planWire(admitted.info.route, llm.providers[target.provider]?.kind ?? "openai");
    if (!plan.ok) continue;
    if (plan.translation !== undefined && !translated.has(plan.translation)) {
      const made = await translateFor(state, exchange, admitted, plan.translation, target, chain.length === 0);
      if (!made.ok) {
        if (made.refused) return undefined;
        continue;
      }
      translated.set(plan.translation, made.output);
    }
    chain.push(target);
  }
  return { chain, translated };
}
