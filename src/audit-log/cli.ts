// `perimeter audit-log verify|tail|public-key`: the operator's view of the audit log. Output for people by default,
// --json for machines. Record fields come from agents and upstreams, so every value printed to a terminal is escaped
// (control characters, C1 escapes, bidirectional overrides) before it reaches stdout.
import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command, CommandIo } from "../cli/index.ts";
import { loadConfig } from "../config/index.ts";
import { readAuditRecords } from "./read.ts";
import { parsePublicKey } from "./signing.ts";
import { AuditReadError } from "./types.ts";
import type { AuditRecord } from "./types.ts";
import { verifyAuditLog } from "./verify.ts";

const HELP = `perimeter audit-log — check and read the tamper-evident audit log

Usage:
  perimeter audit-log verify [--db FILE] [--public-key FILE]... [--known-head SEQ:HASH] [-c perimeter.yaml] [--json]
      Exit 0 when intact, 1 naming the first broken record when any record was changed, removed, reordered or
      truncated, 2 when the file is missing or not an audit log. Pass --public-key with a copy of the public key
      kept away from this machine; without it the key recorded in the file is used.
  perimeter audit-log tail [-n N] [--follow] [--json] [--db FILE] [-c perimeter.yaml]
      The newest N records (default 10); --follow keeps printing new ones until interrupted.
  perimeter audit-log public-key [--key FILE] [-c perimeter.yaml]
      Print the public key of the checkpoint signing key (audit.signingKeyFile) for verifiers.

--db defaults to audit.path of the config given with -c.
`;

const FOLLOW_INTERVAL_MS = 250;

// C0/C1 controls, DEL, zero-width and bidirectional formatting characters: anything that could move the cursor,
// recolour the terminal or make one record look like another.
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/g;

