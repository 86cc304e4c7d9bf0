// approvals: who decides held calls, on which channels, and how many people each tool needs.
import { z } from "zod";
import { secretName } from "./scalars.ts";

/** A Telegram user id. Usernames are refused: they can be released and claimed by someone else, ids cannot. */
const telegramUserId = z.union([z.number(), z.string()]).superRefine((value, context) => {
  const text = String(value).trim();
  if (/^@?[A-Za-z][A-Za-z0-9_]{3,31}$/.test(text)) {
    context.addIssue({ code: "custom", message: `"${text}" is a username: usernames can change hands, so list the numeric user id (the approver bot logs the id of anyone who sends it /start)` });
  } else if (/^-\d+$/.test(text)) {
    context.addIssue({ code: "custom", message: `${text} is a group or channel id: approvers are people, list each one's numeric user id` });
  } else if (!/^[1-9]\d{0,15}$/.test(text) || (typeof value === "number" && !Number.isSafeInteger(value))) {
    context.addIssue({ code: "custom", message: `"${text}" is not a Telegram user id: write the number (e.g. 123456789)` });
  }
}).transform((value) => String(value).trim());

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

export const telegramApprover = z
  .strictObject({
    tokenSecret: secretName.describe("Environment variable holding the approver bot's token: a bot of its own, never the agent's (the agent holds that token and could read or answer the buttons itself)."),
    approvers: z
      .array(telegramUserId)
      .min(1, "list the numeric Telegram user ids allowed to approve: with none, nobody could decide on the phone")
      .describe("Numeric Telegram user ids of the people who may decide; each must have sent /start to the bot once. Usernames are refused."),
    apiRoot: z
      .url()
      .default("https://api.telegram.org")
      .superRefine((value, context) => {
        const url = new URL(value);
        if (url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOST.test(url.host.replace(/:\d+$/, "")))) return;
        context.addIssue({ code: "custom", message: `"${value}": the bot token travels in every request path, so use https (http only to a Bot API server on loopback)` });
      })
      .describe("Bot API root (a self-hosted Bot API server, or a stand-in in tests). @default https://api.telegram.org"),
    proxy: z
      .url({ protocol: /^http$/ })
      .optional()
      .describe("The egress proxy the bot's requests go through (e.g. http://127.0.0.1:3128); perimeter up fills in its own. @default none: direct"),
    proxyTokenSecret: secretName.optional().describe("Token of the bot's egress.clients entry, sent to the proxy as Proxy-Authorization."),
  })
  .describe("The Telegram approver bot (issue 19): held calls and definition reviews go to the approvers' chats with Approve / Deny buttons.");

export const approvalTool = z.union([
  z.string(),
  z.strictObject({
    tool: z.string().describe("A `<server>__<tool>` glob."),
    approvers: z
      .number()
      .int()
      .min(1)
      .max(10)
      .default(1)
      .describe("Distinct people who must approve each call (the two-person rule: 2); any deny ends it. The admin token counts as one person, each Telegram approver as one. @default 1"),
  }),
]);

export const approvalsSection = z
  .strictObject({
    timeoutSeconds: z.number().int().min(1).max(86400).default(600),
    tools: z
      .array(approvalTool)
      .default([])
      .describe("Extra `<server>__<tool>` globs whose calls need approval, as a string or { tool, approvers: N } for N distinct approvers."),
    telegram: telegramApprover.optional(),
    hook: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe("A command (argv, no shell) run for each held call and each pending definition review, with the event as one JSON object on stdin: a page, a webhook through curl, a chat message. It gets PATH, HOME and LANG only, is killed after hookTimeoutSeconds, and its failure is logged; it never delays or changes a decision. @default none"),
    hookTimeoutSeconds: z.number().int().min(1).max(300).optional().describe("How long the hook may run before it is killed. @default 10"),
    maxReviewBytes: z
      .number()
      .int()
      .min(1024)
      .max(16777216)
      .default(262144)
      .describe("Largest redacted arguments (JSON bytes) of a held call that a reviewer is shown whole; a call needing approval with larger arguments is denied, since a human would approve what they cannot see. @default 256 KiB"),
  });
