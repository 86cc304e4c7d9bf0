// The state file `perimeter up` keeps beside the audit log for `perimeter status`: which supervisor runs this
// perimeter, its children, where each is probed, and each one's restarts. No secret is ever written here.
import { closeSync, constants, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import type { ServiceName } from "./plan.ts";
import type { ServiceState } from "./supervisor.ts";

export interface UpState {
  readonly version: 1;
  readonly supervisorPid: number;
  readonly configFile: string;
  readonly startedAt: string;
  readonly auditPath: string;
  stoppedAt?: string;
  readonly services: Array<ServiceState & { endpoint: string; healthUrl: string; localUpstreams: readonly string[] }>;
}

export function writeState(path: string, state: UpState): void {
  writeJsonFile(path, state);
}

/**
 * JSON written whole or not at all (a reader never sees half a file: written aside, then renamed over), mode 0600.
 * Not fsynced: both files are rewritten at every start and describe only the running processes, which a crash of
 * the machine ends anyway; an fsync per write held the event loop 5-20 ms on each of the ~10 state changes of a start.
 */
export function writeJsonFile(path: string, value: unknown): void {
  const temporary = `${path}.tmp-${process.pid}`;
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, `${JSON.stringify(value, null, 2)}\n`);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

/** The state, or undefined when there is none (never started here) or it cannot be read as one. */
export function readState(path: string): UpState | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as Partial<UpState>;
    if (parsed.version !== 1 || typeof parsed.supervisorPid !== "number" || !Array.isArray(parsed.services)) return undefined;
    return parsed as UpState;
  } catch {
    return undefined;
  }
}

export type { ServiceName };
