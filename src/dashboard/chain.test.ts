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
