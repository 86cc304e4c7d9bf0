// `perimeter replay -c perimeter.yaml [TRACE...] [--from-audit DB]`: what a policy does to recorded tool calls,
// decided by mcp-guard's own decision function. Exit 1 when a session's expectation is not met.
import { resolve } from "node:path";
import { AuditReadError } from "../audit-log/index.ts";
import { EXIT_FINDINGS, EXIT_OK, UsageError, parseCommandArgs } from "../cli/index.ts";
import type { Command } from "../cli/index.ts";
import { loadConfig } from "../config/index.ts";
import { sessionsFromAudit } from "./audit.ts";
import { ReplaySetupError, replaySessions } from "./replay.ts";
import { FORMATS, formatReport } from "./report.ts";
import type { Format } from "./report.ts";
import { TraceError, readTraceFile } from "./trace.ts";
import type { TraceSession } from "./trace.ts";

const HELP = `perimeter replay — run recorded tool calls through a policy, as mcp-guard would decide them

Usage:
  perimeter replay -c perimeter.yaml TRACE... [--format text|json|junit]
  perimeter replay -c perimeter.yaml --from-audit audit.db [--agent NAME] [TRACE...] [--format ...]

Each call is allowed, held for human approval, or denied with the reason, by the function mcp-guard runs for every
live tools/call; a session is refused if any call is denied, else held if any is held. A TRACE is .json
({"sessions": [...]}) or .jsonl (a session or a call per line): docs/replay.md. --from-audit replays every tool call
an audit log recorded, one session per agent, and marks the calls the policy now decides differently; calls whose
arguments the log could not hold are "undecided" when a constraint or an approval would read them.

Exit codes: 0 every expectation met; 1 a session marked "expect" got another outcome; 2 usage, config or trace error.
`;

export const replayCommand: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(
    "replay",
    args,
    {
      config: { type: "string", short: "c" },
      format: { type: "string", default: "text" },
      "from-audit": { type: "string" },
      agent: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  if (values.help === true) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values.config === undefined) throw new UsageError("replay: pass the policy to replay against with -c perimeter.yaml");
  const format = values.format as Format;
  if (!FORMATS.includes(format)) throw new UsageError(`replay: --format is one of ${FORMATS.join(", ")} (not "${values.format}")`);
  const audit = values["from-audit"];
  if (positionals.length === 0 && audit === undefined) throw new UsageError("replay: name trace files, or an audit log with --from-audit DB (see perimeter replay --help)");
  if (values.agent !== undefined && audit === undefined) throw new UsageError("replay: --agent selects calls of an audit log; use it with --from-audit");

  const config = loadConfig(resolve(io.cwd, values.config));
  const sessions: TraceSession[] = [];
  try {
    if (audit !== undefined) sessions.push(...sessionsFromAudit(resolve(io.cwd, audit), values.agent === undefined ? {} : { agent: values.agent }));
    for (const file of positionals) sessions.push(...readTraceFile(resolve(io.cwd, file), file));
    const report = replaySessions(config, sessions);
    io.stdout.write(formatReport(report, format));
    return report.totals.expectations.unmet > 0 ? EXIT_FINDINGS : EXIT_OK;
  } catch (error) {
    if (error instanceof TraceError || error instanceof ReplaySetupError || error instanceof AuditReadError) throw new UsageError(`replay: ${error.message}`);
    throw error;
  }
};
