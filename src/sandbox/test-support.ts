// Shared by the sandbox tests: one real bubblewrap backend with small limits, and the "still serves" check every
// attack test ends with.
import assert from "node:assert/strict";
import { createBubblewrapBackend } from "./bubblewrap.ts";
import type { BubblewrapBackend, BubblewrapOptions } from "./bubblewrap.ts";
import type { SandboxLimits } from "./task.ts";

export const TEST_LIMITS: SandboxLimits = {
  memoryBytes: 256 * 1024 ** 2,
  pids: 64,
  diskBytes: 32 * 1024 ** 2,
  tmpBytes: 16 * 1024 ** 2,
  timeoutMs: 20_000,
  cpu: 1,
  cpuSeconds: 20,
  outputBytes: 256 * 1024,
  openFiles: 256,
  graceMs: 500,
};

export async function testBackend(overrides: Partial<BubblewrapOptions> = {}): Promise<BubblewrapBackend> {
  return createBubblewrapBackend({ defaults: TEST_LIMITS, ceiling: { ...TEST_LIMITS, memoryBytes: 1024 ** 3, timeoutMs: 60_000, graceMs: 5000 }, ...overrides });
}

/** The sandbox keeps working after whatever the previous task did. */
export async function assertStillServes(backend: BubblewrapBackend): Promise<void> {
  const result = await backend.run({ argv: ["/bin/echo", "still-serving"] });
  assert.equal(result.exitCode, 0, `the next task failed: ${result.stderr.data.toString()}`);
  assert.equal(result.stdout.data.toString(), "still-serving\n");
}

export const text = (buffer: Buffer): string => buffer.toString("utf8");

/** Host processes whose command line contains `marker` (to prove nothing a task started survives it). */
export async function hostProcessesWith(marker: string): Promise<number[]> {
  const { readdirSync, readFileSync } = await import("node:fs");
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(marker)) found.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return found.filter((pid) => pid !== process.pid);
}
