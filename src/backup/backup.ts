// Creating, restoring and verifying backups. Archives are published, and restores swapped in, by rename within one
// directory, so a failure at any point (wrong key, damage, a full disk) leaves what was there before untouched.
import { PerimeterError } from "../shared/index.ts";
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { link, lstat, mkdir, mkdtemp, open, readdir, readFile, rename, rm, rmdir, stat, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AuditReadError, readAuditRecords, snapshotAuditLog, verifyAuditLog } from "../audit-log/index.ts";
import type { AuditVerification } from "../audit-log/index.ts";
import { ArchiveError, createDecryptStream, parseIdentities, parseRecipients } from "./age-stream.ts";
import { createBufferPool, createEncryptedFile } from "./encrypted-file.ts";
import { BackupError, READ_SIZE, archiveStream, extractArchive } from "./archive.ts";
import type { ArchiveTotals, BackupInfo, ExtractResult } from "./archive.ts";

/** The only files retention and `verify` without an archive consider: `<name>-<UTC time>.tar.age`. */
export function archiveName(name: string, time: Date): string {
  return `${name}-${time.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "")}.tar.age`;
}

function archivePattern(name: string): RegExp {
  return new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-\\d{8}T\\d{6}Z\\.tar\\.age$`);
}

/** Disk full and quota errors become one message saying what to do; others pass through. */
function spaceError(error: unknown, where: string, consequence: string): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new BackupError(`no space left on the device of ${where} (${code}): free space there or choose another directory; ${consequence}`);
  }
  return error;
}

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// create

export interface CreateBackupOptions {
  /** The config's name: archives are <name>-<time>.tar.age. */
  name: string;
  dataDirectory: string;
  /** Where archives are kept (created 0700). */
  directory: string;
  recipients: readonly string[];
  /** Archives of this name kept in `directory` after this one is written; older ones are removed. */
  keep: number;
  /** The audit database to snapshot; undefined leaves it out. */
  auditPath?: string;
  /** Write exactly this file instead (no retention). */
  output?: string;
  now?: Date;
}

export interface CreateBackupResult extends ArchiveTotals {
  archive: string;
  archiveBytes: number;
  audit: BackupInfo["auditLog"];
  removed: string[];
  milliseconds: number;
}

export async function createBackup(options: CreateBackupOptions): Promise<CreateBackupResult> {
  const started = performance.now();
  const recipients = parseRecipients(options.recipients);
  const now = options.now ?? new Date();
  const dataDirectory = resolve(options.dataDirectory);
  const archive = options.output !== undefined ? resolve(options.output) : join(resolve(options.directory), archiveName(options.name, now));
  const directory = dirname(archive);
  try {
    const dataStat = await stat(dataDirectory);
    if (!dataStat.isDirectory()) throw new BackupError(`backup.dataDirectory ${dataDirectory} is not a directory`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new BackupError(`the data directory ${dataDirectory} does not exist; set backup.dataDirectory to the agent's data directory`);
    throw error;
  }
  await mkdir(directory, { recursive: true, mode: 0o700 });
  // Work happens next to the archive: the snapshot may be large (no tmpfs), and the final link stays on one filesystem.
  const work = await mkdtemp(join(directory, ".perimeter-backup-"));
  try {
    let audit: BackupInfo["auditLog"] = null;
    let auditSnapshot: string | undefined;
    const exclude = new Map<string, string>([[directory, "the backup directory itself"], [work, "the backup directory itself"]]);
    if (options.auditPath !== undefined) {
      const auditPath = resolve(options.auditPath);
      auditSnapshot = join(work, "audit.db");
      try {
        await snapshotAuditLog(auditPath, auditSnapshot);
      } catch (error) {
        if (error instanceof AuditReadError) {
          throw new BackupError(`${error.message}; start the perimeter once so it exists, or set backup.auditLog: false to back up the data directory alone`);
        }
        throw spaceError(error, directory, "no archive was written");
      }
      const last = readAuditRecords(auditSnapshot, { last: 1 })[0];
      audit = { path: auditPath, records: last?.seq ?? 0, head: last === undefined ? null : { seq: last.seq, hash: last.hash } };
      for (const suffix of ["", "-wal", "-shm", "-journal"]) exclude.set(auditPath + suffix, "the live audit log (archived as audit.db from SQLite's online backup)");
    }
    const info: BackupInfo = { format: "perimeter-backup", version: 1, created: now.toISOString(), name: options.name, dataDirectory, auditLog: audit };
    const totals: ArchiveTotals = { files: 0, directories: 0, symlinks: 0, bytes: 0, skipped: [] };
    const partial = join(work, "archive.partial");
    try {
      const pool = createBufferPool(READ_SIZE);
      await pipeline(
        Readable.from(archiveStream({ info, dataDirectory, exclude, takeBuffer: pool.take, ...(auditSnapshot === undefined ? {} : { auditSnapshot }) }, totals), { objectMode: false }),
        await createEncryptedFile(recipients, partial, pool),
      );
    } catch (error) {
      throw spaceError(error, directory, "no archive was kept");
    }
    const archiveBytes = (await stat(partial)).size;
    try {
      // link, not rename: never replaces an archive that is already there.
      await link(partial, archive);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") throw new BackupError(`${archive} already exists; it was left as it is (choose another --output, or wait a second between backups)`);
      throw spaceError(error, directory, "no archive was kept");
    }
    await syncDirectory(directory);
    const removed = options.output === undefined ? await applyRetention(directory, options.name, options.keep) : [];
    return { archive, archiveBytes, audit, removed, milliseconds: performance.now() - started, ...totals };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Removes the oldest `<name>-<time>.tar.age` archives beyond `keep`; other files are never touched. */
export async function applyRetention(directory: string, name: string, keep: number): Promise<string[]> {
  if (!Number.isSafeInteger(keep) || keep < 1) throw new BackupError(`backup.keep must be at least 1, not ${keep}`);
  const archives = await listArchives(directory, name);
  const removed: string[] = [];
  for (const old of archives.slice(keep)) {
    await unlink(old);
    removed.push(old);
  }
  if (removed.length > 0) await syncDirectory(directory);
  return removed;
}

/** Archives of this name in `directory`, newest first (the names sort by time). */
export async function listArchives(directory: string, name: string): Promise<string[]> {
  const pattern = archivePattern(name);
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  return names
    .filter((entry) => pattern.test(entry))
    .sort()
    .reverse()
    .map((entry) => join(directory, entry));
}

// ---------------------------------------------------------------------------------------------------------------
// reading an archive

/** Reads an age identity file. Refuses one that others may read: it opens every backup. Never echoes its content. */
export async function readIdentityFile(path: string): Promise<string[]> {
  const absolute = resolve(path);
  let text: string;
  try {
    const status = await stat(absolute);
    if ((status.mode & 0o077) !== 0) {
      throw new BackupError(`the identity file ${absolute} may be read by other users (mode ${(status.mode & 0o777).toString(8)}); it opens every backup: chmod 600 ${absolute}`);
    }
    text = await readFile(absolute, "utf8");
  } catch (error) {
    if (error instanceof BackupError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new BackupError(`cannot read the identity file ${absolute}: ${code === "ENOENT" ? "no such file" : (code ?? "unreadable")}`);
  }
  return parseIdentities(text, absolute);
}

async function openArchive(archive: string, identities: readonly string[]): Promise<Readable> {
  const absolute = resolve(archive);
  try {
    const status = await stat(absolute);
    if (!status.isFile()) throw new BackupError(`${absolute} is not a file`);
  } catch (error) {
    if (error instanceof BackupError) throw error;
    throw new BackupError(`cannot read the archive ${absolute}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`);
  }
  const input = createReadStream(absolute);
  const decrypt = createDecryptStream(identities);
  input.on("error", (error) => decrypt.destroy(error));
  input.pipe(decrypt);
  return decrypt;
}

async function removeDatabase(path: string): Promise<void> {
  for (const suffix of ["", "-wal", "-shm", "-journal"]) await rm(path + suffix, { force: true });
}

function checkAuditLog(path: string, info: BackupInfo, publicKey: readonly string[] | undefined): AuditVerification {
  const head = info.auditLog?.head ?? undefined;
  // The head recorded at backup time must still be the head: a restored log that lost its newest records is refused.
  return verifyAuditLog(path, { ...(publicKey === undefined ? {} : { publicKey }), ...(head === undefined ? {} : { knownHead: head }) });
}

export interface VerifyBackupOptions {
  archive: string;
  identities: readonly string[];
  /** Where the temporary restore goes; the system's temporary directory by default. */
  scratch?: string;
  /** Trusted keys for the audit log's signed checkpoints. */
  publicKey?: readonly string[];
}

export interface VerifyBackupResult extends ExtractResult {
  archive: string;
  audit: AuditVerification | null;
}

/**
 * Restores the archive into a temporary directory, checks every entry against the manifest inside it and the
 * restored audit log's hash chain (to the head recorded when the backup was made), then removes the copy.
 */
export async function verifyBackup(options: VerifyBackupOptions): Promise<VerifyBackupResult> {
  const scratch = await mkdtemp(join(resolve(options.scratch ?? tmpdir()), "perimeter-backup-verify-"));
  try {
    const dataDirectory = join(scratch, "data");
    await mkdir(dataDirectory, { mode: 0o700 });
    const auditFile = join(scratch, "audit.db");
    let extracted: ExtractResult;
    try {
      extracted = await extractArchive(await openArchive(options.archive, options.identities), { dataDirectory, auditFile });
    } catch (error) {
      throw spaceError(error, scratch, "the archive could not be restored there for checking (pass --scratch DIR on a larger disk)");
    }
    const audit = extracted.info.auditLog === null ? null : checkAuditLog(auditFile, extracted.info, options.publicKey);
    return { archive: resolve(options.archive), audit, ...extracted };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// restore

/** Restoring would replace data that is there: refused unless asked for with --force. */
export class RestoreRefusedError extends PerimeterError {
  constructor(message: string) {
    super("usage", message);
  }
}

export interface RestoreBackupOptions {
  archive: string;
  identities: readonly string[];
  dataDirectory: string;
  /** Where the audit log goes; required when the archive holds one. */
  auditFile?: string;
  /** Replace existing data: it is moved aside to <path>.replaced-<time>, never deleted. */
  force: boolean;
  publicKey?: readonly string[];
  now?: Date;
}

export interface RestoreBackupResult extends ExtractResult {
  dataDirectory: string;
  auditFile: string | null;
  audit: AuditVerification | null;
  /** Where replaced data was moved (with --force). */
  movedAside: string[];
}

async function existing(path: string): Promise<"missing" | "empty-directory" | "present"> {
  try {
    const status = await lstat(path);
    if (status.isDirectory() && (await readdir(path)).length === 0) return "empty-directory";
    return "present";
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw error;
  }
}

/**
 * Restores into sibling temporary paths, checks them as verify does, then renames them into place. Existing data is
 * refused without `force`, and with it moved aside rather than deleted. Stop the agent and the perimeter first.
 */
export async function restoreBackup(options: RestoreBackupOptions): Promise<RestoreBackupResult> {
  const dataDirectory = resolve(options.dataDirectory);
  const auditFile = options.auditFile === undefined ? undefined : resolve(options.auditFile);
  const dataState = await existing(dataDirectory);
  const auditState = auditFile === undefined ? "missing" : await existing(auditFile);
  const auditLeftovers = auditFile === undefined ? [] : (await Promise.all(["-wal", "-shm"].map(async (suffix) => ((await existing(auditFile + suffix)) === "missing" ? undefined : auditFile + suffix)))).filter((path) => path !== undefined);
  if (!options.force) {
    const present = [...(dataState === "present" ? [dataDirectory] : []), ...(auditState === "present" ? [auditFile as string] : []), ...auditLeftovers];
    if (present.length > 0) {
      throw new RestoreRefusedError(`${present.join(" and ")} already exist${present.length === 1 ? "s" : ""}; nothing was changed. Stop the agent and the perimeter, then run again with --force: what is there is moved aside to <path>.replaced-<time>, not deleted`);
    }
  }
  const dataParent = dirname(dataDirectory);
  await mkdir(dataParent, { recursive: true });
  const stagedData = await mkdtemp(join(dataParent, `.${basename(dataDirectory)}.restore-`));
  let stagedAudit: string | undefined;
  if (auditFile !== undefined) {
    await mkdir(dirname(auditFile), { recursive: true, mode: 0o700 });
    stagedAudit = join(dirname(auditFile), `.${basename(auditFile)}.restore-${randomBytes(6).toString("hex")}`);
  }
  let published = false;
  try {
    let extracted: ExtractResult;
    try {
      extracted = await extractArchive(await openArchive(options.archive, options.identities), { dataDirectory: stagedData, ...(stagedAudit === undefined ? {} : { auditFile: stagedAudit }) });
    } catch (error) {
      throw spaceError(error, dataParent, "nothing was changed");
    }
    let audit: AuditVerification | null = null;
    if (extracted.info.auditLog !== null && stagedAudit !== undefined) {
      audit = checkAuditLog(stagedAudit, extracted.info, options.publicKey);
      if (!audit.ok) throw new ArchiveError(`the audit log in the archive is broken at record ${audit.firstBrokenSeq}: ${audit.reason}; nothing was changed`);
      for (const suffix of ["-wal", "-shm"]) await rm(stagedAudit + suffix, { force: true });
    }
    const stamp = (options.now ?? new Date()).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
    const movedAside: string[] = [];
    const moveAside = async (path: string) => {
      const aside = `${path}.replaced-${stamp}`;
      await rename(path, aside);
      movedAside.push(aside);
    };
    if (dataState === "empty-directory") await rmdir(dataDirectory);
    else if (dataState === "present") await moveAside(dataDirectory);
    await rename(stagedData, dataDirectory);
    published = true;
    if (auditFile !== undefined && stagedAudit !== undefined && extracted.info.auditLog !== null) {
      // The old -wal and -shm go too: SQLite would replay a stale WAL into the restored file and corrupt it.
      if (auditState !== "missing") await moveAside(auditFile);
      for (const leftover of auditLeftovers) await moveAside(leftover);
      await rename(stagedAudit, auditFile);
      await syncDirectory(dirname(auditFile));
    }
    await syncDirectory(dataParent);
    return { dataDirectory, auditFile: extracted.info.auditLog === null ? null : (auditFile ?? null), audit, movedAside, ...extracted };
  } finally {
    if (!published) await rm(stagedData, { recursive: true, force: true });
    if (stagedAudit !== undefined) await removeDatabase(stagedAudit);
  }
}
