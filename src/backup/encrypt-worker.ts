// The second half of `backup create`, on its own thread: seal the payload and write the archive file. Reading,
// framing and hashing the files keeps the main thread busy (sha256 alone is about as costly as the cipher), so
// splitting the work over two cores is what lets one process keep up with `tar | age`, which are two.
import { closeSync, fdatasync as fdatasyncCallback, fsyncSync, openSync, writev as writevCallback } from "node:fs";
import { promisify } from "node:util";
import { parentPort, workerData } from "node:worker_threads";
import { createPayloadSealer, payloadKeyObject } from "./stream-cipher.ts";

export interface EncryptWorkerData {
  path: string;
  preamble: Uint8Array;
  key: Uint8Array;
}

/** `moved`: the chunk's ArrayBuffer was transferred here; it goes back with the reply, to be read into again. */
export type EncryptWorkerRequest = { kind: "data"; chunk: Uint8Array; moved: boolean } | { kind: "end" };
export type EncryptWorkerReply = { kind: "written"; bytes: number; buffer?: ArrayBuffer } | { kind: "done"; size: number } | { kind: "error"; message: string; code?: string };

const writev = promisify(writevCallback);
const fdatasync = promisify(fdatasyncCallback);
/** Flush what was written so far every this many bytes, beside the writes, so little is left for the final fsync. */
const FLUSH_EVERY = 64 * 1024 * 1024;

async function writeAll(descriptor: number, buffers: Buffer[]): Promise<number> {
  let total = 0;
  for (const buffer of buffers) total += buffer.length;
  let remaining = buffers.filter((buffer) => buffer.length > 0);
  while (remaining.length > 0) {
    let count = (await writev(descriptor, remaining)).bytesWritten;
    const next: Buffer[] = [];
    for (const buffer of remaining) {
      if (count >= buffer.length) count -= buffer.length;
      else {
        next.push(buffer.subarray(count));
        count = 0;
      }
    }
    remaining = next;
  }
  return total;
}

if (parentPort !== null) {
  const port = parentPort;
  const data = workerData as EncryptWorkerData;
  let size = 0;
  let unflushed = 0;
  let failed = false;
  const flushes: Array<Promise<void>> = [];
  const fail = (error: unknown) => {
    if (failed) return;
    failed = true;
    const code = (error as NodeJS.ErrnoException).code;
    port.postMessage({ kind: "error", message: (error as Error).message, ...(code === undefined ? {} : { code }) } satisfies EncryptWorkerReply);
  };
  // wx: never over an existing file; 0600: the archive is for its owner only, even though it is encrypted.
  let descriptor: number | undefined;
  try {
    descriptor = openSync(data.path, "wx", 0o600);
  } catch (error) {
    fail(error);
  }
  const sealer = createPayloadSealer(payloadKeyObject(data.key));
  data.key.fill(0);
  // Writes go out one after another on the thread pool while this thread seals the next chunk.
  let writes: Promise<void> = descriptor === undefined ? Promise.resolve() : writeAll(descriptor, [Buffer.from(data.preamble)]).then((bytes) => void (size += bytes));
  const after = (work: (fd: number) => Promise<void>) => {
    writes = writes.then(() => (failed || descriptor === undefined ? undefined : work(descriptor))).catch(fail);
  };
  port.on("message", (request: EncryptWorkerRequest) => {
    if (failed || descriptor === undefined) return;
    if (request.kind === "data") {
      const chunk = Buffer.from(request.chunk.buffer, request.chunk.byteOffset, request.chunk.byteLength);
      const sealed = sealer.add(chunk);
      after(async (fd) => {
        size += await writeAll(fd, sealed);
        unflushed += chunk.length;
        if (unflushed >= FLUSH_EVERY) {
          unflushed = 0;
          flushes.push(fdatasync(fd));
        }
        // The sealer keeps no reference to the chunk once add returns: hand the memory back for the next read.
        if (request.moved) port.postMessage({ kind: "written", bytes: chunk.length, buffer: request.chunk.buffer as ArrayBuffer } satisfies EncryptWorkerReply, [request.chunk.buffer as ArrayBuffer]);
        else port.postMessage({ kind: "written", bytes: chunk.length } satisfies EncryptWorkerReply);
      });
    } else {
      const last = sealer.finish();
      after(async (fd) => {
        size += await writeAll(fd, last);
        await Promise.all(flushes);
        // Durable before it is published: a crash must never leave a named archive with missing blocks.
        fsyncSync(fd);
        closeSync(fd);
        descriptor = undefined;
        port.postMessage({ kind: "done", size } satisfies EncryptWorkerReply);
      });
    }
  });
}
