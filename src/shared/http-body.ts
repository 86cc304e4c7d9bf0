// One bounded body reader for every service's JSON endpoints. A declared Content-Length over the bound is refused
// before a byte is read; a body that grows past it while streaming stops being buffered at once (the caller answers
// 413 and closes the connection, see refusal.ts), so no client can make a service hold more than `limit` bytes.
import type { IncomingMessage } from "node:http";
import { PerimeterError } from "./errors.ts";

export class BodyTooLargeError extends PerimeterError {
  readonly limit: number;
  constructor(limit: number) {
    super("too_large", `the body is larger than ${limit} bytes`);
    this.limit = limit;
  }
}

export interface ReadBodyOptions {
  /** Largest body accepted, in bytes. */
  limit: number;
  /** Give up when the whole body has not arrived within this time (a client trickling bytes). @default no bound */
  timeoutMs?: number;
}

/** The whole body; throws BodyTooLargeError, or PerimeterError("bad_request" | "timeout") when it never completes. */
export function readBoundedBody(request: IncomingMessage, options: ReadBodyOptions): Promise<Buffer> {
  const { limit } = options;
  const declared = request.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(new BodyTooLargeError(limit));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = (error: Error | undefined) => {
      request.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
      if (timer !== undefined) clearTimeout(timer);
      if (error !== undefined) reject(error);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        request.pause();
        finish(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish(undefined);
    const onError = (error: Error) => finish(new PerimeterError("bad_request", `the request body could not be read: ${error.message}`, { cause: error }));
    const onClose = () => {
      if (!request.complete) finish(new PerimeterError("bad_request", "the client closed the connection before the body ended"));
    };
    request.on("data", onData).on("end", onEnd).on("error", onError).on("close", onClose);
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        request.pause();
        finish(new PerimeterError("timeout", `the request body did not arrive within ${options.timeoutMs} ms`));
      }, options.timeoutMs);
    }
  });
}
