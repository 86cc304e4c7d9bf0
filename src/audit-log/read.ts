// Reading the log without writing to it: for `tail`, `verify` and the future dashboard. Readers open the file
// read-only, so they can run beside live writers (WAL) and never create a file that is not there.
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { pathToFileURL } from "node:url";
import { AUDIT_COMPONENTS, AuditReadError } from "./types.ts";
import type { AuditComponent, AuditRecord } from "./types.ts";

const READ_BUSY_TIMEOUT_MS = 5000;

export interface RecordRow {
  seq: unknown;
  time: unknown;
  component: unknown;
  type: unknown;
  data: unknown;
  prev_hash: unknown;
  hash: unknown;
}

export const RECORD_COLUMNS = "seq, time, component, type, data, prev_hash, hash";

function cannotCreateSharedMemory(error: unknown): boolean {
  const code = (error as { errcode?: unknown }).errcode;
  return typeof code === "number" && ((code & 0xff) === 8 || (code & 0xff) === 14); // SQLITE_READONLY, SQLITE_CANTOPEN
}

/** Opens an existing audit log read-only; AuditReadError (with how to fix it) when it is missing or not one. */
export function openForReading(path: string): DatabaseSync {
  const absolute = resolve(path);
  if (!existsSync(absolute)) {
    throw new AuditReadError(`no audit log at ${absolute}; pass the file with --db or the config with -c (audit.path)`);
  }
  let database: DatabaseSync | undefined;
  try {
    try {
      database = new DatabaseSync(absolute, { readOnly: true, timeout: READ_BUSY_TIMEOUT_MS });
      database.prepare("SELECT 1 FROM sqlite_master LIMIT 1").get();
    } catch (error) {
      database?.close();
      database = undefined;
      if (!cannotCreateSharedMemory(error)) throw error;
      // A copy in a directory we cannot write to (a read-only mount, an evidence store): a WAL database needs its
      // -shm file, which SQLite cannot create there. With no pending WAL the main file is the whole database, so
      // SQLite may read it as immutable; with a pending WAL that would silently drop its records, so refuse.
      const wal = `${absolute}-wal`;
      if (existsSync(wal) && statSync(wal).size > 0) {
        throw new AuditReadError(`cannot read ${absolute} read-only: its directory is not writable and ${wal} holds records not yet in the main file; copy both files to a writable directory`);
      }
      const url = pathToFileURL(absolute);
      url.searchParams.set("immutable", "1");
      database = new DatabaseSync(url, { readOnly: true });
    }
    const table = database.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_log_records'").get();
    if (table === undefined) throw new AuditReadError(`${absolute} is not a Perimeter audit log (it has no audit_log_records table); check --db / audit.path`);
    return database;
  } catch (error) {
    database?.close();
    if (error instanceof AuditReadError) throw error;
    throw new AuditReadError(`cannot read the audit log ${absolute}: ${(error as Error).message}`, { cause: error });
  }
}

/** Turns a stored row into a record, or undefined when a column has the wrong type or the data is not a JSON object. */
export function rowToRecord(row: RecordRow): AuditRecord | undefined {
  const { seq, time, component, type, data, prev_hash: prevHash, hash } = row;
  if (typeof seq !== "number" || typeof time !== "string" || typeof type !== "string" || typeof data !== "string") return undefined;
  if (typeof prevHash !== "string" || typeof hash !== "string") return undefined;
  if (typeof component !== "string" || !(AUDIT_COMPONENTS as readonly string[]).includes(component)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
  return { seq, time, component: component as AuditComponent, type, data: parsed as Record<string, unknown>, prevHash, hash };
}

export interface ReadAuditRecordsOptions {
  /** Only records after this sequence number (for following a live log). @default 0 */
  afterSeq?: number;
  /** The newest `last` records (after afterSeq), oldest first. Takes precedence over limit. */
  last?: number;
  /** At most this many records, oldest first. @default 1000 */
  limit?: number;
}

/**
 * Reads records oldest first. This does not verify anything (use verifyAuditLog); a row that cannot be read as a
 * record at all (a column of the wrong type, data that is not a JSON object) throws AuditReadError rather than being
 * skipped, so a reader never shows a quietly shortened log.
 */
export function readAuditRecords(path: string, options: ReadAuditRecordsOptions = {}): AuditRecord[] {
  const afterSeq = options.afterSeq ?? 0;
  for (const [name, value] of Object.entries({ afterSeq, last: options.last, limit: options.limit })) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) throw new TypeError(`readAuditRecords: ${name} must be a non-negative integer`);
  }
  const database = openForReading(path);
  try {
    const rows =
      options.last !== undefined
        ? (database.prepare(`SELECT ${RECORD_COLUMNS} FROM audit_log_records WHERE seq > ? ORDER BY seq DESC LIMIT ?`).all(afterSeq, options.last) as unknown as RecordRow[]).reverse()
        : (database.prepare(`SELECT ${RECORD_COLUMNS} FROM audit_log_records WHERE seq > ? ORDER BY seq LIMIT ?`).all(afterSeq, options.limit ?? 1000) as unknown as RecordRow[]);
    return rows.map((row) => {
      const record = rowToRecord(row);
      if (record === undefined) throw new AuditReadError(`record ${String(row.seq)} cannot be read as an audit record; run perimeter audit-log verify`);
      return record;
    });
  } catch (error) {
    if (error instanceof AuditReadError) throw error;
    throw new AuditReadError(`cannot read the audit log ${resolve(path)}: ${(error as Error).message}`, { cause: error });
  } finally {
    database.close();
  }
}
