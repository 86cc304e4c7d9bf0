// The writer: one DatabaseSync per process, every append in its own BEGIN IMMEDIATE transaction so that several
// processes (each service, replicas of one) can share the file and still form a single linear chain. Appends are
// synchronous on purpose: a caller cannot forget to await the record before letting the operation proceed.
import { closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import { toCanonicalJson } from "./canonical.ts";
import type { JsonValue } from "./canonical.ts";
import { FORMAT, GENESIS_HASH, SCHEMA_SQL, checkpointMessage, recordHashOfCanonicalData } from "./format.ts";
import type { CheckpointReason } from "./format.ts";
import { loadOrCreateSigningKey, signCheckpoint } from "./signing.ts";
import { BACKSTOP_PAGES, SQLITE_DEFAULT_PAGES, startWalCheckpointer } from "./wal-checkpointer.ts";
import type { WalCheckpointer } from "./wal-checkpointer.ts";
import type { SigningKey } from "./signing.ts";
import { AUDIT_COMPONENTS, AuditEventInvalidError, AuditWriteError } from "./types.ts";
import type { AuditComponent, AuditEventInput, AuditLog, AuditLogOptions, AuditRecord, PreparedAuditEvent } from "./types.ts";

const DEFAULT_CHECKPOINT_EVERY = 1000;
const DEFAULT_BUSY_TIMEOUT_MS = 5000;
/** Large enough for redacted tool arguments; a caller with more should record sizes and hashes, not contents. */
export const MAX_RECORD_BYTES = 1024 * 1024;
const EVENT_TYPE = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
/** An event's fields that have their own columns; the rest is its data. */
const EVENT_COLUMNS: ReadonlySet<string> = new Set(["component", "type"]);

function describe(error: unknown): string {
  const code = (error as { code?: unknown; errcode?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === "string" && !message.includes(code) ? `${message} (${code})` : message;
}

function validateEvent(event: AuditEventInput): { component: AuditComponent; type: string; data: { [key: string]: JsonValue }; dataText: string } {
  if (typeof event !== "object" || event === null) throw new TypeError("an audit event must be an object with component and type");
  const { component, type } = event;
  if (!(AUDIT_COMPONENTS as readonly unknown[]).includes(component)) {
    throw new TypeError(`unknown audit component ${JSON.stringify(component)}; use one of ${AUDIT_COMPONENTS.join(", ")}`);
  }
  if (typeof type !== "string" || type.length > 64 || !EVENT_TYPE.test(type)) {
    throw new TypeError(`audit event type ${JSON.stringify(type)} must be a lowercase noun-verb name such as "tool-call" or "egress-decision"`);
  }
  const { value, text } = toCanonicalJson(event, "event", EVENT_COLUMNS);
  return { component, type, data: value as { [key: string]: JsonValue }, dataText: text };
}

function isBusy(error: unknown): boolean {
  const code = (error as { errcode?: unknown }).errcode;
  return typeof code === "number" && (code & 0xff) === 5; // SQLITE_BUSY and its extended codes
}

/**
 * Runs `work` (which starts with taking the write lock), retrying while another process holds the lock, until
 * `timeoutMs` has passed. SQLite's own busy handler sleeps up to 100 ms between attempts, which lets a process that
 * appends back to back starve the others (they wake while it holds the lock again); polling every 0.05-2 ms with
 * jitter finds the gaps between its transactions. The wait is synchronous because append is.
 */
function retryWhileBusy<T>(work: () => T, timeoutMs: number, pause: Int32Array): T {
  const deadline = performance.now() + timeoutMs;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return work();
    } catch (error) {
      if (!isBusy(error) || performance.now() >= deadline) throw error;
      Atomics.wait(pause, 0, 0, Math.min(2, 0.05 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()));
    }
  }
}

function checkOptions(options: AuditLogOptions): { every: number; busyTimeoutMs: number; synchronous: "NORMAL" | "FULL"; backgroundWal: boolean } {
  if (typeof options?.path !== "string" || options.path.trim() === "") {
    throw new AuditWriteError("openAuditLog needs a path to the audit database (audit.path in perimeter.yaml)");
  }
  const every = options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
  if (!Number.isSafeInteger(every) || every < 1) throw new AuditWriteError(`checkpointEvery must be a positive integer, not ${String(every)}`);
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) throw new AuditWriteError(`busyTimeoutMs must be a non-negative integer, not ${String(busyTimeoutMs)}`);
  const synchronous = options.synchronous ?? "normal";
  if (synchronous !== "normal" && synchronous !== "full") throw new AuditWriteError(`synchronous must be "normal" or "full", not ${JSON.stringify(synchronous)}`);
  const walCheckpoints = options.walCheckpoints ?? "inline";
  if (walCheckpoints !== "inline" && walCheckpoints !== "background") throw new AuditWriteError(`walCheckpoints must be "inline" or "background", not ${JSON.stringify(walCheckpoints)}`);
  return { every, busyTimeoutMs, synchronous: synchronous === "full" ? "FULL" : "NORMAL", backgroundWal: walCheckpoints === "background" };
}

