// Bad input (issue 2): an invalid, insecure or inconsistent config exits 2 naming the line and the fix; render never
// leaves a partial directory; an existing non-empty output directory is refused unless --force. Runs the real bin.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeDirectory } from "./write.ts";
import { examplePath, exampleText } from "./testing.ts";

const bin = new URL("../../bin/perimeter.js", import.meta.url).pathname;

function perimeter(...args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function workspace(): string {
  return mkdtempSync(join(tmpdir(), "perimeter-render-cli-"));
}

/** No `.out.render-*` staging directory may survive a run. */
function leftovers(directory: string): string[] {
  return readdirSync(directory).filter((entry) => entry.includes(".render-"));
}

test("render writes the directory and prints the exact kubectl commands and next steps (exit 0)", () => {
  const root = workspace();
  const result = perimeter("render", "-c", examplePath("k3s-telegram-minimax"), "-t", "kubernetes", "-o", join(root, "out"));
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /kubectl create secret generic hermes-gateway --namespace=hermes-system \\\n {2}--from-literal=HERMES_LLM_KEY="\$\{HERMES_LLM_KEY:\?set HERMES_LLM_KEY\}"/);
  assert.match(result.stdout, /kubectl create secret generic llm-proxy --namespace=hermes-tools/);
  assert.match(result.stdout, /kubectl apply -k /);
  assert.ok(existsSync(join(root, "out", "kustomization.yaml")));
  assert.deepEqual(leftovers(root), []);
});

test("render -t compose lists each service's env file (exit 0)", () => {
  const root = workspace();
  const result = perimeter("render", "-c", examplePath("compose-vps"), "-t", "compose", "-o", join(root, "out"));
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /env\/llm-proxy\.env \(llm-proxy\): ANTHROPIC_API_KEY, HERMES_LLM_KEY, OPENROUTER_API_KEY/);
  assert.match(result.stdout, /docker compose up -d/);
  assert.ok(existsSync(join(root, "out", "compose.yaml")));
});

test("an existing non-empty output directory is refused without --force and left untouched (exit 2)", () => {
  const root = workspace();
  const output = join(root, "out");
  mkdirSync(output);
  writeFileSync(join(output, "mine.txt"), "keep me");
  const result = perimeter("render", "-c", examplePath("k3s-telegram-minimax"), "-t", "kubernetes", "-o", output);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /exists and is not empty: choose another -o directory, or pass --force/);
  assert.deepEqual(readdirSync(output), ["mine.txt"]);
  assert.equal(readFileSync(join(output, "mine.txt"), "utf8"), "keep me");
  assert.deepEqual(leftovers(root), []);
});

test("--force replaces an existing render whole (no stale file survives)", () => {
  const root = workspace();
  const output = join(root, "out");
  mkdirSync(output);
  writeFileSync(join(output, "stale.yaml"), "kind: Stale\n");
  const result = perimeter("render", "-c", examplePath("k3s-telegram-minimax"), "-t", "kubernetes", "-o", output, "--force");
  assert.equal(result.code, 0, result.stderr);
  assert.ok(!existsSync(join(output, "stale.yaml")));
  assert.ok(existsSync(join(output, "kustomization.yaml")));
  assert.deepEqual(leftovers(root), []);
});

test("an empty existing directory is fine without --force", () => {
  const root = workspace();
  mkdirSync(join(root, "out"));
  assert.equal(perimeter("render", "-c", examplePath("compose-vps"), "-t", "compose", "-o", join(root, "out")).code, 0);
});

