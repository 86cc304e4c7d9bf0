// One way for every service to record before it acts. A service decides, commits the decision's record, and only
// then lets the effect happen (a request forwarded, a tool call dispatched, a command started); when the effect is
// over it settles the decision with a second record that names the first (`decisionSeq`: usage, exit status,
// result). The four services used to do this four ways, and failed four ways when the log failed; now:
//
// - commit/record: the effect waits for the commit. A failure reaches the caller, which refuses (fail closed), and
//   the recorder turns unhealthy (the service's /healthz says so) until a later commit succeeds.
// - refusal: a refusal's record is committed before the refusal is answered. Its failure cannot make the answer any
//   more of a refusal, so it resolves anyway — but the whole record goes to the operational log, is counted, and the
//   service turns unhealthy: nothing is lost unseen.
// - soon: a record nothing waits for (a closed connection) rides with the next commit.
//
// A decision is recorded whatever its fields look like. A field the log cannot hold as given (nested too deep, not
// JSON, too large — an agent chooses its arguments) is stored as a placeholder with its size and sha256, so the
// record still says who did what, when, and how it was decided; it is never dropped because of what the agent sent.
import { createHash } from "node:crypto";
import type { Logger } from "../shared/index.ts";
import { toCanonicalJson } from "./canonical.ts";
import { createGroupCommitter } from "./group-commit.ts";
import type { AuditCommitted, GroupCommitter } from "./group-commit.ts";
import { AuditEventInvalidError, AuditWriteError } from "./types.ts";
import { MAX_RECORD_BYTES } from "./writer.ts";
import type { AuditComponent, AuditEventInput, AuditLog, AuditRecord, PreparedAuditEvent } from "./types.ts";

/** An event as a service hands it to its recorder: the recorder adds the component. */
export interface RecorderEvent {
  readonly type: string;
  readonly [field: string]: unknown;
}

export interface AuditRecorderOptions {
  readonly component: AuditComponent;
  readonly logger: Logger;
  /** Called on every failed write, e.g. to count it in the service's metrics. */
  readonly onFailure?: (error: AuditWriteError) => void;
  /** How long a `soon` record may wait for a commit to ride with. @default 20 */
  readonly deferMs?: number;
}

export interface AuditRecorder {
  /** Commits `event`; `done(null, record)` once it is durable, `done(error)` when it is not (the caller refuses). */
  commit(event: RecorderEvent, done: AuditCommitted): void;
  /**
   * commit as a promise: resolves with the committed record (undefined only from a sink that returns none, such as a
   * test's in-memory log), rejects with an AuditWriteError.
   */
  record(event: RecorderEvent): Promise<AuditRecord | undefined>;
  /** A refusal's record, committed before the refusal is answered; resolves whether or not it could be written. */
  refusal(event: RecorderEvent): Promise<void>;
  /** A record nothing waits for: it joins the next commit, or commits within `deferMs`. */
  soon(event: RecorderEvent): void;
  /** False from a failed write until a later one succeeds. */
  healthy(): boolean;
  /** Writes what is queued now (before the log is closed). */
  flush(): void;
  /** Records waiting for a commit. */
  pending(): number;
  /**
   * Whether commits are grouped (the log offers prepare/appendPrepared): a record then commits at the end of this
   * event-loop turn, so `done` runs later, never inside commit(); without grouping, inside it.
   */
  readonly grouped: boolean;
}

/** The part of the audit log a recorder writes through (AuditLog has it all). `prepare`/`appendPrepared` give group commit. */
export interface RecorderLog {
  /** Throws AuditWriteError when it cannot record (AuditEventInvalidError when the event itself is the problem). */
  append(event: AuditEventInput): unknown;
  prepare?: AuditLog["prepare"];
  appendPrepared?: (events: readonly PreparedAuditEvent[]) => readonly AuditRecord[];
}

/** When a record is too large, fields up to this size (as JSON) are kept: only the large ones become placeholders. */
const LARGE_FIELD_BYTES = 4096;
/** A record made recordable stays this far under the writer's limit (room for the fields the writer adds). */
const RECORD_BUDGET = MAX_RECORD_BYTES - 64 * 1024;

