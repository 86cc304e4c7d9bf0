// Issue 14 item 7: `perimeter check perimeter.yaml` validates the declaration (it exited 2 with "perimeter render
// validates it"), an empty section says so instead of a raw validator error, and the fixes suggested fit the field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { runCli } from "../cli/main.ts";
import type { CommandIo } from "../cli/command.ts";
import { declarationWarnings, parseConfig } from "../config/index.ts";

const REPOSITORY = join(import.meta.dirname, "..", "..");

async function perimeter(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
  stdin.end("");
  const io = { stdout, stderr, stdin, env: {}, cwd } as unknown as CommandIo;
  const code = await runCli(args, io);
  return { code, stdout: out, stderr: err };
}

function declaration(text: string): { directory: string; file: string } {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-declaration-"));
  const file = join(directory, "perimeter.yaml");
  writeFileSync(file, text);
  return { directory, file };
}

test("check validates a perimeter.yaml: every shipped example is a checked input with no error", async () => {
  for (const example of ["k3s-telegram-minimax", "kubernetes-full", "compose-vps", "vps", "local"]) {
    const result = await perimeter(["check", "--format", "json", `examples/${example}.yaml`], REPOSITORY);
    assert.equal(result.code, 0, `${example}: ${result.stdout}${result.stderr}`);
    const report = JSON.parse(result.stdout) as { inputs: Array<{ kind: string }>; errors: unknown[] };
    assert.deepEqual(
      report.inputs.map((input) => input.kind),
      ["perimeter-config"],
    );
    assert.deepEqual(report.errors, []);
  }
});

test("check reports a broken declaration's problems at their lines, with the fix, and exits 2", async () => {
  const { directory } = declaration("version: 1\nname: t\negress:\n  allow: [api.telegram.org]\n  unknownClients: denny\n");
  const result = await perimeter(["check", "perimeter.yaml"], directory);
  assert.equal(result.code, 2);
  assert.match(result.stdout, /perimeter\.yaml:5:\d+: error: egress\.unknownClients: must be one of .*did you mean "deny"\?/);
  assert.doesNotMatch(result.stdout, /render validates it/);
});

test("an empty section (everything under it commented out) is named as such, not as a raw type error", async () => {
  const { directory } = declaration("version: 1\nname: t\nkubernetes:\n  # cni: cilium\n");
  const result = await perimeter(["check", "perimeter.yaml"], directory);
  assert.equal(result.code, 2);
  assert.match(result.stdout, /perimeter\.yaml:3:\d+: error: kubernetes: is empty \(everything under it is commented out\?\)/);
  assert.doesNotMatch(result.stdout, /expected object, received null/);
});

test("suggested fixes fit the field: a pasted Telegram token is told TELEGRAM_BOT_TOKEN, a python:latest is not told a Hermes tag", async () => {
  const token = `123456789:${"A".repeat(35)}`;
  const { directory } = declaration(
    `version: 1\nname: t\nagent:\n  image: nousresearch/hermes-agent:latest\n  platforms:\n    telegram: { allowedUsers: ["987654321"], tokenSecret: "${token}" }\nsandbox:\n  backend: kubernetes\n  image: python:latest\n`,
  );
  const result = await perimeter(["check", "perimeter.yaml"], directory);
  assert.equal(result.code, 2);
  assert.match(result.stdout, /tokenSecret: this looks like a literal secret \(Telegram bot token\): write the NAME of an environment variable \(e\.g\. TELEGRAM_BOT_TOKEN\)/);
  assert.match(result.stdout, /agent\.image: ":latest" is refused: pin a version tag \(e\.g\. nousresearch\/hermes-agent:v2026\.7\.1, the release Perimeter was verified against\)/);
  assert.match(result.stdout, /sandbox\.image: ":latest" is refused: pin a version tag \(e\.g\. python:<the version you run>\)/);
  assert.ok(!result.stdout.includes(token), "the pasted token is never echoed");
});

test("check prints the risky-declaration warnings render prints, on stderr, and they neither fail the run nor touch the report (issue 14 item 7)", async () => {
  const base = readFileSync(join(REPOSITORY, "examples", "compose-vps.yaml"), "utf8");
  const risky = base
    .replace("      apiKeySecret: ANTHROPIC_API_KEY\n", "")
    .replace('allowedUsers: ["987654321"]', 'allowedUsers: ["987654321", "@alice"]')
    .replace("allow: [api.telegram.org]", "allow: [api.telegram.org, api.anthropic.com]");
  assert.notEqual(risky, base);
  const expected = declarationWarnings(parseConfig(risky, "perimeter.yaml"));
  assert.ok(expected.length >= 3, `the changed example has risky declarations: ${JSON.stringify(expected)}`);
  const { directory } = declaration(risky);

  const rendered = await perimeter(["render", "-c", "perimeter.yaml", "-t", "compose", "-o", "out"], directory);
  assert.equal(rendered.code, 0, rendered.stderr);
  const renderWarnings = rendered.stderr.split("\n").filter((line) => line.startsWith("perimeter render: warning: ")).map((line) => line.slice("perimeter render: warning: ".length));
  for (const warning of expected) assert.ok(renderWarnings.includes(warning), `render prints: ${warning}`);

  for (const format of ["text", "json"]) {
    const checked = await perimeter(["check", "--format", format, "perimeter.yaml"], directory);
    assert.equal(checked.code, 0, `${format}: warnings do not fail the check: ${checked.stdout}${checked.stderr}`);
    const lines = checked.stderr.split("\n").filter((line) => line !== "");
    assert.deepEqual(lines, expected.map((warning) => `perimeter check: warning: perimeter.yaml: ${warning}`), `${format}: the same warnings as render, each naming the file`);
    if (format === "json") assert.deepEqual((JSON.parse(checked.stdout) as { errors: unknown[] }).errors, []);
  }
});

test("a declaration without risky parts gets no warning from check", async () => {
  const { directory } = declaration(readFileSync(join(REPOSITORY, "examples", "compose-vps.yaml"), "utf8"));
  const checked = await perimeter(["check", "perimeter.yaml"], directory);
  assert.equal(checked.code, 0, checked.stdout);
  assert.equal(checked.stderr, "");
});
