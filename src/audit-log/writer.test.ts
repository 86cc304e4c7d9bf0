// Requirements for the audit-log writer (issue 5, "Audit log"): every append leaves a hash-chained record in a real
// SQLite file; bad input and any write failure throw AuditWriteError so the caller fails closed; files and keys are
// created private; checkpoints are signed with an Ed25519 key generated on first use.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { AuditWriteError, openAuditLog, readAuditRecords, verifyAuditLog } from "./index.ts";
import type { AuditRecord } from "./index.ts";
import { query, tamper, temporaryDirectory } from "./test-helpers.ts";

// An independent statement of the hash: SHA-256 (hex) of JSON with keys sorted at every level, no whitespace.
function sortedJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(",")}]`;
  return `{${Object.keys(value)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${sortedJson((value as Record<string, unknown>)[key])}`)
    .join(",")}}`;
}

function expectedHash(record: AuditRecord): string {
  const { seq, time, component, type, data, prevHash } = record;
  return createHash("sha256").update(sortedJson({ seq, time, component, type, data, prevHash })).digest("hex");
}

test("every append leaves a record, chained to the previous one by hash over sorted-key JSON", () => {
  const path = join(temporaryDirectory(), "audit.db");
  let clock = Date.parse("2026-01-02T03:04:05.000Z");
  const log = openAuditLog({ path, checkpointEvery: 10, now: () => new Date((clock += 1000)) });
  const appended: AuditRecord[] = [];
  const components = ["egress-proxy", "sandbox", "mcp-guard", "llm-proxy", "approvals", "cli"] as const;
  for (let index = 0; index < 30; index += 1) {
    const component = components[index % components.length] ?? "cli";
    appended.push(log.append({ component, type: "tool-call", index, nested: { z: [1, "two", null, true], a: { b: index } } }));
  }
  log.close();
  const stored = readAuditRecords(path, { limit: 100 });
  assert.deepEqual(stored, appended);
  assert.deepEqual(
    stored.map((record) => record.seq),
    Array.from({ length: 30 }, (_, index) => index + 1),
  );
  assert.equal(stored[0]?.prevHash, "0".repeat(64));
  // The first tick of the clock went to the "open" checkpoint.
  assert.equal(stored[0]?.time, "2026-01-02T03:04:07.000Z");
  for (const [index, record] of stored.entries()) {
    assert.equal(record.hash, expectedHash(record), `record ${record.seq} hash`);
    if (index > 0) assert.equal(record.prevHash, stored[index - 1]?.hash);
  }
  const verification = verifyAuditLog(path);
  assert.equal(verification.ok, true);
  assert.equal(verification.ok && verification.records, 30);
});

test("the log is created private: directories 0700, database, WAL and shared-memory files 0600, key 0600", () => {
  const directory = temporaryDirectory();
  const path = join(directory, "nested", "deeper", "audit.db");
  const keyFile = join(directory, "keys", "audit.pem");
  const log = openAuditLog({ path, signingKeyFile: keyFile, synchronous: "full" });
  log.append({ component: "cli", type: "test-run" });
  const mode = (file: string) => statSync(file).mode & 0o777;
  assert.equal(mode(join(directory, "nested")), 0o700);
  assert.equal(mode(join(directory, "nested", "deeper")), 0o700);
  for (const file of [path, `${path}-wal`, `${path}-shm`]) assert.equal(mode(file), 0o600, file);
  assert.equal(mode(keyFile), 0o600);
  assert.equal(mode(join(directory, "keys")), 0o700);
  assert.match(readFileSync(`${keyFile}.pub`, "utf8"), /BEGIN PUBLIC KEY/);
  log.close();
});

test("the signing key is generated once and reused; checkpoints are written on open, every N records and on close", () => {
  const directory = temporaryDirectory();
  const path = join(directory, "audit.db");
  const keyFile = join(directory, "audit.pem");
  const first = openAuditLog({ path, signingKeyFile: keyFile, checkpointEvery: 5 });
  for (let index = 0; index < 12; index += 1) first.append({ component: "egress-proxy", type: "egress-decision", index });
  first.close();
  const key = readFileSync(keyFile, "utf8");
  const second = openAuditLog({ path, signingKeyFile: keyFile, checkpointEvery: 5 });
  second.append({ component: "egress-proxy", type: "egress-decision" });
  second.close();
  assert.equal(readFileSync(keyFile, "utf8"), key);
  const checkpoints = query(path, "SELECT record_seq, reason, public_key FROM audit_log_checkpoints ORDER BY id");
  assert.deepEqual(
    checkpoints.map((row) => `${String(row.reason)}@${String(row.record_seq)}`),
    ["open@0", "periodic@5", "periodic@10", "close@12", "open@12", "close@13"],
  );
  assert.equal(new Set(checkpoints.map((row) => row.public_key)).size, 1);
  assert.equal(second.publicKey, checkpoints[0]?.public_key, "the log tells its service which key it signs with");
  const verification = verifyAuditLog(path, { publicKey: readFileSync(`${keyFile}.pub`, "utf8") });
  assert.ok(verification.ok, JSON.stringify(verification));
  assert.deepEqual(verification.signedBy, [checkpoints[0]?.public_key]);
  assert.equal(verification.uncheckpointed, 0);
});

test("invalid events are refused with a message saying what to fix, and leave no record", () => {
  const path = join(temporaryDirectory(), "audit.db");
  const log = openAuditLog({ path });
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  const cases: Array<[unknown, RegExp]> = [
    [{ component: "intruder", type: "tool-call" }, /unknown audit component "intruder"; use one of egress-proxy, sandbox/],
    [{ type: "tool-call" }, /unknown audit component/],
    [{ component: "cli", type: "Tool Call" }, /noun-verb name/],
    [{ component: "cli", type: "" }, /noun-verb name/],
    [{ component: "cli", type: "tool-call", latency: Number.NaN }, /event.latency is NaN/],
    [{ component: "cli", type: "tool-call", size: Infinity }, /event.size is Infinity/],
    [{ component: "cli", type: "tool-call", at: new Date() }, /event.at is a Date.*toISOString/],
    [{ component: "cli", type: "tool-call", error: new Error("boom") }, /event.error is a Error.*error.message/],
    [{ component: "cli", type: "tool-call", nested: { big: 1n } }, /event.nested.big is a bigint/],
    [{ component: "cli", type: "tool-call", callback: () => 1 }, /event.callback is a function/],
    [{ component: "cli", type: "tool-call", list: [1, undefined] }, /event.list\[1\] is undefined; use null/],
    [{ component: "cli", type: "tool-call", cycle }, /refers to itself/],
    [{ component: "cli", type: "tool-call", map: new Map() }, /event.map is a Map/],
    [{ component: "cli", type: "tool-call", result: "x".repeat(1024 * 1024 + 1) }, /limit is 1048576: record sizes or hashes/],
  ];
  for (const [event, message] of cases) {
    assert.throws(
      () => log.append(event as never),
      (error: unknown) => error instanceof AuditWriteError && message.test(error.message),
      `expected ${String(message)}`,
    );
  }
  log.close();
  assert.equal(readAuditRecords(path).length, 0);
});

test("field values survive exactly: undefined properties dropped as in JSON, a __proto__ key kept as a field, -0 as 0", () => {
  const path = join(temporaryDirectory(), "audit.db");
  const log = openAuditLog({ path });
  const agentArguments = JSON.parse('{"__proto__": {"admin": true}, "unicode": "h\\u00e9\\ud83d\\ude00", "zero": -0}') as Record<string, unknown>;
  const record = log.append({ component: "mcp-guard", type: "tool-call", error: undefined, arguments: agentArguments });
  log.close();
  const [stored] = readAuditRecords(path);
  assert.deepEqual(Object.keys(stored?.data ?? {}), ["arguments"]);
  const storedArguments = stored?.data.arguments as Record<string, unknown>;
  assert.deepEqual(Object.keys(storedArguments), ["__proto__", "unicode", "zero"]);
  assert.deepEqual(Object.getOwnPropertyDescriptor(storedArguments, "__proto__")?.value, { admin: true });
  assert.equal(storedArguments.unicode, "hé😀");
  assert.ok(Object.is(storedArguments.zero, 0));
  assert.equal(stored?.hash, record.hash);
  assert.equal(verifyAuditLog(path).ok, true);
});

test("an unwritable path makes openAuditLog throw AuditWriteError naming it, so a service cannot start unaudited", () => {
  const directory = temporaryDirectory();
  const file = join(directory, "not-a-directory");
  writeFileSync(file, "x");
  // A path below a regular file cannot be created even by root (CI runs as root, so permission bits prove nothing).
  const path = join(file, "audit", "audit.db");
  assert.throws(
    () => openAuditLog({ path }),
    (error: unknown) => error instanceof AuditWriteError && error.message.includes(join(file, "audit")) && /ENOTDIR|not a directory/.test(error.message),
  );
  assert.throws(
    () => openAuditLog({ path: join(directory, "audit.db"), signingKeyFile: join(file, "key.pem") }),
    (error: unknown) => error instanceof AuditWriteError && /signing key/.test(error.message),
  );
});

test("append throws AuditWriteError and records nothing while another process holds the write lock past the busy timeout", () => {
  const path = join(temporaryDirectory(), "audit.db");
  const log = openAuditLog({ path, busyTimeoutMs: 150 });
  log.append({ component: "approvals", type: "approval-decision", decision: "approve" });
  const other = new DatabaseSync(path);
  other.exec("BEGIN IMMEDIATE");
  const started = Date.now();
  assert.throws(
    () => log.append({ component: "approvals", type: "approval-decision", decision: "deny" }),
    (error: unknown) => error instanceof AuditWriteError && /locked|busy/i.test(error.message) && /nothing was recorded/.test(error.message),
  );
  assert.ok(Date.now() - started >= 100, "waited for the busy timeout before failing");
  other.exec("ROLLBACK");
  other.close();
  const after = log.append({ component: "approvals", type: "approval-decision", decision: "deny" });
  assert.equal(after.seq, 2);
  log.close();
  assert.deepEqual(
    readAuditRecords(path).map((record) => record.data.decision),
    ["approve", "deny"],
  );
  assert.equal(verifyAuditLog(path).ok, true);
});

test("append throws AuditWriteError when the database is damaged under a running writer, and after close", () => {
  const path = join(temporaryDirectory(), "audit.db");
  const log = openAuditLog({ path });
  log.append({ component: "sandbox", type: "sandbox-run" });
  tamper(path, "DROP TABLE audit_log_records");
  assert.throws(() => log.append({ component: "sandbox", type: "sandbox-run" }), AuditWriteError);
  assert.throws(() => log.close(), AuditWriteError);
  assert.throws(
    () => log.append({ component: "sandbox", type: "sandbox-run" }),
    (error: unknown) => error instanceof AuditWriteError && /closed/.test(error.message),
  );
});

test("the append-only triggers stop accidental UPDATE and DELETE by other code sharing the file", () => {
  const path = join(temporaryDirectory(), "audit.db");
  const log = openAuditLog({ path });
  log.append({ component: "llm-proxy", type: "llm-request" });
  const database = new DatabaseSync(path);
  assert.throws(() => database.exec("UPDATE audit_log_records SET type = 'x'"), /append-only/);
  assert.throws(() => database.exec("DELETE FROM audit_log_checkpoints"), /append-only/);
  // Other capabilities' tables live beside ours in the same file.
  database.exec("CREATE TABLE llm_proxy_usage (client TEXT); INSERT INTO llm_proxy_usage VALUES ('hermes')");
  database.close();
  log.append({ component: "llm-proxy", type: "llm-request" });
  log.close();
  assert.equal(verifyAuditLog(path).ok, true);
});

test("a signing key file holding a non-Ed25519 key is refused with how to fix it", () => {
  const directory = temporaryDirectory();
  const keyFile = join(directory, "rsa.pem");
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  writeFileSync(keyFile, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
  assert.throws(
    () => openAuditLog({ path: join(directory, "audit.db"), signingKeyFile: keyFile }),
    (error: unknown) => error instanceof AuditWriteError && /rsa key.*Ed25519.*openssl genpkey -algorithm ed25519/.test(error.message),
  );
  assert.equal(existsSync(join(directory, "audit.db")), true, "the database itself was creatable");
});

test("without a signing key the checkpoints are unsigned: verify passes on its own but fails against a public key", () => {
  const directory = temporaryDirectory();
  const path = join(directory, "audit.db");
  const log = openAuditLog({ path, checkpointEvery: 2 });
  for (let index = 0; index < 5; index += 1) log.append({ component: "cli", type: "test-run", index });
  log.close();
  const alone = verifyAuditLog(path);
  assert.ok(alone.ok);
  assert.equal(alone.keySource, "none");
  assert.deepEqual(alone.signedBy, []);
  const { publicKey } = generateKeyPairSync("ed25519");
  const againstKey = verifyAuditLog(path, { publicKey: publicKey.export({ format: "pem", type: "spki" }).toString() });
  assert.equal(againstKey.ok, false);
  assert.match(againstKey.ok ? "" : againstKey.reason, /not signed/);
});

test("bad options are refused when the log is opened, not on the first append", () => {
  const path = join(temporaryDirectory(), "audit.db");
  assert.throws(() => openAuditLog({ path, checkpointEvery: 0 }), /checkpointEvery must be a positive integer/);
  assert.throws(() => openAuditLog({ path: "" }), /needs a path/);
  assert.throws(() => openAuditLog({ path, synchronous: "off" as "full" }), /synchronous must be "normal" or "full", not "off"/);
  assert.equal(existsSync(path), false);
});

test("the writer's hash over already-canonical data equals the verifier's recordHash, for awkward data", async () => {
  const { recordHash, recordHashOfCanonicalData } = await import("./format.ts");
  const { canonicalJson } = await import("./canonical.ts");
  const samples = [
    {},
    { z: 1, a: [1, "two", null, { y: true, b: -0.5 }], "\u00e9": "caf\u00e9", "\"q\"": "line\nbreak\u2028", ["__proto__"]: { x: 1 } },
    { nested: { deeper: { deepest: [[], {}] } }, big: 12345678901234, small: 1e-7 },
  ];
  for (const [index, data] of samples.entries()) {
    const fields = { seq: index + 1, time: "2026-11-21T22:00:00.000Z", component: "egress-proxy", type: "egress-decision", prevHash: "ab".repeat(32) };
    assert.equal(recordHashOfCanonicalData(fields, canonicalJson(data as never)), recordHash({ ...fields, data: data as never }));
  }
});

test("the fast canonical text (sorted insertion + JSON.stringify) equals canonicalJson, index-like keys included", async () => {
  const { canonicalJson, toCanonicalJson } = await import("./canonical.ts");
  const cases: unknown[] = [
    { b: 1, a: { d: [1, { z: 0, y: -0 }], c: "é" }, "": null },
    { 10: "ten", 2: "two", b: true, a: 1 },
    { "01": 1, "1": 2, "4294967295": 3, "4294967294": 4, x: { "0": [] } },
    JSON.parse('{"__proto__": {"polluted": true}, "Z": 1, "z": 2, "é": 3, "e\\u0301": 4}'),
    [{ b: 2, a: 1 }, "s", 3.5, false],
  ];
  for (const input of cases) {
    const { value, text } = toCanonicalJson(input, "event");
    assert.equal(text, canonicalJson(value), JSON.stringify(input));
    assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)));
  }
});

test("an event's component and type are left out of its data at the top level only", async () => {
  const { toCanonicalJson } = await import("./canonical.ts");
  const omit = new Set(["component", "type"]);
  const { value, text } = toCanonicalJson({ type: "t", component: "c", zero: -0, inner: { type: "kept", component: "kept" }, n: 1.5 }, "event", omit);
  assert.equal(text, '{"inner":{"component":"kept","type":"kept"},"n":1.5,"zero":0}');
  assert.deepEqual(Object.keys(value as object), ["inner", "n", "zero"]);
  assert.throws(() => toCanonicalJson({ type: "t", big: -Infinity }, "event", omit), /event.big is -Infinity/);
});
