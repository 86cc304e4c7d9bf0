// Requirements (issue 17, item 1, bad input): `perimeter up` refuses before anything starts — no process, no file —
// when a port is busy, a secret is missing, the secrets file is readable by others, the host cannot run the sandbox,
// or another `up` runs the same perimeter; each message names the fix and never a secret's value. A service that
// cannot start stops all the others. A supervisor killed outright (SIGKILL) still leaves no service running, and each
// service holds only its own credentials.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { localConfig, processesMentioning, readSecrets, runPerimeter, startUp, temporaryDirectory } from "./test-support.ts";

const PATH = process.env.PATH ?? "/usr/bin:/bin";

function environment(directory: string, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH, HOME: directory, ...extra };
}

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // Bounded by the deadline.
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function assertNothingStarted(directory: string): void {
  assert.equal(existsSync(join(directory, "state")), false, "no state directory, audit log or secrets file was created");
  assert.deepEqual(processesMentioning(directory), []);
}

test("a busy port stops up before anything starts, naming the address, the config key and how to find the holder", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory);
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(config.ports.mcp, "127.0.0.1", resolve));
  try {
    const result = await runPerimeter(["up", "-c", config.file], { env: environment(directory), cwd: directory });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /nothing was started/);
    assert.match(result.stderr, new RegExp(`mcp-guard: 127\\.0\\.0\\.1:${config.ports.mcp} \\(mcp\\.listen\\) is in use by another process: stop it \\(ss -ltnp 'sport = :${config.ports.mcp}'`));
    assertNothingStarted(directory);
  } finally {
    holder.close();
    rmSync(directory, { recursive: true, force: true });
  }
});

