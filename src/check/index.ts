// Public API of check/: other folders import only from here (the CLI loads cli.ts lazily by dynamic import). The
// engine, the rule registry and the output formats.
export { runCheck, displayPath } from "./check.ts";
export type { CheckOptions } from "./check.ts";
export { RULES, ruleById, ruleIds } from "./rules.ts";
export { formatText, formatJson, formatSarif, formatJunit, formatRuleList, formatExplanation } from "./format.ts";
export { SEVERITIES, severityRank, isSeverity } from "./model.ts";
export type { CheckReport, CheckError, CheckFinding, RuleDefinition, Severity, SourceLocation, Suppression, InputKind } from "./model.ts";
