// `verify mcp`: every MCP server of the config as the agent sees it through mcp-guard with its own token (seed 003's
// verify-hermes-mcp.sh): the guard has the server's ${VAR}s, the upstream is connected, its tools are registered,
// none waits for review, the audit log shows no auth error from it since the last start, and a harmless call works.
// The tools/list and the call run in the probe program from the agent's side; the rest is the operator's.
import type { PerimeterConfig } from "../config/index.ts";
import { placeholdersIn } from "../config/index.ts";
import { fail, pass, skip, warn } from "./model.ts";
import type { CheckResult } from "./model.ts";
import type { ProbeRequest } from "./probe.ts";
import type { ProbeRun } from "./runners.ts";

export interface McpFacts {
  /** Variables set in the guard's environment (names only); undefined: cannot be known from here. */
  readonly guardVariables: ReadonlySet<string> | undefined;
  /** The guard's /healthz upstream states; undefined: its admin listener is not reachable from here. */
  readonly upstreamStates: Readonly<Record<string, string>> | undefined;
  /** Tool definitions waiting for review, per server; undefined: no admin token here. */
  readonly pendingReviews: ReadonlyMap<string, readonly string[]> | undefined;
  /** Audit records of auth failures since the last start, per server; undefined: no audit log here. */
  readonly authErrors: ReadonlyMap<string, readonly string[]> | undefined;
  /** Why a fact is missing, said in its SKIP line. */
  readonly unknownBecause: string;
}

/** The servers the agent sees through the guard: the config's, plus the sandbox the terminal implies. */
export function guardedServers(config: PerimeterConfig): string[] {
  const names = new Set(Object.keys(config.mcp.servers));
  if (config.agent.terminal === "sandbox" && ![...Object.values(config.mcp.servers)].some((server) => server.builtin === "sandbox")) names.add("sandbox");
  return [...names].sort();
}

/** Globs of tools a verification must never call: those held for approval (a human would be asked). */
export function neverCall(config: PerimeterConfig): string[] {
  // approvals.tools entries are a glob or { tool, approvers } (the two-person rule, issue 19).
  const globs = config.approvals.tools.map((entry) => (typeof entry === "string" ? entry : (entry as { tool: string }).tool));
  for (const [name, server] of Object.entries(config.mcp.servers)) for (const glob of server.tools.approve) globs.push(`${name}__${glob}`);
  return globs;
}

export function mcpProbe(config: PerimeterConfig, url: string, tokenVariable: string): ProbeRequest {
  return { id: "mcp", kind: "mcp", url, tokenVariable, callServers: guardedServers(config), neverCall: neverCall(config) };
}

const HEALTHY_STATES = new Set(["ready"]);

