// The verifier. It re-derives every hash from the stored fields and checks, in one read snapshot:
//   - records are numbered 1..N with no gap (deletion), each links to the previous one's hash (reordering,
//     insertion) and hashes to what it stores (edits);
//   - every checkpoint is signed by a trusted key (the --public-key given, else the first key in the file), and the
//     record it names still has the hash it signed;
//   - no checkpoint names a record past the end of the log (truncation of the newest records), and the log does not
//     run on past its last checkpoint for longer than any writer's interval allows (checkpoints removed to hide a
//     rewrite);
//   - optionally, a head (seq:hash) recorded earlier outside the file is still there (rollback to an older state).
// What it cannot see is documented in docs/audit-log.md.
import type { DatabaseSync } from "node:sqlite";
import { canonicalJson } from "./canonical.ts";
import type { JsonValue } from "./canonical.ts";
import { GENESIS_HASH, checkpointMessage, recordHash } from "./format.ts";
import { RECORD_COLUMNS, openForReading, rowToRecord } from "./read.ts";
import type { RecordRow } from "./read.ts";
import { parsePublicKey, verifyCheckpointSignature } from "./signing.ts";

export interface VerifyAuditLogOptions {
  /** Trusted Ed25519 public keys ("ed25519:<base64>" or PEM). Without one, the first key found in the file is used. */
  publicKey?: string | readonly string[];
  /** A head seen earlier and kept outside the file (from a previous verify): the log must still contain it. */
  knownHead?: { seq: number; hash: string };
}

export type AuditVerification =
  | {
      ok: true;
      /** Number of records (also the last sequence number). */
      records: number;
      checkpoints: number;
      head: { seq: number; hash: string };
      /** Keys whose signatures were checked; empty when the log's checkpoints are unsigned. */
      signedBy: string[];
      /** Where the trusted key came from: the caller, or the file itself (which only proves internal consistency). */
      keySource: "given" | "file" | "none";
      /** Records after the last checkpoint: a writer is running or crashed; the chain alone protects them. */
      uncheckpointed: number;
    }
  | { ok: false; firstBrokenSeq: number; reason: string };

interface CheckpointRow {
  id: unknown;
  record_seq: unknown;
  record_hash: unknown;
  time: unknown;
  every: unknown;
  reason: unknown;
  public_key: unknown;
  signature: unknown;
}

interface Checkpoint {
  id: number;
  recordSeq: number;
  recordHash: string;
  every: number;
  publicKey: string | null;
}

interface Failure {
  firstBrokenSeq: number;
  reason: string;
}

/** Records verified between two yields of verifySteps (~90 µs each here: ~6 ms). */
const RECORDS_PER_STEP = 64;
/** Checkpoint rows checked between two yields (an Ed25519 verification takes ~50 µs). */
const CHECKPOINTS_PER_STEP = 64;

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Signature and trust checks, which need no records. Returns the trusted checkpoints and the first failure; yields
 * every CHECKPOINTS_PER_STEP rows (verifySteps). */
