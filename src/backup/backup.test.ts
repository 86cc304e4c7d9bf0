// Requirements (issue 17 item 3, seed 004 "back up ~/.hermes, but encrypt it … test restores"):
//   R1 create → verify → restore gives back the data directory exactly: files, modes, empty directories, long and
//      non-ASCII names, symbolic links as links (never their targets);
//   R2 the audit log is a consistent snapshot by SQLite's online backup: records a running writer holds only in its
//      WAL are in it, and a writer appending during the backup never yields a broken chain;
//   R3 archives are age files the age tool and GNU tar read;
//   R4 retention keeps the newest backup.keep archives and touches no other file;
//   R5 restore never replaces existing data without --force; with it the old data (and a stale WAL) is moved aside;
//   R6 the identity is read from a file, refused when others may read it, and never printed;
//   R7 the backup: section is strict: a secret key as recipient, backups or the identity inside the data directory,
//      relative paths are refused with the reason.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openAuditLog } from "../audit-log/index.ts";
import { parseConfig } from "../config/index.ts";
import { makeFixture, onlyArchive, perimeter, tree } from "./test-helpers.ts";

test("R1: create → verify → restore gives back every file, mode, empty directory, odd name and link (as a link)", async () => {
  const fixture = await makeFixture();
  const created = await perimeter(["backup", "create", "-c", fixture.config]);
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /^backup .*hermes-\d{8}T\d{6}Z\.tar\.age: .* 6 files .* audit log to record 25/);
  const archive = onlyArchive(fixture.backups);
  assert.equal(statSync(archive).mode & 0o777, 0o600, "archives are private");
  assert.equal(statSync(fixture.backups).mode & 0o777, 0o700);
  assert.equal(readFileSync(archive).includes("TELEGRAM_BOT_TOKEN"), false, "the archive is encrypted");

  const verified = await perimeter(["backup", "verify", "-c", fixture.config]);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout, /restores, 6 files .* match the manifest/);
  assert.match(verified.stdout, /audit log: intact, 25 records, head 25:[0-9a-f]{64}/);

  const target = join(fixture.root, "restored", ".hermes");
  const restored = await perimeter(["backup", "restore", archive, "-i", fixture.identityFile, "--data-dir", target, "--audit-db", join(fixture.root, "restored", "audit.db")]);
  assert.equal(restored.code, 0, restored.stderr);
  assert.deepEqual(tree(target), tree(fixture.data));
  assert.equal(statSync(target).mode & 0o777, 0o700, "the data directory's own mode comes back");
  assert.equal(tree(target)["absolute-link"], "link -> /etc/hostname", "a link is restored as a link, its target not copied");
  assert.deepEqual(readdirSync(join(fixture.root, "restored")).sort(), [".hermes", "audit.db"], "no staging leftovers");
  const audit = await perimeter(["audit-log", "verify", "--db", join(fixture.root, "restored", "audit.db")]);
  assert.equal(audit.code, 0, audit.stdout + audit.stderr);
  assert.match(audit.stdout, /intact, 25 records/);
});

test("R2: records a running writer holds only in its WAL are in the backup (online backup, not a file copy)", async () => {
  const fixture = await makeFixture({ records: 3 });
  const log = openAuditLog({ path: fixture.auditPath, signingKeyFile: join(fixture.root, "perimeter", "audit.pem"), checkpointEvery: 1000 });
  try {
    for (let index = 0; index < 400; index += 1) log.append({ component: "egress-proxy", type: "egress-decision", host: "api.telegram.org", decision: "allow" });
    assert.ok(statSync(`${fixture.auditPath}-wal`).size > 0, "the new records are still in the WAL: a copy of audit.db alone would miss them");
    const created = await perimeter(["backup", "create", "-c", fixture.config]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /audit log to record 403/);
  } finally {
    log.close();
  }
  const verified = await perimeter(["backup", "verify", "-c", fixture.config, "--json"]);
  assert.equal(verified.code, 0, verified.stderr);
  const result = JSON.parse(verified.stdout) as { ok: boolean; audit: { ok: boolean; records: number } };
  assert.deepEqual([result.ok, result.audit.ok, result.audit.records], [true, true, 403]);
});

