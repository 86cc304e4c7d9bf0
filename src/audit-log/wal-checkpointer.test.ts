// SQLite WAL checkpoints in a worker thread: the write-ahead log reaches the database file without any append doing it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../shared/testing.ts";
import { openAuditLog, verifyAuditLog } from "./index.ts";
import { temporaryDirectory } from "./test-helpers.ts";

function appendSome(log: ReturnType<typeof openAuditLog>, count: number): void {
  for (let index = 0; index < count; index += 1) log.append({ component: "egress-proxy", type: "egress-decision", index, host: "api.example.com" });
}

test("background WAL checkpoints fold the log into the database file while appends never run one", async () => {
  const directory = temporaryDirectory();
  const background = openAuditLog({ path: join(directory, "background.db"), walCheckpoints: "background" });
  const inline = openAuditLog({ path: join(directory, "inline.db") });
  // 300 single-record appends write ~300 WAL pages: below SQLite's own threshold (1,000), so with inline checkpoints
  // nothing reaches the database file yet, and whatever does in the background log was the worker's doing.
  appendSome(background, 300);
  appendSome(inline, 300);
  await eventually(() => statSync(background.path).size > 4096 || undefined, 5000, "the worker's checkpoint to reach the database file");
  assert.ok(statSync(inline.path).size <= 4096, "with inline checkpoints nothing was folded in yet (the control)");
  // Appends go on while the worker checkpoints; the chain is whole.
  appendSome(background, 200);
  background.close();
  inline.close();
  // Stopped with the log, the worker closes its connection; the last connection to close folds in the rest.
  await eventually(() => !existsSync(`${background.path}-wal`) || undefined, 5000, "the worker's connection to close");
  const verified = verifyAuditLog(background.path);
  assert.equal(verified.ok, true, JSON.stringify(verified));
  assert.equal(verified.records, 500);
});

test("an unknown walCheckpoints value is refused with the values it takes", () => {
  assert.throws(() => openAuditLog({ path: join(temporaryDirectory(), "audit.db"), walCheckpoints: "worker" as never }), /walCheckpoints must be "inline" or "background", not "worker"/);
});

test("a worker that cannot do its job reports it once, so that the writer hands checkpoints back to SQLite", async () => {
  const { startWalCheckpointer } = await import("./wal-checkpointer.ts");
  const reasons: unknown[] = [];
  // A database under a directory that does not exist: the worker's own connection fails to open.
  startWalCheckpointer(join(temporaryDirectory(), "missing", "audit.db"), "NORMAL", (error) => reasons.push(error));
  await eventually(() => reasons.length > 0 || undefined, 5000, "the worker's failure to be reported");
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(reasons.length, 1, "reported once (error and exit together)");
  assert.match(String((reasons[0] as Error).message), /unable to open|cannot open|exited/i);
});

test("every writer in a process shares one checkpoint worker, which ends with the last of them", async () => {
  const { walCheckpointerState } = await import("./wal-checkpointer.ts");
  const { threadId } = await import("node:worker_threads");
  const directory = temporaryDirectory();
  const before = walCheckpointerState();
  assert.equal(before.running, false, `no writer open yet (main thread ${threadId})`);
  // Four services of one `perimeter up` on the same database, and one on another file.
  const shared = [1, 2, 3, 4].map(() => openAuditLog({ path: join(directory, "audit.db"), walCheckpoints: "background" }));
  const other = openAuditLog({ path: join(directory, "other.db"), walCheckpoints: "background" });
  assert.deepEqual(walCheckpointerState(), { running: true, files: 2 });
  for (const log of shared) appendSome(log, 100);
  appendSome(other, 300);
  // Both files are folded in by the one worker.
  await eventually(() => (statSync(join(directory, "audit.db")).size > 4096 && statSync(join(directory, "other.db")).size > 4096) || undefined, 5000, "both files to be checkpointed");
  for (const log of shared.slice(0, 3)) log.close();
  assert.deepEqual(walCheckpointerState(), { running: true, files: 2 }, "the file stays while one writer has it open");
  shared[3]?.close();
  assert.deepEqual(walCheckpointerState(), { running: true, files: 1 });
  other.close();
  assert.deepEqual(walCheckpointerState(), { running: false, files: 0 });
  await eventually(() => (!existsSync(join(directory, "audit.db-wal")) && !existsSync(join(directory, "other.db-wal"))) || undefined, 5000, "the worker's connections to close");
  const verified = verifyAuditLog(join(directory, "audit.db"));
  assert.equal(verified.ok, true, JSON.stringify(verified));
  assert.equal(verified.records, 400);
  // A writer after that starts a new worker.
  const again = openAuditLog({ path: join(directory, "audit.db"), walCheckpoints: "background" });
  assert.equal(walCheckpointerState().running, true);
  again.close();
  assert.equal(walCheckpointerState().running, false);
});

test("a file the worker cannot checkpoint is handed back alone; the worker goes on with the others", async () => {
  const { startWalCheckpointer, walCheckpointerState } = await import("./wal-checkpointer.ts");
  const directory = temporaryDirectory();
  const good = openAuditLog({ path: join(directory, "good.db"), walCheckpoints: "background" });
  const reasons: unknown[] = [];
  const broken = startWalCheckpointer(join(directory, "missing", "audit.db"), "NORMAL", (error) => reasons.push(error));
  await eventually(() => reasons.length > 0 || undefined, 5000, "the broken file to be reported");
  assert.match(String((reasons[0] as Error).message), /missing\/audit\.db.*(unable to open|cannot open)/i);
  assert.deepEqual(walCheckpointerState(), { running: true, files: 1 }, "the good file is still checkpointed");
  broken.stop();
  appendSome(good, 300);
  await eventually(() => statSync(good.path).size > 4096 || undefined, 5000, "the good file to be checkpointed");
  good.close();
  assert.equal(walCheckpointerState().running, false);
});
