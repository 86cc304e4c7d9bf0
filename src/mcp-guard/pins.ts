// The pinning store: every tool definition the guard has seen, by (server, tool, hash), and whether a human (or
// trust-on-first-use) accepted it. A definition is served only while its exact hash is trusted, so an upstream that
// rewrites a description after it was reviewed ("rug pull") loses the tool until the change is approved.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Finding, ToolDefinition } from "./definitions.ts";

export type PinStatus = "pending" | "trusted" | "denied";

export interface Pin {
  server: string;
  tool: string;
  hash: string;
  definition: ToolDefinition;
  findings: Finding[];
  status: PinStatus;
  reviewId?: string;
  firstSeen: string;
  decidedAt?: string;
  decidedBy?: string;
}

export interface PinStore {
  get(server: string, tool: string, hash: string): Pin | undefined;
  /** Whether anything was ever recorded for this server (trust-on-first-use applies only to an empty store). */
  knowsServer(server: string): boolean;
  /** The most recently trusted definition of a tool, to diff a change against. */
  lastTrusted(server: string, tool: string): Pin | undefined;
  record(pin: { server: string; tool: string; hash: string; definition: ToolDefinition; findings: Finding[]; status: PinStatus; reviewId?: string; decidedBy?: string }): Pin;
  decide(server: string, tool: string, hash: string, status: "trusted" | "denied", decidedBy: string): void;
  counts(): Record<PinStatus, number>;
}

interface Row {
  server: string;
  tool: string;
  hash: string;
  definition: string;
  findings: string;
  status: string;
  review_id: string | null;
  first_seen: number;
  decided_at: number | null;
  decided_by: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS mcp_guard_tool_definitions (
  server TEXT NOT NULL,
  tool TEXT NOT NULL,
  hash TEXT NOT NULL,
  definition TEXT NOT NULL,
  findings TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'trusted', 'denied')),
  review_id TEXT,
  first_seen INTEGER NOT NULL,
  decided_at INTEGER,
  decided_by TEXT,
  PRIMARY KEY (server, tool, hash)
);
`;

function fromRow(row: Row): Pin {
  const pin: Pin = {
    server: row.server,
    tool: row.tool,
    hash: row.hash,
    definition: JSON.parse(row.definition) as ToolDefinition,
    findings: JSON.parse(row.findings) as Finding[],
    status: row.status as PinStatus,
    firstSeen: new Date(row.first_seen).toISOString(),
  };
  if (row.review_id !== null) pin.reviewId = row.review_id;
  if (row.decided_at !== null) pin.decidedAt = new Date(row.decided_at).toISOString();
  if (row.decided_by !== null) pin.decidedBy = row.decided_by;
  return pin;
}

export function createPinStore(database: DatabaseSync, now: () => number = Date.now): PinStore {
  database.exec(SCHEMA);
  const statements: Record<string, StatementSync> = {
    get: database.prepare("SELECT * FROM mcp_guard_tool_definitions WHERE server = ? AND tool = ? AND hash = ?"),
    knows: database.prepare("SELECT 1 AS found FROM mcp_guard_tool_definitions WHERE server = ? LIMIT 1"),
    lastTrusted: database.prepare("SELECT * FROM mcp_guard_tool_definitions WHERE server = ? AND tool = ? AND status = 'trusted' ORDER BY decided_at DESC LIMIT 1"),
    insert: database.prepare(
      "INSERT INTO mcp_guard_tool_definitions (server, tool, hash, definition, findings, status, review_id, first_seen, decided_at, decided_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (server, tool, hash) DO UPDATE SET review_id = COALESCE(excluded.review_id, review_id)",
    ),
    decide: database.prepare("UPDATE mcp_guard_tool_definitions SET status = ?, decided_at = ?, decided_by = ? WHERE server = ? AND tool = ? AND hash = ?"),
    counts: database.prepare("SELECT status, COUNT(*) AS count FROM mcp_guard_tool_definitions GROUP BY status"),
  };
  const get = (server: string, tool: string, hash: string) => {
    const row = statements.get!.get(server, tool, hash) as Row | undefined;
    return row === undefined ? undefined : fromRow(row);
  };
  return {
    get,
    knowsServer: (server) => statements.knows!.get(server) !== undefined,
    lastTrusted(server, tool) {
      const row = statements.lastTrusted!.get(server, tool) as Row | undefined;
      return row === undefined ? undefined : fromRow(row);
    },
    record(pin) {
      const at = now();
      const decided = pin.status === "pending" ? null : at;
      statements.insert!.run(pin.server, pin.tool, pin.hash, JSON.stringify(pin.definition), JSON.stringify(pin.findings), pin.status, pin.reviewId ?? null, at, decided, pin.decidedBy ?? null);
      return get(pin.server, pin.tool, pin.hash) as Pin;
    },
    decide(server, tool, hash, status, decidedBy) {
      statements.decide!.run(status, now(), decidedBy, server, tool, hash);
    },
    counts() {
      const counts: Record<PinStatus, number> = { pending: 0, trusted: 0, denied: 0 };
      for (const row of statements.counts!.all() as unknown as Array<{ status: PinStatus; count: number }>) counts[row.status] = row.count;
      return counts;
    },
  };
}
