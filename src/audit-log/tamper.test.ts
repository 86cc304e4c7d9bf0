// Requirements (issue 5, "Audit log"): editing, deleting, reordering or truncating the SQLite file is detected by
// `verify`, which names the first broken record, and `perimeter audit-log verify` exits 1 naming it. Each attack is
// carried out on a real closed log the way someone with write access to the file would: through the SQLite API (with
// the append-only triggers dropped), or by editing the file's bytes. 22 records, a checkpoint every 5: signed
// checkpoints at records 0 (open), 5, 10, 15, 20 and 22 (close).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { canonicalJson } from "./canonical.ts";
import type { JsonValue } from "./canonical.ts";
import { GENESIS_HASH, checkpointMessage, recordHash } from "./format.ts";
import { verifyAuditLog } from "./index.ts";
import type { AuditVerification } from "./index.ts";
import { perimeter, query, tamper, writeLog } from "./test-helpers.ts";

const RECORDS = 22;

interface Row {
  seq: number;
  time: string;
  component: string;
  type: string;
  data: string;
  prev_hash: string;
  hash: string;
}

/** Changes record `fromSeq` and recomputes every hash after it, as an attacker who knows the format but not the key would. */
function rewriteChain(database: DatabaseSync, fromSeq: number, change: (data: Record<string, JsonValue>) => void): void {
  const rows = database.prepare("SELECT seq, time, component, type, data, prev_hash, hash FROM audit_log_records ORDER BY seq").all() as unknown as Row[];
  let previousHash = GENESIS_HASH;
  const update = database.prepare("UPDATE audit_log_records SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?");
  for (const row of rows) {
    if (row.seq < fromSeq) {
      previousHash = row.hash;
      continue;
    }
    const data = JSON.parse(row.data) as Record<string, JsonValue>;
    if (row.seq === fromSeq) change(data);
    const hash = recordHash({ seq: row.seq, time: row.time, component: row.component, type: row.type, data, prevHash: previousHash });
    update.run(canonicalJson(data), previousHash, hash, row.seq);
    previousHash = hash;
  }
}

/**
 * Overwrites every copy of `from` in the file with `to` (same length). SQLite leaves stale copies of cells in free
 * space when pages split, so editing only the first occurrence might change nothing a reader sees.
 */
function editBytes(path: string, from: string, to: string): void {
  const bytes = readFileSync(path);
  let edits = 0;
  for (let at = bytes.indexOf(from); at >= 0; at = bytes.indexOf(from, at + 1)) {
    bytes.write(to, at, "latin1");
    edits += 1;
  }
  assert.ok(edits > 0, `${from} is in the file`);
  writeFileSync(path, bytes);
}

function reason(result: AuditVerification): string {
  return result.ok ? "(intact)" : result.reason;
}

interface Attack {
  name: string;
  attack: (path: string) => void;
  firstBrokenSeq: number;
  reason: RegExp;
}

