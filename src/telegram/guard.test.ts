// The approver bot inside a real mcp-guard (stand-in Bot API on loopback, a real HTTP upstream, the official SDK
// client as the agent): a call held for approval is posted to Telegram, and a click releases it — the figure printed
// is the time from the click's delivery to the agent's result. The two-person rule holds a call until two different
// people approved it, here one on the terminal (the admin API) and one on the phone.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Client } from "@modelcontextprotocol/client";
import type { Approval } from "../approvals/index.ts";
import { readAuditRecords } from "../audit-log/index.ts";
import { connectAgent, resultText, startGuard, startRecordingServer } from "../mcp-guard/testing.ts";
import type { RecordingServer, StartedGuard } from "../mcp-guard/testing.ts";
import { createStandInBotApi } from "./stand-in.ts";
import type { StandInBotApi } from "./stand-in.ts";

const ALICE = 111111111;
const BOB = 222222222;

describe("stand-in Bot API: Telegram decisions release calls held by a real mcp-guard", { timeout: 120_000 }, () => {
  let web: RecordingServer;
  let api: StandInBotApi;
  let started: StartedGuard;
  let agent: Client;
  const env = { PATH: process.env.PATH, HOME: "/tmp", PERIMETER_AGENT_TOKEN: "agent-token-telegram-0123456789", PERIMETER_ADMIN_TOKEN: "admin-token-telegram-abcdefghij", APPROVER_BOT_TOKEN: "" };

  before(async () => {
    web = await startRecordingServer();
    api = createStandInBotApi();
    await api.listen();
    api.start(ALICE, "Alice");
    api.start(BOB, "Bob");
    env.APPROVER_BOT_TOKEN = api.token;
    started = await startGuard(
      `
version: 1
name: t
mcp:
  pinning: { trustOnFirstUse: true }
  agents: [{ name: hermes, tokenSecret: PERIMETER_AGENT_TOKEN, refusals: error }]
  servers:
    web: { url: ${web.url}, tools: { allow: [echo, create_issue] } }
approvals:
  timeoutSeconds: 30
  tools: [web__echo, { tool: "web__create_issue", approvers: 2 }]
  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [${ALICE}, ${BOB}], apiRoot: "${api.apiRoot}" }
audit: { path: AUDIT_PATH }
`,
      env,
    );
    agent = await connectAgent(started.url, env.PERIMETER_AGENT_TOKEN, "2026-07-28");
  });

  after(async () => {
    await agent?.close();
    await started?.close();
    await api?.close();
    await web?.close();
  });

  const messageFor = (chat: number, tool: string, pattern = /./) =>
    api.waitFor(() => api.messagesIn(chat).findLast((message) => message.text.includes(`Approval needed: ${tool}`) && pattern.test(message.text) && (message.reply_markup?.inline_keyboard.length ?? 0) > 0), 10_000, `${tool} in chat ${chat}`);

  test("approve on the phone: the agent's held call completes; the figure is click-to-result", async () => {
    const timings: number[] = [];
    for (let round = 0; round < 5; round += 1) {
      const call = agent.callTool({ name: "web__echo", arguments: { message: `hello ${round}` } }, { timeout: 30_000 });
      let resultAt = 0;
      void call.then(() => (resultAt = performance.now()));
      const message = await messageFor(ALICE, "web__echo", new RegExp(`hello ${round}`));
      const clickedAt = performance.now();
      api.click(ALICE, message, "Approve");
      const result = await call;
      assert.equal(result.isError, undefined);
      assert.match(resultText(result), new RegExp(`web echo: hello ${round}`));
      timings.push(resultAt - clickedAt);
    }
    const dispatch = readAuditRecords(started.auditPath).findLast((record) => record.type === "tool-dispatch");
    assert.match(String(dispatch?.data.approver), /^telegram:111111111 \(Alice\)$/);
    timings.sort((a, b) => a - b);
    console.log(`# stand-in: click to the agent's result over 5 held calls: median ${timings[2]?.toFixed(1)} ms, max ${timings[4]?.toFixed(1)} ms (target <= 250 ms)`);
    const health = (await (await fetch(`${started.adminUrl}/healthz`)).json()) as { telegram?: string };
    assert.equal(health.telegram, "polling");
  });

  test("deny on the phone: the agent's call is refused and never reaches the upstream", async () => {
    const before = web.requests.length;
    const call = agent.callTool({ name: "web__echo", arguments: { message: "never" } }, { timeout: 30_000 });
    api.click(BOB, await messageFor(BOB, "web__echo", /never/), "Deny");
    const result = await call;
    assert.equal(result.isError, true);
    assert.match(resultText(result), /denied this call/);
    assert.ok(!web.requests.slice(before).some((request) => request.body.includes("never")));
  });

  test("two-person rule across channels: the terminal's approval alone does not release the call; the phone's second one does", async () => {
    const call = agent.callTool({ name: "web__create_issue", arguments: { owner: "my-org", repo: "app", title: "two people" } }, { timeout: 30_000 });
    let settled = false;
    void call.finally(() => (settled = true));
    const message = await messageFor(ALICE, "web__create_issue", /two people/);
    const id = /request: (\w+)/.exec(message.text)?.[1] ?? "";
    const approve = async (approver: string) =>
      fetch(`${started.adminUrl}/v1/approvals/${id}/approve`, { method: "POST", headers: { authorization: `Bearer ${env.PERIMETER_ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ approver, channel: "cli" }) });
    const first = (await (await approve("alice")).json()) as Approval;
    assert.equal(first.status, "pending");
    // The same admin token under another name is the same person.
    const again = await approve("mallory");
    assert.equal(again.status, 409);
    assert.match(((await again.json()) as { error: { message: string } }).error.message, /different person/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(settled, false, "one approval of two does not release the call");
    api.click(ALICE, await messageFor(ALICE, "web__create_issue", /1 of 2 approvals so far/), "Approve");
    const result = await call;
    assert.notEqual(result.isError, true, resultText(result));
    const records = readAuditRecords(started.auditPath).filter((record) => record.data.id === id);
    assert.deepEqual(
      records.map((record) => [record.type, record.data.channel ?? null]),
      [
        ["approval-request", null],
        ["approval-vote", "cli"],
        ["approval-decision", "telegram"],
      ],
    );
  });
});
