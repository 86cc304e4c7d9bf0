// serve dashboard names every missing variable in one start (it read them one at a time: fix one, start, fix the next).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BIN = join(import.meta.dirname, "..", "..", "bin", "perimeter.js");

test("serve dashboard without the admin token and the feed token names both and starts nothing", () => {
  const directory = mkdtempSync(join(tmpdir(), "dashboard-secrets-"));
  const config = join(directory, "perimeter.yaml");
  writeFileSync(config, `version: 1\nname: t\naudit:\n  path: ${join(directory, "audit.db")}\n  feedTokenSecret: DASHBOARD_FEED_TOKEN_UNSET\nmcp:\n  admin: { listen: 127.0.0.1:9, tokenSecret: DASHBOARD_ADMIN_TOKEN_UNSET }\n`);
  const result = spawnSync(process.execPath, [BIN, "serve", "dashboard", "-c", config, "--listen", "127.0.0.1:0"], { env: { PATH: process.env.PATH ?? "" }, encoding: "utf8", timeout: 60_000 });
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /DASHBOARD_ADMIN_TOKEN_UNSET/);
  assert.match(result.stderr, /DASHBOARD_FEED_TOKEN_UNSET/);
  assert.doesNotMatch(result.stderr, /listening/);
});
