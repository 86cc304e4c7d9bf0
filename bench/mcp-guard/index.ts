// Benchmark: what mcp-guard adds to a tools/call. The upstream is @modelcontextprotocol/server-everything over
// Streamable HTTP (its own process); the guard runs as `perimeter serve mcp-guard` (its own process, audit log on
// with the audit module's default SQLite synchronous=NORMAL in WAL mode, two records per call; the guard's own
// synchronous=FULL connection holds pins and approvals and is not written on an allowed call); the agent is the official SDK client in this process. Same upstream, same tool (echo),
// same client library, in the same run:
//   - latency: sequential calls, interleaved rounds of direct and guarded, p50/p99, and the added p50 (target ≤ 2 ms)
//   - throughput: 16 concurrent clients for a fixed time, calls/s, direct vs guarded
// Bounded: about a minute in total.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { freePort } from "../../src/shared/index.ts";

const ROOT = join(import.meta.dirname, "../..");
const EVERYTHING = join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const BIN = join(ROOT, "bin/perimeter.js");
const TOKEN = "bench-agent-token-0123456789";
const ROUNDS = 4;
const CALLS_PER_ROUND = 500;
const WARMUP = 200;
const CONCURRENCY = 16;
const THROUGHPUT_SECONDS = 5;


async function waitFor<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

type Target = { name: string; url: string; headers: Record<string, string>; version: "2025-11-25" | "2026-07-28" };

async function connect(target: Target): Promise<Client> {
  const client = new Client({ name: "bench", version: "1.0.0" }, target.version === "2026-07-28" ? { versionNegotiation: { mode: { pin: "2026-07-28" } } } : {});
  await client.connect(new StreamableHTTPClientTransport(new URL(target.url), { requestInit: { headers: target.headers } }));
  return client;
}

/** CPU time (user + system, ms) a process has used so far, from /proc (Linux); undefined elsewhere. */
function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined || !existsSync(`/proc/${pid}/stat`)) return undefined;
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? NaN;
}

async function main(): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), "bench-mcp-guard-"));
  const children: ChildProcess[] = [];
  try {
    const upstreamPort = await freePort();
    const upstream = spawn(process.execPath, [EVERYTHING, "streamableHttp"], { env: { PATH: process.env.PATH ?? "", PORT: String(upstreamPort) }, stdio: "ignore" });
    children.push(upstream);
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}/mcp`;
    await waitFor(async () => {
      try {
        await fetch(upstreamUrl);
        return true;
      } catch {
        return undefined;
      }
    }, "server-everything");

    const config = join(directory, "perimeter.yaml");
    writeFileSync(
      config,
      `version: 1
name: bench
mcp:
  admin: { listen: "127.0.0.1:${await freePort()}" }
  pinning: { trustOnFirstUse: true }
  limits: { concurrentCallsPerAgent: 256 }
  servers:
    everything: { url: "${upstreamUrl}", tools: { allow: [echo] } }
