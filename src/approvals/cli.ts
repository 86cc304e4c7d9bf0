// `perimeter approvals list [--json] | approve ID... [--reason R] | deny ID... [--reason R]`, each with -c FILE to
// find the mcp-guard admin listener (mcp.admin.listen) and its token (the variable named by mcp.admin.tokenSecret).
// Everything shown comes from agents and upstreams, so it is escaped before it reaches the terminal.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { EXIT_FINDINGS, EXIT_OK, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command } from "../cli/index.ts";
import { loadConfig, readSecret } from "../config/index.ts";
import { ApprovalsApiError, createApprovalsClient } from "./client.ts";
import type { ApprovalsClient } from "./client.ts";
import type { Approval, ApprovalKind, ApprovalStatus } from "./store.ts";

/** Where every render mounts perimeter.yaml (Compose, Kubernetes, the VPS host). */
const DEFAULT_CONFIG_PATH = "/etc/perimeter/perimeter.yaml";

const HELP = `perimeter approvals — decide calls held by mcp-guard and review new or changed tool definitions

Usage:
  perimeter approvals list [--json] [--all] [--status S] [--kind tool-call|tool-definition] -c perimeter.yaml
  perimeter approvals show ID [--json] -c perimeter.yaml
  perimeter approvals approve ID... [--reason R] -c perimeter.yaml
  perimeter approvals deny ID... [--reason R] -c perimeter.yaml
  perimeter approvals review [--approve-clean] -c perimeter.yaml

review walks the pending tool-definition reviews one by one (name, description, schema, findings) and asks
[a]pprove, [r]eject, [s]kip or [q]uit; answers come from the terminal or, in a script, one per line on stdin.
--approve-clean prints every pending definition, approves the new ones without findings, and leaves flagged or
changed definitions for review one by one.
list shows pending requests (--all: every status). An approval lets exactly one call through: the same agent, tool
definition and arguments. Approving a tool-definition review makes that exact definition available to the agent.
The admin listener and token come from the config (mcp.admin.listen, mcp.admin.tokenSecret); --admin-url overrides
the address. Without -c the config is $PERIMETER_CONFIG (set in the perimeter image), else ${DEFAULT_CONFIG_PATH}. --approver NAME records who decided (default: $USER).
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
  if (approval.kind === "tool-definition" && detail !== null && typeof detail === "object" && !Array.isArray(detail) && "definition" in detail) {
    lines.push(...formatDefinition(approval));
    return lines;
  }
  lines.push("detail:", ...safe(JSON.stringify(detail, null, 2)).split("\n").map((text) => `  ${text}`));
  return lines;
}

interface DefinitionDetail {
  change?: string;
  definition?: { name?: string; title?: string; description?: string; inputSchema?: unknown; outputSchema?: unknown; annotations?: unknown };
  previousHash?: string | null;
  changes?: Array<{ path?: string; before?: unknown; after?: unknown }>;
  findings?: Array<{ field?: string; kind?: string; excerpt?: string }>;
}

const indented = (text: string, prefix = "  ") => safe(text).split("\n").map((line) => `${prefix}${line}`);
const pretty = (value: unknown) => indented(JSON.stringify(value, null, 2));

/** A tool definition as a reviewer reads it: what the model is told (description), what it may send, what is odd. */
function formatDefinition(approval: Approval): string[] {
  const detail = approval.detail as DefinitionDetail;
  const definition = detail.definition ?? {};
  const findings = Array.isArray(detail.findings) ? detail.findings : [];
  const lines = [
    `name:      ${safe(`${approval.server}__${approval.tool}`)}${definition.title === undefined ? "" : ` (${safe(String(definition.title))})`}`,
    `change:    ${detail.change === "changed" ? `changed since the trusted definition ${detail.previousHash ?? "?"}` : "new tool"}`,
    "description:",
    ...(definition.description === undefined || definition.description === "" ? ["  (none)"] : indented(String(definition.description))),
    "input schema:",
    ...pretty(definition.inputSchema ?? {}),
  ];
  if (definition.outputSchema !== undefined) lines.push("output schema:", ...pretty(definition.outputSchema));
  if (definition.annotations !== undefined) lines.push("annotations (hints from the server, not enforced):", ...pretty(definition.annotations));
  if (detail.change === "changed" && Array.isArray(detail.changes)) {
    lines.push(`changes:   ${detail.changes.length}`);
    for (const change of detail.changes) lines.push(...indented(`${change.path ?? "?"}: ${JSON.stringify(change.before)} -> ${JSON.stringify(change.after)}`));
  }
  lines.push(`findings:  ${findings.length}${findings.length === 0 ? " (no hidden-instruction pattern found; still read the description)" : " — FLAGGED, read these before approving:"}`);
  for (const finding of findings) lines.push(...indented(`${finding.kind ?? "?"} in ${finding.field ?? "?"}: ${finding.excerpt ?? ""}`));
  return lines;
}

/** -c, else $PERIMETER_CONFIG (the image sets it), else the path every render mounts the config at. */
function configPath(option: string | undefined, io: { cwd: string; env: Readonly<Record<string, string | undefined>> }): string {
  if (option !== undefined) return resolve(io.cwd, option);
  const fromEnvironment = io.env.PERIMETER_CONFIG;
  if (fromEnvironment !== undefined && fromEnvironment !== "") return resolve(io.cwd, fromEnvironment);
  if (existsSync(DEFAULT_CONFIG_PATH)) return DEFAULT_CONFIG_PATH;
  throw new UsageError(`approvals: pass the config with -c perimeter.yaml, or set PERIMETER_CONFIG (it names the admin listener and its token variable); ${DEFAULT_CONFIG_PATH} does not exist here`);
}

/** Lines of an answer stream: the terminal, or a script's stdin. Undefined once it ends. */
function answers(io: { stdin: NodeJS.ReadableStream; stdout: NodeJS.WritableStream }): { next(prompt: string): Promise<string | undefined>; close(): void } {
  const reader = createInterface({ input: io.stdin, terminal: false });
  const iterator = reader[Symbol.asyncIterator]();
  return {
    async next(prompt) {
      io.stdout.write(prompt);
      const result = await iterator.next();
      if (result.done === true) {
        writeLine(io.stdout);
        return undefined;
      }
      // A terminal echoes the answer itself; a script's answer is echoed so the transcript reads as a dialogue.
      if ((io.stdin as { isTTY?: boolean }).isTTY !== true) writeLine(io.stdout, safe(result.value));
      return result.value.trim().toLowerCase();
    },
    close: () => reader.close(),
  };
}

const findingsOf = (approval: Approval) => {
  const detail = approval.detail as DefinitionDetail | null;
  return Array.isArray(detail?.findings) ? detail.findings.length : 0;
};
const isChanged = (approval: Approval) => (approval.detail as DefinitionDetail | null)?.change === "changed";

async function review(client: ApprovalsClient, io: Parameters<Command>[1], options: { approveClean: boolean; approver: string | undefined; reason: string | undefined }): Promise<number> {
  const pending = await client.list({ status: "pending", kind: "tool-definition" });
  if (pending.length === 0) {
    writeLine(io.stdout, "no tool definitions wait for review");
    return EXIT_OK;
  }
  const decide = async (approval: Approval, decision: "approve" | "deny") => {
    const decided = await client.decide(approval.id, decision, {
      ...(options.reason === undefined ? {} : { reason: options.reason }),
      ...(options.approver === undefined ? {} : { approver: options.approver }),
      channel: "cli",
    });
    const name = `${safe(decided.server)}__${safe(decided.tool)}`;
    if (decided.status === "pending") writeLine(io.stdout, `${decided.id} counted: ${name} needs another person's approval`);
    else writeLine(io.stdout, `${decision === "approve" ? "approved" : "rejected"} ${name} (${decided.id})`);
  };
  if (options.approveClean) {
    // Only new definitions without findings: a changed one is a possible rug pull and a flagged one a possible
    // injection, both worth a person's attention one at a time.
    let approved = 0;
    let left = 0;
    for (const [index, approval] of pending.entries()) {
      writeLine(io.stdout, `--- (${index + 1} of ${pending.length}) ${approval.id}`);
      for (const line of formatDefinition(approval)) writeLine(io.stdout, line);
      if (findingsOf(approval) === 0 && !isChanged(approval)) {
        await decide(approval, "approve");
        approved += 1;
      } else {
        writeLine(io.stdout, `left for review: ${findingsOf(approval) > 0 ? "FLAGGED" : "changed definition"}`);
        left += 1;
      }
      writeLine(io.stdout);
    }
    writeLine(io.stdout, `approved ${approved}, left ${left} for review one by one${left === 0 ? "" : " (perimeter approvals review)"}`);
    return EXIT_OK;
  }
  const input = answers(io);
  try {
    for (const [index, approval] of pending.entries()) {
      writeLine(io.stdout, `--- (${index + 1} of ${pending.length}) ${approval.id}`);
      for (const line of formatDefinition(approval)) writeLine(io.stdout, line);
      for (;;) {
        const answer = await input.next("[a]pprove, [r]eject, [s]kip, [q]uit? ");
        if (answer === undefined || answer === "q" || answer === "quit") {
          writeLine(io.stdout, `stopped; ${pending.length - index} left pending (perimeter approvals review)`);
          return EXIT_OK;
        }
        if (answer === "a" || answer === "approve") await decide(approval, "approve");
        else if (answer === "r" || answer === "reject" || answer === "d" || answer === "deny") await decide(approval, "deny");
        else if (answer !== "s" && answer !== "skip") {
          writeLine(io.stdout, "answer a, r, s or q");
          continue;
        }
        break;
      }
      writeLine(io.stdout);
    }
  } finally {
    input.close();
  }
  return EXIT_OK;
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
      "approve-clean": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  const [action, ...ids] = positionals;
  if (values.help === true || action === undefined) {
    io.stdout.write(HELP);
    return action === undefined && values.help !== true ? 2 : EXIT_OK;
  }
  if (!["list", "show", "approve", "deny", "review"].includes(action)) throw new UsageError(`approvals: unknown action "${action}" (use list, show, approve, deny or review)`);
  const config = loadConfig(configPath(values.config, io));
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
      // On stderr, so that stdout stays the table (or JSON) a script reads.
      const waiting = approvals.filter((approval) => approval.kind === "tool-definition" && approval.status === "pending").length;
      if (waiting > 0) {
        writeLine(
          io.stderr,
          `${waiting} tool definition${waiting === 1 ? " waits" : "s wait"} for review: the agent cannot use ${waiting === 1 ? "it" : "them"} until approved` +
            `${config.mcp.pinning.trustOnFirstUse ? "" : " (mcp.pinning.trustOnFirstUse is off, so every new tool is reviewed first)"}. Run perimeter approvals review.`,
        );
      }
      return EXIT_OK;
    }
    const approver = values.approver ?? io.env.USER ?? io.env.LOGNAME;
    if (action === "review") {
      if (ids.length > 0) throw new UsageError("approvals review takes no IDs (it walks every pending definition; use approvals approve ID for one)");
      return await review(client, io, { approveClean: values["approve-clean"] === true, approver, reason: values.reason });
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
