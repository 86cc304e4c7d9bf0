// The read-only pages built from the approvals admin API and the key-spend files: /approvals, /reviews, /egress,
// /llm. Each takes the service state and the request's context and answers one page.
import { ApprovalsApiError } from "../approvals/index.ts";
import type { Approval, ApprovalsClient } from "../approvals/index.ts";
import { approvalsPage, egressPage, llmPage, reviewsPage } from "./pages.ts";
import { pageContext, send } from "./state.ts";
import type { DashboardRequest, DashboardState } from "./state.ts";

/** Pending and the last 50 decided requests; an unreachable admin API becomes the page's error line. */
export async function listApprovals(approvals: ApprovalsClient): Promise<{ pending: Approval[]; decided: Approval[]; error?: string }> {
  try {
    const [pending, all] = await Promise.all([approvals.list({ status: "pending" }), approvals.list({})]);
    const decided = all.filter((approval) => approval.status !== "pending").slice(0, 50);
    return { pending, decided };
  } catch (error) {
    const message = error instanceof ApprovalsApiError ? error.message : `cannot list approvals: ${(error as Error).message}`;
    return { pending: [], decided: [], error: message };
  }
}

export async function approvalsRoute(state: DashboardState, context: DashboardRequest): Promise<void> {
  const data = await listApprovals(state.options.approvals);
  const decidedId = context.url.searchParams.get("decided");
  const notice = decidedId === null ? undefined : `Request ${decidedId} ${context.url.searchParams.get("status") ?? "decided"}.`;
  const reviews = data.pending.filter((approval) => approval.kind === "tool-definition").length;
  send(state, context.response, 200, approvalsPage(pageContext(state, context.session), { ...data, reviews, ...(notice === undefined ? {} : { notice }) }));
}

export async function reviewsRoute(state: DashboardState, context: DashboardRequest): Promise<void> {
  const data = await listApprovals(state.options.approvals);
  const decided = data.decided.filter((approval) => approval.kind === "tool-definition");
  send(state, context.response, 200, reviewsPage(pageContext(state, context.session), { pending: data.pending, decided, ...(data.error === undefined ? {} : { error: data.error }) }));
}

export function egressRoute(state: DashboardState, context: DashboardRequest): void {
  send(state, context.response, 200, egressPage(pageContext(state, context.session), { allowed: state.index.egressTop("allow", 10), refused: state.index.egressTop("deny", 10) }));
}

export function llmRoute(state: DashboardState, context: DashboardRequest): void {
  const { keys, errors } = state.options.keySpend();
  send(state, context.response, 200, llmPage(pageContext(state, context.session), { keys, ...(errors.length === 0 ? {} : { error: errors.join("; ") }) }));
}
