// The approval store: requests waiting for a human, and what the human decided. Two kinds share it: a held tool call
// ("tool-call", bound to the agent, the exact tool-definition hash and the canonical arguments, usable once) and a new
// or changed tool definition in quarantine ("tool-definition"). It knows nothing about MCP or HTTP, so the admin API,
// the CLI and later a dashboard or a chat bot all drive the same object. Rows live in SQLite (approvals_requests, in
// the audit database) so a restart or another process can read them; waiting calls are woken in memory.
// A request may need several people (the two-person rule): each approval is a vote kept in approvals_votes, counted
// on the decider's authenticated identity (a Telegram user id, the admin token), so one person approving twice under
// two names or from two channels counts once; any deny ends the request.
import { randomBytes } from "node:crypto";
import type { DatabaseSync, StatementSync } from "node:sqlite";

export type ApprovalKind = "tool-call" | "tool-definition";
export type ApprovalStatus = "pending" | "approved" | "denied" | "expired" | "used";
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** Where a decision was taken: recorded with it, so the audit log says which door each decision came through. */
export type ApprovalChannel = "api" | "cli" | "dashboard" | "telegram";

export interface ApprovalVote {
  identity: string;
  approver: string;
  channel: ApprovalChannel;
  decision: "approve" | "deny";
  at: string;
  reason?: string;
}

export interface Approval {
  id: string;
  kind: ApprovalKind;
  status: ApprovalStatus;
  /** The agent whose call is held (tool-call only). */
  agent?: string;
  server: string;
  /** The upstream tool name (the agent sees `<server>__<tool>`). */
  tool: string;
  definitionHash: string;
  /** sha256 of the canonical arguments (tool-call only); the arguments themselves are in `detail`, redacted. */
  argumentsHash?: string;
  /** What the human reviews: redacted arguments, or the definition, its diff and the hidden-instruction findings. */
  detail: JsonValue;
  createdAt: string;
  expiresAt?: string;
  decidedAt?: string;
  approver?: string;
  reason?: string;
  usedAt?: string;
  /** How many distinct people must approve (the two-person rule); 1 unless the policy asks for more. */
  requiredApprovals: number;
  /** Every decision taken on this request so far, in order (approvals toward the count, and the deny that ended it). */
  votes?: ApprovalVote[];
}

export interface NewApproval {
  kind: ApprovalKind;
  agent?: string;
  server: string;
  tool: string;
  definitionHash: string;
  argumentsHash?: string;
  detail: JsonValue;
  /** How long a pending request waits for a decision; none for definition reviews, which wait for as long as it takes. */
  timeoutMs?: number;
  /** Distinct approvers needed (1-10). @default 1 */
  requiredApprovals?: number;
}

/** What a held call is bound to: an approval for anything else does not let it through. */
export interface CallBinding {
  agent: string;
  server: string;
  tool: string;
  definitionHash: string;
  argumentsHash: string;
}

export interface Decision {
  decision: "approve" | "deny";
  /** Who decided, as shown and recorded (e.g. "admin:alice", "telegram:123456789 (Alice)"). */
  approver: string;
  /**
   * The authenticated person behind the decision, on which the two-person rule counts distinct approvers: the admin
   * token's principal however many names its holder types, a Telegram user id. @default approver
   */
  identity?: string;
  /** @default "api" */
  channel?: ApprovalChannel;
  reason?: string;
}

export type ApprovalEvent =
  | { type: "approval-request"; approval: Approval }
  | { type: "approval-vote"; approval: Approval }
  | { type: "approval-decision"; approval: Approval }
  | { type: "approval-expiry"; approval: Approval };

/** Structural type of the audit log (src/audit-log): append is synchronous and throws when the record is not written. */
export interface AuditAppender {
  append(event: { component: string; type: string; [field: string]: unknown }): unknown;
}

export type ApprovalStateCode = "not-found" | "not-pending" | "already-voted";

export class ApprovalStateError extends Error {
  readonly code: ApprovalStateCode;
  constructor(code: ApprovalStateCode, message: string) {
    super(message);
    this.name = "ApprovalStateError";
    this.code = code;
  }
}

export interface ApprovalStore {
  open(request: NewApproval): Approval;
  get(id: string): Approval | undefined;
  list(filter?: { status?: ApprovalStatus; kind?: ApprovalKind; limit?: number }): Approval[];
  countPending(filter: { kind: ApprovalKind; agent?: string }): number;
  /** A pending tool-call request for exactly this binding (a retried call waits on it instead of opening another). */
  findPending(binding: CallBinding): Approval | undefined;
  /** An approved, unused, unexpired tool-call approval for exactly this binding. */
  findGrant(binding: CallBinding): Approval | undefined;
  /** The definition review for this exact definition, whatever its status. */
  findDefinitionReview(server: string, tool: string, definitionHash: string): Approval | undefined;
  /**
   * Records a human decision (audited first: if the audit write fails, nothing changes and this throws). An approval
   * short of the required count leaves the request pending (an "approval-vote"); a deny ends it at once.
   */
  decide(id: string, decision: Decision): Approval;
  /** Marks an approved tool-call approval used; true exactly once. */
  consume(id: string): boolean;
  /** Pending → expired (the wait ran out); undefined if it was no longer pending. */
  expire(id: string, reason: string): Approval | undefined;
  /** Resolves with the approval once it is no longer pending, or when the signal aborts (with its current state). */
  waitForDecision(id: string, signal: AbortSignal): Promise<Approval>;
  subscribe(listener: (event: ApprovalEvent) => void): () => void;
  /**
   * Expires every pending tool-call request. The process that holds calls runs this when it starts: calls held by a
   * previous run have no caller left to resume, so nobody should approve them. Other users of the store (a
   * dashboard) must not.
   */
  expireHeldCalls(reason: string): number;
  close(): void;
}

