// The runner's admission alone: slots with a bounded queue, and per-caller quotas, without a server or a sandbox.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createCallerQuota, createRunSlots } from "./server-admission.ts";
import { SandboxTaskError } from "./task.ts";

function observed() {
  const seen = { running: 0, queued: 0 };
  return { seen, observer: { running: (count: number) => (seen.running = count), queued: (count: number) => (seen.queued = count) } };
}

test("slots: the first runs start at once, the next wait in order, and a full queue refuses as busy", async () => {
  const { seen, observer } = observed();
  const slots = createRunSlots(1, 1, observer);
  const never = new AbortController().signal;
  const first = await slots.acquire(never);
  assert.equal(seen.running, 1);
  const second = slots.acquire(never);
  assert.equal(seen.queued, 1);
  await assert.rejects(slots.acquire(never), (error: unknown) => error instanceof SandboxTaskError && /busy \(1 running, 1 waiting\)/.test(error.message));
  first();
  const releaseSecond = await second;
  assert.deepEqual(seen, { running: 1, queued: 0 });
  releaseSecond();
  assert.equal(seen.running, 0);
});

test("slots: a waiter whose caller goes away leaves the queue and is never granted", async () => {
  const { seen, observer } = observed();
  const slots = createRunSlots(1, 4, observer);
  const first = await slots.acquire(new AbortController().signal);
  const leaving = new AbortController();
  const waiting = slots.acquire(leaving.signal);
  leaving.abort();
  await assert.rejects(waiting, /cancelled while waiting for a slot/);
  assert.equal(seen.queued, 0);
  first();
  assert.equal(seen.running, 0, "the slot went to nobody");
});

test("quota: runs in progress and starts per minute are counted per caller", () => {
  let clock = 0;
  const quota = createCallerQuota({ concurrentRuns: 1, runsPerMinute: 2 }, () => clock);
  assert.equal(quota.problem("alice"), undefined);
  quota.started("alice");
  assert.match(quota.problem("alice") ?? "", /alice already has 1 runs in progress/);
  assert.equal(quota.problem("bob"), undefined, "another caller is not affected");
  quota.ended("alice");
  quota.started("alice");
  quota.ended("alice");
  assert.match(quota.problem("alice") ?? "", /started 2 runs in the last minute/);
  clock += 60_001;
  assert.equal(quota.problem("alice"), undefined, "the window slides");
});
