// Issue 20, item 2: the AgentDojo v1.2 benign replay. For each suite, the ground-truth calls of every user task go
// through the suite's policy (examples/agentdojo/<suite>.yaml) twice: replayed through mcp-guard's decideCall, and
// live through a real mcp-guard in front of the suite's stand-in MCP server (real stdio child, real SDK client as the
// agent, a stand-in human approving held calls). The two must agree call by call, and the counts are the README's.
// The data is read in place from ../shared/benchmarks/agentdojo (MIT licence, NOTICE there).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { countSuite, loadPolicy, replaySuite, runSuiteLive } from "../../bench/agentdojo/harness.ts";
import { SUITES, benignSessions, dataAvailable, dataFile } from "../../bench/agentdojo/suites.ts";
import type { Suite } from "../../bench/agentdojo/suites.ts";
import { replaySessions } from "../../src/replay/index.ts";
import type { TraceCall, TraceSession } from "../../src/replay/index.ts";

const skip = dataAvailable() ? false : `the AgentDojo data is not at ${dataFile()} (set AGENTDOJO_DATA to its directory)`;

// The README table: user tasks with no hold, with holds, blocked. A policy edit that changes them must change this
// table and the README together.
const EXPECTED = {
  workspace: { tasks: 40, unattended: 23, held: 17, blocked: 0 },
  travel: { tasks: 20, unattended: 18, held: 2, blocked: 0 },
  banking: { tasks: 16, unattended: 4, held: 12, blocked: 0 },
  slack: { tasks: 21, unattended: 15, held: 6, blocked: 0 },
};

// Calls outside each policy (not AgentDojo's injection tasks: probes of this repository's own rules), so that the
// live-versus-replay comparison also covers denials at each step: unknown server, tool not allowed, an argument.
const PROBES: Record<Suite, TraceSession> = {
  workspace: probe("workspace", { name: "workspace__delete_email", arguments: { email_id: "1" } }, { name: "workspace__share_file", arguments: { file_id: "1", email: "a@example.com", permission: "rw" } }),
  travel: probe("travel", { name: "travel__create_calendar_event", arguments: { title: "x", start_time: "2025-01-01 10:00", end_time: "2025-01-01 11:00", participants: ["a@example.com"] } }),
  banking: probe("banking", { name: "banking__send_money", arguments: { recipient: "XX00PROBE", amount: 1, subject: "probe", date: "2022-01-01" } }, { name: "banking__read_file", arguments: { file_path: "/etc/passwd" } }),
  slack: probe("slack", { name: "slack__remove_user_from_slack", arguments: { user: "Bob" } }, { name: "slack__send_direct_message", arguments: { recipient: "Mallory", body: "hi" } }),
};

function probe(suite: Suite, ...calls: TraceCall[]): TraceSession {
  return { id: `${suite}/probe`, source: "test", calls: [{ name: "nosuch__tool", arguments: {} }, { name: `${suite}__no_such_tool`, arguments: {} }, ...calls] };
}

describe("AgentDojo v1.2 benign replay", { skip, timeout: 120_000 }, () => {
  for (const suite of SUITES) {
    test(`${suite}: the live guard and perimeter replay give every ground-truth call the same verdict, and the counts are the README's`, async () => {
      const sessions = [...benignSessions(suite), PROBES[suite]];
      const live = await runSuiteLive(suite, sessions);
      const report = replaySuite(suite, sessions, live.listing);
      const replayed = report.sessions.flatMap((session) => session.calls.map((call) => ({ name: call.name, decision: call.decision, ...(call.reason === undefined ? {} : { reason: call.reason }) })));
      assert.equal(live.recorded.length, replayed.length, "one audit record per call");
      assert.deepEqual(live.recorded, replayed);
      const probed = report.sessions.at(-1)?.calls.map((call) => call.stage);
      assert.deepEqual(probed?.slice(0, 2), ["name", "allowlist"]);
      assert.ok(probed?.slice(2).every((stage) => stage === "allowlist" || stage === "arguments"), String(probed));
      const { suite: _suite, calls: _calls, heldCalls: _heldCalls, deniedCalls: _deniedCalls, ...counts } = countSuite(suite, replaySuite(suite));
      assert.deepEqual(counts, EXPECTED[suite]);
    });
  }

  test("a policy change shows in the counts: without slack's approvals, the six tasks that invite or publish run unattended", () => {
    const policy = loadPolicy("slack");
    const slack = policy.mcp.servers.slack!;
    const loosened = { ...policy, mcp: { ...policy.mcp, servers: { slack: { ...slack, tools: { ...slack.tools, approve: [] } } } } };
    const before = replaySessions(policy, benignSessions("slack"));
    const after = replaySessions(loosened, benignSessions("slack"));
    const changed = before.sessions.flatMap((session, index) =>
      session.calls.filter((call, position) => call.decision !== after.sessions[index]?.calls[position]?.decision).map((call) => `${call.name}: ${call.decision} -> ${after.sessions[index]?.calls[call.index]?.decision}`),
    );
    assert.deepEqual([...new Set(changed)].sort(), ["slack__invite_user_to_slack: hold -> allow", "slack__post_webpage: hold -> allow"]);
    assert.equal(changed.length, 6);
    assert.deepEqual([after.totals.sessions.allowed, after.totals.sessions.held], [21, 0]);
  });
});
