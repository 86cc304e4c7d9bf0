#!/usr/bin/env node
// The `perimeter` command. Node >= 22.18 strips TypeScript types itself; the project pins Node 24 through the `node`
// devDependency so `npx perimeter` and every npm script run on it.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`perimeter needs Node.js 24 (found ${process.version}); run it through "npx perimeter" inside the project, which uses the pinned Node 24.`);
  process.exit(2);
}
// V8's young generation stays at its first size (2 x 1 MiB) instead of growing to 2 x 16 MiB under start-up
// allocation and keeping that while idle: ~15 MiB of perimeter up's RSS, where every service shares one process.
// Scavenges come more often and each stays cheap (render, check and up's start measured no slower). Set here, first,
// for every command alike: V8's code cache records the flags it was made under, and a module cached by a process
// with other flags is rejected and compiled again (perimeter up after a `perimeter serve` rejected 357 of 500).
(await import("node:v8")).setFlagsFromString("--semi-space-growth-factor=1");
// Cache compiled code between runs (TypeScript stripping included): a short command starts several times faster.
const { enableCompileCache } = await import("node:module");
enableCompileCache?.();
const { main } = await import("../src/cli/main.ts");
await main();
