// Requirements (issue 5 and DESIGN.md "Command line"): `perimeter audit-log verify [--db FILE] [--public-key FILE]`
// exits 0 when intact; `tail [-n N] [--follow] [--json]` prints records for people (escaped) or machines; --db
// defaults to the config's audit.path with -c; a missing or bad database exits 2 with a message saying how to fix it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { openAuditLog } from "./index.ts";
import { perimeter, temporaryDirectory, writeLog } from "./test-helpers.ts";

test("verify exits 0 on an intact log found through -c perimeter.yaml (audit.path relative to the working directory)", async () => {
  const directory = temporaryDirectory();
  mkdirSync(join(directory, "data"));
  const log = openAuditLog({ path: join(directory, "data", "audit.db"), signingKeyFile: join(directory, "keys", "audit.pem") });
  log.append({ component: "egress-proxy", type: "egress-decision", host: "api.telegram.org", decision: "allow" });
  log.close();
  writeFileSync(join(directory, "perimeter.yaml"), "version: 1\nname: hermes\naudit:\n  path: data/audit.db\n  signingKeyFile: keys/audit.pem\n");
  const result = await perimeter(["audit-log", "verify", "-c", "perimeter.yaml", "--public-key", "keys/audit.pem.pub"], { cwd: directory });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /intact, 1 records, 2 checkpoints, head 1:[0-9a-f]{64}/);
  assert.match(result.stdout, /signed by ed25519:[A-Za-z0-9+/]{43}=/);
  const json = await perimeter(["audit-log", "verify", "-c", "perimeter.yaml", "--json"], { cwd: directory });
  assert.equal(json.code, 0);
  const parsed = JSON.parse(json.stdout) as { ok: boolean; records: number; keySource: string; path: string };
  assert.deepEqual([parsed.ok, parsed.records, parsed.keySource, parsed.path], [true, 1, "file", join(directory, "data", "audit.db")]);
});

test("verify and tail exit 2 saying how to fix it: no --db or -c, a missing file, a file that is not an audit log", async () => {
  const directory = temporaryDirectory();
  for (const subcommand of ["verify", "tail"]) {
    const none = await perimeter(["audit-log", subcommand], { cwd: directory });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /name the audit database with --db FILE, or pass the config with -c perimeter.yaml to use its audit.path/);
    const missing = await perimeter(["audit-log", subcommand, "--db", "nope.db"], { cwd: directory });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, new RegExp(`no audit log at ${join(directory, "nope.db")}; pass the file with --db`));
    assert.equal(existsSync(join(directory, "nope.db")), false, "readers never create the file");
  }
  const other = new DatabaseSync(join(directory, "other.db"));
  other.exec("CREATE TABLE llm_proxy_usage (client TEXT)");
  other.close();
  writeFileSync(join(directory, "text.db"), "not a database at all, just text that is long enough to have a header ".repeat(10));
  for (const file of ["other.db", "text.db"]) {
    const result = await perimeter(["audit-log", "verify", "--db", file], { cwd: directory });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /not a Perimeter audit log|cannot read the audit log/);
  }
  const badConfig = await perimeter(["audit-log", "verify", "-c", "missing.yaml"], { cwd: directory });
  assert.equal(badConfig.code, 2);
  assert.match(badConfig.stderr, /no such file \(pass the path with -c FILE\)/);
});

test("verify exits 2 on an unusable public key or known head: a private key, a missing file, garbage", async () => {
  const { path, keyFile, directory } = writeLog(3);
  writeFileSync(join(directory, "garbage.pub"), "hello");
  const cases: Array<[string[], RegExp]> = [
    [["--public-key", keyFile], /holds a private key; pass the public key/],
    [["--public-key", join(directory, "absent.pub")], /cannot read the public key .*absent.pub: no such file/],
    [["--public-key", join(directory, "garbage.pub")], /neither a PEM public key nor "ed25519:<base64 of 32 bytes>"/],
    [["--known-head", "12"], /--known-head takes SEQ:HASH/],
    [["--bogus"], /Unknown option '--bogus'/],
  ];
  for (const [flags, message] of cases) {
    const result = await perimeter(["audit-log", "verify", "--db", path, ...flags]);
    assert.equal(result.code, 2, flags.join(" "));
    assert.match(result.stderr, message);
  }
});

