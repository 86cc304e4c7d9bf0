// The approval store on a real SQLite file with the real audit log: one decision per request, one use per approval,
// exact bindings, fail-closed decisions, and what survives a restart.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, test } from "node:test";
import { openAuditLog, readAuditRecords } from "../audit-log/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { ApprovalStateError, createApprovalStore } from "./store.ts";
import type { ApprovalStore, CallBinding } from "./store.ts";

const binding: CallBinding = { agent: "hermes", server: "github", tool: "create_issue", definitionHash: "d".repeat(64), argumentsHash: "a".repeat(64) };
const call = (overrides: Partial<CallBinding> = {}, timeoutMs = 60_000) => ({ kind: "tool-call" as const, ...binding, ...overrides, detail: { arguments: { title: "x" } }, timeoutMs });

describe("approval store", () => {
  let directory: string;
  let path: string;
  let audit: AuditLog;
  let database: DatabaseSync;
  let store: ApprovalStore;

  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), "approvals-"));
    path = join(directory, "audit.db");
    audit = openAuditLog({ path });
    database = new DatabaseSync(path);
    database.exec("PRAGMA busy_timeout = 5000");
    store = createApprovalStore({ database, audit });
  });
  afterEach(() => {
    store.close();
    database.close();
    audit.close();
    rmSync(directory, { recursive: true, force: true });
  });

  test("a request is decided once; an approval is consumed exactly once", () => {
    const request = store.open(call());
    assert.match(request.id, /^c[a-z2-9]{10}$/);
    assert.equal(store.findPending(binding)?.id, request.id);
    const approved = store.decide(request.id, { decision: "approve", approver: "admin:alice", reason: "ok" });
    assert.equal(approved.status, "approved");
    assert.throws(() => store.decide(request.id, { decision: "deny", approver: "admin" }), (error: unknown) => error instanceof ApprovalStateError && error.code === "not-pending");
    assert.equal(store.consume(request.id), true);
    assert.equal(store.consume(request.id), false, "a second use is refused");
    assert.equal(store.get(request.id)?.status, "used");
    assert.throws(() => store.decide("cnosuchthing", { decision: "approve", approver: "admin" }), (error: unknown) => error instanceof ApprovalStateError && error.code === "not-found");
  });

  test("a grant matches only the exact binding: agent, server, tool, definition hash and arguments hash", () => {
    const request = store.open(call());
    store.decide(request.id, { decision: "approve", approver: "admin" });
    for (const change of [{ agent: "ops" }, { server: "other" }, { tool: "delete_repo" }, { definitionHash: "e".repeat(64) }, { argumentsHash: "b".repeat(64) }]) {
      assert.equal(store.findGrant({ ...binding, ...change }), undefined, JSON.stringify(change));
    }
    assert.equal(store.findGrant(binding)?.id, request.id);
  });

  test("an expired request cannot be decided, and a late approval is not a grant", async () => {
    const request = store.open(call({}, 20));
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.throws(() => store.decide(request.id, { decision: "approve", approver: "admin" }), /expired/);
    assert.equal(store.expire(request.id, "timeout")?.status, "expired");
    assert.equal(store.findGrant(binding), undefined);
  });

  test("every request and decision is audited first; when the audit log fails, the decision is not applied", () => {
    const request = store.open(call());
    const records = readAuditRecords(path);
    assert.deepEqual(records.map((record) => record.type), ["approval-request"]);
    assert.equal(records[0]?.data.argumentsHash, binding.argumentsHash);
    audit.close();
    assert.throws(() => store.decide(request.id, { decision: "approve", approver: "admin" }));
    assert.equal(store.get(request.id)?.status, "pending", "nothing changed without a record");
    assert.throws(() => store.open(call({ argumentsHash: "c".repeat(64) })), "no request without a record either");
  });

  test("waiters wake on a decision and on abort", async () => {
    const request = store.open(call());
    const waiting = store.waitForDecision(request.id, new AbortController().signal);
    store.decide(request.id, { decision: "deny", approver: "admin", reason: "no" });
    assert.equal((await waiting).status, "denied");
    const other = store.open(call({ argumentsHash: "f".repeat(64) }));
    const controller = new AbortController();
    const aborted = store.waitForDecision(other.id, controller.signal);
    controller.abort();
    assert.equal((await aborted).status, "pending");
  });

  test("after a restart the guard closes held calls (nobody waits for them); definition reviews stay pending", () => {
    const held = store.open(call());
    const review = store.open({ kind: "tool-definition", server: "github", tool: "create_issue", definitionHash: "d".repeat(64), detail: { change: "new" } });
    store.close();
    const reopened = createApprovalStore({ database, audit });
    assert.equal(reopened.get(held.id)?.status, "pending", "opening the store alone (say, a dashboard) changes nothing");
    assert.equal(reopened.expireHeldCalls("the guard restarted while the call was waiting"), 1);
    assert.equal(reopened.get(held.id)?.status, "expired");
    assert.match(reopened.get(held.id)?.reason ?? "", /restarted/);
    assert.equal(reopened.get(review.id)?.status, "pending");
    assert.equal(reopened.findDefinitionReview("github", "create_issue", "d".repeat(64))?.id, review.id);
    store = reopened;
  });

  test("a decision written by another process (its own store on the same file) wakes a waiting call", async () => {
    const request = store.open(call());
    const otherDatabase = new DatabaseSync(path);
    otherDatabase.exec("PRAGMA busy_timeout = 5000");
    const other = createApprovalStore({ database: otherDatabase, audit });
    try {
      const fast = createApprovalStore({ database, audit, pollIntervalMs: 20 });
      const waiting = fast.waitForDecision(request.id, AbortSignal.timeout(5000));
      other.decide(request.id, { decision: "approve", approver: "dashboard" });
      const decided = await waiting;
      assert.equal(decided.status, "approved");
      assert.equal(decided.approver, "dashboard");
    } finally {
      otherDatabase.close();
    }
  });

  test("listeners hear requests and decisions (the seam for a dashboard or chat notifier)", () => {
    const events: string[] = [];
    const unsubscribe = store.subscribe((event) => events.push(`${event.type}:${event.approval.status}`));
    const request = store.open(call());
    store.decide(request.id, { decision: "approve", approver: "admin" });
    unsubscribe();
    store.open(call({ argumentsHash: "9".repeat(64) }));
    assert.deepEqual(events, ["approval-request:pending", "approval-decision:approved"]);
  });
});

