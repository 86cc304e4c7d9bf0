export { createLogger, silentLogger } from "./log.ts";
export type { Logger } from "./log.ts";