export function mcpResults(config: PerimeterConfig, run: ProbeRun, facts: McpFacts): CheckResult[] {
  const results: CheckResult[] = [];
  const answer = run.ok ? (run.answers.mcp as Record<string, unknown> | undefined) : undefined;
  const tools = (answer?.tools as string[] | undefined) ?? undefined;
  const tokenVariable = config.mcp.agents[0]?.tokenSecret ?? "PERIMETER_AGENT_TOKEN";
  if (!run.ok || answer === undefined) {
    results.push(fail("mcp.agent-token", "mcp", `the probe did not run from the agent's side: ${run.ok ? "no answer" : run.error}`, "make the agent reachable for verify (docs/verify.md)"));
  } else if (answer.status === 401 || answer.status === 403) {
    results.push(fail("mcp.agent-token", "mcp", `mcp-guard refused the agent's token (HTTP ${String(answer.status)})`, `set ${tokenVariable} in the agent's environment to the value mcp-guard holds (render's Secret / perimeter up's secrets.env) and restart the agent`));
  } else if (tools === undefined) {
    results.push(fail("mcp.agent-token", "mcp", `mcp-guard did not answer the agent: ${String(answer.error)}`, "check the agent's MCP URL and that mcp-guard runs (perimeter status / kubectl get pods)"));
  } else {
    results.push(pass("mcp.agent-token", "mcp", `mcp-guard accepted the agent's token and listed ${tools.length} tools`));
  }
  const calls = (answer?.calls as Record<string, { tool?: string; ok?: boolean; toolError?: boolean; error?: string; text?: string; skipped?: string }> | undefined) ?? {};

  for (const server of guardedServers(config)) {
    const declared = config.mcp.servers[server];
    const prefix = `mcp.${server}`;
    const variables = declared === undefined ? [] : [...new Set([...Object.values(declared.headers), ...Object.values(declared.env), declared.url ?? ""].flatMap(placeholdersIn))].sort();
    if (variables.length === 0) results.push(pass(`${prefix}.variables`, "mcp", "no ${VAR} placeholders"));
    else if (facts.guardVariables === undefined) results.push(skip(`${prefix}.variables`, "mcp", `${variables.join(", ")}: the guard's environment cannot be read from here (${facts.unknownBecause})`));
    else {
      const missing = variables.filter((name) => !facts.guardVariables?.has(name));
      results.push(
        missing.length === 0
          ? pass(`${prefix}.variables`, "mcp", `every placeholder is set in the guard: ${variables.join(", ")}`)
          : fail(`${prefix}.variables`, "mcp", `not set in mcp-guard's environment: ${missing.join(", ")}`, "add it to mcp-guard's Secret / env file (never the agent's) and restart mcp-guard"),
      );
    }

    const state = facts.upstreamStates?.[server];
    if (facts.upstreamStates === undefined) results.push(skip(`${prefix}.upstream`, "mcp", `the guard's /healthz is not reachable from here (${facts.unknownBecause})`));
    else if (state !== undefined && HEALTHY_STATES.has(state)) results.push(pass(`${prefix}.upstream`, "mcp", `mcp-guard is connected to it (${state})`));
    else results.push(fail(`${prefix}.upstream`, "mcp", `mcp-guard is not connected to it (${state ?? "not configured in the running guard"})`, "check the upstream's URL and that mcp-guard's network reaches it (its NetworkPolicy / network); the guard's log names the error"));

    if (tools === undefined) {
      results.push(skip(`${prefix}.tools`, "mcp", "the guard did not list tools for the agent (see mcp.agent-token)"));
    } else {
      const own = tools.filter((tool) => tool.startsWith(`${server}__`));
      results.push(
        own.length > 0
          ? pass(`${prefix}.tools`, "mcp", `${own.length} tool(s) registered: ${own.slice(0, 6).join(", ")}${own.length > 6 ? ", …" : ""}`)
          : fail(`${prefix}.tools`, "mcp", "no tool of this server reaches the agent", `check mcp.servers.${server}.tools.allow and pending reviews (perimeter approvals list); the upstream may be down`),
      );
    }

    const pending = facts.pendingReviews?.get(server);
    if (facts.pendingReviews === undefined) results.push(skip(`${prefix}.review`, "mcp", `reviews cannot be listed from here (${facts.unknownBecause})`));
    else if (pending !== undefined && pending.length > 0) results.push(warn(`${prefix}.review`, "mcp", `tool definitions waiting for review or quarantined: ${pending.join(", ")}`, "perimeter approvals list, then approve or deny each (the agent does not see them until then)"));
    else results.push(pass(`${prefix}.review`, "mcp", "no tool definition waiting for review"));

    const errors = facts.authErrors?.get(server);
    if (facts.authErrors === undefined) results.push(skip(`${prefix}.auth-errors`, "mcp", `the audit log is not readable from here (${facts.unknownBecause})`));
    else if (errors !== undefined && errors.length > 0) results.push(fail(`${prefix}.auth-errors`, "mcp", `${errors.length} auth error(s) from the upstream since the last start: ${errors.slice(0, 3).join("; ")}`, "the plumbing works but the upstream refused the credential: rotate the token in mcp-guard's Secret / env file and restart it"));
    else results.push(pass(`${prefix}.auth-errors`, "mcp", "no auth error from the upstream in the audit log since the last start"));

    const call = calls[server];
    if (tools === undefined) results.push(skip(`${prefix}.call`, "mcp", "the guard did not list tools for the agent"));
    else if (call === undefined || call.skipped !== undefined) results.push(skip(`${prefix}.call`, "mcp", `no harmless tool to call: ${call?.skipped ?? "no answer"}`));
    else if (call.ok === true) results.push(pass(`${prefix}.call`, "mcp", `${String(call.tool)} answered through the guard${call.toolError === true ? " (a tool-level error: the path works)" : ""}: ${(call.text ?? "").replace(/\s+/g, " ").slice(0, 80)}`));
    else results.push(fail(`${prefix}.call`, "mcp", `${String(call.tool)} failed: ${String(call.error ?? call.text ?? "")}`, "see the guard's log and the audit log (perimeter audit-log tail) for this call"));
  }
  return results;
}

/** Auth failures per server in audit records (mcp-guard's tool-call results), after the last start. */
export function authErrorsFromRecords(records: ReadonlyArray<{ component: string; type: string; data: Record<string, unknown> }>): Map<string, string[]> {
  let start = 0;
  records.forEach((record, index) => {
    if (record.type === "perimeter-start" || record.type === "service-start" || record.type === "service-restart") start = index + 1;
  });
  const errors = new Map<string, string[]>();
  for (const record of records.slice(start)) {
    if (record.component !== "mcp-guard") continue;
    const server = typeof record.data.server === "string" ? record.data.server : undefined;
    const text = JSON.stringify([record.data.error ?? null, record.data.reason ?? null, record.data.result ?? null]);
    if (server === undefined || !/\b(401|403)\b|unauthori[sz]ed|forbidden|invalid[_ ]token|bad credentials/i.test(text)) continue;
    errors.set(server, [...(errors.get(server) ?? []), `record ${String((record as { seq?: number }).seq ?? "?")} ${record.type}`]);
  }
  return errors;
}
