// Requirement (issue 12, smaller edges): a short command loads only what it needs. `perimeter sandbox exec` without
// -c once parsed a default config, loading zod and yaml (~0.2 s of a ~0.3 s run). A module hook in the child lists
// every package a command imports; the heavy ones a command does not use must not be among them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LOADED_PACKAGES_HOOK } from "../shared/testing.ts";

const BIN = join(import.meta.dirname, "..", "..", "bin", "perimeter.js");

const HOOK = LOADED_PACKAGES_HOOK;

function packagesLoadedBy(args: string[]): { packages: string[]; status: number | null; stderr: string } {
  const hook = join(mkdtempSync(join(tmpdir(), "perimeter-startup-")), "hook.mjs");
  writeFileSync(hook, HOOK);
  const result = spawnSync(process.execPath, ["--import", hook, BIN, ...args], { encoding: "utf8", timeout: 60_000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  const line = result.stderr.split("\n").find((entry) => entry.startsWith("loaded-packages:"));
  assert.ok(line !== undefined, `the hook reported nothing; stderr: ${result.stderr}`);
  return { packages: JSON.parse(line.slice("loaded-packages:".length)) as string[], status: result.status, stderr: result.stderr };
}

test("perimeter sandbox exec without -c loads neither zod nor yaml (no config is read)", () => {
  // Without a command the run stops at the usage check, after sandbox/cli.ts and everything it imports has loaded.
  const { packages, status, stderr } = packagesLoadedBy(["sandbox", "exec"]);
  assert.equal(status, 2, stderr);
  assert.match(stderr, /name the command after --/);
  assert.ok(!packages.includes("zod") && !packages.includes("yaml"), `loaded: ${packages.join(", ")}`);
});

test("the hook sees a command that does read a config: perimeter schema loads zod (the check above can fail)", () => {
  const { packages, status } = packagesLoadedBy(["schema"]);
  assert.equal(status, 0);
  assert.ok(packages.includes("zod"), `loaded: ${packages.join(", ")}`);
});

test("perimeter --version and help load no package at all", () => {
  for (const args of [["--version"], ["help"]]) {
    const { packages, status } = packagesLoadedBy(args);
    assert.equal(status, 0);
    assert.deepEqual(packages, [], `perimeter ${args.join(" ")} loaded ${packages.join(", ")}`);
  }
});
