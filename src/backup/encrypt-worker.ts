// The second half of `backup create`, on its own thread: seal the payload and write the archive file. Reading,
// framing and hashing the files keeps the main thread busy (sha256 alone is about as costly as the cipher), so
// splitting the work over two cores is what lets one process keep up with `tar | age`, which are two.
import { closeSync, fsyncSync, openSync, writevSync } from "node:fs";
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

function writeAll(descriptor: number, buffers: Buffer[]): number {
  let total = 0;
  for (const buffer of buffers) total += buffer.length;
  let remaining = buffers.filter((buffer) => buffer.length > 0);
  while (remaining.length > 0) {
    let count = writevSync(descriptor, remaining);
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
  let descriptor: number | undefined;
  let size = 0;
  const fail = (error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code;
    port.postMessage({ kind: "error", message: (error as Error).message, ...(code === undefined ? {} : { code }) } satisfies EncryptWorkerReply);
  };
  try {
    // wx: never over an existing file; 0600: the archive is for its owner only, even though it is encrypted.
    descriptor = openSync(data.path, "wx", 0o600);
    size += writeAll(descriptor, [Buffer.from(data.preamble)]);
  } catch (error) {
    fail(error);
  }
  const sealer = createPayloadSealer(payloadKeyObject(data.key));
  data.key.fill(0);
  port.on("message", (request: EncryptWorkerRequest) => {
    if (descriptor === undefined) return;
    try {
      if (request.kind === "data") {
        const chunk = Buffer.from(request.chunk.buffer, request.chunk.byteOffset, request.chunk.byteLength);
        size += writeAll(descriptor, sealer.add(chunk));
        // The sealer keeps no reference to the chunk once add returns: hand the memory back for the next read.
        if (request.moved) port.postMessage({ kind: "written", bytes: chunk.length, buffer: request.chunk.buffer as ArrayBuffer } satisfies EncryptWorkerReply, [request.chunk.buffer as ArrayBuffer]);
        else port.postMessage({ kind: "written", bytes: chunk.length } satisfies EncryptWorkerReply);
      } else {
        size += writeAll(descriptor, sealer.finish());
        // Durable before it is published: a crash must never leave a named archive with missing blocks.
        fsyncSync(descriptor);
        closeSync(descriptor);
        descriptor = undefined;
        port.postMessage({ kind: "done", size } satisfies EncryptWorkerReply);
      }
    } catch (error) {
      fail(error);
      if (descriptor !== undefined) closeSync(descriptor);
      descriptor = undefined;
    }
  });
}
