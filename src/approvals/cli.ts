// `perimeter approvals list [--json] | approve ID... [--reason R] | deny ID... [--reason R]`, each with -c FILE to
// find the mcp-guard admin listener (mcp.admin.listen) and its token (the variable named by mcp.admin.tokenSecret).
// Everything shown comes from agents and upstreams, so it is escaped before it reaches the terminal.
import { resolve } from "node:path";
import { EXIT_FINDINGS, EXIT_OK, UsageError, parseCommandArgs, writeLine } from "../cli/command.ts";
import type { Command } from "../cli/command.ts";
import { loadConfig, readSecret } from "../config/index.ts";
import { ApprovalsApiError, createApprovalsClient } from "./client.ts";
import type { Approval, ApprovalKind, ApprovalStatus } from "./store.ts";

const HELP = `perimeter approvals — decide calls held by mcp-guard and review new or changed tool definitions

Usage:
  perimeter approvals list [--json] [--all] [--status S] [--kind tool-call|tool-definition] -c perimeter.yaml
  perimeter approvals show ID [--json] -c perimeter.yaml
  perimeter approvals approve ID... [--reason R] -c perimeter.yaml
  perimeter approvals deny ID... [--reason R] -c perimeter.yaml

list shows pending requests (--all: every status). An approval lets exactly one call through: the same agent, tool
definition and arguments. Approving a tool-definition review makes that exact definition available to the agent.
The admin listener and token come from the config (mcp.admin.listen, mcp.admin.tokenSecret); --admin-url overrides
the address. --approver NAME records who decided (default: $USER).
`;

const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/g;
const safe = (text: string): string => text.replace(UNSAFE, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`);

function adminBaseUrl(listen: string): string {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  if (match === null) throw new UsageError(`mcp.admin.listen "${listen}" is not HOST:PORT`);
  const host = match[1] ?? match[2] ?? "";
  const dial = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host;
  return `http://${dial}:${match[3]}`;
}