const attacks: Attack[] = [
  {
    name: "editing a field of a record through the SQLite API",
    attack: (path) => tamper(path, `UPDATE audit_log_records SET data = replace(data, '"allow"', '"deny"') WHERE seq = 7`),
    firstBrokenSeq: 7,
    reason: /record 7 was changed/,
  },
  {
    name: "editing the component of a record",
    attack: (path) => tamper(path, `UPDATE audit_log_records SET component = 'cli' WHERE seq = 3`),
    firstBrokenSeq: 3,
    reason: /record 3 was changed/,
  },
  {
    name: "editing the bytes of the database file without SQLite",
    attack: (path) => {
      assert.ok(!existsSync(`${path}-wal`) || statSync(`${path}-wal`).size === 0, "closed log has no pending WAL");
      editBytes(path, "marker-0009", "marker-9999");
    },
    firstBrokenSeq: 9,
    reason: /record 9 was changed/,
  },
  {
    name: "deleting a record in the middle",
    attack: (path) => tamper(path, "DELETE FROM audit_log_records WHERE seq = 11"),
    firstBrokenSeq: 11,
    reason: /record 11 is missing: the log jumps from record 10 to record 12/,
  },
  {
    name: "deleting the first record",
    attack: (path) => tamper(path, "DELETE FROM audit_log_records WHERE seq = 1"),
    firstBrokenSeq: 1,
    reason: /record 1 is missing/,
  },
  {
    name: "deleting a record and renumbering the ones after it to close the gap",
    attack: (path) => tamper(path, "DELETE FROM audit_log_records WHERE seq = 11; UPDATE audit_log_records SET seq = seq - 1 WHERE seq > 11"),
    firstBrokenSeq: 11,
    reason: /record 11 was changed or moved/,
  },
  {
    name: "reordering two records",
    attack: (path) =>
      tamper(path, "UPDATE audit_log_records SET seq = -9 WHERE seq = 9; UPDATE audit_log_records SET seq = 9 WHERE seq = 8; UPDATE audit_log_records SET seq = 8 WHERE seq = -9"),
    firstBrokenSeq: 8,
    reason: /record 8 was changed or moved/,
  },
  {
    name: "truncating the newest records",
    attack: (path) => tamper(path, "DELETE FROM audit_log_records WHERE seq > 17"),
    firstBrokenSeq: 18,
    reason: /records 18\.\.22 were removed: checkpoint #\d+ covers record 22 but the log ends at record 17/,
  },
  {
    name: "truncating the newest records and deleting the checkpoints after the gap",
    attack: (path) => tamper(path, "DELETE FROM audit_log_records WHERE seq > 17; DELETE FROM audit_log_checkpoints WHERE record_seq > 5"),
    firstBrokenSeq: 6,
    reason: /records 6\.\.17 are not covered by a checkpoint although writers checkpoint at least every 5 records: checkpoints were removed/,
  },
  {
    name: "deleting every checkpoint",
    attack: (path) => tamper(path, "DELETE FROM audit_log_checkpoints"),
    firstBrokenSeq: 1,
    reason: /no checkpoint/,
  },
  {
    name: "changing a record and re-hashing the rest of the chain",
    attack: (path) =>
      tamper(path, (database) =>
        rewriteChain(database, 12, (data) => {
          data.decision = "deny";
        }),
      ),
    firstBrokenSeq: 11,
    reason: /records 11\.\.15 were rewritten: record 15 no longer has the hash signed in checkpoint/,
  },
  {
    name: "changing a record so that its successor's link breaks (re-hashing only that record)",
    attack: (path) =>
      tamper(path, (database) => {
        const row = database.prepare("SELECT * FROM audit_log_records WHERE seq = 13").get() as unknown as Row;
        const data = JSON.parse(row.data) as Record<string, JsonValue>;
        data.tool = "github__delete_repository";
        const hash = recordHash({ seq: 13, time: row.time, component: row.component, type: row.type, data, prevHash: row.prev_hash });
        database.prepare("UPDATE audit_log_records SET data = ?, hash = ? WHERE seq = 13").run(canonicalJson(data), hash);
      }),
    firstBrokenSeq: 13,
    reason: /record 13 does not match the hash stored in record 14/,
  },
  {
    name: "altering a signed checkpoint",
    attack: (path) => tamper(path, "UPDATE audit_log_checkpoints SET time = '2020-01-01T00:00:00.000Z' WHERE record_seq = 10"),
    firstBrokenSeq: 6,
    reason: /checkpoint #\d+ \(record 10\) has a signature that does not verify/,
  },
  {
    name: "adding an unsigned checkpoint after the signed ones",
    attack: (path) =>
      tamper(path, (database) => {
        const head = database.prepare("SELECT seq, hash FROM audit_log_records ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: string };
        database
          .prepare("INSERT INTO audit_log_checkpoints (record_seq, record_hash, time, every, reason) VALUES (?, ?, '2030-01-01T00:00:00.000Z', 1000000, 'close')")
          .run(head.seq + 100, head.hash);
      }),
    firstBrokenSeq: 23,
    reason: /is unsigned although earlier checkpoints are signed/,
  },
  {
    name: "slipping an unsigned checkpoint with a huge interval in before the signed ones, then removing the later signed checkpoints",
    attack: (path) =>
      tamper(path, (database) => {
        database
          .prepare("INSERT INTO audit_log_checkpoints (id, record_seq, record_hash, time, every, reason) VALUES (-1, 0, ?, '2020-01-01T00:00:00.000Z', 1000000, 'open')")
          .run(GENESIS_HASH);
        database.exec("DELETE FROM audit_log_checkpoints WHERE record_seq > 5");
        rewriteChain(database, 9, (data) => {
          data.decision = "deny";
        });
      }),
    firstBrokenSeq: 6,
    reason: /records 6\.\.22 are not covered by a checkpoint although writers checkpoint at least every 5 records/,
  },
];

for (const { name, attack, firstBrokenSeq, reason: expected } of attacks) {
  test(`${name} is detected by verify and by the CLI (exit 1 naming record ${firstBrokenSeq})`, async () => {
    const { path, keyFile } = writeLog(RECORDS);
    const publicKey = readFileSync(`${keyFile}.pub`, "utf8");
    assert.equal(verifyAuditLog(path, { publicKey }).ok, true, "intact before the attack");
    attack(path);
    for (const options of [{}, { publicKey }]) {
      const result = verifyAuditLog(path, options);
      assert.equal(result.ok, false, `undetected: ${name}`);
      assert.equal(result.ok ? 0 : result.firstBrokenSeq, firstBrokenSeq, reason(result));
      assert.match(reason(result), expected);
    }
    const cli = await perimeter(["audit-log", "verify", "--db", path, "--public-key", `${keyFile}.pub`]);
    assert.equal(cli.code, 1, cli.stdout + cli.stderr);
    assert.match(cli.stdout, new RegExp(`BROKEN at record ${firstBrokenSeq}: `));
  });
}

test("a log rewritten and re-signed with the attacker's own key passes on the file's key but fails against the operator's public key", async () => {
  const { path, keyFile } = writeLog(RECORDS);
  const attacker = generateKeyPairSync("ed25519").privateKey;
  const attackerKey = `ed25519:${Buffer.from(attacker.export({ format: "jwk" }).x as string, "base64url").toString("base64")}`;
  tamper(path, (database) => {
    rewriteChain(database, 4, (data) => {
      data.decision = "deny";
    });
    const hashes = new Map((database.prepare("SELECT seq, hash FROM audit_log_records").all() as unknown as Row[]).map((row) => [row.seq, row.hash]));
    const checkpoints = database.prepare("SELECT id, record_seq, time, every, reason FROM audit_log_checkpoints").all() as unknown as Array<{
      id: number;
      record_seq: number;
      time: string;
      every: number;
      reason: string;
    }>;
    for (const checkpoint of checkpoints) {
      const recordHash = hashes.get(checkpoint.record_seq) ?? GENESIS_HASH;
      const message = checkpointMessage({ recordSeq: checkpoint.record_seq, recordHash, time: checkpoint.time, every: checkpoint.every, reason: checkpoint.reason });
      database
        .prepare("UPDATE audit_log_checkpoints SET record_hash = ?, public_key = ?, signature = ? WHERE id = ?")
        .run(recordHash, attackerKey, sign(null, message, attacker).toString("base64"), checkpoint.id);
    }
  });
  const selfConsistent = verifyAuditLog(path);
  assert.equal(selfConsistent.ok, true, "documented limit: the file alone cannot tell a re-signed log from the original");
  assert.deepEqual(selfConsistent.ok && selfConsistent.signedBy, [attackerKey]);
  assert.equal(selfConsistent.ok && selfConsistent.keySource, "file");
  const trusted = verifyAuditLog(path, { publicKey: readFileSync(`${keyFile}.pub`, "utf8") });
  assert.equal(trusted.ok, false);
  assert.equal(trusted.ok ? 0 : trusted.firstBrokenSeq, 1);
  assert.match(reason(trusted), new RegExp(`signed by ${attackerKey.replace(/[+/=]/g, "\\$&")}, not by the trusted key`));
  const withoutKey = await perimeter(["audit-log", "verify", "--db", path]);
  assert.equal(withoutKey.code, 0);
  assert.match(withoutKey.stderr, /checked against the key recorded in the file; pass --public-key/);
  const withKey = await perimeter(["audit-log", "verify", "--db", path, "--public-key", `${keyFile}.pub`]);
  assert.equal(withKey.code, 1);
  assert.match(withKey.stdout, /BROKEN at record 1: /);
});

test("a wrong public key fails verification of an intact log (exit 1 at record 1)", async () => {
  const { path, directory } = writeLog(RECORDS);
  const other = join(directory, "other.pub");
  writeFileSync(other, generateKeyPairSync("ed25519").publicKey.export({ format: "pem", type: "spki" }));
  const result = verifyAuditLog(path, { publicKey: readFileSync(other, "utf8") });
  assert.equal(result.ok, false);
  assert.equal(result.ok ? 0 : result.firstBrokenSeq, 1);
  assert.match(reason(result), /not by the trusted key/);
  const cli = await perimeter(["audit-log", "verify", "--db", path, "--public-key", other]);
  assert.equal(cli.code, 1);
  assert.match(cli.stdout, /BROKEN at record 1: checkpoint #1 \(record 0\) is signed by ed25519:/);
});

test("rolling back to an earlier state together with its checkpoints is caught by a head kept elsewhere (--known-head)", async () => {
  const { path, keyFile } = writeLog(RECORDS);
  const before = verifyAuditLog(path);
  assert.ok(before.ok);
  const knownHead = before.head;
  // Remove records 18..22 and the checkpoints that cover them: what is left is exactly an earlier state of the log.
  tamper(path, "DELETE FROM audit_log_records WHERE seq > 17; DELETE FROM audit_log_checkpoints WHERE record_seq > 15");
  const publicKey = readFileSync(`${keyFile}.pub`, "utf8");
  assert.equal(verifyAuditLog(path, { publicKey }).ok, true, "documented limit: a rollback within checkpointEvery records of a checkpoint looks like an earlier state");
  const result = verifyAuditLog(path, { publicKey, knownHead });
  assert.equal(result.ok, false);
  assert.equal(result.ok ? 0 : result.firstBrokenSeq, 18);
  assert.match(reason(result), /records 18\.\.22 were removed: the log ends at record 17 but record 22 was seen earlier/);
  const cli = await perimeter(["audit-log", "verify", "--db", path, "--public-key", `${keyFile}.pub`, "--known-head", `${knownHead.seq}:${knownHead.hash}`]);
  assert.equal(cli.code, 1);
  assert.match(cli.stdout, /BROKEN at record 18: /);
});

test("rewriting the newest record after removing its closing checkpoint is caught by a known head", () => {
  const { path } = writeLog(RECORDS);
  const before = verifyAuditLog(path);
  assert.ok(before.ok);
  tamper(path, (database) =>
    rewriteChain(database, RECORDS, (data) => {
      data.decision = "deny";
    }),
  );
  tamper(path, "DELETE FROM audit_log_checkpoints WHERE record_seq > 20");
  const result = verifyAuditLog(path, { knownHead: before.head });
  assert.equal(result.ok, false);
  assert.equal(result.ok ? 0 : result.firstBrokenSeq, RECORDS);
  assert.match(reason(result), /differs from the head recorded earlier/);
});

test("the real perimeter binary exits 1 naming the record edited in the file's bytes, 0 on an intact copy", () => {
  const bin = new URL("../../bin/perimeter.js", import.meta.url).pathname;
  const intact = writeLog(RECORDS);
  const good = spawnSync(process.execPath, [bin, "audit-log", "verify", "--db", intact.path, "--public-key", `${intact.keyFile}.pub`], { encoding: "utf8", timeout: 30_000 });
  assert.equal(good.status, 0, good.stderr);
  assert.match(good.stdout, new RegExp(`intact, ${RECORDS} records, 6 checkpoints, head ${RECORDS}:[0-9a-f]{64}`));
  editBytes(intact.path, "marker-0004", "marker-4000");
  const broken = spawnSync(process.execPath, [bin, "audit-log", "verify", "--db", intact.path, "--public-key", `${intact.keyFile}.pub`], { encoding: "utf8", timeout: 30_000 });
  assert.equal(broken.status, 1, broken.stderr);
  assert.match(broken.stdout, /BROKEN at record 4: record 4 was changed/);
  assert.equal(query(intact.path, "SELECT count(*) AS n FROM audit_log_records")[0]?.n, RECORDS, "verify did not modify the file");
});
