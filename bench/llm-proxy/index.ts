// bench/llm-proxy: what llm-proxy adds over calling the provider directly, side by side with Portkey's open-source
// gateway (@portkey-ai/gateway) in the same run, on the same Node, against the same stand-in provider (real
// providers are outside this network; the stand-in speaks OpenAI's wire format, streaming with 2 ms between chunks).
//   node_modules/.bin/node bench/llm-proxy/index.ts
// Measures: added p50/p99 latency of a non-streaming chat completion (one client, requests interleaved across
// targets so drift hits all alike), added time to first token when streaming, requests/s with 16 concurrent clients.
// Our proxy runs as `perimeter serve llm-proxy` with its real audit log (SQLite, synchronous=FULL) and key store.
// Bounded: the whole run is cut at 110 s.
import http from "node:http";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { freePort } from "../../src/shared/index.ts";

const root = join(import.meta.dirname, "..", "..");
const LATENCY_ROUNDS = Number(process.env.LATENCY_ROUNDS ?? 1500);
const STREAM_ROUNDS = Number(process.env.STREAM_ROUNDS ?? 150);
const THROUGHPUT_SECONDS = Number(process.env.THROUGHPUT_SECONDS ?? 5);
const CLIENTS = 16;
const AGENT_KEY = "sk-perimeter-bench-0123456789abcdefghijklmnopqrs";
const PROVIDER_KEY = "sk-bench-provider-0123456789abcdefghijklmnopq";
const deadline = setTimeout(() => {
  console.error("bench/llm-proxy: time limit of 110 s reached; stopping");
  cleanup();
  process.exit(1);
}, 110_000);

const children: ChildProcess[] = [];
const directory = mkdtempSync(join(tmpdir(), "perimeter-bench-llm-"));
function cleanup() {
  for (const child of children) child.kill("SIGTERM");
  rmSync(directory, { recursive: true, force: true });
}


