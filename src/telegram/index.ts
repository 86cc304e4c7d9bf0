// What other capabilities may use from telegram/: the approver bot (mcp-guard starts it) and its setup error.
export { createTelegramApprover, TelegramSetupError } from "./approver.ts";
export type { TelegramApprover, TelegramApproverDependencies } from "./approver.ts";
