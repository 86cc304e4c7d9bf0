// Issue 12, item 2: every decision the guard takes about a call is recorded, whatever the agent put in its arguments.
// An agent chooses its arguments: nested past what the audit log holds, larger than a record, strings no encoder
// likes. None of that may keep a decision out of the chain; such arguments are recorded as a placeholder with their
// size and the sha256 of the exact bytes the upstream receives (or would have received). Real upstream, real audit
// log, the official SDK client as the agent.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { Client } from "@modelcontextprotocol/client";
import { AuditWriteError, readAuditRecords } from "../audit-log/index.ts";
import type { AuditRecord } from "../audit-log/index.ts";
import { connectAgent, eventually, resultText, startGuard, startRecordingServer } from "./testing.ts";
import type { RecordingServer, StartedGuard } from "./testing.ts";

const ENV = {
  PATH: process.env.PATH,
  HOME: "/tmp",
  PERIMETER_AGENT_TOKEN: "agent-token-unrecordable-0123456789",
  PERIMETER_ADMIN_TOKEN: "admin-token-unrecordable-abcdefghij",
  WEB_TOKEN: "upstream-web-credential-unrecordable-77",
};
const AGENT = ENV.PERIMETER_AGENT_TOKEN;

function config(webUrl: string): string {
  return `
version: 1
name: t
mcp:
  pinning: { trustOnFirstUse: true }
  limits: { maxRequestBytes: 8388608 }
  servers:
    web:
      url: ${webUrl}
      headers: { Authorization: "Bearer \${WEB_TOKEN}" }
      tools: { allow: [echo, create_issue], approve: [create_issue] }
      arguments:
        create_issue: { owner: { enum: [my-org], required: true } }
approvals: { timeoutSeconds: 2 }
audit: { path: AUDIT_PATH }
`;
}

/** `{ a: { a: ... { a: leaf } } }`, `levels` objects deep. */
function nested(levels: number, leaf: unknown = "bottom"): unknown {
  let value: unknown = leaf;
  for (let level = 0; level < levels; level++) value = { a: value };
  return value;
}

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

