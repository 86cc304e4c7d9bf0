// Every rule has a failing and a passing fixture (src/check/fixtures/rules/<RULE>/{fail,pass}/); the FILE-* rules
// need modes and owners that git does not keep, so their fixtures are made here in a temporary directory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCheck } from "./check.ts";
import { RULES } from "./rules.ts";

const FIXTURES = join(import.meta.dirname, "fixtures", "rules");
const TODAY = "2026-06-01";

function activeRules(path: string, cwd = FIXTURES): { rules: string[]; errors: string[] } {
  const result = runCheck([path], { cwd, today: TODAY, kustomize: "builtin" });
  return { rules: result.findings.filter((finding) => finding.suppression === undefined).map((finding) => finding.ruleId), errors: result.errors.map((error) => `${error.location.file}:${error.location.line}: ${error.message}`) };
}

test("the rule registry: ids are unique, prefixed by their family, and every rule has rationale, remediation and a fix", () => {
  const ids = RULES.map((rule) => rule.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const rule of RULES) {
    assert.match(rule.id, /^(K8S|COMPOSE|HERMES|FILE|DOCKER|CHECK)-[A-Z0-9-]+$/);
    assert.ok(rule.id.startsWith(`${rule.family}-`), rule.id);
    assert.ok(rule.title.length > 10 && rule.rationale.length > 40 && rule.remediation.length > 5 && rule.fix.trim().length > 0, rule.id);
  }
});

for (const rule of RULES.filter((candidate) => candidate.family !== "FILE")) {
  test(`${rule.id}: its failing fixture is reported and its passing fixture is not`, () => {
    const fail = join(FIXTURES, rule.id, "fail");
    const pass = join(FIXTURES, rule.id, "pass");
    assert.ok(existsSync(fail) && existsSync(pass), `fixtures for ${rule.id} exist`);
    const failing = activeRules(fail);
    assert.deepEqual(failing.errors, []);
    assert.ok(failing.rules.includes(rule.id), `${rule.id} in ${failing.rules.join(", ")}`);
    const passing = activeRules(pass);
    assert.deepEqual(passing.errors, []);
    assert.ok(!passing.rules.includes(rule.id), `${rule.id} not in ${passing.rules.join(", ")}`);
  });
}

// --- FILE-* -------------------------------------------------------------------------------------------------------

function dataDirectory(): string {
  const root = mkdtempSync(join(tmpdir(), "perimeter-check-"));
  const data = join(root, "data");
  mkdirSync(data, { mode: 0o700 });
  chmodSync(data, 0o700);
  writeFileSync(join(data, "config.yaml"), "model:\n  provider: custom\nterminal:\n  backend: docker\napprovals:\n  mode: manual\n", { mode: 0o600 });
  writeFileSync(join(data, ".env"), "TELEGRAM_BOT_TOKEN=123456789:AAExampleExampleExampleExampleExamp\nTELEGRAM_ALLOWED_USERS=987654321\n", { mode: 0o600 });
  mkdirSync(join(data, "memories"), { mode: 0o700 });
  chmodSync(join(data, "memories"), 0o700);
  return data;
}

function withDataDirectory(run: (data: string) => void): void {
  const data = dataDirectory();
  try {
    run(data);
  } finally {
    rmSync(join(data, ".."), { recursive: true, force: true });
  }
}

test("FILE-ENV-MODE: a 0644 .env in the data directory is reported, a 0600 one is not", () => {
  withDataDirectory((data) => {
    assert.ok(!activeRules(data).rules.includes("FILE-ENV-MODE"));
    chmodSync(join(data, ".env"), 0o644);
    assert.ok(activeRules(data).rules.includes("FILE-ENV-MODE"));
  });
});

test("FILE-ENV-MODE: a standalone .env holding a token is reported when group-readable; one holding no credential is not", () => {
  const root = mkdtempSync(join(tmpdir(), "perimeter-check-"));
  try {
    writeFileSync(join(root, "bot.env"), "DISCORD_BOT_TOKEN=abc\nDISCORD_ALLOWED_USERS=1\n");
    chmodSync(join(root, "bot.env"), 0o640);
    assert.ok(activeRules(join(root, "bot.env")).rules.includes("FILE-ENV-MODE"));
    writeFileSync(join(root, "plain.env"), "TZ=UTC\n");
    chmodSync(join(root, "plain.env"), 0o644);
    assert.ok(!activeRules(join(root, "plain.env")).rules.includes("FILE-ENV-MODE"));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("FILE-DATA-DIR-MODE: a 0755 data directory is reported, 0700 is not", () => {
  withDataDirectory((data) => {
    assert.ok(!activeRules(data).rules.includes("FILE-DATA-DIR-MODE"));
    chmodSync(data, 0o755);
    assert.ok(activeRules(data).rules.includes("FILE-DATA-DIR-MODE"));
  });
});

test("FILE-WRITABLE-BY-OTHERS: a group-writable file or directory inside the data directory is reported", () => {
  withDataDirectory((data) => {
    assert.ok(!activeRules(data).rules.includes("FILE-WRITABLE-BY-OTHERS"));
    chmodSync(join(data, "memories"), 0o770);
    assert.ok(activeRules(data).rules.includes("FILE-WRITABLE-BY-OTHERS"));
  });
});

test("FILE-OWNER: a file owned by another uid inside the data directory is reported", { skip: process.getuid?.() !== 0 ? "needs root to chown a file to another uid" : false }, () => {
  withDataDirectory((data) => {
    assert.ok(!activeRules(data).rules.includes("FILE-OWNER"));
    chownSync(join(data, "config.yaml"), 12345, 12345);
    assert.ok(activeRules(data).rules.includes("FILE-OWNER"));
  });
});
