// `npm run bench -- agentdojo`: the AgentDojo v1.2 benign replay (../shared/benchmarks/agentdojo, read in place).
// Per suite: user tasks that run with no hold, with holds, or blocked under examples/agentdojo/<suite>.yaml, replayed
// through mcp-guard's decideCall and cross-checked live against a real mcp-guard and the suite's stand-in server.
// Further traces (attack traces, say) in the perimeter replay format: AGENTDOJO_TRACES=a.jsonl,b.json — each session
// is judged by the policy of the suite its first call names (<suite>__<tool>).
import { readTraceFile } from "../../src/replay/index.ts";
import type { TraceSession } from "../../src/replay/index.ts";
import { countSuite, replaySuite, runSuiteLive } from "./harness.ts";
import { SUITES, benignSessions, dataAvailable, dataFile } from "./suites.ts";
import type { Suite } from "./suites.ts";

if (!dataAvailable()) {
  console.error(`the AgentDojo data is not at ${dataFile()}; set AGENTDOJO_DATA to its directory`);
  process.exit(2);
}

console.log("AgentDojo v1.2, benign user tasks, ground-truth calls replayed (a fully compromised model would make any call):");
console.log("suite       tasks  no hold  held  blocked   calls  held calls  denied   live check");
let mismatches = 0;
for (const suite of SUITES) {
  const sessions = benignSessions(suite);
  const live = await runSuiteLive(suite, sessions);
  const report = replaySuite(suite, sessions, live.listing);
  const replayed = report.sessions.flatMap((session) => session.calls.map((call) => call.decision));
  const agree = live.recorded.length === replayed.length && live.recorded.every((call, index) => call.decision === replayed[index]);
  if (!agree) mismatches += 1;
  const counts = countSuite(suite, report);
  console.log(
    `${suite.padEnd(10)} ${String(counts.tasks).padStart(6)} ${String(counts.unattended).padStart(8)} ${String(counts.held).padStart(5)} ${String(counts.blocked).padStart(8)} ${String(counts.calls).padStart(7)} ${String(counts.heldCalls).padStart(11)} ${String(counts.deniedCalls).padStart(7)}   ${agree ? "agrees" : "DIFFERS"} (${live.seconds.toFixed(1)} s)`,
  );
}

const extra = (process.env.AGENTDOJO_TRACES ?? "").split(",").filter((file) => file !== "");
if (extra.length > 0) {
  const bySuite = new Map<Suite, TraceSession[]>();
  for (const session of extra.flatMap((file) => readTraceFile(file))) {
    const suite = SUITES.find((name) => session.calls[0]?.name.startsWith(`${name}__`) === true);
    if (suite === undefined) throw new Error(`${session.source}: session ${session.id} names no AgentDojo suite (${SUITES.join(", ")}) in its first call`);
    bySuite.set(suite, [...(bySuite.get(suite) ?? []), session]);
  }
  console.log("\nfurther traces:");
  for (const [suite, sessions] of bySuite) {
    const { totals } = replaySuite(suite, sessions);
    console.log(`${suite.padEnd(10)} ${sessions.length} sessions: ${totals.sessions.allowed} allowed, ${totals.sessions.held} held, ${totals.sessions.refused} refused; expectations ${totals.expectations.met} met, ${totals.expectations.unmet} unmet`);
  }
}
process.exit(mismatches === 0 ? 0 : 1);
