// Posting and refreshing: each pending request goes to every approver's chat once, with buttons carrying a fresh
// nonce; every message not closed yet is redrawn as its request changes (a vote, a decision elsewhere, expiry).
import { randomBytes } from "node:crypto";
import type { Approval } from "../approvals/index.ts";
import { sha256 } from "./approver-setup.ts";
import type { MessageRow } from "./approver-setup.ts";
import { enqueue } from "./approver-state.ts";
import type { ApproverState } from "./approver-state.ts";
import { outcomeLine, requestKeyboard, requestText } from "./messages.ts";

/** The request as a viewer should see it now: expired once its time is up, even before the guard marks it. */
export function effectiveApproval(approval: Approval, now: number): Approval {
  return approval.status === "pending" && approval.expiresAt !== undefined && Date.parse(approval.expiresAt) <= now ? { ...approval, status: "expired", reason: "no decision in time" } : approval;
}

/** Sends a pending request to every approver who has no message for it yet. */
export async function postRequest(state: ApproverState, id: string): Promise<void> {
  const approval = state.store.get(id);
  if (approval === undefined || effectiveApproval(approval, state.now()).status !== "pending") return;
  const have = new Set((state.statements.posted.all(id) as Array<{ chat_id: string }>).map((row) => row.chat_id));
  for (const chat of state.approvers) {
    if (!have.has(chat)) await postTo(state, approval, chat);
  }
}

async function postTo(state: ApproverState, approval: Approval, chat: string): Promise<void> {
  const nonce = randomBytes(16).toString("base64url");
  const view = requestText(approval, state.now());
  try {
    const sent = await state.bot.api.sendMessage(Number(chat), view.text, { reply_markup: requestKeyboard(approval.id, nonce, view.approvable), link_preview_options: { is_disabled: true } });
    state.statements.insert.run(approval.id, chat, sent.message_id, sha256(nonce), view.text, state.now());
    state.nonces.set(`${approval.id}:${chat}`, nonce);
    state.unreachable.delete(chat);
  } catch (error) {
    if (!(error instanceof state.errors.GrammyError && error.error_code === 403)) throw error;
    if (!state.unreachable.has(chat)) state.logger.warn({ event: "telegram-approver-unreachable", approver: chat }, `approver ${chat} has not started the approver bot: they must open it in Telegram and press Start once`);
    state.unreachable.add(chat);
  }
}

/** Redraws every message of a request that is not closed yet: the vote count, "you approved", or the outcome. */
export async function refreshRequest(state: ApproverState, id: string): Promise<void> {
  const stored = state.store.get(id);
  if (stored === undefined) return;
  const approval = effectiveApproval(stored, state.now());
  for (const row of state.statements.rows.all(id) as unknown as MessageRow[]) await refreshMessage(state, approval, row);
}

async function refreshMessage(state: ApproverState, approval: Approval, row: MessageRow): Promise<void> {
  const id = approval.id;
  const identity = `telegram:${row.chat_id}`;
  const header = requestText(approval, state.now());
  const done = approval.status !== "pending";
  const voted = !done && (approval.votes ?? []).some((vote) => vote.identity === identity && vote.decision === "approve");
  const nonce = state.nonces.get(`${id}:${row.chat_id}`);
  // A pending message keeps its buttons; without this run's nonce (after a restart) it is left as it is.
  if (!done && !voted && nonce === undefined) return;
  const text = `${header.text}\n\n${outcomeLine(approval, identity)}`;
  const markup = !done && !voted && nonce !== undefined ? requestKeyboard(id, nonce, header.approvable) : { inline_keyboard: [] };
  const messageState = done ? "closed" : voted ? "voted" : "open";
  if (text !== row.text || messageState !== row.state) {
    try {
      await state.bot.api.editMessageText(Number(row.chat_id), row.message_id, text, { reply_markup: markup, link_preview_options: { is_disabled: true } });
    } catch (error) {
      if (!(error instanceof state.errors.GrammyError && /message is not modified/.test(error.description))) throw error;
    }
  }
  state.statements.update.run(messageState, text, id, row.chat_id);
  if (done) state.nonces.delete(`${id}:${row.chat_id}`);
}

/** Reconciles Telegram with the store: posts what is pending, refreshes what is still open. */
export function sweep(state: ApproverState): void {
  for (const approval of state.store.list({ status: "pending", limit: 200 })) enqueue(state, "post", () => postRequest(state, approval.id));
  for (const { request_id: id } of state.statements.unfinished.all() as Array<{ request_id: string }>) enqueue(state, "refresh", () => refreshRequest(state, id));
}
