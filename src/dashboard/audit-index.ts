// The dashboard's search index over the audit logs. The logs themselves stay exactly as their writers left them
// (append-only, opened read-only here); the dashboard keeps, in a database of its own, one narrow row per record —
// the fields operators filter on, each indexed with the row id — so that every filter is an index range scan with
// keyset pagination, at any log size. Rows are copied by SQLite itself (ATTACH read-only, INSERT ... SELECT with
// json_extract), in bounded batches between requests. Whole records are read from the log by sequence number.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { pathToFileURL } from "node:url";

export interface LocalSource {
  readonly name: string;
  readonly path: string;
}

export interface AuditFilter {
  component?: string;
  type?: string;
  decision?: string;
  agent?: string;
  tool?: string;
  host?: string;
  /** ISO time, inclusive. */
  from?: string;
  /** ISO time, exclusive. */
  to?: string;
  /** Keyset: rows older than this index id. */
  before?: number;
}

export interface IndexedRecord {
  id: number;
  source: string;
  seq: number;
  time: string;
  component: string;
  type: string;
  decision: string | null;
  agent: string | null;
  tool: string | null;
  host: string | null;
}

export interface FullRecord extends IndexedRecord {
  data: Record<string, unknown> | undefined;
}

export type SourceState = { name: string; state: "ok"; records: number } | { name: string; state: "missing" | "locked" | "unreadable"; records: number; message: string };

export interface EgressTop {
  client: string;
  host: string;
  decision: string;
  count: number;
  lastTime: string;
}

