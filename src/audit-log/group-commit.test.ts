// Batched appends and group commit (issue 3's throughput target leans on it): a batch is one transaction that is
// all-or-nothing and forms the same verifiable chain as single appends; the committer tells each caller only after
// its record is committed, tells every caller of a failed batch, refuses invalid events at once, and bounds batches.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AuditWriteError, createGroupCommitter, openAuditLog, readAuditRecords, verifyAuditLog } from "./index.ts";
import type { AuditRecord } from "./index.ts";
import { query, temporaryDirectory } from "./test-helpers.ts";

function freshLog(checkpointEvery = 1000) {
  const path = join(temporaryDirectory(), "audit.db");
  return { path, log: openAuditLog({ path, checkpointEvery }) };
}

test("appendMany writes its events in order in one transaction, chained like single appends, and verify accepts it", () => {
  const { path, log } = freshLog(7);
  log.append({ component: "cli", type: "first" });
  const batch = log.appendMany(Array.from({ length: 20 }, (_, index) => ({ component: "egress-proxy" as const, type: "egress-decision", index })));
  log.append({ component: "cli", type: "last" });
  log.close();
  assert.deepEqual(
    batch.map((record) => record.seq),
    Array.from({ length: 20 }, (_, index) => index + 2),
  );
  const stored = readAuditRecords(path, { limit: 100 });
  assert.equal(stored.length, 22);
  for (let index = 1; index < stored.length; index += 1) assert.equal(stored[index]?.prevHash, stored[index - 1]?.hash);
  assert.deepEqual(stored.slice(1, 21), batch);
  // A batch longer than checkpointEvery still leaves a checkpoint covering it.
  const checkpoints = query(path, "SELECT record_seq FROM audit_log_checkpoints WHERE reason = 'periodic'") as Array<{ record_seq: number }>;
  assert.ok(checkpoints.some((row) => row.record_seq === 21), JSON.stringify(checkpoints));
  assert.equal(verifyAuditLog(path).ok, true);
});

test("a batch with one invalid event writes nothing, and names the problem", () => {
  const { path, log } = freshLog();
  assert.throws(
    () => log.appendMany([{ component: "cli", type: "fine" }, { component: "cli", type: "Not A Type" }]),
    (error: unknown) => error instanceof AuditWriteError && /lowercase noun-verb/.test(error.message),
  );
  log.close();
  assert.equal(readAuditRecords(path, { limit: 10 }).length, 0);
});

