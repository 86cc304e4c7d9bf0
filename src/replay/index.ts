// What other capabilities (and the AgentDojo benchmark) may use from replay/: the trace format, the replay, reports.
export { EXPECTATIONS, TraceError, parseTrace, readTraceFile } from "./trace.ts";
export type { Expectation, TraceCall, TraceSession } from "./trace.ts";
export { ReplaySetupError, createReplayer, replaySessions, sessionOutcome } from "./replay.ts";
export type { CallOutcome, CallVerdict, Replayer, ReplayOptions, ReplayReport, SessionOutcome, SessionVerdict } from "./replay.ts";
export { sessionsFromAudit } from "./audit.ts";
export type { AuditReplayOptions } from "./audit.ts";
export { FORMATS, formatReport } from "./report.ts";
export type { Format } from "./report.ts";
export { replayCommand } from "./cli.ts";
