// The part of tar-stream 3 (which ships no types) that src/backup uses.
declare module "tar-stream" {
  import type { Readable, Writable } from "node:stream";

  export interface Headers {
    name: string;
    size?: number | undefined;
    mode?: number | undefined;
    mtime?: Date | undefined;
    type?: "file" | "link" | "symlink" | "character-device" | "block-device" | "directory" | "fifo" | "contiguous-file" | "pax-header" | "pax-global-header" | "gnu-long-link-path" | "gnu-long-path" | null | undefined;
    linkname?: string | null | undefined;
    uid?: number | undefined;
    gid?: number | undefined;
    uname?: string | undefined;
    gname?: string | undefined;
    devmajor?: number | undefined;
    devminor?: number | undefined;
    pax?: Record<string, string> | null | undefined;
  }

  export interface Pack extends Readable {
    entry(headers: Headers, buffer?: string | Buffer, callback?: (error?: Error | null) => void): Writable;
    finalize(): void;
  }

  export interface Entry extends Readable {
    header: Headers & { size: number; type: NonNullable<Headers["type"]> };
  }

  export interface Extract extends Writable, AsyncIterable<Entry> {}

  export function pack(options?: Record<string, unknown>): Pack;
  export function extract(options?: { filenameEncoding?: string; allowUnknownFormat?: boolean }): Extract;
}
