// Output of `perimeter replay`: text for the operator (one line per call, the reason under each refusal), JSON for
// tools, JUnit XML for CI (a testcase per session; an unmet expectation is a failure). Tool names, reasons and
// arguments come from agents, so terminal control characters are escaped and XML is made well-formed.
import type { CallVerdict, ReplayReport, SessionVerdict } from "./replay.ts";
import { xmlText } from "../shared/index.ts";

export const FORMATS = ["text", "json", "junit"] as const;
export type Format = (typeof FORMATS)[number];

export function formatReport(report: ReplayReport, format: Format): string {
  if (format === "json") return `${JSON.stringify(report, null, 2)}\n`;
  if (format === "junit") return junit(report);
  return text(report);
}

const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/g;
const safe = (value: string): string => value.replace(UNSAFE, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`);

const LABEL: Record<CallVerdict["decision"], string> = { allow: "allow", hold: "HOLD", deny: "DENY", undecided: "????" };

function callLine(call: CallVerdict): string[] {
  const approvers = call.decision === "hold" ? ` (${call.approvers === 1 ? "1 approver" : `${call.approvers} approvers`})` : "";
  const was = call.recorded === undefined ? "" : call.changed === true ? `   [was ${call.recorded.decision}]` : call.changed === false ? "" : `   [recorded: ${call.recorded.decision}]`;
  const lines = [`  ${String(call.index + 1).padStart(3)}  ${LABEL[call.decision]}  ${safe(call.name)}${approvers}${was}`];
  if (call.reason !== undefined) lines.push(`            ${call.stage === undefined ? "" : `${call.stage}: `}${safe(call.reason)}`);
  for (const note of call.notes) lines.push(`            note: ${safe(note)}`);
  return lines;
}

function expectation(session: SessionVerdict): string {
  if (session.expect === undefined) return "";
  return session.met === true ? `, as expected` : `, EXPECTED ${session.expect.toUpperCase()}`;
}

function text(report: ReplayReport): string {
  const lines: string[] = [];
  for (const assumption of report.assumptions) lines.push(`assumes: ${assumption}`);
  for (const session of report.sessions) {
    const agent = session.agent === undefined ? "" : ` (agent ${safe(session.agent)})`;
    lines.push("", `● ${safe(session.id)}${agent}: ${session.outcome.toUpperCase()}${expectation(session)}   [${safe(session.source)}]`);
    for (const call of session.calls) lines.push(...callLine(call));
  }
  const { sessions, calls, expectations, changed } = report.totals;
  lines.push(
    "",
    `sessions: ${sessions.allowed} allowed, ${sessions.held} held, ${sessions.refused} refused, ${sessions.undecided} undecided`,
    `calls: ${calls.allow} allowed, ${calls.hold} held, ${calls.deny} denied, ${calls.undecided} undecided${report.sessions.some((session) => session.calls.some((call) => call.recorded !== undefined)) ? `; ${changed} decided differently than recorded` : ""}`,
  );
  if (expectations.met + expectations.unmet > 0) lines.push(`expectations: ${expectations.met} met, ${expectations.unmet} unmet`);
  return `${lines.join("\n").trimStart()}\n`;
}


function junit(report: ReplayReport): string {
  const bySource = new Map<string, SessionVerdict[]>();
  for (const session of report.sessions) bySource.set(session.source, [...(bySource.get(session.source) ?? []), session]);
  const failures = (sessions: readonly SessionVerdict[]) => sessions.filter((session) => session.met === false).length;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="perimeter replay" tests="${report.sessions.length}" failures="${failures(report.sessions)}" errors="0" skipped="0">`,
  ];
  for (const [source, sessions] of bySource) {
    lines.push(`  <testsuite name="${xmlText(source)}" tests="${sessions.length}" failures="${failures(sessions)}" errors="0" skipped="0">`);
    for (const session of sessions) {
      const detail = session.calls.flatMap(callLine).join("\n");
      lines.push(`    <testcase classname="perimeter.replay" name="${xmlText(session.id)}">`);
      if (session.met === false) {
        lines.push(`      <failure message="${xmlText(`expected ${session.expect ?? ""}, got ${session.outcome}`)}" type="expectation">${xmlText(detail)}</failure>`);
      } else {
        lines.push(`      <system-out>${xmlText(`${session.outcome}${session.expect === undefined ? "" : " (as expected)"}\n${detail}`)}</system-out>`);
      }
      lines.push("    </testcase>");
    }
    lines.push("  </testsuite>");
  }
  lines.push("</testsuites>");
  return `${lines.join("\n")}\n`;
}
