// The audit log: what other capabilities may use. Every service opens one with openAuditLog and appends a record
// before letting a decision take effect; a thrown AuditWriteError means "refuse the operation".
export { openAuditLog } from "./writer.ts";
export { AUDIT_COMPONENTS, AuditWriteError, AuditReadError } from "./types.ts";
export type { AuditComponent, AuditEventInput, AuditRecord, AuditLog, AuditLogOptions } from "./types.ts";
