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
import { createRequire } from "node:module";
import type { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import type { Context } from "grammy";
import type * as Grammy from "grammy";
import type { ApprovalStore, AuditAppender } from "../approvals/index.ts";
import type { Environment, PerimeterConfig, TelegramApproverConfig } from "../config/index.ts";
import type { Logger } from "../shared/index.ts";
import { TelegramSetupError, checkSetup, prepareMessageTable, proxyAgent, scrubTokens } from "./approver-setup.ts";
import { describeError, enqueue, queueIdle } from "./approver-state.ts";
import type { ApproverState, ApproverStatus } from "./approver-state.ts";
import { handleCallback, handleMessage } from "./callbacks.ts";
import { postRequest, refreshRequest, sweep } from "./posting.ts";

export { TelegramSetupError } from "./approver-setup.ts";

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
  state(): ApproverStatus;
  /** Resolves when the queue of sends and edits is empty (tests, shutdown). */
  idle(): Promise<void>;
}

function createState(config: PerimeterConfig, telegram: TelegramApproverConfig, dependencies: TelegramApproverDependencies): ApproverState & { agent: ReturnType<typeof proxyAgent> } {
  const { token, proxyToken } = checkSetup(config, telegram, dependencies.env);
  const statements = prepareMessageTable(dependencies.database);
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
  return {
    telegram,
    store: dependencies.store,
    audit: dependencies.audit,
    logger: dependencies.logger,
    now: dependencies.now ?? Date.now,
    approvers: new Set(telegram.approvers),
    statements,
    nonces: new Map(),
    unreachable: new Set(),
    bot,
    errors: { GrammyError, HttpError },
    scrub: (text) => scrubTokens(text, token, proxyToken),
    lifetime: new AbortController(),
    status: { state: "created" },
    queue: Promise.resolve(),
    retryAt: 0,
    backoffMs: 1000,
    agent,
  };
}

/**
 * grammY retries a failing getMe forever and cannot be stopped while it does; so the bot is introduced here first,
 * with backoff that close() interrupts and a state that says why it waits. Returns whether polling may start.
 */
async function introduce(state: ApproverState): Promise<boolean> {
  const { bot, lifetime, logger } = state;
  let delay = 1000;
  while (!lifetime.signal.aborted) {
    try {
      // grammY types its signal with the abort-controller shim; the platform AbortSignal is what it uses at run time.
      bot.botInfo = await bot.api.getMe(lifetime.signal as unknown as Parameters<typeof bot.api.getMe>[0]);
      return true;
    } catch (error) {
      if (lifetime.signal.aborted) return false;
      if (error instanceof state.errors.GrammyError && (error.error_code === 401 || error.error_code === 404)) {
        state.status = { state: "failed", error: `the Bot API refused the token in ${state.telegram.tokenSecret} (${error.error_code}): check it with @BotFather` };
        logger.error({ event: "telegram-approver-failed", error: state.status.error }, "the Telegram approver bot cannot start: approve from the terminal or the dashboard until it is fixed");
        return false;
      }
      const reason = describeError(state, error);
      if (state.status.error !== reason) logger.error({ event: "telegram-approver-unreachable", error: reason }, "the Telegram Bot API cannot be reached (retrying): approve from the terminal or the dashboard meanwhile");
      state.status = { state: "unreachable", error: reason };
      await sleep(delay, undefined, { signal: lifetime.signal }).catch(() => undefined);
      delay = Math.min(delay * 2, 60_000);
    }
  }
  return false;
}

async function run(state: ApproverState, pollTimeoutSeconds: number): Promise<void> {
  if (!(await introduce(state)) || state.lifetime.signal.aborted) return;
  await state.bot.start({
    allowed_updates: ["message", "callback_query"],
    timeout: pollTimeoutSeconds,
    onStart: (info) => {
      state.status = { state: "polling" };
      state.logger.info({ event: "telegram-approver-started", bot: info.username, approvers: state.approvers.size }, "Telegram approver bot polling");
      sweep(state);
    },
  });
}

export function createTelegramApprover(config: PerimeterConfig, dependencies: TelegramApproverDependencies): TelegramApprover {
  const telegram = config.approvals.telegram;
  if (telegram === undefined) throw new TelegramSetupError("approvals.telegram is not configured");
  const state = createState(config, telegram, dependencies);
  const unsubscribe = state.store.subscribe((event) => {
    const id = event.approval.id;
    if (event.type === "approval-request") enqueue(state, "post", () => postRequest(state, id));
    else enqueue(state, "refresh", () => refreshRequest(state, id));
  });
  state.bot.on("callback_query", (context) => handleCallback(state, context));
  state.bot.on("message", (context) => handleMessage(state, context));
  state.bot.catch((error) => state.logger.error({ event: "telegram-error", error: state.scrub(error.message) }, "the approver bot failed to handle an update"));

  let sweeper: NodeJS.Timeout | undefined;
  return {
    start() {
      if (state.status.state !== "created") return;
      state.status = { state: "starting" };
      sweeper = setInterval(() => sweep(state), dependencies.sweepIntervalMs ?? 2000);
      sweeper.unref();
      run(state, dependencies.pollTimeoutSeconds ?? 30).catch((error: unknown) => {
        if (state.lifetime.signal.aborted) return;
        state.status = { state: "failed", error: describeError(state, error) };
        state.logger.error({ event: "telegram-approver-failed", error: state.status.error }, "the Telegram approver bot stopped: approve from the terminal or the dashboard until it is fixed");
      });
    },
    state: () => state.status,
    idle: () => queueIdle(state),
    async close() {
      state.lifetime.abort();
      unsubscribe();
      if (sweeper !== undefined) clearInterval(sweeper);
      if (state.bot.isRunning()) await state.bot.stop().catch(() => undefined);
      await state.queue;
      state.agent?.destroy();
      state.status = state.status.state === "failed" ? state.status : { state: "stopped" };
    },
  };
}
