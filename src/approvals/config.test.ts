// approvals.telegram and approvals.tools[].approvers in perimeter.yaml: what the schema refuses and why (issue 19).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, parseConfig } from "../config/index.ts";

const base = `version: 1
name: demo
agent:
  platforms:
    telegram: { allowedUsers: [111], tokenSecret: TELEGRAM_BOT_TOKEN }
mcp:
  servers:
    github: { url: "https://api.githubcopilot.com/mcp/", tools: { allow: ["*"] } }
`;

function problems(yaml: string): string {
  try {
    parseConfig(yaml);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  assert.fail("the config was accepted");
}

describe("config: approvals.telegram and the two-person rule", () => {
  test("a valid approver bot and a two-person tool parse; ids become strings", () => {
    const config = parseConfig(`${base}approvals:
  tools: ["github__merge_*", { tool: "github__delete_*", approvers: 2 }]
  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [123456789, "987654321"] }
`);
    assert.deepEqual(config.approvals.telegram?.approvers, ["123456789", "987654321"]);
    assert.equal(config.approvals.telegram?.apiRoot, "https://api.telegram.org");
    assert.deepEqual(config.approvals.tools[1], { tool: "github__delete_*", approvers: 2 });
  });

  test("usernames are refused (they change hands), and so are group ids and non-numbers", () => {
    for (const [value, expected] of [
      ["alice_ops", /is a username: usernames can change hands, so list the numeric user id/],
      ["'@alice_ops'", /is a username/],
      ["-1001234567890", /group or channel id/],
      ["12ab", /is not a Telegram user id/],
    ] as const) {
      assert.match(problems(`${base}approvals:\n  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [${value}] }\n`), expected, value);
    }
  });

  test("the agent's own platform token is refused as the approver bot's token (the agent could answer the buttons)", () => {
    const message = problems(`${base}approvals:\n  telegram: { tokenSecret: TELEGRAM_BOT_TOKEN, approvers: [123456789] }\n`);
    assert.match(message, /approvals\.telegram\.tokenSecret/);
    assert.match(message, /TELEGRAM_BOT_TOKEN is the agent's \(agent\.platforms\.telegram\.tokenSecret\).*create a separate bot/);
    assert.match(problems(`${base}approvals:\n  telegram: { tokenSecret: PERIMETER_AGENT_TOKEN, approvers: [123456789] }\n`), /is the agent's \(mcp\.agents hermes tokenSecret\)/);
  });

  test("a plain-http API root is refused unless it is on loopback (the token is in every request path)", () => {
    assert.match(problems(`${base}approvals:\n  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [1], apiRoot: "http://bot-api.example:8081" }\n`), /use https/);
    assert.equal(parseConfig(`${base}approvals:\n  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [1], apiRoot: "http://127.0.0.1:8081" }\n`).approvals.telegram?.apiRoot, "http://127.0.0.1:8081");
  });

  test("a tool needing more distinct approvers than can exist is refused; an approver listed twice too", () => {
    assert.match(problems(`${base}approvals:\n  tools: [{ tool: "github__delete_*", approvers: 2 }]\n`), /needs 2 distinct approvers but only 1 can decide/);
    assert.match(
      problems(`${base}approvals:\n  tools: [{ tool: "github__delete_*", approvers: 3 }]\n  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [5, 5] }\n`),
      /an approver is listed twice[\s\S]*needs 3 distinct approvers but only 2 can decide|needs 3 distinct approvers but only 2 can decide[\s\S]*an approver is listed twice/,
    );
  });
});

describe("config: approvals.hook", () => {
  test("an argv hook with a timeout parses; an empty argv, a shell string or a timeout out of range is refused", () => {
    const config = parseConfig(`${base}approvals:\n  hook: [/usr/local/bin/page-me, --channel, ops]\n  hookTimeoutSeconds: 5\n`);
    assert.deepEqual(config.approvals.hook, ["/usr/local/bin/page-me", "--channel", "ops"]);
    assert.equal(config.approvals.hookTimeoutSeconds, 5);
    assert.equal(parseConfig(base).approvals.hook, undefined, "no hook unless asked");
    assert.match(problems(`${base}approvals:\n  hook: []\n`), /approvals\.hook/);
    assert.match(problems(`${base}approvals:\n  hook: "curl -d @- https://hooks.example"\n`), /approvals\.hook/);
    assert.match(problems(`${base}approvals:\n  hook: [x]\n  hookTimeoutSeconds: 0\n`), /hookTimeoutSeconds/);
  });
});
