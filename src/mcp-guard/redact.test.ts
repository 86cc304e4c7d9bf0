// Requirements (issue 12, item 1): mcp-guard's redactor and llm-proxy's DLP are one scanner, so the attacks that
// llm-proxy's tests send through the running proxy are removed here too, from the same inputs: known values in
// base64 at any alignment (standard, URL-safe, wrapped) and in hex, whole PEM private key blocks, credential shapes
// glued to a word; ordinary text stays untouched.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SECRET_SHAPES } from "../config/index.ts";
import { CANARY, FALSE_POSITIVE_CORPUS, PROVIDER_KEY, SHAPE_SAMPLES, attacks, envFile, revealed } from "../dlp/testing.ts";
import { REDACTED, createRedactor } from "./redact.ts";

describe("mcp-guard redaction against the attacks of issue 12 (the inputs llm-proxy's DLP tests send)", () => {
  const redactor = createRedactor({ secrets: [CANARY, PROVIDER_KEY] });

  for (const attack of attacks()) {
    test(attack.name, () => {
      assert.ok(revealed(attack.text, attack.secret), "the oracle reads the secret in the input (else this test proves nothing)");
      const text = redactor.text(attack.text);
      assert.ok(!revealed(text, attack.secret), `still readable after redaction: ${text.slice(0, 300)}`);
      assert.ok(text.includes(REDACTED));
      assert.ok(redactor.contains(attack.text));
    });
  }

  test("every credential shape in SECRET_SHAPES has a sample here", () => {
    for (const { kind } of SECRET_SHAPES) assert.ok(Object.hasOwn(SHAPE_SAMPLES, kind), `no sample for ${kind}`);
  });

  test("ordinary text (false-positive corpus) passes untouched", () => {
    for (const text of FALSE_POSITIVE_CORPUS) assert.equal(redactor.text(text), text);
  });

  test("a base64 blob field whose content carries the canary at any alignment comes back without it", () => {
    for (const shift of [0, 1, 2]) {
      const blob = Buffer.from(`binary\u0000prefix${envFile(shift)}`).toString("base64");
      const redacted = redactor.value({ contents: [{ uri: "file:///workspace/.env", blob }] });
      const decoded = Buffer.from(redacted.contents[0]?.blob ?? "", "base64").toString("utf8");
      assert.ok(!decoded.includes(CANARY), `shift ${shift}`);
      assert.ok(!revealed(JSON.stringify(redacted), CANARY), `shift ${shift}`);
    }
  });

  test("a known value used as an object key is redacted in structured content", () => {
    const redacted = redactor.value({ structuredContent: { [CANARY]: "x", nested: { [`prefix_${PROVIDER_KEY}`]: 1 } } });
    assert.ok(!revealed(JSON.stringify(redacted), CANARY) && !revealed(JSON.stringify(redacted), PROVIDER_KEY));
  });
});