test("verify accepts the public key as printed (ed25519:<base64>) and warns when records are not yet checkpointed", async () => {
  const directory = temporaryDirectory();
  const path = join(directory, "audit.db");
  const keyFile = join(directory, "audit.pem");
  const log = openAuditLog({ path, signingKeyFile: keyFile, checkpointEvery: 100 });
  for (let index = 0; index < 3; index += 1) log.append({ component: "sandbox", type: "sandbox-run", index });
  const printed = await perimeter(["audit-log", "public-key", "--key", keyFile]);
  assert.equal(printed.code, 0);
  const [line] = printed.stdout.split("\n");
  writeFileSync(join(directory, "printed.pub"), `${line}\n`);
  const result = await perimeter(["audit-log", "verify", "--db", path, "--public-key", join(directory, "printed.pub")]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stderr, /records 1\.\.3 are not yet covered by a checkpoint/);
  log.close();
});

test("public-key prints the signing key's public half (same as the .pub file) from --key or -c, and exits 2 without one", async () => {
  const { keyFile, directory } = writeLog(1);
  writeFileSync(join(directory, "perimeter.yaml"), `version: 1\nname: hermes\naudit:\n  path: audit.db\n  signingKeyFile: ${keyFile}\n`);
  const fromKey = await perimeter(["audit-log", "public-key", "--key", keyFile]);
  const fromConfig = await perimeter(["audit-log", "public-key", "-c", "perimeter.yaml"], { cwd: directory });
  assert.equal(fromKey.code, 0);
  assert.equal(fromConfig.stdout, fromKey.stdout);
  assert.match(fromKey.stdout, /^ed25519:[A-Za-z0-9+/]{43}=\n-----BEGIN PUBLIC KEY-----\n/);
  assert.ok(fromKey.stdout.endsWith(readFileSync(`${keyFile}.pub`, "utf8")));
  assert.ok(!fromKey.stdout.includes("PRIVATE"));
  const none = await perimeter(["audit-log", "public-key"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /pass the signing key with --key FILE, or the config with -c/);
  writeFileSync(join(directory, "nokey.yaml"), "version: 1\nname: hermes\n");
  const noKey = await perimeter(["audit-log", "public-key", "-c", "nokey.yaml"], { cwd: directory });
  assert.equal(noKey.code, 2);
  assert.match(noKey.stderr, /sets no audit.signingKeyFile/);
});

test("tail prints the newest records as one line each, or JSON with --json", async () => {
  const { path } = writeLog(15);
  const last = await perimeter(["audit-log", "tail", "--db", path]);
  assert.equal(last.code, 0);
  const lines = last.stdout.trimEnd().split("\n");
  assert.equal(lines.length, 10);
  assert.match(lines[0] ?? "", /^\d{4}-\d\d-\d\dT[\d:.]+Z #6 mcp-guard tool-call agent=hermes decision=allow marker=marker-0006 tool=github__get_issue$/);
  const three = await perimeter(["audit-log", "tail", "-n", "3", "--json", "--db", path]);
  const records = three.stdout
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line) as { seq: number; hash: string; data: { marker: string } });
  assert.deepEqual(
    records.map((record) => record.seq),
    [13, 14, 15],
  );
  assert.equal(records[2]?.data.marker, "marker-0015");
  assert.match(records[2]?.hash ?? "", /^[0-9a-f]{64}$/);
  const bad = await perimeter(["audit-log", "tail", "-n", "ten", "--db", path]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /-n takes a number of records/);
});

test("tail escapes terminal control sequences and bidirectional overrides from agent-supplied fields", async () => {
  const directory = temporaryDirectory();
  const path = join(directory, "audit.db");
  const log = openAuditLog({ path });
  const hostile = "\u001b]0;owned\u0007\u001b[2J\u009b31m\u202eevil\r\nfake 2026-01-01T00:00:00.000Z #99 approvals approval-decision";
  log.append({ component: "mcp-guard", type: "tool-call", arguments: { title: hostile }, [hostile]: 1 });
  log.close();
  for (const flags of [[], ["--json"]]) {
    const result = await perimeter(["audit-log", "tail", "--db", path, ...flags]);
    assert.equal(result.code, 0);
    assert.doesNotMatch(result.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/, `raw control character in ${flags.join(" ") || "text"} output`);
    assert.equal(result.stdout.trimEnd().split("\n").length, 1, "a record stays on one line");
    assert.match(result.stdout, /\\u001b\]0;owned\\u0007/);
    assert.match(result.stdout, /\\u202eevil/);
  }
  const json = await perimeter(["audit-log", "tail", "--db", path, "--json"]);
  assert.equal((JSON.parse(json.stdout) as { data: { arguments: { title: string } } }).data.arguments.title, hostile, "the JSON still decodes to the original");
});

