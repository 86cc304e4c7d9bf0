// perimeter up runs the approver bot inside mcp-guard and sends its traffic through the host's egress proxy as a
// client of its own (allowed only the Bot API's host), without changing what any other client of the proxy gets.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseConfig } from "../config/index.ts";
import { policyFromConfig } from "../egress-proxy/index.ts";
import { planUp, UpPlanError } from "../up/index.ts";

const yaml = (extra = "") => `version: 1
name: demo
agent:
  platforms:
    telegram: { allowedUsers: [111], tokenSecret: TELEGRAM_BOT_TOKEN }
mcp:
  servers:
    github: { url: "https://api.githubcopilot.com/mcp/", tools: { allow: ["*"] } }
egress:
  allow: [api.telegram.org]
approvals:
  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [123456789] }
${extra}`;

const plan = (text: string) => planUp(parseConfig(text), "/tmp/perimeter.yaml", { cwd: "/tmp", egressMetricsPort: 9811 });

describe("perimeter up: the Telegram approver through the egress proxy", () => {
  test("the bot's client is added, its token generated for both sides, and the other clients' policy is unchanged", () => {
    const planned = plan(yaml());
    const telegram = planned.runtimeConfig.approvals.telegram;
    assert.equal(telegram?.proxy, "http://127.0.0.1:3128");
    assert.equal(telegram?.proxyTokenSecret, "PERIMETER_APPROVER_EGRESS_TOKEN");
    const client = planned.runtimeConfig.egress.clients.find((entry) => entry.name === "approvals-telegram");
    assert.deepEqual(client?.allow, ["api.telegram.org"]);
    const guard = planned.services.find((service) => service.name === "mcp-guard");
    const egress = planned.services.find((service) => service.name === "egress-proxy");
    assert.deepEqual(guard?.secrets.filter((need) => /APPROVER/.test(need.name)).map((need) => [need.name, need.local]), [["APPROVER_BOT_TOKEN", false], ["PERIMETER_APPROVER_EGRESS_TOKEN", true]]);
    assert.ok(egress?.secrets.some((need) => need.name === "PERIMETER_APPROVER_EGRESS_TOKEN" && need.local));
    assert.ok(!egress?.secrets.some((need) => need.name === "APPROVER_BOT_TOKEN"), "the proxy never holds the bot token");
    // Before: no clients, so unidentified clients (the agent) got the global list. After: still.
    const env = { PERIMETER_APPROVER_EGRESS_TOKEN: "x".repeat(32) };
    assert.equal(policyFromConfig(parseConfig(yaml()).egress, env).policy.unknownClients, "global");
    assert.equal(policyFromConfig(planned.runtimeConfig.egress, env).policy.unknownClients, "global");
  });

  test("a local Bot API root or an operator's own proxy is left as written; a clashing client name is refused", () => {
    assert.equal(plan(yaml().replace("approvers: [123456789] }", 'approvers: [123456789], apiRoot: "http://127.0.0.1:8081" }')).runtimeConfig.approvals.telegram?.proxy, undefined);
    assert.equal(plan(yaml().replace("approvers: [123456789] }", 'approvers: [123456789], proxy: "http://10.0.0.5:3128" }')).runtimeConfig.approvals.telegram?.proxy, "http://10.0.0.5:3128");
    assert.throws(() => plan(yaml().replace("egress:\n", "egress:\n  clients: [{ name: approvals-telegram, tokenSecret: SOME_TOKEN }]\n")), (error: unknown) => error instanceof UpPlanError && /approvals-telegram/.test(error.message));
  });
});
