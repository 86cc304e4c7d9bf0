// Audit-log append cost vs its peer, a plain SQLite insert of the same event without the chain, in the same run.
// Both use WAL and one transaction per event, as a service writes them, at the same synchronous setting (NORMAL, the
// default, and FULL). Also: the cost of signing every record (checkpointEvery 1), group commit (32 events per
// transaction, as the proxies write under load, against plain inserts batched alike), and verify throughput.
// Bounded: each scenario stops after ROUNDS appends or SCENARIO_MS, whichever comes first (< 30 s in all).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { openAuditLog, verifyAuditLog } from "../../src/audit-log/index.ts";

const ROUNDS = 5000;
/** Per scenario; the scenarios share their sum. */
const SCENARIO_MS = 4000;
const WARMUP = 200;
const CHUNK = 100;

function event(index: number) {
  return {
    component: "mcp-guard" as const,
    type: "tool-call",
    agent: "hermes",
    server: "github",
    tool: "github__create_issue",
    arguments: { owner: "my-org", repo: "infra", title: `Issue ${index}`, body: "Redacted body of moderate length ".repeat(4) },
    decision: "allow",
    reason: "tools.allow matched create_issue",
    approver: null,
    toolDefinitionHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    latencyMs: 12.5,
    resultBytes: 2048,
  };
}

interface Scenario {
  name: string;
  append: (index: number) => void;
  latencies: number[];
  busyMs: number;
}

interface Figures {
  name: string;
  count: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/**
 * Runs the scenarios interleaved in chunks of CHUNK appends, so that load from other processes on this shared
 * machine (and the disk's moods) falls on all of them alike instead of on whichever ran first.
 */
function measure(scenarios: Scenario[]): Figures[] {
  for (const scenario of scenarios) for (let index = 0; index < WARMUP; index += 1) scenario.append(index);
  const started = performance.now();
  for (let done = 0; done < ROUNDS && performance.now() - started < SCENARIO_MS * scenarios.length; done += CHUNK) {
    for (const scenario of scenarios) {
      const chunkStarted = performance.now();
      for (let index = done; index < done + CHUNK; index += 1) {
        const before = performance.now();
        scenario.append(index);
        scenario.latencies.push(performance.now() - before);
      }
      scenario.busyMs += performance.now() - chunkStarted;
    }
  }
  return scenarios.map(({ name, latencies, busyMs }) => {
    latencies.sort((left, right) => left - right);
    const at = (fraction: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * fraction))] ?? Number.NaN;
    return { name, count: latencies.length, perSecond: (latencies.length / busyMs) * 1000, p50: at(0.5), p99: at(0.99) };
  });
}

