// Output formats of `perimeter check`: text for people, versioned JSON, SARIF 2.1.0 for code scanning, JUnit XML
// for CI dashboards. Each is a pure function of the result.
import type { CheckReport, CheckFinding, RuleDefinition, Severity } from "./model.ts";
import { severityRank } from "./model.ts";
import { RULES, ruleById } from "./rules.ts";
import { xmlText } from "../shared/index.ts";

export const JSON_SCHEMA_ID = "https://perimeter.dev/schemas/check-result/v1";
const TOOL_VERSION = "0.1.0";

export function counts(result: CheckReport, failOn: Severity): { failing: number; suppressed: number; expired: number } {
  let failing = 0;
  let suppressed = 0;
  let expired = 0;
  for (const finding of result.findings) {
    if (finding.suppression !== undefined) suppressed += 1;
    else if (severityRank(finding.severity) >= severityRank(failOn)) failing += 1;
    if (finding.expiredSuppression !== undefined) expired += 1;
  }
  return { failing, suppressed, expired };
}

// --- text -------------------------------------------------------------------------------------------------------

const COLOURS: Record<Severity | "dim" | "bold" | "reset", string> = { critical: "\u001b[1;31m", high: "\u001b[31m", medium: "\u001b[33m", low: "\u001b[36m", dim: "\u001b[2m", bold: "\u001b[1m", reset: "\u001b[0m" };

export function formatText(result: CheckReport, options: { colour: boolean; failOn: Severity }): string {
  const paint = (style: keyof typeof COLOURS, text: string) => (options.colour ? `${COLOURS[style]}${text}${COLOURS.reset}` : text);
  const lines: string[] = [];
  for (const error of result.errors) lines.push(`${paint("bold", `${error.location.file}:${error.location.line}:${error.location.column}`)}: ${paint("critical", "error")}: ${error.message}`);
  if (result.errors.length > 0) lines.push("");
  const byFile = new Map<string, CheckFinding[]>();
  for (const finding of result.findings) {
    const list = byFile.get(finding.location.file) ?? [];
    list.push(finding);
    byFile.set(finding.location.file, list);
  }
  for (const [file, findings] of byFile) {
    lines.push(paint("bold", file));
    for (const finding of findings) {
      const where = `${finding.location.line}:${finding.location.column}`.padEnd(8);
      const severity = paint(finding.severity, finding.severity.padEnd(9));
      const head = `  ${where}${severity}${finding.ruleId}  ${finding.message}  ${paint("dim", `[${finding.subject}]`)}`;
      if (finding.suppression !== undefined) {
        const until = finding.suppression.until === undefined ? "" : ` until ${finding.suppression.until}`;
        lines.push(paint("dim", `${head.replace(/\u001b\[[0-9;]*m/g, "")}  (suppressed by ${finding.suppression.kind}: ${finding.suppression.reason}${until})`));
      } else {
        lines.push(head);
        if (finding.expiredSuppression !== undefined) lines.push(`          ${paint("medium", `suppression expired on ${finding.expiredSuppression.until ?? "?"}: ${finding.expiredSuppression.reason}`)}`);
      }
    }
    lines.push("");
  }
  const summary = counts(result, options.failOn);
  const bySeverity = (["critical", "high", "medium", "low"] as const)
    .map((severity) => [severity, result.findings.filter((finding) => finding.severity === severity && finding.suppression === undefined).length] as const)
    .filter(([, count]) => count > 0)
    .map(([severity, count]) => paint(severity, `${count} ${severity}`));
  const active = result.findings.length - summary.suppressed;
  lines.push(
    `${result.inputs.length} input(s) checked: ${active === 0 ? "no findings" : `${active} finding(s) (${bySeverity.join(", ")})`}` +
      `${summary.suppressed > 0 ? `, ${summary.suppressed} suppressed` : ""}${result.errors.length > 0 ? `, ${result.errors.length} error(s)` : ""}` +
      `${summary.failing > 0 ? `; ${summary.failing} at or above ${options.failOn}` : ""}`,
  );
  if (result.skipped.length > 0) {
    lines.push(paint("dim", `not checked (${result.skipped.length}):`));
    for (const skipped of result.skipped) lines.push(paint("dim", `  ${skipped.file}: ${skipped.reason}`));
  }
  return `${lines.join("\n")}\n`;
}

// --- JSON -------------------------------------------------------------------------------------------------------

