// Shared by the backup tests: a data directory and audit log to back up, an age identity, the CLI run in-process,
// a tree snapshot to compare restores with, and an attacker's archive writer (it needs only the PUBLIC key).
import { createHash } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createWriteStream } from "node:fs";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { openAuditLog } from "../audit-log/index.ts";
import type { CommandIo } from "../cli/index.ts";
import { runCli } from "../cli/main.ts";
import { createEncryptStream } from "./age-stream.ts";
import { END_OF_ARCHIVE, encodeHeader, padding } from "./tar.ts";

export interface Fixture {
  root: string;
  data: string;
  auditPath: string;
  backups: string;
  identityFile: string;
  identity: string;
  recipient: string;
  config: string;
}

/** A data directory shaped like ~/.hermes (secrets, sessions, a 300 KB file, links, an empty dir), an audit log, a key. */
export async function makeFixture(options: { records?: number; keep?: number } = {}): Promise<Fixture> {
  const root = mkdtempSync(join(tmpdir(), "perimeter-backup-"));
  const data = join(root, "home", ".hermes");
  mkdirSync(join(data, "sessions", "2026"), { recursive: true });
  mkdirSync(join(data, "skills", "empty"), { recursive: true });
  chmodSync(data, 0o700);
  writeFileSync(join(data, ".env"), "TELEGRAM_BOT_TOKEN=123:abc\n", { mode: 0o600 });
  writeFileSync(join(data, "config.yaml"), "approvals:\n  mode: manual\n", { mode: 0o640 });
  const big = Buffer.alloc(300_000);
  for (let index = 0; index < big.length; index += 1) big[index] = (index * 7919) % 251;
  writeFileSync(join(data, "sessions", "2026", "session.jsonl"), big);
  writeFileSync(join(data, "sessions", `${"long-name-".repeat(15)}.json`), "{}\n");
  writeFileSync(join(data, "sessions", "mémoire ✓.md"), "unicode\n");
  writeFileSync(join(data, "empty-file"), "");
  symlinkSync("../config.yaml", join(data, "skills", "config-link"));
  symlinkSync("/etc/hostname", join(data, "absolute-link"));
  const auditPath = join(root, "perimeter", "audit.db");
  mkdirSync(join(root, "perimeter"));
  const log = openAuditLog({ path: auditPath, signingKeyFile: join(root, "perimeter", "audit.pem"), checkpointEvery: 10 });
  for (let index = 0; index < (options.records ?? 25); index += 1) log.append({ component: "mcp-guard", type: "tool-call", agent: "hermes", tool: "github__get_issue", decision: "allow" });
  log.close();
  const identity = await generateIdentity();
  const recipient = await identityToRecipient(identity);
  const identityFile = join(root, "keys", "backup.key");
  mkdirSync(join(root, "keys"), { mode: 0o700 });
  writeFileSync(identityFile, `# created: test\n# public key: ${recipient}\n${identity}\n`, { mode: 0o600 });
  const backups = join(root, "backups");
  const config = join(root, "perimeter.yaml");
  writeFileSync(
    config,
    [
      "version: 1",
      "name: hermes",
      "audit:",
      `  path: ${auditPath}`,
      "backup:",
      `  dataDirectory: ${data}`,
      `  directory: ${backups}`,
      `  recipients: [${recipient}]`,
      `  identityFile: ${identityFile}`,
      `  keep: ${options.keep ?? 3}`,
      "",
    ].join("\n"),
  );
  return { root, data, auditPath, backups, identityFile, identity, recipient, config };
}

function collector(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
  return { stream, text: () => text };
}

