// A remote audit log (dashboard.sources[].url): a service's admin listener serves its records read-only
// (src/audit-log/feed.ts); the dashboard copies them, exactly as stored, into a local mirror with the audit log's own
// tables. The mirror is then an ordinary source: the index reads it, and the chain monitor verifies it whole — every
// hash re-derived here, so a service cannot hand the dashboard a broken chain that shows green. What a copy alone
// cannot see, a rewrite of records already copied, the feed's anchor shows: the service's hash of the last record we
// hold must still be ours, or the source is reported broken and copying stops (the mirror is kept as evidence).
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import { AUDIT_SCHEMA_SQL } from "../audit-log/index.ts";
import { PerimeterError } from "../shared/index.ts";

export type RemoteState =
  | { name: string; state: "pending" }
  | { name: string; state: "ok"; copied: number; head: number; at: string }
  | { name: string; state: "unreachable"; message: string; at: string }
  | { name: string; state: "diverged"; firstBrokenSeq: number; reason: string; at: string };

export interface RemoteMirror {
  readonly name: string;
  /** The local copy, an audit log the index and chain monitor read. */
  readonly path: string;
  /** Copies up to `maxPages` pages of new records; never throws (a failure becomes the state). */
  sync(maxPages?: number): Promise<RemoteState>;
  state(): RemoteState;
  /** Set once the service's log no longer matches what was copied. */
  divergence(): { firstBrokenSeq: number; reason: string } | undefined;
  /** Whether a sync has ever completed: before it the local copy is empty, and verifying it says nothing. */
  copied(): boolean;
  close(): void;
}

export interface RemoteMirrorOptions {
  name: string;
  /** The service's admin origin, e.g. http://mcp-guard:8710. */
  url: string;
  token: string;
  /** How a refusal names the token. @default the admin token (mcp.admin.tokenSecret) */
  tokenName?: string;
  path: string;
  pageSize?: number;
  timeoutMs?: number;
  /** Largest answer accepted, bytes. @default 64 MiB */
  maxBytes?: number;
}

class FeedError extends PerimeterError {
  constructor(message: string) {
    super("upstream", message);
  }
}

const HASH = /^[0-9a-f]{64}$/;
/** A checkpoint cursor past any id: a recheck asks for records only. */
const NO_CHECKPOINTS = 999_999_999_999_999;

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function text(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length > 1_000_000) throw new FeedError(`${what} is not a string`);
  return value;
}

function nullableText(value: unknown, what: string): string | null {
  return value === null ? null : text(value, what);
}

/** The feed's answer, checked field by field: another host's input. */
function parsePage(value: unknown): {
  records: Array<[number, string, string, string, string, string, string]>;
  checkpoints: Array<[number, number, string, string, number, string, string | null, string | null]>;
  anchor: { seq: number; hash: string } | null;
  head: number;
  more: boolean;
} {
  if (value === null || typeof value !== "object") throw new FeedError("the answer is not a JSON object");
  const page = value as Record<string, unknown>;
  if (!Array.isArray(page.records) || !Array.isArray(page.checkpoints) || typeof page.more !== "boolean") throw new FeedError("the answer lacks records, checkpoints or more");
  const records = page.records.map((item: unknown, index) => {
    const record = (item ?? {}) as Record<string, unknown>;
    if (!isCount(record.seq)) throw new FeedError(`record #${index} has no valid seq`);
    return [record.seq, text(record.time, "time"), text(record.component, "component"), text(record.type, "type"), text(record.data, "data"), text(record.prevHash, "prevHash"), text(record.hash, "hash")] as [number, string, string, string, string, string, string];
  });
  const checkpoints = page.checkpoints.map((item: unknown, index) => {
    const checkpoint = (item ?? {}) as Record<string, unknown>;
    if (!isCount(checkpoint.id) || !isCount(checkpoint.recordSeq) || !isCount(checkpoint.every)) throw new FeedError(`checkpoint #${index} is malformed`);
    return [
      checkpoint.id,
      checkpoint.recordSeq,
      text(checkpoint.recordHash, "recordHash"),
      text(checkpoint.time, "time"),
      checkpoint.every,
      text(checkpoint.reason, "reason"),
      nullableText(checkpoint.publicKey, "publicKey"),
      nullableText(checkpoint.signature, "signature"),
    ] as [number, number, string, string, number, string, string | null, string | null];
  });
  const anchorValue = page.anchor as Record<string, unknown> | null | undefined;
  const anchor = anchorValue === null || anchorValue === undefined ? null : isCount(anchorValue.seq) && typeof anchorValue.hash === "string" ? { seq: anchorValue.seq, hash: anchorValue.hash } : null;
  const headValue = page.head as Record<string, unknown> | null | undefined;
  const head = headValue === null || headValue === undefined ? 0 : isCount(headValue.seq) ? headValue.seq : 0;
  return { records, checkpoints, anchor, head, more: page.more };
}

type FeedRecord = ReturnType<typeof parsePage>["records"][number];

