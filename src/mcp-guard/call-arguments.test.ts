// The one place that decides how a call's arguments are recorded and shown for review (call-arguments.ts): whatever
// an agent sends, the answer is a record-ready value or a placeholder with size and sha256, never an exception.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { openAuditLog, readAuditRecords } from "../audit-log/index.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_ARGUMENT_DEPTH, MAX_RECORDED_ARGUMENT_BYTES, measureArguments, recordedArguments, redactArguments, reviewableArguments } from "./call-arguments.ts";
import { createRedactor } from "./redact.ts";

const SECRET = "upstream-secret-value-0123456789";
const redactor = createRedactor({ secrets: [SECRET] });
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

function nested(levels: number): unknown {
  let value: unknown = "leaf";
  for (let level = 0; level < levels; level++) value = { a: value };
  return value;
}

test("the hash and size are those of the JSON text the upstream receives, lone surrogates included", () => {
  const args = { b: 1, a: "x\ud800y", list: [1, "two"] };
  const measured = measureArguments(args);
  assert.equal(measured.sha256, sha256(JSON.stringify(args)));
  assert.equal(measured.bytes, Buffer.byteLength(JSON.stringify(args)));
});

test("a value nested far deeper than JSON.stringify can follow is measured without throwing: no hash, depth capped", () => {
  const deep = JSON.parse(`${"[".repeat(200_000)}${"]".repeat(200_000)}`) as unknown;
  const measured = measureArguments(deep);
  assert.equal(measured.depth, MAX_ARGUMENT_DEPTH + 1);
  const fields = recordedArguments(deep, measured, redactor);
  assert.equal(fields.arguments, null);
  assert.match(String(fields.argumentsOmitted), /nested more than 32 levels/);
});

test("the depth limit: exactly MAX_ARGUMENT_DEPTH levels are recorded, one more is a placeholder", () => {
  const fits = nested(MAX_ARGUMENT_DEPTH);
  assert.deepEqual(recordedArguments(fits, measureArguments(fits), redactor).arguments, fits);
  const deeper = nested(MAX_ARGUMENT_DEPTH + 1);
  const fields = recordedArguments(deeper, measureArguments(deeper), redactor);
  assert.equal(fields.arguments, null);
  assert.match(String(fields.argumentsOmitted), /nested more than 32 levels/);
  assert.equal(fields.argumentsSha256, sha256(JSON.stringify(deeper)));
});

test("the size limit is on the redacted JSON: just under is recorded, just over is a placeholder", () => {
  const overhead = Buffer.byteLength(JSON.stringify({ s: "" }));
  const under = { s: "x".repeat(MAX_RECORDED_ARGUMENT_BYTES - overhead) };
  assert.deepEqual(recordedArguments(under, measureArguments(under), redactor).arguments, under);
  const over = { s: "x".repeat(MAX_RECORDED_ARGUMENT_BYTES - overhead + 1) };
  assert.match(String(recordedArguments(over, measureArguments(over), redactor).argumentsOmitted), /larger than the 65536 bytes/);
});

test("redaction: values, keys and base64 data are redacted and each place is named; keys that redact alike stay apart; __proto__ stays a key", () => {
  const args = JSON.parse(
    JSON.stringify({
      token: SECRET,
      nested: { list: ["fine", `Bearer ${SECRET}`] },
      [SECRET]: 1,
      [`${SECRET}-2`]: 2,
      data: Buffer.from(`binary ${SECRET}`).toString("base64"),
      "odd key": "fine",
    }).replace('"odd key"', '"__proto__":{"polluted":true},"odd key"'),
  ) as Record<string, unknown>;
  const { value, redactions } = redactArguments(args, redactor);
  const shown = value as Record<string, unknown>;
  assert.equal(shown.token, "[REDACTED]");
  assert.deepEqual(shown.nested, { list: ["fine", "Bearer [REDACTED]"] });
  assert.ok(!JSON.stringify(value).includes(SECRET));
  assert.equal(Object.keys(shown).filter((key) => key.startsWith("[REDACTED]")).length, 2, "two redacted keys, not one overwriting the other");
  assert.ok(Object.hasOwn(shown, "__proto__"), "__proto__ is an own key of the copy, as on the wire");
  assert.equal(Object.getPrototypeOf(shown), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(redactions.sort(), ['$["[REDACTED]"] (key)', '$["[REDACTED]-2"] (key)', "$.data", "$.nested.list[1]", "$.token"].sort());
});

test("a record built from these fields is accepted by the audit log as it is, __proto__ key and lone surrogate included", () => {
  const directory = mkdtempSync(join(tmpdir(), "call-arguments-"));
  try {
    const log = openAuditLog({ path: join(directory, "audit.db") });
    const args = JSON.parse('{"__proto__":{"x":"\\ud800"},"deep":' + JSON.stringify(nested(70)) + "}") as Record<string, unknown>;
    const shallow = JSON.parse('{"__proto__":{"x":"\\ud800"}}') as Record<string, unknown>;
    for (const value of [args, shallow]) log.append({ component: "mcp-guard", type: "tool-call", ...recordedArguments(value, measureArguments(value), redactor) });
    log.close();
    const records = readAuditRecords(join(directory, "audit.db"));
    assert.equal(records.length, 2);
    assert.equal(records[0]?.data.arguments, null);
    assert.deepEqual(records[1]?.data.arguments, JSON.parse('{"__proto__":{"x":"\\ud800"}}'));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("review: whole arguments up to maxReviewBytes are shown; larger or deeper ones are not held, with a reason naming the setting", () => {
  const padded = { body: `${"A".repeat(17 * 1024)} PAYLOAD: rm -rf /` };
  const review = reviewableArguments(padded, measureArguments(padded), redactor, 256 * 1024);
  assert.ok(review.reviewable);
  assert.match(JSON.stringify(review.shown.value), /PAYLOAD: rm -rf \//);
  const tooLarge = reviewableArguments(padded, measureArguments(padded), redactor, 4096);
  assert.ok(!tooLarge.reviewable);
  assert.match(tooLarge.reason, /approvals\.maxReviewBytes \(4096\)/);
  const deep = nested(40);
  const tooDeep = reviewableArguments(deep, measureArguments(deep), redactor, 256 * 1024);
  assert.ok(!tooDeep.reviewable);
  assert.match(tooDeep.reason, /nested more than 32 levels/);
});
