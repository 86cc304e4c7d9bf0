// The updates the bot handles: a button click (callback_query), checked from who sent it to the single-use nonce
// before the store decides, and a message (an approver's /start; a stranger's id logged for the operator).
import type { Context, Filter } from "grammy";
import { ApprovalStateError } from "../approvals/index.ts";
import { sameHash, sha256 } from "./approver-setup.ts";
import type { MessageRow } from "./approver-setup.ts";
import { enqueue } from "./approver-state.ts";
import type { ApproverState } from "./approver-state.ts";
import { parseCallback } from "./messages.ts";
import { refreshRequest, sweep } from "./posting.ts";

/** A refused click is recorded in the audit log and logged; a failure to record is logged too. */
export function recordRefusal(state: ApproverState, reason: string, fields: Record<string, unknown>): void {
  try {
    state.audit.append({ component: "approvals", type: "approval-refusal", channel: "telegram", reason, ...fields });
  } catch (error) {
    state.logger.error({ event: "audit-error", error: (error as Error).message }, "a refused Telegram click could not be recorded");
  }
  state.logger.warn({ event: "approval-refusal", channel: "telegram", reason, ...fields }, "Telegram click refused");
}

/** The name shown as the approver: letters, digits and a few marks of the user's Telegram name, at most 40. */
export function approverName(from: { first_name?: string; last_name?: string }): string {
  return [from.first_name, from.last_name].filter((part) => part !== undefined && part !== "").join(" ").replace(/[^\p{L}\p{N} .'-]/gu, "").slice(0, 40);
}

export async function handleCallback(state: ApproverState, context: Filter<Context, "callback_query">): Promise<void> {
  const query = context.callbackQuery;
  const from = String(query.from.id);
  const answer = (text: string) => context.answerCallbackQuery({ text }).catch((error: unknown) => state.logger.warn({ event: "telegram-error", error: state.scrub((error as Error).message) }, "answerCallbackQuery failed"));
  const parsed = parseCallback(query.data);
  const requestId = parsed.ok ? parsed.requestId : null;
  const refuse = (reason: string, text: string) => {
    recordRefusal(state, reason, { from: `telegram:${from}`, requestId });
    return answer(text);
  };
  if (!state.approvers.has(from)) return void (await refuse("not an approver", "You are not an approver of this bot; nothing was changed."));
  if (!parsed.ok) return void (await refuse("malformed callback data", "This button is not one of ours; nothing was changed."));
  const row = state.statements.row.get(parsed.requestId, from) as MessageRow | undefined;
  const message = query.message;
  if (row === undefined || !sameHash(row.nonce_sha256, sha256(parsed.nonce)) || (message !== undefined && (String(message.chat.id) !== from || message.message_id !== row.message_id))) {
    return void (await refuse("forged callback: no such button was sent to this approver", "This button is not valid; nothing was changed."));
  }
  // Single use: the nonce is spent before the decision, so a replayed or concurrent click cannot decide twice.
  if (row.state !== "open" || state.statements.consume.run("voted", parsed.requestId, from).changes !== 1) {
    return void (await refuse("replayed callback: this button was already used", "Already answered; nothing was changed."));
  }
  await decideFromClick(state, { requestId: parsed.requestId, action: parsed.action, from, name: approverName(query.from) }, answer, refuse);
  enqueue(state, "refresh", () => refreshRequest(state, parsed.requestId));
}

async function decideFromClick(
  state: ApproverState,
  click: { requestId: string; action: "approve" | "deny"; from: string; name: string },
  answer: (text: string) => Promise<unknown>,
  refuse: (reason: string, text: string) => Promise<unknown>,
): Promise<void> {
  const identity = `telegram:${click.from}`;
  try {
    const decided = state.store.decide(click.requestId, { decision: click.action, approver: click.name === "" ? identity : `${identity} (${click.name})`, identity, channel: "telegram" });
    const count = (decided.votes ?? []).filter((vote) => vote.decision === "approve").length;
    await answer(decided.status === "pending" ? `Approved: ${count} of ${decided.requiredApprovals}; waiting for another person.` : decided.status === "approved" ? "Approved." : "Denied.");
  } catch (error) {
    if (error instanceof ApprovalStateError) {
      await refuse(`decision refused: ${error.code}`, error.code === "already-voted" ? "You already approved this request; another person must approve it." : `Too late: ${error.message}`);
    } else {
      // Not recorded, so not applied (the store audits first): the button stays usable.
      state.statements.reopen.run(click.requestId, click.from);
      state.logger.error({ event: "approval-error", channel: "telegram", error: (error as Error).message }, "a Telegram decision could not be recorded; nothing changed");
      await answer("The decision could not be recorded, so nothing changed; tell the operator.");
    }
  }
}

export function handleMessage(state: ApproverState, context: Filter<Context, "message">): void {
  const from = String(context.from?.id ?? "");
  if (state.approvers.has(from)) {
    if (context.message.text === "/start") {
      state.unreachable.delete(from);
      enqueue(state, "welcome", async () => {
        await context.reply("Perimeter approvals: held calls and tool-definition reviews will be posted here with Approve / Deny buttons.");
      });
      sweep(state);
    }
    return;
  }
  // Strangers get no answer (a bot token is effectively public); the operator sees their id to list a new approver.
  state.logger.info({ event: "telegram-stranger", from }, `Telegram user ${from} wrote to the approver bot; list the id in approvals.telegram.approvers if this is an approver`);
}
