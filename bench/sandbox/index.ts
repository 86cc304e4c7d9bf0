// Sandbox latency: what one sandboxed `true` costs over a bare spawn, in one run, side by side with the peer,
// @anthropic-ai/sandbox-runtime (srt). Rows:
//   bare spawn          child_process.spawn("true") and wait for it
//   bwrap (minimal)     bwrap with only what `true` needs: the floor any bubblewrap sandbox pays
//   library             createBubblewrapBackend().run({ argv: ["true"] }) — every limit, seccomp, cgroups, uid switch
//   library, no cgroup  the same with cgroups off (what the per-task cgroup costs)
//   perimeter CLI       `perimeter sandbox exec -- true` (a whole Node process)
//   srt library         SandboxManager.wrapWithSandbox("true") + spawning the wrapped command, per command
//   srt CLI             `srt true` (a whole Node process)
// Each row: p50/p99 over sequential runs, then 20 tasks at once (per-task p50/p99 and the batch's wall time).
// Bounded: every row stops at its run count or its time budget, whichever comes first (the whole run < 2 min).
// Run: node_modules/.bin/node bench/sandbox/index.ts   (root, bubblewrap; srt needs ripgrep and socat)
import { spawn } from "node:child_process";
import { join } from "node:path";
import { cpus } from "node:os";
import { createBubblewrapBackend } from "../../src/sandbox/index.ts";
import type { BubblewrapBackend } from "../../src/sandbox/index.ts";
import { limitsFromConfig } from "../../src/sandbox/index.ts";

const ROOT = join(import.meta.dirname, "../..");
const NODE = process.execPath;
const SEQUENTIAL = 60;
const CONCURRENT = 20;

interface Row {
  name: string;
  runs: number[];
  concurrent?: { latencies: number[]; wallMs: number };
  note?: string;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function spawnAndWait(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "ignore", ...(env !== undefined ? { env } : {}) });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(0) : reject(new Error(`${command} exited ${code}`))));
  });
}

async function timed(operation: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await operation();
  return performance.now() - started;
}

async function measure(name: string, operation: () => Promise<unknown>, options: { runs?: number; budgetMs?: number; concurrent?: boolean } = {}): Promise<Row> {
  const runs: number[] = [];
  const budget = options.budgetMs ?? 15_000;
  const started = performance.now();
  await operation(); // warm-up, not counted
  for (let index = 0; index < (options.runs ?? SEQUENTIAL) && performance.now() - started < budget; index++) runs.push(await timed(operation));
  const row: Row = { name, runs };
  if (options.concurrent !== false) {
    const batchStarted = performance.now();
    const latencies = await Promise.all(Array.from({ length: CONCURRENT }, () => timed(operation)));
    row.concurrent = { latencies, wallMs: performance.now() - batchStarted };
  }
  return row;
}

const MINIMAL_BWRAP = ["--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/lib", "/lib", "--symlink", "usr/bin", "/bin", "--", "/usr/bin/true"];

