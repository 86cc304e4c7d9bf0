// The plaintext inside a backup: a tar archive of fixed layout (docs/backup.md):
//   backup.json     first: what was backed up, from where, when
//   data/...        the agent's data directory: directories, regular files, symbolic links (stored, never followed)
//   audit.db        a consistent snapshot of the audit log (SQLite online backup), when there is one
//   manifest.json   last: every entry above with its type, mode, size and sha256 (written last: hashes are known
//                   only once the files were read)
// Reading refuses anything the writer never produces, because anyone holding a recipient's PUBLIC key can make an
// archive that decrypts: other entry types (hard links, devices, FIFOs), names outside that layout ("../", absolute
// paths, empty or "." segments), an entry below a symbolic link or a file, and duplicates. Files are created with
// O_EXCL|O_NOFOLLOW inside a fresh directory, so nothing is written through a link or over an existing file.
import { PerimeterError } from "../shared/index.ts";
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { chmod, lstat, lutimes, mkdir, open, readdir, readlink, realpath, symlink, utimes } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import { extract } from "tar-stream";
import type { Entry } from "tar-stream";
import { ArchiveError } from "./age-stream.ts";
import { END_OF_ARCHIVE, encodeHeader, padding } from "./tar.ts";
import type { TarEntryType } from "./tar.ts";

export const INFO_NAME = "backup.json";
export const MANIFEST_NAME = "manifest.json";
export const DATA_NAME = "data";
export const AUDIT_NAME = "audit.db";

export const READ_SIZE = 1024 * 1024;
const MAX_INFO_BYTES = 64 * 1024;
/** ~150 bytes an entry: room for about a million files. */
const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
const MAX_NAME_BYTES = 4096;

export interface BackupInfo {
  format: "perimeter-backup";
  version: 1;
  created: string;
  name: string;
  dataDirectory: string;
  auditLog: { path: string; records: number; head: { seq: number; hash: string } | null } | null;
}

export interface ManifestEntry {
  path: string;
  type: TarEntryType;
  mode: number;
  mtime: number;
  size: number;
  sha256?: string;
  target?: string;
}

export interface BackupManifest {
  format: "perimeter-backup-manifest";
  version: 1;
  entries: ManifestEntry[];
  skipped: Array<{ path: string; reason: string }>;
}

/** A failure of the machine or of the data being backed up (not of an archive): disk full, a file that changed. */
export class BackupError extends PerimeterError {
  constructor(message: string) {
    super("failed", message);
  }
}

export interface ArchiveSource {
  info: BackupInfo;
  dataDirectory: string;
  /** Absolute paths under the data directory left out (the backup directory, the live audit log and its WAL). */
  exclude: ReadonlyMap<string, string>;
  auditSnapshot?: string;
  /** Where read buffers come from (a pool the consumer refills); fresh 1 MiB buffers by default. */
  takeBuffer?: () => Buffer;
}

export interface ArchiveTotals {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  skipped: Array<{ path: string; reason: string }>;
}

function freshBuffer(): Buffer {
  return Buffer.allocUnsafe(READ_SIZE);
}

function seconds(time: number): number {
  return Math.floor(time / 1000);
}

/** Entries of one regular file read through an open handle: it is the file that was checked, not a swapped-in link. */
async function* fileEntry(name: string, handle: FileHandle, mode: number, mtime: number, size: number, entries: ManifestEntry[], shown: string, take: () => Buffer): AsyncGenerator<Buffer> {
  const hash = createHash("sha256");
  yield encodeHeader({ name, type: "file", mode, mtime, size });
  let position = 0;
  while (position < size) {
    // A buffer no one else holds: the consumer takes ownership of what is yielded.
    const buffer = take();
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - position), position);
    if (bytesRead === 0) {
      throw new BackupError(`${shown} shrank from ${size} to ${position} bytes while it was read; the archive cannot hold it consistently: run the backup again (or stop the agent first)`);
    }
    const chunk = buffer.subarray(0, bytesRead);
    hash.update(chunk);
    position += bytesRead;
    yield chunk;
  }
  yield padding(size);
  entries.push({ path: name, type: "file", mode, mtime, size, sha256: hash.digest("hex") });
}

