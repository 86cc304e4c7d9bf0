// OpenAI Codex CLI, unmodified (the @openai/codex devDependency: a native Rust binary shipped inside the npm package),
// behind the perimeter. Its configuration is exactly `perimeter agent-config --agent codex` (config.toml and --env);
// the model is a scripted STAND-IN behind llm-proxy speaking the Responses API (Codex's only wire format), streamed;
// everything else is real, as in qwen-code.test.ts. One headless run (`codex exec --json --strict-config PROMPT`)
// plays the script; the tests read Codex's own JSONL transcript, the audit log and a connect trace.
//
// Requirements proven (A5 differs from Qwen Code: Codex has no fetch tool of its own, and its shell is off):
//  A1  a command runs in the sandbox through mcp-guard and the agent gets its output
//  A2  an argument outside its constraint is refused and reported to the model as a failed tool call
//  A3  held calls while the agent waits: approved, denied by a human, expired after approvals.timeoutSeconds
//  A4  the quarantined tool is never offered; whether the running agent re-lists after the approval is recorded
//  A5  Codex's own tools that reach the network or run commands (shell, web search) are not offered to the model;
//      with its plugin switches turned back on, its own background requests go through HTTPS_PROXY and the egress
//      proxy refuses them (a probe run)
//  A6  only the perimeter's ports on 127.0.0.1 were reached (strace -f connect trace, both runs)
//  A7  the provider key is nowhere on the agent's side; the virtual key reaches llm-proxy only
//  A8  `perimeter audit-log verify` is intact
//  L1  limit: tool_timeout_sec is a hard deadline; the guard's progress notifications do not extend it (probe run
//      with tool_timeout_sec below the hold), so agent-config sets it above approvals.timeoutSeconds
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../fixtures/e2e-support.ts";
import { assertArgumentRefused, assertAudit, assertHeldCalls, assertOnlyPerimeterConnects, assertProviderKeyAbsent, assertSandboxed } from "./claims.ts";
import type { ToolExchange } from "./claims.ts";
import { BASE_ENV, HOLD_SECONDS, auditRecords, configureAgent, runAgent, startOperator, startPerimeter } from "./perimeter.ts";
import type { AgentRun, OperatorAction, Perimeter } from "./perimeter.ts";
import type { ScriptStep } from "./stand-in-model.ts";

const CODEX_ENTRY = join(ROOT, "node_modules/@openai/codex/bin/codex.js");
const CODEX_VERSION = (JSON.parse(readFileSync(join(ROOT, "node_modules/@openai/codex/package.json"), "utf8")) as { version: string }).version;
const RUN_TIMEOUT_MS = 90_000;
/** Below HOLD_SECONDS, above the guard's 10 s progress interval. */
const PROBE_TOOL_TIMEOUT_SECONDS = 11;

const SCRIPT: ScriptStep[] = [
  (turn) => ({ call: turn.tool("sandbox__run"), arguments: { command: ["sh", "-c", "echo hello-from-the-sandbox; id -u"] } }),
  (turn) => ({ call: turn.tool("sandbox__run"), arguments: { command: ["rm", "-rf", "/workspace"] } }),
  (turn) => ({ call: turn.tool("everything__get-sum"), arguments: { a: 2, b: 3 } }),
  (turn) => ({ call: turn.tool("everything__get-sum"), arguments: { a: 4, b: 4 } }),
  (turn) => ({ call: turn.tool("everything__get-sum"), arguments: { a: 1, b: 1 } }),
];
const PROBE_SCRIPT: ScriptStep[] = [(turn) => ({ call: turn.tool("everything__get-sum"), arguments: { a: 7, b: 7 } })];

interface CodexItem {
  type: string;
  tool?: string;
  arguments?: unknown;
  result?: { content?: Array<{ type: string; text?: string }> } | null;
  error?: { message: string } | null;
  status?: string;
}