for (const [what, mutate, expected] of [
  ["approvals: off (insecure)", (text: string) => text.replace("approvals: manual", "approvals: off"), /approvals "off" lets a prompt-injected agent run anything unasked: use manual/],
  ["an allow-all user list (insecure)", (text: string) => text.replace('allowedUsers: ["987654321"]', 'allowedUsers: ["*"]'), /allows every user/],
  ["a wildcard egress rule (insecure)", (text: string) => text.replace("allow: [api.telegram.org]", 'allow: ["*.com"]'), /too broad/],
  ["an approval for a server that does not exist (inconsistent)", (text: string) => text.replace("approvals: { timeoutSeconds: 600 }", 'approvals: { timeoutSeconds: 600, tools: ["nothere__delete"] }'), /must be <server>__<tool> for a server in mcp\.servers/],
  ["a typo (invalid)", (text: string) => text.replace("cronApprovals: deny", "cronAprovals: deny"), /cronAprovals/],
] as const) {
  test(`a config with ${what} exits 2 with the line, writes nothing`, () => {
    const root = workspace();
    const file = join(root, "perimeter.yaml");
    const text = mutate(exampleText("k3s-telegram-minimax"));
    assert.notEqual(text, exampleText("k3s-telegram-minimax"), "the mutation applied");
    writeFileSync(file, text);
    const result = perimeter("render", "-c", file, "-t", "kubernetes", "-o", join(root, "out"));
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, expected);
    assert.match(result.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+:\\d+`));
    assert.ok(!existsSync(join(root, "out")));
    assert.deepEqual(leftovers(root), []);
  });
}

test("a config render cannot deploy (sandbox without kubernetes.apiServerCidr) exits 2 with the fix, writes nothing", () => {
  const root = workspace();
  const file = join(root, "perimeter.yaml");
  writeFileSync(file, exampleText("k3s-telegram-minimax").replace(/^ {2}apiServerCidr: .*$/m, ""));
  const result = perimeter("render", "-c", file, "-t", "kubernetes", "-o", join(root, "out"));
  assert.equal(result.code, 2);
  assert.match(result.stderr, /kubernetes\.apiServerCidr is required/);
  assert.match(result.stderr, /kubectl get endpoints kubernetes/);
  assert.ok(!existsSync(join(root, "out")));
  // The same config renders for Compose, which has no API server to reach.
  assert.equal(perimeter("render", "-c", file, "-t", "compose", "-o", join(root, "compose")).code, 0);
});

test("a stdio MCP server given an image exits 2 explaining why", () => {
  const root = workspace();
  const file = join(root, "perimeter.yaml");
  writeFileSync(file, `${exampleText("compose-vps").replace("  servers:\n    github:", '  servers:\n    files: { command: [npx, -y, "@modelcontextprotocol/server-filesystem", /data], image: "node:24-slim", tools: { allow: ["*"] } }\n    github:')}`);
  const result = perimeter("render", "-c", file, "-t", "compose", "-o", join(root, "out"));
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /mcp\.servers\.files: a stdio server \(command\) cannot run from its own image/);
});

test("usage errors exit 2 and say which flag is missing", () => {
  assert.match(perimeter("render", "-t", "kubernetes", "-o", "x").stderr, /give the config file with -c FILE/);
  const noTarget = perimeter("render", "-c", examplePath("compose-vps"), "-o", "x");
  assert.equal(noTarget.code, 2);
  assert.match(noTarget.stderr, /-t kubernetes, -t compose or -t vps/);
  assert.match(perimeter("render", "-c", examplePath("compose-vps"), "-t", "swarm", "-o", "x").stderr, /not "swarm"/);
  // vps is a target, but a config without a host: section cannot use it, and is told what to add.
  const noHost = perimeter("render", "-c", examplePath("compose-vps"), "-t", "vps", "-o", "x");
  assert.equal(noHost.code, 2);
  assert.match(noHost.stderr, /the vps target needs a host: section/);
  assert.match(perimeter("render", "-c", examplePath("compose-vps"), "-t", "compose").stderr, /-o DIR/);
});

test("a write that fails half-way leaves neither the destination nor the staging directory", () => {
  const root = workspace();
  const output = join(root, "out");
  assert.throws(() => writeDirectory(output, [{ path: "a.yaml", content: "a: 1\n" }, { path: "../escape.yaml", content: "x\n" }], { force: false }), /escapes/);
  assert.ok(!existsSync(output));
  assert.deepEqual(readdirSync(root), []);
});

test("a failed --force write keeps the previous render intact", () => {
  const root = workspace();
  const output = join(root, "out");
  mkdirSync(output);
  writeFileSync(join(output, "previous.yaml"), "kind: Previous\n");
  assert.throws(() => writeDirectory(output, [{ path: "../../escape.yaml", content: "x\n" }], { force: true }));
  assert.deepEqual(readdirSync(output), ["previous.yaml"]);
  assert.deepEqual(leftovers(root), []);
});

test("render --force on Compose keeps the operator's filled-in env files byte for byte (issue 14 item 5)", () => {
  const root = workspace();
  const output = join(root, "out");
  assert.equal(perimeter("render", "-c", examplePath("compose-vps"), "-t", "compose", "-o", output).code, 0);
  const filled = new Map<string, string>();
  for (const example of readdirSync(join(output, "env")).filter((name) => name.endsWith(".env.example"))) {
    const file = join("env", example.replace(/\.example$/, ""));
    const content = `${readFileSync(join(output, "env", example), "utf8").replace(/=$/gm, "=filled-in-by-the-operator")}# ${file}\n`;
    writeFileSync(join(output, file), content, { mode: 0o600 });
    filled.set(file, content);
  }
  // Compose reads a top-level .env for variable substitution; the operator owns it too.
  writeFileSync(join(output, ".env"), "COMPOSE_PROJECT_NAME=mine\n", { mode: 0o600 });
  filled.set(".env", "COMPOSE_PROJECT_NAME=mine\n");
  assert.ok(filled.size > 2);
  const again = perimeter("render", "-c", examplePath("compose-vps"), "-t", "compose", "-o", output, "--force");
  assert.equal(again.code, 0, again.stderr);
  for (const [file, content] of filled) {
    assert.equal(readFileSync(join(output, file), "utf8"), content, `${file} must survive render --force`);
    assert.equal(statSync(join(output, file)).mode & 0o777, 0o600, `${file} keeps its mode`);
  }
  // What the render produces is still replaced: a stale rendered file goes, a rendered one comes back.
  assert.ok(existsSync(join(output, "compose.yaml")));
  assert.deepEqual(leftovers(root), []);
});

test("render --force replaces everything else the previous render held", () => {
  const root = workspace();
  const output = join(root, "out");
  mkdirSync(join(output, "env"), { recursive: true });
  writeFileSync(join(output, "stale.yaml"), "kind: Stale\n");
  writeFileSync(join(output, "env", "notes.txt"), "not an env file\n");
  const written = writeDirectory(output, [{ path: "compose.yaml", content: "services: {}\n" }], { force: true });
  assert.ok(written.ok);
  assert.deepEqual(readdirSync(output).sort(), ["compose.yaml"]);
});

test("render warns about a risky declaration (a Telegram @handle in allowedUsers) and still renders (issue 14 item 7)", () => {
  const root = workspace();
  const config = join(root, "perimeter.yaml");
  writeFileSync(config, exampleText("compose-vps").replace('allowedUsers: ["987654321"]', 'allowedUsers: ["987654321", "@alice"]'));
  const result = perimeter("render", "-c", config, "-t", "compose", "-o", join(root, "out"));
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /perimeter render: warning: agent\.platforms\.telegram\.allowedUsers: "@alice" is not a numeric user id/);
});
