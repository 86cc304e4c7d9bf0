// The claims every agent's run must prove, asserted the same way for each: what the agent's own transcript says
// about each tool call (read by the agent's test into ToolExchange), the connect trace, the provider key's absence,
// and the audit log.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { perimeter } from "../fixtures/e2e-support.ts";
import { ALLOWED_NAME, BASE_ENV, BLOCKED_NAME, HOLD_SECONDS, auditRecords, filesUnder, foreignConnects } from "./perimeter.ts";
import type { AgentRun, AuditRecord, Perimeter } from "./perimeter.ts";

/** One tool call as the agent's own transcript records it. */
export interface ToolExchange {
  readonly name: string;
  readonly input: unknown;
  readonly output: string;
  readonly isError: boolean;
}

export function assertSandboxed(exchange: ToolExchange | undefined, context: () => string): void {
  assert.match(exchange?.name ?? "", /sandbox__run$/, context());
  assert.equal(exchange?.isError, false, context());
  assert.match(exchange?.output ?? "", /hello-from-the-sandbox/);
}

export function assertArgumentRefused(exchange: ToolExchange | undefined, context: () => string): void {
  assert.equal(exchange?.isError, true, context());
  assert.match(exchange?.output ?? "", /denied: argument command\[0\] = \\?"rm\\?" is not one of/);
}

export function assertHeldCalls(exchanges: readonly (ToolExchange | undefined)[], context: () => string): void {
  const [approved, denied, expired] = exchanges;
  assert.equal(approved?.isError, false, context());
  assert.match(approved?.output ?? "", /\b5\b/);
  assert.equal(denied?.isError, true, context());
  assert.match(denied?.output ?? "", /a human \(admin:operator\) denied this call: agents e2e deny/);
  assert.equal(expired?.isError, true, context());
  assert.match(expired?.output ?? "", new RegExp(`no human approved this call within ${HOLD_SECONDS} seconds`));
}

/** Every connect() of the agent's processes went to llm-proxy, mcp-guard or the egress proxy on 127.0.0.1. */
export function assertOnlyPerimeterConnects(run: AgentRun, setup: Perimeter, expected: ReadonlyArray<"llm" | "mcp" | "egress">): void {
  for (const name of expected) {
    assert.ok(run.connects.some((call) => call.port === setup.agentPorts[name]), `the trace saw the connection to ${name} (positive control)`);
  }
  const ports = [setup.agentPorts.llm, setup.agentPorts.mcp, setup.agentPorts.egress];
  assert.deepEqual(foreignConnects(run, ports).map((call) => call.line), [], "connects elsewhere than the perimeter's ports");
}

/** The provider key is in none of the agent's environment, files, output or traffic; the provider saw only it. */
export function assertProviderKeyAbsent(run: AgentRun, setup: Perimeter, environment: Record<string, string>, home: string): void {
  const key = setup.secrets.PROVIDER_KEY;
  assert.ok(!Object.values(environment).includes(key) && !Object.keys(environment).includes("PROVIDER_KEY"), "not in the agent's environment");
  assert.ok(run.traffic.includes(setup.secrets.HERMES_LLM_KEY), "the capture sees the virtual key the agent sends (positive control)");
  assert.ok(!run.traffic.includes(key), "not in anything the agent wrote or sent");
  assert.ok(!run.stdout.includes(key) && !run.stderr.includes(key), "not in its transcript or logs");
  const files = filesUnder(home);
  assert.ok(files.length > 0);
  for (const file of files) assert.ok(!readFileSync(file).includes(key), `not in ${file}`);
  assert.ok(setup.model.headers.length > 0, "the provider was called");
  for (const headers of setup.model.headers) {
    assert.equal(headers.authorization, `Bearer ${key}`, "llm-proxy sent the provider key");
    assert.ok(!JSON.stringify(headers).includes(setup.secrets.HERMES_LLM_KEY), "the virtual key never reached the provider");
  }
}

/** After the services stop: each decision is in the audit log and the chain verifies. */
export async function assertAudit(setup: Perimeter, options: { readonly fetched: boolean }): Promise<AuditRecord[]> {
  for (const service of [...setup.services].reverse()) {
    const { code } = await service.stop(5000);
    assert.equal(code, 0, `perimeter serve ${service.name} stopped cleanly:\n${service.output().slice(-2000)}`);
  }
  const records = await auditRecords(setup);
  const has = (component: string, type: string, match: (data: Record<string, unknown>) => boolean = () => true) =>
    records.some((record) => record.component === component && record.type === type && match(record.data));
  const summary = [...new Set(records.map((record) => `${record.component}/${record.type}`))].join(", ");
  assert.ok(has("sandbox", "sandbox-run", (data) => data.phase === "finished"), `the sandbox run (${summary})`);
  assert.ok(!has("sandbox", "sandbox-run", (data) => JSON.stringify(data.command).includes("rm")), "the refused argument never reached the runner");
  assert.ok(has("mcp-guard", "tool-call", (data) => data.decision === "deny" && data.name === "sandbox__run"), "the refused argument");
  assert.ok(has("approvals", "approval-decision", (data) => data.decision === "approved" && data.approver === "admin:operator"), "the approval");
  assert.ok(has("approvals", "approval-decision", (data) => data.decision === "denied"), "the denial");
  assert.ok(has("llm-proxy", "llm-request", (data) => data.decision === "allow"), "the model calls");
  if (options.fetched) {
    assert.ok(has("egress-proxy", "egress-decision", (data) => data.decision === "allow" && data.host === ALLOWED_NAME), "the allowed fetch");
    assert.ok(has("egress-proxy", "egress-decision", (data) => data.decision === "deny" && data.host === BLOCKED_NAME), "the refused fetch");
  }
  const verified = await perimeter(["audit-log", "verify", "--db", setup.auditPath], { ...BASE_ENV, HOME: setup.directory });
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  return records;
}