/** `perimeter ...` in this process through the real dispatcher (exit codes as main maps them). */
export async function perimeter(args: string[], cwd = process.cwd()): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = collector();
  const stderr = collector();
  const io: CommandIo = {
    stdout: stdout.stream,
    stderr: stderr.stream,
    stdin: new PassThrough(),
    env: {},
    cwd,
    signal: new AbortController().signal,
    onReload: () => undefined,
  };
  const code = await runCli(args, io);
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** The newest archive in a directory. */
export function onlyArchive(directory: string): string {
  const archives = readdirSync(directory).filter((name) => name.endsWith(".tar.age")).sort();
  const last = archives.at(-1);
  if (last === undefined) throw new Error(`no archive in ${directory}`);
  return join(directory, last);
}

/** Type, permission bits, content hash or link target of everything below `root`, keyed by relative path. */
export function tree(root: string): Record<string, string> {
  const result: Record<string, string> = {};
  const visit = (directory: string, prefix: string) => {
    for (const name of readdirSync(directory).sort()) {
      const path = join(directory, name);
      const key = prefix === "" ? name : `${prefix}/${name}`;
      const status = lstatSync(path);
      if (status.isSymbolicLink()) result[key] = `link -> ${readlinkSync(path)}`;
      else if (status.isDirectory()) {
        result[key] = `dir ${(status.mode & 0o777).toString(8)}`;
        visit(path, key);
      } else result[key] = `file ${(status.mode & 0o777).toString(8)} ${createHash("sha256").update(readFileSync(path)).digest("hex")}`;
    }
  };
  visit(root, "");
  return result;
}

export interface CraftedEntry {
  name: string;
  /** A tar typeflag: "0" file, "1" hard link, "2" symlink, "3" char device, "4" block device, "5" directory, "6" FIFO. */
  typeflag: string;
  content?: string;
  linkname?: string;
  mode?: number;
  /** A pax `path` record that overrides the ustar name, as some extractors honour. */
  paxPath?: string;
}

function rawHeader(entry: CraftedEntry, size: number): Buffer {
  const type = entry.typeflag === "5" ? "directory" : entry.typeflag === "2" ? "symlink" : "file";
  const block = encodeHeader({ name: entry.name, type, mode: entry.mode ?? 0o644, mtime: 1_700_000_000, size, ...(entry.linkname === undefined ? {} : { linkname: entry.linkname }) });
  // encodeHeader writes only the three types backups use; an attacker writes any typeflag.
  const main = block.subarray(block.length - 512);
  main.write(entry.typeflag, 156, 1, "latin1");
  main.write("        ", 148, 8, "latin1");
  let checksum = 0;
  for (const byte of main) checksum += byte;
  main.write(checksum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return block;
}

function paxHeader(path: string): Buffer {
  const body = ` path=${path}\n`;
  let length = body.length + 2;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  const record = Buffer.from(`${length}${body}`);
  const block = rawHeader({ name: "PaxHeader", typeflag: "x" }, record.length);
  return Buffer.concat([block, record, padding(record.length)]);
}

/** A tar stream of exactly these entries, each followed by its content. */
export function craftTar(entries: CraftedEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const content = Buffer.from(entry.content ?? "");
    if (entry.paxPath !== undefined) parts.push(paxHeader(entry.paxPath));
    parts.push(rawHeader(entry, entry.typeflag === "0" ? content.length : 0));
    if (entry.typeflag === "0") parts.push(content, padding(content.length));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** What anyone holding a recipient's public key can do: encrypt any bytes into a well-formed age archive. */
export async function encryptToFile(recipient: string, plaintext: Buffer, file: string): Promise<void> {
  await pipeline(Readable.from([plaintext]), await createEncryptStream([recipient]), createWriteStream(file));
}

/** A valid backup.json, so an attack gets past the first entry. */
export function infoEntry(): CraftedEntry {
  const info = { format: "perimeter-backup", version: 1, created: "2026-06-26T00:00:00.000Z", name: "hermes", dataDirectory: "/var/lib/hermes/.hermes", auditLog: null };
  return { name: "backup.json", typeflag: "0", content: JSON.stringify(info), mode: 0o600 };
}
