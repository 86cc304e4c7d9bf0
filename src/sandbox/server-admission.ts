// Who may start a run now: a fixed number of slots with a bounded FIFO of waiters (a waiter whose caller goes away
// leaves the queue), and per-caller quotas (runs in progress, starts in a sliding minute). Both hold state of their
// own and no reference to the server, so they are tested alone (server-admission.test.ts).
import { SandboxTaskError } from "./task.ts";

export interface CallerQuotas {
  /** Runs one caller may have running or queued at once. */
  readonly concurrentRuns: number;
  /** Runs one caller may start per minute. */
  readonly runsPerMinute: number;
}

/** What the slots report to the metrics. */
export interface SlotObserver {
  running(count: number): void;
  queued(count: number): void;
}

export interface RunSlots {
  /** Resolves with the slot's release once one is free; throws SandboxTaskError when the queue is full or `signal` aborts first. */
  acquire(signal: AbortSignal): Promise<() => void>;
}

export function createRunSlots(concurrency: number, queueLimit: number, observer: SlotObserver): RunSlots {
  let running = 0;
  const waiters: { grant: () => void; signal: AbortSignal }[] = [];
  const release = () => {
    running -= 1;
    observer.running(running);
    let next = waiters.shift();
    while (next !== undefined && next.signal.aborted) next = waiters.shift();
    observer.queued(waiters.length);
    next?.grant();
  };
  return {
    async acquire(signal) {
      if (running < concurrency && waiters.length === 0) {
        running += 1;
        observer.running(running);
        return release;
      }
      if (waiters.length >= queueLimit) throw new SandboxTaskError(`the sandbox runner is busy (${concurrency} running, ${waiters.length} waiting); try again shortly`);
      return new Promise((resolve, reject) => {
        const waiter = {
          signal,
          grant: () => {
            signal.removeEventListener("abort", onAbort);
            running += 1;
            observer.running(running);
            resolve(release);
          },
        };
        const onAbort = () => {
          const index = waiters.indexOf(waiter);
          if (index >= 0) waiters.splice(index, 1);
          observer.queued(waiters.length);
          reject(new SandboxTaskError("the call was cancelled while waiting for a slot"));
        };
        signal.addEventListener("abort", onAbort, { once: true });
        waiters.push(waiter);
        observer.queued(waiters.length);
      });
    },
  };
}

export interface CallerQuota {
  /** Why `caller` may not start a run now, or undefined. */
  problem(caller: string): string | undefined;
  /** A run of `caller` started (counts towards both quotas). */
  started(caller: string): void;
  /** A run of `caller` ended. */
  ended(caller: string): void;
}

export function createCallerQuota(quotas: CallerQuotas, now: () => number): CallerQuota {
  const active = new Map<string, number>();
  const starts = new Map<string, number[]>();
  return {
    problem(caller) {
      if ((active.get(caller) ?? 0) >= quotas.concurrentRuns) return `quota: ${caller} already has ${quotas.concurrentRuns} runs in progress; wait for one to finish`;
      const recent = (starts.get(caller) ?? []).filter((time) => time > now() - 60_000);
      starts.set(caller, recent);
      if (recent.length >= quotas.runsPerMinute) return `quota: ${caller} has started ${quotas.runsPerMinute} runs in the last minute; try again later`;
      return undefined;
    },
    started(caller) {
      active.set(caller, (active.get(caller) ?? 0) + 1);
      const recentStarts = starts.get(caller) ?? [];
      recentStarts.push(now());
      starts.set(caller, recentStarts);
    },
    ended(caller) {
      active.set(caller, (active.get(caller) ?? 1) - 1);
    },
  };
}
