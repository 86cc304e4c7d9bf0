// The chain monitor verifies on the dashboard's own thread, in slices (no worker thread: inside `perimeter up` a worker
// per round cost ~0.5 s of CPU and ~40 MiB of RSS that stayed), and leaves a source that is not there yet pending.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { openAuditLog } from "../audit-log/index.ts";
import { temporaryDirectory } from "../audit-log/test-helpers.ts";
import { eventually } from "../shared/testing.ts";
import { createChainMonitor } from "./chain.ts";

function threads(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1]);
}

function writeLog(path: string, records: number): void {
  const log = openAuditLog({ path, checkpointEvery: 500 });
  for (let index = 0; index < records; index += 1) log.append({ component: "sandbox", type: "sandbox-run", caller: "hermes", index, argv: ["sh", "-c", `echo ${index}`] });
  log.close();
}

test("a large log is verified on this thread in short slices: the event loop keeps answering, no thread is started", async () => {
  const path = join(temporaryDirectory(), "audit.db");
  writeLog(path, 6000);
  const monitor = createChainMonitor({ sources: [{ name: "sandbox", path }], minIntervalMs: 60_000 });
  const before = threads();
  let most = before;
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const watch = setInterval(() => (most = Math.max(most, threads())), 2);
  const started = performance.now();
  await monitor.check();
  const took = performance.now() - started;
  clearInterval(watch);
  delay.disable();
  await monitor.close();
  const [status] = monitor.status();
  assert.equal(status?.state, "verified", JSON.stringify(status));
  assert.equal(status?.state === "verified" ? status.records : 0, 6000);
  assert.equal(most, before, "no thread was started for the verification");
  // The whole verification is long next to one slice (8 ms): the event loop ran between slices.
  assert.ok(took > 40, `the verification took ${took.toFixed(0)} ms, too short to show slicing`);
  const worstMs = delay.max / 1e6;
  assert.ok(worstMs < Math.max(50, took / 2), `the event loop was held ${worstMs.toFixed(1)} ms at once during a ${took.toFixed(0)} ms verification`);
});

test("a source that is not there yet stays pending and is verified within a second of being there", async () => {
  const path = join(temporaryDirectory(), "audit.db");
  writeLog(path, 10);
  let ready = false;
  const monitor = createChainMonitor({ sources: [{ name: "llm-proxy", path }], minIntervalMs: 60_000, ready: () => ready });
  try {
    await monitor.check();
    assert.deepEqual(monitor.status(), [{ source: "llm-proxy", state: "pending" }]);
    ready = true;
    const started = performance.now();
    const status = await eventually(() => (monitor.status()[0]?.state === "verified" ? monitor.status()[0] : undefined), 5000, "the source to be verified");
    assert.ok(performance.now() - started < 2500, "the next round came within about a second, not after minIntervalMs");
    assert.equal(status?.state === "verified" ? status.records : 0, 10);
  } finally {
    await monitor.close();
  }
});

test("closing the monitor stops a verification between two slices", async () => {
  const path = join(temporaryDirectory(), "audit.db");
  writeLog(path, 6000);
  const monitor = createChainMonitor({ sources: [{ name: "sandbox", path }], minIntervalMs: 60_000 });
  const running = monitor.check();
  await new Promise((resolve) => setTimeout(resolve, 5));
  const started = performance.now();
  await monitor.close();
  await running;
  assert.ok(performance.now() - started < 100, "close waited for the slice in progress only");
  assert.notEqual(monitor.status()[0]?.state, "verified");
});

test("a source that never arrives does not make the others be verified every second", async () => {
  const path = join(temporaryDirectory(), "audit.db");
  writeLog(path, 10);
  const monitor = createChainMonitor({ sources: [{ name: "sandbox", path }, { name: "llm-proxy", path: join(temporaryDirectory(), "never.db") }], minIntervalMs: 3000, ready: (name) => name !== "llm-proxy" });
  const seen = new Set<string>();
  try {
    void monitor.check();
    const until = performance.now() + 2500;
    while (performance.now() < until) {
      const status = monitor.status()[0];
      if (status?.state === "verified") seen.add(status.checkedAt);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await monitor.close();
  }
  assert.equal(seen.size, 1, `the ready source was verified ${seen.size} times in 2.5 s with a 3 s interval`);
  assert.deepEqual(monitor.status()[1], { source: "llm-proxy", state: "pending" });
});

test("a url source's copy left by an earlier run with checkpoints but no records is verified (shown broken), not left pending", async () => {
  const { createRemoteMirror } = await import("./remote-source.ts");
  const path = join(temporaryDirectory(), "copy.db");
  // A copy whose records were all removed while its checkpoints (one covering record 4) remain.
  const log = openAuditLog({ path, checkpointEvery: 2 });
  for (let index = 0; index < 5; index += 1) log.append({ component: "llm-proxy", type: "llm-request", index });
  log.close();
  const { DatabaseSync } = await import("node:sqlite");
  const editor = new DatabaseSync(path);
  editor.exec("DROP TRIGGER audit_log_records_no_delete; DELETE FROM audit_log_records;");
  editor.close();
  const mirror = createRemoteMirror({ name: "llm-proxy", url: "http://127.0.0.1:9", token: "feed-token-for-a-copy-0123", path });
  const monitor = createChainMonitor({ sources: [{ name: "llm-proxy", path }], minIntervalMs: 60_000, ready: () => mirror.copied() });
  try {
    await monitor.check();
    const status = monitor.status()[0];
    assert.equal(status?.state, "broken", JSON.stringify(status));
    assert.match(status?.state === "broken" ? status.reason : "", /were removed/);
  } finally {
    await monitor.close();
    mirror.close();
  }
});
