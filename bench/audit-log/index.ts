// Audit-log append cost vs its peer, a plain SQLite insert of the same event without the chain, in the same run.
// Both use WAL and synchronous=FULL (the audit log's durability) and one transaction per event, as a service would
// write them. Also: the cost of signing every record (checkpointEvery 1), and verify throughput.
// Bounded: each scenario stops after ROUNDS appends or SCENARIO_MS, whichever comes first (< 30 s in all).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { openAuditLog, verifyAuditLog } from "../../src/audit-log/index.ts";

const ROUNDS = 5000;
/** Per scenario; the three share 3 x this. */
const SCENARIO_MS = 6000;
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
  const plain = new DatabaseSync(join(directory, "plain.db"));
  plain.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE events (id INTEGER PRIMARY KEY, time TEXT, component TEXT, type TEXT, data TEXT)");
  const insert = plain.prepare("INSERT INTO events (time, component, type, data) VALUES (?, ?, ?, ?)");
  const chainedPath = join(directory, "audit.db");
  const chained = openAuditLog({ path: chainedPath, signingKeyFile: join(directory, "audit.pem"), checkpointEvery: 1000 });
  const everyRecord = openAuditLog({ path: join(directory, "every.db"), signingKeyFile: join(directory, "audit.pem"), checkpointEvery: 1 });
  const scenario = (name: string, append: (index: number) => void): Scenario => ({ name, append, latencies: [], busyMs: 0 });
  const results = measure([
    scenario("peer: plain SQLite insert, no chain", (index) => {
      const { component, type, ...data } = event(index);
      insert.run(new Date().toISOString(), component, type, JSON.stringify(data));
    }),
    scenario("audit log, checkpoint every 1000 (default)", (index) => chained.append(event(index))),
    scenario("audit log, signed checkpoint every record", (index) => everyRecord.append(event(index))),
  ]);
  plain.close();
  chained.close();
  everyRecord.close();
  const peer = results[0] as Figures;

  console.log(`audit-log append (${ROUNDS} events of ~600 bytes after ${WARMUP} warm-up, WAL + synchronous=FULL, ${tmpdir()})`);
  console.log("scenario".padEnd(46), "events/s".padStart(10), "p50 ms".padStart(9), "p99 ms".padStart(9), "p50 vs peer".padStart(12));
  for (const figures of results) {
    console.log(
      figures.name.padEnd(46),
      figures.perSecond.toFixed(0).padStart(10),
      figures.p50.toFixed(3).padStart(9),
      figures.p99.toFixed(3).padStart(9),
      `${(figures.p50 / peer.p50).toFixed(2)}x`.padStart(12),
    );
  }

  const verifyStarted = performance.now();
  const verification = verifyAuditLog(chainedPath);
  const verifyMs = performance.now() - verifyStarted;
  if (!verification.ok) throw new Error(`benchmark log does not verify: ${verification.reason}`);
  console.log(`verify: ${verification.records} records in ${verifyMs.toFixed(0)} ms (${((verification.records / verifyMs) * 1000).toFixed(0)} records/s)`);
} finally {
  rmSync(directory, { recursive: true, force: true });
}
