// The approvals hook is the operator's program run beside the guard's secrets, for every new request: it must be
// bounded in time, its failure logged and counted, it must never delay the request or its decision, and it must not
// inherit the guard's environment (upstream tokens, the admin token). Real store, real audit log, real processes.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, test } from "node:test";
import { openAuditLog } from "../audit-log/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { createApprovalAnnouncer } from "./announce.ts";
import { createApprovalStore } from "./store.ts";
import type { ApprovalStore } from "./store.ts";

const held = { kind: "tool-call" as const, agent: "hermes", server: "github", tool: "create_issue", definitionHash: "d".repeat(64), argumentsHash: "a".repeat(64), detail: { arguments: { title: "secret plan" } }, timeoutMs: 60_000 };
const node = process.execPath;

describe("approvals hook", () => {
  let directory: string;
  let audit: AuditLog;
  let database: DatabaseSync;
  let store: ApprovalStore;
  let warnings: Array<Record<string, unknown>>;
  const logger = { warn: (object: Record<string, unknown>) => void warnings.push(object) };

  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), "announce-"));
    audit = openAuditLog({ path: join(directory, "audit.db") });
    database = new DatabaseSync(join(directory, "audit.db"));
    database.exec("PRAGMA busy_timeout = 5000");
    store = createApprovalStore({ database, audit });
    warnings = [];
  });
  afterEach(() => {
    store.close();
    database.close();
    audit.close();
    rmSync(directory, { recursive: true, force: true });
  });

  test("the hook gets the event on stdin and PATH/HOME/LANG only: no secret of the guard, no call arguments", async () => {
    const out = join(directory, "hook.json");
    const script = `let s="";process.stdin.on("data",(c)=>s+=c).on("end",()=>require("fs").writeFileSync(process.argv[1],JSON.stringify({stdin:s,env:process.env})))`;
    const announcer = createApprovalAnnouncer({ store, logger, hook: [node, "-e", script, out], env: { PATH: process.env.PATH, HOME: "/tmp", GITHUB_TOKEN: "ghp_should-never-reach-the-hook", PERIMETER_ADMIN_TOKEN: "admin-secret-value" } });
    const request = store.open(held);
    await announcer.settled();
    announcer.close();
    const seen = JSON.parse(readFileSync(out, "utf8")) as { stdin: string; env: Record<string, string> };
    const event = JSON.parse(seen.stdin) as Record<string, unknown>;
    assert.equal(event.id, request.id);
    assert.equal(event.kind, "tool-call");
    assert.equal(event.exposedName, "github__create_issue");
    assert.doesNotMatch(seen.stdin, /secret plan/, "the arguments stay in the store");
    assert.equal(seen.env.GITHUB_TOKEN, undefined);
    assert.equal(seen.env.PERIMETER_ADMIN_TOKEN, undefined);
    assert.equal(seen.env.HOME, "/tmp");
  });

  test("a hook that hangs is killed at its timeout, logged and counted; the request was open and decidable all along", async () => {
    let failures = 0;
    const announcer = createApprovalAnnouncer({ store, logger, hook: [node, "-e", "setInterval(() => {}, 1000)"], hookTimeoutMs: 300, env: { PATH: process.env.PATH }, onHookFailure: () => (failures += 1) });
    const started = performance.now();
    const request = store.open(held);
    // The decision does not wait for the hook.
    assert.equal(store.decide(request.id, { decision: "approve", approver: "alice" }).status, "approved");
    assert.ok(performance.now() - started < 250, "open and decide returned before the hook's timeout");
    await announcer.settled();
    announcer.close();
    assert.equal(failures, 1);
    const failed = warnings.find((warning) => warning.event === "approval-hook-failed");
    assert.match(String(failed?.reason), /killed after 300 ms \(approvals\.hookTimeoutSeconds\)/);
  });

  test("a hook that fails or cannot start is logged with its exit and stderr, and the announce line is written regardless", async () => {
    let failures = 0;
    let announced = 0;
    const failing = createApprovalAnnouncer({ store, logger, hook: [node, "-e", "console.error('webhook said 500'); process.exit(3)"], env: { PATH: process.env.PATH }, onHookFailure: () => (failures += 1), onAnnounce: () => (announced += 1) });
    store.open(held);
    await failing.settled();
    failing.close();
    const missing = createApprovalAnnouncer({ store, logger, hook: [join(directory, "no-such-hook")], onHookFailure: () => (failures += 1) });
    store.open({ ...held, argumentsHash: "b".repeat(64) });
    await missing.settled();
    missing.close();
    assert.equal(failures, 2);
    assert.equal(announced, 1);
    const reasons = warnings.filter((warning) => warning.event === "approval-hook-failed").map((warning) => String(warning.reason));
    assert.match(reasons[0] ?? "", /exited 3: webhook said 500/);
    assert.match(reasons[1] ?? "", /ENOENT/);
    assert.equal(warnings.filter((warning) => warning.event === "approval-announce").length, 2);
  });

  test("a burst of requests runs at most 8 hooks at once; the rest are skipped and logged, not queued without bound", async () => {
    let failures = 0;
    const announcer = createApprovalAnnouncer({ store, logger, hook: [node, "-e", "setTimeout(() => {}, 400)"], env: { PATH: process.env.PATH }, onHookFailure: () => (failures += 1) });
    for (let index = 0; index < 12; index += 1) store.open({ ...held, argumentsHash: index.toString(16).padStart(64, "0") });
    await announcer.settled();
    announcer.close();
    assert.equal(failures, 4);
    assert.equal(warnings.filter((warning) => /skipped: 8 hooks are still running/.test(String(warning.reason))).length, 4);
  });
});
