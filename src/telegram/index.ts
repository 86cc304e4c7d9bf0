// Public API of telegram/: other folders import only from here (the approver bot mcp-guard starts, its setup error).
export { createTelegramApprover, TelegramSetupError } from "./approver.ts";
export type { TelegramApprover, TelegramApproverDependencies } from "./approver.ts";
