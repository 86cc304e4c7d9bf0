// `perimeter check` as operators and CI run it: exit codes, output formats (SARIF validated against the SARIF 2.1.0
// JSON schema shipped in @microsoft/jest-sarif), colour only on a terminal, standard input, --list-rules and
// --explain, and every example `perimeter render` ships checked clean for both targets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { runCli } from "../cli/main.ts";
import type { CommandIo } from "../cli/command.ts";
import { runCheck } from "./check.ts";
import { RULES } from "./rules.ts";

const REPOSITORY = join(import.meta.dirname, "..", "..");
const FIXTURES = join(import.meta.dirname, "fixtures");
const BIN = join(REPOSITORY, "bin", "perimeter.js");

async function perimeter(args: string[], options: { tty?: boolean; stdin?: string; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  if (options.tty === true) Object.assign(stdout, { isTTY: true });
  let out = "";
  let err = "";
  stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
  stdin.end(options.stdin ?? "");
  const io: CommandIo = { stdout, stderr, stdin, env: {}, cwd: options.cwd ?? FIXTURES, signal: new AbortController().signal, onReload: () => undefined };
  const code = await runCli(["check", ...args], io);
  return { code, stdout: out, stderr: err };
}

test("exit codes: 0 clean, 1 findings at or above --fail-on, 0 when all are below it, 2 for an unparseable input", async () => {
  assert.equal((await perimeter(["clean"])).code, 0);
  assert.equal((await perimeter(["rules/K8S-PRIVILEGED/fail"])).code, 1);
  assert.equal((await perimeter(["rules/K8S-NETPOL-DNS-UNSCOPED/fail", "--fail-on", "medium"])).code, 0);
  assert.equal((await perimeter(["rules/K8S-NETPOL-DNS-UNSCOPED/fail", "--fail-on", "low"])).code, 1);
  const broken = await perimeter(["-"], { stdin: "kind: [\n" });
  assert.equal(broken.code, 2);
  assert.match(broken.stdout, /<stdin>:1:\d+: error: YAML/);
});

test("usage errors exit 2 and say what to write", async () => {
  assert.equal((await perimeter([])).code, 2);
  const badFormat = await perimeter(["--format", "xml", "seed-003"]);
  assert.equal(badFormat.code, 2);
  assert.match(badFormat.stderr, /--format must be one of text, json, sarif, junit/);
  const badExplain = await perimeter(["--explain", "K8S-PRIVILEGD"]);
  assert.equal(badExplain.code, 2);
  assert.match(badExplain.stderr, /did you mean K8S-PRIVILEGED/);
  assert.equal((await perimeter(["no-such-path"])).code, 2);
});

test("--list-rules prints every rule and --explain prints rationale, remediation and fix", async () => {
  const list = await perimeter(["--list-rules"]);
  assert.equal(list.code, 0);
  for (const rule of RULES) assert.ok(list.stdout.includes(rule.id), rule.id);
  const explain = await perimeter(["--explain", "k8s-agent-data-shared"]);
  assert.equal(explain.code, 0);
  assert.match(explain.stdout, /crown jewels/);
  assert.match(explain.stdout, /Fix: /);
});

test("text output is grouped by file and coloured only when standard output is a terminal", async () => {
  const plain = await perimeter(["seed-003"]);
  assert.doesNotMatch(plain.stdout, /\u001b\[/);
  assert.match(plain.stdout, /^seed-003\/hermes-deployment\.yaml\n {2}28:11 +medium +K8S-/m);
  const coloured = await perimeter(["seed-003"], { tty: true });
  assert.match(coloured.stdout, /\u001b\[/);
});

test("JSON output is versioned and carries rule, location, fingerprint and suppression of every finding", async () => {
  const result = await perimeter(["--format", "json", "seed-003"]);
  const parsed = JSON.parse(result.stdout) as { version: number; findings: Array<Record<string, unknown>>; summary: { findings: number } };
  assert.equal(parsed.version, 1);
  assert.equal(parsed.summary.findings, parsed.findings.length);
  assert.deepEqual(Object.keys(parsed.findings[0] ?? {}).sort(), ["column", "expiredSuppression", "file", "fingerprint", "line", "message", "path", "rule", "severity", "subject", "suppression", "title"]);
});

test("standard input through the real binary: `perimeter check -` reads a manifest piped to it", () => {
  const result = spawnSync(process.execPath, [BIN, "check", "--format", "json", "-"], { input: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: open\n", encoding: "utf8", timeout: 30_000 });
  assert.equal(result.status, 1, result.stderr);
  const parsed = JSON.parse(result.stdout) as { findings: Array<{ rule: string; file: string; line: number }> };
  assert.deepEqual(parsed.findings.map((finding) => `${finding.rule} ${finding.file}:${finding.line}`), ["K8S-PSA-LABELS <stdin>:3"]);
});

// --- SARIF ------------------------------------------------------------------------------------------------------

interface Validator {
  (data: unknown): boolean;
  errors?: Array<{ dataPath?: string; message?: string }> | null;
}

function sarifValidator(): Validator {
  const require = createRequire(import.meta.url);
  const Ajv = require("ajv") as new (options: Record<string, unknown>) => { addMetaSchema(schema: unknown): void; compile(schema: unknown): Validator };
  // The SARIF 2.1.0 schema (its final rtm.5 revision) is written in JSON Schema draft-04.
  const ajv = new Ajv({ schemaId: "id", allErrors: true });
  ajv.addMetaSchema(require("ajv/lib/refs/json-schema-draft-04.json"));
  const schema = JSON.parse(readFileSync(require.resolve("@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json"), "utf8")) as Record<string, unknown>;
  return ajv.compile(schema);
}

test("SARIF output validates against the SARIF 2.1.0 JSON schema, suppressed findings and errors included", async () => {
  const validate = sarifValidator();
  // A suppressed finding (annotation), an expired one, findings of every family, and an input error.
  const withFindings = await perimeter(["--format", "sarif", "seed-003", "suppressed", "rules/COMPOSE-HOST-NETWORK/fail", "rules/DOCKER-ROOT-USER/fail", "rules/HERMES-APPROVALS-OFF/fail"]);
  const sarif = JSON.parse(withFindings.stdout) as unknown;
  assert.ok(validate(sarif), JSON.stringify(validate.errors?.slice(0, 5)));
  const errored = await perimeter(["--format", "sarif", "-"], { stdin: "a: [\n" });
  assert.equal(errored.code, 2);
  assert.ok(validate(JSON.parse(errored.stdout)), JSON.stringify(validate.errors?.slice(0, 5)));
  // The validator is not a rubber stamp: a result without a message is refused.
  const broken = JSON.parse(withFindings.stdout) as { runs: Array<{ results: Array<Record<string, unknown>> }> };
  delete broken.runs[0]?.results[0]?.message;
  assert.equal(validate(broken), false);
});

test("SARIF carries what GitHub code scanning needs: rule help and security-severity, fingerprints, relative URIs, suppressions", async () => {
  const result = await perimeter(["--format", "sarif", "seed-003", "suppressed"]);
  const sarif = JSON.parse(result.stdout) as {
    version: string;
    runs: Array<{
      tool: { driver: { name: string; rules: Array<{ id: string; fullDescription: { text: string }; help: { text: string; markdown: string }; properties: Record<string, unknown> }> } };
      results: Array<{ ruleId: string; ruleIndex: number; partialFingerprints: Record<string, string>; locations: Array<{ physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number; startColumn: number } } }>; suppressions?: Array<{ kind: string; justification: string }> }>;
    }>;
  };
  assert.equal(sarif.version, "2.1.0");
  const run = sarif.runs[0];
  assert.ok(run !== undefined);
  assert.equal(run.tool.driver.rules.length, RULES.length);
  for (const rule of run.tool.driver.rules) {
    assert.ok(rule.fullDescription.text.length > 0 && rule.help.text.length > 0 && rule.help.markdown.length > 0, rule.id);
    assert.match(String(rule.properties["security-severity"]), /^\d+\.\d$/);
  }
  for (const entry of run.results) {
    assert.equal(run.tool.driver.rules[entry.ruleIndex]?.id, entry.ruleId);
    assert.match(entry.partialFingerprints["perimeterFinding/v1"] ?? "", /^[0-9a-f]{32}$/);
    const location = entry.locations[0]?.physicalLocation;
    assert.ok(location !== undefined && location.region.startLine >= 1 && !location.artifactLocation.uri.startsWith("/"));
  }
  const suppressed = run.results.filter((entry) => entry.suppressions !== undefined);
  assert.equal(suppressed.length, 1);
  assert.deepEqual(suppressed[0]?.suppressions?.[0], { kind: "inSource", status: "accepted", justification: "nginx writes its cache under /var/cache (until 2099-12-31)" });
});

// --- JUnit ------------------------------------------------------------------------------------------------------

/** Well-formedness: every element closes in order and text holds no raw markup characters. */
function assertWellFormedXml(text: string): void {
  const body = text.replace(/^<\?xml[^>]*\?>\s*/, "");
  const stack: string[] = [];
  for (const match of body.matchAll(/<(\/?)([A-Za-z-]+)((?:\s+[A-Za-z-]+="[^"<]*")*)\s*(\/?)>|([<>])/g)) {
    if (match[5] !== undefined) assert.fail(`stray "${match[5]}" at ${match.index}`);
    const [, closing, name, , selfClosing] = match;
    if (selfClosing === "/") continue;
    if (closing === "/") assert.equal(stack.pop(), name);
    else stack.push(name as string);
  }
  assert.deepEqual(stack, []);
}

test("JUnit XML: a failure per finding at or above --fail-on, skipped for suppressed ones, error for inputs that do not parse", async () => {
  const result = await perimeter(["--format", "junit", "seed-003", "suppressed"]);
  assertWellFormedXml(result.stdout);
  assert.equal((result.stdout.match(/<failure /g) ?? []).length, 10);
  assert.equal((result.stdout.match(/<skipped /g) ?? []).length, 1);
  const errored = await perimeter(["--format", "junit", "-"], { stdin: "a: [\n" });
  assertWellFormedXml(errored.stdout);
  assert.match(errored.stdout, /<error message="YAML: /);
});

// --- what render produces checks clean ----------------------------------------------------------------------------

const EXAMPLES = readdirSync(join(REPOSITORY, "examples")).filter((name) => name.endsWith(".yaml")).sort();

test("there are examples to render", () => {
  assert.ok(EXAMPLES.length > 0);
});

// examples/local.yaml is the `perimeter up` example for one machine: it declares no cluster, so a Kubernetes render
// must be refused naming what is missing, never produced half right.
test("examples/local.yaml (perimeter up on one machine) is refused for kubernetes, naming kubernetes.apiServerCidr", () => {
  const output = mkdtempSync(join(tmpdir(), "perimeter-render-check-"));
  try {
    const rendered = spawnSync(process.execPath, [BIN, "render", "-c", join("examples", "local.yaml"), "-t", "kubernetes", "-o", output, "--force"], { cwd: REPOSITORY, encoding: "utf8", timeout: 60_000 });
    assert.equal(rendered.status, 2);
    assert.match(rendered.stderr, /kubernetes\.apiServerCidr is required/);
  } finally {
    rmSync(output, { recursive: true, force: true });
  }
});

for (const example of EXAMPLES) {
  for (const target of ["kubernetes", "compose"] as const) {
    if (example === "local.yaml" && target === "kubernetes") continue; // refused on purpose: the test above
    test(`render output checks clean: examples/${example} for ${target} has no finding, and every suppression carries a reason`, () => {
      const output = mkdtempSync(join(tmpdir(), "perimeter-render-check-"));
      try {
        const rendered = spawnSync(process.execPath, [BIN, "render", "-c", join("examples", example), "-t", target, "-o", output, "--force"], { cwd: REPOSITORY, encoding: "utf8", timeout: 60_000 });
        assert.equal(rendered.status, 0, rendered.stderr);
        const result = runCheck([output], { cwd: output });
        assert.deepEqual(result.errors, []);
        assert.ok(result.inputs.length > 0);
        const open = result.findings.filter((finding) => finding.suppression === undefined).map((finding) => `${finding.ruleId} ${finding.location.file}:${finding.location.line} ${finding.message}`);
        assert.deepEqual(open, []);
        for (const finding of result.findings) assert.ok((finding.suppression?.reason.length ?? 0) > 10, `${finding.ruleId} suppressed with a reason`);
      } finally {
        rmSync(output, { recursive: true, force: true });
      }
    });
  }
}
