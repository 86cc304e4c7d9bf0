// `perimeter backup create` on a 1 GiB data directory against its peer, `tar -cf - | age -r KEY` with Debian's age
// (Go), in the same run on the same files: throughput (target: ours ≥ 0.7x the peer's) and our peak RSS (the archive
// is streamed: it must not grow with the data). The directory mixes 60 files of 16 MiB with 2,000 small ones, of
// random (incompressible) bytes; neither side compresses. Both make the archive durable (ours fsyncs before publishing
// it; the peer runs `sync FILE` after age), as a backup must be. Runs alternate after one warm-up each, so both read from a
// warm page cache; the median of ROUNDS counts. Bounded: each run is killed after RUN_TIMEOUT_MS, the whole bench
// stops starting rounds after BUDGET_MS. Set BACKUP_BENCH_MIB to change the size.
import { randomFillSync } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateIdentity, identityToRecipient } from "age-encryption";

const TOTAL_MIB = Number(process.env.BACKUP_BENCH_MIB ?? 1024);
const SMALL_FILES = 2000;
const SMALL_BYTES = 4096;
const BIG_BYTES = 16 * 1024 * 1024;
const ROUNDS = 3;
const RUN_TIMEOUT_MS = 120_000;
const BUDGET_MS = 8 * 60_000;
const CLI = new URL("../../bin/perimeter.js", import.meta.url).pathname;

function median(values: number[]): number {
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

if (spawnSync("age", ["--version"]).status !== 0) {
  console.error("bench/backup needs the age tool (apt-get install age; scripts/install-system-packages.sh installs it)");
  process.exit(2);
}

const root = mkdtempSync(join(tmpdir(), "perimeter-bench-backup-"));
try {
  const data = join(root, "home", ".hermes");
  mkdirSync(join(data, "small"), { recursive: true, mode: 0o700 });
  mkdirSync(join(data, "sessions"));
  const small = Buffer.alloc(SMALL_BYTES);
  for (let index = 0; index < SMALL_FILES; index += 1) writeFileSync(join(data, "small", `memory-${index}.md`), randomFillSync(small));
  const bigCount = Math.max(1, Math.round((TOTAL_MIB * 1024 * 1024 - SMALL_FILES * SMALL_BYTES) / BIG_BYTES));
  const big = Buffer.alloc(BIG_BYTES);
  for (let index = 0; index < bigCount; index += 1) writeFileSync(join(data, "sessions", `session-${index}.jsonl`), randomFillSync(big));
  const bytes = SMALL_FILES * SMALL_BYTES + bigCount * BIG_BYTES;

  const identity = await generateIdentity();
  const recipient = await identityToRecipient(identity);
  const config = join(root, "perimeter.yaml");
  writeFileSync(
    config,
    `version: 1\nname: bench\nbackup:\n  dataDirectory: ${data}\n  directory: ${join(root, "backups")}\n  recipients: [${recipient}]\n  auditLog: false\n`,
  );
  const output = join(root, "out.tar.age");

  const runs = {
    "tar | age": () =>
      spawnSync("/usr/bin/time", ["-f", "cpu_s=%U+%S maxrss_kib=%M", "sh", "-c", `tar -C "$1" -cf - .hermes | age -r "$2" -o "$3" && sync "$3"`, "sh", join(root, "home"), recipient, output], { timeout: RUN_TIMEOUT_MS, encoding: "utf8" }),
    "perimeter backup create": () =>
      spawnSync("/usr/bin/time", ["-f", "cpu_s=%U+%S maxrss_kib=%M", process.execPath, CLI, "backup", "create", "-c", config, "--output", output], { timeout: RUN_TIMEOUT_MS, encoding: "utf8" }),
  };
  const seconds: Record<string, number[]> = { "tar | age": [], "perimeter backup create": [] };
  const cpu: Record<string, number[]> = { "tar | age": [], "perimeter backup create": [] };
  const rss: number[] = [];
  const sizes: Record<string, number> = {};
  const started = performance.now();
  for (let round = 0; round <= ROUNDS; round += 1) {
    if (performance.now() - started > BUDGET_MS) {
      console.log(`stopping after ${round - 1} rounds: the ${BUDGET_MS / 60000} min budget is spent`);
      break;
    }
    for (const [name, run] of Object.entries(runs)) {
      rmSync(output, { force: true });
      const before = performance.now();
      const result = run();
      const elapsed = (performance.now() - before) / 1000;
      if (result.status !== 0) throw new Error(`${name} failed (${result.status ?? result.signal}): ${result.stderr}`);
      sizes[name] = statSync(output).size;
      const maxRss = /maxrss_kib=(\d+)/.exec(result.stderr ?? "");
      const cpuTime = /cpu_s=([\d.]+)\+([\d.]+)/.exec(result.stderr ?? "");
      // Round 0 warms the page cache and the Node compile cache; it is not counted.
      if (round === 0) continue;
      seconds[name]?.push(elapsed);
      if (cpuTime !== null) cpu[name]?.push(Number(cpuTime[1]) + Number(cpuTime[2]));
      if (maxRss !== null && name === "perimeter backup create") rss.push(Number(maxRss[1]) / 1024);
    }
  }
  const mib = bytes / (1024 * 1024);
  const peer = median(seconds["tar | age"] ?? []);
  const ours = median(seconds["perimeter backup create"] ?? []);
  console.log(`data directory: ${mib.toFixed(0)} MiB in ${SMALL_FILES + bigCount} files (random bytes)`);
  for (const [name, values] of Object.entries(seconds)) {
    const value = median(values);
    console.log(
      `${name.padEnd(24)} median ${value.toFixed(2)} s = ${(mib / value).toFixed(0)} MiB/s, CPU ${median(cpu[name] ?? []).toFixed(2)} s  (runs: ${values.map((entry) => entry.toFixed(2)).join(", ")}; archive ${((sizes[name] ?? 0) / 1048576).toFixed(0)} MiB)`,
    );
  }
  console.log(`perimeter backup create peak RSS: median ${median(rss).toFixed(0)} MiB (max ${Math.max(...rss).toFixed(0)} MiB)`);
  const ratio = peer / ours;
  console.log(`throughput ratio (ours / tar | age): ${ratio.toFixed(2)}x (target >= 0.7x) ${ratio >= 0.7 ? "OK" : "BELOW TARGET"}`);
  // On a busy machine wall time follows CPU share; CPU per GiB says what each side costs whatever the load.
  console.log(`CPU ratio (tar | age / ours): ${(median(cpu["tar | age"] ?? []) / median(cpu["perimeter backup create"] ?? [])).toFixed(2)}x; load average ${(await import("node:os")).loadavg()[0]?.toFixed(1)} on ${(await import("node:os")).availableParallelism()} cores`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
