// Shared by the audit-log tests: temporary logs, an attacker's SQLite handle, and an in-process CLI runner.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { DatabaseSync } from "node:sqlite";
import type { CommandIo } from "../cli/index.ts";
import { runCli } from "../cli/main.ts";
import { openAuditLog } from "./index.ts";
import type { AuditLog, AuditLogOptions } from "./index.ts";

export function temporaryDirectory(): string {
  return mkdtempSync(join(tmpdir(), "perimeter-audit-"));
}

/** A closed log of `count` tool-call records with a signing key, in a fresh directory. */
export function writeLog(count: number, options: Partial<AuditLogOptions> = {}): { path: string; keyFile: string; directory: string } {
  const directory = temporaryDirectory();
  const path = join(directory, "audit.db");
  const keyFile = join(directory, "keys", "audit.pem");
  const log: AuditLog = openAuditLog({ path, signingKeyFile: keyFile, checkpointEvery: 5, ...options });
  for (let index = 1; index <= count; index += 1) {
    log.append({ component: "mcp-guard", type: "tool-call", agent: "hermes", tool: `github__get_issue`, marker: `marker-${String(index).padStart(4, "0")}`, decision: "allow" });
  }
  log.close();
  return { path, keyFile, directory };
}

/**
 * What an attacker with write access does: open the file with SQLite, drop the append-only triggers, run SQL.
 * The triggers only stop accidents, so the tests remove them the way an attacker would.
 */
export function tamper(path: string, sql: string | ((database: DatabaseSync) => void)): void {
  const database = new DatabaseSync(path);
  try {
    database.exec(`
      DROP TRIGGER IF EXISTS audit_log_records_no_update; DROP TRIGGER IF EXISTS audit_log_records_no_delete;
      DROP TRIGGER IF EXISTS audit_log_checkpoints_no_update; DROP TRIGGER IF EXISTS audit_log_checkpoints_no_delete;`);
    if (typeof sql === "string") database.exec(sql);
    else sql(database);
  } finally {
    database.close();
  }
}

export function query(path: string, sql: string): Array<Record<string, unknown>> {
  const database = new DatabaseSync(path, { readOnly: true });
  try {
    return database.prepare(sql).all() as Array<Record<string, unknown>>;
  } finally {
    database.close();
  }
}

function collector(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
  return { stream, text: () => text };
}

/** Runs `perimeter ...` in this process through the real dispatcher (so UsageError maps to exit 2 as in main). */
export async function perimeter(args: string[], options: { cwd?: string; signal?: AbortSignal; onOutput?: (stdout: string) => void } = {}) {
  const stdout = collector();
  const stderr = collector();
  if (options.onOutput !== undefined) stdout.stream.on("data", () => options.onOutput?.(stdout.text()));
  const io: CommandIo = {
    stdout: stdout.stream,
    stderr: stderr.stream,
    stdin: new PassThrough(),
    env: {},
    cwd: options.cwd ?? process.cwd(),
    signal: options.signal ?? new AbortController().signal,
    onReload: () => undefined,
  };
  const code = await runCli(args, io);
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}