test("R2: a writer appending in another process during backups never yields a broken or rolled-back chain", async () => {
  const fixture = await makeFixture({ records: 1 });
  const writer = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { openAuditLog } from ${JSON.stringify(new URL("../audit-log/index.ts", import.meta.url).href)};
       const log = openAuditLog({ path: ${JSON.stringify(fixture.auditPath)}, signingKeyFile: ${JSON.stringify(join(fixture.root, "perimeter", "audit.pem"))}, checkpointEvery: 7 });
       process.stdout.write("ready\\n");
       const timer = setInterval(() => { for (let i = 0; i < 20; i += 1) log.append({ component: "llm-proxy", type: "llm-request", client: "hermes", decision: "allow" }); }, 1);
       process.on("SIGTERM", () => { clearInterval(timer); log.close(); process.exit(0); });`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve) => writer.stdout.once("data", () => resolve()));
  try {
    const seen: number[] = [];
    for (let round = 0; round < 3; round += 1) {
      const output = join(fixture.root, `concurrent-${round}.tar.age`);
      const created = await perimeter(["backup", "create", "-c", fixture.config, "--output", output, "--json"]);
      assert.equal(created.code, 0, created.stderr);
      seen.push((JSON.parse(created.stdout) as { audit: { records: number } }).audit.records);
      const verified = await perimeter(["backup", "verify", output, "-c", fixture.config]);
      assert.equal(verified.code, 0, `round ${round}: ${verified.stdout}${verified.stderr}`);
    }
    assert.ok(seen.every((count, index) => index === 0 || count > (seen[index - 1] ?? 0)), `the writer kept appending between backups: ${seen.join(", ")}`);
  } finally {
    writer.kill("SIGTERM");
    await new Promise((resolve) => writer.once("exit", resolve));
  }
});

test("R3: an archive opens with the age tool and lists with GNU tar (age -d -i KEY ARCHIVE | tar -t)", async (t) => {
  if (spawnSync("age", ["--version"]).status !== 0) {
    t.skip("the age tool is not installed (scripts/install-system-packages.sh installs it)");
    return;
  }
  const fixture = await makeFixture();
  assert.equal((await perimeter(["backup", "create", "-c", fixture.config])).code, 0);
  const decrypted = spawnSync("age", ["-d", "-i", fixture.identityFile, onlyArchive(fixture.backups)], { maxBuffer: 64 * 1024 * 1024 });
  assert.equal(decrypted.status, 0, decrypted.stderr.toString());
  const listed = spawnSync("tar", ["-tvf", "-"], { input: decrypted.stdout });
  assert.equal(listed.status, 0, listed.stderr.toString());
  const lines = listed.stdout.toString();
  assert.match(lines, /^-rw------- .* backup\.json$/m);
  assert.match(lines, /^lrwxrwxrwx .* data\/absolute-link -> \/etc\/hostname$/m);
  assert.match(lines, /data\/sessions\/(long-name-){15}\.json$/m, "a name over 100 bytes survives through a pax header");
  assert.match(lines, /data\/sessions\/mémoire ✓\.md$/m);
  assert.match(lines, /audit\.db\n.*manifest\.json\n?$/, "manifest.json comes last");
});

test("R4: retention keeps the newest backup.keep archives and never touches other files", async () => {
  const fixture = await makeFixture({ keep: 2 });
  mkdirSync(fixture.backups, { recursive: true, mode: 0o700 });
  const foreign = ["notes.txt", "other-20200101T000000Z.tar.age", "hermes-latest.tar.age"];
  for (const name of foreign) writeFileSync(join(fixture.backups, name), "keep me");
  // Older archives of this name, as earlier runs left them.
  for (const stamp of ["20240101T000000Z", "20250101T000000Z", "20250601T000000Z"]) writeFileSync(join(fixture.backups, `hermes-${stamp}.tar.age`), "old");
  const created = await perimeter(["backup", "create", "-c", fixture.config]);
  assert.equal(created.code, 0, created.stderr);
  assert.equal((created.stdout.match(/^removed /gm) ?? []).length, 2, "four archives of this name, two kept");
  const left = readdirSync(fixture.backups).sort();
  const archives = left.filter((name) => /^hermes-\d{8}T\d{6}Z\.tar\.age$/.test(name));
  assert.equal(archives.length, 2);
  assert.ok(archives.includes("hermes-20250601T000000Z.tar.age"), "the newest older archive stays");
  for (const name of foreign) assert.ok(left.includes(name), `${name} is not ours to remove`);
  assert.ok(!left.some((name) => name.startsWith(".perimeter-backup-")), "no work directory is left behind");
});

test("R5: restore refuses existing data without --force and changes nothing; --force moves it (and a stale WAL) aside", async () => {
  const fixture = await makeFixture();
  assert.equal((await perimeter(["backup", "create", "-c", fixture.config])).code, 0);
  const archive = onlyArchive(fixture.backups);
  const before = tree(fixture.data);
  writeFileSync(join(fixture.data, "written-after-backup.txt"), "newer");
  writeFileSync(`${fixture.auditPath}-wal`, "stale WAL of another database");
  const current = tree(fixture.data);

  const refused = await perimeter(["backup", "restore", archive, "-c", fixture.config]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /already exist; nothing was changed\. .* --force/);
  assert.deepEqual(tree(fixture.data), current);
  assert.equal(readFileSync(`${fixture.auditPath}-wal`, "utf8"), "stale WAL of another database");

  const forced = await perimeter(["backup", "restore", archive, "-c", fixture.config, "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(tree(fixture.data), before, "the data directory is the backed-up one");
  const moved = readdirSync(join(fixture.root, "home")).filter((name) => name.startsWith(".hermes.replaced-"));
  assert.equal(moved.length, 1);
  assert.equal(readFileSync(join(fixture.root, "home", moved[0] as string, "written-after-backup.txt"), "utf8"), "newer", "replaced data is kept, not deleted");
  assert.equal(existsSync(`${fixture.auditPath}-wal`), false, "a stale WAL would be replayed into the restored log");
  const audit = await perimeter(["audit-log", "verify", "--db", fixture.auditPath]);
  assert.equal(audit.code, 0, audit.stdout + audit.stderr);

  const empty = join(fixture.root, "empty-target");
  mkdirSync(empty);
  const intoEmpty = await perimeter(["backup", "restore", archive, "-i", fixture.identityFile, "--data-dir", empty, "--audit-db", join(fixture.root, "empty.db")]);
  assert.equal(intoEmpty.code, 0, `an empty directory (mkdir -p ~/.hermes) is not data: ${intoEmpty.stderr}`);
});

test("R6: the identity comes from a file, is refused when others may read it, and never appears in output", async () => {
  const fixture = await makeFixture();
  assert.equal((await perimeter(["backup", "create", "-c", fixture.config])).code, 0);
  const archive = onlyArchive(fixture.backups);
  chmodSync(fixture.identityFile, 0o644);
  const loose = await perimeter(["backup", "verify", archive, "-i", fixture.identityFile]);
  assert.equal(loose.code, 1);
  assert.match(loose.stderr, /may be read by other users \(mode 644\).*chmod 600/);
  chmodSync(fixture.identityFile, 0o600);

  // A damaged key: the library's own error quotes it; ours must not.
  const damaged = fixture.identity.slice(0, -6) + "QQQQQQ";
  writeFileSync(fixture.identityFile, `${damaged}\n`, { mode: 0o600 });
  const result = await perimeter(["backup", "verify", archive, "-i", fixture.identityFile]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /line 1 of the identity file .* is not an age identity/);
  const secretPart = damaged.slice("AGE-SECRET-KEY-1".length, -6);
  for (const output of [result.stdout, result.stderr]) {
    assert.equal(output.includes(secretPart) || output.toLowerCase().includes(secretPart.toLowerCase()), false, "the identity is never printed");
  }
  const none = await perimeter(["backup", "restore", archive, "--data-dir", join(fixture.root, "x")]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /pass the age identity that opens the archive with -i FILE, or set backup.identityFile/);
});

test("R7: the backup: section refuses a secret key as recipient, backups or identity inside the data directory, relative paths", () => {
  const base = { version: 1, name: "hermes" };
  const section = { dataDirectory: "/var/lib/hermes/.hermes", directory: "/var/backups/perimeter", recipients: ["age1yzesgs82kzh8tjty6dyleegqgj5p962rzgr5hmgadjs8xqsrec0stdk6kt"] };
  const parsed = parseConfig(JSON.stringify({ ...base, backup: section }));
  assert.deepEqual([parsed.backup?.keep, parsed.backup?.auditLog], [7, true]);
  const refusals: Array<[Record<string, unknown>, RegExp]> = [
    [{ recipients: ["AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"] }, /age identity \(a secret key\), not a recipient/],
    [{ recipients: ["ssh-ed25519 AAAA"] }, /is not an age public key/],
    [{ recipients: [] }, /at least one age public key/],
    [{ directory: "/var/lib/hermes/.hermes/backups" }, /agent could delete or replace its own backups/],
    [{ identityFile: "/var/lib/hermes/.hermes/backup.key" }, /agent could read the key to every backup/],
    [{ identityFile: "/var/backups/perimeter/key.txt" }, /next to the archives it opens/],
    [{ dataDirectory: "hermes-data" }, /use an absolute path/],
    [{ keeep: 3 }, /keeep/],
  ];
  for (const [change, message] of refusals) {
    assert.throws(() => parseConfig(JSON.stringify({ ...base, backup: { ...section, ...change } })), message, JSON.stringify(change));
  }
});

test("create without a backup: section, or with a missing audit log, says how to fix it", async () => {
  const fixture = await makeFixture();
  const bare = join(fixture.root, "bare.yaml");
  writeFileSync(bare, "version: 1\nname: hermes\n");
  const none = await perimeter(["backup", "create", "-c", bare]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no backup: section; add one with dataDirectory, directory and recipients/);
  const missing = join(fixture.root, "missing-audit.yaml");
  writeFileSync(missing, readFileSync(fixture.config, "utf8").replace(fixture.auditPath, join(fixture.root, "nowhere.db")));
  const result = await perimeter(["backup", "create", "-c", missing]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /no audit log at .*nowhere\.db.*set backup\.auditLog: false to back up the data directory alone/);
  assert.equal(existsSync(join(fixture.root, "nowhere.db")), false, "the missing log is not created");
});
