// The chain status of every audit log the dashboard shows: each is verified whole again and again, pausing between
// rounds at least four times as long as a round took, so that verifying a large log costs at most a fifth of a core.
// It runs on the dashboard's own thread in slices of a few milliseconds (verifyAuditLogInSlices): pages and, inside
// `perimeter up`, every other service answer between slices. (A worker thread per round cost ~0.5 s of CPU to load
// the verifier and ~40 MiB of RSS that stayed after it ended.) Pages show the latest result and when it was taken.
import { DatabaseSync } from "node:sqlite";
import { pathToFileURL } from "node:url";
import { verifyAuditLogInSlices } from "../audit-log/index.ts";
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

/** The newest signed checkpoint's record and time (shown next to the verdict), read-only. */
function lastSignedCheckpoint(path: string): { seq: number; time: string } | undefined {
  const url = pathToFileURL(path);
  url.searchParams.set("mode", "ro");
  const database = new DatabaseSync(url, { readOnly: true, timeout: 2000 });
  try {
    const row = database.prepare("SELECT record_seq, time FROM audit_log_checkpoints WHERE signature IS NOT NULL ORDER BY id DESC LIMIT 1").get() as { record_seq: number; time: string } | undefined;
    return row === undefined ? undefined : { seq: Number(row.record_seq), time: String(row.time) };
  } finally {
    database.close();
  }
}

async function verifySource(path: string, timeoutMs: number, closing: AbortSignal): Promise<{ ok: true; verification: AuditVerification; lastSigned?: { seq: number; time: string } } | { ok: false; message: string }> {
  const signal = AbortSignal.any([closing, AbortSignal.timeout(timeoutMs)]);
  try {
    const verification = await verifyAuditLogInSlices(path, { signal });
    const lastSigned = lastSignedCheckpoint(path);
    return { ok: true, verification, ...(lastSigned === undefined ? {} : { lastSigned }) };
  } catch (error) {
    if (signal.aborted && !closing.aborted) return { ok: false, message: `verification took longer than ${Math.round(timeoutMs / 1000)} s` };
    return { ok: false, message: (error as Error).message };
  }
}

export function createChainMonitor(options: {
  sources: readonly LocalSource[];
  minIntervalMs?: number;
  timeoutMs?: number;
  /** A source that is not there yet (a remote source's copy before its first sync): left pending, not verified. */
  ready?: (source: string) => boolean;
  /** A remote source's copy can verify while the service's log was rewritten under it (remote-source.ts): broken. */
  divergence?: (source: string) => { firstBrokenSeq: number; reason: string } | undefined;
}): ChainMonitor {
  const minIntervalMs = options.minIntervalMs ?? 5000;
  const timeoutMs = options.timeoutMs ?? 600_000;
  const results = new Map<string, ChainStatus>(options.sources.map((source) => [source.name, { source: source.name, state: "pending" }]));
  let closed = false;
  const closing = new AbortController();
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  /**
   * Verifies every source that is there; says whether one was not and nothing was verified (the next round then comes
   * within a second). A source that never arrives (an unreachable feed) must not turn the pause between rounds of
   * the others into a second: the "fifth of a core" bound holds whenever anything was verified.
   */
  const round = async (): Promise<boolean> => {
    let waiting = false;
    let verified = 0;
    for (const source of options.sources) {
      if (closed) return false;
      if (options.ready?.(source.name) === false) {
        waiting = true;
        continue;
      }
      const started = performance.now();
      verified += 1;
      const answer = await verifySource(source.path, timeoutMs, closing.signal);
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
    return waiting && verified === 0;
  };
  const check = (): Promise<void> => {
    running ??= (async () => {
      const started = performance.now();
      let waiting = false;
      try {
        waiting = await round();
      } finally {
        running = undefined;
        if (!closed) {
          clearTimeout(timer);
          const pause = Math.max(minIntervalMs, 4 * (performance.now() - started));
          timer = setTimeout(() => void check(), waiting ? Math.min(pause, 1000) : pause);
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
      closing.abort();
      clearTimeout(timer);
      await running;
    },
  };
}