function* checkCheckpoints(rows: CheckpointRow[], givenKeys: string[] | undefined): Generator<void, { valid: Checkpoint[]; failure?: Failure; signedBy: Set<string>; keySource: "given" | "file" | "none" }> {
  const valid: Checkpoint[] = [];
  const signedBy = new Set<string>();
  const firstSigned = rows.find((row) => typeof row.public_key === "string")?.public_key as string | undefined;
  const trusted = givenKeys ?? (firstSigned === undefined ? [] : [firstSigned]);
  const keySource = givenKeys !== undefined ? "given" : firstSigned !== undefined ? "file" : "none";
  let seenSigned = false;
  const fail = (reason: string): { valid: Checkpoint[]; failure: Failure; signedBy: Set<string>; keySource: typeof keySource } => ({
    valid,
    signedBy,
    keySource,
    failure: { firstBrokenSeq: (valid.at(-1)?.recordSeq ?? 0) + 1, reason },
  });
  for (const [index, row] of rows.entries()) {
    // Every row, signed or not: a file can hold any number of unsigned checkpoints before its first signed one.
    if (index % CHECKPOINTS_PER_STEP === CHECKPOINTS_PER_STEP - 1) yield;
    const id = String(row.id);
    if (!isCount(row.record_seq) || typeof row.record_hash !== "string" || typeof row.time !== "string" || typeof row.reason !== "string") {
      return fail(`checkpoint #${id} is malformed (a column was changed)`);
    }
    if (!isCount(row.every) || row.every < 1) return fail(`checkpoint #${id} has an invalid interval`);
    if (row.record_seq === 0 && row.record_hash !== GENESIS_HASH) return fail(`checkpoint #${id} names record 0 with a hash other than the genesis hash`);
    const checkpoint: Checkpoint = { id: Number(row.id), recordSeq: row.record_seq, recordHash: row.record_hash, every: row.every, publicKey: null };
    if (row.public_key === null && row.signature === null) {
      // Unsigned checkpoints are accepted only before the first signed one (a log whose key was configured later).
      if (seenSigned) return fail(`checkpoint #${id} (record ${row.record_seq}) is unsigned although earlier checkpoints are signed: forged, or written by a writer without audit.signingKeyFile`);
      if (givenKeys !== undefined && firstSigned === undefined) {
        return fail(`checkpoint #${id} (record ${row.record_seq}) is not signed, so the log cannot be checked against the public key; configure audit.signingKeyFile`);
      }
      valid.push(checkpoint);
      continue;
    }
    if (typeof row.public_key !== "string" || typeof row.signature !== "string") return fail(`checkpoint #${id} is malformed (a column was changed)`);
    seenSigned = true;
    if (!trusted.includes(row.public_key)) {
      return fail(`checkpoint #${id} (record ${row.record_seq}) is signed by ${row.public_key}, not by the trusted key ${trusted.join(" or ")}`);
    }
    const message = checkpointMessage({ recordSeq: row.record_seq, recordHash: row.record_hash, time: row.time, every: row.every, reason: row.reason });
    if (!verifyCheckpointSignature(row.public_key, message, row.signature)) {
      return fail(`checkpoint #${id} (record ${row.record_seq}) has a signature that does not verify: the checkpoint was altered or forged`);
    }
    signedBy.add(row.public_key);
    valid.push({ ...checkpoint, publicKey: row.public_key });
  }
  return { valid, signedBy, keySource };
}

/**
 * The verification as steps: it yields after every RECORDS_PER_STEP records, so that a caller on a thread that serves
 * requests can pause between them (verifyAuditLogInSlices), and returns the verdict. Run to its end without pausing it
 * is verifyAuditLog.
 */
