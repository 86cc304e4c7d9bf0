// verifyAuditLogInSlices against a file written by an attacker: whatever the file holds, the verifier yields to the
// event loop every few milliseconds (perimeter up's services share the dashboard's thread) and stops when aborted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { openAuditLog } from "./index.ts";
import { temporaryDirectory } from "./test-helpers.ts";

test("attack: 40,000 forged unsigned checkpoints do not hold the thread: the sliced verifier yields through them and stops when aborted", async () => {
  const { DatabaseSync } = await import("node:sqlite");
  const { verifyAuditLogInSlices } = await import("./index.ts");
  const path = join(temporaryDirectory(), "audit.db");
  const log = openAuditLog({ path });
  for (let index = 0; index < 10; index += 1) log.append({ component: "mcp-guard", type: "test", index });
  log.close();
  // Inserts are not blocked by the log's triggers (only updates and deletes): rows sorted before the real ones.
  const database = new DatabaseSync(path);
  database.exec("BEGIN");
  const insert = database.prepare("INSERT INTO audit_log_checkpoints (id, record_seq, record_hash, time, every, reason, public_key, signature) VALUES (?, 0, ?, 't', 1000, 'open', NULL, NULL)");
  for (let index = 0; index < 40_000; index += 1) insert.run(-1 - index, "0".repeat(64));
  database.exec("COMMIT");
  database.close();
  let last = performance.now();
  let worstGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worstGap = Math.max(worstGap, now - last);
    last = now;
  }, 5);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error("stopped by the test")), 100);
  const started = performance.now();
  try {
    await assert.rejects(verifyAuditLogInSlices(path, { signal: controller.signal }), /stopped by the test/);
  } finally {
    clearInterval(timer);
  }
  assert.ok(performance.now() - started < 1000, `the abort took ${(performance.now() - started).toFixed(0)} ms to be honoured`);
  assert.ok(worstGap < 100, `the event loop was held ${worstGap.toFixed(0)} ms at once`);
});
