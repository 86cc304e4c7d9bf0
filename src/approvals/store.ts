// The approval store: requests waiting for a human, and what the human decided. Two kinds share it: a held tool call
// ("tool-call", bound to the agent, the exact tool-definition hash and the canonical arguments, usable once) and a new
// or changed tool definition in quarantine ("tool-definition"). It knows nothing about MCP or HTTP, so the admin API,
// the CLI and later a dashboard or a chat bot all drive the same object. Rows live in SQLite (approvals_requests, in
// the audit database) so a restart or another process can read them; waiting calls are woken in memory.
// A request may need several people (the two-person rule): each approval is a vote kept in approvals_votes, counted
// on the decider's authenticated identity (a Telegram user id, the admin token), so one person approving twice under
// two names or from two channels counts once; any deny ends the request.
import { randomBytes } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { fromRow, iso, prepareStatements } from "./store-rows.ts";
import type { Row, Statements, VoteRow } from "./store-rows.ts";

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

export interface ApprovalDecision {
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
  decide(id: string, decision: ApprovalDecision): Approval;
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

const ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789";

/** Short, typeable ids ("c" for calls, "d" for definitions) with 50 random bits. */
export function newApprovalId(kind: ApprovalKind): string {
  const bytes = randomBytes(10);
  let id = kind === "tool-call" ? "c" : "d";
  for (const byte of bytes) id += ID_ALPHABET[byte % ID_ALPHABET.length];
  return id;
}

/** The store's state: its connection and statements, its clock, and who listens or waits in this process. */
interface StoreState {
  readonly database: DatabaseSync;
  readonly audit: AuditAppender;
  readonly now: () => number;
  readonly pollIntervalMs: number;
  readonly statements: Statements;
  readonly listeners: Set<(event: ApprovalEvent) => void>;
  /** Calls waiting in this process, woken at once by a decision taken here. */
  readonly waiters: Map<string, Set<() => void>>;
}

function emit(state: StoreState, event: ApprovalEvent): void {
  for (const listener of state.listeners) {
    try {
      listener(event);
    } catch {
      // A listener's bug must not undo a recorded decision; listeners log their own failures.
    }
  }
}

function wake(state: StoreState, id: string): void {
  for (const resolve of state.waiters.get(id) ?? []) resolve();
  state.waiters.delete(id);
}

function withVotes(state: StoreState, row: Row): Approval {
  return fromRow(row, state.statements.votes.all(row.id) as unknown as VoteRow[]);
}

function getApproval(state: StoreState, id: string): Approval | undefined {
  const row = state.statements.get.get(id) as Row | undefined;
  return row === undefined ? undefined : withVotes(state, row);
}

function rowApproval(state: StoreState, row: unknown): Approval | undefined {
  return row === undefined ? undefined : withVotes(state, row as Row);
}

function openRequest(state: StoreState, request: NewApproval): Approval {
  const id = newApprovalId(request.kind);
  const created = state.now();
  const expires = request.timeoutMs === undefined ? null : created + request.timeoutMs;
  const required = request.requiredApprovals ?? 1;
  if (!Number.isInteger(required) || required < 1 || required > 10) throw new RangeError(`requiredApprovals must be an integer from 1 to 10, not ${required}`);
  const detail = JSON.stringify(request.detail);
  state.audit.append({
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
  state.statements.insert.run(id, request.kind, request.agent ?? null, request.server, request.tool, request.definitionHash, request.argumentsHash ?? null, detail, created, expires, required);
  const approval = getApproval(state, id) as Approval;
  emit(state, { type: "approval-request", approval });
  return approval;
}

function listApprovals(state: StoreState, filter: { status?: ApprovalStatus; kind?: ApprovalKind; limit?: number }): Approval[] {
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
  const rows = state.database.prepare(`SELECT * FROM approvals_requests ${where} ORDER BY created_at DESC LIMIT ${limit}`).all(...values) as unknown as Row[];
  return rows.map((row) => withVotes(state, row));
}

/** The pending request a decision applies to; throws when there is none or it is no longer pending. */
function decidable(state: StoreState, id: string, at: number): Approval {
  const current = getApproval(state, id);
  if (current === undefined) throw new ApprovalStateError("not-found", `no approval request ${id} (list them with perimeter approvals list)`);
  if (current.status !== "pending" || (current.expiresAt !== undefined && Date.parse(current.expiresAt) <= at)) {
    throw new ApprovalStateError("not-pending", `approval request ${id} is ${current.status === "pending" ? "expired" : current.status}; only pending requests can be decided`);
  }
  return current;
}

function decideRequest(state: StoreState, id: string, decision: ApprovalDecision): Approval {
  const at = state.now();
  const current = decidable(state, id, at);
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
  const vote = { identity, channel, at };
  if (approved && count < current.requiredApprovals) return recordVote(state, current, decision, vote, common);
  return recordFinal(state, current, decision, vote, { ...common, approvers: approved ? [...earlier.map((earlierVote) => earlierVote.approver), decision.approver] : [decision.approver] });
}

type VoteContext = { identity: string; channel: ApprovalChannel; at: number };

/** One approval toward the count: recorded, and the request stays pending for the next person. */
function recordVote(state: StoreState, current: Approval, decision: ApprovalDecision, vote: VoteContext, common: Record<string, unknown>): Approval {
  const { id } = current;
  state.audit.append({ ...common, component: "approvals", type: "approval-vote", vote: "approve" });
  if (state.statements.vote.run(id, vote.identity, decision.approver, vote.channel, "approve", decision.reason ?? null, vote.at).changes !== 1) {
    throw new ApprovalStateError("already-voted", `${decision.approver} already approved request ${id} (decided concurrently)`);
  }
  const approval = getApproval(state, id) as Approval;
  emit(state, { type: "approval-vote", approval });
  return approval;
}

/** The decision that ends the request: the last approval needed, or any deny. */
function recordFinal(state: StoreState, current: Approval, decision: ApprovalDecision, vote: VoteContext, common: Record<string, unknown> & { approvers: string[] }): Approval {
  const { id } = current;
  const approved = decision.decision === "approve";
  // An approved call stays usable (once) for as long as the original wait, in case the agent retries it.
  const window = current.expiresAt === undefined ? null : Date.parse(current.expiresAt) - Date.parse(current.createdAt);
  const grantExpires = approved && window !== null ? vote.at + window : null;
  state.audit.append({ ...common, component: "approvals", type: "approval-decision", decision: approved ? "approved" : "denied" });
  state.statements.vote.run(id, vote.identity, decision.approver, vote.channel, decision.decision, decision.reason ?? null, vote.at);
  const recordedApprover = approved ? common.approvers.join(", ") : decision.approver;
  const result = state.statements.decide.run(approved ? "approved" : "denied", vote.at, recordedApprover, decision.reason ?? null, grantExpires, id);
  if (result.changes !== 1) throw new ApprovalStateError("not-pending", `approval request ${id} was decided concurrently`);
  const approval = getApproval(state, id) as Approval;
  wake(state, id);
  emit(state, { type: "approval-decision", approval });
  return approval;
}

function waitForDecision(state: StoreState, id: string, signal: AbortSignal): Promise<Approval> {
  return new Promise((resolve) => {
    // Decisions taken in this process wake the waiter at once; the poll catches those written to the database by
    // another process (a second guard, a dashboard).
    const poll = setInterval(() => {
      if (getApproval(state, id)?.status !== "pending") done();
    }, state.pollIntervalMs);
    poll.unref();
    const done = () => {
      clearInterval(poll);
      signal.removeEventListener("abort", done);
      state.waiters.get(id)?.delete(done);
      resolve(getApproval(state, id) as Approval);
    };
    const current = getApproval(state, id);
    if (current === undefined || current.status !== "pending" || signal.aborted) {
      clearInterval(poll);
      resolve(current as Approval);
      return;
    }
    let set = state.waiters.get(id);
    if (set === undefined) state.waiters.set(id, (set = new Set()));
    set.add(done);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Opens the store on a database the caller owns (WAL, busy timeout) and creates its table. */
export function createApprovalStore(options: { database: DatabaseSync; audit: AuditAppender; now?: () => number; pollIntervalMs?: number }): ApprovalStore {
  const state: StoreState = {
    database: options.database,
    audit: options.audit,
    now: options.now ?? Date.now,
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    statements: prepareStatements(options.database),
    listeners: new Set(),
    waiters: new Map(),
  };
  const { statements, now } = state;
  const bindingArgs = (binding: CallBinding) => [binding.agent, binding.server, binding.tool, binding.definitionHash, binding.argumentsHash, now()] as const;
  return {
    open: (request) => openRequest(state, request),
    get: (id) => getApproval(state, id),
    list: (filter = {}) => listApprovals(state, filter),
    countPending(filter) {
      const row = (filter.agent === undefined ? statements.countAll.get(filter.kind) : statements.countAgent.get(filter.kind, filter.agent)) as { count: number };
      return row.count;
    },
    findPending: (binding) => rowApproval(state, statements.pendingBinding.get(...bindingArgs(binding))),
    findGrant: (binding) => rowApproval(state, statements.grant.get(...bindingArgs(binding))),
    findDefinitionReview: (server, tool, definitionHash) => rowApproval(state, statements.review.get(server, tool, definitionHash)),
    decide: (id, decision) => decideRequest(state, id, decision),
    consume(id) {
      const at = now();
      return statements.consume.run(at, id, at).changes === 1;
    },
    expire(id, reason) {
      if (statements.expire.run(now(), reason, id).changes !== 1) return undefined;
      const approval = getApproval(state, id) as Approval;
      wake(state, id);
      emit(state, { type: "approval-expiry", approval });
      return approval;
    },
    waitForDecision: (id, signal) => waitForDecision(state, id, signal),
    expireHeldCalls: (reason) => Number(statements.expireHeldCalls.run(now(), reason).changes),
    subscribe(listener) {
      state.listeners.add(listener);
      return () => state.listeners.delete(listener);
    },
    close() {
      for (const id of [...state.waiters.keys()]) wake(state, id);
      state.listeners.clear();
    },
  };
}