function* verifySteps(database: DatabaseSync, options: VerifyAuditLogOptions): Generator<void, AuditVerification> {
  const givenKeys =
    options.publicKey === undefined ? undefined : (typeof options.publicKey === "string" ? [options.publicKey] : [...options.publicKey]).map((key) => parsePublicKey(key, "public key"));
  // Whoever can write the file can add any number of checkpoint rows: every loop over them yields now and then.
  const checkpointRows: CheckpointRow[] = [];
  for (const row of database.prepare("SELECT id, record_seq, record_hash, time, every, reason, public_key, signature FROM audit_log_checkpoints ORDER BY record_seq, id").iterate() as Iterable<CheckpointRow>) {
    checkpointRows.push(row);
    if (checkpointRows.length % (RECORDS_PER_STEP * 16) === 0) yield;
  }
  const checked = yield* checkCheckpoints(checkpointRows, givenKeys);
  const failures: Failure[] = checked.failure === undefined ? [] : [checked.failure];
  const bySeq = new Map<number, Checkpoint[]>();
  for (const checkpoint of checked.valid) {
    const atSeq = bySeq.get(checkpoint.recordSeq);
    if (atSeq === undefined) bySeq.set(checkpoint.recordSeq, [checkpoint]);
    else atSeq.push(checkpoint);
  }

  let expected = 1;
  let previousHash = GENESIS_HASH;
  let lastMatchedCheckpointSeq = 0;
  let recordFailure: Failure | undefined;
  for (const row of database.prepare(`SELECT ${RECORD_COLUMNS} FROM audit_log_records ORDER BY seq`).iterate() as Iterable<RecordRow>) {
    const seq = row.seq as number;
    if (seq !== expected) {
      recordFailure =
        seq < expected
          ? { firstBrokenSeq: expected, reason: `record ${expected} is missing (found sequence number ${String(seq)})` }
          : { firstBrokenSeq: expected, reason: `record ${expected} is missing: the log jumps from record ${expected - 1} to record ${seq} (records were deleted)` };
      break;
    }
    const record = rowToRecord(row);
    if (record === undefined || recordHash({ ...record, data: record.data as JsonValue }) !== record.hash || canonicalJson(record.data as JsonValue) !== row.data) {
      // The stored data must also be byte-for-byte canonical, so the hash covers exactly the text in the file.
      recordFailure = { firstBrokenSeq: seq, reason: `record ${seq} was changed or moved: its contents do not match its hash` };
      break;
    }
    if (record.prevHash !== previousHash) {
      recordFailure =
        seq === 1
          ? { firstBrokenSeq: 1, reason: "record 1 does not start the chain (its prevHash is not the genesis hash): records before it were removed or it was replaced" }
          : {
              firstBrokenSeq: seq - 1,
              reason: `record ${seq - 1} does not match the hash stored in record ${seq}: record ${seq - 1} was changed and re-hashed, or records were removed or reordered`,
            };
      break;
    }
    for (const checkpoint of bySeq.get(seq) ?? []) {
      if (checkpoint.recordHash !== record.hash) {
        recordFailure = {
          firstBrokenSeq: lastMatchedCheckpointSeq + 1,
          reason: `records ${lastMatchedCheckpointSeq + 1}..${seq} were rewritten: record ${seq} no longer has the hash signed in checkpoint #${checkpoint.id}`,
        };
        break;
      }
      lastMatchedCheckpointSeq = seq;
    }
    if (recordFailure !== undefined) break;
    if (options.knownHead !== undefined && options.knownHead.seq === seq && options.knownHead.hash !== record.hash) {
      recordFailure = { firstBrokenSeq: seq, reason: `record ${seq} differs from the head recorded earlier (${options.knownHead.hash})` };
      break;
    }
    previousHash = record.hash;
    expected += 1;
    if (expected % RECORDS_PER_STEP === 0) yield;
  }
  if (recordFailure !== undefined) failures.push(recordFailure);
  const lastSeq = expected - 1;

  if (recordFailure === undefined) {
    // Once a log is signed, unsigned checkpoints vouch for nothing: anyone could have added one, for instance with
    // a huge interval to excuse removed signed checkpoints.
    const signed = checked.valid.filter((checkpoint) => checkpoint.publicKey !== null);
    const vouching = signed.length > 0 ? signed : checked.valid;
    const lastCheckpoint = vouching.at(-1);
    if (lastCheckpoint !== undefined && lastCheckpoint.recordSeq > lastSeq) {
      failures.push({
        firstBrokenSeq: lastSeq + 1,
        reason: `records ${lastSeq + 1}..${lastCheckpoint.recordSeq} were removed: checkpoint #${lastCheckpoint.id} covers record ${lastCheckpoint.recordSeq} but the log ends at record ${lastSeq}`,
      });
    } else if (lastCheckpoint === undefined && checkpointRows.length === 0) {
      // Every writer checkpoints when it opens, so a log without any checkpoint had them deleted.
      failures.push({ firstBrokenSeq: 1, reason: "the log has no checkpoint (every writer writes one when it opens): checkpoints were deleted" });
    } else if (lastCheckpoint !== undefined) {
      const every = Math.max(...vouching.map((checkpoint) => checkpoint.every));
      if (lastSeq - lastCheckpoint.recordSeq >= every) {
        failures.push({
          firstBrokenSeq: lastCheckpoint.recordSeq + 1,
          reason: `records ${lastCheckpoint.recordSeq + 1}..${lastSeq} are not covered by a checkpoint although writers checkpoint at least every ${every} records: checkpoints were removed`,
        });
      }
    }
    if (options.knownHead !== undefined && options.knownHead.seq > lastSeq) {
      failures.push({
        firstBrokenSeq: lastSeq + 1,
        reason: `records ${lastSeq + 1}..${options.knownHead.seq} were removed: the log ends at record ${lastSeq} but record ${options.knownHead.seq} was seen earlier`,
      });
    }
  }

  const first = failures.sort((left, right) => left.firstBrokenSeq - right.firstBrokenSeq)[0];
  if (first !== undefined) return { ok: false, ...first };
  const lastCovered = checked.valid.at(-1)?.recordSeq ?? 0;
  return {
    ok: true,
    records: lastSeq,
    checkpoints: checked.valid.length,
    head: { seq: lastSeq, hash: previousHash },
    signedBy: [...checked.signedBy],
    keySource: checked.keySource,
    uncheckpointed: lastSeq - lastCovered,
  };
}