export interface AuditIndex {
  /** Copies new records into the index, at most `maxRows` per source; returns whether more are waiting. */
  ingest(maxRows?: number): { more: boolean; added: number };
  sources(): SourceState[];
  query(filter: AuditFilter, limit: number): { rows: FullRecord[]; next: number | undefined };
  /** Index rows after `afterId`, oldest first (the live tail). */
  since(afterId: number, limit: number): FullRecord[];
  lastId(): number;
  egressTop(decision: "allow" | "deny", perClient: number): EgressTop[];
  /** Distinct values seen for a filter field (for the filter form's suggestions), bounded. */
  distinct(field: "component" | "decision" | "agent"): string[];
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS dashboard_sources (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  location TEXT NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  last_hash TEXT
);
CREATE TABLE IF NOT EXISTS dashboard_records (
  id INTEGER PRIMARY KEY,
  source INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  time TEXT NOT NULL,
  component TEXT NOT NULL,
  type TEXT NOT NULL,
  decision TEXT,
  agent TEXT,
  tool TEXT,
  host TEXT
);
CREATE INDEX IF NOT EXISTS dashboard_records_component ON dashboard_records (component, id);
CREATE INDEX IF NOT EXISTS dashboard_records_type ON dashboard_records (type, id);
CREATE INDEX IF NOT EXISTS dashboard_records_decision ON dashboard_records (decision, id);
CREATE INDEX IF NOT EXISTS dashboard_records_agent ON dashboard_records (agent, id);
CREATE INDEX IF NOT EXISTS dashboard_records_tool ON dashboard_records (tool, id);
CREATE INDEX IF NOT EXISTS dashboard_records_host ON dashboard_records (host, id);
CREATE INDEX IF NOT EXISTS dashboard_records_time ON dashboard_records (time);
CREATE INDEX IF NOT EXISTS dashboard_records_source ON dashboard_records (source, seq);
CREATE TABLE IF NOT EXISTS dashboard_egress (
  source INTEGER NOT NULL,
  client TEXT NOT NULL,
  host TEXT NOT NULL,
  decision TEXT NOT NULL,
  count INTEGER NOT NULL,
  last_time TEXT NOT NULL,
  PRIMARY KEY (source, client, host, decision)
);
`;

const FIELDS = ["component", "type", "decision", "agent", "tool", "host"] as const;
const MAX_FILTER_LENGTH = 256;

// What each filter column holds, per writer: egress-proxy and llm-proxy name a client, mcp-guard an agent, the
// sandbox runner its caller; mcp-guard's tools are <server>__<tool>, approvals name server and tool apart.
const EXTRACT = `
  json_extract(data, '$.decision'),
  coalesce(json_extract(data, '$.agent'), json_extract(data, '$.client'), json_extract(data, '$.caller')),
  coalesce(json_extract(data, '$.name'), CASE WHEN json_extract(data, '$.tool') IS NOT NULL THEN coalesce(json_extract(data, '$.server'), '') || '__' || json_extract(data, '$.tool') END),
  json_extract(data, '$.host')`;

function classify(error: unknown): "locked" | "unreadable" {
  const code = (error as { errcode?: number }).errcode;
  return typeof code === "number" && ((code & 0xff) === 5 || (code & 0xff) === 6) ? "locked" : "unreadable";
}

function textOf(value: unknown): string | null {
  return typeof value === "string" ? value : value === null || value === undefined ? null : String(value);
}

export interface AuditIndexOptions {
  statePath: string;
  sources: readonly LocalSource[];
  busyTimeoutMs?: number;
}

export function createAuditIndex(options: AuditIndexOptions): AuditIndex {
  return new SqliteAuditIndex(options);
}

function openIndexDatabase(statePath: string, busyTimeoutMs: number): DatabaseSync {
  mkdirSync(dirname(statePath), { recursive: true, mode: 0o700 });
  const database = new DatabaseSync(statePath);
  database.exec("PRAGMA journal_mode = WAL");
  database.exec("PRAGMA synchronous = NORMAL");
  // A log another process holds locked must not stall the page for long: the page says so instead.
  database.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
  database.exec(SCHEMA);
  return database;
}

/** Forgets every row of a source (its log was replaced or moved): it is indexed again from the start. */
function resetSource(database: DatabaseSync, id: number): void {
  database.exec("BEGIN");
  try {
    database.prepare("DELETE FROM dashboard_records WHERE source = ?").run(id);
    database.prepare("DELETE FROM dashboard_egress WHERE source = ?").run(id);
    database.prepare("UPDATE dashboard_sources SET last_seq = 0, last_hash = NULL WHERE id = ?").run(id);
    database.exec("COMMIT");
  } catch (error) {
    database.exec("ROLLBACK");
    throw error;
  }
}

/** The source's row id, created on first sight; a source now at another location starts over. */
function registerSource(database: DatabaseSync, source: LocalSource): number {
  const location = resolve(source.path);
  const existing = database.prepare("SELECT id, location FROM dashboard_sources WHERE name = ?").get(source.name) as { id: number; location: string } | undefined;
  if (existing === undefined) return Number(database.prepare("INSERT INTO dashboard_sources (name, location) VALUES (?, ?)").run(source.name, location).lastInsertRowid);
  if (existing.location !== location) {
    // Another file under the same name: its rows describe a different log.
    database.prepare("UPDATE dashboard_sources SET location = ? WHERE id = ?").run(location, existing.id);
    resetSource(database, existing.id);
  }
  return existing.id;
}

/** Copies up to maxRows records after lastSeq from the attached log `src`, and their egress counts; in one transaction. */
function copyBatch(database: DatabaseSync, id: number, lastSeq: number, maxRows: number): number {
  database.exec("BEGIN");
  try {
    const inserted = database
      .prepare(
        `INSERT INTO dashboard_records (source, seq, time, component, type, decision, agent, tool, host)
         SELECT ?, seq, time, component, type, ${EXTRACT} FROM src.audit_log_records WHERE seq > ? ORDER BY seq LIMIT ?`,
      )
      .run(id, lastSeq, maxRows);
    const added = Number(inserted.changes);
    if (added > 0) {
      const last = database.prepare("SELECT seq, hash FROM src.audit_log_records WHERE seq = (SELECT max(seq) FROM dashboard_records WHERE source = ?)").get(id) as { seq: number; hash: string };
      database
        .prepare(
          `INSERT INTO dashboard_egress (source, client, host, decision, count, last_time)
           SELECT ?, coalesce(agent, '(unknown)'), host, decision, count(*), max(time) FROM dashboard_records
           WHERE source = ? AND seq > ? AND seq <= ? AND type = 'egress-decision' AND host IS NOT NULL AND decision IS NOT NULL
           GROUP BY agent, host, decision
           ON CONFLICT (source, client, host, decision) DO UPDATE SET count = count + excluded.count, last_time = max(last_time, excluded.last_time)`,
        )
        .run(id, id, lastSeq, last.seq);
      database.prepare("UPDATE dashboard_sources SET last_seq = ?, last_hash = ? WHERE id = ?").run(last.seq, last.hash, id);
    }
    database.exec("COMMIT");
    return added;
  } catch (error) {
    if (database.isTransaction) database.exec("ROLLBACK");
    throw error;
  }
}

/** The WHERE clause of a filter: equality on indexed fields, a time range as an id range, the keyset cursor. */
function filterClause(database: DatabaseSync, filter: AuditFilter): { where: string; values: Array<string | number> } {
  const clauses: string[] = [];
  const values: Array<string | number> = [];
  for (const field of FIELDS) {
    const value = filter[field];
    if (value === undefined || value === "") continue;
    if (value.length > MAX_FILTER_LENGTH) throw new RangeError(`the ${field} filter is longer than ${MAX_FILTER_LENGTH} characters`);
    clauses.push(`${field} = ?`);
    values.push(value);
  }
  // A time range becomes an id range (ids grow with ingestion, times with writing): one lookup on the time
  // index each, then the same keyset scan as every other filter.
  if (filter.from !== undefined && filter.from !== "") {
    const first = database.prepare("SELECT min(id) AS id FROM dashboard_records WHERE time >= ?").get(filter.from) as { id: number | null };
    clauses.push("id >= ?");
    values.push(first.id ?? Number.MAX_SAFE_INTEGER);
  }
  if (filter.to !== undefined && filter.to !== "") {
    const last = database.prepare("SELECT max(id) AS id FROM dashboard_records WHERE time < ?").get(filter.to) as { id: number | null };
    clauses.push("id <= ?");
    values.push(last.id ?? 0);
  }
  if (filter.before !== undefined) {
    clauses.push("id < ?");
    values.push(filter.before);
  }
  return { where: clauses.length === 0 ? "" : `WHERE ${clauses.join(" AND ")}`, values };
}

/** The index over SQLite: state in private fields, each method one operation; methods are bound (callers pass them). */
export class SqliteAuditIndex implements AuditIndex {
  readonly #database: DatabaseSync;
  readonly #sources: readonly LocalSource[];
  readonly #sourceIds = new Map<string, number>();
  readonly #sourceNames = new Map<number, string>();
  readonly #states = new Map<string, SourceState>();
  /** Rows per source id: counted once at start (a full scan of the source's index entries), then kept up to date. */
  readonly #indexed = new Map<number, number>();

  constructor(options: AuditIndexOptions) {
    this.#database = openIndexDatabase(resolve(options.statePath), options.busyTimeoutMs ?? 250);
    this.#sources = options.sources;
    const counts = this.#database.prepare("SELECT count(*) AS count FROM dashboard_records WHERE source = ?");
    for (const source of options.sources) {
      const id = registerSource(this.#database, source);
      this.#sourceIds.set(source.name, id);
      this.#sourceNames.set(id, source.name);
      this.#indexed.set(id, Number((counts.get(id) as { count: number }).count));
      this.#states.set(source.name, { name: source.name, state: "ok", records: this.#indexed.get(id) ?? 0 });
    }
    for (const name of ["ingest", "sources", "query", "since", "lastId", "egressTop", "distinct", "close"] as const) this[name] = this[name].bind(this) as never;
  }

  ingest(maxRows = 20_000): { more: boolean; added: number } {
    let more = false;
    let added = 0;
    for (const source of this.#sources) {
      const result = this.#ingestSource(source, maxRows);
      more ||= result.more;
      added += result.added;
    }
    return { more, added };
  }

  sources(): SourceState[] {
    return this.#sources.map((source) => this.#states.get(source.name) as SourceState);
  }

  query(filter: AuditFilter, limit: number): { rows: FullRecord[]; next: number | undefined } {
    const { where, values } = filterClause(this.#database, filter);
    const bounded = Math.max(1, Math.min(limit, 500));
    const rows = (this.#database.prepare(`SELECT * FROM dashboard_records ${where} ORDER BY id DESC LIMIT ${bounded + 1}`).all(...values) as Array<Record<string, unknown>>).map((row) => this.#toIndexed(row));
    const page = rows.slice(0, bounded);
    return { rows: this.#fetchRecords(page), next: rows.length > bounded ? page.at(-1)?.id : undefined };
  }

  since(afterId: number, limit: number): FullRecord[] {
    const rows = this.#database.prepare("SELECT * FROM dashboard_records WHERE id > ? ORDER BY id LIMIT ?").all(afterId, Math.max(1, Math.min(limit, 500))) as Array<Record<string, unknown>>;
    return this.#fetchRecords(rows.map((row) => this.#toIndexed(row)));
  }

  lastId(): number {
    return Number((this.#database.prepare("SELECT coalesce(max(id), 0) AS id FROM dashboard_records").get() as { id: number }).id);
  }

  egressTop(decision: "allow" | "deny", perClient: number): EgressTop[] {
    const decisions = decision === "allow" ? ["allow"] : ["deny", "error"];
    const rows = this.#database
      .prepare(
        `SELECT client, host, decision, count, last_time FROM (
           SELECT client, host, decision, sum(count) AS count, max(last_time) AS last_time,
                  row_number() OVER (PARTITION BY client ORDER BY sum(count) DESC, host) AS rank
           FROM dashboard_egress WHERE decision IN (${decisions.map(() => "?").join(", ")}) GROUP BY client, host, decision)
         WHERE rank <= ? ORDER BY client, count DESC, host LIMIT 1000`,
      )
      .all(...decisions, perClient) as Array<{ client: string; host: string; decision: string; count: number; last_time: string }>;
    return rows.map((row) => ({ client: row.client, host: row.host, decision: row.decision, count: Number(row.count), lastTime: row.last_time }));
  }

  distinct(field: "component" | "decision" | "agent"): string[] {
    // A skip-scan over the field's index: one probe per distinct value, so this stays cheap at any size.
    const values: string[] = [];
    let last = "";
    for (let step = 0; step < 50; step += 1) {
      const row = this.#database.prepare(`SELECT min(${field}) AS value FROM dashboard_records WHERE ${field} > ?`).get(last) as { value: string | null };
      if (row.value === null) break;
      values.push(row.value);
      last = row.value;
    }
    return values;
  }

  close(): void {
    this.#database.close();
  }

  #setState(source: LocalSource, state: "missing" | "locked" | "unreadable", message: string): undefined {
    this.#states.set(source.name, { name: source.name, state, records: this.#states.get(source.name)?.records ?? 0, message });
    return undefined;
  }

  /** Runs `work` with the source's log attached read-only as `src`; a missing or locked log becomes its state. */
  #withSource<T>(source: LocalSource, work: () => T): T | undefined {
    const location = resolve(source.path);
    if (!existsSync(location)) return this.#setState(source, "missing", `no audit log at ${location} (is the service running with this audit.path?)`);
    const url = pathToFileURL(location);
    url.searchParams.set("mode", "ro");
    try {
      this.#database.prepare("ATTACH DATABASE ? AS src").run(url.href);
    } catch (error) {
      return this.#setState(source, classify(error), `cannot open ${location}: ${(error as Error).message}`);
    }
    try {
      return work();
    } catch (error) {
      return this.#setState(source, classify(error), `cannot read ${location}: ${(error as Error).message}`);
    } finally {
      try {
        this.#database.exec("DETACH DATABASE src");
      } catch {
        // Still attached only if a statement is running, which cannot be the case here (everything is synchronous).
      }
    }
  }

  /** Where indexing of a source resumes; a log whose last indexed record changed hash is indexed again from 0. */
  #resumePoint(id: number): number {
    const database = this.#database;
    const hasTable = database.prepare("SELECT 1 FROM src.sqlite_master WHERE type = 'table' AND name = 'audit_log_records'").get();
    if (hasTable === undefined) throw Object.assign(new Error("not a Perimeter audit log (no audit_log_records table)"), { errcode: 26 });
    const { last_seq: lastSeq, last_hash: lastHash } = database.prepare("SELECT last_seq, last_hash FROM dashboard_sources WHERE id = ?").get(id) as { last_seq: number; last_hash: string | null };
    if (lastSeq === 0) return 0;
    const stored = database.prepare("SELECT hash FROM src.audit_log_records WHERE seq = ?").get(lastSeq) as { hash: string } | undefined;
    if (stored?.hash === lastHash) return lastSeq;
    // The log was replaced (a restore, a new file) or rewritten: index it again from the start. The chain status,
    // not the index, is what tells the operator whether it was tampered with.
    resetSource(database, id);
    this.#indexed.set(id, 0);
    return 0;
  }

  #ingestSource(source: LocalSource, maxRows: number): { more: boolean; added: number } {
    const id = this.#sourceIds.get(source.name) as number;
    const result = this.#withSource(source, () => {
      const added = copyBatch(this.#database, id, this.#resumePoint(id), maxRows);
      return { added, more: added === maxRows };
    });
    if (result === undefined) return { more: false, added: 0 };
    this.#indexed.set(id, (this.#indexed.get(id) ?? 0) + result.added);
    this.#states.set(source.name, { name: source.name, state: "ok", records: this.#indexed.get(id) ?? 0 });
    return result;
  }

  #fetchRecords(rows: IndexedRecord[]): FullRecord[] {
    const full: FullRecord[] = rows.map((row) => ({ ...row, data: undefined }));
    for (const source of this.#sources) {
      const wanted = full.filter((row) => row.source === source.name);
      if (wanted.length === 0) continue;
      this.#withSource(source, () => {
        const statement = this.#database.prepare("SELECT data FROM src.audit_log_records WHERE seq = ?");
        for (const row of wanted) row.data = parseData(statement.get(row.seq) as { data: string } | undefined);
      });
    }
    return full;
  }

  #toIndexed(row: Record<string, unknown>): IndexedRecord {
    return {
      id: Number(row.id),
      source: this.#sourceNames.get(Number(row.source)) ?? "?",
      seq: Number(row.seq),
      time: String(row.time),
      component: String(row.component),
      type: String(row.type),
      decision: textOf(row.decision),
      agent: textOf(row.agent),
      tool: textOf(row.tool),
      host: textOf(row.host),
    };
  }
}

/** A record's data column as an object, or undefined when it is missing or not a JSON object. */
function parseData(found: { data: string } | undefined): Record<string, unknown> | undefined {
  try {
    const parsed = found === undefined ? undefined : (JSON.parse(found.data) as unknown);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
