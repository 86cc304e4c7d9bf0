// A minimal reader for the POSIX (pax) tar stream a sandbox returns its files in. The stream is produced inside the
// sandbox, so it is untrusted input: every header is bounds-checked, names are validated as workspace paths, only
// regular files are returned (links, devices and fifos are listed as skipped), and totals are capped.
import { workspacePathProblem } from "./task.ts";

export interface TarEntry {
  readonly path: string;
  readonly content: Buffer;
  readonly mode: number;
}

export interface TarReadResult {
  readonly files: TarEntry[];
  /** Entries that were not regular files or had unacceptable names. */
  readonly skipped: string[];
  /** True when the stream ended early or was malformed after some entries. */
  readonly damaged: boolean;
  /** The name of the entry the stream ended in the middle of, when it did. */
  readonly cutOff?: string;
}

const BLOCK = 512;

function field(header: Buffer, offset: number, length: number): string {
  const slice = header.subarray(offset, offset + length);
  const end = slice.indexOf(0);
  return slice.subarray(0, end < 0 ? length : end).toString("utf8");
}

function octal(header: Buffer, offset: number, length: number): number {
  const text = field(header, offset, length).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) return NaN;
  return parseInt(text, 8);
}

function checksumMatches(header: Buffer): boolean {
  const stored = octal(header, 148, 8);
  let sum = 0;
  for (let index = 0; index < BLOCK; index++) sum += index >= 148 && index < 156 ? 32 : (header[index] as number);
  return stored === sum;
}

function parsePax(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let position = 0;
  // Each record: "<length> <key>=<value>\n", the length counting the whole record. Bounded by the data size.
  while (position < data.length) {
    const space = data.indexOf(0x20, position);
    if (space < 0) break;
    const length = Number(data.subarray(position, space).toString("ascii"));
    if (!Number.isInteger(length) || length <= 0 || position + length > data.length) break;
    const record = data.subarray(space + 1, position + length - 1).toString("utf8");
    const equals = record.indexOf("=");
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    position += length;
  }
  return records;
}

/** Strips "./" prefixes and trailing slashes tar may write; the result is checked like any workspace path. */
function normalizeName(name: string): string {
  let result = name;
  while (result.startsWith("./")) result = result.slice(2);
  while (result.endsWith("/")) result = result.slice(0, -1);
  return result;
}

export function readTar(stream: Buffer, limits: { maxFiles: number; maxBytes: number }): TarReadResult {
  const files: TarEntry[] = [];
  const skipped: string[] = [];
  let position = 0;
  let total = 0;
  let pax = new Map<string, string>();
  while (position + BLOCK <= stream.length) {
    const header = stream.subarray(position, position + BLOCK);
    if (header.every((byte) => byte === 0)) return { files, skipped, damaged: false };
    if (!checksumMatches(header)) return { files, skipped, damaged: true };
    const size = octal(header, 124, 12);
    if (!Number.isSafeInteger(size) || size < 0) return { files, skipped, damaged: true };
    const dataStart = position + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > stream.length) {
      const type = String.fromCharCode(header[156] as number);
      if (type === "x" || type === "g") return { files, skipped, damaged: true };
      const prefix = field(header, 345, 155);
      const name = normalizeName(pax.get("path") ?? (prefix === "" ? field(header, 0, 100) : `${prefix}/${field(header, 0, 100)}`));
      return { files, skipped, damaged: true, ...(workspacePathProblem(name) === undefined ? { cutOff: name } : {}) };
    }
    const data = stream.subarray(dataStart, dataEnd);
    position = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    const type = String.fromCharCode(header[156] as number);
    if (type === "x") {
      pax = parsePax(data);
      continue;
    }
    if (type === "g") continue;
    const prefix = field(header, 345, 155);
    const rawName = pax.get("path") ?? (prefix === "" ? field(header, 0, 100) : `${prefix}/${field(header, 0, 100)}`);
    pax = new Map();
    const name = normalizeName(rawName);
    if (type === "5" || name === "" || name === ".") continue; // directories are implied by their files
    if (type !== "0" && type !== "\u0000" && type !== "7") {
      skipped.push(`${name} (${type === "2" ? "symbolic link" : type === "1" ? "hard link" : "not a regular file"})`);
      continue;
    }
    if (workspacePathProblem(name) !== undefined) {
      skipped.push(`${JSON.stringify(name)} (unacceptable name)`);
      continue;
    }
    total += size;
    if (files.length >= limits.maxFiles || total > limits.maxBytes) {
      skipped.push(`${name} (over the ${limits.maxFiles}-file / ${limits.maxBytes}-byte bound)`);
      continue;
    }
    const mode = octal(header, 100, 8);
    files.push({ path: name, content: Buffer.from(data), mode: Number.isFinite(mode) ? mode & 0o777 : 0o644 });
  }
  // No end-of-archive block: the stream was cut short (or was empty, which is not damage: nothing was sent).
  return { files, skipped, damaged: stream.length > 0 };
}
