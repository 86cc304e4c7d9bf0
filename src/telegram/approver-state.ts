// The approver bot's state (one typed object, built once by createTelegramApprover) and the one queue its sends
// and edits go through: the Bot API sees them in order and a burst of requests cannot interleave.
import type { Bot, Context } from "grammy";
import type * as Grammy from "grammy";
import type { ApprovalStore, AuditAppender } from "../approvals/index.ts";
import type { TelegramApproverConfig } from "../config/index.ts";
import type { Logger } from "../shared/index.ts";
import type { MessageStatements } from "./approver-setup.ts";

export type ApproverStatus = { state: "created" | "starting" | "unreachable" | "polling" | "failed" | "stopped"; error?: string };

export interface ApproverState {
  readonly telegram: TelegramApproverConfig;
  readonly store: ApprovalStore;
  readonly audit: AuditAppender;
  readonly logger: Logger;
  readonly now: () => number;
  /** Numeric user ids, as strings; each approver's private chat has the same id. */
  readonly approvers: ReadonlySet<string>;
  readonly statements: MessageStatements;
  /** Nonces of this run's messages, to redraw their buttons when a vote changes the text; only hashes are stored. */
  readonly nonces: Map<string, string>;
  /** Approvers who have not pressed Start (sendMessage answers 403): warned about once. */
  readonly unreachable: Set<string>;
  readonly bot: Bot<Context>;
  /** grammY's error classes, loaded with it (grammY loads only when a bot is configured). */
  readonly errors: { readonly GrammyError: typeof Grammy.GrammyError; readonly HttpError: typeof Grammy.HttpError };
  readonly scrub: (text: string) => string;
  readonly lifetime: AbortController;
  status: ApproverStatus;
  /** The tail of the send/edit queue. */
  queue: Promise<void>;
  /** After a failure (Telegram or the proxy unreachable, a 429), sends wait until then instead of retrying on every sweep. */
  retryAt: number;
  backoffMs: number;
}

/** grammY hides the cause of a network failure in `error`; it names the proxy's refusal or the unreachable host. */
export function describeError(state: ApproverState, error: unknown): string {
  const cause = error instanceof state.errors.HttpError ? (error.error as Error | undefined)?.message : undefined;
  return state.scrub(`${(error as Error).message ?? String(error)}${cause === undefined ? "" : ` (${cause})`}`);
}

/** Runs `task` after everything queued before it; a failure is logged and pauses the queue with backoff. */
export function enqueue(state: ApproverState, what: string, task: () => Promise<void>): void {
  state.queue = state.queue
    .then(async () => {
      if (state.now() < state.retryAt) return;
      await task();
      state.backoffMs = 1000;
    })
    .catch((error: unknown) => {
      const retryAfter = error instanceof state.errors.GrammyError && error.error_code === 429 ? (error.parameters.retry_after ?? 5) * 1000 : state.backoffMs;
      state.retryAt = state.now() + retryAfter;
      state.backoffMs = Math.min(state.backoffMs * 2, 60_000);
      state.logger.error({ event: "telegram-error", what, error: describeError(state, error), retryInMs: retryAfter }, "the approver bot could not update Telegram");
    });
}

/** Resolves once the queue is empty, including tasks queued while it drained. */
export async function queueIdle(state: ApproverState): Promise<void> {
  let current: Promise<void>;
  do {
    current = state.queue;
    await current;
  } while (current !== state.queue);
}
