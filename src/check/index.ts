// What other capabilities may use from check/: the engine, the rule registry and the output formats.
export { runCheck, displayPath } from "./check.ts";
export type { CheckOptions } from "./check.ts";
export { RULES, ruleById, ruleIds } from "./rules.ts";
export { formatText, formatJson, formatSarif, formatJunit, formatRuleList, formatExplanation } from "./format.ts";
export { SEVERITIES, severityRank, isSeverity } from "./model.ts";
export type { CheckResult, CheckError, Finding, RuleDefinition, Severity, SourceLocation, Suppression, InputKind } from "./model.ts";
