// Rendered deployments give the approver bot's token to mcp-guard alone, in a Secret of its own.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/index.ts";
import { secretPlan } from "../render/index.ts";

test("render: the approver bot's token is in mcp-guard's own Secret, never in the agent's", () => {
  const config = parseConfig(`version: 1
name: demo
agent:
  platforms:
    telegram: { allowedUsers: [111], tokenSecret: TELEGRAM_BOT_TOKEN }
approvals:
  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [123456789], proxy: "http://egress-proxy.perimeter-system.svc:3128", proxyTokenSecret: APPROVER_EGRESS_TOKEN }
`);
  const specs = secretPlan(config);
  const approver = specs.find((spec) => spec.name === "mcp-guard-telegram-approver");
  assert.equal(approver?.workload, "mcp-guard");
  assert.deepEqual(approver?.keys, ["APPROVER_BOT_TOKEN", "APPROVER_EGRESS_TOKEN"]);
  for (const spec of specs.filter((entry) => entry.workload !== "mcp-guard")) assert.ok(!spec.keys.includes("APPROVER_BOT_TOKEN"), spec.name);
});