async function* walk(directory: string, name: string, source: ArchiveSource, entries: ManifestEntry[], totals: ArchiveTotals): AsyncGenerator<Buffer> {
  const children = (await readdir(directory)).sort();
  for (const child of children) {
    const path = join(directory, child);
    const entryName = `${name}/${child}`;
    const excluded = source.exclude.get(path);
    if (excluded !== undefined) {
      totals.skipped.push({ path: entryName, reason: excluded });
      continue;
    }
    if (Buffer.byteLength(entryName) > MAX_NAME_BYTES) throw new BackupError(`${path}: the path is longer than ${MAX_NAME_BYTES} bytes`);
    const stat = await lstat(path);
    const mode = stat.mode & 0o777;
    const mtime = seconds(stat.mtimeMs);
    if (stat.isDirectory()) {
      yield encodeHeader({ name: entryName, type: "directory", mode, mtime, size: 0 });
      entries.push({ path: entryName, type: "directory", mode, mtime, size: 0 });
      totals.directories += 1;
      yield* walk(path, entryName, source, entries, totals);
    } else if (stat.isSymbolicLink()) {
      const target = await readlink(path);
      yield encodeHeader({ name: entryName, type: "symlink", mode, mtime, size: 0, linkname: target });
      entries.push({ path: entryName, type: "symlink", mode, mtime, size: 0, target });
      totals.symlinks += 1;
    } else if (stat.isFile()) {
      let handle: FileHandle;
      try {
        handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // Replaced by a link or removed since lstat: what is there now is not what was listed.
        if (code === "ELOOP" || code === "ENOENT") {
          totals.skipped.push({ path: entryName, reason: code === "ENOENT" ? "removed while the backup ran" : "replaced by a symbolic link while the backup ran" });
          continue;
        }
        throw error;
      }
      try {
        const opened = await handle.stat();
        if (!opened.isFile()) {
          totals.skipped.push({ path: entryName, reason: "no longer a regular file when opened" });
          continue;
        }
        // The size when opened: a log that grows meanwhile is cut at that point, consistently with its hash.
        yield* fileEntry(entryName, handle, opened.mode & 0o777, seconds(opened.mtimeMs), opened.size, entries, path, source.takeBuffer ?? freshBuffer);
        totals.files += 1;
        totals.bytes += opened.size;
      } finally {
        await handle.close();
      }
    } else {
      const kind = stat.isSocket() ? "socket" : stat.isFIFO() ? "FIFO" : stat.isCharacterDevice() ? "character device" : stat.isBlockDevice() ? "block device" : "special file";
      totals.skipped.push({ path: entryName, reason: `a ${kind}: backups hold only files, directories and symbolic links` });
    }
  }
}

/**
 * The plaintext archive as a stream of buffers. `totals` is filled in as it is read. The data directory's root is
 * resolved once (a symlinked ~/.hermes is backed up as the directory it names); nothing below it is followed.
 */