const directory = mkdtempSync(join(tmpdir(), "perimeter-bench-audit-"));
try {
  const plainLog = (synchronous: "NORMAL" | "FULL", name = `plain-${synchronous}`) => {
    const database = new DatabaseSync(join(directory, `${name}.db`));
    database.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${synchronous}; CREATE TABLE events (id INTEGER PRIMARY KEY, time TEXT, component TEXT, type TEXT, data TEXT)`);
    const insert = database.prepare("INSERT INTO events (time, component, type, data) VALUES (?, ?, ?, ?)");
    return {
      database,
      append: (index: number) => {
        const { component, type, ...data } = event(index);
        insert.run(new Date().toISOString(), component, type, JSON.stringify(data));
      },
    };
  };
  const plainNormal = plainLog("NORMAL");
  const plainFull = plainLog("FULL");
  const chainedPath = join(directory, "audit.db");
  const keyFile = join(directory, "audit.pem");
  const chained = openAuditLog({ path: chainedPath, signingKeyFile: keyFile, checkpointEvery: 1000 });
  const everyRecord = openAuditLog({ path: join(directory, "every.db"), signingKeyFile: keyFile, checkpointEvery: 1 });
  const chainedFull = openAuditLog({ path: join(directory, "full.db"), signingKeyFile: keyFile, checkpointEvery: 1000, synchronous: "full" });
  const scenario = (name: string, append: (index: number) => void): Scenario => ({ name, append, latencies: [], busyMs: 0 });
  const results = measure([
    scenario("peer: plain SQLite insert (synchronous=NORMAL)", plainNormal.append),
    scenario("audit log (default: NORMAL, checkpoint/1000)", (index) => chained.append(event(index))),
    scenario("audit log, NORMAL, signed checkpoint per record", (index) => everyRecord.append(event(index))),
    scenario("peer: plain SQLite insert (synchronous=FULL)", plainFull.append),
    scenario("audit log, synchronous FULL, checkpoint/1000", (index) => chainedFull.append(event(index))),
  ]);
  plainNormal.database.close();
  plainFull.database.close();
  chained.close();
  everyRecord.close();
  chainedFull.close();
  // Each audit-log scenario is compared with the plain insert of the same durability.
  const peerOf = (figures: Figures) => (figures.name.includes("FULL") ? results[3] : results[0]) as Figures;

  console.log(`audit-log append (${ROUNDS} events of ~600 bytes after ${WARMUP} warm-up, WAL, one transaction each, in ${tmpdir()})`);
  console.log("scenario".padEnd(50), "events/s".padStart(10), "p50 ms".padStart(9), "p99 ms".padStart(9), "p50 vs peer".padStart(12));
  for (const figures of results) {
    console.log(
      figures.name.padEnd(50),
      figures.perSecond.toFixed(0).padStart(10),
      figures.p50.toFixed(3).padStart(9),
      figures.p99.toFixed(3).padStart(9),
      `${(figures.p50 / peerOf(figures).p50).toFixed(2)}x`.padStart(12),
    );
  }

  // Group commit (what the proxies do under load): BATCH events per transaction, against plain inserts batched alike.
  const BATCH = 32;
  const batchedChain = openAuditLog({ path: join(directory, "batched.db"), signingKeyFile: keyFile, checkpointEvery: 1000 });
  const batchedPlain = plainLog("NORMAL", "plain-batched");
  const plainBatch = (start: number) => {
    batchedPlain.database.exec("BEGIN IMMEDIATE");
    for (let index = start; index < start + BATCH; index += 1) batchedPlain.append(index);
    batchedPlain.database.exec("COMMIT");
  };
  const chainBatch = (start: number) => batchedChain.appendMany(Array.from({ length: BATCH }, (_, offset) => event(start + offset)));
  const batchTimes = { plain: 0, chain: 0, events: 0 };
  for (let start = 0; start < WARMUP; start += BATCH) {
    plainBatch(start);
    chainBatch(start);
  }
  const batchStarted = performance.now();
  for (let start = 0; start < ROUNDS && performance.now() - batchStarted < SCENARIO_MS; start += BATCH) {
    let before = performance.now();
    plainBatch(start);
    batchTimes.plain += performance.now() - before;
    before = performance.now();
    chainBatch(start);
    batchTimes.chain += performance.now() - before;
    batchTimes.events += BATCH;
  }
  batchedPlain.database.close();
  batchedChain.close();
  const perEvent = (ms: number) => (ms * 1000) / batchTimes.events;
  console.log(
    `group commit, ${BATCH} events per transaction: audit log ${perEvent(batchTimes.chain).toFixed(1)} µs/event (${((batchTimes.events / batchTimes.chain) * 1000).toFixed(0)}/s), ` +
      `plain insert ${perEvent(batchTimes.plain).toFixed(1)} µs/event → ${(batchTimes.chain / batchTimes.plain).toFixed(2)}x`,
  );

  const verifyStarted = performance.now();
  const verification = verifyAuditLog(chainedPath);
  const verifyMs = performance.now() - verifyStarted;
  if (!verification.ok) throw new Error(`benchmark log does not verify: ${verification.reason}`);
  console.log(`verify: ${verification.records} records in ${verifyMs.toFixed(0)} ms (${((verification.records / verifyMs) * 1000).toFixed(0)} records/s)`);
} finally {
  rmSync(directory, { recursive: true, force: true });
}
