// Requirements (issue 12, item 1) of the one secret scanner behind llm-proxy's DLP and mcp-guard's redaction:
// a known value's base64 is recognised at every byte alignment (the three "cores"), in both alphabets, and its hex
// in either case, also when wrapped over lines, and only the value's own stretch is removed; overlapping findings
// are merged so nothing of either is left between them; kinds are named precisely; ordinary text is left alone.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { base64Cores, createSecretScanner, MIN_SECRET_LENGTH } from "./index.ts";
import { CANARY, FALSE_POSITIVE_CORPUS, SHAPE_SAMPLES, revealed, wrap } from "./testing.ts";

const marker = (kind: string) => `<${kind}>`;

describe("dlp scanner", () => {
  const scanner = createSecretScanner({ known: [{ label: "canary C", value: CANARY }] });

  test("base64Cores: a value's bytes at any offset in any plaintext encode to text containing one of its three cores", () => {
    for (let trial = 0; trial < 60; trial++) {
      const value = randomBytes(8 + (trial % 9));
      const cores = base64Cores(value);
      const offset = trial % 7;
      const encoded = Buffer.concat([randomBytes(offset), value, randomBytes(trial % 5)]).toString("base64");
      assert.ok(encoded.includes(cores[offset % 3] as string), `offset ${offset}, length ${value.length}`);
    }
  });

  test("the canary in base64 at every alignment, both alphabets, and in hex of either case is found and named", () => {
    for (let shift = 0; shift < 6; shift++) {
      const plain = Buffer.from(`${"x".repeat(shift)}=${CANARY};`);
      for (const [encoded, kind] of [
        [plain.toString("base64"), "canary C (base64)"],
        [plain.toString("base64url"), "canary C (base64)"],
        [plain.toString("hex"), "canary C (hex)"],
        [plain.toString("hex").toUpperCase(), "canary C (hex)"],
      ] as const) {
        const { text, kinds } = scanner.redact(`data: ${encoded} end`, marker);
        assert.deepEqual(kinds, [kind], `shift ${shift}: ${encoded}`);
        assert.ok(!revealed(text, CANARY), `shift ${shift}: ${text}`);
      }
    }
  });

  test("wrapped base64 loses only the lines that carry the value; the lines around it stay", () => {
    const before = Buffer.from("a".repeat(300)).toString("base64");
    const body = wrap(Buffer.from(`${"a".repeat(300)}${CANARY}${"b".repeat(300)}`).toString("base64"), 76);
    const { text, kinds } = scanner.redact(body, marker);
    assert.deepEqual(kinds, ["canary C (base64)"]);
    assert.ok(!revealed(text, CANARY));
    assert.ok(text.startsWith(wrap(before, 76).split("\n").slice(0, 4).join("\n")), "the lines before the value are untouched");
    assert.ok(text.length > body.length / 2, "not the whole block");
  });

  test("a shape-like prefix that swallows a known value's first characters does not let its tail out (findings merge)", () => {
    const known = `Q7W2X9V4T6R8P3M5-tail-of-the-secret-${"z".repeat(12)}`;
    const own = createSecretScanner({ known: [{ label: "canary K", value: known }] });
    const { text, kinds } = own.redact(`AKIA${known} after`, marker);
    assert.equal(text, "<AWS access key id> after");
    assert.deepEqual(kinds, ["AWS access key id", "canary K"]);
  });

  test("a credential inside a PEM block is reported too; a shape inside a known value is not (the label is more precise)", () => {
    const pem = `${"-----BEGIN"} PRIVATE KEY-----\nAAAA ${CANARY} BBBB\n${"-----END"} PRIVATE KEY-----`;
    assert.deepEqual(scanner.redact(pem, marker), { text: "<PEM private key>", kinds: ["PEM private key", "canary C"] });
    const key = SHAPE_SAMPLES["GitHub token"] as string;
    const own = createSecretScanner({ known: [{ label: "secret GITHUB_TOKEN", value: key }] });
    assert.deepEqual(own.redact(`x ${key} y`, marker), { text: "x <secret GITHUB_TOKEN> y", kinds: ["secret GITHUB_TOKEN"] });
  });

  test("each shape is named by its most specific kind, once", () => {
    for (const [kind, sample] of Object.entries(SHAPE_SAMPLES)) assert.deepEqual(scanner.scan(`see ${sample} there`).kinds, [kind], kind);
  });

  test("extra patterns with their own capture groups do not shift the naming of the others", () => {
    const own = createSecretScanner({ known: [], patterns: [{ kind: "ticket", source: "(ACME)-([0-9]{6})" }, { kind: "badge", source: "BADGE-[0-9]{4}" }] });
    assert.deepEqual(own.scan("ACME-123456 and BADGE-1234").kinds, ["ticket", "badge"]);
    assert.throws(() => createSecretScanner({ known: [], patterns: [{ kind: "x", source: "a*" }] }), /matches the empty string/);
  });

  test(`values shorter than ${MIN_SECRET_LENGTH} characters are not secrets (they would match ordinary words)`, () => {
    const own = createSecretScanner({ known: [{ label: "short", value: "token1" }] });
    assert.deepEqual(own.scan("a token1 here, base64 dG9rZW4x").spans, []);
  });

  test("the false-positive corpus passes untouched, and so do 200 KiB of pseudo-random base64 and 100 KiB of hex", () => {
    for (const text of FALSE_POSITIVE_CORPUS) assert.deepEqual(scanner.scan(text).spans, [], text);
    // Deterministic noise: random bytes could, once in a few hundred runs, spell a Google key's shape by chance.
    const blocks: Buffer[] = [];
    for (let index = 0; index < (150 * 1024) / 32; index++) blocks.push(createHash("sha256").update(`noise ${index}`).digest());
    const noise = Buffer.concat(blocks);
    assert.deepEqual(scanner.scan(wrap(noise.toString("base64"), 76)).spans, []);
    assert.deepEqual(scanner.scan(noise.subarray(0, 50 * 1024).toString("hex")).spans, []);
  });
});
