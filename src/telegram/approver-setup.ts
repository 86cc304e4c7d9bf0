// What the approver bot checks and prepares before it starts: the token (its shape, and never the agent's own),
// the proxy agent its Bot API traffic goes through, and the table of posted messages with its statements.
import { createHash, timingSafeEqual } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { readSecret } from "../config/index.ts";
import type { Environment, PerimeterConfig, TelegramApproverConfig } from "../config/index.ts";
import { PerimeterError } from "../shared/index.ts";

export class TelegramSetupError extends PerimeterError {
  constructor(message: string) {
    super("setup", message);
  }
}

/** One posted message: the request it shows, the approver's chat, and the sha256 of the nonce its buttons carry. */
export interface MessageRow {
  request_id: string;
  chat_id: string;
  message_id: number;
  nonce_sha256: string;
  state: "open" | "voted" | "closed";
  text: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS approvals_telegram_messages (
  request_id TEXT NOT NULL,
  chat_id TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  nonce_sha256 TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('open', 'voted', 'closed')),
  text TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (request_id, chat_id)
);
CREATE INDEX IF NOT EXISTS approvals_telegram_messages_state ON approvals_telegram_messages (state);
`;

export interface MessageStatements {
  readonly row: StatementSync;
  readonly rows: StatementSync;
  readonly insert: StatementSync;
  readonly consume: StatementSync;
  readonly reopen: StatementSync;
  readonly update: StatementSync;
  readonly unfinished: StatementSync;
  readonly posted: StatementSync;
}

/** Creates the messages table beside the approval store's and prepares what the bot runs on it. */
export function prepareMessageTable(database: DatabaseSync): MessageStatements {
  database.exec(SCHEMA);
  return {
    row: database.prepare("SELECT * FROM approvals_telegram_messages WHERE request_id = ? AND chat_id = ?"),
    rows: database.prepare("SELECT * FROM approvals_telegram_messages WHERE request_id = ? AND state != 'closed'"),
    insert: database.prepare("INSERT OR IGNORE INTO approvals_telegram_messages (request_id, chat_id, message_id, nonce_sha256, state, text, created_at) VALUES (?, ?, ?, ?, 'open', ?, ?)"),
    consume: database.prepare("UPDATE approvals_telegram_messages SET state = ? WHERE request_id = ? AND chat_id = ? AND state = 'open'"),
    reopen: database.prepare("UPDATE approvals_telegram_messages SET state = 'open' WHERE request_id = ? AND chat_id = ? AND state = 'voted'"),
    update: database.prepare("UPDATE approvals_telegram_messages SET state = ?, text = ? WHERE request_id = ? AND chat_id = ?"),
    unfinished: database.prepare("SELECT DISTINCT request_id FROM approvals_telegram_messages WHERE state != 'closed'"),
    posted: database.prepare("SELECT chat_id FROM approvals_telegram_messages WHERE request_id = ?"),
  };
}

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** Two hex digests compared in constant time. */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The settings checked before anything starts: a bad token setup stops the guard with the reason. */
export function checkSetup(config: PerimeterConfig, telegram: TelegramApproverConfig, env: Environment): { token: string; proxyToken?: string } {
  const token = readSecret(env, telegram.tokenSecret, "approvals.telegram.tokenSecret (the approver bot's token)");
  if (!/^\d{3,20}:[A-Za-z0-9_-]{20,}$/.test(token)) {
    throw new TelegramSetupError(`${telegram.tokenSecret} does not hold a Telegram bot token (digits, a colon, then the secret, as @BotFather gives it)`);
  }
  // The schema refuses the agent's variable by name; the same token under another name is refused here by value.
  for (const [name, platform] of Object.entries(config.agent.platforms)) {
    if (platform === undefined) continue;
    for (const variable of [platform.tokenSecret, ...platform.extraSecrets]) {
      if (env[variable] !== undefined && env[variable] !== "" && env[variable] === token) {
        throw new TelegramSetupError(`${telegram.tokenSecret} holds the same token as ${variable} (agent.platforms.${name}): the agent holds that token and could answer the approval buttons itself; create a separate bot for approvals`);
      }
    }
  }
  const proxyToken = telegram.proxyTokenSecret === undefined ? undefined : readSecret(env, telegram.proxyTokenSecret, "approvals.telegram.proxyTokenSecret (the bot's egress proxy token)");
  return { token, ...(proxyToken === undefined ? {} : { proxyToken }) };
}

/** Node's own proxy support (an Agent with proxyEnv): CONNECT for https, absolute-form for a loopback http root. */
export function proxyAgent(telegram: TelegramApproverConfig, proxyToken: string | undefined): HttpAgent | undefined {
  if (telegram.proxy === undefined) return undefined;
  const proxy = new URL(telegram.proxy);
  if (proxyToken !== undefined) {
    proxy.username = "approvals-telegram";
    proxy.password = encodeURIComponent(proxyToken);
  }
  const proxyEnv = { HTTPS_PROXY: proxy.href, HTTP_PROXY: proxy.href };
  return new URL(telegram.apiRoot).protocol === "https:" ? new HttpsAgent({ proxyEnv, keepAlive: true }) : new HttpAgent({ proxyEnv, keepAlive: true });
}

/** The bot and proxy tokens masked in a text that may have come from an error (grammY puts the URL in some). */
export function scrubTokens(text: string, token: string, proxyToken: string | undefined): string {
  return text.split(token).join("[bot token]").split(proxyToken ?? "\u0000never").join("[proxy token]");
}
