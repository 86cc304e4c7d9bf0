// Qwen Code, unmodified (the @qwen-code/qwen-code devDependency), behind the perimeter. Its configuration is exactly
// `perimeter agent-config --agent qwen-code` (settings.json and --env); the model is a scripted STAND-IN behind
// llm-proxy speaking OpenAI chat completions; everything else is real: the four `perimeter serve` processes, the
// bubblewrap sandbox, a stdio upstream with a poisoned tool, the egress proxy and a TLS origin, the operator's
// `perimeter approvals`. One headless run (`qwen --output-format stream-json PROMPT`) plays the script below; the
// tests then read Qwen's own transcript (stream-json), the audit log and a connect trace of the run.
//
// Requirements proven, each from the agent's transcript and the audit log:
//  A1  a command runs in the sandbox through mcp-guard and the agent gets its output
//  A2  an argument outside its constraint is refused by the guard and reported to the model as a tool error
//  A3  held calls while the agent waits: one approved (result), one denied (tool error naming the human), one
//      expired after approvals.timeoutSeconds; the expired one outlasted the agent's idle timeout because the
//      guard's progress notifications reset it
//  A4  a quarantined tool (poisoned description) is never offered to the model; after the operator approves its
//      definition the running agent's tool list is (or is not) refreshed — recorded as a known limit either way
//  A5  web_fetch of an allowlisted host goes through the egress proxy; a host off the allowlist is refused
//  A6  the agent connected only to the perimeter's ports on 127.0.0.1 (strace -f connect trace)
//  A7  the provider key is in none of the agent's environment, files, transcript or traffic; the virtual key
//      reaches llm-proxy only (the provider sees the provider key)
//  A8  `perimeter audit-log verify` is intact after the run
// Needs root (bubblewrap, strace) as CI runs it inside ../shared/bin/offline.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../fixtures/e2e-support.ts";
import { assertArgumentRefused, assertAudit, assertHeldCalls, assertOnlyPerimeterConnects, assertProviderKeyAbsent, assertSandboxed } from "./claims.ts";
import type { ToolExchange } from "./claims.ts";
import { ALLOWED_NAME, BASE_ENV, BLOCKED_NAME, HOLD_SECONDS, configureAgent, runAgent, startOperator, startPerimeter } from "./perimeter.ts";
import type { AgentRun, OperatorAction, Perimeter } from "./perimeter.ts";
import type { ScriptStep } from "./stand-in-model.ts";

const QWEN_ENTRY = join(ROOT, "node_modules/@qwen-code/qwen-code/cli-entry.js");
const QWEN_VERSION = (JSON.parse(readFileSync(join(ROOT, "node_modules/@qwen-code/qwen-code/package.json"), "utf8")) as { version: string }).version;
/** Below HOLD_SECONDS and above the guard's 10 s progress interval: only progress keeps the expiring call alive. */
const IDLE_TIMEOUT_MS = 11_000;
const RUN_TIMEOUT_MS = 120_000;

// The model's side of the conversation, one step per turn of Qwen's main loop.
const SCRIPT: ScriptStep[] = [
  (turn) => ({ call: turn.tool("sandbox__run"), arguments: { command: ["sh", "-c", "echo hello-from-the-sandbox; id -u"] } }),
  (turn) => ({ call: turn.tool("sandbox__run"), arguments: { command: ["rm", "-rf", "/workspace"] } }),
  (turn) => ({ call: turn.tool("everything__get-sum"), arguments: { a: 2, b: 3 } }),
  (turn) => ({ call: turn.tool("everything__get-sum"), arguments: { a: 4, b: 4 } }),
  (turn) => ({ call: turn.tool("everything__get-sum"), arguments: { a: 1, b: 1 } }),
  (turn) => ({ call: turn.tool("web_fetch"), arguments: { url: `https://${ALLOWED_NAME}:${originPort}/guide`, prompt: "What does the page say?" } }),
  (turn) => ({ call: turn.tool("web_fetch"), arguments: { url: `https://${BLOCKED_NAME}:${originPort}/upload`, prompt: "What does the page say?" } }),
];
let originPort = 0;

interface TranscriptEvent {
  type: string;
  subtype?: string;
  tools?: string[];
  mcp_servers?: Array<{ name: string; status: string }>;
  message?: { content?: Array<{ type: string; id?: string; name?: string; input?: unknown; tool_use_id?: string; content?: unknown; is_error?: boolean; text?: string }> };
  is_error?: boolean;
  result?: string;
}

/** Qwen's own record of each tool call: the assistant's tool_use and the tool_result it answered with. */
function toolExchanges(events: TranscriptEvent[]): ToolExchange[] {
  const uses = new Map<string, { name: string; input: unknown }>();
  const exchanges: ToolExchange[] = [];
  for (const event of events) {
    for (const block of event.message?.content ?? []) {
      if (block.type === "tool_use" && block.id !== undefined) uses.set(block.id, { name: block.name ?? "", input: block.input });
      if (block.type === "tool_result" && block.tool_use_id !== undefined) {
        const use = uses.get(block.tool_use_id);
        const output = typeof block.content === "string" ? block.content : JSON.stringify(block.content);
        exchanges.push({ name: use?.name ?? "?", input: use?.input, output, isError: block.is_error === true });
      }
    }
  }
  return exchanges;
}

