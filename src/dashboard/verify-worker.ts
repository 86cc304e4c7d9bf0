// Verifies one audit log off the main thread (a million records take seconds; pages must not wait for it).
import { DatabaseSync } from "node:sqlite";
import { parentPort, workerData } from "node:worker_threads";
import { pathToFileURL } from "node:url";
import { verifyAuditLog } from "../audit-log/index.ts";

const { path } = workerData as { path: string };
try {
  const verification = verifyAuditLog(path);
  let lastSigned: { seq: number; time: string } | undefined;
  const url = pathToFileURL(path);
  url.searchParams.set("mode", "ro");
  const database = new DatabaseSync(url, { readOnly: true, timeout: 2000 });
  try {
    const row = database.prepare("SELECT record_seq, time FROM audit_log_checkpoints WHERE signature IS NOT NULL ORDER BY id DESC LIMIT 1").get() as { record_seq: number; time: string } | undefined;
    if (row !== undefined) lastSigned = { seq: Number(row.record_seq), time: String(row.time) };
  } finally {
    database.close();
  }
  parentPort?.postMessage({ ok: true, verification, lastSigned });
} catch (error) {
  parentPort?.postMessage({ ok: false, message: (error as Error).message });
}
