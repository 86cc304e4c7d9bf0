// One audit record per request, through the audit-log module (`AuditLog.append`, synchronous, throws on failure).
// Fail closed: a record that cannot be written is kept in memory and retried, and while any record is pending the
// proxy refuses new requests (503) — a request that cannot be accounted for is not served. Nothing is dropped
// silently: only past a large bound is the oldest pending record dropped, and that is logged and counted.
import type { Logger } from "../shared/index.ts";

/** The part of the audit-log module's `AuditLog` that llm-proxy uses. */
export interface AuditAppender {
  append(record: { component: "llm-proxy"; type: string } & Record<string, unknown>): unknown;
}

export type LlmRequestRecord = { component: "llm-proxy"; type: "llm-request" } & Record<string, unknown>;

export interface AuditGate {
  /** True when nothing is pending (after trying to write what is). */
  ready(): boolean;
  record(record: LlmRequestRecord): void;
  pending(): number;
}

const MAX_PENDING = 10_000;

export function createAuditGate(log: AuditAppender, logger: Logger, onFailure: () => void): AuditGate {
  const queue: LlmRequestRecord[] = [];
  const flush = (): boolean => {
    while (queue.length > 0) {
      try {
        log.append(queue[0] as LlmRequestRecord);
        queue.shift();
      } catch {
        return false;
      }
    }
    return true;
  };
  const enqueue = (record: LlmRequestRecord, error: unknown) => {
    onFailure();
    logger.error({ err: (error as Error).message, requestId: record.requestId, pending: queue.length + 1 }, "audit-append failed: refusing requests until the audit log can be written");
    queue.push(record);
    if (queue.length > MAX_PENDING) {
      const dropped = queue.shift();
      logger.error({ requestId: dropped?.requestId }, "audit record dropped: too many records pending while the audit log is failing");
    }
  };
  return {
    ready: () => queue.length === 0 || flush(),
    record(record) {
      if (queue.length > 0 && !flush()) {
        enqueue(record, new Error("earlier records still pending"));
        return;
      }
      try {
        log.append(record);
      } catch (error) {
        enqueue(record, error);
      }
    },
    pending: () => queue.length,
  };
}
