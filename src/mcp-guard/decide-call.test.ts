// The pure call decision that the live guard (calls.ts) and `perimeter replay` share: one test per step, in the
// order the guard takes them, each asserting the verdict and the stage that gave it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseConfig } from "../config/index.ts";
import { compileConstraints } from "./arguments.ts";
import { decideCall } from "./decide-call.ts";
import type { CallDecisionContext, DefinitionState } from "./decide-call.ts";
import { createRedactor } from "./redact.ts";

const config = parseConfig(`
version: 1
name: t
mcp:
  servers:
    bank:
      url: https://bank.example.invalid/mcp
      tools:
        allow: [get_balance, send_money, read_file, update_password]
        approve: [send_money]
      arguments:
        send_money: { recipient: { enum: [GB29NWBK60161331926819], required: true } }
        read_file: { file_path: { path: { under: "." } } }
    mail: { url: https://mail.example.invalid/mcp, tools: { allow: ["*"] } }
approvals:
  tools: [{ tool: "bank__update_password", approvers: 2 }]
  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [1001] }
`);

const definitions = new Map<string, DefinitionState>([
  ["bank__get_balance", { hash: "h-balance", status: "trusted" }],
  ["bank__send_money", { hash: "h-send", status: "trusted" }],
  ["bank__read_file", { hash: "h-read", status: "pending", reviewId: "rev-1" }],
  ["bank__update_password", { hash: "h-password", status: "trusted" }],
]);

function context(overrides: Partial<CallDecisionContext> = {}): CallDecisionContext {
  return {
    config,
    constraints: new Map(Object.entries(config.mcp.servers).map(([name, server]) => [name, compileConstraints(server.arguments)])),
    redactor: createRedactor({ secrets: ["s3cr3t-value-1234567890"] }),
    definition: (name) => definitions.get(name),
    ...overrides,
  };
}

const deep = (levels: number): Record<string, unknown> => {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let level = 1; level < levels; level++) value = { inner: value };
  return value;
};

describe("decideCall: the guard's pure call decision", () => {
  test("a name without <server>__ or for an unknown server is denied at the name step", () => {
    for (const name of ["get_balance", "nosuch__get_balance", "__x", "bank__"]) {
      const decided = decideCall(context(), { name, arguments: {} });
      assert.equal(decided.decision, "deny", name);
      assert.equal(decided.decision === "deny" && decided.stage, "name", name);
    }
  });

  test("a tool outside tools.allow is denied with the same message as a missing one (no oracle)", () => {
    const hidden = decideCall(context(), { name: "bank__delete_account", arguments: {} });
    const missing = decideCall(context({ definition: () => undefined }), { name: "bank__get_balance", arguments: {} });
    assert.equal(hidden.decision === "deny" && hidden.stage, "allowlist");
    assert.equal(missing.decision === "deny" && missing.stage, "unlisted");
    assert.equal(hidden.decision === "deny" && missing.decision === "deny" && hidden.message.replace("delete_account", "get_balance"), missing.decision === "deny" && missing.message);
  });

  test("before an upstream's first sync the call is refused as unavailable, naming the state", () => {
    const decided = decideCall(context({ definition: () => undefined, unsynced: () => "connection refused" }), { name: "bank__get_balance", arguments: {} });
    assert.equal(decided.decision === "deny" && decided.stage, "unavailable");
    assert.match(decided.decision === "deny" ? decided.message : "", /connection refused/);
  });

  test("a quarantined or rejected definition is denied, carrying its hash", () => {
    const pending = decideCall(context(), { name: "bank__read_file", arguments: { file_path: "bill.txt" } });
    assert.deepEqual(pending.decision === "deny" && [pending.stage, pending.definitionHash], ["definition", "h-read"]);
    assert.match(pending.decision === "deny" ? pending.reason : "", /rev-1/);
    const rejected = decideCall(context({ definition: () => ({ hash: "h", status: "denied" }) }), { name: "bank__get_balance", arguments: {} });
    assert.equal(rejected.decision === "deny" && rejected.stage, "definition");
  });

  test("an argument outside its constraint is denied before any human is asked, and a secret in it is redacted for the agent", () => {
    const decided = decideCall(context(), { name: "bank__send_money", arguments: { recipient: "s3cr3t-value-1234567890", amount: 10 } });
    assert.equal(decided.decision === "deny" && decided.stage, "arguments");
    const message = decided.decision === "deny" ? decided.message : "";
    assert.match(message, /\(enum\)/);
    assert.doesNotMatch(message, /s3cr3t-value/);
  });

  test("a call needing approval is held, bound to the sha256 of its wire bytes, with the two-person count", () => {
    const send = decideCall(context(), { name: "bank__send_money", arguments: { recipient: "GB29NWBK60161331926819", amount: 10 } });
    assert.equal(send.decision, "hold");
    assert.equal(send.decision === "hold" && send.approvers, 1);
    assert.match(send.decision === "hold" ? send.argumentsSha256 : "", /^[0-9a-f]{64}$/);
    const password = decideCall(context(), { name: "bank__update_password", arguments: { password: "x" } });
    assert.equal(password.decision === "hold" && password.approvers, 2);
  });

  test("a call needing approval whose arguments a human cannot review whole is denied, not held", () => {
    const decided = decideCall(context(), { name: "bank__update_password", arguments: deep(40) });
    assert.equal(decided.decision === "deny" && decided.stage, "review");
    const large = decideCall(context(), { name: "bank__update_password", arguments: { password: "x".repeat(300_000) } });
    assert.equal(large.decision === "deny" && large.stage, "review");
  });

  test("an allowed call with no approval rule is allowed whatever its depth (nothing needs to show it)", () => {
    const decided = decideCall(context(), { name: "bank__get_balance", arguments: deep(40) });
    assert.deepEqual(decided.decision === "allow" && [decided.server, decided.tool, decided.definitionHash], ["bank", "get_balance", "h-balance"]);
  });
});