export function createAuditRecorder(log: RecorderLog, options: AuditRecorderOptions): AuditRecorder {
  const { component, logger } = options;
  const committer: GroupCommitter | undefined =
    log.prepare !== undefined && log.appendPrepared !== undefined ? createGroupCommitter({ prepare: log.prepare.bind(log), appendPrepared: log.appendPrepared.bind(log) }, { deferMs: options.deferMs ?? 20 }) : undefined;
  let healthy = true;

  const failed = (error: unknown, event: AuditEventInput, what: string): AuditWriteError => {
    const failure = error instanceof AuditWriteError ? error : new AuditWriteError(`cannot write to the audit log: ${String(error)}`, { cause: error });
    healthy = false;
    options.onFailure?.(failure);
    // The whole record goes to the operational log: kept out of the chain, it is still not lost unseen.
    logger.error({ event: "audit-error", error: failure.message, audit: safeForLog(event) }, what);
    return failure;
  };

  /** Queues (or, without group commit, writes) the event, falling back to placeholders for unrecordable fields. */
  const submit = (event: AuditEventInput, done: AuditCommitted, soon: boolean): void => {
    if (committer === undefined) done(null, log.append(event) as AuditRecord | undefined);
    else if (soon) committer.appendSoon(event, done);
    else committer.append(event, done);
  };
  const enqueue = (event: AuditEventInput, done: AuditCommitted, soon: boolean): void => {
    try {
      submit(event, done, soon);
    } catch (error) {
      if (!(error instanceof AuditEventInvalidError)) throw error;
      const recordable = recordableEvent(event, error.message);
      logger.warn({ event: "audit-placeholder", type: event.type, fields: recordable.replaced }, "audit record kept with placeholders for fields the log cannot hold as given");
      submit(recordable.event, done, soon);
    }
  };

  const commit = (input: RecorderEvent, done: AuditCommitted, what: string, soon = false): void => {
    const event = { ...input, component } as AuditEventInput;
    const settle: AuditCommitted = (error, record) => {
      if (error === null) {
        healthy = true;
        done(null, record);
      } else done(failed(error, event, what));
    };
    try {
      enqueue(event, settle, soon);
    } catch (error) {
      done(failed(error, event, what));
    }
  };

  return {
    commit: (event, done) => commit(event, done, "audit record could not be written; the operation is refused"),
    record: (event) =>
      new Promise((resolve, reject) =>
        commit(event, (error, record) => (error === null ? resolve(record) : reject(error)), "audit record could not be written; the operation is refused"),
      ),
    refusal: (event) => new Promise((resolve) => commit(event, () => resolve(), "audit record of a refusal could not be written")),
    soon: (event) => commit(event, () => undefined, "audit record could not be written", true),
    healthy: () => healthy,
    flush: () => committer?.flush(),
    pending: () => committer?.pending() ?? 0,
    grouped: committer !== undefined,
  };
}

/** What the placeholder of an unrecordable field says: why, how large its JSON was and its sha256 (when it has JSON). */
export interface UnrecordableField {
  readonly unrecordable: string;
  readonly bytes: number | null;
  readonly sha256: string | null;
}

function placeholder(value: unknown, reason: string): UnrecordableField {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    // Too deep even for JSON.stringify's stack: nothing to hash.
  }
  if (text === undefined) return { unrecordable: reason, bytes: null, sha256: null };
  return { unrecordable: reason, bytes: Buffer.byteLength(text), sha256: createHash("sha256").update(text).digest("hex") };
}

/**
 * The event with every field the log cannot hold replaced by a placeholder: first the fields that are not JSON or
 * are nested too deep, then, while the record is still too large, the largest fields. `component` and `type` are
 * never replaced (the writer checks them; an invalid one is a bug in the service, and stays an error).
 */
export function recordableEvent(event: AuditEventInput, problem: string, budgetBytes = RECORD_BUDGET): { event: AuditEventInput; replaced: string[] } {
  const copy: Record<string, unknown> = { component: event.component, type: event.type };
  const replaced: string[] = [];
  const sizes: Array<{ key: string; bytes: number }> = [];
  let total = 0;
  for (const [key, value] of Object.entries(event)) {
    if (key === "component" || key === "type") continue;
    try {
      const { text } = toCanonicalJson(value, key);
      copy[key] = value;
      const bytes = Buffer.byteLength(text);
      sizes.push({ key, bytes });
      total += bytes;
    } catch (error) {
      // The message starts with the offending path, which can be as long as the nesting: keep what it says.
      const message = (error as Error).message;
      copy[key] = placeholder(value, (message.startsWith(key) ? message.slice(message.indexOf(" ") + 1) : message).slice(0, 200));
      replaced.push(key);
    }
  }
  sizes.sort((a, b) => b.bytes - a.bytes);
  for (const { key, bytes } of sizes) {
    if (total <= budgetBytes || bytes <= LARGE_FIELD_BYTES) break;
    copy[key] = placeholder(event[key], `larger than the audit record allows (${problem.slice(0, 120)})`);
    replaced.push(key);
    total -= bytes;
  }
  return { event: copy as AuditEventInput, replaced };
}

/** The event for the operational log, bounded so that a huge or deep field cannot flood or crash the logger. */
function safeForLog(event: AuditEventInput): unknown {
  try {
    const text = JSON.stringify(event);
    if (text.length <= 16 * 1024) return event;
  } catch {
    // fall through to the placeholder form
  }
  return recordableEvent(event, "too large for the operational log", 16 * 1024).event;
}
