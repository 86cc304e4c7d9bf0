// The Telegram approver bot (issue 19): posts each pending request of the approval store — a held call, a tool
// definition review — to every approver's private chat with Approve / Deny buttons, and turns a click into a store
// decision. It decides through the same store as the CLI and the dashboard (one request, one outcome, whichever path
// is first) and edits every message with the outcome, also when the request was decided elsewhere or expired.
//
// What a click must carry to count: it comes from a listed numeric user id, in that user's own chat, on the message
// the bot posted there, with the request id and a single-use 128-bit nonce that only that message carried (its
// sha256 is kept in approvals_telegram_messages). Anything else is refused, recorded and changes nothing. The bot
// runs in mcp-guard's process (it holds the store), long-polls the Bot API through grammY, and sends its traffic
// through the egress proxy when approvals.telegram.proxy is set.
import { PerimeterError } from "../shared/index.ts";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { createRequire } from "node:module";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import type { Context } from "grammy";
import type * as Grammy from "grammy";
import { ApprovalStateError } from "../approvals/index.ts";
import type { Approval, ApprovalStore, AuditAppender } from "../approvals/index.ts";
import { readSecret } from "../config/index.ts";
import type { Environment, PerimeterConfig, TelegramApproverConfig } from "../config/index.ts";
import type { Logger } from "../shared/index.ts";
import { outcomeLine, parseCallback, requestKeyboard, requestText } from "./messages.ts";

export class TelegramSetupError extends PerimeterError {
  constructor(message: string) {
    super("setup", message);
  }
}

export interface TelegramApproverDependencies {
  store: ApprovalStore;
  /** The audit database connection the store uses: the bot keeps its messages and nonce hashes beside the requests. */
  database: DatabaseSync;
  audit: AuditAppender;
  env: Environment;
  logger: Logger;
  now?: () => number;
  /** How often messages are reconciled with the store (decisions taken by another process, expiry). @default 2000 */
  sweepIntervalMs?: number;
  /** Long-polling timeout of getUpdates, seconds. @default 30 */
  pollTimeoutSeconds?: number;
}

export interface TelegramApprover {
  /** Starts long polling and posting; returns at once (failures are logged and shown by state()). */
  start(): void;
  close(): Promise<void>;
  /**
   * created → starting → polling; "unreachable" while the Bot API (or the proxy) cannot be reached, retried with
   * backoff; "failed" when the Bot API refuses the token, which no retry fixes.
   */
  state(): { state: "created" | "starting" | "unreachable" | "polling" | "failed" | "stopped"; error?: string };
  /** Resolves when the queue of sends and edits is empty (tests, shutdown). */
  idle(): Promise<void>;
}

