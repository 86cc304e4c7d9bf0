// Group commit: many services' hot paths (a proxy deciding thousands of requests a second) cannot afford one SQLite
// transaction per record, but must not let an operation proceed before its record is durable in the chain. The
// committer queues records and writes everything queued in one event-loop turn as a single transaction, then tells
// each caller; the caller lets its operation proceed only in that callback. A request that arrives alone still
// waits for one transaction (no timer, no added delay beyond the turn); under load one transaction covers many.
import type { AuditEventInput, AuditLog, AuditRecord, PreparedAuditEvent } from "./types.ts";
import { AuditWriteError } from "./types.ts";

/** Called once: with the record when it is committed, or with the error that kept it (and its batch) out. */
export type AuditCommitted = (error: AuditWriteError | null, record?: AuditRecord) => void;

export interface GroupCommitter {
  /**
   * Queues `event`; `done` runs after the transaction holding it commits (error null) or fails. An invalid event
   * throws AuditWriteError here, at once, and never joins a batch. `done` must not throw.
   */
  append(event: AuditEventInput, done: AuditCommitted): void;
  /**
   * Queues a record nothing waits for (a refusal already answered, a closed connection): it joins the next commit
   * anyone waits for, or is committed within `deferMs` on its own, so that it adds no transaction to a quiet
   * service's hot path. `done` as for append. Invalid events throw here.
   */
  appendSoon(event: AuditEventInput, done: AuditCommitted): void;
  /** Commits what is queued now, synchronously (before close, or when a caller needs the record at once). */
  flush(): void;
  /** Records waiting for the next commit. */
  pending(): number;
  /** Transactions written so far (for metrics and tests). */
  batches(): number;
}

/** Largest batch in one transaction: bounds the time the write lock is held for other processes. */
const MAX_BATCH = 512;

export function createGroupCommitter(
  log: { prepare: AuditLog["prepare"]; appendPrepared(events: readonly PreparedAuditEvent[]): readonly AuditRecord[] },
  options: { deferMs?: number } = {},
): GroupCommitter {
  const deferMs = options.deferMs ?? 20;
  let queue: Array<{ event: PreparedAuditEvent; done: AuditCommitted }> = [];
  let scheduled: NodeJS.Immediate | undefined;
  let deferred: NodeJS.Timeout | undefined;
  let batches = 0;

  function flush(): void {
    if (scheduled !== undefined) clearImmediate(scheduled);
    scheduled = undefined;
    if (deferred !== undefined) clearTimeout(deferred);
    deferred = undefined;
    while (queue.length > 0) {
      const batch = queue.length <= MAX_BATCH ? queue : queue.slice(0, MAX_BATCH);
      queue = queue.length <= MAX_BATCH ? [] : queue.slice(MAX_BATCH);
      let records: readonly AuditRecord[] | undefined;
      let failure: AuditWriteError | undefined;
      try {
        records = log.appendPrepared(batch.map((entry) => entry.event));
        batches += 1;
      } catch (error) {
        failure = error instanceof AuditWriteError ? error : new AuditWriteError(`cannot write to the audit log: ${String(error)}`, { cause: error });
      }
      let thrown: unknown;
      batch.forEach((entry, index) => {
        try {
          if (failure !== undefined) entry.done(failure);
          else entry.done(null, records?.[index]);
        } catch (error) {
          thrown ??= error;
        }
      });
      // A throwing callback is a bug in its caller: every other caller has been told, then it surfaces loudly.
      if (thrown !== undefined) {
        const error = thrown;
        process.nextTick(() => {
          throw error;
        });
      }
    }
  }

  return {
    append(event, done) {
      const prepared = log.prepare(event);
      queue.push({ event: prepared, done });
      scheduled ??= setImmediate(flush);
    },
    appendSoon(event, done) {
      const prepared = log.prepare(event);
      queue.push({ event: prepared, done });
      if (scheduled === undefined) deferred ??= setTimeout(flush, deferMs);
    },
    flush,
    pending: () => queue.length,
    batches: () => batches,
  };
}