function age(iso: string, now: number): string {
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

function summary(approval: Approval): string {
  const detail = (approval.detail ?? {}) as Record<string, unknown>;
  if (approval.kind === "tool-call") {
    const args = typeof detail.arguments === "string" ? detail.arguments : JSON.stringify(detail.arguments ?? {});
    // A summary only: what the human approves is shown whole by `approvals show`, and the table says so when it is cut.
    return args.length > 120 ? `args ${args.slice(0, 100)}... (${args.length} characters: perimeter approvals show ${approval.id})` : `args ${args}`;
  }
  const findings = Array.isArray(detail.findings) ? (detail.findings as Array<{ kind?: string; field?: string }>) : [];
  const changes = Array.isArray(detail.changes) ? detail.changes.length : 0;
  const what = detail.change === "changed" ? `changed definition (${changes} field${changes === 1 ? "" : "s"})` : "new definition";
  return findings.length === 0 ? what : `${what}; FLAGGED: ${findings.map((finding) => `${finding.kind} in ${finding.field}`).join(", ")}`;
}

function formatTable(approvals: Approval[], now: number): string[] {
  if (approvals.length === 0) return ["no approval requests"];
  const rows = approvals.map((approval) => [
    approval.id,
    approval.kind,
    approval.status,
    approval.agent ?? "-",
    `${approval.server}__${approval.tool}`,
    age(approval.createdAt, now),
    approval.status === "pending" && approval.expiresAt !== undefined ? `${Math.max(0, Math.round((Date.parse(approval.expiresAt) - now) / 1000))}s` : "-",
    summary(approval),
  ]);
  const header = ["ID", "KIND", "STATUS", "AGENT", "TOOL", "AGE", "EXPIRES IN", "DETAIL"];
  const widths = header.map((title, index) => Math.max(title.length, ...rows.map((row) => safe(row[index] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, index) => (index === cells.length - 1 ? safe(cell) : safe(cell).padEnd(widths[index] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function formatDetail(approval: Approval): string[] {
  const lines = [
    `id:        ${approval.id}`,
    `kind:      ${approval.kind}`,
    `status:    ${approval.status}`,
    `tool:      ${safe(`${approval.server}__${approval.tool}`)}`,
    `agent:     ${safe(approval.agent ?? "-")}`,
    `definition ${approval.definitionHash}`,
    `created:   ${approval.createdAt}${approval.expiresAt === undefined ? "" : `, expires ${approval.expiresAt}`}`,
  ];
  if (approval.approver !== undefined) lines.push(`decided:   ${approval.status} by ${safe(approval.approver)}${approval.reason === undefined ? "" : ` (${safe(approval.reason)})`}`);
  if (approval.requiredApprovals > 1 || (approval.votes ?? []).length > 0) {
    const votes = (approval.votes ?? []).map((vote) => `${vote.decision} by ${vote.approver} via ${vote.channel} at ${vote.at}`);
    const approvals = (approval.votes ?? []).filter((vote) => vote.decision === "approve").length;
    lines.push(`approvals: ${approvals} of ${approval.requiredApprovals} distinct people${votes.length === 0 ? "" : `: ${safe(votes.join("; "))}`}`);
  }
  const detail = approval.detail;
  if (approval.kind === "tool-call" && detail !== null && typeof detail === "object" && !Array.isArray(detail) && "arguments" in detail) {
    // The whole arguments, exactly as they will run except for the places listed as redacted.
    const { arguments: args, argumentsBytes, redactions, ...rest } = detail;
    const marked = Array.isArray(redactions) ? redactions.map(String) : [];
    lines.push(
      `arguments: ${typeof argumentsBytes === "number" ? `${argumentsBytes} bytes, ` : ""}sha256 ${approval.argumentsHash ?? "-"}, shown whole`,
      marked.length === 0 ? "redacted:  nothing" : `redacted (the reviewer sees [REDACTED], the upstream gets the value): ${safe(marked.join(", "))}`,
      ...safe(JSON.stringify(args, null, 2)).split("\n").map((text) => `  ${text}`),
    );
    lines.push("detail:", ...safe(JSON.stringify(rest, null, 2)).split("\n").map((text) => `  ${text}`));
    return lines;
  }
  lines.push("detail:", ...safe(JSON.stringify(detail, null, 2)).split("\n").map((text) => `  ${text}`));
  return lines;
}

export const approvalsCommand: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(
    "approvals",
    args,
    {
      config: { type: "string", short: "c" },
      json: { type: "boolean" },
      all: { type: "boolean" },
      status: { type: "string" },
      kind: { type: "string" },
      reason: { type: "string" },
      approver: { type: "string" },
      "admin-url": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  const [action, ...ids] = positionals;
  if (values.help === true || action === undefined) {
    io.stdout.write(HELP);
    return action === undefined && values.help !== true ? 2 : EXIT_OK;
  }
  if (!["list", "show", "approve", "deny"].includes(action)) throw new UsageError(`approvals: unknown action "${action}" (use list, show, approve or deny)`);
  if (values.config === undefined) throw new UsageError("approvals: pass the config with -c perimeter.yaml (it names the admin listener and its token variable)");
  const config = loadConfig(resolve(io.cwd, values.config));
  const token = readSecret(io.env, config.mcp.admin.tokenSecret, "perimeter approvals (the mcp-guard admin API token, mcp.admin.tokenSecret)");
  const client = createApprovalsClient({ baseUrl: values["admin-url"] ?? adminBaseUrl(config.mcp.admin.listen), token });
  const now = Date.now();
  try {
    if (action === "list") {
      if (ids.length > 0) throw new UsageError("approvals list takes no IDs (use approvals show ID)");
      const status = values.all === true ? undefined : ((values.status ?? "pending") as ApprovalStatus);
      const approvals = await client.list({ ...(status === undefined ? {} : { status }), ...(values.kind === undefined ? {} : { kind: values.kind as ApprovalKind }) });
      if (values.json === true) writeLine(io.stdout, JSON.stringify(approvals, null, 2));
      else for (const line of formatTable(approvals, now)) writeLine(io.stdout, line);
      return EXIT_OK;
    }
    if (ids.length === 0) throw new UsageError(`approvals ${action}: name the request ID (see perimeter approvals list)`);
    if (action === "show") {
      for (const id of ids) {
        const approval = await client.get(id);
        if (values.json === true) writeLine(io.stdout, JSON.stringify(approval, null, 2));
        else for (const line of formatDetail(approval)) writeLine(io.stdout, line);
      }
      return EXIT_OK;
    }
    const approver = values.approver ?? io.env.USER ?? io.env.LOGNAME;
    let failed = 0;
    for (const id of ids) {
      try {
        const decided = await client.decide(id, action as "approve" | "deny", {
          ...(values.reason === undefined ? {} : { reason: values.reason }),
          ...(approver === undefined ? {} : { approver }),
          channel: "cli",
        });
        if (values.json === true) writeLine(io.stdout, JSON.stringify(decided));
        else if (decided.status === "pending") {
          // The two-person rule: this approval counted, and the request waits for someone else.
          const count = (decided.votes ?? []).filter((vote) => vote.decision === "approve").length;
          writeLine(io.stdout, `${decided.id} pending: ${count} of ${decided.requiredApprovals} approvals (${safe(decided.server)}__${safe(decided.tool)} needs another person)`);
        } else writeLine(io.stdout, `${decided.id} ${decided.status} (${safe(decided.server)}__${safe(decided.tool)})`);
      } catch (error) {
        if (!(error instanceof ApprovalsApiError) || error.status === 0) throw error;
        failed += 1;
        writeLine(io.stderr, `perimeter approvals ${action} ${id}: ${safe(error.message)}`);
      }
    }
    return failed === 0 ? EXIT_OK : EXIT_FINDINGS;
  } catch (error) {
    if (error instanceof ApprovalsApiError) {
      writeLine(io.stderr, `perimeter approvals: ${safe(error.message)}`);
      return EXIT_FINDINGS;
    }
    throw error;
  }
};