test("tail --follow prints records appended after it started, and returns 0 when the signal aborts", { timeout: 30_000 }, async () => {
  const directory = temporaryDirectory();
  const path = join(directory, "audit.db");
  const log = openAuditLog({ path });
  log.append({ component: "approvals", type: "approval-request", id: "a1" });
  const controller = new AbortController();
  let output = "";
  const following = perimeter(["audit-log", "tail", "--follow", "-n", "5", "--db", path], {
    signal: controller.signal,
    onOutput: (text) => (output = text),
  });
  const waitFor = async (pattern: RegExp) => {
    for (let attempt = 0; attempt < 200 && !pattern.test(output); attempt += 1) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.match(output, pattern);
  };
  await waitFor(/#1 approvals approval-request id=a1/);
  log.append({ component: "approvals", type: "approval-decision", id: "a1", decision: "approve" });
  for (let index = 0; index < 1500; index += 1) log.append({ component: "cli", type: "test-run", index });
  await waitFor(/#2 approvals approval-decision decision=approve id=a1/);
  await waitFor(/#1502 cli test-run index=1499\n$/);
  controller.abort();
  const result = await following;
  assert.equal(result.code, 0);
  const seqs = [...result.stdout.matchAll(/ #(\d+) /g)].map((match) => Number(match[1]));
  assert.deepEqual(
    seqs,
    Array.from({ length: 1502 }, (_, index) => index + 1),
    "every record once, in order, across poll batches",
  );
  log.close();
});

test("audit-log with no subcommand or an unknown one exits 2; --help exits 0", async () => {
  const none = await perimeter(["audit-log"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /name a subcommand: verify, tail or public-key/);
  const unknown = await perimeter(["audit-log", "rewrite"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown subcommand "rewrite"/);
  const help = await perimeter(["audit-log", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /perimeter audit-log verify \[--db FILE\] \[--public-key FILE\]/);
});

test("verify reads a copy kept in a read-only directory, and refuses one whose WAL would be ignored there", () => {
  const bin = new URL("../../bin/perimeter.js", import.meta.url).pathname;
  const directory = temporaryDirectory();
  const live = join(directory, "live.db");
  const log = openAuditLog({ path: live, checkpointEvery: 1000 });
  for (let index = 0; index < 4; index += 1) log.append({ component: "sandbox", type: "sandbox-run", index });
  // While the writer is open the records sit in the WAL file; copy both files as a careless backup would.
  mkdirSync(join(directory, "with-wal"));
  copyFileSync(live, join(directory, "with-wal", "audit.db"));
  copyFileSync(`${live}-wal`, join(directory, "with-wal", "audit.db-wal"));
  log.close();
  mkdirSync(join(directory, "clean"));
  copyFileSync(live, join(directory, "clean", "audit.db"));
  for (const name of ["with-wal", "clean"]) {
    chmodSync(join(directory, name), 0o555);
    for (const file of readdirSync(join(directory, name))) chmodSync(join(directory, name, file), 0o444);
  }
  chmodSync(directory, 0o755);
  // Root ignores directory permissions, so run the verifier as nobody when the tests run as root (as in CI).
  const asReader = (file: string) =>
    process.getuid?.() === 0
      ? spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, bin, "audit-log", "verify", "--db", file], { encoding: "utf8", timeout: 30_000 })
      : spawnSync(process.execPath, [bin, "audit-log", "verify", "--db", file], { encoding: "utf8", timeout: 30_000 });
  const clean = asReader(join(directory, "clean", "audit.db"));
  assert.equal(clean.status, 0, clean.stderr);
  assert.match(clean.stdout, /intact, 4 records/);
  const withWal = asReader(join(directory, "with-wal", "audit.db"));
  assert.equal(withWal.status, 2, withWal.stdout + withWal.stderr);
  assert.match(withWal.stderr, /holds records not yet in the main file; copy both files to a writable directory/);
});
