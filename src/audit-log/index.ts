// The audit log: what other capabilities may use. Every service opens one with openAuditLog and appends a record
// before letting a decision take effect; a thrown AuditWriteError means "refuse the operation". Readers (the CLI,
// the future dashboard) use readAuditRecords and verifyAuditLog, which never write.
export { openAuditLog } from "./writer.ts";
export { createGroupCommitter } from "./group-commit.ts";
export type { AuditCommitted, GroupCommitter } from "./group-commit.ts";
export { createAuditRecorder, recordableEvent } from "./recorder.ts";
export type { AuditRecorder, AuditRecorderOptions, RecorderEvent, RecorderLog, UnrecordableField } from "./recorder.ts";
export { verifyAuditLog, verifyAuditLogInSlices } from "./verify.ts";
export type { AuditVerification, VerifyAuditLogOptions, VerifyInSlicesOptions } from "./verify.ts";
export { readAuditRecords } from "./read.ts";
export { createAuditFeed } from "./feed.ts";
export type { AuditFeedOptions, FeedCheckpoint, FeedPage, FeedRecord } from "./feed.ts";
// For a copy of a log made elsewhere (the dashboard's mirror of a remote service's feed): the same tables.
export { SCHEMA_SQL as AUDIT_SCHEMA_SQL } from "./format.ts";
export { snapshotAuditLog } from "./snapshot.ts";
export type { ReadAuditRecordsOptions } from "./read.ts";
export { AUDIT_COMPONENTS, AuditEventInvalidError, AuditWriteError, AuditReadError } from "./types.ts";
export type { AuditComponent, AuditEventInput, AuditRecord, AuditLog, AuditLogOptions, PreparedAuditEvent } from "./types.ts";
