// Requirements (issue 17 item 3): a full disk fails create and restore with a clear error naming the fix; create keeps
// no partial archive or work directory, restore leaves the existing data as it was. The real CLI runs in a private
// mount namespace on a 256 KiB tmpfs, which needs root (CI runs as root).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { makeFixture, onlyArchive, perimeter } from "./test-helpers.ts";

const CLI = new URL("../../bin/perimeter.js", import.meta.url).pathname;

function privateMountsAvailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to mount a small tmpfs in a private mount namespace";
  const probe = spawnSync("unshare", ["--mount", "true"]);
  return probe.status === 0 ? undefined : `unshare --mount is not permitted here: ${probe.stderr.toString().trim()}`;
}

/** Runs `script` (sh, with $1 = the mount point, $2 = node, $3 = the CLI) with a 256 KiB tmpfs on `mountPoint`. */
function onSmallDisk(mountPoint: string, script: string, ...args: string[]) {
  const result = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", `mount -t tmpfs -o size=256k tmpfs "$1" || exit 99\n${script}`, "sh", mountPoint, process.execPath, CLI, ...args], { encoding: "utf8" });
  assert.notEqual(result.status, 99, `could not mount a tmpfs: ${result.stderr}`);
  return result;
}

test("create on a full disk fails with a clear error and leaves no partial archive", async (t) => {
  const unavailable = privateMountsAvailable();
  if (unavailable !== undefined) {
    t.skip(unavailable);
    return;
  }
  const fixture = await makeFixture();
  mkdirSync(fixture.backups);
  const result = onSmallDisk(fixture.backups, `"$2" "$3" backup create -c "$4"; echo "exit=$?"; ls -A "$1"`, fixture.config);
  assert.match(result.stdout, /^exit=1$/m, result.stderr);
  assert.match(result.stderr, /no space left on the device of .*backups \(ENOSPC\): free space there or choose another directory; no archive was kept/);
  assert.doesNotMatch(result.stderr, /internal error/);
  assert.equal(result.stdout.replace(/^exit=1\n/m, ""), "", "nothing is left on the full disk");
});

test("restore onto a full disk fails with a clear error and keeps the existing data", async (t) => {
  const unavailable = privateMountsAvailable();
  if (unavailable !== undefined) {
    t.skip(unavailable);
    return;
  }
  const fixture = await makeFixture();
  assert.equal((await perimeter(["backup", "create", "-c", fixture.config])).code, 0);
  const small = join(fixture.root, "small");
  mkdirSync(small);
  const script = `mkdir "$1/.hermes" && echo keep > "$1/.hermes/existing.txt"
"$2" "$3" backup restore "$4" -i "$5" --data-dir "$1/.hermes" --audit-db "$1/audit.db" --force; echo "exit=$?"
ls -A "$1"; cat "$1/.hermes/existing.txt"`;
  const result = onSmallDisk(small, script, onlyArchive(fixture.backups), fixture.identityFile);
  assert.match(result.stdout, /^exit=1$/m, result.stderr);
  assert.match(result.stderr, /no space left on the device of .*small \(ENOSPC\): free space there or choose another directory; nothing was changed/);
  assert.equal(result.stdout.replace(/^exit=1\n/m, ""), ".hermes\nkeep\n", "only the existing data is there, unchanged");
});
