// `perimeter backup create|verify|restore|list`. `perimeter backup create -c FILE` is the line the VPS render's
// systemd timer runs: keep it stable. Exit codes: 0 ok; 1 the backup or the archive failed (disk full, wrong key,
// damaged, truncated or altered archive, broken audit chain); 2 usage or config error, or a restore that would
// replace data without --force.
import { resolve } from "node:path";
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command, CommandIo } from "../cli/index.ts";
import { loadConfig } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { ArchiveError } from "./age-stream.ts";
import { BackupError } from "./archive.ts";
import { RestoreRefusedError, createBackup, listArchives, readIdentityFile, restoreBackup, verifyBackup } from "./backup.ts";

const HELP = `perimeter backup — encrypted backups of the agent's data directory and the audit log

Usage:
  perimeter backup create -c perimeter.yaml [--output FILE] [--json]
      Archive backup.dataDirectory and a consistent snapshot of audit.path, encrypted to backup.recipients (age
      public keys), as backup.directory/<name>-<UTC time>.tar.age; then keep the newest backup.keep archives.
  perimeter backup verify [ARCHIVE] [-c perimeter.yaml] [-i IDENTITY] [--public-key FILE]... [--scratch DIR] [--json]
      Restore ARCHIVE (default: the newest in backup.directory) into a temporary directory, check every file
      against the manifest inside it and the audit log's hash chain, then remove the copy.
  perimeter backup restore ARCHIVE [-c perimeter.yaml] [-i IDENTITY] [--data-dir DIR] [--audit-db FILE] [--force]
      Restore into backup.dataDirectory and audit.path (or the directories given). Existing data is refused
      without --force; with it, it is moved aside to <path>.replaced-<time>. Stop the agent and perimeter first.
  perimeter backup list -c perimeter.yaml
      The archives in backup.directory, newest first.

-i IDENTITY is an age identity file (age-keygen -o FILE), default backup.identityFile; keep it off this host.
Its content is never printed. Archives open with the age tool too: age -d -i IDENTITY ARCHIVE | tar -t
Exit codes: 0 ok; 1 backup failed or archive refused; 2 usage or config error, or restore without --force.
`;

function backupSection(config: PerimeterConfig, command: string): NonNullable<PerimeterConfig["backup"]> {
  if (config.backup === undefined) {
    throw new UsageError(`backup ${command}: the config has no backup: section; add one with dataDirectory, directory and recipients (see docs/backup.md)`);
  }
  return config.backup;
}

function loadOptional(values: { config?: string }, io: CommandIo): PerimeterConfig | undefined {
  return values.config === undefined ? undefined : loadConfig(resolve(io.cwd, values.config));
}

async function identities(values: { identity?: string }, config: PerimeterConfig | undefined, io: CommandIo, command: string): Promise<string[]> {
  const file = values.identity ?? config?.backup?.identityFile;
  if (file === undefined) throw new UsageError(`backup ${command}: pass the age identity that opens the archive with -i FILE, or set backup.identityFile`);
  return readIdentityFile(resolve(io.cwd, file));
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

async function createCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseCommandArgs("backup create", args, { config: { type: "string", short: "c" }, output: { type: "string", short: "o" }, json: { type: "boolean" } });
  if (values.config === undefined) throw new UsageError("backup create: pass the config with -c perimeter.yaml (its backup: section says what to back up and to whom)");
  const config = loadConfig(resolve(io.cwd, values.config));
  const section = backupSection(config, "create");
  const result = await createBackup({
    name: config.name,
    dataDirectory: section.dataDirectory,
    directory: section.directory,
    recipients: section.recipients,
    keep: section.keep,
    ...(section.auditLog ? { auditPath: resolve(io.cwd, config.audit.path) } : {}),
    ...(values.output === undefined ? {} : { output: resolve(io.cwd, values.output) }),
  });
  if (values.json === true) {
    writeLine(io.stdout, JSON.stringify(result));
    return EXIT_OK;
  }
  writeLine(
    io.stdout,
    `backup ${result.archive}: ${size(result.archiveBytes)}, ${result.files} files (${size(result.bytes)}), ${result.directories} directories, ${result.symlinks} links${result.audit === null ? "" : `, audit log to record ${result.audit.records}`}, in ${(result.milliseconds / 1000).toFixed(1)} s`,
  );
  for (const skipped of result.skipped) writeLine(io.stderr, `note: left out ${skipped.path}: ${skipped.reason}`);
  for (const removed of result.removed) writeLine(io.stdout, `removed ${removed} (backup.keep: ${section.keep})`);
  return EXIT_OK;
}

