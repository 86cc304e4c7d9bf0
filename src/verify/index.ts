// What other capabilities may use from verify/: the command, the probe program and the report format.
export { verifyCommand } from "./cli.ts";
export { PROBE_PROGRAM, parseProbeOutput } from "./probe.ts";
export type { ProbeRequest, ProbeSpec } from "./probe.ts";
export { formatReport } from "./format.ts";
// `perimeter host apply` ends with the same check of the agent unit's IP filter.
export { agentIpFilterCheck, firewallHoldsAgent } from "./ip-filter.ts";
export type { Format, Report } from "./format.ts";
export type { CheckResult, Status, Suite, VerifyTarget } from "./model.ts";