/** Codex's own record of each MCP call: the completed mcp_tool_call items of `codex exec --json`. */
function toolExchanges(stdout: string): ToolExchange[] {
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { type: string; item?: CodexItem })
    .flatMap((event) => (event.type === "item.completed" && event.item?.type === "mcp_tool_call" ? [event.item] : []))
    .map((item) => ({
      name: item.tool ?? "",
      input: item.arguments,
      output: item.error?.message ?? (item.result?.content ?? []).map((block) => block.text ?? "").join("\n"),
      isError: item.status === "failed",
    }));
}

describe(`Codex CLI ${CODEX_VERSION} behind the perimeter (model: scripted stand-in behind llm-proxy, Responses API)`, { timeout: 240_000 }, () => {
  let setup: Perimeter;
  let home: string;
  let work: string;
  let env: Record<string, string>;
  let environment: Record<string, string>;
  let run: AgentRun;
  let exchanges: ToolExchange[];
  let operatorLog: readonly OperatorAction[] = [];

  const codex = (extra: string[]) => runAgent(process.execPath, [CODEX_ENTRY, "exec", "--json", "--skip-git-repo-check", "--strict-config", ...extra, "Do the scripted steps."], env, work, RUN_TIMEOUT_MS);

  before(async () => {
    setup = await startPerimeter(SCRIPT, { name: "codex" });
    home = join(setup.directory, "home");
    work = join(home, "work");
    mkdirSync(work, { recursive: true });
    environment = await configureAgent(setup, "codex", home, [{ path: ".codex/config.toml" }]);
    env = { ...BASE_ENV, HOME: home, ...environment };
    const operator = startOperator(setup);
    try {
      run = await codex([]);
    } finally {
      await operator.stop();
    }
    operatorLog = operator.log;
    exchanges = toolExchanges(run.stdout);
  });

  after(async () => {
    await setup?.stop();
  });

  const describeRun = () => `exit ${String(run.code)} after ${run.milliseconds} ms; tools: ${JSON.stringify(exchanges, null, 1).slice(0, 6000)}\noperator: ${JSON.stringify(operatorLog)}\nmodel problems: ${setup.model.problems.join("; ")}\nstderr: ${run.stderr.slice(-3000)}`;

  test("the run ends cleanly, the model's script ran to its end, and every model call streamed the Responses API", () => {
    assert.equal(run.code, 0, describeRun());
    assert.deepEqual(setup.model.problems, [], describeRun());
    assert.equal(setup.model.turns.at(-1)?.index, SCRIPT.length, describeRun());
    assert.ok(setup.model.turns.every((turn) => turn.api === "responses" && turn.stream), "Responses API, streamed");
    assert.match(run.stdout, /"type":"turn.completed"/);
  });

  test("A1: a command runs in the bubblewrap sandbox through mcp-guard and the agent gets its output", () => {
    assertSandboxed(exchanges[0], describeRun);
    assert.match(setup.model.turns[1]?.results[0]?.text ?? "", /hello-from-the-sandbox/, "the model saw the output");
  });

  test("A2: an argument outside its constraint is refused by the guard and reported to the model as a failed call", () => {
    assertArgumentRefused(exchanges[1], describeRun);
    assert.match(setup.model.turns[2]?.results[0]?.text ?? "", /denied: argument/);
  });

  test("A3: held calls while the agent waits: approved, denied by a human, expired", () => {
    assertHeldCalls([exchanges[2], exchanges[3], exchanges[4]], describeRun);
    const [expiredTurn, next] = [setup.model.turns[4], setup.model.turns[5]];
    assert.ok(expiredTurn !== undefined && next !== undefined);
    assert.ok(next.at - expiredTurn.at >= HOLD_SECONDS * 1000, `the agent waited the whole hold (${next.at - expiredTurn.at} ms)`);
  });

  test("A4: the quarantined tool is never offered before its definition is approved", () => {
    const offered = setup.model.turns.map((turn) => turn.tools.some((name) => name.endsWith("notes__summarize")));
    assert.equal(offered[0], false);
    assert.ok(setup.model.turns[0]?.tools.some((name) => name.endsWith("notes__lookup")), "its honest sibling is offered");
    assert.ok(operatorLog.some((entry) => entry.what === "tool-definition notes__summarize" && entry.action === "approve"), describeRun());
    const refreshedAt = offered.indexOf(true);
    assert.ok(refreshedAt === -1 || refreshedAt >= 3, `offered only after the approval (turn ${refreshedAt})`);
    // strace shows the JSON-RPC body with its quotes escaped.
    const listings = (run.traffic.match(/\\"method\\":\\"tools\/list\\"/g) ?? []).length;
    assert.ok(listings >= 1, "the capture sees the agent's tools/list (positive control)");
    process.stdout.write(`# codex ${CODEX_VERSION}: tools/list sent ${listings} times; the approved definition offered from turn ${refreshedAt} (-1: not in this run)\n`);
  });

  test("A6 and A7: only the perimeter's ports were reached; the provider key is nowhere on the agent's side", () => {
    assertOnlyPerimeterConnects(run, setup, ["llm", "mcp"]);
    assertProviderKeyAbsent(run, setup, environment, home);
  });

  test("A5 and L1 (probe run): no shell or web tool is offered; with plugins back on, Codex's own requests are refused by the egress proxy; tool_timeout_sec is a hard deadline", async () => {
    for (const turn of setup.model.turns) {
      assert.deepEqual(turn.tools.filter((name) => /^(shell|exec_command|local_shell|apply_patch|web_search|unified_exec)/.test(name)), [], `no command or web tool offered: ${turn.tools.join(", ")}`);
    }
    setup.model.setScript(PROBE_SCRIPT);
    const turnsBefore = setup.model.turns.length;
    const probe = await codex(["-c", `mcp_servers.perimeter.tool_timeout_sec=${PROBE_TOOL_TIMEOUT_SECONDS}`, "--enable", "plugins", "--enable", "remote_plugin"]);
    const [held] = toolExchanges(probe.stdout);
    const context = () => `probe: exit ${String(probe.code)} after ${probe.milliseconds} ms; ${JSON.stringify(held)}\n${probe.stderr.slice(-2000)}`;
    assert.equal(held?.isError, true, context());
    // Codex cut the call at its own deadline although the guard's progress notification arrived (at once and every 10 s).
    assert.match(held?.output ?? "", /timed out|timeout/i, context());
    assert.doesNotMatch(held?.output ?? "", /no human approved/, context());
    const probeTurns = setup.model.turns.slice(turnsBefore);
    const waited = (probeTurns[1]?.at ?? 0) - (probeTurns[0]?.at ?? 0);
    assert.ok(waited >= PROBE_TOOL_TIMEOUT_SECONDS * 1000 && waited < HOLD_SECONDS * 1000, `cut after ${waited} ms, at its deadline, before the hold ended`);
    assertOnlyPerimeterConnects(probe, setup, ["llm", "mcp", "egress"]);
    // A new session is offered the definition approved during the first run: the guard serves it (so A4's "not
    // refreshed" is the running agent's, not the guard's).
    assert.ok(probeTurns[0]?.tools.some((name) => name.endsWith("notes__summarize")), `offered to a new session: ${probeTurns[0]?.tools.join(", ")}`);
    const records = await auditRecords(setup);
    const refused = records.filter((record) => record.component === "egress-proxy" && record.type === "egress-decision" && record.data.decision === "deny").map((record) => String(record.data.host));
    assert.ok(refused.some((host) => /(^|\.)(github\.com|chatgpt\.com|openai\.com)$/.test(host)), `Codex's plugin sync went to the egress proxy and was refused: ${refused.join(", ")}`);
  });

  test("A8: the audit log holds each decision and `perimeter audit-log verify` passes", async () => {
    await assertAudit(setup, { fetched: false });
  });
});