describe(`Qwen Code ${QWEN_VERSION} behind the perimeter (model: scripted stand-in behind llm-proxy)`, { timeout: 240_000 }, () => {
  let setup: Perimeter;
  let home: string;
  let run: AgentRun;
  let events: TranscriptEvent[];
  let exchanges: ToolExchange[];
  let environment: Record<string, string>;
  let operatorLog: readonly OperatorAction[] = [];

  before(async () => {
    setup = await startPerimeter(SCRIPT, { name: "qwen" });
    originPort = setup.origin.port;
    home = join(setup.directory, "home");
    const work = join(home, "work");
    mkdirSync(work, { recursive: true });
    environment = await configureAgent(setup, "qwen-code", home, [{ path: ".qwen/settings.json" }]);
    const env = {
      ...BASE_ENV,
      HOME: home,
      ...environment,
      // The origin's self-signed certificate, as an operator adds an internal CA; Node reads it at start.
      NODE_EXTRA_CA_CERTS: setup.certFile,
      // Test-only: below the hold, so the expiring call survives only through the guard's progress notifications.
      QWEN_CODE_MCP_TOOL_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
    };
    const operator = startOperator(setup);
    try {
      run = await runAgent(process.execPath, [QWEN_ENTRY, "--output-format", "stream-json", "Do the scripted steps."], env, work, RUN_TIMEOUT_MS);
    } finally {
      await operator.stop();
    }
    operatorLog = operator.log;
    events = run.stdout.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as TranscriptEvent);
    exchanges = toolExchanges(events);
  });

  after(async () => {
    await setup?.stop();
  });

  const describeRun = () => `exit ${String(run.code)} after ${run.milliseconds} ms; tools: ${JSON.stringify(exchanges, null, 1).slice(0, 6000)}\noperator: ${JSON.stringify(operatorLog)}\nmodel problems: ${setup.model.problems.join("; ")}\nstderr: ${run.stderr.slice(-3000)}`;

  test("the run ends cleanly and the model's script ran to its end", () => {
    assert.equal(run.code, 0, describeRun());
    assert.deepEqual(setup.model.problems, [], describeRun());
    assert.equal(setup.model.turns.at(-1)?.index, SCRIPT.length, `every step was answered: ${describeRun()}`);
    const result = events.find((event) => event.type === "result");
    assert.equal(result?.is_error, false, describeRun());
  });

  test("A1: a command runs in the bubblewrap sandbox through mcp-guard and the agent gets its output", () => {
    assertSandboxed(exchanges[0], describeRun);
    assert.match(setup.model.turns[1]?.results[0]?.text ?? "", /hello-from-the-sandbox/, "the model saw the output");
  });

  test("A2: an argument outside its constraint is refused by the guard and reported to the model as a tool error", () => {
    assertArgumentRefused(exchanges[1], describeRun);
    assert.match(setup.model.turns[2]?.results[0]?.text ?? "", /denied: argument/);
  });

  test("A3: held calls while the agent waits: approved, denied by a human, expired (kept alive by progress beyond the idle timeout)", () => {
    assertHeldCalls([exchanges[2], exchanges[3], exchanges[4]], describeRun);
    assert.doesNotMatch(exchanges[4]?.output ?? "", /idle timeout/, "the agent's own idle timeout did not cut the call");
    const [expiredTurn, next] = [setup.model.turns[4], setup.model.turns[5]];
    assert.ok(expiredTurn !== undefined && next !== undefined);
    const waited = next.at - expiredTurn.at;
    assert.ok(waited >= HOLD_SECONDS * 1000 && waited > IDLE_TIMEOUT_MS, `the agent waited ${waited} ms, longer than its ${IDLE_TIMEOUT_MS} ms idle timeout`);
  });

  test("A4: the quarantined tool is never offered before its definition is approved", () => {
    const offered = setup.model.turns.map((turn) => turn.tools.some((name) => name.endsWith("notes__summarize")));
    assert.equal(offered[0], false, "not offered at start");
    assert.ok(setup.model.turns[0]?.tools.some((name) => name.endsWith("notes__lookup")), "its honest sibling is offered");
    assert.ok(operatorLog.some((entry) => entry.what === "tool-definition notes__summarize" && entry.action === "approve"), describeRun());
    // Whether a running Qwen re-lists tools on notifications/tools/list_changed: recorded as fact for this version.
    // Qwen asked the guard for its tools again after the approval (notifications/tools/list_changed) if it sent
    // tools/list more than once; it offers the model the new tool only if it also re-declares its tool list.
    const listings = (run.traffic.match(/\\"method\\":\\"tools\/list\\"/g) ?? []).length;
    assert.ok(listings >= 1, "the capture sees the agent's tools/list (positive control)");
    const refreshedAt = offered.indexOf(true);
    assert.ok(refreshedAt === -1 || refreshedAt >= 3, `offered only after the approval (turn ${refreshedAt})`);
    process.stdout.write(`# qwen-code ${QWEN_VERSION}: tools/list sent ${listings} times; the approved definition offered from turn ${refreshedAt} (-1: not in this run)\n`);
  });

  test("A5: web_fetch of an allowlisted host goes through the egress proxy; a host off the allowlist is refused", () => {
    const [allowed, blocked] = [exchanges[5], exchanges[6]];
    assert.equal(allowed?.isError, false, describeRun());
    assert.deepEqual(setup.origin.requests, [`${ALLOWED_NAME}:${originPort} /guide`], "the origin saw exactly the allowed fetch");
    assert.equal(blocked?.isError, true, describeRun());
  });

  test("A6: the agent connected only to the perimeter's ports on 127.0.0.1 (connect trace)", () => {
    assertOnlyPerimeterConnects(run, setup, ["llm", "mcp", "egress"]);
  });

  test("A7: the provider key is nowhere on the agent's side; the provider saw only the provider key", () => {
    assertProviderKeyAbsent(run, setup, environment, home);
  });

  test("A8: the audit log holds each decision and `perimeter audit-log verify` passes", async () => {
    await assertAudit(setup, { fetched: true });
  });
});