// Issue 19 item 3: a request may need N distinct people. "Distinct" is counted on the authenticated identity (a
// Telegram user id, the admin token), never on a name the decider typed.
describe("approval store: two-person rule", () => {
  let directory: string;
  let path: string;
  let audit: AuditLog;
  let database: DatabaseSync;
  let store: ApprovalStore;

  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), "approvals-two-"));
    path = join(directory, "audit.db");
    audit = openAuditLog({ path });
    database = new DatabaseSync(path);
    database.exec("PRAGMA busy_timeout = 5000");
    store = createApprovalStore({ database, audit });
  });
  afterEach(() => {
    store.close();
    database.close();
    audit.close();
    rmSync(directory, { recursive: true, force: true });
  });

  const twoPerson = (overrides: Partial<CallBinding> = {}) => ({ ...call(overrides), requiredApprovals: 2 });

  test("the call proceeds only after two different people approved; each vote is recorded with channel and approver", async () => {
    const request = store.open(twoPerson());
    assert.equal(request.requiredApprovals, 2);
    const waiting = store.waitForDecision(request.id, AbortSignal.timeout(5000));
    const first = store.decide(request.id, { decision: "approve", approver: "telegram:111 (alice)", identity: "telegram:111", channel: "telegram" });
    assert.equal(first.status, "pending", "one approval of two leaves the request pending");
    assert.deepEqual(first.votes?.map((vote) => [vote.identity, vote.channel, vote.decision]), [["telegram:111", "telegram", "approve"]]);
    assert.equal(store.findGrant(binding), undefined, "half an approval is no grant");
    const second = store.decide(request.id, { decision: "approve", approver: "admin:bob", identity: "admin", channel: "cli" });
    assert.equal(second.status, "approved");
    assert.equal((await waiting).status, "approved");
    const records = readAuditRecords(path).filter((record) => record.type.startsWith("approval-"));
    assert.deepEqual(
      records.map((record) => [record.type, record.data.channel ?? null, record.data.approver ?? null]),
      [
        ["approval-request", null, null],
        ["approval-vote", "telegram", "telegram:111 (alice)"],
        ["approval-decision", "cli", "admin:bob"],
      ],
    );
    assert.equal(records[0]?.data.requiredApprovals, 2);
    assert.deepEqual(records[2]?.data.approvers, ["telegram:111 (alice)", "admin:bob"]);
  });

  test("the same person approving twice (even under another name or from another channel) does not count twice", () => {
    const request = store.open(twoPerson());
    store.decide(request.id, { decision: "approve", approver: "admin:alice", identity: "admin", channel: "cli" });
    assert.throws(
      () => store.decide(request.id, { decision: "approve", approver: "admin:mallory", identity: "admin", channel: "dashboard" }),
      (error: unknown) => error instanceof ApprovalStateError && error.code === "already-voted" && /different person/.test(error.message),
    );
    const after = store.get(request.id);
    assert.equal(after?.status, "pending");
    assert.equal(after?.votes?.length, 1);
    assert.equal(readAuditRecords(path).filter((record) => record.type === "approval-vote").length, 1, "the refused second vote changed nothing");
  });

  test("any deny ends it, even after an approval", () => {
    const request = store.open(twoPerson());
    store.decide(request.id, { decision: "approve", approver: "telegram:111", identity: "telegram:111", channel: "telegram" });
    const denied = store.decide(request.id, { decision: "deny", approver: "telegram:222", identity: "telegram:222", channel: "telegram", reason: "not today" });
    assert.equal(denied.status, "denied");
    assert.throws(() => store.decide(request.id, { decision: "approve", approver: "admin", identity: "admin", channel: "cli" }), (error: unknown) => error instanceof ApprovalStateError && error.code === "not-pending");
    assert.equal(store.findGrant(binding), undefined);
  });

  test("listeners hear each vote (the seam a chat bot uses to show '1 of 2')", () => {
    const events: string[] = [];
    store.subscribe((event) => events.push(`${event.type}:${event.approval.votes?.length ?? 0}`));
    const request = store.open(twoPerson());
    store.decide(request.id, { decision: "approve", approver: "a", identity: "a", channel: "api" });
    store.decide(request.id, { decision: "approve", approver: "b", identity: "b", channel: "api" });
    assert.deepEqual(events, ["approval-request:0", "approval-vote:1", "approval-decision:2"]);
  });

  test("a database created before the two-person rule is upgraded in place (its requests need one approver)", () => {
    store.close();
    database.exec("DROP TABLE approvals_requests");
    database.exec("DROP TABLE IF EXISTS approvals_votes");
    database.exec(
      "CREATE TABLE approvals_requests (id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, agent TEXT, server TEXT NOT NULL, tool TEXT NOT NULL, definition_hash TEXT NOT NULL, arguments_hash TEXT, detail TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER, decided_at INTEGER, approver TEXT, reason TEXT, used_at INTEGER)",
    );
    database.prepare("INSERT INTO approvals_requests (id, kind, status, server, tool, definition_hash, detail, created_at) VALUES ('dold', 'tool-definition', 'pending', 's', 't', 'h', '{}', 1)").run();
    store = createApprovalStore({ database, audit });
    assert.equal(store.get("dold")?.requiredApprovals, 1);
    assert.equal(store.decide("dold", { decision: "approve", approver: "admin" }).status, "approved");
  });
});
