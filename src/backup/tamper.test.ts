// Requirements (issue 17 item 3): a wrong key, a truncated archive or a tampered one fails verify and restore with a
// clear error (exit 1) and never changes existing data, even with --force; no staging directory is left behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateIdentity } from "age-encryption";
import { makeFixture, onlyArchive, perimeter, tree } from "./test-helpers.ts";
import type { Fixture } from "./test-helpers.ts";

const CHUNK = 64 * 1024 + 16;

async function backedUp(): Promise<{ fixture: Fixture; archive: string; bytes: Buffer; headerEnd: number }> {
  const fixture = await makeFixture();
  const created = await perimeter(["backup", "create", "-c", fixture.config]);
  assert.equal(created.code, 0, created.stderr);
  const archive = onlyArchive(fixture.backups);
  const bytes = readFileSync(archive);
  const marker = bytes.indexOf("\n--- ");
  const headerEnd = bytes.indexOf(0x0a, marker + 1) + 1 + 16;
  assert.ok(bytes.length > headerEnd + 4 * CHUNK, "the archive spans several 64 KiB chunks");
  return { fixture, archive, bytes, headerEnd };
}

/** verify and restore --force of `bad` both fail with `message`, and the live data stays exactly as it was. */
async function refusedEverywhere(fixture: Fixture, bad: string, message: RegExp, identityFile = fixture.identityFile): Promise<void> {
  const before = tree(fixture.data);
  const auditBefore = readFileSync(fixture.auditPath);
  const verified = await perimeter(["backup", "verify", bad, "-i", identityFile]);
  assert.equal(verified.code, 1, `verify: ${verified.stdout}${verified.stderr}`);
  assert.match(verified.stderr, message);
  const restored = await perimeter(["backup", "restore", bad, "-c", fixture.config, "-i", identityFile, "--force"]);
  assert.equal(restored.code, 1, `restore: ${restored.stdout}${restored.stderr}`);
  assert.match(restored.stderr, message);
  assert.deepEqual(tree(fixture.data), before, "the data directory is untouched");
  assert.ok(readFileSync(fixture.auditPath).equals(auditBefore), "the audit log is untouched");
  const home = readdirSync(join(fixture.root, "home"));
  assert.deepEqual(home, [".hermes"], `no staging or moved-aside directory: ${home.join(", ")}`);
  const perimeterDirectory = readdirSync(join(fixture.root, "perimeter")).filter((name) => name.includes("restore") || name.includes("replaced"));
  assert.deepEqual(perimeterDirectory, []);
}

test("a wrong identity is refused: the archive was encrypted to other recipients", async () => {
  const { fixture, archive } = await backedUp();
  const other = join(fixture.root, "keys", "other.key");
  writeFileSync(other, `${await generateIdentity()}\n`, { mode: 0o600 });
  await refusedEverywhere(fixture, archive, /none of the given identities can open this archive: it was encrypted to other recipients/, other);
});

test("a truncated archive is refused: at a chunk boundary, inside a chunk, inside the header, empty", async () => {
  const { fixture, bytes, headerEnd } = await backedUp();
  const cases: Array<[string, Buffer, RegExp]> = [
    ["at a chunk boundary", bytes.subarray(0, headerEnd + 2 * CHUNK), /the archive is truncated: it ends after 2 chunks/],
    ["inside a chunk", bytes.subarray(0, headerEnd + 2 * CHUNK + 1000), /the archive is truncated, or its end was altered/],
    ["one byte short", bytes.subarray(0, bytes.length - 1), /the archive is truncated, or its end was altered/],
    ["inside the header", bytes.subarray(0, 40), /truncated inside its header/],
    ["empty", Buffer.alloc(0), /the archive is empty/],
  ];
  for (const [name, content, message] of cases) {
    const bad = join(fixture.root, `truncated-${name.replace(/ /g, "-")}.tar.age`);
    writeFileSync(bad, content);
    await refusedEverywhere(fixture, bad, message);
  }
});

test("an altered archive is refused: a flipped payload byte, an altered header, bytes appended, another file type", async () => {
  const { fixture, bytes, headerEnd } = await backedUp();
  const flip = (offset: number) => {
    const copy = Buffer.from(bytes);
    copy[offset] = (copy[offset] ?? 0) ^ 0x01;
    return copy;
  };
  const cases: Array<[string, Buffer, RegExp]> = [
    ["payload byte", flip(headerEnd + CHUNK + 100), /altered or damaged: chunk 1 .* fails authentication/],
    ["last chunk", flip(bytes.length - 5), /truncated, or its end was altered/],
    ["stanza", flip(bytes.indexOf("-> X25519 ") + 12), /none of the given identities|header was altered|header is damaged/],
    ["appended", Buffer.concat([bytes, Buffer.from("more")]), /truncated, or its end was altered|altered or damaged/],
    ["not age", Buffer.from("just some tar data, not encrypted\n".repeat(10)), /not an age-encrypted file/],
  ];
  for (const [name, content, message] of cases) {
    const bad = join(fixture.root, `altered-${name.replace(/ /g, "-")}.tar.age`);
    writeFileSync(bad, content);
    await refusedEverywhere(fixture, bad, message);
  }
});