/** One page of the service's feed, bounded in size and time; a refusal says which token to fix. */
async function fetchPage(options: RemoteMirrorOptions, afterSeq: number, afterCheckpoint: number): Promise<unknown> {
  const address = `${options.url}/v1/audit/records?after=${afterSeq}&checkpointsAfter=${afterCheckpoint}&limit=${options.pageSize ?? 1000}`;
  let response: Response;
  try {
    // No redirect is followed: it would carry the admin token to wherever it points.
    response = await fetch(address, { headers: { authorization: `Bearer ${options.token}`, accept: "application/json" }, redirect: "error", signal: AbortSignal.timeout(options.timeoutMs ?? 10_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new FeedError(`cannot reach ${options.url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new FeedError(refusalMessage(options, response.status));
  }
  return readJson(options, response);
}

function refusalMessage(options: RemoteMirrorOptions, status: number): string {
  if (status === 401 || status === 403) {
    return options.tokenName === undefined
      ? `${options.url} refused the admin token (${status}): the dashboard and the service must share mcp.admin.tokenSecret`
      : `${options.url} refused ${options.tokenName} (${status}): the dashboard and the service must be given the same value`;
  }
  if (status === 404) return `${options.url} serves no audit feed (404): is this the service's admin listener, and a build with /v1/audit/records?`;
  return `${options.url} answered ${status}`;
}

async function readJson(options: RemoteMirrorOptions, response: Response): Promise<unknown> {
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += (chunk as Uint8Array).length;
    if (size > maxBytes) throw new FeedError(`${options.url} sent more than ${maxBytes} bytes in one page`);
    chunks.push(chunk as Uint8Array);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new FeedError(`${options.url} sent an answer that is not JSON`);
  }
}

/** Records must arrive in increasing order after what we hold, each with a well-formed hash. */
function checkOrder(url: string, records: readonly FeedRecord[], afterSeq: number): void {
  let previous = afterSeq;
  for (const record of records) {
    if (record[0] <= previous) throw new FeedError(`${url} sent record ${record[0]} after record ${previous}: out of order`);
    if (!HASH.test(record[6])) throw new FeedError(`record ${record[0]} has a malformed hash`);
    previous = record[0];
  }
}

/** Whether a served record is, field for field, the row we copied. */
function sameRecord(served: FeedRecord | undefined, row: Record<string, unknown>): boolean {
  return served !== undefined && served[1] === row.time && served[2] === row.component && served[3] === row.type && served[4] === row.data && served[5] === row.prev_hash && served[6] === row.hash;
}

export function createRemoteMirror(options: RemoteMirrorOptions): RemoteMirror {
  if (!/^https?:\/\/[^/?#]+$/.test(options.url)) throw new RangeError(`dashboard.sources ${options.name}: url must be a service's admin origin such as http://mcp-guard:8710`);
  return new FeedMirror(options);
}

/** A mirror's state in private fields; each method one step of a sync. Public methods are bound (callers pass them). */
class FeedMirror implements RemoteMirror {
  readonly name: string;
  readonly path: string;
  readonly #options: RemoteMirrorOptions;
  readonly #database: DatabaseSync;
  readonly #lastRecord: StatementSync;
  readonly #lastCheckpoint: StatementSync;
  readonly #insertRecord: StatementSync;
  readonly #insertCheckpoint: StatementSync;
  readonly #copiedRange: StatementSync;
  #state: RemoteState;
  #diverged: { firstBrokenSeq: number; reason: string } | undefined;
  #everCopied = false;
  #copied: number;
  /** Where the next recheck of copied records starts (see #recheck). */
  #recheckAfter = 0;
  #running: Promise<RemoteState> | undefined;

  constructor(options: RemoteMirrorOptions) {
    this.#options = options;
    this.name = options.name;
    this.path = options.path;
    mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
    const database = new DatabaseSync(options.path);
    database.exec("PRAGMA journal_mode = WAL");
    database.exec(AUDIT_SCHEMA_SQL);
    this.#database = database;
    this.#lastRecord = database.prepare("SELECT seq, hash FROM audit_log_records ORDER BY seq DESC LIMIT 1");
    this.#lastCheckpoint = database.prepare("SELECT coalesce(max(id), 0) AS id FROM audit_log_checkpoints");
    this.#insertRecord = database.prepare("INSERT INTO audit_log_records (seq, time, component, type, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)");
    this.#insertCheckpoint = database.prepare("INSERT INTO audit_log_checkpoints (id, record_seq, record_hash, time, every, reason, public_key, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    this.#copiedRange = database.prepare("SELECT seq, time, component, type, data, prev_hash, hash FROM audit_log_records WHERE seq > ? AND seq <= ? ORDER BY seq");
    this.#state = { name: options.name, state: "pending" };
    this.#copied = Number((database.prepare("SELECT count(*) AS count FROM audit_log_records").get() as { count: number }).count);
    // A copy made by an earlier run counts, records or checkpoints alone (records removed from a copy whose
    // checkpoints remain is a broken chain to show, not one to wait for): verified as it stands until the service answers.
    this.#everCopied = this.#copied > 0 || Number((database.prepare("SELECT count(*) AS count FROM audit_log_checkpoints").get() as { count: number }).count) > 0;
    for (const name of ["sync", "state", "divergence", "copied", "close"] as const) this[name] = this[name].bind(this) as never;
  }

  sync(maxPages = 20): Promise<RemoteState> {
    if (this.#diverged !== undefined) return Promise.resolve(this.#state);
    const { url, token } = this.#options;
    this.#running ??= this.#syncPages(maxPages)
      .catch((error: unknown): RemoteState => {
        const message = error instanceof FeedError ? error.message : `copying from ${url} failed: ${(error as Error).message}`;
        return { name: this.name, state: "unreachable", message: message.replaceAll(token, "[REDACTED]"), at: new Date().toISOString() };
      })
      .then((result) => {
        this.#state = result;
        this.#running = undefined;
        return result;
      });
    return this.#running;
  }

  state(): RemoteState {
    return this.#state;
  }

  divergence(): { firstBrokenSeq: number; reason: string } | undefined {
    return this.#diverged;
  }

  copied(): boolean {
    return this.#everCopied || this.#diverged !== undefined;
  }

  close(): void {
    this.#database.close();
  }

  #divergedState(): RemoteState {
    return { name: this.name, state: "diverged", ...(this.#diverged as { firstBrokenSeq: number; reason: string }), at: new Date().toISOString() };
  }

  async #syncPages(maxPages: number): Promise<RemoteState> {
    for (let round = 0; round < maxPages; round += 1) {
      const last = this.#lastRecord.get() as { seq: number; hash: string } | undefined;
      const afterSeq = last === undefined ? 0 : Number(last.seq);
      const afterCheckpoint = Number((this.#lastCheckpoint.get() as { id: number }).id);
      const page = parsePage(await fetchPage(this.#options, afterSeq, afterCheckpoint));
      if (last !== undefined && (page.anchor === null || page.anchor.seq !== afterSeq || page.anchor.hash !== last.hash)) {
        this.#diverged = {
          firstBrokenSeq: afterSeq,
          reason:
            page.anchor === null
              ? `the service's log no longer holds record ${afterSeq}, which the dashboard copied: records were deleted or the log was replaced`
              : `the service's record ${afterSeq} no longer has the hash the dashboard copied: the log was rewritten after it was read`,
        };
        return this.#divergedState();
      }
      checkOrder(this.#options.url, page.records, afterSeq);
      this.#store(page, afterCheckpoint);
      this.#copied += page.records.length;
      this.#state = { name: this.name, state: "ok", copied: this.#copied, head: page.head, at: new Date().toISOString() };
      this.#everCopied = true;
      if (!page.more || (page.records.length === 0 && page.checkpoints.length === 0)) break;
    }
    await this.#recheck();
    return this.#diverged === undefined ? this.#state : this.#divergedState();
  }

  #store(page: ReturnType<typeof parsePage>, afterCheckpoint: number): void {
    const database = this.#database;
    database.exec("BEGIN");
    try {
      for (const record of page.records) this.#insertRecord.run(...record);
      for (const checkpoint of page.checkpoints) {
        if (checkpoint[0] > afterCheckpoint) this.#insertCheckpoint.run(...checkpoint);
      }
      database.exec("COMMIT");
    } catch (error) {
      if (database.isTransaction) database.exec("ROLLBACK");
      throw error;
    }
  }

  // Records already copied are read again, a page per round from the oldest, round and round: the anchor covers
  // only the newest record, and an edit in place further back must not stay unseen because the copy kept the
  // original. A million records are compared again about every 17 minutes at the default pace.
  async #recheck(): Promise<void> {
    const last = this.#lastRecord.get() as { seq: number } | undefined;
    if (last === undefined || this.#diverged !== undefined) return;
    if (this.#recheckAfter >= Number(last.seq)) this.#recheckAfter = 0;
    const page = parsePage(await fetchPage(this.#options, this.#recheckAfter, NO_CHECKPOINTS));
    const theirs = new Map(page.records.map((record) => [record[0], record]));
    const upTo = Math.min(page.records.at(-1)?.[0] ?? this.#recheckAfter, Number(last.seq));
    const ours = this.#copiedRange.all(this.#recheckAfter, page.records.length === 0 ? Number(last.seq) : upTo) as Array<Record<string, unknown>>;
    for (const row of ours) {
      const seq = Number(row.seq);
      const served = theirs.get(seq);
      if (!sameRecord(served, row)) {
        this.#diverged = {
          firstBrokenSeq: seq,
          reason:
            served === undefined
              ? `the service's log no longer holds record ${seq}, which the dashboard copied: records were deleted or the log was replaced`
              : `the service's record ${seq} differs from the copy the dashboard took: the log was changed after it was read`,
        };
        return;
      }
    }
    this.#recheckAfter = page.records.length === 0 ? 0 : upTo;
  }
}
