// How the approval store keeps its rows in SQLite (approvals_requests and approvals_votes, in the audit database):
// the schema and its upgrade, the prepared statements, and a row turned back into an Approval.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Approval, ApprovalChannel, ApprovalKind, ApprovalStatus, JsonValue } from "./store.ts";

export interface Row {
  id: string;
  kind: string;
  status: string;
  agent: string | null;
  server: string;
  tool: string;
  definition_hash: string;
  arguments_hash: string | null;
  detail: string;
  created_at: number;
  expires_at: number | null;
  decided_at: number | null;
  approver: string | null;
  reason: string | null;
  used_at: number | null;
  required_approvals: number;
}

export interface VoteRow {
  identity: string;
  approver: string;
  channel: string;
  decision: string;
  reason: string | null;
  at: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS approvals_requests (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('tool-call', 'tool-definition')),
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'used')),
  agent TEXT,
  server TEXT NOT NULL,
  tool TEXT NOT NULL,
  definition_hash TEXT NOT NULL,
  arguments_hash TEXT,
  detail TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  decided_at INTEGER,
  approver TEXT,
  reason TEXT,
  used_at INTEGER,
  required_approvals INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS approvals_requests_status ON approvals_requests (status, kind);
CREATE INDEX IF NOT EXISTS approvals_requests_binding ON approvals_requests (server, tool, definition_hash, arguments_hash);
CREATE TABLE IF NOT EXISTS approvals_votes (
  request_id TEXT NOT NULL,
  identity TEXT NOT NULL,
  approver TEXT NOT NULL,
  channel TEXT NOT NULL,
  decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
  reason TEXT,
  at INTEGER NOT NULL,
  PRIMARY KEY (request_id, identity, decision)
);
`;

/** Databases written before the two-person rule lack its column; every request in them needed one approver. */
function upgradeSchema(database: DatabaseSync): void {
  const columns = database.prepare("SELECT name FROM pragma_table_info('approvals_requests')").all() as Array<{ name: string }>;
  if (!columns.some((column) => column.name === "required_approvals")) {
    database.exec("ALTER TABLE approvals_requests ADD COLUMN required_approvals INTEGER NOT NULL DEFAULT 1");
  }
}

const CHANNELS: readonly ApprovalChannel[] = ["api", "cli", "dashboard", "telegram"];

export const iso = (ms: number | null): string | undefined => (ms === null ? undefined : new Date(ms).toISOString());

export function fromRow(row: Row, votes: VoteRow[]): Approval {
  const approval: Approval = {
    id: row.id,
    kind: row.kind as ApprovalKind,
    status: row.status as ApprovalStatus,
    server: row.server,
    tool: row.tool,
    definitionHash: row.definition_hash,
    detail: JSON.parse(row.detail) as JsonValue,
    createdAt: new Date(row.created_at).toISOString(),
    requiredApprovals: row.required_approvals ?? 1,
  };
  if (votes.length > 0) {
    approval.votes = votes.map((vote) => ({
      identity: vote.identity,
      approver: vote.approver,
      channel: (CHANNELS.includes(vote.channel as ApprovalChannel) ? vote.channel : "api") as ApprovalChannel,
      decision: vote.decision === "deny" ? "deny" : "approve",
      at: new Date(vote.at).toISOString(),
      ...(vote.reason === null ? {} : { reason: vote.reason }),
    }));
  }
  if (row.agent !== null) approval.agent = row.agent;
  if (row.arguments_hash !== null) approval.argumentsHash = row.arguments_hash;
  const optional = { expiresAt: iso(row.expires_at), decidedAt: iso(row.decided_at), usedAt: iso(row.used_at) };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) (approval as unknown as Record<string, string>)[key] = value;
  if (row.approver !== null) approval.approver = row.approver;
  if (row.reason !== null) approval.reason = row.reason;
  return approval;
}

export interface Statements {
  readonly insert: StatementSync;
  readonly get: StatementSync;
  readonly pendingBinding: StatementSync;
  readonly grant: StatementSync;
  readonly review: StatementSync;
  readonly decide: StatementSync;
  readonly consume: StatementSync;
  readonly expire: StatementSync;
  readonly expireHeldCalls: StatementSync;
  readonly countAll: StatementSync;
  readonly countAgent: StatementSync;
  readonly votes: StatementSync;
  readonly vote: StatementSync;
}

/** Creates (or upgrades) the tables and prepares every statement the store runs more than once. */
export function prepareStatements(database: DatabaseSync): Statements {
  database.exec(SCHEMA);
  upgradeSchema(database);
  return {
    insert: database.prepare(
      "INSERT INTO approvals_requests (id, kind, status, agent, server, tool, definition_hash, arguments_hash, detail, created_at, expires_at, required_approvals) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    get: database.prepare("SELECT * FROM approvals_requests WHERE id = ?"),
    pendingBinding: database.prepare(
      "SELECT * FROM approvals_requests WHERE kind = 'tool-call' AND status = 'pending' AND agent = ? AND server = ? AND tool = ? AND definition_hash = ? AND arguments_hash = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at LIMIT 1",
    ),
    grant: database.prepare(
      "SELECT * FROM approvals_requests WHERE kind = 'tool-call' AND status = 'approved' AND agent = ? AND server = ? AND tool = ? AND definition_hash = ? AND arguments_hash = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY decided_at LIMIT 1",
    ),
    review: database.prepare("SELECT * FROM approvals_requests WHERE kind = 'tool-definition' AND server = ? AND tool = ? AND definition_hash = ? ORDER BY created_at DESC LIMIT 1"),
    decide: database.prepare("UPDATE approvals_requests SET status = ?, decided_at = ?, approver = ?, reason = ?, expires_at = ? WHERE id = ? AND status = 'pending'"),
    consume: database.prepare("UPDATE approvals_requests SET status = 'used', used_at = ? WHERE id = ? AND status = 'approved' AND (expires_at IS NULL OR expires_at > ?)"),
    expire: database.prepare("UPDATE approvals_requests SET status = 'expired', decided_at = ?, reason = ? WHERE id = ? AND status = 'pending'"),
    expireHeldCalls: database.prepare("UPDATE approvals_requests SET status = 'expired', decided_at = ?, reason = ? WHERE kind = 'tool-call' AND status = 'pending'"),
    countAll: database.prepare("SELECT COUNT(*) AS count FROM approvals_requests WHERE status = 'pending' AND kind = ?"),
    countAgent: database.prepare("SELECT COUNT(*) AS count FROM approvals_requests WHERE status = 'pending' AND kind = ? AND agent = ?"),
    votes: database.prepare("SELECT identity, approver, channel, decision, reason, at FROM approvals_votes WHERE request_id = ? ORDER BY at, rowid"),
    vote: database.prepare("INSERT OR IGNORE INTO approvals_votes (request_id, identity, approver, channel, decision, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)"),
  };
}
