// Output of `perimeter verify`: text for an operator (seed 003's PASS/WARN/FAIL lines with the fix under each
// FAIL), JSON for tools, JUnit XML for CI (one testcase per check; FAIL is a failure, SKIP is skipped, WARN passes
// with its evidence in system-out).
import type { CheckResult, Suite } from "./model.ts";
import { xmlText } from "../shared/index.ts";

export type Format = "text" | "json" | "junit";

export interface Report {
  readonly target: string;
  /** Where the agent-side probes ran, e.g. "inside pod hermes-system/hermes-gateway (kubectl exec)". */
  readonly vantage: string;
  readonly notes: readonly string[];
  readonly results: readonly CheckResult[];
  readonly seconds: number;
}

export function formatReport(report: Report, format: Format): string {
  if (format === "json") return `${JSON.stringify(report, null, 2)}\n`;
  if (format === "junit") return junit(report);
  return text(report);
}

function text(report: Report): string {
  const lines = [`perimeter verify -t ${report.target}: agent-side probes ${report.vantage}`];
  for (const note of report.notes) lines.push(`note: ${note}`);
  let suite: Suite | undefined;
  for (const result of report.results) {
    if (result.suite !== suite) {
      suite = result.suite;
      lines.push("", `● ${suite}`);
    }
    lines.push(`  ${result.status.padEnd(4)}  ${result.id}  ${result.evidence}`);
    if (result.fix !== undefined && (result.status === "FAIL" || result.status === "WARN")) lines.push(`        fix: ${result.fix}`);
  }
  const count = (status: string) => report.results.filter((result) => result.status === status).length;
  lines.push("", `${count("PASS")} passed, ${count("WARN")} warnings, ${count("FAIL")} failed, ${count("SKIP")} skipped in ${report.seconds.toFixed(1)} s`);
  return `${lines.join("\n")}\n`;
}


function junit(report: Report): string {
  const suites = new Map<Suite, CheckResult[]>();
  for (const result of report.results) suites.set(result.suite, [...(suites.get(result.suite) ?? []), result]);
  const total = (status: string, results: readonly CheckResult[]) => results.filter((result) => result.status === status).length;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="perimeter verify -t ${xmlText(report.target)}" tests="${report.results.length}" failures="${total("FAIL", report.results)}" errors="0" skipped="${total("SKIP", report.results)}" time="${report.seconds.toFixed(3)}">`,
  ];
  for (const [suite, results] of suites) {
    lines.push(`  <testsuite name="${suite}" tests="${results.length}" failures="${total("FAIL", results)}" errors="0" skipped="${total("SKIP", results)}">`);
    for (const result of results) {
      const open = `    <testcase classname="perimeter.verify.${suite}" name="${xmlText(result.id)}" time="${(result.seconds ?? 0).toFixed(3)}"`;
      if (result.status === "PASS") {
        lines.push(`${open}>`, `      <system-out>${xmlText(result.evidence)}</system-out>`, "    </testcase>");
      } else if (result.status === "SKIP") {
        lines.push(`${open}>`, `      <skipped message="${xmlText(result.evidence)}"/>`, "    </testcase>");
      } else if (result.status === "WARN") {
        lines.push(`${open}>`, `      <system-out>${xmlText(`WARN ${result.evidence}${result.fix === undefined ? "" : ` — fix: ${result.fix}`}`)}</system-out>`, "    </testcase>");
      } else {
        lines.push(
          `${open}>`,
          `      <failure message="${xmlText(result.evidence)}" type="FAIL">${xmlText(result.fix === undefined ? result.evidence : `${result.evidence}\nfix: ${result.fix}`)}</failure>`,
          "    </testcase>",
        );
      }
    }
    lines.push("  </testsuite>");
  }
  lines.push("</testsuites>");
  return `${lines.join("\n")}\n`;
}
