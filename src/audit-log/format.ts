// The on-disk format shared by the writer and the verifier: table layout, record hashing and the checkpoint message.
// Changing anything here changes what old logs verify against, so it is versioned by FORMAT.
import { canonicalJson, sha256Hex } from "./canonical.ts";
import type { JsonValue } from "./canonical.ts";

export const FORMAT = "perimeter-audit-log/1";
export const CHECKPOINT_FORMAT = "perimeter-audit-checkpoint/1";
/** prevHash of record 1. */
export const GENESIS_HASH = "0".repeat(64);

// Table names carry the capability prefix because services keep their own tables in the same file (llm-proxy usage).
// The triggers are a guard against accidents by code sharing the file (a stray UPDATE), not against an attacker:
// whoever can write the file can drop them, which is what the hash chain and signed checkpoints are for.
export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS audit_log_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log_records (
  seq INTEGER PRIMARY KEY,
  time TEXT NOT NULL,
  component TEXT NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log_checkpoints (
  id INTEGER PRIMARY KEY,
  record_seq INTEGER NOT NULL,
  record_hash TEXT NOT NULL,
  time TEXT NOT NULL,
  every INTEGER NOT NULL,
  reason TEXT NOT NULL,
  public_key TEXT,
  signature TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_checkpoints_record_seq ON audit_log_checkpoints (record_seq);
CREATE TRIGGER IF NOT EXISTS audit_log_records_no_update BEFORE UPDATE ON audit_log_records
  BEGIN SELECT RAISE(ABORT, 'audit_log_records is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_records_no_delete BEFORE DELETE ON audit_log_records
  BEGIN SELECT RAISE(ABORT, 'audit_log_records is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_checkpoints_no_update BEFORE UPDATE ON audit_log_checkpoints
  BEGIN SELECT RAISE(ABORT, 'audit_log_checkpoints is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_checkpoints_no_delete BEFORE DELETE ON audit_log_checkpoints
  BEGIN SELECT RAISE(ABORT, 'audit_log_checkpoints is append-only'); END;
INSERT OR IGNORE INTO audit_log_meta (key, value) VALUES ('format', '${FORMAT}');
`;

export interface RecordFields {
  seq: number;
  time: string;
  component: string;
  type: string;
  data: JsonValue;
  prevHash: string;
}

export function recordHash(fields: RecordFields): string {
  return sha256Hex(
    canonicalJson({
      seq: fields.seq,
      time: fields.time,
      component: fields.component,
      type: fields.type,
      data: fields.data,
      prevHash: fields.prevHash,
    }),
  );
}

/**
 * recordHash for a writer that already holds `canonicalJson(data)`: the same bytes (keys of the record in sorted order:
 * component, data, prevHash, seq, time, type) without canonicalising the data a second time on every append.
 */
export function recordHashOfCanonicalData(fields: Omit<RecordFields, "data">, dataText: string): string {
  return sha256Hex(
    `{"component":${JSON.stringify(fields.component)},"data":${dataText},"prevHash":${JSON.stringify(fields.prevHash)},"seq":${JSON.stringify(fields.seq)},"time":${JSON.stringify(fields.time)},"type":${JSON.stringify(fields.type)}}`,
  );
}

export type CheckpointReason = "open" | "periodic" | "close";

export interface CheckpointFields {
  recordSeq: number;
  recordHash: string;
  time: string;
  every: number;
  reason: string;
}

/** The exact bytes an Ed25519 checkpoint signature covers; the format tag keeps it from meaning anything else. */
export function checkpointMessage(fields: CheckpointFields): Buffer {
  return Buffer.from(
    canonicalJson({
      format: CHECKPOINT_FORMAT,
      recordSeq: fields.recordSeq,
      recordHash: fields.recordHash,
      time: fields.time,
      every: fields.every,
      reason: fields.reason,
    }),
    "utf8",
  );
}