interface Row {
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

interface VoteRow {
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

const iso = (ms: number | null): string | undefined => (ms === null ? undefined : new Date(ms).toISOString());

function fromRow(row: Row, votes: VoteRow[]): Approval {
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

const ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789";

/** Short, typeable ids ("c" for calls, "d" for definitions) with 50 random bits. */
export function newApprovalId(kind: ApprovalKind): string {
  const bytes = randomBytes(10);
  let id = kind === "tool-call" ? "c" : "d";
  for (const byte of bytes) id += ID_ALPHABET[byte % ID_ALPHABET.length];
  return id;
}

/** Opens the store on a database the caller owns (WAL, busy timeout) and creates its table. */
export function createApprovalStore(options: { database: DatabaseSync; audit: AuditAppender; now?: () => number; pollIntervalMs?: number }): ApprovalStore {
  const { database, audit } = options;
  const now = options.now ?? Date.now;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  database.exec(SCHEMA);
  upgradeSchema(database);
  const listeners = new Set<(event: ApprovalEvent) => void>();
  const waiters = new Map<string, Set<() => void>>();

  const statements: Record<string, StatementSync> = {
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
    countAll: database.prepare("SELECT COUNT(*) AS count FROM approvals_requests WHERE status = 'pending' AND kind = ?"),
    countAgent: database.prepare("SELECT COUNT(*) AS count FROM approvals_requests WHERE status = 'pending' AND kind = ? AND agent = ?"),
    votes: database.prepare("SELECT identity, approver, channel, decision, reason, at FROM approvals_votes WHERE request_id = ? ORDER BY at, rowid"),
    vote: database.prepare("INSERT OR IGNORE INTO approvals_votes (request_id, identity, approver, channel, decision, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)"),
  };
  const withVotes = (row: Row): Approval => fromRow(row, statements.votes!.all(row.id) as unknown as VoteRow[]);


  const emit = (event: ApprovalEvent) => {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not undo a recorded decision; listeners log their own failures.
      }
    }
  };
  const wake = (id: string) => {
    for (const resolve of waiters.get(id) ?? []) resolve();
    waiters.delete(id);
  };
  const get = (id: string): Approval | undefined => {
    const row = statements.get!.get(id) as Row | undefined;
    return row === undefined ? undefined : withVotes(row);
  };
  const bindingArgs = (binding: CallBinding) => [binding.agent, binding.server, binding.tool, binding.definitionHash, binding.argumentsHash, now()] as const;

