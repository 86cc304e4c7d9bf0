// SQLite WAL checkpoints (copying the write-ahead log back into the database file; nothing to do with the log's signed
// checkpoints) off the appending thread. Left to SQLite, one runs inside an append every ~1,000 WAL pages and takes
// about 5 ms, most of it fsync: a stall of the whole event loop every ~800 single-record appends (23% of the time
// spent appending, measured in a loop of 20,000), and every request a service holds meanwhile waits with it. A worker
// thread with its own connection runs PASSIVE checkpoints instead (they never block a writer), and the appending
// connection keeps SQLite's automatic checkpoint only as a backstop far out, in case the worker stops.
//
// One worker per process, whatever the number of writers: `perimeter up` runs every service in one process, each with
// its own writer on the same audit database, and a worker thread costs ~11 MiB of RSS (its own V8 isolate). Writers
// of the same file share one connection in it (counted); the worker ends when the last writer stops.
import { resolve } from "node:path";
import { Worker } from "node:worker_threads";

/** How often the worker checkpoints; a checkpoint with nothing new in the WAL returns at once. */
const INTERVAL_MS = 200;
/** The appending connection's own automatic checkpoint while the worker runs (SQLite's default is 1,000 pages). */
export const BACKSTOP_PAGES = 10_000;
export const SQLITE_DEFAULT_PAGES = 1000;

// CommonJS source for an eval worker: no file to locate at run time, no TypeScript loader needed in the thread.
// Messages in: { add: path, synchronous, generation } | { remove: path } | { stop: true }. Out: { failed: path,
// generation, message } when a database cannot be opened or checkpointed (its connection is closed; the others go on).
const SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { DatabaseSync } = require("node:sqlite");
const databases = new Map();
const drop = (path) => {
  const entry = databases.get(path);
  databases.delete(path);
  try { entry?.database.close(); } catch {}
};
const fail = (path, generation, error) => {
  drop(path);
  parentPort.postMessage({ failed: path, generation, message: String(error && error.message || error) });
};
setInterval(() => {
  for (const [path, entry] of databases) {
    try {
      entry.checkpoint.get();
    } catch (error) {
      // Another connection's checkpoint is running: that one does the work.
      if ((error.errcode & 0xff) === 5) continue;
      fail(path, entry.generation, error);
    }
  }
}, workerData.intervalMs);
parentPort.on("message", (message) => {
  if (message.add !== undefined) {
    try {
      const known = databases.get(message.add);
      if (known !== undefined) {
        known.database.exec("PRAGMA synchronous = " + message.synchronous);
        return;
      }
      const database = new DatabaseSync(message.add, { timeout: 0 });
      database.exec("PRAGMA synchronous = " + message.synchronous);
      databases.set(message.add, { database, generation: message.generation, checkpoint: database.prepare("PRAGMA wal_checkpoint(PASSIVE)") });
    } catch (error) {
      fail(message.add, message.generation, error);
    }
  } else if (message.remove !== undefined) {
    drop(message.remove);
  } else if (message.stop === true) {
    for (const path of [...databases.keys()]) drop(path);
    process.exit(0);
  }
});
`;

export interface WalCheckpointer {
  /** Stops checkpointing this writer's file; the file's connection closes with its last writer (the last connection
   * to close folds the WAL into the file), and the worker ends with the last file. */
  stop(): void;
}

interface Registration {
  readonly onStopped: (error: unknown) => void;
  stopped: boolean;
}

interface SharedWorker {
  readonly worker: Worker;
  /** Registrations by database path. */
  readonly files: Map<string, Set<Registration>>;
  /** The synchronous setting each file's connection has: FULL once any of its writers asks for it. */
  readonly synchronous: Map<string, "NORMAL" | "FULL">;
  /** Each file's registration round (a file removed and added again gets a new one): a failure the worker reports for
   * an earlier round, still on its way when the file was added again, must not end the new writers. */
  readonly generations: Map<string, number>;
  nextGeneration: number;
}

let current: SharedWorker | undefined;

function endRegistrations(registrations: Iterable<Registration>, error: unknown): void {
  for (const registration of registrations) {
    if (registration.stopped) continue;
    registration.stopped = true;
    registration.onStopped(error);
  }
}

/** Ends a worker with no file left; the next writer starts a new one. */
function retire(shared: SharedWorker): void {
  if (current === shared) current = undefined;
  shared.worker.postMessage({ stop: true });
}

function startWorker(): SharedWorker {
  // Small heap limits (~3 MiB less RSS than the defaults): it holds a few prepared statements. Running out of them ends
  // the worker, and every writer hands checkpoints back to SQLite.
  const worker = new Worker(SOURCE, { eval: true, workerData: { intervalMs: INTERVAL_MS }, stdout: false, stderr: false, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 } });
  // A background helper must never keep a finished service alive.
  worker.unref();
  const shared: SharedWorker = { worker, files: new Map(), synchronous: new Map(), generations: new Map(), nextGeneration: 1 };
  worker.on("message", (message: { failed?: string; generation?: number; message?: string }) => {
    if (message.failed === undefined || shared.generations.get(message.failed) !== message.generation) return;
    shared.generations.delete(message.failed);
    const registrations = shared.files.get(message.failed);
    shared.files.delete(message.failed);
    shared.synchronous.delete(message.failed);
    if (registrations !== undefined) endRegistrations(registrations, new Error(`WAL checkpoints of ${message.failed} stopped: ${message.message}`));
    if (shared.files.size === 0) retire(shared);
  });
  const ended = (error: unknown) => {
    if (current === shared) current = undefined;
    const everyone = [...shared.files.values()].flatMap((set) => [...set]);
    shared.files.clear();
    endRegistrations(everyone, error);
  };
  worker.on("error", ended);
  worker.on("exit", (code) => ended(new Error(`the WAL checkpoint worker exited with code ${code}`)));
  return shared;
}

/**
 * Checkpoints the database at `path` in the process's worker (started on first use). `onStopped` runs once if
 * checkpoints of this file end on their own (an error, or the worker failing to start), so the caller can hand
 * checkpoints back to SQLite; never after stop().
 */
export function startWalCheckpointer(file: string, synchronous: "NORMAL" | "FULL", onStopped: (error: unknown) => void): WalCheckpointer {
  const path = resolve(file);
  current ??= startWorker();
  const shared = current;
  const registration: Registration = { onStopped, stopped: false };
  let registrations = shared.files.get(path);
  if (registrations === undefined) {
    registrations = new Set();
    shared.files.set(path, registrations);
    shared.generations.set(path, shared.nextGeneration++);
  }
  if (shared.synchronous.get(path) !== "FULL" && shared.synchronous.get(path) !== synchronous) {
    shared.synchronous.set(path, synchronous);
    shared.worker.postMessage({ add: path, synchronous, generation: shared.generations.get(path) });
  }
  registrations.add(registration);
  return {
    stop() {
      if (registration.stopped) return;
      registration.stopped = true;
      const set = shared.files.get(path);
      if (set === undefined || !set.delete(registration) || set.size > 0) return;
      shared.files.delete(path);
      shared.synchronous.delete(path);
      shared.generations.delete(path);
      if (shared.files.size > 0) {
        shared.worker.postMessage({ remove: path });
        return;
      }
      // The last file: the worker closes its connections and ends.
      retire(shared);
    },
  };
}

/** Test support: whether a worker is running now, and for how many files. */
export function walCheckpointerState(): { running: boolean; files: number } {
  return { running: current !== undefined, files: current?.files.size ?? 0 };
}