/** JSON with terminal-unsafe characters escaped as \uXXXX; still valid JSON. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE_CHARACTERS, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function safeValue(value: unknown): string {
  return typeof value === "string" && /^[\w.:/@+-]+$/.test(value) ? value : safeJson(value);
}

export function formatRecordLine(record: AuditRecord): string {
  const fields = Object.entries(record.data).map(([key, value]) => `${safeValue(key)}=${safeValue(value)}`);
  return [record.time, `#${record.seq}`, safeValue(record.component), safeValue(record.type), ...fields].join(" ");
}

function databasePath(command: string, values: { db?: string; config?: string }, io: CommandIo): string {
  if (values.db !== undefined) return resolve(io.cwd, values.db);
  if (values.config !== undefined) return resolve(io.cwd, loadConfig(resolve(io.cwd, values.config)).audit.path);
  throw new UsageError(`audit-log ${command}: name the audit database with --db FILE, or pass the config with -c perimeter.yaml to use its audit.path`);
}

function readKeyFile(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read the ${what} ${file}: ${code === "ENOENT" ? "no such file" : (code ?? (error as Error).message)}`);
  }
}

async function verifyCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseCommandArgs("audit-log verify", args, {
    db: { type: "string" },
    "public-key": { type: "string", multiple: true },
    "known-head": { type: "string" },
    config: { type: "string", short: "c" },
    json: { type: "boolean" },
  });
  const path = databasePath("verify", values, io);
  const publicKey = values["public-key"]?.map((file) => {
    const absolute = resolve(io.cwd, file);
    try {
      return parsePublicKey(readKeyFile(absolute, "public key"), absolute);
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw new UsageError((error as Error).message);
    }
  });
  let knownHead: { seq: number; hash: string } | undefined;
  if (values["known-head"] !== undefined) {
    const match = /^(\d+):([0-9a-f]{64})$/.exec(values["known-head"]);
    if (match === null) throw new UsageError("audit-log verify: --known-head takes SEQ:HASH as printed by an earlier verify (e.g. 1234:9f86d0...)");
    knownHead = { seq: Number(match[1]), hash: match[2] as string };
  }
  let result;
  try {
    result = verifyAuditLog(path, { publicKey, knownHead });
  } catch (error) {
    if (!(error instanceof AuditReadError)) throw error;
    writeLine(io.stderr, `perimeter audit-log verify: ${error.message}`);
    return EXIT_USAGE;
  }
  if (values.json === true) {
    writeLine(io.stdout, safeJson({ path, ...result }));
    return result.ok ? EXIT_OK : EXIT_FINDINGS;
  }
  if (!result.ok) {
    writeLine(io.stdout, `audit log ${path}: BROKEN at record ${result.firstBrokenSeq}: ${result.reason}`);
    return EXIT_FINDINGS;
  }
  writeLine(io.stdout, `audit log ${path}: intact, ${result.records} records, ${result.checkpoints} checkpoints, head ${result.head.seq}:${result.head.hash}`);
  if (result.keySource === "none") {
    writeLine(io.stderr, "warning: checkpoints are not signed, so a rewrite of the whole file cannot be detected; set audit.signingKeyFile");
  } else {
    writeLine(io.stdout, `signed by ${result.signedBy.join(", ")}`);
    if (result.keySource === "file") {
      writeLine(io.stderr, "warning: checked against the key recorded in the file; pass --public-key with a copy kept elsewhere to detect a re-signed log");
    }
  }
  if (result.uncheckpointed > 0) {
    writeLine(
      io.stderr,
      `note: ${result.uncheckpointed === 1 ? `record ${result.records} is` : `records ${result.records - result.uncheckpointed + 1}..${result.records} are`} not yet covered by a checkpoint (a writer is running, or stopped without closing); the hash chain protects them`,
    );
  }
  return EXIT_OK;
}

async function tailCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseCommandArgs("audit-log tail", args, {
    lines: { type: "string", short: "n" },
    follow: { type: "boolean", short: "f" },
    json: { type: "boolean" },
    db: { type: "string" },
    config: { type: "string", short: "c" },
  });
  const count = values.lines === undefined ? 10 : Number(values.lines);
  if (!Number.isSafeInteger(count) || count < 0) throw new UsageError(`audit-log tail: -n takes a number of records, not "${values.lines}"`);
  const path = databasePath("tail", values, io);
  const print = (record: AuditRecord) => writeLine(io.stdout, values.json === true ? safeJson(record) : formatRecordLine(record));
  try {
    const initial = readAuditRecords(path, { last: count });
    initial.forEach(print);
    if (values.follow !== true) return EXIT_OK;
    // The newest seq, not the last printed one: with -n 0 following starts at the end.
    let afterSeq = readAuditRecords(path, { last: 1 })[0]?.seq ?? 0;
    while (!io.signal.aborted) {
      await sleep(FOLLOW_INTERVAL_MS, undefined, { signal: io.signal }).catch(() => undefined);
      if (io.signal.aborted) break;
      for (let batch = readAuditRecords(path, { afterSeq }); batch.length > 0; batch = readAuditRecords(path, { afterSeq })) {
        batch.forEach(print);
        afterSeq = batch.at(-1)?.seq ?? afterSeq;
      }
    }
    return EXIT_OK;
  } catch (error) {
    if (!(error instanceof AuditReadError)) throw error;
    writeLine(io.stderr, `perimeter audit-log tail: ${error.message}`);
    return EXIT_USAGE;
  }
}

async function publicKeyCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseCommandArgs("audit-log public-key", args, { key: { type: "string" }, config: { type: "string", short: "c" } });
  let file: string;
  if (values.key !== undefined) file = resolve(io.cwd, values.key);
  else if (values.config !== undefined) {
    const configured = loadConfig(resolve(io.cwd, values.config)).audit.signingKeyFile;
    if (configured === undefined) throw new UsageError("audit-log public-key: the config sets no audit.signingKeyFile; add one so checkpoints are signed");
    file = resolve(io.cwd, configured);
  } else throw new UsageError("audit-log public-key: pass the signing key with --key FILE, or the config with -c perimeter.yaml (audit.signingKeyFile)");
  const text = readKeyFile(file, "signing key");
  try {
    const pem = text.includes("PRIVATE KEY") ? createPublicKey(createPrivateKey(text)).export({ format: "pem", type: "spki" }).toString() : text.trim() + "\n";
    writeLine(io.stdout, parsePublicKey(pem, file));
    io.stdout.write(pem);
  } catch (error) {
    throw new UsageError(`audit-log public-key: ${(error as Error).message}`);
  }
  return EXIT_OK;
}

const SUBCOMMANDS: Record<string, Command> = { verify: verifyCommand, tail: tailCommand, "public-key": publicKeyCommand };

export const auditLogCommand: Command = async (args, io) => {
  const [name, ...rest] = args;
  if (name === undefined) throw new UsageError("audit-log: name a subcommand: verify, tail or public-key (see perimeter audit-log --help)");
  if (name === "--help" || name === "-h" || name === "help" || rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const subcommand = SUBCOMMANDS[name];
  if (subcommand === undefined) throw new UsageError(`audit-log: unknown subcommand "${name}"; use verify, tail or public-key`);
  return subcommand(rest, io);
};
