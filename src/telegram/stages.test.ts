// The approver's stateless stages, alone: token masking, the constant-time nonce hash check, the approver name
// shown on a decision, and a request seen as expired once its time is up.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Approval } from "../approvals/index.ts";
import { sameHash, scrubTokens, sha256 } from "./approver-setup.ts";
import { approverName } from "./callbacks.ts";
import { effectiveApproval } from "./posting.ts";

test("the bot and proxy tokens are masked in error texts", () => {
  assert.equal(scrubTokens("GET /bot1:abc/getMe via http://x:p4ss@proxy", "1:abc", "p4ss"), "GET /bot[bot token]/getMe via http://x:[proxy token]@proxy");
  assert.equal(scrubTokens("no proxy here", "1:abc", undefined), "no proxy here");
});

test("a nonce matches only its own hash; a malformed hash never matches", () => {
  assert.ok(sameHash(sha256("n1"), sha256("n1")));
  assert.ok(!sameHash(sha256("n1"), sha256("n2")));
  assert.ok(!sameHash(sha256("n1"), "abc"));
});

test("the approver's name keeps letters, digits and a few marks, at most 40 characters", () => {
  assert.equal(approverName({ first_name: "Ana<script>", last_name: "O'Neil" }), "Anascript O'Neil");
  assert.equal(approverName({ first_name: "" }), "");
  assert.equal(approverName({ first_name: "x".repeat(60) }).length, 40);
});

test("a pending request past its expiry is shown as expired; others as they are", () => {
  const pending = { id: "r1", status: "pending", expiresAt: "2026-01-01T00:00:00.000Z" } as unknown as Approval;
  assert.equal(effectiveApproval(pending, Date.parse("2026-01-01T00:00:01Z")).status, "expired");
  assert.equal(effectiveApproval(pending, Date.parse("2025-12-31T23:59:59Z")).status, "pending");
});
