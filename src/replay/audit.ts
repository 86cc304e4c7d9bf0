// The calls an audit log recorded, as trace sessions (one per agent, in the order they were decided): "what would this
// new policy have done to last week's traffic". The log is third-party input as far as the replay goes (agents chose
// the names and arguments), so it is read defensively: a field of the wrong shape makes the call's arguments unknown,
// never a crash and never a guess.
import { readAuditRecords } from "../audit-log/index.ts";
import type { AuditRecord } from "../audit-log/index.ts";
import { REDACTED } from "../mcp-guard/index.ts";
import type { TraceCall, TraceSession } from "./trace.ts";

const PAGE = 5000;

export interface AuditReplayOptions {
  /** Only this agent's calls. */
  readonly agent?: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The recorder's placeholder for a field the log could not hold as given (src/audit-log/recorder.ts). */
function isPlaceholder(value: Record<string, unknown>): boolean {
  const keys = Object.keys(value).sort().join(",");
  return keys === "bytes,sha256,unrecordable" && typeof value.unrecordable === "string";
}

function holdsRedaction(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === "string" && item.includes(REDACTED)) return true;
    if (Array.isArray(item)) stack.push(...item);
    else if (isRecord(item)) {
      for (const [key, child] of Object.entries(item)) {
        if (key.includes(REDACTED)) return true;
        stack.push(child);
      }
    }
  }
  return false;
}

/** The guard's verdict as recorded, in the replay's terms: a call that waited for a human was held, whatever followed. */
function recordedVerdict(data: Record<string, unknown>): string {
  const waited = typeof data.approvalId === "string";
  if (data.decision === "allow") return waited ? "hold" : "allow";
  if (data.decision === "deny") return waited ? "hold" : "deny";
  if (data.decision === "cancelled") return "hold";
  return typeof data.decision === "string" ? data.decision : "unknown";
}

function callOf(record: AuditRecord): { agent: string; call: TraceCall } | undefined {
  const { data } = record;
  if (typeof data.name !== "string") return undefined;
  const agent = typeof data.agent === "string" ? data.agent : "unknown-agent";
  const recorded = { decision: recordedVerdict(data), ...(typeof data.reason === "string" ? { reason: data.reason } : {}), seq: record.seq };
  const args = data.arguments;
  if (!isRecord(args) || isPlaceholder(args)) {
    const why =
      typeof data.argumentsOmitted === "string"
        ? data.argumentsOmitted
        : isRecord(args) && typeof args.unrecordable === "string"
          ? args.unrecordable
          : "absent from the record";
    return { agent, call: { name: data.name, arguments: {}, argumentsNote: { omitted: why }, recorded } };
  }
  return { agent, call: { name: data.name, arguments: args, ...(holdsRedaction(args) ? { argumentsNote: { redacted: true } } : {}), recorded } };
}

/** Every tool call mcp-guard recorded in the log at `path`, one session per agent. */
export function sessionsFromAudit(path: string, options: AuditReplayOptions = {}): TraceSession[] {
  const byAgent = new Map<string, TraceCall[]>();
  let afterSeq = 0;
  for (;;) {
    const records = readAuditRecords(path, { afterSeq, limit: PAGE });
    for (const record of records) {
      // One "tool-call" record per call holds its final verdict; "tool-dispatch" records only precede allowed ones.
      if (record.component !== "mcp-guard" || record.type !== "tool-call") continue;
      const found = callOf(record);
      if (found === undefined || (options.agent !== undefined && found.agent !== options.agent)) continue;
      const calls = byAgent.get(found.agent) ?? [];
      calls.push(found.call);
      byAgent.set(found.agent, calls);
    }
    if (records.length < PAGE) break;
    afterSeq = records.at(-1)?.seq ?? afterSeq;
  }
  return [...byAgent.entries()].map(([agent, calls]) => ({ id: `audit:${agent}`, agent, source: path, calls }));
}
