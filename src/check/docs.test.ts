// docs/check.md documents every rule: its generated section must equal what the registry produces today.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { RULES } from "./rules.ts";
import { withRulesSection } from "./rules-doc.ts";

const DOCUMENT = join(import.meta.dirname, "..", "..", "docs", "check.md");

test("docs/check.md's rule reference is in sync with the rule registry (regenerate: node src/check/rules-doc.ts --write docs/check.md)", () => {
  const text = readFileSync(DOCUMENT, "utf8");
  assert.equal(text, withRulesSection(text));
  for (const rule of RULES) assert.ok(text.includes(`#### ${rule.id}`), rule.id);
});
