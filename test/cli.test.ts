// Requirements (DESIGN.md "Command line"): one binary; exit 0 ok, 2 usage or config error with a message that says
// how to fix it; `perimeter schema` prints the JSON Schema. Runs the real bin through the pinned Node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const bin = new URL("../bin/perimeter.js", import.meta.url).pathname;

function perimeter(...args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 30_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test("help lists every command and exits 0", () => {
  const result = perimeter("help");
  assert.equal(result.code, 0);
  for (const command of ["render", "check", "serve", "sandbox exec", "approvals", "audit-log", "llm-keys", "schema"]) {
    assert.ok(result.stdout.includes(`perimeter ${command}`), `help lacks ${command}`);
  }
});

test("an unknown command exits 2 and says what to run", () => {
  const result = perimeter("deploy");
  assert.equal(result.code, 2);
  assert.match(result.stderr, /unknown command "deploy"; run perimeter help/);
});

test("serve without a known service exits 2 naming the services", () => {
  const result = perimeter("serve", "nope");
  assert.equal(result.code, 2);
  assert.match(result.stderr, /egress-proxy, sandbox, mcp-guard, llm-proxy/);
});

test("perimeter schema prints a JSON Schema an editor can use", () => {
  const result = perimeter("schema");
  assert.equal(result.code, 0);
  const schema = JSON.parse(result.stdout) as { $schema: string; properties: Record<string, unknown> };
  assert.match(schema.$schema, /json-schema.org/);
  assert.ok("mcp" in schema.properties);
});

test("an invalid config exits 2 with file:line:column and the fix (via render)", () => {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-cli-"));
  const file = join(directory, "perimeter.yaml");
  writeFileSync(file, "version: 1\nname: hermes\nagent:\n  approvals: off\n");
  const result = perimeter("render", "-c", file, "-t", "kubernetes", "-o", join(directory, "out"));
  assert.equal(result.code, 2);
  assert.ok(result.stderr.includes(`${file}:4:14`), result.stderr);
  assert.match(result.stderr, /use manual/);
});
