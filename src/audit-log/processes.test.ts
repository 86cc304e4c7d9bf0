// Requirements (issue 5, "Audit log"): a writer killed with SIGKILL mid-write leaves a log that reopens with an intact
// chain and continues; several processes appending to one file keep a single linear, verifiable chain. Real child
// processes (src/audit-log/fixtures/append-writer.ts) on real SQLite files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcessByStdio } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { openAuditLog, readAuditRecords, verifyAuditLog } from "./index.ts";
import { temporaryDirectory } from "./test-helpers.ts";

const writerScript = new URL("./fixtures/append-writer.ts", import.meta.url).pathname;

interface Writer {
  child: ChildProcessByStdio<Writable, Readable, null>;
  /** Resolves with the first stdout line matching, or rejects after `timeoutMs`. */
  waitFor(predicate: (line: string) => boolean, timeoutMs: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startWriter(path: string, keyFile: string, count: number, every: number, name: string, batch = 1): Writer {
  const child = spawn(process.execPath, [writerScript, path, keyFile, String(count), String(every), name, String(batch)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let buffered = "";
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    lines.push(...parts);
    for (const waiter of waiters) waiter();
  });
  const exited = once(child, "exit").then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  return {
    child,
    exited,
    waitFor: (predicate, timeoutMs) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find(predicate);
          if (found === undefined) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`writer ${name}: no matching line within ${timeoutMs} ms (got ${lines.slice(-3).join(" | ")})`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        void exited.then(() => {
          check();
        });
        waiters.add(check);
        check();
      }),
  };
}

test("a writer killed with SIGKILL in the middle of a stream of appends leaves a log that verifies, reopens and continues", { timeout: 120_000 }, async () => {
  const directory = temporaryDirectory();
  const path = join(directory, "audit.db");
  const keyFile = join(directory, "audit.pem");
  let seqBeforeRound = 0;
  // Three kills at arbitrary points of a stream of appends and checkpoints (every 7 records).
  for (let round = 1; round <= 3; round += 1) {
    const writer = startWriter(path, keyFile, 1_000_000, 7, `writer-${round}`);
    await writer.waitFor((line) => line === "open", 20_000);
    writer.child.stdin.write("go\n");
    const target = seqBeforeRound + 40 + round * 3;
    await writer.waitFor((line) => Number(line) >= target, 30_000);
    writer.child.kill("SIGKILL");
    const exit = await writer.exited;
    assert.equal(exit.signal, "SIGKILL");
    const afterKill = verifyAuditLog(path, { publicKey: readFileSync(`${keyFile}.pub`, "utf8") });
    assert.ok(afterKill.ok, `round ${round}: ${JSON.stringify(afterKill)}`);
    assert.ok(afterKill.records >= target, `round ${round}: the records appended before the kill are there`);
    assert.ok(afterKill.uncheckpointed < 7, "a crash leaves fewer than checkpointEvery records unsigned");
    seqBeforeRound = afterKill.records;
  }
  const log = openAuditLog({ path, signingKeyFile: keyFile, checkpointEvery: 7 });
  const reopened = verifyAuditLog(path);
  assert.ok(reopened.ok);
  assert.equal(reopened.uncheckpointed, 0, "the reopening writer's checkpoint covers what the killed writer left unsigned");
  const next = log.append({ component: "mcp-guard", type: "tool-call", writer: "after-crash" });
  assert.equal(next.seq, seqBeforeRound + 1);
  assert.equal(next.prevHash, reopened.ok ? reopened.head.hash : "");
  log.close();
  const final = verifyAuditLog(path, { publicKey: readFileSync(`${keyFile}.pub`, "utf8") });
  assert.ok(final.ok, JSON.stringify(final));
  assert.equal(final.records, seqBeforeRound + 1);
});

test("two processes appending concurrently to one file (and racing to create its key) keep one linear, verifiable chain", { timeout: 120_000 }, async () => {
  const directory = temporaryDirectory();
  const path = join(directory, "audit.db");
  const keyFile = join(directory, "keys", "audit.pem");
  const perWriter = 300;
  // Different checkpoint intervals: the verifier must accept the mix (each writer records its own on open).
  const writers = [startWriter(path, keyFile, perWriter, 4, "left"), startWriter(path, keyFile, perWriter, 50, "right")];
  await Promise.all(writers.map((writer) => writer.waitFor((line) => line === "open", 20_000)));
  for (const writer of writers) writer.child.stdin.write("go\n");
  // Verify while they write: a reader sees a consistent snapshot, never a half-written append.
  let verifiedDuringWrites = 0;
  const allExited = Promise.all(writers.map((writer) => writer.exited));
  let finished = false;
  void allExited.then(() => (finished = true));
  for (let attempt = 0; attempt < 200 && !finished; attempt += 1) {
    const during = verifyAuditLog(path);
    assert.ok(during.ok, JSON.stringify(during));
    verifiedDuringWrites += 1;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const exits = await allExited;
  assert.deepEqual(
    exits.map((exit) => exit.code),
    [0, 0],
  );
  assert.ok(verifiedDuringWrites > 0);
  const result = verifyAuditLog(path, { publicKey: readFileSync(`${keyFile}.pub`, "utf8") });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.records, 2 * perWriter);
  assert.equal(result.signedBy.length, 1, "both writers ended up with the same generated key");
  const records = readAuditRecords(path, { limit: 10_000 });
  assert.deepEqual(
    records.map((record) => record.seq),
    Array.from({ length: 2 * perWriter }, (_, index) => index + 1),
  );
  for (const name of ["left", "right"]) {
    const indexes = records.filter((record) => record.data.writer === name).map((record) => record.data.index);
    assert.deepEqual(indexes, Array.from({ length: perWriter }, (_, index) => index), `${name}'s records are all there, in its order`);
  }
  const switches = records.filter((record, index) => index > 0 && record.data.writer !== records[index - 1]?.data.writer).length;
  assert.ok(switches >= 2, `the writers actually interleaved (${switches} switches)`);
});

test("a process appending batches (one transaction each) and one appending singly share one chain; each batch stays contiguous", { timeout: 120_000 }, async () => {
  const directory = temporaryDirectory();
  const path = join(directory, "audit.db");
  const keyFile = join(directory, "audit.pem");
  const perWriter = 400;
  const writers = [startWriter(path, keyFile, perWriter, 25, "batches", 8), startWriter(path, keyFile, perWriter, 25, "singles")];
  await Promise.all(writers.map((writer) => writer.waitFor((line) => line === "open", 20_000)));
  for (const writer of writers) writer.child.stdin.write("go\n");
  const exits = await Promise.all(writers.map((writer) => writer.exited));
  assert.deepEqual(
    exits.map((exit) => exit.code),
    [0, 0],
  );
  const result = verifyAuditLog(path, { publicKey: readFileSync(`${keyFile}.pub`, "utf8") });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.records, 2 * perWriter);
  const records = readAuditRecords(path, { limit: 10_000 });
  const batched = records.filter((record) => record.data.writer === "batches");
  assert.deepEqual(
    batched.map((record) => record.data.index),
    Array.from({ length: perWriter }, (_, index) => index),
  );
  for (let start = 0; start < perWriter; start += 8) {
    const seqs = batched.slice(start, start + 8).map((record) => record.seq);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, offset) => (seqs[0] as number) + offset), `batch at ${start} is contiguous`);
  }
  const switches = records.filter((record, index) => index > 0 && record.data.writer !== records[index - 1]?.data.writer).length;
  assert.ok(switches >= 2, `the writers actually interleaved (${switches} switches)`);
});
