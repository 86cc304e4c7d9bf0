// The budget stage: the worst case a request may cost (the largest body any hop may receive, the most expensive
// provider of the chain) is reserved against the key's limits and budgets (limits.ts), then the decision to forward
// is committed to the audit log. Only then may anything go to a provider.
import type { AdmittedRequest } from "./admit.ts";
import type { Reservation } from "./limits.ts";
import { commitDecision, deny, sendError } from "./record.ts";
import type { LlmSection, ModelTarget } from "./routing.ts";
import type { PreparedChain } from "./scan.ts";
import type { LlmExchange, LlmProxyState } from "./state.ts";
import { costOf, estimatePromptTokens, maxOutputTokens } from "./usage.ts";
import type { Route } from "./usage.ts";

/** What a request may cost at most, over every hop of its chain. */
export interface WorstCaseEstimate {
  readonly promptTokens: number;
  readonly outputTokens: number;
  readonly cost: number;
  /** Providers of the chain without a price (a cost budget cannot count what is spent there). */
  readonly unpricedProviders: readonly string[];
}

/** A request admitted against its key's budgets, its decision committed. */
export interface ReservedRequest extends WorstCaseEstimate {
  readonly reservation: Reservation;
}

/** The worst case is that of the largest body any provider of the chain may receive, at its most expensive price. */
export function worstCaseOf(llm: LlmSection, route: Route, body: Record<string, unknown>, prepared: PreparedChain): WorstCaseEstimate {
  const promptTokens = Math.max(estimatePromptTokens(body), ...[...prepared.translated.values()].map((output) => estimatePromptTokens(output)));
  const outputTokens = maxOutputTokens(route, body);
  let cost = 0;
  const unpricedProviders: string[] = [];
  for (const target of prepared.chain as readonly ModelTarget[]) {
    const pricing = llm.providers[target.provider]?.costPer1kTokens;
    if (pricing === undefined) unpricedProviders.push(target.provider);
    cost = Math.max(cost, costOf({ input: promptTokens, output: outputTokens }, pricing));
  }
  return { promptTokens, outputTokens, cost, unpricedProviders };
}

/** The budget stage: undefined once the request is refused (over a limit, or its decision could not be recorded). */
export async function reserveBudget(state: LlmProxyState, exchange: LlmExchange, admitted: AdmittedRequest, prepared: PreparedChain): Promise<ReservedRequest | undefined> {
  const worst = worstCaseOf(admitted.runtime.llm, admitted.info.route, admitted.body, prepared);
  const tokens = worst.promptTokens + worst.outputTokens;
  const admission = state.ledger.admit(admitted.key, { tokens, cost: worst.cost, unpricedProviders: worst.unpricedProviders });
  if (!admission.ok) {
    await deny(state, exchange, admission.error);
    return undefined;
  }
  if (!(await commitDecision(state, exchange, { tokens, cost: worst.cost }))) {
    // Nothing goes to a provider unrecorded: the log refused the decision, so the request is refused (fail closed).
    state.ledger.settle(admission.reservation, { tokensIn: 0, tokensOut: 0, cost: 0 });
    sendError(exchange, { kind: "audit-unavailable" });
    state.metrics.requests.inc({ route: exchange.route, decision: "deny", reason: "audit-unavailable" });
    return undefined;
  }
  return { ...worst, reservation: admission.reservation };
}