describe("every decision is recorded, whatever the arguments look like", { timeout: 120_000 }, () => {
  let web: RecordingServer;
  let started: StartedGuard;
  let agent: Client;

  before(async () => {
    web = await startRecordingServer();
    started = await startGuard(config(web.url), ENV);
    await eventually(() => (started.guard.upstream("web")?.state().state === "ready" ? true : undefined), 20_000, "the upstream ready");
    agent = await connectAgent(started.url, AGENT, "2026-07-28");
  });
  after(async () => {
    await agent.close();
    await started.close();
    await web.close();
  });

  /** The mcp-guard records written by one call (the records after `afterSeq`). */
  const recordsSince = (afterSeq: number): AuditRecord[] => readAuditRecords(started.auditPath, { afterSeq }).filter((record) => record.component === "mcp-guard");
  const lastSeq = () => readAuditRecords(started.auditPath, { last: 1 })[0]?.seq ?? 0;

  /** What every record of a call must say about arguments the log cannot hold as given. */
  function assertPlaceholder(record: AuditRecord | undefined, args: Record<string, unknown>, why: RegExp, what: string): void {
    assert.ok(record !== undefined, `${what}: no record at all`);
    const wire = JSON.stringify(args);
    assert.ok(record.data.arguments === null, `${what}: the arguments themselves are not in the record`);
    assert.match(String(record.data.argumentsOmitted), why, `${what}: the record says why the arguments are not in it`);
    assert.equal(record.data.argumentsBytes, Buffer.byteLength(wire), `${what}: the size of the arguments`);
    assert.equal(record.data.argumentsSha256, sha256(wire), `${what}: the sha256 of the arguments as sent upstream`);
  }

  const padded = (marker: string) => ({ marker, pad: nested(70) });

  test("padded with 70 levels of nesting, a forbidden tool, a broken argument constraint, an unknown server and a malformed name are each refused with a record", async () => {
    const cases: Array<{ name: string; args: Record<string, unknown>; reason: RegExp }> = [
      { name: "web__delete_everything", args: padded("forbidden"), reason: /not allowed/ },
      { name: "web__create_issue", args: { owner: "evil-org", repo: "x", ...padded("constraint") }, reason: /enum/ },
      { name: "elsewhere__anything", args: padded("unknown-server"), reason: /unknown tool name/ },
      { name: "no-namespace", args: padded("malformed"), reason: /unknown tool name/ },
    ];
    for (const { name, args, reason } of cases) {
      const before = lastSeq();
      const result = await agent.callTool({ name, arguments: args });
      assert.equal(result.isError, true, name);
      const records = recordsSince(before);
      const refusal = records.find((record) => record.type === "tool-call");
      assert.equal(refusal?.data.decision, "deny", `${name}: ${JSON.stringify(records.map((record) => record.data))}`);
      assert.match(String(refusal?.data.reason), reason, name);
      assertPlaceholder(refusal, args, /nested/, name);
    }
  });

  test("an allowed call padded with 70 levels runs, and its dispatch and result records carry the sha256 of the exact bytes the upstream received", async () => {
    const args = { message: "deep-but-allowed", pad: nested(70) };
    const before = lastSeq();
    const result = await agent.callTool({ name: "web__echo", arguments: args });
    assert.equal(result.isError, undefined, resultText(result));
    assert.equal(resultText(result), "web echo: deep-but-allowed");
    const records = recordsSince(before);
    const dispatch = records.find((record) => record.type === "tool-dispatch");
    const outcome = records.find((record) => record.type === "tool-call");
    assertPlaceholder(dispatch, args, /nested/, "dispatch");
    assertPlaceholder(outcome, args, /nested/, "result");
    assert.equal(outcome?.data.decision, "allow");
    const received = web.requests.find((request) => request.body.includes("deep-but-allowed"));
    assert.ok(received !== undefined, "the upstream got the call");
    const wire = JSON.stringify(args);
    assert.ok(received.body.includes(`"arguments":${wire}`), "the upstream received exactly these argument bytes");
    assert.equal(dispatch?.data.argumentsSha256, sha256(wire));
  });

  test("a held call padded with 70 levels is recorded when it is refused (it cannot be shown whole to a human)", async () => {
    const args = { owner: "my-org", repo: "app", ...padded("held") };
    const before = lastSeq();
    const result = await agent.callTool({ name: "web__create_issue", arguments: args });
    assert.equal(result.isError, true);
    const refusal = recordsSince(before).find((record) => record.type === "tool-call");
    assert.equal(refusal?.data.decision, "deny");
    assertPlaceholder(refusal, args, /nested/, "held call");
  });

  test("arguments larger than a record (2 MiB) and a lone surrogate: each refusal is recorded, the large one as a placeholder", async () => {
    const large = { blob: "x".repeat(2 * 1024 * 1024) };
    let before = lastSeq();
    assert.equal((await agent.callTool({ name: "web__forbidden", arguments: large })).isError, true);
    assertPlaceholder(
      recordsSince(before).find((record) => record.type === "tool-call"),
      large,
      /larger/,
      "2 MiB",
    );

    const lone = { text: "lone \ud800 surrogate" };
    before = lastSeq();
    assert.equal((await agent.callTool({ name: "web__forbidden", arguments: lone })).isError, true);
    const record = recordsSince(before).find((entry) => entry.type === "tool-call");
    assert.equal(record?.data.decision, "deny");
    assert.equal(record?.data.argumentsSha256, sha256(JSON.stringify(lone)));
    assert.equal(record?.data.argumentsOmitted, null, "small, shallow arguments are recorded as they are");
    assert.deepEqual(record?.data.arguments, lone);
  });

  test("a tool name of 1 MiB is refused with a bounded record", async () => {
    const name = `web__${"n".repeat(1024 * 1024)}`;
    const before = lastSeq();
    // 2025-11-25: the name travels in the body only (2026-07-28 mirrors it into a header, which is bounded anyway).
    const legacy = await connectAgent(started.url, AGENT, "2025-11-25");
    try {
      assert.equal((await legacy.callTool({ name, arguments: { marker: "long-name" } })).isError, true);
    } finally {
      await legacy.close();
    }
    const record = recordsSince(before).find((entry) => entry.type === "tool-call");
    assert.equal(record?.data.decision, "deny");
    assert.ok(JSON.stringify(record?.data).length < 8 * 1024, "the record holds a bounded piece of the name");
  });
});

test("a held call whose approval request cannot be recorded is refused, that refusal is recorded, and the lost record is counted", { timeout: 60_000 }, async () => {
  const web = await startRecordingServer();
  // The real log, except that approval-request records fail as a full disk would.
  const started = await startGuard(config(web.url), ENV, {
    wrapAudit: (log) => ({
      append: (event) => {
        if (event.type === "approval-request") throw new AuditWriteError("cannot write to the audit log: database or disk is full (test)");
        return log.append(event as Parameters<typeof log.append>[0]);
      },
      prepare: (event) => log.prepare(event),
      appendPrepared: (events) => log.appendPrepared(events),
    }),
  });
  const agent = await connectAgent(started.url, AGENT, "2025-11-25");
  try {
    await eventually(() => (started.guard.upstream("web")?.state().state === "ready" ? true : undefined), 20_000, "the upstream ready");
    const result = await agent.callTool({ name: "web__create_issue", arguments: { owner: "my-org", repo: "app", title: "unrecordable approval" } });
    assert.equal(result.isError, true);
    assert.match(resultText(result), /internal error/);
    assert.equal(started.guard.approvals.countPending({ kind: "tool-call" }), 0, "no request was opened without its record");
    const record = readAuditRecords(started.auditPath).findLast((entry) => entry.type === "tool-call");
    assert.equal(record?.data.decision, "error");
    assert.match(String(record?.data.reason), /disk is full/);
    // The lost record is counted; /healthz is 200 again because the refusal's own record was written after it.
    assert.match(await (await fetch(`${started.adminUrl}/metrics`)).text(), /perimeter_mcp_guard_audit_failures_total 1\b/);
    assert.equal((await fetch(`${started.adminUrl}/healthz`)).status, 200);
    assert.ok(!web.requests.some((entry) => entry.body.includes("unrecordable approval")));
  } finally {
    await agent.close();
    await started.close();
    await web.close();
  }
});
