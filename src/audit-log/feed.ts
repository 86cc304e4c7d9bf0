// The audit feed: a service's records and chain head served read-only over its admin listener, so that a dashboard
// on another host (Kubernetes, Compose: one database per component) can copy them and verify the chain itself.
//   GET /v1/audit/head                                          → { head: { seq, hash }, checkpoints }
//   GET /v1/audit/records?after=SEQ[&limit=N][&checkpointsAfter=ID]
//       → { records, checkpoints, anchor, head, more }
// Records are returned exactly as stored (data is the canonical JSON text the hash covers), so a reader can re-derive
// every hash; they are already redacted by their writers. `anchor` is the stored hash of record `after`: a reader
// whose copy ends there sees at once when the service's log was rewritten under it. Checkpoints come in id order and
// only those naming a record this answer (or an earlier one) holds, so a copy never names a record it lacks.
// The feed never writes, takes no body, and answers only the admin token (the agent's token must not pass).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { DatabaseSync } from "node:sqlite";
import { sendJson, sendJsonError } from "../shared/index.ts";

export interface AuditFeedOptions {
  /** A connection on the audit database; the feed only reads through it. */
  database: DatabaseSync;
  /** The principal holding this bearer token, or undefined. */
  authenticate: (authorization: string | undefined) => string | undefined;
  /** How a 401 names the token to send, e.g. "the audit feed token (audit.feedTokenSecret)". @default the admin token */
  tokenHint?: string;
  /** Largest page. @default 1000 */
  maxPage?: number;
}

export interface FeedRecord {
  seq: number;
  time: string;
  component: string;
  type: string;
  /** The stored canonical JSON text. */
  data: string;
  prevHash: string;
  hash: string;
}

export interface FeedCheckpoint {
  id: number;
  recordSeq: number;
  recordHash: string;
  time: string;
  every: number;
  reason: string;
  publicKey: string | null;
  signature: string | null;
}

export interface FeedPage {
  records: FeedRecord[];
  checkpoints: FeedCheckpoint[];
  anchor: { seq: number; hash: string } | null;
  head: { seq: number; hash: string } | null;
  more: boolean;
}



/** A non-negative integer query parameter; undefined when absent, an error message when malformed. */
function count(url: URL, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number | string {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  if (!/^\d{1,15}$/.test(raw) || Number(raw) > max) return `${name} must be a whole number from 0 to ${max} (got "${raw.slice(0, 40)}")`;
  return Number(raw);
}

/** Handles /v1/audit routes; returns false for any other path so the caller can route it elsewhere. */
export function createAuditFeed(options: AuditFeedOptions): (request: IncomingMessage, response: ServerResponse) => boolean {
  const maxPage = options.maxPage ?? 1000;
  const { database } = options;
  return (request, response) => {
    const url = new URL(request.url ?? "/", "http://admin.invalid");
    if (url.pathname !== "/v1/audit/head" && url.pathname !== "/v1/audit/records") {
      if (!url.pathname.startsWith("/v1/audit/")) return false;
      sendJsonError(response, 404, "not-found", "not found: the audit feed is GET /v1/audit/head and GET /v1/audit/records?after=SEQ");
      return true;
    }
    if (options.authenticate(request.headers.authorization) === undefined) {
      const presented = request.headers.authorization !== undefined;
      const hint = options.tokenHint;
      const message =
        hint === undefined
          ? presented ? "unauthorized: the token is not the admin token" : "unauthorized: send Authorization: Bearer <the admin token> (mcp.admin.tokenSecret)"
          : presented ? `unauthorized: the token is not ${hint}` : `unauthorized: send Authorization: Bearer <${hint}>`;
      sendJsonError(response, 401, "unauthorized", message, {
        "www-authenticate": 'Bearer realm="perimeter-admin"',
      });
      return true;
    }
    if (request.method !== "GET") {
      sendJsonError(response, 405, "method-not-allowed", "the audit feed is read-only: use GET", { allow: "GET" });
      return true;
    }
    const head = database.prepare("SELECT seq, hash FROM audit_log_records ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: string } | undefined;
    const headOut = head === undefined ? null : { seq: Number(head.seq), hash: String(head.hash) };
    if (url.pathname === "/v1/audit/head") {
      const checkpoints = database.prepare("SELECT count(*) AS count FROM audit_log_checkpoints").get() as { count: number };
      sendJson(response, 200, { head: headOut, checkpoints: Number(checkpoints.count) });
      return true;
    }
    const after = count(url, "after", 0);
    const limit = count(url, "limit", maxPage, maxPage);
    const checkpointsAfter = count(url, "checkpointsAfter", 0);
    for (const value of [after, limit, checkpointsAfter]) {
      if (typeof value === "string") {
        sendJsonError(response, 400, "bad-request", value);
        return true;
      }
    }
    const [afterSeq, pageSize, afterCheckpoint] = [after as number, Math.max(1, limit as number), checkpointsAfter as number];
    // One read transaction, so records, checkpoints and head describe the same moment of the log.
    const own = !database.isTransaction;
    if (own) database.exec("BEGIN");
    let page: FeedPage;
    try {
      const anchorRow = afterSeq === 0 ? undefined : (database.prepare("SELECT seq, hash FROM audit_log_records WHERE seq = ?").get(afterSeq) as { seq: number; hash: string } | undefined);
      const rows = database.prepare("SELECT seq, time, component, type, data, prev_hash, hash FROM audit_log_records WHERE seq > ? ORDER BY seq LIMIT ?").all(afterSeq, pageSize + 1) as Array<Record<string, unknown>>;
      const records = rows.slice(0, pageSize).map((row) => ({
        seq: Number(row.seq),
        time: String(row.time),
        component: String(row.component),
        type: String(row.type),
        data: String(row.data),
        prevHash: String(row.prev_hash),
        hash: String(row.hash),
      }));
      const upTo = records.at(-1)?.seq ?? afterSeq;
      const checkpointRows = database
        .prepare("SELECT id, record_seq, record_hash, time, every, reason, public_key, signature FROM audit_log_checkpoints WHERE id > ? ORDER BY id LIMIT ?")
        .all(afterCheckpoint, pageSize) as Array<Record<string, unknown>>;
      const checkpoints: FeedCheckpoint[] = [];
      for (const row of checkpointRows) {
        // Stop at the first one naming a record not yet sent, keeping the reader's checkpoint cursor a clean prefix.
        if (Number(row.record_seq) > upTo) break;
        checkpoints.push({
          id: Number(row.id),
          recordSeq: Number(row.record_seq),
          recordHash: String(row.record_hash),
          time: String(row.time),
          every: Number(row.every),
          reason: String(row.reason),
          publicKey: row.public_key === null ? null : String(row.public_key),
          signature: row.signature === null ? null : String(row.signature),
        });
      }
      page = {
        records,
        checkpoints,
        anchor: anchorRow === undefined ? null : { seq: Number(anchorRow.seq), hash: String(anchorRow.hash) },
        head: headOut,
        more: rows.length > pageSize || checkpoints.length === pageSize,
      };
    } finally {
      if (own) database.exec("COMMIT");
    }
    sendJson(response, 200, page);
    return true;
  };
}