audit: { path: ${join(directory, "audit.db")} }
`,
    );
    // PERIMETER_BENCH_PROFILE=DIR writes a V8 CPU profile of the guard process there (open it in Chrome DevTools).
    const profile = process.env.PERIMETER_BENCH_PROFILE;
    const profileArgs = profile === undefined || profile === "" ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`];
    const guard = spawn(process.execPath, [...profileArgs, BIN, "serve", "mcp-guard", "-c", config, "--listen", "127.0.0.1:0", "--log-level", "warn"], {
      env: { PATH: process.env.PATH ?? "", HOME: directory, PERIMETER_AGENT_TOKEN: TOKEN, PERIMETER_ADMIN_TOKEN: "bench-admin-token-9876543210" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(guard);
    let stdout = "";
    guard.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const guardUrl = await waitFor(() => /listening on (http:\/\/\S+\/mcp)/.exec(stdout)?.[1], "the guard");

    const direct: Target = { name: "direct (2025-11-25)", url: upstreamUrl, headers: {}, version: "2025-11-25" };
    const guarded: Target[] = [
      { name: "guard, agent 2025-11-25", url: guardUrl, headers: { Authorization: `Bearer ${TOKEN}` }, version: "2025-11-25" },
      { name: "guard, agent 2026-07-28", url: guardUrl, headers: { Authorization: `Bearer ${TOKEN}` }, version: "2026-07-28" },
    ];
    const targets = [direct, ...guarded];
    const clients = new Map<string, Client>();
    for (const target of targets) {
      const client = await connect(target);
      await waitFor(async () => ((await client.listTools()).tools.some((tool) => tool.name.endsWith("echo")) ? true : undefined), `${target.name} tools`);
      clients.set(target.name, client);
    }
    const toolName = (target: Target) => (target === direct ? "echo" : "everything__echo");

    // Latency: sequential calls, rounds interleaved so that drift on a shared machine hits every target alike.
    const samples = new Map<string, number[]>(targets.map((target) => [target.name, []]));
    const guardCpu = new Map<string, number>();
    for (const target of targets) {
      const client = clients.get(target.name) as Client;
      for (let index = 0; index < WARMUP; index++) await client.callTool({ name: toolName(target), arguments: { message: "warm" } });
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of targets) {
        const client = clients.get(target.name) as Client;
        const bucket = samples.get(target.name) as number[];
        const cpuBefore = processCpuMs(guard.pid);
        for (let index = 0; index < CALLS_PER_ROUND; index++) {
          const started = performance.now();
          const result = await client.callTool({ name: toolName(target), arguments: { message: `m${index}` } });
          bucket.push(performance.now() - started);
          if (result.isError === true) throw new Error(`${target.name}: ${JSON.stringify(result)}`);
        }
        const cpuAfter = processCpuMs(guard.pid);
        if (cpuBefore !== undefined && cpuAfter !== undefined) guardCpu.set(target.name, (guardCpu.get(target.name) ?? 0) + cpuAfter - cpuBefore);
      }
    }
    const directSorted = [...(samples.get(direct.name) as number[])].sort((a, b) => a - b);
    const directP50 = percentile(directSorted, 0.5);
    console.log(`tools/call latency, ${ROUNDS * CALLS_PER_ROUND} sequential calls each (ms):`);
    for (const target of targets) {
      const sorted = [...(samples.get(target.name) as number[])].sort((a, b) => a - b);
      const p50 = percentile(sorted, 0.5);
      const p99 = percentile(sorted, 0.99);
      const cpu = guardCpu.get(target.name);
      const cpuText = target === direct || cpu === undefined ? "" : `  guard CPU ${(cpu / (ROUNDS * CALLS_PER_ROUND)).toFixed(2)} ms/call`;
      const added = target === direct ? "" : `${cpuText}  added p50 ${(p50 - directP50).toFixed(3)} ms (target ≤ 2 ms: ${p50 - directP50 <= 2 ? "met" : "MISSED"}), added p99 ${(p99 - percentile(directSorted, 0.99)).toFixed(3)} ms, ratio p50 ${(p50 / directP50).toFixed(2)}x`;
      console.log(`  ${target.name.padEnd(26)} p50 ${p50.toFixed(3)}  p99 ${p99.toFixed(3)}${added}`);
    }

    // Throughput: 16 concurrent clients, fixed duration.
    console.log(`\nthroughput, ${CONCURRENCY} concurrent clients for ${THROUGHPUT_SECONDS} s:`);
    const rates = new Map<string, number>();
    for (const target of [direct, guarded[0] as Target]) {
      const pool = await Promise.all(Array.from({ length: CONCURRENCY }, () => connect(target)));
      const deadline = performance.now() + THROUGHPUT_SECONDS * 1000;
      let calls = 0;
      let errors = 0;
      const started = performance.now();
      await Promise.all(
        pool.map(async (client) => {
          while (performance.now() < deadline) {
            const result = await client.callTool({ name: toolName(target), arguments: { message: "t" } });
            if (result.isError === true) errors += 1;
            else calls += 1;
          }
        }),
      );
      const rate = calls / ((performance.now() - started) / 1000);
      rates.set(target.name, rate);
      console.log(`  ${target.name.padEnd(26)} ${rate.toFixed(0)} calls/s${errors > 0 ? ` (${errors} errors)` : ""}`);
      await Promise.all(pool.map((client) => client.close()));
    }
    const ratio = (rates.get(guarded[0]?.name ?? "") ?? 0) / (rates.get(direct.name) ?? 1);
    console.log(`  guard/direct throughput ratio ${ratio.toFixed(2)}`);
    console.log(`\n(shared machine, load average ${loadavg().map((value) => value.toFixed(1)).join(" ")}: other processes load the CPU; the audit log is on: two records per call, SQLite WAL, synchronous=NORMAL)`);
    for (const client of clients.values()) await client.close();
  } finally {
    for (const child of children) child.kill("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));
    rmSync(directory, { recursive: true, force: true });
  }
}

const timer = setTimeout(() => {
  console.error("bench/mcp-guard: over its 3-minute bound; stopping");
  process.exit(1);
}, 180_000);
timer.unref();
await main();