/** Creates the directories (0700) and an empty file (0600) before SQLite does, so SQLite never picks the mode. */
function createFile(path: string): void {
  const directory = dirname(path);
  try {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new AuditWriteError(`cannot create ${directory} for the audit log: ${describe(error)}; create it or point audit.path elsewhere`, { cause: error });
  }
  if (existsSync(path)) return;
  try {
    closeSync(openSync(path, "wx", 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return;
    throw new AuditWriteError(`cannot create the audit log ${path}: ${describe(error)}; make its directory writable or point audit.path elsewhere`, { cause: error });
  }
}

interface Statements {
  begin: StatementSync;
  commit: StatementSync;
  head: StatementSync;
  lastCheckpoint: StatementSync;
  insertRecord: StatementSync;
  insertCheckpoint: StatementSync;
}

interface WriterSettings {
  path: string;
  every: number;
  busyTimeoutMs: number;
  now: () => Date;
  key: SigningKey | undefined;
}

/** The signing key named by the options, loaded or created; undefined when checkpoints are unsigned. */
function signingKeyOf(options: AuditLogOptions): SigningKey | undefined {
  if (options.signingKeyFile === undefined) return undefined;
  try {
    return loadOrCreateSigningKey(resolve(options.signingKeyFile)).key;
  } catch (error) {
    throw new AuditWriteError(`cannot use the audit signing key ${options.signingKeyFile}: ${describe(error)}`, { cause: error });
  }
}

/** WAL mode, the synchronous level and the schema; throws (as is) on any failure. */
function initialiseDatabase(database: DatabaseSync, synchronous: "NORMAL" | "FULL", busyTimeoutMs: number, pause: Int32Array): Statements {
  // journal_mode needs an exclusive lock once, when the file is new and several processes may be starting.
  const mode = retryWhileBusy(() => (database.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode?: string } | undefined)?.journal_mode, busyTimeoutMs, pause);
  if (mode !== "wal") throw new Error(`SQLite refused WAL mode (got ${String(mode)}); the file system may not support shared memory`);
  // NORMAL by default: in WAL mode a commit survives any process crash without an fsync per append, which would
  // otherwise cost more than the proxies' whole latency budget; FULL when the operator wants power-cut durability.
  database.exec(`PRAGMA synchronous = ${synchronous}`);
  retryWhileBusy(() => database.exec("BEGIN IMMEDIATE"), busyTimeoutMs, pause);
  try {
    database.exec(SCHEMA_SQL);
    const format = (database.prepare("SELECT value FROM audit_log_meta WHERE key = 'format'").get() as { value?: string } | undefined)?.value;
    if (format !== FORMAT) throw new Error(`the file holds audit format ${String(format)}, this version writes ${FORMAT}`);
    database.exec("COMMIT");
  } catch (error) {
    if (database.isTransaction) database.exec("ROLLBACK");
    throw error;
  }
  // Prepared once: exec() would parse the SQL again on every append (a measurable share of the proxies' CPU).
  return {
    begin: database.prepare("BEGIN IMMEDIATE"),
    commit: database.prepare("COMMIT"),
    head: database.prepare("SELECT seq, hash FROM audit_log_records ORDER BY seq DESC LIMIT 1"),
    lastCheckpoint: database.prepare("SELECT max(record_seq) AS seq FROM audit_log_checkpoints"),
    insertRecord: database.prepare("INSERT INTO audit_log_records (seq, time, component, type, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)"),
    insertCheckpoint: database.prepare("INSERT INTO audit_log_checkpoints (record_seq, record_hash, time, every, reason, public_key, signature) VALUES (?, ?, ?, ?, ?, ?, ?)"),
  };
}

/** Validates and canonicalises one event; throws AuditEventInvalidError. */
function prepareEvent(event: AuditEventInput): PreparedAuditEvent {
  let validated: ReturnType<typeof validateEvent>;
  try {
    validated = validateEvent(event);
  } catch (error) {
    throw new AuditEventInvalidError(`invalid audit event: ${describe(error)}`, { cause: error });
  }
  const { dataText } = validated;
  if (dataText.length * 3 > MAX_RECORD_BYTES && Buffer.byteLength(dataText) > MAX_RECORD_BYTES) {
    throw new AuditEventInvalidError(
      `audit event ${validated.type} is ${Buffer.byteLength(dataText)} bytes; the limit is ${MAX_RECORD_BYTES}: record sizes or hashes of large values, not the values`,
    );
  }
  return Object.freeze(validated);
}

/** One process's writer on one audit database (see the top of this file). */
class SqliteAuditLog implements AuditLog {
  readonly path: string;
  readonly publicKey: string | undefined;
  readonly #settings: WriterSettings;
  readonly #database: DatabaseSync;
  readonly #statements: Statements;
  readonly #pause: Int32Array;
  /** Events this writer validated: the chain must never hold a record that skipped validation. */
  readonly #prepared = new WeakSet<PreparedAuditEvent>();
  /** The newest checkpoint this writer has seen (its own, or read from the file); -1 before any. */
  #checkpointSeen = -1;
  #closed = false;
  #walCheckpointer: WalCheckpointer | undefined;

  constructor(settings: WriterSettings, database: DatabaseSync, statements: Statements, pause: Int32Array) {
    this.path = settings.path;
    this.publicKey = settings.key?.publicKey;
    this.#settings = settings;
    this.#database = database;
    this.#statements = statements;
    this.#pause = pause;
    // The log was a closure before it was a class, and callers still pass its methods around detached.
    this.prepare = this.prepare.bind(this);
    this.append = this.append.bind(this);
    this.appendMany = this.appendMany.bind(this);
    this.appendPrepared = this.appendPrepared.bind(this);
    this.close = this.close.bind(this);
  }

  /** Every writer signs a checkpoint when it opens: it covers whatever a crashed writer left unsigned, and it records
   * this writer's interval so the verifier knows how far past the last checkpoint the log may legitimately run. */
  writeOpenCheckpoint(): void {
    this.#transaction(() => {
      const current = this.#head();
      this.#writeCheckpoint(current.seq, current.hash, "open");
    });
  }

  /** Folds the WAL back on a worker thread instead of inside appends (AuditLogOptions.walCheckpoints). */
  startBackgroundWal(synchronous: "NORMAL" | "FULL"): void {
    // Events run between appends, never inside one: handing checkpoints back to SQLite here cannot split a transaction.
    const handBack = () => {
      this.#walCheckpointer = undefined;
      try {
        if (!this.#closed) this.#database.exec(`PRAGMA wal_autocheckpoint = ${SQLITE_DEFAULT_PAGES}`);
      } catch {
        // The backstop (BACKSTOP_PAGES) stays: SQLite still checkpoints, only later. Appends report their own errors.
      }
    };
    try {
      this.#database.exec(`PRAGMA wal_autocheckpoint = ${BACKSTOP_PAGES}`);
      this.#walCheckpointer = startWalCheckpointer(this.path, synchronous, handBack);
    } catch {
      handBack();
    }
  }

  #transaction<T>(work: () => T): T {
    retryWhileBusy(() => this.#statements.begin.run(), this.#settings.busyTimeoutMs, this.#pause);
    try {
      const result = work();
      this.#statements.commit.run();
      return result;
    } catch (error) {
      if (this.#database.isTransaction) this.#database.exec("ROLLBACK");
      throw error;
    }
  }

  #head(): { seq: number; hash: string } {
    const row = this.#statements.head.get() as { seq: number; hash: string } | undefined;
    return row ?? { seq: 0, hash: GENESIS_HASH };
  }

  #lastCheckpointSeq(): number {
    const row = this.#statements.lastCheckpoint.get() as { seq: number | null } | undefined;
    return row?.seq ?? -1;
  }

  #writeCheckpoint(recordSeq: number, hash: string, reason: CheckpointReason): void {
    const { every, key, now } = this.#settings;
    const time = now().toISOString();
    const signature = key === undefined ? null : signCheckpoint(key, checkpointMessage({ recordSeq, recordHash: hash, time, every, reason }));
    this.#statements.insertCheckpoint.run(recordSeq, hash, time, every, reason, key?.publicKey ?? null, signature);
    this.#checkpointSeen = Math.max(this.#checkpointSeen, recordSeq);
  }

  prepare(event: AuditEventInput): PreparedAuditEvent {
    const result = prepareEvent(event);
    this.#prepared.add(result);
    return result;
  }

  append(event: AuditEventInput): AuditRecord {
    return this.appendPrepared([this.prepare(event)])[0] as AuditRecord;
  }

  appendMany(events: readonly AuditEventInput[]): AuditRecord[] {
    return this.appendPrepared(events.map((event) => this.prepare(event)));
  }

  /** All of `events` in one transaction, in order: every one is recorded, or (on a thrown error) none is. */
  appendPrepared(events: readonly PreparedAuditEvent[]): AuditRecord[] {
    if (this.#closed) throw new AuditWriteError(`the audit log ${this.path} is closed; nothing was recorded`);
    for (const event of events) if (!this.#prepared.has(event)) throw new AuditWriteError("appendPrepared takes only events returned by this log's prepare()");
    if (events.length === 0) return [];
    try {
      return this.#transaction(() => this.#insert(events));
    } catch (error) {
      throw new AuditWriteError(`cannot write to the audit log ${this.path}: ${describe(error)}; nothing was recorded`, { cause: error });
    }
  }

  /** Inside the write transaction: chains the records onto the head and writes a checkpoint when one is due. */
  #insert(events: readonly PreparedAuditEvent[]): AuditRecord[] {
    let previous = this.#head();
    const time = this.#settings.now().toISOString();
    const records: AuditRecord[] = [];
    for (const event of events) {
      const record: AuditRecord = { seq: previous.seq + 1, time, component: event.component, type: event.type, data: event.data, prevHash: previous.hash, hash: "" };
      record.hash = recordHashOfCanonicalData(record, event.dataText);
      this.#statements.insertRecord.run(record.seq, time, record.component, record.type, event.dataText, record.prevHash, record.hash);
      records.push(record);
      previous = record;
    }
    // The newest checkpoint only grows, so a cached value can only be too old: re-read it before writing one.
    const { every } = this.#settings;
    if (previous.seq - this.#checkpointSeen >= every) {
      this.#checkpointSeen = this.#lastCheckpointSeq();
      if (previous.seq - this.#checkpointSeen >= every) this.#writeCheckpoint(previous.seq, previous.hash, "periodic");
    }
    return records;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#transaction(() => {
        const current = this.#head();
        if (current.seq > this.#lastCheckpointSeq()) this.#writeCheckpoint(current.seq, current.hash, "close");
      });
    } catch (error) {
      throw new AuditWriteError(`cannot write the closing checkpoint of ${this.path}: ${describe(error)}`, { cause: error });
    } finally {
      this.#walCheckpointer?.stop();
      this.#database.close();
    }
  }
}