  return {
    open(request) {
      const id = newApprovalId(request.kind);
      const created = now();
      const expires = request.timeoutMs === undefined ? null : created + request.timeoutMs;
      const required = request.requiredApprovals ?? 1;
      if (!Number.isInteger(required) || required < 1 || required > 10) throw new RangeError(`requiredApprovals must be an integer from 1 to 10, not ${required}`);
      const detail = JSON.stringify(request.detail);
      audit.append({
        component: "approvals",
        type: "approval-request",
        id,
        kind: request.kind,
        agent: request.agent ?? null,
        server: request.server,
        tool: request.tool,
        definitionHash: request.definitionHash,
        argumentsHash: request.argumentsHash ?? null,
        expiresAt: iso(expires) ?? null,
        requiredApprovals: required,
      });
      statements.insert!.run(id, request.kind, request.agent ?? null, request.server, request.tool, request.definitionHash, request.argumentsHash ?? null, detail, created, expires, required);
      const approval = get(id) as Approval;
      emit({ type: "approval-request", approval });
      return approval;
    },
    get,
    list(filter = {}) {
      const clauses: string[] = [];
      const values: string[] = [];
      if (filter.status !== undefined) {
        clauses.push("status = ?");
        values.push(filter.status);
      }
      if (filter.kind !== undefined) {
        clauses.push("kind = ?");
        values.push(filter.kind);
      }
      const where = clauses.length === 0 ? "" : `WHERE ${clauses.join(" AND ")}`;
      const limit = Math.max(1, Math.min(filter.limit ?? 500, 5000));
      const rows = database.prepare(`SELECT * FROM approvals_requests ${where} ORDER BY created_at DESC LIMIT ${limit}`).all(...values) as unknown as Row[];
      return rows.map(withVotes);
    },
    countPending(filter) {
      const row = (filter.agent === undefined ? statements.countAll!.get(filter.kind) : statements.countAgent!.get(filter.kind, filter.agent)) as { count: number };
      return row.count;
    },
    findPending(binding) {
      const row = statements.pendingBinding!.get(...bindingArgs(binding)) as Row | undefined;
      return row === undefined ? undefined : withVotes(row);
    },
    findGrant(binding) {
      const row = statements.grant!.get(...bindingArgs(binding)) as Row | undefined;
      return row === undefined ? undefined : withVotes(row);
    },
    findDefinitionReview(server, tool, definitionHash) {
      const row = statements.review!.get(server, tool, definitionHash) as Row | undefined;
      return row === undefined ? undefined : withVotes(row);
    },
    decide(id, decision) {
      const current = get(id);
      if (current === undefined) throw new ApprovalStateError("not-found", `no approval request ${id} (list them with perimeter approvals list)`);
      const at = now();
      if (current.status !== "pending" || (current.expiresAt !== undefined && Date.parse(current.expiresAt) <= at)) {
        throw new ApprovalStateError("not-pending", `approval request ${id} is ${current.status === "pending" ? "expired" : current.status}; only pending requests can be decided`);
      }
      const identity = decision.identity ?? decision.approver;
      const channel = decision.channel ?? "api";
      const approved = decision.decision === "approve";
      const earlier = current.votes ?? [];
      // Someone who approved may still deny (fail closed); nobody approves twice.
      if (approved && earlier.some((vote) => vote.identity === identity)) {
        throw new ApprovalStateError(
          "already-voted",
          `${decision.approver} already approved request ${id} (as ${identity}); it needs ${current.requiredApprovals - earlier.length} more approval(s) from a different person`,
        );
      }
      const count = earlier.length + (approved ? 1 : 0);
      const final = !approved || count >= current.requiredApprovals;
      const approvers = [...earlier.map((vote) => vote.approver), decision.approver];
      const common = {
        component: "approvals",
        id,
        kind: current.kind,
        approver: decision.approver,
        identity,
        channel,
        reason: decision.reason ?? null,
        agent: current.agent ?? null,
        server: current.server,
        tool: current.tool,
        definitionHash: current.definitionHash,
        argumentsHash: current.argumentsHash ?? null,
        approvals: count,
        requiredApprovals: current.requiredApprovals,
      };
      if (!final) {
        // One approval toward the count: recorded, and the request stays pending for the next person.
        audit.append({ ...common, type: "approval-vote", vote: "approve" });
        if (statements.vote!.run(id, identity, decision.approver, channel, "approve", decision.reason ?? null, at).changes !== 1) {
          throw new ApprovalStateError("already-voted", `${decision.approver} already approved request ${id} (decided concurrently)`);
        }
        const approval = get(id) as Approval;
        emit({ type: "approval-vote", approval });
        return approval;
      }
      // An approved call stays usable (once) for as long as the original wait, in case the agent retries it.
      const window = current.expiresAt === undefined ? null : Date.parse(current.expiresAt) - Date.parse(current.createdAt);
      const grantExpires = approved && window !== null ? at + window : null;
      audit.append({ ...common, type: "approval-decision", decision: approved ? "approved" : "denied", approvers: approved ? approvers : [decision.approver] });
      statements.vote!.run(id, identity, decision.approver, channel, decision.decision, decision.reason ?? null, at);
      const recordedApprover = approved ? approvers.join(", ") : decision.approver;
      const result = statements.decide!.run(approved ? "approved" : "denied", at, recordedApprover, decision.reason ?? null, grantExpires, id);
      if (result.changes !== 1) throw new ApprovalStateError("not-pending", `approval request ${id} was decided concurrently`);
      const approval = get(id) as Approval;
      wake(id);
      emit({ type: "approval-decision", approval });
      return approval;
    },
    consume(id) {
      const at = now();
      return statements.consume!.run(at, id, at).changes === 1;
    },
    expire(id, reason) {
      if (statements.expire!.run(now(), reason, id).changes !== 1) return undefined;
      const approval = get(id) as Approval;
      wake(id);
      emit({ type: "approval-expiry", approval });
      return approval;
    },
    waitForDecision(id, signal) {
      return new Promise((resolve) => {
        // Decisions taken in this process wake the waiter at once; the poll catches those written to the database
        // by another process (a second guard, a dashboard).
        const poll = setInterval(() => {
          if (get(id)?.status !== "pending") done();
        }, pollIntervalMs);
        poll.unref();
        const done = () => {
          clearInterval(poll);
          signal.removeEventListener("abort", done);
          waiters.get(id)?.delete(done);
          resolve(get(id) as Approval);
        };
        const current = get(id);
        if (current === undefined || current.status !== "pending" || signal.aborted) {
          clearInterval(poll);
          resolve(current as Approval);
          return;
        }
        let set = waiters.get(id);
        if (set === undefined) waiters.set(id, (set = new Set()));
        set.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
    },
    expireHeldCalls(reason) {
      return Number(database.prepare("UPDATE approvals_requests SET status = 'expired', decided_at = ?, reason = ? WHERE kind = 'tool-call' AND status = 'pending'").run(now(), reason).changes);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      for (const id of [...waiters.keys()]) wake(id);
      listeners.clear();
    },
  };
}
