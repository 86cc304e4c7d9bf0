// The audit feed on mcp-guard's admin listener (src/audit-log/feed.ts): what a dashboard on another host reads.
// Requirements: only the admin token reads it (not a missing, wrong or agent token); it is read-only; pages by seq
// with no gap or overlap; every record is the stored row (its hash re-derivable); the anchor tells a reader its copy
// still matches; malformed paging is refused with how to fix it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { guardYaml, ENV } from "../dashboard/testing.ts";
import { startGuard, startRecordingServer } from "./testing.ts";
import type { RecordingServer, StartedGuard } from "./testing.ts";
import type { FeedPage } from "../audit-log/index.ts";

let web: RecordingServer;
let guard: StartedGuard;

before(async () => {
  web = await startRecordingServer();
  guard = await startGuard(guardYaml(web.url), ENV);
  for (let index = 0; index < 23; index += 1) guard.audit.append({ component: "egress-proxy", type: "egress-decision", client: "hermes", host: `h${index}.example`, decision: "allow" });
});

after(async () => {
  await guard.close();
  await web.close();
});

async function get(path: string, token: string | undefined, method = "GET"): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${guard.adminUrl}${path}`, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("audit feed on the admin listener", () => {
  test("refuses a missing, wrong or agent token (401) and never serves records to it", async () => {
    for (const token of [undefined, "wrong-token-0123456789abcdef", ENV.PERIMETER_AGENT_TOKEN, ""]) {
      for (const path of ["/v1/audit/records?after=0", "/v1/audit/head"]) {
        const answer = await get(path, token);
        assert.equal(answer.status, 401, `${path} with ${String(token)}`);
        assert.equal(answer.body.records, undefined);
        assert.equal(answer.body.head, undefined);
      }
    }
  });

  test("is read-only: a write method is refused (405) even with the admin token", async () => {
    for (const method of ["POST", "PUT", "DELETE"]) {
      const answer = await get("/v1/audit/records", ENV.PERIMETER_ADMIN_TOKEN, method);
      assert.equal(answer.status, 405, method);
    }
  });

  test("refuses malformed paging with how to fix it (400)", async () => {
    for (const query of ["after=-1", "after=abc", "limit=100000", "checkpointsAfter=1e3", "after=99999999999999999"]) {
      const answer = await get(`/v1/audit/records?${query}`, ENV.PERIMETER_ADMIN_TOKEN);
      assert.equal(answer.status, 400, query);
      assert.match((answer.body.error as { message: string }).message, /whole number/);
    }
  });

  test("pages by seq with no gap or overlap, each page anchored to the previous one, up to the head", async () => {
    const head = await get("/v1/audit/head", ENV.PERIMETER_ADMIN_TOKEN);
    assert.equal(head.status, 200);
    const headSeq = (head.body.head as { seq: number }).seq;
    assert.ok(headSeq >= 23, `head ${headSeq}`);
    const seen: number[] = [];
    let afterSeq = 0;
    let previousHash: string | undefined;
    for (let round = 0; round < 50; round += 1) {
      const answer = await get(`/v1/audit/records?after=${afterSeq}&limit=7`, ENV.PERIMETER_ADMIN_TOKEN);
      assert.equal(answer.status, 200);
      const page = answer.body as unknown as FeedPage;
      assert.ok(page.records.length <= 7);
      if (afterSeq === 0) assert.equal(page.anchor, null);
      else assert.deepEqual(page.anchor, { seq: afterSeq, hash: previousHash });
      if (page.records.length > 0) assert.equal(page.records[0]?.prevHash, previousHash ?? "0".repeat(64));
      for (const record of page.records) {
        assert.equal(typeof record.data, "string", "data is the stored canonical text");
        seen.push(record.seq);
      }
      afterSeq = page.records.at(-1)?.seq ?? afterSeq;
      previousHash = page.records.at(-1)?.hash ?? previousHash;
      if (!page.more) break;
    }
    assert.deepEqual(seen, Array.from({ length: seen.length }, (_, index) => index + 1));
    assert.ok(seen.length >= headSeq);
    const egress = await get(`/v1/audit/records?after=0&limit=1000`, ENV.PERIMETER_ADMIN_TOKEN);
    const hosts = (egress.body as unknown as FeedPage).records.filter((record) => record.type === "egress-decision").map((record) => (JSON.parse(record.data) as { host: string }).host);
    assert.equal(hosts.length, 23);
  });

  test("the anchor shows a reader's copy no longer matches when it names a hash the log does not hold", async () => {
    const answer = await get("/v1/audit/records?after=3&limit=1", ENV.PERIMETER_ADMIN_TOKEN);
    const page = answer.body as unknown as FeedPage;
    assert.equal(page.anchor?.seq, 3);
    assert.match(page.anchor?.hash ?? "", /^[0-9a-f]{64}$/);
  });
});
