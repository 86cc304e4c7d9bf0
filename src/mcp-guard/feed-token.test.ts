// The read-only audit feed token (audit.feedTokenSecret) on mcp-guard's admin listener (issue 19): a dashboard on
// another host copies the chain with it, so the admin token never leaves mcp-guard.
// Requirements: with the setting, the feed token reads GET /v1/audit/head and /v1/audit/records (the admin token still
// does); it opens NOTHING else — every approvals route refuses it (401) and a request it tries to decide stays
// pending; the agent's endpoint refuses it; without the setting the same value is refused on the feed too; a feed
// token that equals an agent's or the admin token, or names an unset variable, stops the guard at start.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parseConfig } from "../config/index.ts";
import { ENV, guardYaml } from "../dashboard/testing.ts";
import { openAuditLog } from "../audit-log/index.ts";
import { openGuardDatabase } from "./cli.ts";
import { createMcpGuard } from "./guard.ts";
import { startGuard, startRecordingServer } from "./testing.ts";
import type { RecordingServer, StartedGuard } from "./testing.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { tmpdir } from "node:os";

const FEED_TOKEN = "audit-feed-token-read-only-5b1d9e";
const FEED_ENV = { ...ENV, PERIMETER_FEED_TOKEN: FEED_TOKEN };
const withFeedToken = (yaml: string, secret = "PERIMETER_FEED_TOKEN") => yaml.replace("audit: { path: AUDIT_PATH }", `audit: { path: AUDIT_PATH, feedTokenSecret: ${secret} }`);

let web: RecordingServer;
let guard: StartedGuard;
let pendingId: string;

before(async () => {
  web = await startRecordingServer();
  guard = await startGuard(withFeedToken(guardYaml(web.url)), FEED_ENV);
  pendingId = guard.guard.approvals.open({ kind: "tool-call", agent: "hermes", server: "web", tool: "create_issue", definitionHash: "0".repeat(64), argumentsHash: "1".repeat(64), detail: {}, timeoutMs: 60_000 }).id;
});

after(async () => {
  await guard.close();
  await web.close();
});

async function request(base: string, path: string, token: string | undefined, method = "GET", body?: string): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  return { status: response.status, text: await response.text() };
}

/** A GET whose path is sent exactly as written (fetch would resolve its dot segments first). */
function rawGet(base: string, path: string, token: string): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ hostname, port, path, headers: { authorization: `Bearer ${token}` } }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
    });
    outgoing.on("error", reject);
    outgoing.end();
  });
}

describe("the read-only audit feed token on mcp-guard's admin listener", () => {
  test("reads the feed's head and records; the admin token still does", async () => {
    for (const token of [FEED_TOKEN, ENV.PERIMETER_ADMIN_TOKEN]) {
      const head = await request(guard.adminUrl, "/v1/audit/head", token);
      assert.equal(head.status, 200, head.text);
      assert.match(head.text, /"head":\{"seq":\d+/);
      const records = await request(guard.adminUrl, "/v1/audit/records?after=0&limit=5", token);
      assert.equal(records.status, 200, records.text);
      assert.match(records.text, /"records":\[\{"seq":1,/);
    }
  });

  test("is refused on every approvals route (401), and cannot decide: the request stays pending", async () => {
    const routes: Array<[string, string, string?]> = [
      ["GET", "/v1/approvals"],
      ["GET", "/v1/approvals?status=pending"],
      ["GET", `/v1/approvals/${pendingId}`],
      ["POST", `/v1/approvals/${pendingId}/approve`, "{}"],
      ["POST", `/v1/approvals/${pendingId}/deny`, '{"reason":"feed token"}'],
      ["POST", `/v1/approvals/${pendingId}/approve`, '{"approver":"admin","channel":"dashboard"}'],
    ];
    for (const [method, path, body] of routes) {
      const answer = await request(guard.adminUrl, path, FEED_TOKEN, method, body);
      assert.equal(answer.status, 401, `${method} ${path}: ${answer.text}`);
      assert.doesNotMatch(answer.text, /"approvals":|"status":"pending"|"detail"/, `${method} ${path} leaked the request`);
    }
    assert.equal(guard.guard.approvals.get(pendingId)?.status, "pending");
    // The admin token, by contrast, reads it: the 401s above are about the token, not the route.
    const admin = await request(guard.adminUrl, `/v1/approvals/${pendingId}`, ENV.PERIMETER_ADMIN_TOKEN);
    assert.equal(admin.status, 200, admin.text);
  });

  test("opens no other admin route and is refused on the agent's endpoint", async () => {
    for (const path of ["/v1/audit", "/v1/audit/verify", "/v1/admin"]) {
      const answer = await request(guard.adminUrl, path, FEED_TOKEN);
      assert.equal(answer.status, 404, `${path}: ${answer.text}`);
      assert.doesNotMatch(answer.text, /"records":|"head":\{/);
    }
    // A path that starts like the feed's but resolves to the approvals API is the approvals API (sent unnormalized).
    for (const path of ["/v1/audit/../approvals", "/v1/audit/%2e%2e/approvals", "/v1/audit/head/../../approvals?status=pending"]) {
      const answer = await rawGet(guard.adminUrl, path, FEED_TOKEN);
      assert.ok(answer.status === 401 || answer.status === 404, `${path}: ${answer.status} ${answer.text}`);
      assert.doesNotMatch(answer.text, /"approvals":/);
    }
    const mcp = await request(guard.url.replace(/\/mcp$/, ""), "/mcp", FEED_TOKEN, "POST", JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }));
    assert.equal(mcp.status, 401, mcp.text);
  });
});

describe("the feed token is refused where it was not configured, and checked at start", () => {
  test("without audit.feedTokenSecret the same value is refused on the feed (401)", async () => {
    const plain = await startGuard(guardYaml(web.url), FEED_ENV);
    try {
      const answer = await request(plain.adminUrl, "/v1/audit/head", FEED_TOKEN);
      assert.equal(answer.status, 401, answer.text);
    } finally {
      await plain.close();
    }
  });

  test("a feed token equal to an agent's or the admin token, or naming an unset variable, stops the guard at start", () => {
    const directory = mkdtempSync(join(tmpdir(), "mcp-guard-feed-"));
    const auditPath = join(directory, "audit.db");
    const audit = openAuditLog({ path: auditPath });
    const database = openGuardDatabase(auditPath);
    const attempt = (secret: string, env: Record<string, string | undefined>) =>
      createMcpGuard(parseConfig(withFeedToken(guardYaml(web.url), secret).replaceAll("AUDIT_PATH", auditPath)), { env, audit, database }, { listen: "127.0.0.1:0", adminListen: "127.0.0.1:0" });
    try {
      assert.throws(() => attempt("PERIMETER_SAME", { ...ENV, PERIMETER_SAME: ENV.PERIMETER_AGENT_TOKEN }), /audit feed token \(PERIMETER_SAME\) equals agent hermes's token/);
      assert.throws(() => attempt("PERIMETER_SAME", { ...ENV, PERIMETER_SAME: ENV.PERIMETER_ADMIN_TOKEN }), /audit feed token \(PERIMETER_SAME\) equals the admin token/);
      assert.throws(() => attempt("PERIMETER_UNSET", ENV), /PERIMETER_UNSET/);
    } finally {
      database.close();
      audit.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
