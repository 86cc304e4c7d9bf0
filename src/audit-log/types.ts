// The audit log's public types and errors. Kept apart from the writer so that readers (verify, tail, the dashboard)
// can import them without opening anything.
import { PerimeterError } from "../shared/index.ts";

export const AUDIT_COMPONENTS = ["egress-proxy", "sandbox", "mcp-guard", "llm-proxy", "approvals", "cli", "dashboard"] as const;

export type AuditComponent = (typeof AUDIT_COMPONENTS)[number];

/** What a service hands to `append`: its component, a noun-verb event type, and JSON fields, already redacted. */
export interface AuditEventInput {
  component: AuditComponent;
  type: string;
  [field: string]: unknown;
}

/** One stored record. `hash` covers seq, time, component, type, data and prevHash (canonical JSON, sorted keys). */
export interface AuditRecord {
  seq: number;
  time: string;
  component: AuditComponent;
  type: string;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export interface AuditLogOptions {
  /** The SQLite file; created (0600, parent directories 0700) when absent. Other tables may live in it. */
  path: string;
  /** Ed25519 private key (PKCS#8 PEM) that signs checkpoints; generated with mode 0600 when the file is absent. */
  signingKeyFile?: string;
  /** A checkpoint is written at least every this many records (and when a writer opens and closes). @default 1000 */
  checkpointEvery?: number;
  /** Clock for record times; tests pin it. @default () => new Date() */
  now?: () => Date;
  /** How long to wait for another process holding the write lock before append throws. @default 5000 */
  busyTimeoutMs?: number;
  /**
   * SQLite `synchronous`. "normal": every append survives a crash or kill of any process; an OS crash or power cut
   * may lose the newest appends (the log stays intact, it just ends earlier). "full": also survives power cuts, at
   * the cost of an fsync per append (0.1-4 ms on the disks measured, which would dominate a proxy's latency).
   * @default "normal"
   */
  synchronous?: "normal" | "full";
  /**
   * Who folds SQLite's write-ahead log back into the database file (a WAL checkpoint, unrelated to the signed ones).
   * "inline": SQLite, inside an append every ~1,000 pages, stalling that append ~5 ms. "background": a worker thread
   * every 200 ms, with appends falling back to SQLite's own only past 10,000 pages (or when the worker stops): for
   * long-running services, whose requests would otherwise wait out the stall.
   * @default "inline"
   */
  walCheckpoints?: "inline" | "background";
}

/** An event this log validated and canonicalised (`AuditLog.prepare`), ready to append. */
export interface PreparedAuditEvent {
  readonly component: AuditComponent;
  readonly type: string;
  readonly data: { readonly [key: string]: unknown };
  readonly dataText: string;
}

export interface AuditLog {
  /** Appends one record and returns it. Synchronous; throws AuditWriteError on any failure, so callers fail closed. */
  append(event: AuditEventInput): AuditRecord;
  /** Appends several records in one transaction (all or none), in order. Throws like append. */
  appendMany(events: readonly AuditEventInput[]): AuditRecord[];
  /** Validates and canonicalises an event without writing it; throws AuditWriteError when it is invalid. */
  prepare(event: AuditEventInput): PreparedAuditEvent;
  /** appendMany for events this log prepared (each validated once, however often the batch is retried). */
  appendPrepared(events: readonly PreparedAuditEvent[]): AuditRecord[];
  /** Writes a final checkpoint covering every record, then closes the database. Idempotent. */
  close(): void;
  readonly path: string;
  /** "ed25519:<base64>" of the checkpoint signing key, for services to log at start (verifiers need it elsewhere). */
  readonly publicKey?: string;
}

/** Appending failed: nothing was recorded, so the operation that wanted the record must be refused. */
export class AuditWriteError extends PerimeterError {
  constructor(message: string, options?: { cause?: unknown }, code: "audit_unavailable" | "bad_request" = "audit_unavailable") {
    super(code, message, options);
  }
}

/**
 * The event itself cannot be recorded as given (not JSON, nested too deep, too large): no write was attempted, so the
 * log is healthy. A recorder that must record the decision anyway stores the offending fields as placeholders
 * (src/audit-log/recorder.ts) instead of dropping the record.
 */
export class AuditEventInvalidError extends AuditWriteError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options, "bad_request");
  }
}

/** The file is missing, unreadable or not a Perimeter audit log (as opposed to a log whose records were tampered with). */
export class AuditReadError extends PerimeterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("setup", message, options);
  }
}