export function formatJson(result: CheckReport, failOn: Severity): string {
  const summary = counts(result, failOn);
  return `${JSON.stringify(
    {
      $schema: JSON_SCHEMA_ID,
      version: 1,
      tool: { name: "perimeter", version: TOOL_VERSION },
      failOn,
      summary: { inputs: result.inputs.length, findings: result.findings.length, failing: summary.failing, suppressed: summary.suppressed, expiredSuppressions: summary.expired, errors: result.errors.length },
      findings: result.findings.map((finding) => ({
        rule: finding.ruleId,
        severity: finding.severity,
        title: ruleById(finding.ruleId)?.title,
        message: finding.message,
        file: finding.location.file,
        line: finding.location.line,
        column: finding.location.column,
        subject: finding.subject,
        path: finding.path,
        fingerprint: finding.fingerprint,
        suppression: finding.suppression ?? null,
        expiredSuppression: finding.expiredSuppression ?? null,
      })),
      errors: result.errors.map((error) => ({ file: error.location.file, line: error.location.line, column: error.location.column, message: error.message })),
      inputs: result.inputs,
      skipped: result.skipped,
    },
    null,
    2,
  )}\n`;
}

// --- SARIF 2.1.0 ------------------------------------------------------------------------------------------------

const SECURITY_SEVERITY: Record<Severity, string> = { critical: "9.5", high: "8.0", medium: "5.5", low: "3.0" };
const LEVEL: Record<Severity, "error" | "warning" | "note"> = { critical: "error", high: "error", medium: "warning", low: "note" };

function ruleHelpMarkdown(definition: RuleDefinition): string {
  return `**${definition.title}** (${definition.severity})\n\n${definition.rationale}\n\n**Fix:** ${definition.remediation}\n\n\`\`\`yaml\n${definition.fix.trimEnd()}\n\`\`\`\n`;
}

/** SARIF artifact locations: relative to %SRCROOT% (the working directory) when inside it, else a file: URI. */
function artifactLocation(file: string): { uri: string; uriBaseId?: string } {
  const encoded = file.split(/[\\/]/).map((segment) => encodeURIComponent(segment)).join("/");
  return file.startsWith("/") ? { uri: `file://${encoded}` } : { uri: encoded, uriBaseId: "%SRCROOT%" };
}

export function formatSarif(result: CheckReport): string {
  const rules = RULES.map((definition) => ({
    id: definition.id,
    name: definition.id.toLowerCase().replace(/(^|-)([a-z0-9])/g, (_match, _dash: string, letter: string) => letter.toUpperCase()),
    shortDescription: { text: definition.title },
    fullDescription: { text: definition.rationale },
    help: { text: `${definition.remediation}\n\n${definition.fix}`, markdown: ruleHelpMarkdown(definition) },
    defaultConfiguration: { level: LEVEL[definition.severity] },
    properties: { "security-severity": SECURITY_SEVERITY[definition.severity], precision: "high", tags: ["security", definition.family.toLowerCase()], problem: { severity: definition.severity === "low" ? "recommendation" : definition.severity === "medium" ? "warning" : "error" } },
  }));
  const index = new Map(RULES.map((definition, position) => [definition.id, position]));
  const results = result.findings.map((finding) => ({
    ruleId: finding.ruleId,
    ruleIndex: index.get(finding.ruleId) ?? 0,
    level: LEVEL[finding.severity],
    message: { text: `${finding.message} [${finding.subject}]` },
    locations: [
      {
        physicalLocation: {
          artifactLocation: artifactLocation(finding.location.file),
          region: { startLine: Math.max(1, finding.location.line), startColumn: Math.max(1, finding.location.column) },
        },
        logicalLocations: [{ name: finding.subject, fullyQualifiedName: finding.path === "" ? finding.subject : `${finding.subject}:${finding.path}` }],
      },
    ],
    partialFingerprints: { "perimeterFinding/v1": finding.fingerprint },
    ...(finding.suppression !== undefined
      ? { suppressions: [{ kind: finding.suppression.kind === "baseline" ? "external" : "inSource", status: "accepted", justification: `${finding.suppression.reason}${finding.suppression.until === undefined ? "" : ` (until ${finding.suppression.until})`}` }] }
      : {}),
    properties: { severity: finding.severity, ...(finding.expiredSuppression !== undefined ? { expiredSuppression: finding.expiredSuppression.until } : {}) },
  }));
  const sarif = {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0",
    runs: [
      {
        tool: { driver: { name: "perimeter", semanticVersion: TOOL_VERSION, version: TOOL_VERSION, rules } },
        originalUriBaseIds: { "%SRCROOT%": { description: { text: "The directory perimeter check ran in." } } },
        invocations: [
          {
            executionSuccessful: result.errors.length === 0,
            toolExecutionNotifications: result.errors.map((error) => ({
              level: "error",
              message: { text: error.message },
              locations: [{ physicalLocation: { artifactLocation: artifactLocation(error.location.file), region: { startLine: Math.max(1, error.location.line), startColumn: Math.max(1, error.location.column) } } }],
            })),
          },
        ],
        results,
      },
    ],
  };
  return `${JSON.stringify(sarif, null, 2)}\n`;
}

