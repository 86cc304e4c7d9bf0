// The compile cache holds code that runs: perimeter keeps it where only its own user can write, never in a directory
// another user could fill (Node's default, a shared /tmp), never through a symbolic link. Attacks: a world-writable
// cache directory, a cache directory that is a link to one the attacker owns, one owned by another user.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BIN = join(import.meta.dirname, "..", "..", "bin", "perimeter.js");

/** Runs a perimeter command that loads TypeScript modules, with Node's compile-cache debugging on. */
function run(environment: Record<string, string>): { debug: string[]; status: number | null } {
  const result = spawnSync(process.execPath, [BIN, "render", "--help"], { env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent", NODE_DEBUG_NATIVE: "COMPILE_CACHE", ...environment }, encoding: "utf8", timeout: 60_000 });
  return { debug: `${result.stdout}${result.stderr}`.split("\n").filter((line) => line.startsWith("[compile cache]")), status: result.status };
}

function filesUnder(path: string): string[] {
  return existsSync(path) ? readdirSync(path, { recursive: true }).map(String) : [];
}

test("control: a private cache root is used (the cache is written there)", () => {
  const root = join(mkdtempSync(join(tmpdir(), "cache-root-")), "cache");
  const { debug, status } = run({ PERIMETER_CACHE_ROOT: root });
  assert.equal(status, 0);
  assert.ok(debug.length > 0, "compile cache enabled");
  assert.ok(filesUnder(join(root, "perimeter", "compile-cache")).length > 0, "entries written");
});

test("attack: a world-writable cache root is not used", () => {
  const root = join(mkdtempSync(join(tmpdir(), "cache-root-")), "cache");
  mkdirSync(root);
  chmodSync(root, 0o777);
  const { debug, status } = run({ PERIMETER_CACHE_ROOT: root });
  assert.equal(status, 0, "the command still runs, without a cache");
  assert.deepEqual(debug, []);
  assert.deepEqual(filesUnder(join(root, "perimeter", "compile-cache")), []);
});

test("attack: a cache directory that is a symbolic link to the attacker's directory is not followed", () => {
  const base = mkdtempSync(join(tmpdir(), "cache-root-"));
  const root = join(base, "cache");
  const attacker = join(base, "attacker");
  mkdirSync(join(root, "perimeter"), { recursive: true, mode: 0o700 });
  mkdirSync(attacker, { mode: 0o700 });
  symlinkSync(attacker, join(root, "perimeter", "compile-cache"));
  const { debug } = run({ PERIMETER_CACHE_ROOT: root });
  assert.deepEqual(debug, []);
  assert.deepEqual(filesUnder(attacker), [], "nothing read from or written to the linked directory");
});

test("attack: a cache directory owned by another user is not used", { skip: process.getuid?.() !== 0 ? "needs root to give a directory to another user" : false }, () => {
  const root = join(mkdtempSync(join(tmpdir(), "cache-root-")), "cache");
  mkdirSync(join(root, "perimeter", "compile-cache"), { recursive: true, mode: 0o700 });
  chownSync(join(root, "perimeter", "compile-cache"), 65534, 65534);
  const { debug } = run({ PERIMETER_CACHE_ROOT: root });
  assert.deepEqual(debug, []);
});

test("nothing is cached in the temporary directory (Node's default, shared on a multi-user host)", () => {
  const temporary = mkdtempSync(join(tmpdir(), "cache-tmp-"));
  const root = join(mkdtempSync(join(tmpdir(), "cache-root-")), "cache");
  run({ TMPDIR: temporary, PERIMETER_CACHE_ROOT: root });
  assert.deepEqual(filesUnder(temporary), []);
});

test("attack: a directory above the cache root that another user can write (not sticky) is refused: they could swap the root after the check", () => {
  const base = mkdtempSync(join(tmpdir(), "cache-root-"));
  const shared = join(base, "shared");
  mkdirSync(shared);
  chmodSync(shared, 0o777);
  const root = join(shared, "cache");
  const { debug } = run({ PERIMETER_CACHE_ROOT: root });
  assert.deepEqual(debug, []);
  // A sticky shared directory (like /tmp) is fine: others cannot rename what is not theirs.
  chmodSync(shared, 0o1777);
  const again = run({ PERIMETER_CACHE_ROOT: root });
  assert.ok(again.debug.length > 0, "the cache is used under a sticky parent");
});
