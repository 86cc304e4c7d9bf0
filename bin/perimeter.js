#!/usr/bin/env node
// The `perimeter` command. Node >= 22.18 strips TypeScript types itself; the project pins Node 24 through the `node`
// devDependency so `npx perimeter` and every npm script run on it.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`perimeter needs Node.js 24 (found ${process.version}); run it through "npx perimeter" inside the project, which uses the pinned Node 24.`);
  process.exit(2);
}
// Cache compiled code between runs (TypeScript stripping included): a short command starts several times faster.
const { enableCompileCache } = await import("node:module");
enableCompileCache?.();
const { main } = await import("../src/cli/main.ts");
await main();
