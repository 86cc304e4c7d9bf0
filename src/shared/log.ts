// Operational logs: JSON lines on stderr (stdout belongs to command output). The audit log is a separate,
// typed stream (src/audit-log); these logs are for operators and must never carry secret values.
import pino from "pino";
import type { Logger } from "pino";

export type { Logger };

export function createLogger(component: string, level: string = "info"): Logger {
  return pino({ name: component, level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: false }));
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
