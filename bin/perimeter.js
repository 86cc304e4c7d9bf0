#!/usr/bin/env node
// The `perimeter` command. Node >= 22.18 strips TypeScript types itself; the project pins Node 24 through the `node`
// devDependency so `npx perimeter` and every npm script run on it.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`perimeter needs Node.js 24 (found ${process.version}); run it through "npx perimeter" inside the project, which uses the pinned Node 24.`);
  process.exit(2);
}
// Cache compiled code between runs (TypeScript stripping included): a short command starts several times faster. In a
// directory only this user can write (compile-cache.js says why); NODE_COMPILE_CACHE, when set, is Node's own choice,
// and PERIMETER_CACHE_ROOT moves the cache (tests give each run its own).
const { enableCompileCache } = await import("node:module");
const { privateCompileCacheDirectory } = await import("./compile-cache.js");
const up = process.argv[2] === "up";
if (up) {
  // perimeter up keeps every service in this one process for as long as it runs: V8's young generation stays at its
  // first size (2 x 1 MiB) instead of growing to 2 x 16 MiB under start-up allocation and keeping that while idle
  // (~18 MiB of up's idle RSS). V8's code cache records the flags it was made under and rejects an entry made under
  // others, so up keeps a cache of its own: sharing one with `perimeter serve` made every up after a serve compile 357
  // of its 500 modules again (~150-250 ms of its start). The services of a deployment (`perimeter serve`, one per
  // container or unit) keep V8's defaults: their young generation is sized for throughput.
  (await import("node:v8")).setFlagsFromString("--semi-space-growth-factor=1");
}
const cacheDirectory = process.env.NODE_COMPILE_CACHE === undefined ? privateCompileCacheDirectory(up ? "compile-cache-up" : "compile-cache", process.env.PERIMETER_CACHE_ROOT) : undefined;
if (cacheDirectory !== undefined) enableCompileCache?.(cacheDirectory);
const { main } = await import("../src/cli/main.ts");
await main();
