// The trace format `perimeter replay` reads: recorded tool calls, in order, grouped into sessions (docs/replay.md).
// Traces are the operator's own files, so they parse strictly: an unknown field or a wrong type is an error naming
// the file, the line (JSONL) or session, and the field.
//
//   .json   { "sessions": [ SESSION, ... ] }   (or a bare array of sessions)
//   .jsonl  one SESSION per line, or one CALL per line carrying "session" (calls group by it, in file order)
//   SESSION { "id", "agent"?, "expect"?: "allowed" | "held" | "refused", "description"?, "calls": [CALL, ...] }
//   CALL    { "server", "tool" } or { "name": "<server>__<tool>" }, with "arguments"? (an object, default {})
import { PerimeterError } from "../shared/index.ts";
import { readFileSync } from "node:fs";
import { z } from "zod";

export const EXPECTATIONS = ["allowed", "held", "refused"] as const;
export type Expectation = (typeof EXPECTATIONS)[number];

export interface TraceCall {
  /** The exposed name the agent called (`<server>__<tool>`). */
  readonly name: string;
  readonly arguments: Record<string, unknown>;
  /**
   * Why the arguments are not the ones the agent sent (replayed from an audit log): not recorded at all, or some
   * values redacted. The replay says what it could and could not decide from them.
   */
  readonly argumentsNote?: { readonly omitted?: string; readonly redacted?: boolean };
  /** What the guard decided when the call was recorded (audit log replays), to show what a policy change would change. */
  readonly recorded?: { readonly decision: string; readonly reason?: string; readonly seq?: number };
}

export interface TraceSession {
  readonly id: string;
  readonly agent?: string;
  readonly expect?: Expectation;
  readonly description?: string;
  /** Where it came from: a trace file or an audit log. */
  readonly source: string;
  readonly calls: readonly TraceCall[];
}

export class TraceError extends PerimeterError {
  constructor(message: string) {
    super("config", message);
  }
}

const callFields = {
  server: z.string().min(1).optional(),
  tool: z.string().min(1).optional(),
  name: z.string().min(1).optional(),
  arguments: z.record(z.string(), z.unknown()).optional(),
};
function namesOneTool(value: { server?: string | undefined; tool?: string | undefined; name?: string | undefined }, context: z.RefinementCtx): void {
  const byParts = value.server !== undefined || value.tool !== undefined;
  if (byParts === (value.name !== undefined) || (byParts && (value.server === undefined || value.tool === undefined))) {
    context.addIssue({ code: "custom", message: 'a call names its tool either as "server" and "tool" or as "name": "<server>__<tool>"' });
  }
}
const expectation = z.enum(EXPECTATIONS, { error: `expect is one of ${EXPECTATIONS.join(", ")}` });
const call = z.strictObject(callFields).superRefine(namesOneTool);
const session = z.strictObject({
  id: z.string().min(1),
  agent: z.string().min(1).optional(),
  expect: expectation.optional(),
  description: z.string().optional(),
  calls: z.array(call).min(1, "a session has at least one call"),
});
const callLine = z
  .strictObject({ ...callFields, session: z.string().min(1), agent: z.string().min(1).optional(), expect: expectation.optional() })
  .superRefine(namesOneTool);
const sessionList = z.array(session);
const document = z.strictObject({ sessions: sessionList });

type ParsedCall = z.infer<typeof call>;

function toCall(parsed: ParsedCall): TraceCall {
  return { name: parsed.name ?? `${parsed.server}__${parsed.tool}`, arguments: parsed.arguments ?? {} };
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length === 0 ? "" : `${issue.path.map(String).join(".")}: `;
      return `${path}${issue.message}`;
    })
    .join("; ");
}