/** One read transaction of the log at `path`: a writer appending meanwhile cannot make records and checkpoints disagree. */
function openSnapshot(path: string): DatabaseSync {
  const database = openForReading(path);
  try {
    database.exec("BEGIN");
  } catch (error) {
    database.close();
    throw error;
  }
  return database;
}

function closeSnapshot(database: DatabaseSync): void {
  try {
    if (database.isTransaction) database.exec("ROLLBACK");
  } finally {
    database.close();
  }
}

/** SQLite errors while reading (a damaged page) are tampering as far as the reader can tell; anything else is thrown. */
function readFailure(error: unknown): AuditVerification {
  if ((error as { code?: string }).code === "ERR_SQLITE_ERROR") return { ok: false, firstBrokenSeq: 1, reason: `the file cannot be read: ${(error as Error).message}` };
  throw error;
}

/**
 * Verifies the audit log at `path`. Returns the first broken record when the log was tampered with; throws
 * AuditReadError when the file is missing or not an audit log, and Error for a malformed public key.
 */
export function verifyAuditLog(path: string, options: VerifyAuditLogOptions = {}): AuditVerification {
  const database = openSnapshot(path);
  try {
    const steps = verifySteps(database, options);
    let step = steps.next();
    while (step.done !== true) step = steps.next();
    return step.value;
  } catch (error) {
    return readFailure(error);
  } finally {
    closeSnapshot(database);
  }
}

export interface VerifyInSlicesOptions extends VerifyAuditLogOptions {
  /** How long one slice may run before the event loop gets its turn (default 8 ms). */
  readonly sliceMs?: number;
  /** Stops the verification between two slices; the promise then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * verifyAuditLog for a thread that also serves requests (the dashboard, inside `perimeter up` too): the same checks in
 * one read snapshot, in slices of about `sliceMs`, with the event loop run between them. A worker thread would cost
 * its own V8 isolate and TypeScript loader (~40 MiB of RSS kept after it ends, ~0.5 s of CPU per start).
 */
export async function verifyAuditLogInSlices(path: string, options: VerifyInSlicesOptions = {}): Promise<AuditVerification> {
  const sliceMs = options.sliceMs ?? 8;
  const database = openSnapshot(path);
  try {
    const steps = verifySteps(database, options);
    for (;;) {
      const sliceEnds = performance.now() + sliceMs;
      let step = steps.next();
      while (step.done !== true && performance.now() < sliceEnds) step = steps.next();
      if (step.done === true) return step.value;
      await new Promise<void>((resolve) => setImmediate(resolve));
      options.signal?.throwIfAborted();
    }
  } catch (error) {
    return readFailure(error);
  } finally {
    closeSnapshot(database);
  }
}
