// What other capabilities may use from verify/: the command, the probe program and the report format.
export { verifyCommand } from "./cli.ts";
export { PROBE_PROGRAM, parseProbeOutput } from "./probe.ts";
export type { ProbeRequest, ProbeSpec } from "./probe.ts";
export { formatReport } from "./format.ts";
export type { Format, Report } from "./format.ts";
export type { CheckResult, Status, Suite, VerifyTarget } from "./model.ts";
