// Requirement (issue 17, speed): `perimeter up` loads only what its config uses — every service shares one process
// by default, so a package loaded for nothing costs every operator its memory and start time. On the bundled
// examples/local.yaml (no argument pattern or glob, no Telegram, no Kubernetes) neither the RE2 WebAssembly module,
// grammy nor the Kubernetes client may load; a config with a pattern constraint does load RE2 (so the check can fail),
// and an invalid pattern is still refused before anything starts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { localConfig, runPerimeter, startUp, temporaryDirectory } from "./test-support.ts";
import { LOADED_PACKAGES_HOOK } from "../shared/testing.ts";

const HOOK = LOADED_PACKAGES_HOOK;

async function packagesOfUp(directory: string, configFile: string): Promise<string[]> {
  const hook = join(directory, "hook.mjs");
  writeFileSync(hook, HOOK);
  const environment = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory, NODE_OPTIONS: `--import ${hook}` };
  const up = await startUp(["-c", configFile], { env: environment, cwd: directory });
  up.child.kill("SIGTERM");
  const exit = await up.exited;
  assert.equal(exit.code, 0, up.stderr().slice(-2000));
  // One line per thread that ran the hook: together, what the process loaded.
  const lines = up.stderr().split("\n").filter((entry) => entry.startsWith("loaded-packages:"));
  assert.ok(lines.length > 0, "the hook reported what loaded");
  return [...new Set(lines.flatMap((line) => JSON.parse(line.slice("loaded-packages:".length)) as string[]))];
}

test("perimeter up on examples/local.yaml loads neither RE2, grammy nor the Kubernetes client", async () => {
  const directory = temporaryDirectory();
  try {
    const config = await localConfig(directory);
    const packages = await packagesOfUp(directory, config.file);
    assert.ok(packages.includes("zod") && packages.includes("@modelcontextprotocol/server"), `the hook saw the services load: ${packages.join(", ")}`);
    for (const unused of ["re2-wasm", "grammy", "@kubernetes/client-node"]) assert.ok(!packages.includes(unused), `${unused} loaded: ${packages.join(", ")}`);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("a pattern constraint loads RE2 and is enforced with it; an invalid one is refused before anything starts", async () => {
  const directory = temporaryDirectory();
  try {
    const config = await localConfig(directory, (document) => {
      document.setIn(["mcp", "servers", "sandbox", "arguments"], document.createNode({ run: { workspace: { pattern: "[a-z]+" } } }));
    });
    assert.ok((await packagesOfUp(directory, config.file)).includes("re2-wasm"));
    const invalid = await localConfig(directory, (document) => {
      document.setIn(["mcp", "servers", "sandbox", "arguments"], document.createNode({ run: { workspace: { pattern: "(a)\\1" } } }));
    });
    const refused = await runPerimeter(["up", "-c", invalid.file, "--check"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory }, cwd: directory });
    assert.equal(refused.code, 2, refused.stdout);
    assert.match(refused.stderr, /RE2 cannot compile it/);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("perimeter up reuses the code cache another perimeter command wrote: every command runs under the same V8 flags", async () => {
  const directory = temporaryDirectory();
  try {
    const config = await localConfig(directory);
    // A private cache, so that only these two runs write it.
    const environment = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory, NODE_COMPILE_CACHE: join(directory, "compile-cache") };
    const first = await runPerimeter(["serve", "sandbox", "--help"], { env: environment, cwd: directory });
    assert.equal(first.code, 0, first.stderr);
    const up = await startUp(["-c", config.file], { env: { ...environment, NODE_DEBUG_NATIVE: "COMPILE_CACHE" }, cwd: directory });
    up.child.kill("SIGTERM");
    const exit = await up.exited;
    assert.equal(exit.code, 0, up.stderr().slice(-2000));
    const second = { stderr: up.stderr() };
    const verdicts = [...second.stderr.matchAll(/V8 code cache for \S+ (\S+) was (accepted|rejected)/g)];
    const rejected = verdicts.filter((match) => match[2] === "rejected").map((match) => match[1]);
    assert.ok(verdicts.filter((match) => match[1]?.includes("/src/sandbox/")).length > 10, `the sandbox runner's modules, cached by the first command, were looked up (${verdicts.length} verdicts)`);
    assert.deepEqual(rejected, [], `modules compiled again although cached: ${rejected.slice(0, 5).join(", ")}`);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
