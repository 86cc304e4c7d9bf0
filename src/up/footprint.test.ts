// Requirement (issue 17, speed): `perimeter up` loads only what its config uses — every service shares one process
// by default, so a package loaded for nothing costs every operator its memory and start time. On the bundled
// examples/local.yaml (no argument pattern or glob, no Telegram, no Kubernetes) neither the RE2 WebAssembly module,
// grammy nor the Kubernetes client may load; a config with a pattern constraint does load RE2 (so the check can fail),
// and an invalid pattern is still refused before anything starts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, rmSync, writeFileSync } from "node:fs";
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

test("perimeter up's code cache survives other perimeter commands: up runs under its own V8 flags and keeps its own cache", async () => {
  const directory = temporaryDirectory();
  try {
    const config = await localConfig(directory);
    // A private cache root: the caches of these runs alone.
    const cacheRoot = join(directory, "cache");
    const environment = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory, PERIMETER_CACHE_ROOT: cacheRoot };
    const upOnce = async (debug: boolean) => {
      const up = await startUp(["-c", config.file], { env: { ...environment, ...(debug ? { NODE_DEBUG_NATIVE: "COMPILE_CACHE" } : {}) }, cwd: directory });
      up.child.kill("SIGTERM");
      const exit = await up.exited;
      assert.equal(exit.code, 0, up.stderr().slice(-2000));
      return up.stderr();
    };
    // serve, up, serve again (a deployment's command, under V8's default flags), then up: nothing of up's is compiled
    // again (a cache shared by both was rewritten by each in turn).
    for (const run of [() => runPerimeter(["serve", "sandbox", "--help"], { env: environment, cwd: directory }), () => upOnce(false), () => runPerimeter(["serve", "sandbox", "--help"], { env: environment, cwd: directory })]) {
      const result = await run();
      if (typeof result !== "string") assert.equal(result.code, 0, result.stderr);
    }
    const stderr = await upOnce(true);
    const verdicts = [...stderr.matchAll(/V8 code cache for \S+ (\S+) was (accepted|rejected)/g)];
    const rejected = verdicts.filter((match) => match[2] === "rejected").map((match) => match[1]);
    assert.ok(verdicts.filter((match) => match[1]?.includes("/src/sandbox/")).length > 10, `the sandbox runner's modules came from the cache (${verdicts.length} verdicts)`);
    assert.deepEqual(rejected, [], `modules compiled again although cached: ${rejected.slice(0, 5).join(", ")}`);
    assert.ok(existsSync(join(cacheRoot, "perimeter", "compile-cache-up")), "up keeps its cache apart");
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
