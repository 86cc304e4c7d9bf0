// mcp.agents[].refusals (issue 13, item 1): Hermes' MCP client counts tool errors (isError results, timeouts) toward
// a circuit breaker that blocks every tool of the server for 60 s after three in a row. An agent set to "result" gets
// policy refusals as normal results that say so, so three refusals cannot close its only door to its tools; another
// agent of the same guard keeps the protocol's convention (isError), and an outage is an error for both.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/client";
import { readAuditRecords } from "../audit-log/index.ts";
import { EVERYTHING_ENTRY, connectAgent, eventually, resultText, startGuard } from "./testing.ts";
import type { StartedGuard } from "./testing.ts";

const ENV = { HERMES_TOKEN: "hermes-agent-token-0123456789abcdef", OPS_TOKEN: "ops-agent-token-0123456789abcdef", PERIMETER_ADMIN_TOKEN: "admin-token-0123456789abcdef" };

const CONFIG = `
version: 1
name: t
mcp:
  agents:
    - { name: hermes, tokenSecret: HERMES_TOKEN, refusals: result }
    - { name: ops, tokenSecret: OPS_TOKEN }
  pinning: { trustOnFirstUse: true }
  servers:
    everything:
      command: ["${process.execPath}", "${EVERYTHING_ENTRY}", "stdio"]
      tools: { allow: [echo, get-sum] }
      arguments:
        echo: { message: { maxLength: 10 } }
audit: { path: AUDIT_PATH }
`;

describe("policy refusals per agent (refusals: result | error)", { timeout: 60_000 }, () => {
  let started: StartedGuard;
  let hermes: Client;
  let ops: Client;
  before(async () => {
    started = await startGuard(CONFIG, ENV);
    await eventually(() => (started.guard.upstream("everything")?.state().state === "ready" ? true : undefined), 20_000, "upstream ready");
    hermes = await connectAgent(started.url, ENV.HERMES_TOKEN, "2025-11-25");
    ops = await connectAgent(started.url, ENV.OPS_TOKEN, "2025-11-25");
  });
  after(async () => {
    await hermes.close();
    await ops.close();
    await started.close();
  });

  test("an agent with refusals: result gets a denied argument, a forbidden tool and an unknown server as normal results that say they were refused", async () => {
    const calls = [
      { name: "everything__echo", arguments: { message: "far longer than ten characters" } },
      { name: "everything__get-env", arguments: {} },
      { name: "nowhere__tool", arguments: {} },
    ];
    for (const call of calls) {
      const result = await hermes.callTool(call);
      assert.equal(result.isError, false, `${call.name}: not a tool error, so Hermes' breaker does not count it`);
      assert.match(resultText(result), /^refused by the perimeter: /, call.name);
    }
    // Three refusals in a row, and the agent's tools still work.
    const fine = await hermes.callTool({ name: "everything__echo", arguments: { message: "hi" } });
    assert.equal(fine.isError ?? false, false);
    assert.match(resultText(fine), /hi/);
  });

  test("another agent of the same guard keeps MCP's convention: the same refusal is a tool error", async () => {
    const result = await ops.callTool({ name: "everything__echo", arguments: { message: "far longer than ten characters" } });
    assert.equal(result.isError, true);
    assert.match(resultText(result), /^perimeter: /);
  });

  test("both refusal styles are recorded as denials in the audit log", async () => {
    const denials = readAuditRecords(started.auditPath, { limit: 1000 }).filter((record) => record.type === "tool-call" && record.data.decision === "deny");
    assert.ok(denials.some((record) => record.data.agent === "hermes"));
    assert.ok(denials.some((record) => record.data.agent === "ops"));
  });
});
