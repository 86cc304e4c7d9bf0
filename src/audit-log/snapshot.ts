// A consistent copy of a live audit log, for backups. Copying the file would not be one: a WAL database is the main
// file plus its -wal, which a writer changes between the two reads. SQLite's online backup copies every page in one
// step, inside one read transaction, so the copy is the log as of one commit while writers go on appending.
import { backup } from "node:sqlite";
import { openForReading } from "./read.ts";

/** All pages in one step: a writer's commit between steps would make SQLite start over, forever on a busy log. */
const ONE_STEP = 2147483647;

/** Writes a consistent copy of the audit log at `path` to `destination` (which must not exist). */
export async function snapshotAuditLog(path: string, destination: string): Promise<void> {
  const database = openForReading(path);
  try {
    await backup(database, destination, { rate: ONE_STEP });
  } finally {
    database.close();
  }
}
