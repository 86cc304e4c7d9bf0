// The one recorder every service records through (issue 12, items 2 and 5): a decision is committed before the
// caller hears of it; a record whose fields the log cannot hold keeps its decision with placeholders (never dropped);
// a failed write reaches the caller, is logged whole, and turns the recorder unhealthy until a write succeeds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { AuditWriteError, openAuditLog, readAuditRecords, verifyAuditLog } from "./index.ts";
import type { AuditLog } from "./index.ts";
import { createAuditRecorder } from "./recorder.ts";
import type { RecorderLog } from "./recorder.ts";
import { temporaryDirectory } from "./test-helpers.ts";

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

function freshLog(): { path: string; log: AuditLog } {
  const path = join(temporaryDirectory(), "audit.db");
  return { path, log: openAuditLog({ path }) };
}

/** The log, with a switch that makes every write fail as a full disk would. */
function switchable(log: AuditLog): { sink: RecorderLog; fail: (on: boolean) => void } {
  let failing = false;
  const refuse = () => {
    throw new AuditWriteError("cannot write to the audit log: disk I/O error (stand-in for a full disk)");
  };
  return {
    fail: (on) => (failing = on),
    sink: {
      append: (event) => (failing ? refuse() : log.append(event)),
      prepare: (event) => log.prepare(event),
      appendPrepared: (events) => (failing ? refuse() : log.appendPrepared(events)),
    },
  };
}

function nested(depth: number): unknown {
  let value: unknown = "payload";
  for (let level = 0; level < depth; level += 1) value = { deeper: value };
  return value;
}

test("record resolves only once the decision is committed, with the record (its seq names the decision)", async () => {
  const { path, log } = freshLog();
  const recorder = createAuditRecorder(log, { component: "llm-proxy", logger: pino({ level: "silent" }) });
  const pending = recorder.record({ type: "llm-request", decision: "allow" });
  // Group commit: queued in this turn, not yet in the file.
  assert.equal(readAuditRecords(path).length, 0);
  const record = await pending;
  assert.ok(record !== undefined);
  assert.equal(record.type, "llm-request");
  assert.equal(readAuditRecords(path).at(-1)?.seq, record.seq);
  const settled = await recorder.record({ type: "llm-result", decisionSeq: record.seq, tokensIn: 3 });
  assert.equal(settled?.data.decisionSeq, record.seq);
  log.close();
  assert.equal(verifyAuditLog(path).ok, true);
});

test("a field nested 70 levels deep is kept as a placeholder with its size and sha256; the decision is recorded", async () => {
  const { path, log } = freshLog();
  const { logger, lines } = capturingLogger();
  const recorder = createAuditRecorder(log, { component: "mcp-guard", logger });
  const args = { padding: nested(70) };
  const record = await recorder.record({ type: "tool-call", agent: "hermes", tool: "github__delete_repo", decision: "deny", reason: "tool not allowed", arguments: args });
  assert.ok(record !== undefined);
  log.close();
  const stored = readAuditRecords(path).find((candidate) => candidate.seq === record.seq);
  assert.equal(stored?.data.decision, "deny");
  assert.equal(stored?.data.tool, "github__delete_repo");
  const field = stored?.data.arguments as { unrecordable: string; bytes: number; sha256: string };
  const text = JSON.stringify(args);
  assert.match(field.unrecordable, /nested more than 64 levels/);
  assert.equal(field.bytes, Buffer.byteLength(text));
  assert.equal(field.sha256, createHash("sha256").update(text).digest("hex"));
  assert.ok(lines.some((line) => line.event === "audit-placeholder"));
  assert.equal(recorder.healthy(), true);
  assert.equal(verifyAuditLog(path).ok, true);
});

test("a record over the size limit keeps its small fields and replaces the large ones", async () => {
  const { path, log } = freshLog();
  const recorder = createAuditRecorder(log, { component: "sandbox", logger: pino({ level: "silent" }) });
  const huge = "x".repeat(2 * 1024 * 1024);
  await recorder.record({ type: "sandbox-run", caller: "hermes", command: ["echo", huge], exitCode: 0 });
  log.close();
  const stored = readAuditRecords(path).at(-1);
  assert.equal(stored?.data.caller, "hermes");
  assert.equal(stored?.data.exitCode, 0);
  assert.equal((stored?.data.command as { bytes: number }).bytes, Buffer.byteLength(JSON.stringify(["echo", huge])));
});

test("a failed write rejects, logs the whole record, turns the recorder unhealthy, and the next good write heals it", async () => {
  const { path, log } = freshLog();
  const { sink, fail } = switchable(log);
  const { logger, lines } = capturingLogger();
  let failures = 0;
  const recorder = createAuditRecorder(sink, { component: "llm-proxy", logger, onFailure: () => (failures += 1) });
  fail(true);
  await assert.rejects(recorder.record({ type: "llm-request", requestId: "r-1", decision: "allow" }), AuditWriteError);
  assert.equal(recorder.healthy(), false);
  assert.equal(failures, 1);
  const logged = lines.find((line) => line.event === "audit-error") as { audit: { requestId: string } } | undefined;
  assert.equal(logged?.audit.requestId, "r-1");
  // A refusal resolves anyway (it is refused either way), but is still counted and logged.
  await recorder.refusal({ type: "llm-request", requestId: "r-2", decision: "deny" });
  assert.equal(failures, 2);
  assert.ok(lines.some((line) => (line.audit as { requestId?: string } | undefined)?.requestId === "r-2"));
  fail(false);
  await recorder.record({ type: "llm-request", requestId: "r-3", decision: "allow" });
  assert.equal(recorder.healthy(), true);
  log.close();
  assert.deepEqual(
    readAuditRecords(path).map((record) => record.data.requestId),
    ["r-3"],
  );
});

test("a soon record rides with the next commit, and works without group commit too", async () => {
  const { path, log } = freshLog();
  const recorder = createAuditRecorder(log, { component: "egress-proxy", logger: pino({ level: "silent" }), deferMs: 60_000 });
  recorder.soon({ type: "egress-connection-closed", id: 1 });
  assert.equal(recorder.pending(), 1);
  await recorder.record({ type: "egress-decision", id: 2 });
  assert.deepEqual(
    readAuditRecords(path).map((record) => record.data.id),
    [1, 2],
  );
  // An append-only sink (no prepare): written at once, placeholders still work.
  const plain = createAuditRecorder({ append: (event) => log.append(event) }, { component: "cli", logger: pino({ level: "silent" }) });
  const record = await plain.record({ type: "cli-test", deep: nested(80) });
  assert.equal((record?.data.deep as { unrecordable: string }).unrecordable.length > 0, true);
  log.close();
});
