// Public API of backup/: encrypted backups of the agent's data directory and the audit log — the command, and
// create / verify / restore for callers that drive them directly. Other folders import only from here.
export { backupCommand } from "./cli.ts";
export { createBackup, restoreBackup, verifyBackup, RestoreRefusedError } from "./backup.ts";
export type { CreateBackupOptions, CreateBackupResult, RestoreBackupOptions, RestoreBackupResult, VerifyBackupOptions, VerifyBackupResult } from "./backup.ts";
