// Public API of approvals/: other folders import only from here (the store, its admin HTTP API, the API client and
// the announcer).
export { createApprovalStore, newApprovalId, ApprovalStateError } from "./store.ts";
export type { Approval, ApprovalChannel, ApprovalEvent, ApprovalKind, ApprovalStateCode, ApprovalStatus, ApprovalStore, ApprovalVote, AuditAppender, ApprovalDecision, CallBinding, JsonValue, NewApproval } from "./store.ts";
export { createApprovalsApi } from "./api.ts";
export type { ApprovalsApiOptions } from "./api.ts";
export { createApprovalsClient, ApprovalsApiError } from "./client.ts";
export type { ApprovalsClient } from "./client.ts";
export { createApprovalAnnouncer, announcement } from "./announce.ts";
export type { Announcer, AnnouncerOptions } from "./announce.ts";