export async function* archiveStream(source: ArchiveSource, totals: ArchiveTotals): AsyncGenerator<Buffer> {
  const entries: ManifestEntry[] = [];
  const info = Buffer.from(JSON.stringify(source.info, null, 2) + "\n");
  const now = seconds(Date.parse(source.info.created));
  yield encodeHeader({ name: INFO_NAME, type: "file", mode: 0o600, mtime: now, size: info.length });
  yield info;
  yield padding(info.length);
  entries.push({ path: INFO_NAME, type: "file", mode: 0o600, mtime: now, size: info.length, sha256: createHash("sha256").update(info).digest("hex") });

  const root = await realpath(source.dataDirectory);
  const rootStat = await lstat(root);
  if (!rootStat.isDirectory()) throw new BackupError(`the data directory ${source.dataDirectory} is not a directory; set backup.dataDirectory to the agent's data directory (e.g. /home/hermes/.hermes)`);
  const rootMode = rootStat.mode & 0o777;
  const rootTime = seconds(rootStat.mtimeMs);
  yield encodeHeader({ name: DATA_NAME, type: "directory", mode: rootMode, mtime: rootTime, size: 0 });
  entries.push({ path: DATA_NAME, type: "directory", mode: rootMode, mtime: rootTime, size: 0 });
  yield* walk(root, DATA_NAME, source, entries, totals);

  if (source.auditSnapshot !== undefined) {
    const handle = await open(source.auditSnapshot, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const stat = await handle.stat();
      yield* fileEntry(AUDIT_NAME, handle, 0o600, now, stat.size, entries, source.auditSnapshot, source.takeBuffer ?? freshBuffer);
    } finally {
      await handle.close();
    }
  }

  const manifest: BackupManifest = { format: "perimeter-backup-manifest", version: 1, entries, skipped: totals.skipped };
  const body = Buffer.from(JSON.stringify(manifest) + "\n");
  yield encodeHeader({ name: MANIFEST_NAME, type: "file", mode: 0o600, mtime: now, size: body.length });
  yield body;
  yield padding(body.length);
  yield END_OF_ARCHIVE;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

export interface ExtractTarget {
  /** An empty directory that receives the contents of data/ (its mode becomes the backed-up one). */
  dataDirectory: string;
  /** Where audit.db is written (must not exist); without it an archive holding one is refused. */
  auditFile?: string;
}

export interface ExtractResult {
  info: BackupInfo;
  manifest: BackupManifest;
  files: number;
  bytes: number;
}

interface Seen {
  type: TarEntryType;
  mode: number;
  mtime: number;
  size: number;
  sha256?: string;
  target?: string;
}

const TYPE_NAMES: Record<string, string> = {
  link: "a hard link",
  "character-device": "a character device",
  "block-device": "a block device",
  fifo: "a FIFO",
  "contiguous-file": "a contiguous file",
};

/** The checked relative path below data/ ("" for data itself), or an ArchiveError naming the entry. */
function dataPath(name: string): string {
  const shown = JSON.stringify(name);
  if (name.includes("\0")) throw new ArchiveError(`entry ${shown} has a NUL byte in its name: refused`);
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new ArchiveError(`entry name longer than ${MAX_NAME_BYTES} bytes: refused`);
  if (name.startsWith("/")) throw new ArchiveError(`entry ${shown} is an absolute path: refused (entries are relative to the archive)`);
  const segments = name.split("/");
  if (segments[0] !== DATA_NAME) throw new ArchiveError(`entry ${shown} is outside the backup layout (backup.json, data/, audit.db, manifest.json): refused`);
  for (const segment of segments) {
    if (segment === "" || segment === "." || segment === "..") {
      throw new ArchiveError(`entry ${shown} has a "${segment === "" ? "//" : segment}" segment: refused, no entry may leave or re-enter the restore root`);
    }
  }
  return segments.slice(1).join("/");
}

async function readSmall(entry: Entry, limit: number, what: string): Promise<Buffer> {
  if (entry.header.size > limit) throw new ArchiveError(`${what} is ${entry.header.size} bytes, more than the ${limit} allowed`);
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function parseJson<T>(body: Buffer, what: string, format: string): T {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw new ArchiveError(`${what} is not valid JSON`);
  }
  if (typeof value !== "object" || value === null || (value as { format?: unknown }).format !== format || (value as { version?: unknown }).version !== 1) {
    throw new ArchiveError(`${what} is not a ${format} version 1 document; this archive was not made by perimeter backup create (or by a newer version)`);
  }
  return value as T;
}

async function writeFileEntry(entry: Entry, path: string): Promise<{ size: number; sha256: string }> {
  // O_EXCL: never over an existing file; O_NOFOLLOW: never through a link placed there.
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of entry) {
      const buffer = chunk as Buffer;
      hash.update(buffer);
      size += buffer.length;
      let written = 0;
      while (written < buffer.length) written += (await handle.write(buffer, written, buffer.length - written)).bytesWritten;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { size, sha256: hash.digest("hex") };
}

function describe(entry: ManifestEntry | Seen): string {
  return entry.type === "file" ? `file of ${entry.size} bytes, sha256 ${entry.sha256 ?? "?"}` : entry.type === "symlink" ? `link to ${JSON.stringify(entry.target)}` : "directory";
}

function compareWithManifest(seen: Map<string, Seen>, manifest: BackupManifest): void {
  if (!Array.isArray(manifest.entries)) throw new ArchiveError("manifest.json has no entry list");
  const problems: string[] = [];
  const listed = new Set<string>();
  for (const expected of manifest.entries) {
    listed.add(expected.path);
    const actual = seen.get(expected.path);
    if (actual === undefined) problems.push(`${expected.path}: listed in the manifest but missing from the archive`);
    else if (actual.type !== expected.type || actual.size !== expected.size || actual.sha256 !== expected.sha256 || actual.target !== expected.target || actual.mode !== expected.mode) {
      problems.push(`${expected.path}: the archive holds a ${describe(actual)} (mode ${actual.mode.toString(8)}), the manifest a ${describe(expected)} (mode ${Number(expected.mode).toString(8)})`);
    }
  }
  for (const path of seen.keys()) if (!listed.has(path)) problems.push(`${path}: in the archive but not in the manifest`);
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join("; ");
    throw new ArchiveError(`the archive does not match its manifest (${problems.length} difference${problems.length === 1 ? "" : "s"}): ${shown}${problems.length > 5 ? "; …" : ""}`);
  }
}