// --- JUnit XML --------------------------------------------------------------------------------------------------


export function formatJunit(result: CheckReport, failOn: Severity): string {
  const files = new Set<string>([...result.inputs.map((input) => input.file.replace(/ \(.*\)$/, "")), ...result.findings.map((finding) => finding.location.file), ...result.errors.map((error) => error.location.file)]);
  const suites: string[] = [];
  let totalTests = 0;
  let totalFailures = 0;
  let totalErrors = 0;
  let totalSkipped = 0;
  for (const file of [...files].sort()) {
    const cases: string[] = [];
    let failures = 0;
    let skipped = 0;
    const errors = result.errors.filter((error) => error.location.file === file);
    for (const error of errors) cases.push(`    <testcase classname="${xmlText(file)}" name="${xmlText(`parse ${file}:${error.location.line}`)}"><error message="${xmlText(error.message)}" type="input-error">${xmlText(`${file}:${error.location.line}:${error.location.column}: ${error.message}`)}</error></testcase>`);
    for (const finding of result.findings.filter((candidate) => candidate.location.file === file)) {
      const name = xmlText(`${finding.ruleId} ${finding.subject} ${finding.path}`.trim());
      const body = xmlText(`${file}:${finding.location.line}:${finding.location.column}: ${finding.severity}: ${finding.message}\n${ruleById(finding.ruleId)?.remediation ?? ""}`);
      if (finding.suppression !== undefined) {
        skipped += 1;
        cases.push(`    <testcase classname="${xmlText(file)}" name="${name}"><skipped message="${xmlText(`suppressed by ${finding.suppression.kind}: ${finding.suppression.reason}`)}"/></testcase>`);
      } else if (severityRank(finding.severity) >= severityRank(failOn)) {
        failures += 1;
        cases.push(`    <testcase classname="${xmlText(file)}" name="${name}"><failure message="${xmlText(finding.message)}" type="${finding.severity}">${body}</failure></testcase>`);
      } else {
        cases.push(`    <testcase classname="${xmlText(file)}" name="${name}"><system-out>${body}</system-out></testcase>`);
      }
    }
    if (cases.length === 0) cases.push(`    <testcase classname="${xmlText(file)}" name="no findings"/>`);
    totalTests += cases.length;
    totalFailures += failures;
    totalErrors += errors.length;
    totalSkipped += skipped;
    suites.push(`  <testsuite name="${xmlText(file)}" tests="${cases.length}" failures="${failures}" errors="${errors.length}" skipped="${skipped}">\n${cases.join("\n")}\n  </testsuite>`);
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="perimeter check" tests="${totalTests}" failures="${totalFailures}" errors="${totalErrors}" skipped="${totalSkipped}">\n${suites.join("\n")}\n</testsuites>\n`;
}

// --- rules ------------------------------------------------------------------------------------------------------

export function formatRuleList(): string {
  const width = Math.max(...RULES.map((definition) => definition.id.length));
  return `${RULES.map((definition) => `${definition.id.padEnd(width)}  ${definition.severity.padEnd(8)}  ${definition.title}`).join("\n")}\n`;
}

export function formatExplanation(definition: RuleDefinition): string {
  return `${definition.id} (${definition.severity}): ${definition.title}\n\nWhy: ${definition.rationale}\n\nFix: ${definition.remediation}\n\n${definition.fix.trimEnd()}\n\nSuppress with a reason: perimeter.dev/ignore: "${definition.id}=REASON until=YYYY-MM-DD" (annotation) or # perimeter:ignore ${definition.id} REASON until=YYYY-MM-DD (comment).\n`;
}
