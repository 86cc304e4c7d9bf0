// Issue 14 item 7: risky or mistaken declarations get a clear word. Each test names what an operator wrote.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseConfig, parseHostRule } from "./index.ts";
import { declarationWarnings } from "./risks.ts";

test("a URL in egress.allow is told to name the host alone, with the rule to write instead", () => {
  for (const [written, host] of [
    ["https://api.telegram.org", "api.telegram.org"],
    ["https://api.telegram.org/", "api.telegram.org"],
    ["http://example.com:8080/path", "example.com:8080"],
    ["wss://gateway.discord.gg", "gateway.discord.gg"],
  ] as const) {
    const result = parseHostRule(written);
    assert.equal(result.ok, false, `${written} must be refused`);
    if (result.ok) continue;
    assert.doesNotMatch(result.reason, /not a port number/, `${written}: the message must not talk about ports`);
    assert.match(result.reason, /is a URL/, written);
    assert.ok(result.reason.includes(`"${host}"`), `${written}: suggest "${host}", got: ${result.reason}`);
  }
});

const base = readFileSync(new URL("../../examples/compose-vps.yaml", import.meta.url), "utf8");

test("the bundled example has no risky declaration (no warning without a cause)", () => {
  assert.deepEqual(declarationWarnings(parseConfig(base, "compose-vps.yaml")), []);
});

test("risky declarations each get a warning naming the field and the fix", () => {
  const cases: Array<[string, (text: string) => string, RegExp]> = [
    ["a provider without apiKeySecret", (text) => text.replace("      apiKeySecret: ANTHROPIC_API_KEY\n", ""), /llm\.providers\.anthropic: no apiKeySecret.*add apiKeySecret/],
    ["a Telegram @handle in allowedUsers", (text) => text.replace('allowedUsers: ["987654321"]', 'allowedUsers: ["987654321", "@alice"]'), /agent\.platforms\.telegram\.allowedUsers: "@alice" is not a numeric user id.*can change hands/],
    ['tools.allow ["*"] on a remote server', (text) => text.replace('allow: ["get_*", "list_*", "search_*"]', 'allow: ["*"]'), /mcp\.servers\.github\.tools\.allow: "\*" on a remote server/],
    ["an LLM provider's host in egress.allow", (text) => text.replace("allow: [api.telegram.org]", "allow: [api.telegram.org, api.anthropic.com]"), /egress\.allow: api\.anthropic\.com is llm\.providers\.anthropic's host.*around llm-proxy/],
  ];
  for (const [name, change, expected] of cases) {
    const changed = change(base);
    assert.notEqual(changed, base, `${name}: the example changed shape`);
    const warnings = declarationWarnings(parseConfig(changed, "perimeter.yaml"));
    assert.ok(warnings.some((warning) => expected.test(warning)), `${name}: ${JSON.stringify(warnings)}`);
  }
});