async function main(): Promise<void> {
  const rows: Row[] = [];
  const limits = limitsFromConfig({ cpu: "1", memory: "512Mi", pids: 128, disk: "256Mi", timeoutSeconds: 30 });

  rows.push(await measure("bare spawn", () => spawnAndWait("true", [])));
  rows.push(await measure("bwrap (minimal)", () => spawnAndWait("bwrap", MINIMAL_BWRAP)));

  let backend: BubblewrapBackend | undefined = await createBubblewrapBackend({ defaults: limits });
  const applied = (await backend.run({ argv: ["true"] })).limits;
  rows.push(await measure("library", () => (backend as BubblewrapBackend).run({ argv: ["true"] })));
  rows[rows.length - 1]!.note = `cgroup ${applied.cgroup === null ? "none" : `v${applied.cgroup.version} ${applied.cgroup.controllers.join("+")}`}, seccomp, prlimit, uid ${backend.describe().hostUid}`;
  await backend.close();
  backend = await createBubblewrapBackend({ defaults: limits, cgroups: "off" });
  rows.push(await measure("library, no cgroup", () => (backend as BubblewrapBackend).run({ argv: ["true"] })));
  await backend.close();

  rows.push(await measure("perimeter CLI", () => spawnAndWait(NODE, [join(ROOT, "bin/perimeter.js"), "sandbox", "exec", "--", "true"]), { runs: 50, budgetMs: 30_000, concurrent: false }));

  // The peer. It needs ripgrep and socat on Linux; without them it refuses to start, and the row says so.
  try {
    const { SandboxManager } = await import("@anthropic-ai/sandbox-runtime");
    const dependencies = SandboxManager.checkDependencies();
    if (dependencies.errors.length > 0) throw new Error(dependencies.errors.join(", "));
    await SandboxManager.initialize({ network: { allowedDomains: [], deniedDomains: [] }, filesystem: { denyRead: [], allowWrite: [], denyWrite: [] } });
    const runWrapped = async () => {
      const { argv, env } = await SandboxManager.wrapWithSandboxArgv("true");
      await spawnAndWait(argv[0] as string, argv.slice(1), env);
    };
    const row = await measure("srt library", runWrapped);
    row.note = "wrapWithSandboxArgv + spawn per command (its per-command ripgrep scan included)";
    rows.push(row);
    await SandboxManager.reset();
  } catch (error) {
    rows.push({ name: "srt library", runs: [], note: `did not run: ${(error as Error).message}` });
  }
  try {
    const cli = join(ROOT, "node_modules/@anthropic-ai/sandbox-runtime/dist/cli.js");
    rows.push(await measure("srt CLI", () => spawnAndWait(NODE, [cli, "true"]), { runs: 50, budgetMs: 30_000, concurrent: false }));
  } catch (error) {
    rows.push({ name: "srt CLI", runs: [], note: `did not run: ${(error as Error).message}` });
  }

  const bare = percentile(rows[0]!.runs, 50);
  const library = rows.find((row) => row.name === "library");
  const libraryP50 = library === undefined ? NaN : percentile(library.runs, 50);
  console.log(`sandbox latency of \`true\` (${cpus().length} CPUs, Node ${process.version}; a shared machine: other work was running)`);
  console.log("");
  console.log("row                   runs   p50 ms   p99 ms  +p50 vs bare   x library | 20 at once: p50 ms  p99 ms  wall ms");
  for (const row of rows) {
    if (row.runs.length === 0) {
      console.log(`${row.name.padEnd(20)}  ${row.note ?? ""}`);
      continue;
    }
    const p50 = percentile(row.runs, 50);
    const p99 = percentile(row.runs, 99);
    const concurrent = row.concurrent === undefined ? "" : `${percentile(row.concurrent.latencies, 50).toFixed(1).padStart(18)}  ${percentile(row.concurrent.latencies, 99).toFixed(1).padStart(6)}  ${row.concurrent.wallMs.toFixed(0).padStart(7)}`;
    console.log(
      `${row.name.padEnd(20)}  ${String(row.runs.length).padStart(4)}  ${p50.toFixed(2).padStart(7)}  ${p99.toFixed(2).padStart(7)}  ${(p50 - bare).toFixed(2).padStart(12)}  ${(p50 / libraryP50).toFixed(2).padStart(10)} |${concurrent}`,
    );
    if (row.note !== undefined) console.log(`${"".padEnd(22)}(${row.note})`);
  }
  const srt = rows.find((row) => row.name === "srt library" && row.runs.length > 0);
  console.log("");
  console.log(`library adds ${(libraryP50 - bare).toFixed(2)} ms p50 over a bare spawn (target <= 10 ms)${srt !== undefined ? `; srt library is ${(percentile(srt.runs, 50) / libraryP50).toFixed(1)}x the library's p50` : ""}`);
}

await main();