test("a missing provider key stops up before anything starts, naming the variable and the setting; local tokens are not generated then either", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory, (document) => document.setIn(["llm", "providers", "ollama", "apiKeySecret"], "OLLAMA_API_KEY"));
  try {
    const result = await runPerimeter(["up", "-c", config.file], { env: environment(directory), cwd: directory });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /OLLAMA_API_KEY is not set: llm\.providers\.ollama\.apiKeySecret \(the provider's API key\) needs it; export OLLAMA_API_KEY=\.\.\. before perimeter up/);
    assertNothingStarted(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("--no-generate turns a missing local token into an error that says how to get one", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory);
  try {
    const result = await runPerimeter(["up", "-c", config.file, "--no-generate"], { env: environment(directory, { PERIMETER_ADMIN_TOKEN: "admin-token-from-the-environment-0123" }), cwd: directory });
    assert.equal(result.code, 2);
    for (const name of ["PERIMETER_AGENT_TOKEN", "PERIMETER_SANDBOX_TOKEN", "HERMES_LLM_KEY"]) assert.match(result.stderr, new RegExp(`${name} is not set: .*leave out --no-generate`));
    assert.doesNotMatch(result.stderr, /PERIMETER_ADMIN_TOKEN is not set/, "a variable from the environment counts");
    assert.ok(!result.stderr.includes("admin-token-from-the-environment-0123"));
    assertNothingStarted(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("a secrets file others can read, or a symbolic link in its place, is refused without printing what it holds", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory);
  const secretsFile = join(directory, "secrets.env");
  const value = "pt_a-value-that-must-never-be-printed-0123456789";
  try {
    writeFileSync(secretsFile, `PERIMETER_AGENT_TOKEN=${value}\nthis line is broken ${value}\n`, { mode: 0o644 });
    chmodSync(secretsFile, 0o644);
    const wide = await runPerimeter(["up", "-c", config.file, "--secrets-file", secretsFile], { env: environment(directory), cwd: directory });
    assert.equal(wide.code, 2);
    assert.match(wide.stderr, /is readable by others \(mode 644\): chmod 600 .*secrets\.env/);
    chmodSync(secretsFile, 0o600);
    const broken = await runPerimeter(["up", "-c", config.file, "--secrets-file", secretsFile], { env: environment(directory), cwd: directory });
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /secrets\.env:2: not NAME=value/);
    const link = join(directory, "link.env");
    symlinkSync(secretsFile, link);
    const linked = await runPerimeter(["up", "-c", config.file, "--secrets-file", link], { env: environment(directory), cwd: directory });
    assert.equal(linked.code, 2);
    assert.match(linked.stderr, /is not a regular file \(a symbolic link is not followed\)/);
    for (const output of [wide, broken, linked]) assert.ok(!output.stderr.includes(value) && !output.stdout.includes(value));
    assertNothingStarted(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("a host without bubblewrap is told what is missing before anything starts", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory);
  const emptyPath = join(directory, "empty-bin");
  mkdirSync(emptyPath);
  try {
    const result = await runPerimeter(["up", "-c", config.file], { env: { PATH: emptyPath, HOME: directory }, cwd: directory });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /sandbox: bubblewrap \(bwrap\) is not installed or not on PATH: apt-get install bubblewrap/);
    assert.match(result.stderr, /sandbox: prlimit is not installed .*apt-get install util-linux/);
    assertNothingStarted(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("a service that cannot start stops every other one; up exits 2 and names it", async () => {
  const directory = temporaryDirectory();
  // A canary too short to be recognised: llm-proxy itself refuses to start (exit 2) after up's checks passed.
  const config = await localConfig(directory, (document) => document.setIn(["llm", "canaries"], ["SHORT_CANARY"]));
  try {
    const result = await runPerimeter(["up", "-c", config.file], { env: environment(directory, { SHORT_CANARY: "abc" }), cwd: directory, timeoutMs: 90_000 });
    assert.equal(result.code, 2, result.stderr.slice(-2000));
    assert.match(result.stderr, /perimeter up: llm-proxy did not start: exited with 2; every service was stopped/);
    assert.match(result.stderr, /SHORT_CANARY is too short/, "the service's own message says why");
    assert.deepEqual(processesMentioning(directory), []);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("a second up for the same perimeter is refused while the first runs; a supervisor killed with SIGKILL leaves no service running", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory);
  // Each service its own process, so that each one's environment can be read from outside (/proc/PID/environ).
  const up = await startUp(["-c", config.file, "--process-per-service"], { env: environment(directory), cwd: directory });
  try {
    const second = await runPerimeter(["up", "-c", config.file], { env: environment(directory), cwd: directory });
    assert.equal(second.code, 2);
    assert.match(second.stderr, new RegExp(`perimeter up is already running for this audit log \\(pid ${up.child.pid}`));

    // Each service holds its own credentials only: the agent-side tokens are not in the egress proxy's environment.
    const state = JSON.parse(readFileSync(join(directory, "state", "up-state.json"), "utf8")) as { services: Array<{ name: string; pid: number }> };
    const secrets = readSecrets(join(directory, "state", "secrets.env"));
    const environOf = (name: string) => readFileSync(`/proc/${state.services.find((service) => service.name === name)?.pid}/environ`, "utf8").split("\0");
    assert.deepEqual(environOf("egress-proxy").filter((entry) => /TOKEN|KEY/.test(entry)), []);
    assert.deepEqual(environOf("sandbox").filter((entry) => /TOKEN|KEY/.test(entry)), [`PERIMETER_SANDBOX_TOKEN=${secrets.PERIMETER_SANDBOX_TOKEN}`]);
    assert.deepEqual(environOf("llm-proxy").filter((entry) => /TOKEN|KEY/.test(entry)), [`HERMES_LLM_KEY=${secrets.HERMES_LLM_KEY}`]);
    assert.deepEqual(environOf("mcp-guard").filter((entry) => /TOKEN|KEY/.test(entry)).sort(), ["PERIMETER_ADMIN_TOKEN", "PERIMETER_AGENT_TOKEN", "PERIMETER_SANDBOX_TOKEN"].map((name) => `${name}=${secrets[name]}`));

    up.child.kill("SIGKILL");
    await up.exited;
    await waitUntil(() => processesMentioning(directory).length === 0, 20_000, "the orphaned services to stop");
  } finally {
    if (up.child.exitCode === null && up.child.signalCode === null) up.child.kill("SIGKILL");
    for (const { pid } of processesMentioning(directory)) process.kill(pid, "SIGKILL");
    rmSync(directory, { recursive: true, force: true });
  }
});