/** Parses one trace file's text; `file` names it in errors and in the sessions' `source`. */
export function parseTrace(text: string, file: string): TraceSession[] {
  const jsonLines = file.endsWith(".jsonl") || file.endsWith(".ndjson");
  const sessions: TraceSession[] = [];
  const seen = new Set<string>();
  const add = (value: TraceSession, where: string) => {
    if (seen.has(value.id)) throw new TraceError(`${where}: session "${value.id}" appears twice; give each session its own id`);
    seen.add(value.id);
    sessions.push(value);
  };
  if (!jsonLines) {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new TraceError(`${file}: not JSON (${(error as Error).message}); a .json trace is { "sessions": [...] }, a .jsonl trace has one session or call per line`);
    }
    // Parsed by its shape, so an error names the field rather than "matches neither form".
    const parsed = Array.isArray(data) ? sessionList.safeParse(data) : document.transform((value) => value.sessions).safeParse(data);
    if (!parsed.success) throw new TraceError(`${file}: ${describeIssues(parsed.error)} (see docs/replay.md for the trace format)`);
    for (const [index, item] of parsed.data.entries()) {
      add({ ...optionalFields(item), id: item.id, source: file, calls: item.calls.map(toCall) }, `${file} session ${index + 1}`);
    }
    return sessions;
  }
  // JSONL: a call line joins the session it names (created at its first line); a session line stands alone.
  const open = new Map<string, { session: TraceSession & { calls: TraceCall[] }; line: number }>();
  for (const [index, line] of text.split("\n").entries()) {
    const where = `${file}:${index + 1}`;
    if (line.trim() === "") continue;
    let data: unknown;
    try {
      data = JSON.parse(line);
    } catch (error) {
      throw new TraceError(`${where}: not JSON (${(error as Error).message})`);
    }
    if (typeof data === "object" && data !== null && !Array.isArray(data) && "calls" in data) {
      const parsed = session.safeParse(data);
      if (!parsed.success) throw new TraceError(`${where}: ${describeIssues(parsed.error)}`);
      if (open.has(parsed.data.id)) throw new TraceError(`${where}: session "${parsed.data.id}" appears twice; give each session its own id`);
      add({ ...optionalFields(parsed.data), id: parsed.data.id, source: file, calls: parsed.data.calls.map(toCall) }, where);
      continue;
    }
    const parsed = callLine.safeParse(data);
    if (!parsed.success) throw new TraceError(`${where}: ${describeIssues(parsed.error)} (a line is a session with "calls" or a call with "session")`);
    const { session: id, agent, expect, ...rest } = parsed.data;
    let entry = open.get(id);
    if (entry === undefined) {
      const created: TraceSession & { calls: TraceCall[] } = { ...optionalFields({ agent, expect }), id, source: file, calls: [] };
      add(created, where);
      entry = { session: created, line: index + 1 };
      open.set(id, entry);
    } else {
      // Every line of a session must agree on its agent and expectation: a mistake here would silently change a verdict.
      for (const [field, value] of [["agent", agent], ["expect", expect]] as const) {
        if (value !== undefined && entry.session[field] !== undefined && entry.session[field] !== value) {
          throw new TraceError(`${where}: session "${id}" has ${field} "${entry.session[field]}" at line ${entry.line} but "${value}" here`);
        }
      }
      if (agent !== undefined && entry.session.agent === undefined) entry.session = Object.assign(entry.session, { agent });
      if (expect !== undefined && entry.session.expect === undefined) entry.session = Object.assign(entry.session, { expect });
    }
    entry.session.calls.push(toCall(rest));
  }
  return sessions;
}

function optionalFields(value: { agent?: string | undefined; expect?: Expectation | undefined; description?: string | undefined }): Pick<TraceSession, "agent" | "expect" | "description"> {
  return {
    ...(value.agent === undefined ? {} : { agent: value.agent }),
    ...(value.expect === undefined ? {} : { expect: value.expect }),
    ...(value.description === undefined ? {} : { description: value.description }),
  };
}

/** Reads and parses a trace; `label` (the path as the operator wrote it) names it in errors and reports. */
export function readTraceFile(file: string, label = file): TraceSession[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new TraceError(`${label}: ${code === "ENOENT" ? "no such file" : `cannot read it (${code ?? (error as Error).message})`}`);
  }
  return parseTrace(text, label);
}