function start(args: string[], environment: Record<string, string>, ready: (output: string) => boolean, what: string): Promise<{ child: ChildProcess; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? "", ...environment }, stdio: ["pipe", "pipe", "pipe"] });
    children.push(child);
    let output = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 20 s:\n${output}`)), 20_000);
    const check = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (ready(output)) {
        clearTimeout(timer);
        resolve({ child, output: () => output });
      }
    };
    child.stdout?.on("data", check);
    child.stderr?.on("data", check);
    child.on("exit", (code) => reject(new Error(`${what} exited with ${code}:\n${output}`)));
  });
}

/** CPU time (user + system) a process has used, in ms, from /proc (Linux). */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

interface Target {
  readonly name: string;
  /** The process doing the proxying (not the stand-in), for CPU per request. */
  readonly pid?: number;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly model: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });

function call(target: Target, stream: boolean): Promise<{ status: number; totalMs: number; firstTokenMs: number | undefined; text: string }> {
  const body = JSON.stringify({ model: target.model, max_tokens: 64, stream, messages: [{ role: "user", content: "Say hello in a few words." }] });
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let firstTokenMs: number | undefined;
    const request = http.request(target.url, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...target.headers } }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        text += chunk;
        if (firstTokenMs === undefined && /"content":"[^"]/.test(text)) firstTokenMs = performance.now() - started;
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, totalMs: performance.now() - started, firstTokenMs, text }));
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end(body);
  });
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? NaN;
}

const format = (value: number) => (Number.isFinite(value) ? value.toFixed(3) : "n/a");

async function main() {
  const standIn = await start([join(root, "bench", "llm-proxy", "stand-in.ts")], { CHUNK_DELAY_MS: "2" }, (output) => output.includes('"port"'), "stand-in provider");
  const standInPort = (JSON.parse(standIn.output().trim().split("\n")[0] as string) as { port: number }).port;
  const baseUrl = `http://127.0.0.1:${standInPort}/v1`;

  const configFile = join(directory, "perimeter.yaml");
  writeFileSync(
    configFile,
    `version: 1
name: bench
audit: { path: ${join(directory, "audit.db")} }
llm:
  providers:
    main: { baseUrl: "${baseUrl}", apiKeySecret: PROVIDER_KEY, models: [gpt-test], allowPrivateAddress: true }
  default: main/gpt-test
  clients:
    - { name: bench, keySecret: AGENT_KEY }
`,
  );
  const proxyPort = await freePort();
  const ourProcess = await start([join(root, "bin", "perimeter.js"), "serve", "llm-proxy", "-c", configFile, "--listen", `127.0.0.1:${proxyPort}`], { PROVIDER_KEY, AGENT_KEY }, (output) => output.includes("llm-proxy listening"), "perimeter llm-proxy");

  const portkeyPort = await freePort();
  const portkey = await start([join(root, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js"), `--port=${portkeyPort}`, "--headless"], { NODE_ENV: "production" }, (output) => output.includes("Ready for connections") || output.includes("running at"), "@portkey-ai/gateway");

  const targets: Target[] = [
    { name: "direct", url: `${baseUrl}/chat/completions`, headers: { authorization: `Bearer ${PROVIDER_KEY}` }, model: "gpt-test" },
    { name: "perimeter llm-proxy", pid: ourProcess.child.pid, url: `http://127.0.0.1:${proxyPort}/v1/chat/completions`, headers: { authorization: `Bearer ${AGENT_KEY}` }, model: "main/gpt-test" },
    {
      name: "portkey gateway",
      pid: portkey.child.pid,
      url: `http://127.0.0.1:${portkeyPort}/v1/chat/completions`,
      headers: { authorization: `Bearer ${PROVIDER_KEY}`, "x-portkey-provider": "openai", "x-portkey-custom-host": baseUrl },
      model: "gpt-test",
    },
  ];

  console.log(`llm-proxy benchmark on Node ${process.version}, ${(await import("node:os")).cpus().length} CPUs (shared machine: other work may be running)`);
  // Warm-up: JIT, keep-alive connections, SQLite pages.
  for (let index = 0; index < 200; index++) for (const target of targets) await call(target, false);

  // 1. Latency, non-streaming, one client, interleaved.
  const latency = new Map<string, number[]>(targets.map((target) => [target.name, []]));
  const failures = new Map<string, number>(targets.map((target) => [target.name, 0]));
  for (let round = 0; round < LATENCY_ROUNDS; round++) {
    for (const target of targets) {
      const result = await call(target, false);
      if (result.status !== 200) failures.set(target.name, (failures.get(target.name) ?? 0) + 1);
      else latency.get(target.name)?.push(result.totalMs);
    }
  }

  // 2. Streaming: time to first token and whether the stream arrives whole.
  const firstToken = new Map<string, number[]>(targets.map((target) => [target.name, []]));
  const streamFailures = new Map<string, { count: number; example: string }>(targets.map((target) => [target.name, { count: 0, example: "" }]));
  for (let round = 0; round < STREAM_ROUNDS; round++) {
    for (const target of targets) {
      const result = await call(target, true);
      const complete = result.status === 200 && result.text.includes("data: [DONE]") && result.text.includes('"content":"Hello ');
      if (!complete || result.firstTokenMs === undefined) {
        const entry = streamFailures.get(target.name) as { count: number; example: string };
        entry.count += 1;
        if (entry.example === "") entry.example = `HTTP ${result.status}: ${result.text.slice(0, 120)}`;
      } else {
        firstToken.get(target.name)?.push(result.firstTokenMs);
      }
    }
  }

  // 3. Throughput: 16 concurrent clients, non-streaming, fixed time per target.
  const throughput = new Map<string, { perSecond: number; errors: number; cpuPerRequestUs: number }>();
  for (const target of targets) {
    let done = 0;
    let errors = 0;
    const until = performance.now() + THROUGHPUT_SECONDS * 1000;
    const started = performance.now();
    const cpuBefore = cpuMs(target.pid);
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (performance.now() < until) {
          const result = await call(target, false).catch(() => ({ status: 0 }));
          if (result.status === 200) done += 1;
          else errors += 1;
        }
      }),
    );
    throughput.set(target.name, { perSecond: done / ((performance.now() - started) / 1000), errors, cpuPerRequestUs: ((cpuMs(target.pid) - cpuBefore) * 1000) / done });
  }

  const direct = { p50: percentile(latency.get("direct") ?? [], 0.5), p99: percentile(latency.get("direct") ?? [], 0.99), ttft: percentile(firstToken.get("direct") ?? [], 0.5) };
  console.log(`\nnon-streaming latency (${LATENCY_ROUNDS} sequential requests each), streaming TTFT (${STREAM_ROUNDS} each), throughput (${CLIENTS} clients, ${THROUGHPUT_SECONDS} s)`);
  console.log("target                  p50 ms   p99 ms   added p50  added p99  TTFT p50  added TTFT  streaming             req/s @16  CPU us/req  errors");
  const results: Record<string, unknown> = {};
  for (const target of targets) {
    const values = latency.get(target.name) ?? [];
    const p50 = percentile(values, 0.5);
    const p99 = percentile(values, 0.99);
    const ttftValues = firstToken.get(target.name) ?? [];
    const ttft = percentile(ttftValues, 0.5);
    const streaming = streamFailures.get(target.name) as { count: number; example: string };
    const rate = throughput.get(target.name) as { perSecond: number; errors: number; cpuPerRequestUs: number };
    const streamingWorks = streaming.count === 0 ? "works" : `FAILED ${streaming.count}/${STREAM_ROUNDS}`;
    results[target.name] = { p50, p99, addedP50: p50 - direct.p50, addedP99: p99 - direct.p99, ttftP50: ttft, addedTtftP50: ttft - direct.ttft, streaming: streamingWorks, streamingError: streaming.example || undefined, requestsPerSecond: rate.perSecond, proxyCpuPerRequestUs: rate.cpuPerRequestUs, errors: (failures.get(target.name) ?? 0) + rate.errors };
    console.log(
      [
        target.name.padEnd(22),
        format(p50).padStart(8),
        format(p99).padStart(8),
        (target.name === "direct" ? "-" : format(p50 - direct.p50)).padStart(10),
        (target.name === "direct" ? "-" : format(p99 - direct.p99)).padStart(10),
        format(ttft).padStart(9),
        (target.name === "direct" || !Number.isFinite(ttft) ? "-" : format(ttft - direct.ttft)).padStart(11),
        `  ${streamingWorks}`.padEnd(22),
        rate.perSecond.toFixed(0).padStart(9),
        (Number.isFinite(rate.cpuPerRequestUs) ? rate.cpuPerRequestUs.toFixed(0) : "-").padStart(11),
        String((failures.get(target.name) ?? 0) + rate.errors).padStart(7),
      ].join(" "),
    );
    if (streaming.example !== "") console.log(`    ${target.name} streaming error: ${streaming.example.replace(/\s+/g, " ")}`);
  }
  const ours = results["perimeter llm-proxy"] as { addedP50: number; requestsPerSecond: number; proxyCpuPerRequestUs: number };
  const peer = results["portkey gateway"] as { addedP50: number; requestsPerSecond: number; proxyCpuPerRequestUs: number };
  console.log(
    `\nratios perimeter/portkey: added p50 ${(ours.addedP50 / peer.addedP50).toFixed(2)}, req/s ${(ours.requestsPerSecond / peer.requestsPerSecond).toFixed(2)}, CPU per request ${(ours.proxyCpuPerRequestUs / peer.proxyCpuPerRequestUs).toFixed(2)}`,
  );
  console.log(`targets: added p50 <= 1 ms: ${ours.addedP50 <= 1 ? "met" : "MISSED"} (${format(ours.addedP50)} ms); >= 1,200 req/s at 16 clients: ${ours.requestsPerSecond >= 1200 ? "met" : "MISSED"} (${ours.requestsPerSecond.toFixed(0)})`);
  console.log(`\nJSON ${JSON.stringify(results)}`);
}

try {
  await main();
} finally {
  clearTimeout(deadline);
  agent.destroy();
  cleanup();
}