interface MessageRow {
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

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The settings checked before anything starts: a bad token setup stops the guard with the reason. */
function checkSetup(config: PerimeterConfig, telegram: TelegramApproverConfig, env: Environment): { token: string; proxyToken?: string } {
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
function proxyAgent(telegram: TelegramApproverConfig, proxyToken: string | undefined): HttpAgent | undefined {
  if (telegram.proxy === undefined) return undefined;
  const proxy = new URL(telegram.proxy);
  if (proxyToken !== undefined) {
    proxy.username = "approvals-telegram";
    proxy.password = encodeURIComponent(proxyToken);
  }
  const proxyEnv = { HTTPS_PROXY: proxy.href, HTTP_PROXY: proxy.href };
  return new URL(telegram.apiRoot).protocol === "https:" ? new HttpsAgent({ proxyEnv, keepAlive: true }) : new HttpAgent({ proxyEnv, keepAlive: true });
}

export function createTelegramApprover(config: PerimeterConfig, dependencies: TelegramApproverDependencies): TelegramApprover {
  const telegram = config.approvals.telegram;
  if (telegram === undefined) throw new TelegramSetupError("approvals.telegram is not configured");
  const { store, database, audit, logger } = dependencies;
  const now = dependencies.now ?? Date.now;
  const { token, proxyToken } = checkSetup(config, telegram, dependencies.env);
  const scrub = (text: string) => text.split(token).join("[bot token]").split(proxyToken ?? "\u0000never").join("[proxy token]");
  const approvers = new Set(telegram.approvers);
  database.exec(SCHEMA);
  const statements: Record<string, StatementSync> = {
    row: database.prepare("SELECT * FROM approvals_telegram_messages WHERE request_id = ? AND chat_id = ?"),
    rows: database.prepare("SELECT * FROM approvals_telegram_messages WHERE request_id = ? AND state != 'closed'"),
    insert: database.prepare("INSERT OR IGNORE INTO approvals_telegram_messages (request_id, chat_id, message_id, nonce_sha256, state, text, created_at) VALUES (?, ?, ?, ?, 'open', ?, ?)"),
    consume: database.prepare("UPDATE approvals_telegram_messages SET state = ? WHERE request_id = ? AND chat_id = ? AND state = 'open'"),
    reopen: database.prepare("UPDATE approvals_telegram_messages SET state = 'open' WHERE request_id = ? AND chat_id = ? AND state = 'voted'"),
    update: database.prepare("UPDATE approvals_telegram_messages SET state = ?, text = ? WHERE request_id = ? AND chat_id = ?"),
    unfinished: database.prepare("SELECT DISTINCT request_id FROM approvals_telegram_messages WHERE state != 'closed'"),
    posted: database.prepare("SELECT chat_id FROM approvals_telegram_messages WHERE request_id = ?"),
  };
  /** Nonces of this run's messages, to redraw their buttons when a vote changes the text; only hashes are stored. */
  const nonces = new Map<string, string>();
  const agent = proxyAgent(telegram, proxyToken);
  // grammY (and node-fetch under it) loads only when a bot is configured: mcp-guard shares perimeter up's process.
  const { Bot, GrammyError, HttpError } = createRequire(import.meta.url)("grammy") as typeof Grammy;
  const bot = new Bot<Context>(token, {
    client: {
      apiRoot: telegram.apiRoot.replace(/\/+$/, ""),
      timeoutSeconds: (dependencies.pollTimeoutSeconds ?? 30) + 15,
      ...(agent === undefined ? {} : { baseFetchConfig: { agent, compress: true } }),
    },
  });
  let status: ReturnType<TelegramApprover["state"]> = { state: "created" };
  const unreachable = new Set<string>();

  // ---- one queue for sends and edits: the Bot API sees them in order and a burst of requests cannot interleave.
  let queue: Promise<void> = Promise.resolve();
  /** grammY hides the cause of a network failure in `error`; it names the proxy's refusal or the unreachable host. */
  const describe = (error: unknown): string => {
    const cause = error instanceof HttpError ? (error.error as Error | undefined)?.message : undefined;
    return scrub(`${(error as Error).message ?? String(error)}${cause === undefined ? "" : ` (${cause})`}`);
  };
  // After a failure (Telegram or the proxy unreachable, a 429), sends wait instead of retrying on every sweep.
  let retryAt = 0;
  let backoffMs = 1000;
  const enqueue = (what: string, task: () => Promise<void>) => {
    queue = queue
      .then(async () => {
        if (now() < retryAt) return;
        await task();
        backoffMs = 1000;
      })
      .catch((error: unknown) => {
        const retryAfter = error instanceof GrammyError && error.error_code === 429 ? (error.parameters.retry_after ?? 5) * 1000 : backoffMs;
        retryAt = now() + retryAfter;
        backoffMs = Math.min(backoffMs * 2, 60_000);
        logger.error({ event: "telegram-error", what, error: describe(error), retryInMs: retryAfter }, "the approver bot could not update Telegram");
      });
  };

  const refusal = (reason: string, fields: Record<string, unknown>) => {
    try {
      audit.append({ component: "approvals", type: "approval-refusal", channel: "telegram", reason, ...fields });
    } catch (error) {
      logger.error({ event: "audit-error", error: (error as Error).message }, "a refused Telegram click could not be recorded");
    }
    logger.warn({ event: "approval-refusal", channel: "telegram", reason, ...fields }, "Telegram click refused");
  };

  /** The request as a viewer should see it now: expired once its time is up, even before the guard marks it. */
  const effective = (approval: Approval): Approval =>
    approval.status === "pending" && approval.expiresAt !== undefined && Date.parse(approval.expiresAt) <= now() ? { ...approval, status: "expired", reason: "no decision in time" } : approval;

  const post = async (id: string) => {
    const approval = store.get(id);
    if (approval === undefined || effective(approval).status !== "pending") return;
    const have = new Set((statements.posted!.all(id) as Array<{ chat_id: string }>).map((row) => row.chat_id));
    for (const chat of approvers) {
      if (have.has(chat)) continue;
      const nonce = randomBytes(16).toString("base64url");
      const view = requestText(approval, now());
      try {
        const sent = await bot.api.sendMessage(Number(chat), view.text, { reply_markup: requestKeyboard(id, nonce, view.approvable), link_preview_options: { is_disabled: true } });
        statements.insert!.run(id, chat, sent.message_id, sha256(nonce), view.text, now());
        nonces.set(`${id}:${chat}`, nonce);
        unreachable.delete(chat);
      } catch (error) {
        if (error instanceof GrammyError && error.error_code === 403) {
          if (!unreachable.has(chat)) logger.warn({ event: "telegram-approver-unreachable", approver: chat }, `approver ${chat} has not started the approver bot: they must open it in Telegram and press Start once`);
          unreachable.add(chat);
          continue;
        }
        throw error;
      }
    }
  };

  /** Redraws every message of a request that is not closed yet: the vote count, "you approved", or the outcome. */
  const refresh = async (id: string) => {
    const stored = store.get(id);
    if (stored === undefined) return;
    const approval = effective(stored);
    for (const row of statements.rows!.all(id) as unknown as MessageRow[]) {
      const identity = `telegram:${row.chat_id}`;
      const header = requestText(approval, now());
      const done = approval.status !== "pending";
      const voted = !done && (approval.votes ?? []).some((vote) => vote.identity === identity && vote.decision === "approve");
      const nonce = nonces.get(`${id}:${row.chat_id}`);
      // A pending message keeps its buttons; without this run's nonce (after a restart) it is left as it is.
      if (!done && !voted && nonce === undefined) continue;
      const text = `${header.text}\n\n${outcomeLine(approval, identity)}`;
      const markup = !done && !voted && nonce !== undefined ? requestKeyboard(id, nonce, header.approvable) : { inline_keyboard: [] };
      const state = done ? "closed" : voted ? "voted" : "open";
      if (text !== row.text || state !== row.state) {
        try {
          await bot.api.editMessageText(Number(row.chat_id), row.message_id, text, { reply_markup: markup, link_preview_options: { is_disabled: true } });
        } catch (error) {
          if (!(error instanceof GrammyError && /message is not modified/.test(error.description))) throw error;
        }
      }
      statements.update!.run(state, text, id, row.chat_id);
      if (done) nonces.delete(`${id}:${row.chat_id}`);
    }
  };

  const sweep = () => {
    for (const approval of store.list({ status: "pending", limit: 200 })) enqueue("post", () => post(approval.id));
    for (const { request_id: id } of statements.unfinished!.all() as Array<{ request_id: string }>) enqueue("refresh", () => refresh(id));
  };

  const unsubscribe = store.subscribe((event) => {
    const id = event.approval.id;
    if (event.type === "approval-request") enqueue("post", () => post(id));
    else enqueue("refresh", () => refresh(id));
  });

  bot.on("callback_query", async (context) => {
    const query = context.callbackQuery;
    const from = String(query.from.id);
    const answer = (text: string) => context.answerCallbackQuery({ text }).catch((error: unknown) => logger.warn({ event: "telegram-error", error: scrub((error as Error).message) }, "answerCallbackQuery failed"));
    const parsed = parseCallback(query.data);
    const requestId = parsed.ok ? parsed.requestId : null;
    if (!approvers.has(from)) {
      refusal("not an approver", { from: `telegram:${from}`, requestId });
      return answer("You are not an approver of this bot; nothing was changed.");
    }
    if (!parsed.ok) {
      refusal("malformed callback data", { from: `telegram:${from}`, requestId });
      return answer("This button is not one of ours; nothing was changed.");
    }
    const row = statements.row!.get(parsed.requestId, from) as MessageRow | undefined;
    const message = query.message;
    if (row === undefined || !sameHash(row.nonce_sha256, sha256(parsed.nonce)) || (message !== undefined && (String(message.chat.id) !== from || message.message_id !== row.message_id))) {
      refusal("forged callback: no such button was sent to this approver", { from: `telegram:${from}`, requestId });
      return answer("This button is not valid; nothing was changed.");
    }
    // Single use: the nonce is spent before the decision, so a replayed or concurrent click cannot decide twice.
    if (row.state !== "open" || statements.consume!.run("voted", parsed.requestId, from).changes !== 1) {
      refusal("replayed callback: this button was already used", { from: `telegram:${from}`, requestId });
      return answer("Already answered; nothing was changed.");
    }
    const name = [query.from.first_name, query.from.last_name].filter((part) => part !== undefined && part !== "").join(" ").replace(/[^\p{L}\p{N} .'-]/gu, "").slice(0, 40);
    try {
      const decided = store.decide(parsed.requestId, {
        decision: parsed.action,
        approver: name === "" ? `telegram:${from}` : `telegram:${from} (${name})`,
        identity: `telegram:${from}`,
        channel: "telegram",
      });
      const count = (decided.votes ?? []).filter((vote) => vote.decision === "approve").length;
      await answer(decided.status === "pending" ? `Approved: ${count} of ${decided.requiredApprovals}; waiting for another person.` : decided.status === "approved" ? "Approved." : "Denied.");
    } catch (error) {
      if (error instanceof ApprovalStateError) {
        refusal(`decision refused: ${error.code}`, { from: `telegram:${from}`, requestId });
        await answer(error.code === "already-voted" ? "You already approved this request; another person must approve it." : `Too late: ${error.message}`);
      } else {
        // Not recorded, so not applied (the store audits first): the button stays usable.
        statements.reopen!.run(parsed.requestId, from);
        logger.error({ event: "approval-error", channel: "telegram", error: (error as Error).message }, "a Telegram decision could not be recorded; nothing changed");
        await answer("The decision could not be recorded, so nothing changed; tell the operator.");
      }
    }
    enqueue("refresh", () => refresh(parsed.requestId));
  });

  bot.on("message", (context) => {
    const from = String(context.from?.id ?? "");
    if (approvers.has(from)) {
      if (context.message.text === "/start") {
        unreachable.delete(from);
        enqueue("welcome", async () => {
          await context.reply("Perimeter approvals: held calls and tool-definition reviews will be posted here with Approve / Deny buttons.");
        });
        sweep();
      }
      return;
    }
    // Strangers get no answer (a bot token is effectively public); the operator sees their id to list a new approver.
    logger.info({ event: "telegram-stranger", from }, `Telegram user ${from} wrote to the approver bot; list the id in approvals.telegram.approvers if this is an approver`);
  });

  bot.catch((error) => logger.error({ event: "telegram-error", error: scrub(error.message) }, "the approver bot failed to handle an update"));

  let sweeper: NodeJS.Timeout | undefined;
  const lifetime = new AbortController();

  /**
   * grammY retries a failing getMe forever and cannot be stopped while it does; so the bot is introduced here first,
   * with backoff that close() interrupts and a state that says why it waits, and polling starts once that worked.
   */
  const run = async () => {
    let delay = 1000;
    while (!lifetime.signal.aborted) {
      try {
        // grammY types its signal with the abort-controller shim; the platform AbortSignal is what it uses at run time.
        bot.botInfo = await bot.api.getMe(lifetime.signal as unknown as Parameters<typeof bot.api.getMe>[0]);
        break;
      } catch (error) {
        if (lifetime.signal.aborted) return;
        if (error instanceof GrammyError && (error.error_code === 401 || error.error_code === 404)) {
          status = { state: "failed", error: `the Bot API refused the token in ${telegram.tokenSecret} (${error.error_code}): check it with @BotFather` };
          logger.error({ event: "telegram-approver-failed", error: status.error }, "the Telegram approver bot cannot start: approve from the terminal or the dashboard until it is fixed");
          return;
        }
        const reason = describe(error);
        if (status.error !== reason) logger.error({ event: "telegram-approver-unreachable", error: reason }, "the Telegram Bot API cannot be reached (retrying): approve from the terminal or the dashboard meanwhile");
        status = { state: "unreachable", error: reason };
        await sleep(delay, undefined, { signal: lifetime.signal }).catch(() => undefined);
        delay = Math.min(delay * 2, 60_000);
      }
    }
    if (lifetime.signal.aborted) return;
    await bot.start({
      allowed_updates: ["message", "callback_query"],
      timeout: dependencies.pollTimeoutSeconds ?? 30,
      onStart: (info) => {
        status = { state: "polling" };
        logger.info({ event: "telegram-approver-started", bot: info.username, approvers: approvers.size }, "Telegram approver bot polling");
        sweep();
      },
    });
  };

  return {
    start() {
      if (status.state !== "created") return;
      status = { state: "starting" };
      sweeper = setInterval(sweep, dependencies.sweepIntervalMs ?? 2000);
      sweeper.unref();
      run().catch((error: unknown) => {
        if (lifetime.signal.aborted) return;
        status = { state: "failed", error: describe(error) };
        logger.error({ event: "telegram-approver-failed", error: status.error }, "the Telegram approver bot stopped: approve from the terminal or the dashboard until it is fixed");
      });
    },
    state: () => status,
    idle: async () => {
      let current: Promise<void>;
      do {
        current = queue;
        await current;
      } while (current !== queue);
    },
    async close() {
      lifetime.abort();
      unsubscribe();
      if (sweeper !== undefined) clearInterval(sweeper);
      if (bot.isRunning()) await bot.stop().catch(() => undefined);
      await queue;
      agent?.destroy();
      status = status.state === "failed" ? status : { state: "stopped" };
    },
  };
}
