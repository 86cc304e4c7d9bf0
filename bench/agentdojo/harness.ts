// The AgentDojo benign replay, shared by the CI test (test/agentdojo) and `npm run bench -- agentdojo`: each suite's
// policy (examples/agentdojo/<suite>.yaml) judges the ground-truth calls of its user tasks, twice — through
// `perimeter replay` (mcp-guard's decideCall), and live through a real mcp-guard in front of the suite's stand-in MCP
// server, with every held call approved by a stand-in human — and the two must agree call by call.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../src/config/index.ts";
import type { PerimeterConfig } from "../../src/config/index.ts";
import { connectAgent, eventually, startGuard } from "../../src/mcp-guard/testing.ts";
import { replaySessions, sessionsFromAudit } from "../../src/replay/index.ts";
import type { ReplayReport, TraceSession } from "../../src/replay/index.ts";
import { benignSessions } from "./suites.ts";
import type { Suite } from "./suites.ts";

const ROOT = join(import.meta.dirname, "../..");
const SERVER = join(import.meta.dirname, "server.ts");

export function policyFile(suite: Suite): string {
  return join(ROOT, "examples/agentdojo", `${suite}.yaml`);
}

export function loadPolicy(suite: Suite): PerimeterConfig {
  return parseConfig(readFileSync(policyFile(suite), "utf8"), policyFile(suite));
}

/** Per suite: user tasks that ran with no hold, with at least one hold (and no denial), or with a call denied. */
export interface SuiteCounts {
  readonly suite: Suite;
  readonly tasks: number;
  readonly unattended: number;
  readonly held: number;
  readonly blocked: number;
  readonly calls: number;
  readonly heldCalls: number;
  readonly deniedCalls: number;
}

export function countSuite(suite: Suite, report: ReplayReport): SuiteCounts {
  const calls = report.sessions.flatMap((session) => session.calls);
  return {
    suite,
    tasks: report.sessions.length,
    unattended: report.totals.sessions.allowed,
    held: report.totals.sessions.held,
    blocked: report.totals.sessions.refused + report.totals.sessions.undecided,
    calls: calls.length,
    heldCalls: calls.filter((call) => call.decision === "hold").length,
    deniedCalls: calls.filter((call) => call.decision === "deny").length,
  };
}

export function replaySuite(suite: Suite, sessions: readonly TraceSession[] = benignSessions(suite), listing?: ReadonlyMap<string, ReadonlySet<string>>): ReplayReport {
  return replaySessions(loadPolicy(suite), sessions, listing === undefined ? {} : { listing });
}

export interface LiveRun {
  /** The stand-in's tools as the guard listed them to the agent (allowed and trusted). */
  readonly listing: ReadonlyMap<string, ReadonlySet<string>>;
  /** Each call's verdict as the guard recorded it in its audit log, in call order: allow, hold or deny (with its reason). */
  readonly recorded: ReadonlyArray<{ readonly name: string; readonly decision: string; readonly reason?: string }>;
  readonly seconds: number;
}

const ENV = {
  PATH: process.env.PATH,
  HOME: "/tmp",
  PERIMETER_AGENT_TOKEN: "agentdojo-agent-token-0123456789abcdef",
  PERIMETER_ADMIN_TOKEN: "agentdojo-admin-token-abcdef0123456789",
};

/** The sessions' calls through a real mcp-guard (the suite's policy) and the stand-in MCP server, held calls approved. */
export async function runSuiteLive(suite: Suite, sessions: readonly TraceSession[] = benignSessions(suite)): Promise<LiveRun> {
  const started = performance.now();
  const yaml = readFileSync(policyFile(suite), "utf8");
  const command = `command: [node, bench/agentdojo/server.ts, ${suite}]`;
  if (!yaml.includes(command)) throw new Error(`${policyFile(suite)}: expected "${command}" to point at the stand-in`);
  const live = `${yaml.replace(command, `command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(SERVER)}, ${suite}]`)}\naudit: { path: AUDIT_PATH }\napprovals: { timeoutSeconds: 30 }\n`;
  const guard = await startGuard(live, ENV);
  try {
    await eventually(() => (guard.guard.upstream(suite)?.state().state === "ready" ? true : undefined), 20_000, `the ${suite} stand-in ready`);
    // The stand-in human: approves every held call as soon as it is asked.
    const unsubscribe = guard.guard.approvals.subscribe((event) => {
      if (event.type === "approval-request" && event.approval.kind === "tool-call") {
        setImmediate(() => guard.guard.approvals.decide(event.approval.id, { decision: "approve", approver: "admin:agentdojo-harness" }));
      }
    });
    const agent = await connectAgent(guard.url, ENV.PERIMETER_AGENT_TOKEN, "2025-11-25");
    let listing: Map<string, Set<string>>;
    try {
      const listed = (await agent.listTools()).tools.map((tool) => tool.name);
      listing = new Map([[suite, new Set(listed.filter((name) => name.startsWith(`${suite}__`)).map((name) => name.slice(suite.length + 2)))]]);
      for (const session of sessions) {
        for (const call of session.calls) await agent.callTool({ name: call.name, arguments: call.arguments });
      }
    } finally {
      unsubscribe();
      await agent.close();
    }
    guard.guard.calls.flush();
    const recorded = sessionsFromAudit(guard.auditPath).flatMap((session) =>
      // The reason is compared for denials: an allowed call's record says "allowed by policy" or "approved by a human".
      session.calls.map((call) => ({ name: call.name, decision: call.recorded?.decision ?? "missing", ...(call.recorded?.decision !== "deny" || call.recorded.reason === undefined ? {} : { reason: call.recorded.reason }) })),
    );
    return { listing, recorded, seconds: (performance.now() - started) / 1000 };
  } finally {
    await guard.close();
  }
}
