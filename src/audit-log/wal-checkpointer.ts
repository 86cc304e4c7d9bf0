// SQLite WAL checkpoints (copying the write-ahead log back into the database file; nothing to do with the log's signed
// checkpoints) off the appending thread. Left to SQLite, one runs inside an append every ~1,000 WAL pages and takes
// about 5 ms, most of it fsync: a stall of the whole event loop every ~800 single-record appends (23% of the time
// spent appending, measured in a loop of 20,000), and every request a service holds meanwhile waits with it. A worker
// thread with its own connection runs PASSIVE checkpoints instead (they never block a writer), and the appending
// connection keeps SQLite's automatic checkpoint only as a backstop far out, in case the worker stops.
import { Worker } from "node:worker_threads";

/** How often the worker checkpoints; a checkpoint with nothing new in the WAL returns at once. */
const INTERVAL_MS = 200;
/** The appending connection's own automatic checkpoint while the worker runs (SQLite's default is 1,000 pages). */
export const BACKSTOP_PAGES = 10_000;
export const SQLITE_DEFAULT_PAGES = 1000;

// CommonJS source for an eval worker: no file to locate at run time, no TypeScript loader needed in the thread.
const SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { DatabaseSync } = require("node:sqlite");
const database = new DatabaseSync(workerData.path, { timeout: 0 });
database.exec("PRAGMA synchronous = " + workerData.synchronous);
const checkpoint = database.prepare("PRAGMA wal_checkpoint(PASSIVE)");
const timer = setInterval(() => {
  try {
    checkpoint.get();
  } catch (error) {
    // Another connection's checkpoint is running: that one does the work.
    if ((error.errcode & 0xff) === 5) return;
    clearInterval(timer);
    database.close();
    throw error;
  }
}, workerData.intervalMs);
parentPort.on("message", () => {
  clearInterval(timer);
  database.close();
  parentPort.close();
});
`;

export interface WalCheckpointer {
  /** Stops the worker; its connection closes (the last connection to close folds the WAL into the file). */
  stop(): void;
}

/**
 * Starts the worker for the database at `path`. `onStopped` runs once if the worker ends on its own (an error, or
 * failing to start), so the caller can hand checkpoints back to SQLite; never after stop().
 */
export function startWalCheckpointer(path: string, synchronous: "NORMAL" | "FULL", onStopped: (error: unknown) => void): WalCheckpointer {
  let stopped = false;
  const worker = new Worker(SOURCE, { eval: true, workerData: { path, synchronous, intervalMs: INTERVAL_MS }, stdout: false, stderr: false });
  // A background helper must never keep a finished service alive.
  worker.unref();
  const ended = (error: unknown) => {
    if (stopped) return;
    stopped = true;
    onStopped(error);
  };
  worker.on("error", ended);
  worker.on("exit", (code) => ended(new Error(`the WAL checkpoint worker exited with code ${code}`)));
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      worker.postMessage("stop");
    },
  };
}
