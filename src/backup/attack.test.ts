// Requirements (issue 17 item 3): a restore never writes outside its root. age does not authenticate the sender —
// anyone with a recipient's PUBLIC key (it is in perimeter.yaml) can make an archive that decrypts — so each case
// below is a well-formed, correctly encrypted archive crafted by an attacker: "../" names, absolute paths, a pax path
// override, a symbolic link then a file through it, a link then a file over it, hard links, devices, FIFOs, entries
// after the manifest, and a file that does not match the manifest. Each must be refused (exit 1), leave nothing
// outside the root and leave the existing data as it was.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { craftTar, encryptToFile, infoEntry, makeFixture, perimeter, tree } from "./test-helpers.ts";
import type { CraftedEntry } from "./test-helpers.ts";

const manifest = (entries: unknown[] = []) => ({ name: "manifest.json", typeflag: "0", content: JSON.stringify({ format: "perimeter-backup-manifest", version: 1, entries, skipped: [] }) });

test("crafted archives cannot write outside the restore root or through links, nor create devices", async (t) => {
  const fixture = await makeFixture();
  const outside = join(fixture.root, "outside");
  mkdirSync(outside);
  writeFileSync(join(outside, "victim.txt"), "original");
  const root: CraftedEntry = { name: "data", typeflag: "5", mode: 0o700 };
  const cases: Array<[string, CraftedEntry[], RegExp, string[]]> = [
    ["dot-dot", [root, { name: "data/../escaped.txt", typeflag: "0", content: "x" }], /has a "\.\." segment/, [join(fixture.root, "home", "escaped.txt")]],
    ["deep dot-dot", [root, { name: `data/${"../".repeat(12)}${outside.slice(1)}/deep.txt`, typeflag: "0", content: "x" }], /has a "\.\." segment/, [join(outside, "deep.txt")]],
    ["absolute", [root, { name: `${outside}/absolute.txt`, typeflag: "0", content: "x" }], /is an absolute path/, [join(outside, "absolute.txt")]],
    ["pax path override", [root, { name: "data/harmless.txt", typeflag: "0", content: "x", paxPath: "data/../../pax.txt" }], /has a "\.\." segment/, [join(fixture.root, "pax.txt")]],
    [
      "symlink then file through it",
      [root, { name: "data/link", typeflag: "2", linkname: outside }, { name: "data/link/planted.txt", typeflag: "0", content: "owned" }],
      /lies below "data\/link", which is a symlink, not a directory/,
      [join(outside, "planted.txt")],
    ],
    [
      "symlink then file over it",
      [root, { name: "data/victim", typeflag: "2", linkname: join(outside, "victim.txt") }, { name: "data/victim", typeflag: "0", content: "overwritten" }],
      /appears twice/,
      [],
    ],
    ["hard link", [root, { name: "data/passwd", typeflag: "1", linkname: "/etc/passwd" }], /is a hard link/, []],
    ["character device", [root, { name: "data/mem", typeflag: "3" }], /is a character device/, []],
    ["block device", [root, { name: "data/disk", typeflag: "4" }], /is a block device/, []],
    ["FIFO", [root, { name: "data/pipe", typeflag: "6" }], /is a FIFO/, []],
    ["outside the layout", [root, { name: "etc/cron.d/job", typeflag: "0", content: "x" }], /outside the backup layout/, []],
    ["empty segment", [root, { name: "data//x", typeflag: "0", content: "x" }], /has a "\/\/" segment/, []],
    ["dot segment", [root, { name: "data/./x", typeflag: "0", content: "x" }], /has a "\." segment/, []],
    ["file then file below it", [root, { name: "data/f", typeflag: "0", content: "x" }, { name: "data/f/g", typeflag: "0", content: "y" }], /which is a file, not a directory/, []],
    ["entry after the manifest", [root, manifest(), { name: "data/late", typeflag: "0", content: "x" }], /follows manifest\.json, which must be last/, []],
    ["no manifest", [root, { name: "data/a", typeflag: "0", content: "x" }], /has no manifest\.json at its end/, []],
    ["content not in the manifest", [root, { name: "data/a", typeflag: "0", content: "x" }, manifest([{ path: "data", type: "directory", mode: 0o700, mtime: 0, size: 0 }])], /does not match its manifest .*data\/a: in the archive but not in the manifest/, []],
  ];
  for (const [name, entries, message, mustNotExist] of cases) {
    await t.test(name, async () => {
    const archive = join(fixture.root, `attack-${name.replace(/ /g, "-")}.tar.age`);
    await encryptToFile(fixture.recipient, craftTar([infoEntry(), ...entries]), archive);
    const before = tree(fixture.data);
    for (const command of [["verify", archive, "-i", fixture.identityFile], ["restore", archive, "-c", fixture.config, "--force"]]) {
      const result = await perimeter(["backup", ...command]);
      assert.equal(result.code, 1, `${name} (${command[0]}): ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, message, name);
    }
    for (const path of mustNotExist) assert.equal(existsSync(path), false, `${name}: ${path} was written`);
    assert.equal(readFileSync(join(outside, "victim.txt"), "utf8"), "original", `${name}: a file outside was changed`);
    assert.deepEqual(readdirSync(outside).sort(), ["victim.txt"], name);
    assert.deepEqual(tree(fixture.data), before, `${name}: the existing data changed`);
    assert.deepEqual(readdirSync(join(fixture.root, "home")), [".hermes"], `${name}: staging left behind`);
    });
  }
});

test("a file whose content differs from the manifest fails verify, naming the file", async () => {
  const fixture = await makeFixture();
  const entries = [
    { name: "data", typeflag: "5", mode: 0o700 },
    { name: "data/config.yaml", typeflag: "0", content: "approvals: off\n", mode: 0o600 },
    manifest([
      { path: "backup.json", type: "file", mode: 0o600, mtime: 0, size: JSON.stringify(JSON.parse(infoEntry().content ?? "")).length, sha256: "0".repeat(64) },
      { path: "data", type: "directory", mode: 0o700, mtime: 0, size: 0 },
      { path: "data/config.yaml", type: "file", mode: 0o600, mtime: 0, size: 15, sha256: "a".repeat(64) },
    ]),
  ];
  const archive = join(fixture.root, "mismatch.tar.age");
  await encryptToFile(fixture.recipient, craftTar([infoEntry(), ...entries]), archive);
  const result = await perimeter(["backup", "verify", archive, "-i", fixture.identityFile]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stderr, /does not match its manifest .*data\/config\.yaml: the archive holds a file of 15 bytes, sha256 [0-9a-f]{64} .* the manifest a file of 15 bytes, sha256 a{64}/);
});
