// A Writable that encrypts into an age file on a worker thread (src/backup/encrypt-worker.ts). It takes ownership of
// the buffers written to it: large ones move to the worker without a copy.
import { Writable } from "node:stream";
import { Worker, isMarkedAsUntransferable } from "node:worker_threads";
import { encryptionPreamble } from "./age-stream.ts";
import type { EncryptWorkerData, EncryptWorkerReply, EncryptWorkerRequest } from "./encrypt-worker.ts";

/** Bytes handed to the worker and not yet written; beyond it the writer waits, so memory stays flat. */
const IN_FLIGHT_LIMIT = 8 * 1024 * 1024;
/** Smaller buffers, and Node's pooled ones, may share their ArrayBuffer with others: they are copied, not moved. */
const TRANSFER_MIN = 64 * 1024;

class WorkerError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = "WorkerError";
    this.code = code;
  }
}

/**
 * Read buffers that go round between the reader and the encryption thread, so a 1 GiB backup allocates a few MiB
 * once instead of a fresh MiB per read (which the garbage collector reclaimed late: 450 MiB RSS before).
 */
export interface BufferPool {
  take(): Buffer;
  give(buffer: ArrayBuffer): void;
}

export function createBufferPool(size: number): BufferPool {
  const free: ArrayBuffer[] = [];
  return {
    take: () => Buffer.from(free.pop() ?? new ArrayBuffer(size)),
    give: (buffer) => {
      if (buffer.byteLength === size && free.length < 64) free.push(buffer);
    },
  };
}

/**
 * Writes an age file for `recipients` at `path` (created 0600, must not exist; fsynced before finish resolves).
 * Buffers of `pool` written to it come back to the pool once sealed.
 */
export async function createEncryptedFile(recipients: readonly string[], path: string, pool?: BufferPool): Promise<Writable> {
  const { preamble, key } = await encryptionPreamble(recipients);
  const data: EncryptWorkerData = { path, preamble, key };
  const worker = new Worker(new URL("./encrypt-worker.ts", import.meta.url), { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: 2 } });
  key.fill(0);
  let inFlight = 0;
  let waiting: (() => void) | undefined;
  let finished: ((error?: Error | null) => void) | undefined;
  let failure: Error | undefined;

  const failWith = (error: Error) => {
    failure ??= error;
    const callback = finished ?? waiting;
    finished = undefined;
    waiting = undefined;
    if (callback !== undefined) callback(failure);
    else writable.destroy(failure);
  };
  worker.on("message", (reply: EncryptWorkerReply) => {
    if (reply.kind === "written") {
      inFlight -= reply.bytes;
      if (reply.buffer !== undefined) pool?.give(reply.buffer);
      if (waiting !== undefined && inFlight < IN_FLIGHT_LIMIT) {
        const resume = waiting;
        waiting = undefined;
        resume();
      }
    } else if (reply.kind === "done") {
      const callback = finished;
      finished = undefined;
      void worker.terminate();
      callback?.();
    } else {
      failWith(new WorkerError(reply.message, reply.code));
      void worker.terminate();
    }
  });
  worker.on("error", (error) => failWith(error));
  worker.on("exit", (code) => {
    if (finished !== undefined || waiting !== undefined) failWith(new Error(`the encryption thread stopped (exit ${code}) before the archive was complete`));
  });

  const writable: Writable = new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      if (failure !== undefined) {
        callback(failure);
        return;
      }
      // Counted before posting: a moved buffer is detached here afterwards, and reads as 0 bytes.
      const length = chunk.byteLength;
      const moved = length >= TRANSFER_MIN && !isMarkedAsUntransferable(chunk.buffer);
      const view = moved ? new Uint8Array(chunk.buffer, chunk.byteOffset, length) : new Uint8Array(chunk);
      worker.postMessage({ kind: "data", chunk: view, moved } satisfies EncryptWorkerRequest, moved ? [chunk.buffer as ArrayBuffer] : []);
      inFlight += length;
      if (inFlight < IN_FLIGHT_LIMIT) callback();
      else waiting = () => callback();
    },
    final(callback) {
      if (failure !== undefined) {
        callback(failure);
        return;
      }
      finished = callback;
      worker.postMessage({ kind: "end" } satisfies EncryptWorkerRequest);
    },
    destroy(error, callback) {
      void worker.terminate().then(() => callback(error), () => callback(error));
    },
  });
  return writable;
}
