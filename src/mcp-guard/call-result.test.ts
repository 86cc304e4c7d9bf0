// The redact stage of a tools/call alone (call-result.ts): what an upstream answered, or how it failed, becomes what the
// agent may receive. The running guard's tests (attacks.test.ts: protocol _meta, oversized results) prove the same
// through sockets; these pin the stage's own rules without a guard.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { CallToolResult } from "@modelcontextprotocol/client";
import { relayedResult, withoutProtocolMeta } from "./call-result.ts";
import { REDACTED, createRedactor } from "./redact.ts";

const SECRET = "upstream-credential-4f9a1c2b7d";
const redactor = createRedactor({ secrets: [SECRET] });
const text = (result: CallToolResult) => JSON.stringify(result.content);

describe("call-result: the redact stage", () => {
  test("a secret the upstream echoes is redacted in the result, and the result is not an error", () => {
    const relayed = relayedResult(redactor, { ok: true, raw: { content: [{ type: "text", text: `token ${SECRET}` }] } }, "files__read");
    assert.ok(!text(relayed.result).includes(SECRET));
    assert.ok(text(relayed.result).includes(REDACTED));
    assert.equal(relayed.failure, undefined);
    assert.equal(relayed.resultBytes, Buffer.byteLength(JSON.stringify(relayed.result)));
  });

  test("the upstream's protocol _meta (io.modelcontextprotocol/) is dropped; the tool's own _meta keys pass", () => {
    const raw = { content: [], _meta: { "io.modelcontextprotocol/serverInfo": { name: "upstream", version: "1" }, "example.com/trace": "t1" } } as CallToolResult;
    assert.deepEqual(withoutProtocolMeta(raw)._meta, { "example.com/trace": "t1" });
    const only = { content: [], _meta: { "io.modelcontextprotocol/serverInfo": { name: "upstream", version: "1" } } } as CallToolResult;
    assert.equal("_meta" in withoutProtocolMeta(only), false);
  });

  test("a failure becomes an error result naming the tool, its message redacted and bounded", () => {
    const relayed = relayedResult(redactor, { ok: false, error: new Error(`refused with ${SECRET} ${"x".repeat(5000)}`) }, "files__read");
    assert.equal(relayed.result.isError, true);
    assert.ok(text(relayed.result).startsWith('[{"type":"text","text":"perimeter: files__read failed: refused with'));
    assert.ok(relayed.failure !== undefined && !relayed.failure.includes(SECRET) && relayed.failure.length === 2000);
  });

  test("a result over the relay bound is withheld with its size; one at the bound passes", () => {
    const raw: CallToolResult = { content: [{ type: "text", text: "a".repeat(1000) }] };
    const size = Buffer.byteLength(JSON.stringify(raw));
    assert.equal(relayedResult(redactor, { ok: true, raw }, "files__read", size).failure, undefined);
    const withheld = relayedResult(redactor, { ok: true, raw }, "files__read", size - 1);
    assert.equal(withheld.result.isError, true);
    assert.equal(withheld.failure, `the result was ${size} bytes, more than the ${size - 1} the guard relays`);
    assert.equal(withheld.resultBytes, Buffer.byteLength(JSON.stringify(withheld.result)));
  });
});
