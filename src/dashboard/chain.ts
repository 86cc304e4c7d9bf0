// The chain status of every audit log the dashboard shows: each is verified whole (verifyAuditLog, in a worker
// thread) again and again, pausing between rounds at least four times as long as a round took, so that verifying
// a large log costs at most a fifth of a core. Pages show the latest result and when it was taken.
import { Worker } from "node:worker_threads";
import type { AuditVerification } from "../audit-log/index.ts";
import type { LocalSource } from "./audit-index.ts";

export type ChainStatus =
  | { source: string; state: "pending" }
  | { source: string; state: "verified"; records: number; head: { seq: number; hash: string }; checkpoints: number; keySource: string; uncheckpointed: number; lastSigned?: { seq: number; time: string }; checkedAt: string; tookMs: number }
  | { source: string; state: "broken"; firstBrokenSeq: number; reason: string; checkedAt: string }
  | { source: string; state: "unavailable"; message: string; checkedAt: string };

export interface ChainMonitor {
  status(): ChainStatus[];
  /** Verifies every source now (used once at start and by tests); resolves when the round is done. */
  check(): Promise<void>;
  close(): Promise<void>;
}

const WORKER = new URL("./verify-worker.ts", import.meta.url);

function verifyInWorker(path: string, timeoutMs: number): Promise<{ ok: true; verification: AuditVerification; lastSigned?: { seq: number; time: string } } | { ok: false; message: string }> {
  return new Promise((resolve) => {
    // No inherited --import: perimeter up preloads a parent watch into its services that stops the process when its
    // stdin ends, and a worker's stdin ends at once.
    const worker = new Worker(WORKER, { workerData: { path }, execArgv: [] });
    const timer = setTimeout(() => {
      void worker.terminate();
      resolve({ ok: false, message: `verification took longer than ${Math.round(timeoutMs / 1000)} s` });
    }, timeoutMs);
    worker.once("message", (message: { ok: true; verification: AuditVerification } | { ok: false; message: string }) => {
      clearTimeout(timer);
      resolve(message);
      void worker.terminate();
    });
    worker.once("error", (error) => {
      clearTimeout(timer);
      resolve({ ok: false, message: error.message });
    });
  });
}

export function createChainMonitor(options: {
  sources: readonly LocalSource[];
  minIntervalMs?: number;
  timeoutMs?: number;
  /** A remote source's copy can verify while the service's log was rewritten under it (remote-source.ts): broken. */
  divergence?: (source: string) => { firstBrokenSeq: number; reason: string } | undefined;
}): ChainMonitor {
  const minIntervalMs = options.minIntervalMs ?? 5000;
  const timeoutMs = options.timeoutMs ?? 600_000;
  const results = new Map<string, ChainStatus>(options.sources.map((source) => [source.name, { source: source.name, state: "pending" }]));
  let closed = false;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const round = async () => {
    for (const source of options.sources) {
      if (closed) return;
      const started = performance.now();
      const answer = await verifyInWorker(source.path, timeoutMs);
      const checkedAt = new Date().toISOString();
      const tookMs = Math.round(performance.now() - started);
      const diverged = options.divergence?.(source.name);
      if (diverged !== undefined) {
        results.set(source.name, { source: source.name, state: "broken", firstBrokenSeq: diverged.firstBrokenSeq, reason: diverged.reason, checkedAt });
      } else if (!answer.ok) {
        results.set(source.name, { source: source.name, state: "unavailable", message: answer.message, checkedAt });
      } else if (answer.verification.ok) {
        const { records, head, checkpoints, keySource, uncheckpointed } = answer.verification;
        results.set(source.name, { source: source.name, state: "verified", records, head, checkpoints, keySource, uncheckpointed, ...(answer.lastSigned === undefined ? {} : { lastSigned: answer.lastSigned }), checkedAt, tookMs });
      } else {
        results.set(source.name, { source: source.name, state: "broken", firstBrokenSeq: answer.verification.firstBrokenSeq, reason: answer.verification.reason, checkedAt });
      }
    }
  };
  const check = (): Promise<void> => {
    running ??= (async () => {
      const started = performance.now();
      try {
        await round();
      } finally {
        running = undefined;
        if (!closed) {
          clearTimeout(timer);
          timer = setTimeout(() => void check(), Math.max(minIntervalMs, 4 * (performance.now() - started)));
          timer.unref();
        }
      }
    })();
    return running;
  };
  return {
    status: () => options.sources.map((source) => results.get(source.name) as ChainStatus),
    check,
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
  };
}
