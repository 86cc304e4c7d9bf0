// What other capabilities may use from approvals/: the store, its admin HTTP API and the API's client.
export { createApprovalStore, newApprovalId, ApprovalStateError } from "./store.ts";
export type { Approval, ApprovalChannel, ApprovalEvent, ApprovalKind, ApprovalStateCode, ApprovalStatus, ApprovalStore, ApprovalVote, AuditAppender, CallBinding, Decision, JsonValue, NewApproval } from "./store.ts";
export { createApprovalsApi } from "./api.ts";
export type { ApprovalsApiOptions } from "./api.ts";
export { createApprovalsClient, ApprovalsApiError } from "./client.ts";
export type { ApprovalsClient } from "./client.ts";
export { createApprovalAnnouncer, announcement } from "./announce.ts";
export type { Announcer, AnnouncerOptions } from "./announce.ts";
