// What the approver bot shows and what its buttons carry, as pure functions: the text of a request (agent, tool,
// arguments, time left), the buttons, the outcome an edit shows, and the callback data format. Everything shown comes
// from agents and upstreams, so it goes out as plain text (no parse_mode: nothing in it can become markup or a link
// button) with invisible and direction-changing characters made visible.
import type { Approval } from "../approvals/index.ts";

/** Telegram's limit is 4096 characters; what a human approves must fit whole with the rest of the message. */
export const MAX_SHOWN_CHARACTERS = 3000;

const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/g;
export const visible = (text: string): string => text.replace(UNSAFE, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`);

export interface InlineKeyboard {
  inline_keyboard: Array<Array<{ text: string; callback_data: string }>>;
}

/** v1:<a|d>:<request id>:<nonce>: at most 64 bytes, the Bot API's limit for callback data. */
const CALLBACK = /^v1:([ad]):([a-z0-9]{1,40}):([A-Za-z0-9_-]{22})$/;

export function callbackData(action: "approve" | "deny", requestId: string, nonce: string): string {
  return `v1:${action === "approve" ? "a" : "d"}:${requestId}:${nonce}`;
}

export type ParsedCallback = { ok: true; action: "approve" | "deny"; requestId: string; nonce: string } | { ok: false };

export function parseCallback(data: string | undefined): ParsedCallback {
  const match = data === undefined ? null : CALLBACK.exec(data);
  if (match === null) return { ok: false };
  return { ok: true, action: match[1] === "a" ? "approve" : "deny", requestId: match[2] ?? "", nonce: match[3] ?? "" };
}

function approvalsLine(approval: Approval): string | undefined {
  if (approval.requiredApprovals <= 1) return undefined;
  const approvers = (approval.votes ?? []).filter((vote) => vote.decision === "approve");
  return `two-person rule: ${approvers.length} of ${approval.requiredApprovals} approvals${approvers.length === 0 ? "" : ` (${approvers.map((vote) => `${vote.approver} via ${vote.channel}`).join(", ")})`}`;
}

function timeLeft(approval: Approval, now: number): string | undefined {
  if (approval.expiresAt === undefined) return undefined;
  const seconds = Math.max(0, Math.round((Date.parse(approval.expiresAt) - now) / 1000));
  const left = seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${seconds} s`;
  return `expires ${approval.expiresAt.slice(11, 19)} UTC (in ${left})`;
}

/** The body a reviewer judges: a held call's redacted arguments, or a definition review's definition and findings. */
function reviewedBody(approval: Approval): { label: string; text: string } {
  const detail = (approval.detail ?? {}) as Record<string, unknown>;
  if (approval.kind === "tool-call") {
    const redactions = Array.isArray(detail.redactions) ? detail.redactions.map(String) : [];
    return {
      label: `arguments${redactions.length === 0 ? "" : ` (redacted at ${redactions.join(", ")}: you see [REDACTED], the tool gets the value)`}`,
      text: JSON.stringify(detail.arguments ?? {}, null, 1),
    };
  }
  const { findings, ...rest } = detail;
  const flagged = Array.isArray(findings) ? (findings as Array<{ kind?: string; field?: string }>) : [];
  return {
    label: `${detail.change === "changed" ? "changed" : "new"} tool definition${flagged.length === 0 ? "" : `; FLAGGED: ${flagged.map((finding) => `${finding.kind} in ${finding.field}`).join(", ")}`}`,
    text: JSON.stringify(rest, null, 1),
  };
}

export interface RequestView {
  text: string;
  /** False when the body is too long to show whole: the phone may deny, approving needs the terminal or dashboard. */
  approvable: boolean;
}

/** The message a pending request is posted (and re-posted on each vote) with. */
export function requestText(approval: Approval, now: number): RequestView {
  const body = reviewedBody(approval);
  const shown = visible(body.text);
  const approvable = shown.length <= MAX_SHOWN_CHARACTERS;
  const lines = [
    approval.kind === "tool-call" ? `Approval needed: ${visible(`${approval.server}__${approval.tool}`)}` : `Tool definition review: ${visible(`${approval.server}__${approval.tool}`)}`,
    ...(approval.agent === undefined ? [] : [`agent: ${visible(approval.agent)}`]),
    `request: ${approval.id}`,
    `definition: ${approval.definitionHash.slice(0, 16)}…`,
    ...[timeLeft(approval, now), approvalsLine(approval)].filter((line): line is string => line !== undefined),
    "",
    `${visible(body.label)}:`,
    approvable
      ? shown
      : `${shown.slice(0, 600)}…\n(${shown.length} characters: too long to show whole here, so this phone can only deny. Read it whole and approve with: perimeter approvals show ${approval.id})`,
  ];
  return { text: lines.join("\n"), approvable };
}

export function requestKeyboard(requestId: string, nonce: string, approvable: boolean): InlineKeyboard {
  const deny = { text: "Deny", callback_data: callbackData("deny", requestId, nonce) };
  return { inline_keyboard: [approvable ? [{ text: "Approve", callback_data: callbackData("approve", requestId, nonce) }, deny] : [deny]] };
}

/** The line an edited message ends with once the request is no longer pending (or this approver has voted). */
export function outcomeLine(approval: Approval, viewer: string | undefined): string {
  const last = (approval.votes ?? []).at(-1);
  switch (approval.status) {
    case "approved":
    case "used":
      return `APPROVED by ${visible(approval.approver ?? "an operator")}${last === undefined ? "" : ` via ${last.channel}`}`;
    case "denied":
      return `DENIED by ${visible(approval.approver ?? "an operator")}${last === undefined ? "" : ` via ${last.channel}`}${approval.reason === undefined ? "" : `: ${visible(approval.reason)}`}`;
    case "expired":
      return `EXPIRED: ${visible(approval.reason ?? "no decision in time")}; nothing was run`;
    case "pending": {
      const mine = (approval.votes ?? []).some((vote) => vote.identity === viewer && vote.decision === "approve");
      const count = (approval.votes ?? []).filter((vote) => vote.decision === "approve").length;
      return mine ? `You approved (${count} of ${approval.requiredApprovals}); waiting for another person` : `${count} of ${approval.requiredApprovals} approvals so far`;
    }
  }
}