test("appendPrepared takes only events this log prepared, so nothing unvalidated reaches the chain", () => {
  const { log } = freshLog();
  const forged = Object.freeze({ component: "cli" as const, type: "x", data: {}, dataText: '{"sneaky":true}' });
  assert.throws(() => log.appendPrepared([forged]), /only events returned by this log's prepare/);
  log.close();
});

test("the group committer writes everything queued in one turn as one transaction, and calls back only after the commit", async () => {
  const { path, log } = freshLog();
  const committer = createGroupCommitter(log);
  const results: Array<AuditRecord | undefined> = [];
  const pending = Array.from(
    { length: 100 },
    (_, index) =>
      new Promise<void>((resolve, reject) => {
        committer.append({ component: "egress-proxy", type: "egress-decision", index }, (error, record) => {
          if (error !== null) return reject(error);
          // The record is already in the file when the caller hears of it.
          assert.equal((query(path, `SELECT count(*) AS n FROM audit_log_records WHERE seq = ${record?.seq ?? -1}`) as Array<{ n: number }>)[0]?.n, 1);
          results[index] = record;
          resolve();
        });
      }),
  );
  assert.equal(committer.pending(), 100);
  assert.equal(readAuditRecords(path, { limit: 1000 }).length, 0, "nothing is written before the turn ends");
  await Promise.all(pending);
  assert.equal(committer.batches(), 1);
  assert.equal(committer.pending(), 0);
  assert.deepEqual(
    results.map((record) => record?.data.index),
    Array.from({ length: 100 }, (_, index) => index),
  );
  log.close();
  assert.equal(verifyAuditLog(path).ok, true);
});

test("a batch is bounded: a flood of queued records is written in several transactions", () => {
  const { path, log } = freshLog();
  const committer = createGroupCommitter(log);
  let committed = 0;
  for (let index = 0; index < 1500; index += 1) committer.append({ component: "cli", type: "flood", index }, (error) => (committed += error === null ? 1 : 0));
  committer.flush();
  assert.equal(committed, 1500);
  assert.equal(committer.batches(), 3);
  log.close();
  const verification = verifyAuditLog(path);
  assert.equal(verification.ok && verification.records, 1500);
});

test("when the commit fails, every caller in the batch is told (fail closed) and later batches can still succeed", async () => {
  const { log } = freshLog();
  let fail = true;
  const flaky = {
    prepare: log.prepare,
    appendPrepared: (events: Parameters<typeof log.appendPrepared>[0]) => {
      if (fail) throw new AuditWriteError("disk full (simulated by the test)");
      return log.appendPrepared(events);
    },
  };
  const committer = createGroupCommitter(flaky);
  const outcome = (index: number) =>
    new Promise<string>((resolve) => committer.append({ component: "cli", type: "try", index }, (error, record) => resolve(error === null ? `ok ${record?.seq}` : error.message)));
  const failed = await Promise.all([outcome(1), outcome(2), outcome(3)]);
  assert.deepEqual(failed, Array(3).fill("disk full (simulated by the test)"));
  fail = false;
  assert.equal(await outcome(4), "ok 1");
  log.close();
});

test("an invalid event is refused at once and does not spoil the batch it would have joined", async () => {
  const { path, log } = freshLog();
  const committer = createGroupCommitter(log);
  const good = new Promise<AuditWriteError | null>((resolve) => committer.append({ component: "cli", type: "good" }, resolve));
  assert.throws(() => committer.append({ component: "nobody" as "cli", type: "bad" }, () => assert.fail("must not be called")), /unknown audit component/);
  assert.equal(await good, null);
  log.close();
  assert.deepEqual(
    readAuditRecords(path, { limit: 10 }).map((record) => record.type),
    ["good"],
  );
});

test("appending to a closed log fails every queued caller instead of dropping their records silently", async () => {
  const { log } = freshLog();
  const committer = createGroupCommitter(log);
  const result = new Promise<AuditWriteError | null>((resolve) => committer.append({ component: "cli", type: "late" }, resolve));
  log.close();
  const error = await result;
  assert.ok(error instanceof AuditWriteError);
  assert.match(error.message, /closed; nothing was recorded/);
});

test("a record nothing waits for joins the next waited-for commit, or is committed within deferMs on its own", async () => {
  const { path, log } = freshLog();
  const committer = createGroupCommitter(log, { deferMs: 50 });
  const order: string[] = [];
  const soon = new Promise<void>((resolve) => committer.appendSoon({ component: "cli", type: "closed" }, () => (order.push("closed"), resolve())));
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(committer.pending(), 1, "not written at the end of its own turn");
  const urgent = new Promise<void>((resolve) => committer.append({ component: "cli", type: "decided" }, () => (order.push("decided"), resolve())));
  await Promise.all([soon, urgent]);
  assert.equal(committer.batches(), 1, "one transaction for both");
  assert.deepEqual(order, ["closed", "decided"]);

  const started = performance.now();
  const alone = new Promise<AuditWriteError | null>((resolve) => committer.appendSoon({ component: "cli", type: "alone" }, resolve));
  assert.equal(await alone, null);
  const waited = performance.now() - started;
  assert.ok(waited >= 45, `committed after the deferral (${waited.toFixed(1)} ms)`);
  assert.equal(committer.batches(), 2);
  log.close();
  assert.deepEqual(
    readAuditRecords(path, { limit: 10 }).map((record) => record.type),
    ["closed", "decided", "alone"],
  );
});

test("flush writes deferred records at once (a service closing its log loses none)", () => {
  const { path, log } = freshLog();
  const committer = createGroupCommitter(log, { deferMs: 60_000 });
  let told = 0;
  for (let index = 0; index < 3; index += 1) committer.appendSoon({ component: "cli", type: "closed", index }, (error) => (told += error === null ? 1 : 0));
  committer.flush();
  assert.equal(told, 3);
  log.close();
  assert.equal(readAuditRecords(path, { limit: 10 }).length, 3);
});