/**
 * Extracts a decrypted archive into `target`, checking the layout as it goes and every entry against the manifest
 * at the end. Throws ArchiveError for anything an archive of ours never holds; leaves cleaning up to the caller.
 */
export async function extractArchive(plaintext: Readable, target: ExtractTarget): Promise<ExtractResult> {
  const root = resolve(target.dataDirectory);
  const seen = new Map<string, Seen>();
  const directories: Array<{ path: string; mode: number; mtime: number }> = [];
  const links: Array<{ path: string; mtime: number }> = [];
  let info: BackupInfo | undefined;
  let manifest: BackupManifest | undefined;
  let files = 0;
  let bytes = 0;
  const parser = extract();
  // The decrypter's error (wrong key, truncation, tampering) is the one to report, not the parser's "premature close".
  let streamError: Error | undefined;
  plaintext.on("error", (error) => {
    streamError ??= error;
    parser.destroy(error);
  });
  plaintext.pipe(parser);

  try {
    for await (const entry of parser) {
      const header = entry.header;
      const name = header.type === "directory" ? header.name.replace(/\/$/, "") : header.name;
      if (manifest !== undefined) throw new ArchiveError(`entry ${JSON.stringify(name)} follows manifest.json, which must be last: refused`);
      const typeName = TYPE_NAMES[header.type];
      if (typeName !== undefined || (header.type !== "file" && header.type !== "directory" && header.type !== "symlink")) {
        throw new ArchiveError(`entry ${JSON.stringify(name)} is ${typeName ?? `of type ${header.type}`}: backups hold only files, directories and symbolic links, refused`);
      }
      if (info === undefined) {
        if (name !== INFO_NAME || header.type !== "file") throw new ArchiveError(`the archive does not start with ${INFO_NAME}: not a Perimeter backup`);
        const body = await readSmall(entry, MAX_INFO_BYTES, INFO_NAME);
        info = parseJson<BackupInfo>(body, INFO_NAME, "perimeter-backup");
        seen.set(INFO_NAME, { type: "file", mode: header.mode ?? 0, mtime: 0, size: body.length, sha256: createHash("sha256").update(body).digest("hex") });
        continue;
      }
      if (seen.has(name)) throw new ArchiveError(`entry ${JSON.stringify(name)} appears twice: refused`);
      if (name === MANIFEST_NAME && header.type === "file") {
        manifest = parseJson<BackupManifest>(await readSmall(entry, MAX_MANIFEST_BYTES, MANIFEST_NAME), MANIFEST_NAME, "perimeter-backup-manifest");
        continue;
      }
      const mode = (header.mode ?? 0) & 0o777;
      const mtime = seconds(header.mtime?.getTime() ?? 0);
      if (name === AUDIT_NAME && header.type === "file") {
        if (target.auditFile === undefined) throw new ArchiveError("the archive holds an audit log but no place to restore it was given (--audit-db or audit.path)");
        const written = await writeFileEntry(entry, target.auditFile);
        seen.set(AUDIT_NAME, { type: "file", mode, mtime, ...written });
        continue;
      }
      const relativePath = dataPath(name);
      const parent = name.slice(0, name.lastIndexOf("/"));
      if (relativePath !== "" && seen.get(parent)?.type !== "directory") {
        throw new ArchiveError(`entry ${JSON.stringify(name)} lies below ${JSON.stringify(parent)}, which is ${seen.has(parent) ? `a ${seen.get(parent)?.type}, not a directory` : "not a directory entry before it"}: refused (a link or file in the path could lead outside the restore root)`);
      }
      const path = relativePath === "" ? root : join(root, relativePath);
      // The checks above already keep every path inside; this states the invariant the writes rely on.
      if (path !== root && !path.startsWith(root + sep)) throw new ArchiveError(`entry ${JSON.stringify(name)} resolves outside the restore root: refused`);
      if (header.type === "directory") {
        if (path !== root) await mkdir(path, { mode: 0o700 });
        directories.push({ path, mode, mtime });
        seen.set(name, { type: "directory", mode, mtime, size: 0 });
        entry.resume();
      } else if (header.type === "symlink") {
        const linkTarget = header.linkname ?? "";
        if (linkTarget === "" || linkTarget.includes("\0")) throw new ArchiveError(`entry ${JSON.stringify(name)} is a link with an empty or invalid target: refused`);
        // Stored as a link, never followed: nothing later may be written below it (checked above).
        await symlink(linkTarget, path);
        links.push({ path, mtime });
        seen.set(name, { type: "symlink", mode, mtime, size: 0, target: linkTarget });
        entry.resume();
      } else {
        if (relativePath === "") throw new ArchiveError(`entry "${DATA_NAME}" must be a directory: refused`);
        const written = await writeFileEntry(entry, path);
        await chmod(path, mode);
        await utimes(path, mtime, mtime);
        seen.set(name, { type: "file", mode, mtime, ...written });
        files += 1;
        bytes += written.size;
      }
    }
  } catch (error) {
    parser.destroy();
    plaintext.unpipe(parser);
    throw streamError ?? error;
  }
  if (streamError !== undefined) throw streamError;
  if (info === undefined) throw new ArchiveError("the archive holds no entries: not a Perimeter backup");
  if (manifest === undefined) throw new ArchiveError("the archive has no manifest.json at its end: it was cut short when written");
  if (!seen.has(DATA_NAME)) throw new ArchiveError(`the archive has no ${DATA_NAME}/ directory`);
  compareWithManifest(seen, manifest);
  for (const link of links) await lutimes(link.path, link.mtime, link.mtime);
  // Deepest first, so a directory without write permission is set only after everything inside it exists.
  for (const directory of directories.reverse()) {
    await chmod(directory.path, directory.mode);
    await utimes(directory.path, directory.mtime, directory.mtime);
  }
  return { info, manifest, files, bytes };
}

/** For messages: a path inside the data directory as the operator knows it. */
export function shownPath(root: string, path: string): string {
  return relative(root, path) || ".";
}