async function verifyCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    "backup verify",
    args,
    { config: { type: "string", short: "c" }, identity: { type: "string", short: "i" }, "public-key": { type: "string", multiple: true }, scratch: { type: "string" }, json: { type: "boolean" } },
    true,
  );
  if (positionals.length > 1) throw new UsageError("backup verify: name one archive");
  const config = loadOptional(values, io);
  let archive = positionals[0] === undefined ? undefined : resolve(io.cwd, positionals[0]);
  if (archive === undefined) {
    if (config === undefined) throw new UsageError("backup verify: name the archive, or pass -c perimeter.yaml to verify the newest in backup.directory");
    const section = backupSection(config, "verify");
    archive = (await listArchives(section.directory, config.name))[0];
    if (archive === undefined) throw new BackupError(`no archive ${config.name}-<time>.tar.age in ${section.directory}; run perimeter backup create -c ${values.config} first`);
  }
  const keys = await identities(values, config, io, "verify");
  const publicKey = await publicKeys(values["public-key"], io);
  const result = await verifyBackup({ archive, identities: keys, ...(values.scratch === undefined ? {} : { scratch: resolve(io.cwd, values.scratch) }), ...(publicKey === undefined ? {} : { publicKey }) });
  const auditOk = result.audit === null || result.audit.ok;
  if (values.json === true) {
    writeLine(io.stdout, JSON.stringify({ archive: result.archive, ok: auditOk, created: result.info.created, files: result.files, bytes: result.bytes, skipped: result.manifest.skipped, audit: result.audit }));
    return auditOk ? EXIT_OK : EXIT_FINDINGS;
  }
  writeLine(io.stdout, `backup ${result.archive} (made ${result.info.created}): restores, ${result.files} files (${size(result.bytes)}) match the manifest`);
  if (result.audit === null) writeLine(io.stdout, "no audit log in this backup");
  else if (result.audit.ok) writeLine(io.stdout, `audit log: intact, ${result.audit.records} records, head ${result.audit.head.seq}:${result.audit.head.hash}`);
  else writeLine(io.stdout, `audit log: BROKEN at record ${result.audit.firstBrokenSeq}: ${result.audit.reason}`);
  return auditOk ? EXIT_OK : EXIT_FINDINGS;
}

async function publicKeys(files: string[] | undefined, io: CommandIo): Promise<string[] | undefined> {
  if (files === undefined) return undefined;
  const { readFile } = await import("node:fs/promises");
  return Promise.all(
    files.map(async (file) => {
      try {
        return await readFile(resolve(io.cwd, file), "utf8");
      } catch (error) {
        throw new UsageError(`cannot read the public key ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    }),
  );
}

async function restoreCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    "backup restore",
    args,
    {
      config: { type: "string", short: "c" },
      identity: { type: "string", short: "i" },
      "data-dir": { type: "string" },
      "audit-db": { type: "string" },
      "public-key": { type: "string", multiple: true },
      force: { type: "boolean" },
      json: { type: "boolean" },
    },
    true,
  );
  if (positionals.length !== 1) throw new UsageError("backup restore: name the archive to restore (perimeter backup list -c FILE shows them)");
  const config = loadOptional(values, io);
  const dataDirectory = values["data-dir"] ?? config?.backup?.dataDirectory;
  if (dataDirectory === undefined) throw new UsageError("backup restore: say where the data directory goes with --data-dir DIR, or pass -c perimeter.yaml (backup.dataDirectory)");
  const auditFile = values["audit-db"] ?? config?.audit.path;
  const keys = await identities(values, config, io, "restore");
  const publicKey = await publicKeys(values["public-key"], io);
  const result = await restoreBackup({
    archive: resolve(io.cwd, positionals[0] as string),
    identities: keys,
    dataDirectory: resolve(io.cwd, dataDirectory),
    ...(auditFile === undefined ? {} : { auditFile: resolve(io.cwd, auditFile) }),
    force: values.force === true,
    ...(publicKey === undefined ? {} : { publicKey }),
  });
  if (values.json === true) {
    writeLine(io.stdout, JSON.stringify({ dataDirectory: result.dataDirectory, auditFile: result.auditFile, files: result.files, bytes: result.bytes, movedAside: result.movedAside, audit: result.audit }));
    return EXIT_OK;
  }
  writeLine(io.stdout, `restored ${result.files} files (${size(result.bytes)}) into ${result.dataDirectory}${result.auditFile === null ? "" : ` and the audit log into ${result.auditFile}`} from the backup made ${result.info.created}`);
  for (const aside of result.movedAside) writeLine(io.stdout, `the data that was there is now ${aside}; remove it once the restore is checked`);
  writeLine(io.stderr, "note: files belong to the user who ran the restore; chown them to the agent's user (e.g. chown -R hermes: DIR) if that was not it");
  return EXIT_OK;
}

async function listCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseCommandArgs("backup list", args, { config: { type: "string", short: "c" } });
  if (values.config === undefined) throw new UsageError("backup list: pass the config with -c perimeter.yaml");
  const config = loadConfig(resolve(io.cwd, values.config));
  const section = backupSection(config, "list");
  const { stat } = await import("node:fs/promises");
  for (const archive of await listArchives(section.directory, config.name)) writeLine(io.stdout, `${archive}\t${size((await stat(archive)).size)}`);
  return EXIT_OK;
}

const SUBCOMMANDS: Record<string, Command> = { create: createCommand, verify: verifyCommand, restore: restoreCommand, list: listCommand };

export const backupCommand: Command = async (args, io) => {
  const [name, ...rest] = args;
  if (name === undefined) throw new UsageError("backup: name a subcommand: create, verify, restore or list (see perimeter backup --help)");
  if (name === "--help" || name === "-h" || name === "help" || rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const subcommand = SUBCOMMANDS[name];
  if (subcommand === undefined) throw new UsageError(`backup: unknown subcommand "${name}"; use create, verify, restore or list`);
  try {
    return await subcommand(rest, io);
  } catch (error) {
    if (error instanceof RestoreRefusedError) {
      writeLine(io.stderr, `perimeter backup ${name}: ${error.message}`);
      return EXIT_USAGE;
    }
    if (error instanceof ArchiveError || error instanceof BackupError) {
      writeLine(io.stderr, `perimeter backup ${name}: ${error.message}`);
      return EXIT_FINDINGS;
    }
    throw error;
  }
};