/**
 * Opens (creating when needed) the audit log at `options.path` and writes an "open" checkpoint. Throws
 * AuditWriteError when the file cannot be created or written, so a service fails at start rather than on its first
 * request.
 */
export function openAuditLog(options: AuditLogOptions): AuditLog {
  const { every, busyTimeoutMs, synchronous, backgroundWal } = checkOptions(options);
  const path = resolve(options.path);
  createFile(path);
  const key = signingKeyOf(options);
  let database: DatabaseSync;
  try {
    // No SQLite busy timeout: lock waits go through retryWhileBusy (see there for why).
    database = new DatabaseSync(path, { timeout: 0 });
  } catch (error) {
    throw new AuditWriteError(`cannot open the audit log ${path}: ${describe(error)}`, { cause: error });
  }
  const pause = new Int32Array(new SharedArrayBuffer(4));
  let log: SqliteAuditLog;
  try {
    const statements = initialiseDatabase(database, synchronous, busyTimeoutMs, pause);
    log = new SqliteAuditLog({ path, every, busyTimeoutMs, now: options.now ?? (() => new Date()), key }, database, statements, pause);
    log.writeOpenCheckpoint();
  } catch (error) {
    database.close();
    throw new AuditWriteError(`cannot initialise the audit log ${path}: ${describe(error)}`, { cause: error });
  }
  if (backgroundWal) log.startBackgroundWal(synchronous);
  return log;
}
