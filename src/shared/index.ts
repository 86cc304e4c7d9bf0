export { createLogger, silentLogger } from "./log.ts";
export { freePort } from "./free-port.ts";
export type { Logger } from "./log.ts";
export { closeAfterAnswerIfBodyUnread, hasUnreadBody, REFUSAL_LINGER_MS, stopReadingBody } from "./refusal.ts";
export { findExecutable } from "./find-executable.ts";
export { sendJson, sendJsonError } from "./json-response.ts";
export { xmlText } from "./xml.ts";
