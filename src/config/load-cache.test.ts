// loadConfig parses a file once per process while its text is unchanged (perimeter up's services each load the same
// runtime file), and every caller still gets a config of its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "./index.ts";

const YAML = "version: 1\nname: cache\negress:\n  listen: 127.0.0.1:3128\n  allow: [pypi.org]\n";

test("a second load of an unchanged file is a copy: equal, not shared, and much cheaper than the first", () => {
  const file = join(mkdtempSync(join(tmpdir(), "config-cache-")), "perimeter.yaml");
  writeFileSync(file, YAML);
  const first = loadConfig(file);
  const started = performance.now();
  const second = loadConfig(file);
  const copyMs = performance.now() - started;
  assert.deepEqual(second, first);
  assert.notEqual(second, first);
  assert.notEqual(second.egress, first.egress);
  // One service changing its copy does not reach the next caller.
  (first.egress.allow as string[]).push("evil.example");
  assert.deepEqual(loadConfig(file).egress.allow, ["pypi.org"]);
  assert.ok(copyMs < 5, `a cached load took ${copyMs.toFixed(2)} ms`);
});

test("a changed file is parsed again, and a broken one is refused although an earlier version was loaded", () => {
  const file = join(mkdtempSync(join(tmpdir(), "config-cache-")), "perimeter.yaml");
  writeFileSync(file, YAML);
  assert.deepEqual(loadConfig(file).egress.allow, ["pypi.org"]);
  writeFileSync(file, YAML.replace("[pypi.org]", "[pypi.org, files.pythonhosted.org]"));
  assert.deepEqual(loadConfig(file).egress.allow, ["pypi.org", "files.pythonhosted.org"]);
  writeFileSync(file, YAML.replace("allow:", "allwo:"));
  assert.throws(() => loadConfig(file), /unknown key "allwo"/);
});
