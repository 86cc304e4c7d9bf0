// Requirements (issue 18, seed 003's verify-hermes-mcp.sh): per MCP server, each way it breaks shows as its own
// check — a ${VAR} missing in the guard, an upstream not connected, no tools, a definition waiting for review (WARN),
// an auth error from the upstream in the audit log since the last start, a failed call — from the probe's answer and
// the operator's facts. The live path (the probe through a real mcp-guard) is in local.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../config/index.ts";
import { authErrorsFromRecords, mcpResults, neverCall } from "./mcp.ts";
import type { McpFacts } from "./mcp.ts";
import type { ProbeRun } from "./runners.ts";

const config = parseConfig(`
version: 1
name: t
agent: { terminal: in-pod }
mcp:
  agents: [{ name: hermes, tokenSecret: PERIMETER_AGENT_TOKEN }]
  servers:
    github:
      url: https://api.githubcopilot.com/mcp/
      headers: { Authorization: "Bearer \${GITHUB_TOKEN}" }
      tools: { allow: ["get_*", create_issue], approve: [create_issue] }
`);

const healthyRun: ProbeRun = { ok: true, uid: 10000, answers: { mcp: { tools: ["github__get_me", "github__create_issue"], calls: { github: { tool: "github__get_me", ok: true, text: "{}" } } } } };
const healthyFacts: McpFacts = {
  guardVariables: new Set(["GITHUB_TOKEN"]),
  upstreamStates: { github: "ready" },
  pendingReviews: new Map(),
  authErrors: new Map(),
  unknownBecause: "",
};

function statuses(run: ProbeRun, facts: McpFacts): Record<string, string> {
  return Object.fromEntries(mcpResults(config, run, facts).map((result) => [result.id, result.status]));
}

test("a healthy server passes every check", () => {
  assert.deepEqual(statuses(healthyRun, healthyFacts), {
    "mcp.agent-token": "PASS",
    "mcp.github.variables": "PASS",
    "mcp.github.upstream": "PASS",
    "mcp.github.tools": "PASS",
    "mcp.github.review": "PASS",
    "mcp.github.auth-errors": "PASS",
    "mcp.github.call": "PASS",
  });
});

const BROKEN: Array<{ name: string; run?: ProbeRun; facts?: Partial<McpFacts>; id: string; status: string }> = [
  { name: "GITHUB_TOKEN not set in the guard", facts: { guardVariables: new Set() }, id: "mcp.github.variables", status: "FAIL" },
  { name: "upstream unavailable", facts: { upstreamStates: { github: "unavailable" } }, id: "mcp.github.upstream", status: "FAIL" },
  { name: "no tool of the server listed", run: { ok: true, uid: 0, answers: { mcp: { tools: [], calls: {} } } }, id: "mcp.github.tools", status: "FAIL" },
  { name: "a definition waiting for review", facts: { pendingReviews: new Map([["github", ["create_issue"]]]) }, id: "mcp.github.review", status: "WARN" },
  { name: "a 401 from the upstream since the start", facts: { authErrors: new Map([["github", ["record 9 tool-call"]]]) }, id: "mcp.github.auth-errors", status: "FAIL" },
  { name: "the harmless call refused", run: { ok: true, uid: 0, answers: { mcp: { tools: ["github__get_me"], calls: { github: { tool: "github__get_me", ok: false, error: "boom" } } } } }, id: "mcp.github.call", status: "FAIL" },
  { name: "the agent's token refused", run: { ok: true, uid: 0, answers: { mcp: { status: 401, error: "HTTP 401" } } }, id: "mcp.agent-token", status: "FAIL" },
];

for (const broken of BROKEN) {
  test(`broken: ${broken.name} → ${broken.id} ${broken.status}, nothing else fails`, () => {
    const results = statuses(broken.run ?? healthyRun, { ...healthyFacts, ...broken.facts });
    assert.equal(results[broken.id], broken.status);
    const others = Object.entries(results).filter(([id, status]) => id !== broken.id && (status === "FAIL" || status === "WARN"));
    assert.deepEqual(others, []);
  });
}

test("calls held for approval are never chosen as the harmless call", () => {
  assert.deepEqual(neverCall(config), ["github__create_issue"]);
});

test("auth errors count only after the last start, per server", () => {
  const records = [
    { component: "mcp-guard", type: "tool-call", data: { server: "github", error: "HTTP 401 Unauthorized" } },
    { component: "cli", type: "perimeter-start", data: {} },
    { component: "mcp-guard", type: "tool-call", data: { server: "github", error: "upstream answered 403 Forbidden" } },
    { component: "mcp-guard", type: "tool-call", data: { server: "calendar", result: "ok" } },
  ];
  const errors = authErrorsFromRecords(records);
  assert.deepEqual([...errors.keys()], ["github"]);
  assert.equal(errors.get("github")?.length, 1);
});
