// The tar headers backups are written with: POSIX ustar, with a pax extended header when a name, link target or size
// does not fit. Written here rather than with tar-stream's packer so the archive is one async generator of buffers,
// which node:stream's pipeline drives with backpressure (a 1 GiB directory is never held in memory); reading uses
// tar-stream's parser (src/backup/archive.ts). GNU tar and bsdtar read these archives.

export type TarEntryType = "file" | "directory" | "symlink";

export interface TarHeader {
  name: string;
  type: TarEntryType;
  /** Permission bits (setuid/setgid/sticky are dropped: a backup never carries them). */
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
  linkname?: string;
}

const BLOCK = 512;
const TYPEFLAG: Record<TarEntryType, string> = { file: "0", directory: "5", symlink: "2" };
/** The largest size the 11-digit octal field holds; larger sizes go into the pax header. */
const MAX_OCTAL_SIZE = 8 ** 11 - 1;

function writeString(block: Buffer, offset: number, length: number, value: string): void {
  block.write(value, offset, length, "utf8");
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(value.toString(8).padStart(length - 1, "0") + "\0", offset, length, "latin1");
}

function fitsUstarField(value: string, length: number): boolean {
  // ASCII only: a multi-byte name would be cut mid-character by readers that count bytes.
  return value.length <= length && /^[\x20-\x7e]*$/.test(value);
}

function paxRecord(key: string, value: string): Buffer {
  // "<length> <key>=<value>\n", where <length> counts itself.
  const body = ` ${key}=${value}\n`;
  const bodyLength = Buffer.byteLength(body);
  let length = bodyLength + 1;
  while (String(length).length + bodyLength !== length) length = String(length).length + bodyLength;
  return Buffer.from(`${length}${body}`);
}

function ustar(name: string, typeflag: string, mode: number, mtime: number, size: number, linkname: string): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, mode & 0o777);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, size);
  writeOctal(block, 136, 12, Math.max(0, Math.min(mtime, MAX_OCTAL_SIZE)));
  block.write("        ", 148, 8, "latin1");
  block.write(typeflag, 156, 1, "latin1");
  writeString(block, 157, 100, linkname);
  block.write("ustar\x0000", 257, 8, "latin1");
  let checksum = 0;
  for (const byte of block) checksum += byte;
  block.write(checksum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return block;
}

/** The header block(s) of one entry: a pax header first when the ustar fields cannot hold it. */
export function encodeHeader(header: TarHeader): Buffer {
  const records: Buffer[] = [];
  if (!fitsUstarField(header.name, 100)) records.push(paxRecord("path", header.name));
  if (header.linkname !== undefined && !fitsUstarField(header.linkname, 100)) records.push(paxRecord("linkpath", header.linkname));
  if (header.size > MAX_OCTAL_SIZE) records.push(paxRecord("size", String(header.size)));
  const main = ustar(
    fitsUstarField(header.name, 100) ? header.name : "././@PaxHeader-named",
    TYPEFLAG[header.type],
    header.mode,
    header.mtime,
    header.size > MAX_OCTAL_SIZE ? 0 : header.size,
    header.linkname !== undefined && fitsUstarField(header.linkname, 100) ? header.linkname : "",
  );
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  return Buffer.concat([ustar("././@PaxHeader", "x", 0o644, header.mtime, pax.length, ""), pax, padding(pax.length), main]);
}

/** Zero bytes that fill the last block of `size` bytes of content. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
