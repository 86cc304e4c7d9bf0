// perimeter replay (issue 20, item 1): recorded calls through mcp-guard's own decision. Each test names the behaviour
// it proves: a policy change shows up as exactly the expected diff in verdicts; expectations drive the exit code;
// traces parse strictly; an audit log written by a real guard (real upstream, real SDK client) replays, with calls
// whose arguments the log could not hold reported as undecided rather than guessed.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, test } from "node:test";
import { runCli } from "../cli/main.ts";
import type { CommandIo } from "../cli/command.ts";
import { parseConfig } from "../config/index.ts";
import { connectAgent, eventually, resultText, startGuard, startRecordingServer } from "../mcp-guard/testing.ts";
import { TraceError, parseTrace, replaySessions } from "./index.ts";
import type { ReplayReport, TraceSession } from "./index.ts";

const BASE = `
version: 1
name: t
mcp:
  servers:
    bank:
      url: https://bank.example.invalid/mcp
      tools:
        allow: [get_balance, send_money, read_file, get_most_recent_transactions]
        approve: [send_money]
      arguments:
        send_money: { recipient: { enum: [GB29NWBK60161331926819, CH9300762011623852957], required: true } }
`;

// The tightened policy: a payee removed from the list, reading transactions dropped, files only under ".", and a
// second approver for every payment (the two-person rule).
const TIGHT = `
version: 1
name: t
mcp:
  servers:
    bank:
      url: https://bank.example.invalid/mcp
      tools:
        allow: [get_balance, send_money, read_file]
        approve: [send_money]
      arguments:
        send_money: { recipient: { enum: [GB29NWBK60161331926819], required: true } }
        read_file: { file_path: { path: { under: "." } } }
approvals:
  tools: [{ tool: "bank__send_money", approvers: 2 }]
  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [1001] }
`;

const TRACE: TraceSession[] = parseTrace(
  JSON.stringify({
    sessions: [
      {
        id: "pay-rent",
        expect: "held",
        calls: [
          { server: "bank", tool: "read_file", arguments: { file_path: "landlord-notices.txt" } },
          { server: "bank", tool: "send_money", arguments: { recipient: "CH9300762011623852957", amount: 1100 } },
        ],
      },
      { id: "spending", expect: "allowed", calls: [{ name: "bank__get_most_recent_transactions", arguments: { n: 100 } }, { name: "bank__get_balance" }] },
      { id: "exfiltrate", expect: "refused", calls: [{ server: "bank", tool: "read_file", arguments: { file_path: "/etc/shadow" } }] },
    ],
  }),
  "trace.json",
);

/** "session#call: decision" for every call, to compare two replays. */
function verdicts(report: ReplayReport): Map<string, string> {
  return new Map(report.sessions.flatMap((session) => session.calls.map((call) => [`${session.id}#${call.index + 1}`, `${call.decision}${call.stage === undefined ? "" : `:${call.stage}`}${call.approvers === undefined ? "" : `:${call.approvers}`}`])));
}

function capture(cwd: string, env: Record<string, string> = {}): { io: CommandIo; stdout: () => string; stderr: () => string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on("data", (chunk: Buffer) => out.push(chunk));
  stderr.on("data", (chunk: Buffer) => err.push(chunk));
  return {
    io: { stdout, stderr, stdin: new PassThrough(), env, cwd, signal: new AbortController().signal, onReload: () => undefined },
    stdout: () => Buffer.concat(out).toString("utf8"),
    stderr: () => Buffer.concat(err).toString("utf8"),
  };
}

describe("replay: verdicts come from mcp-guard's decision", () => {
  test("a policy change shows up as exactly the expected diff in verdicts", () => {
    const before = verdicts(replaySessions(parseConfig(BASE), TRACE));
    const afterTightening = verdicts(replaySessions(parseConfig(TIGHT), TRACE));
    assert.deepEqual(Object.fromEntries(before), {
      "pay-rent#1": "allow",
      "pay-rent#2": "hold:1",
      "spending#1": "allow",
      "spending#2": "allow",
      "exfiltrate#1": "allow",
    });
    const diff = [...before.keys()].filter((key) => before.get(key) !== afterTightening.get(key)).map((key) => `${key}: ${before.get(key)} -> ${afterTightening.get(key)}`);
    assert.deepEqual(diff, [
      "pay-rent#2: hold:1 -> deny:arguments",
      "spending#1: allow -> deny:allowlist",
      "exfiltrate#1: allow -> deny:arguments",
    ]);
  });

  test("a session is refused by one denial, held by one hold, and its expectation is met only by that outcome", () => {
    const loose = replaySessions(parseConfig(BASE), TRACE);
    assert.deepEqual(
      loose.sessions.map((session) => [session.id, session.outcome, session.met]),
      [
        ["pay-rent", "held", true],
        ["spending", "allowed", true],
        ["exfiltrate", "allowed", false],
      ],
    );
    assert.deepEqual(loose.totals.expectations, { met: 2, unmet: 1 });
    const tight = replaySessions(parseConfig(TIGHT), TRACE);
    assert.deepEqual(
      tight.sessions.map((session) => [session.id, session.outcome, session.met]),
      [
        ["pay-rent", "refused", false],
        ["spending", "refused", false],
        ["exfiltrate", "refused", true],
      ],
    );
  });

  test("a tool list, when given, makes a call to an unlisted tool a denial, as the live guard's catalog does", () => {
    const report = replaySessions(parseConfig(BASE), TRACE, { listing: new Map([["bank", new Set(["get_balance", "read_file", "send_money"])]]) });
    assert.equal(verdicts(report).get("spending#1"), "deny:unlisted");
    assert.equal(verdicts(report).get("spending#2"), "allow");
  });
});

describe("replay: the trace format parses strictly", () => {
  const bad: Array<[string, string, string, RegExp]> = [
    ["an unknown field", "t.json", JSON.stringify({ sessions: [{ id: "a", calls: [{ name: "x__y", args: {} }] }] }), /unrecognized key.*args|args/i],
    ["both a name and server/tool", "t.json", JSON.stringify([{ id: "a", calls: [{ name: "x__y", server: "x", tool: "y" }] }]), /either as "server" and "tool" or as "name"/],
    ["an expectation that is not one of the three", "t.json", JSON.stringify([{ id: "a", expect: "blocked", calls: [{ name: "x__y" }] }]), /expect is one of allowed, held, refused/],
    ["arguments that are not an object", "t.json", JSON.stringify([{ id: "a", calls: [{ name: "x__y", arguments: [1] }] }]), /arguments/],
    ["a session id used twice", "t.json", JSON.stringify([{ id: "a", calls: [{ name: "x__y" }] }, { id: "a", calls: [{ name: "x__y" }] }]), /appears twice/],
    ["a JSONL line that is not JSON, named by line", "t.jsonl", `{"session":"a","name":"x__y"}\n{oops`, /t\.jsonl:2: not JSON/],
    ["JSONL lines of one session disagreeing on its expectation", "t.jsonl", `{"session":"a","name":"x__y","expect":"allowed"}\n{"session":"a","name":"x__z","expect":"refused"}`, /t\.jsonl:2: session "a" has expect "allowed" at line 1/],
  ];
  for (const [name, file, text, message] of bad) {
    test(`refused: ${name}`, () => {
      assert.throws(() => parseTrace(text, file), (error: unknown) => error instanceof TraceError && message.test(error.message));
    });
  }

  test("JSONL call lines group into sessions in file order; session lines stand alone", () => {
    const sessions = parseTrace(
      [`{"session":"a","agent":"hermes","server":"bank","tool":"get_balance"}`, `{"id":"b","expect":"refused","calls":[{"name":"bank__x"}]}`, `{"session":"a","name":"bank__send_money","arguments":{"amount":1},"expect":"held"}`, ""].join("\n"),
      "t.jsonl",
    );
    assert.deepEqual(
      sessions.map((session) => [session.id, session.agent, session.expect, session.calls.map((call) => call.name)]),
      [
        ["a", "hermes", "held", ["bank__get_balance", "bank__send_money"]],
        ["b", undefined, "refused", ["bank__x"]],
      ],
    );
  });
});

describe("perimeter replay (the command)", () => {
  let directory: string;
  before(() => {
    directory = mkdtempSync(join(tmpdir(), "replay-cli-"));
    writeFileSync(join(directory, "base.yaml"), BASE);
    writeFileSync(join(directory, "tight.yaml"), TIGHT);
    writeFileSync(join(directory, "trace.json"), JSON.stringify({ sessions: TRACE.map(({ source: _source, ...session }) => session) }));
    writeFileSync(join(directory, "benign.jsonl"), `{"session":"ok","expect":"allowed","name":"bank__get_balance"}\n`);
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  test("exit 1 when a session marked refused gets through, naming it; 0 when every expectation holds", async () => {
    const failing = capture(directory);
    assert.equal(await runCli(["replay", "-c", "base.yaml", "trace.json"], failing.io), 1);
    assert.match(failing.stdout(), /● exfiltrate: ALLOWED, EXPECTED REFUSED/);
    assert.match(failing.stdout(), /expectations: 2 met, 1 unmet/);
    const passing = capture(directory);
    assert.equal(await runCli(["replay", "-c", "base.yaml", "benign.jsonl"], passing.io), 0, passing.stderr());
  });

  test("exit 1 when a session marked allowed is not (the tighter policy drops a tool it uses); JUnit names the failure", async () => {
    const run = capture(directory);
    assert.equal(await runCli(["replay", "-c", "tight.yaml", "trace.json", "--format", "junit"], run.io), 1);
    const xml = run.stdout();
    assert.match(xml, /<testsuites name="perimeter replay" tests="3" failures="2"/);
    assert.match(xml, /<testcase classname="perimeter.replay" name="spending">\s*<failure message="expected allowed, got refused"/);
    assert.match(xml, /<testcase classname="perimeter.replay" name="exfiltrate">\s*<system-out>refused \(as expected\)/);
  });

  test("JSON output carries every call's verdict and the assumptions the replay makes", async () => {
    const run = capture(directory);
    await runCli(["replay", "-c", "base.yaml", "trace.json", "--format", "json"], run.io);
    const report = JSON.parse(run.stdout()) as ReplayReport;
    assert.equal(report.sessions[0]?.calls[1]?.decision, "hold");
    assert.match(report.assumptions.join("\n"), /calls in flight/);
  });

  test("usage mistakes and bad traces exit 2 with a message saying what to do", async () => {
    for (const [args, message] of [
      [["replay", "trace.json"], /pass the policy to replay against with -c/],
      [["replay", "-c", "base.yaml"], /name trace files, or an audit log with --from-audit/],
      [["replay", "-c", "base.yaml", "missing.json"], /missing\.json: no such file/],
      [["replay", "-c", "base.yaml", "trace.json", "--format", "xml"], /--format is one of text, json, junit/],
      [["replay", "-c", "base.yaml", "--from-audit", "nope.db"], /no audit log at/],
    ] as const) {
      const run = capture(directory);
      assert.equal(await runCli([...args], run.io), 2, args.join(" "));
      assert.match(run.stderr(), message);
    }
  });
});

describe("perimeter replay --from-audit: a log written by a real guard", { timeout: 120_000 }, () => {
  const ENV = {
    PATH: process.env.PATH,
    HOME: "/tmp",
    PERIMETER_AGENT_TOKEN: "agent-token-replay-0123456789abcdef",
    PERIMETER_ADMIN_TOKEN: "admin-token-replay-abcdefghij012345",
  };
  let directory: string;
  let auditPath: string;

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), "replay-audit-"));
    const web = await startRecordingServer();
    const guardPolicy = `
version: 1
name: t
mcp:
  pinning: { trustOnFirstUse: true }
  limits: { maxRequestBytes: 8388608 }
  # An account number shape the log must not keep: recorded arguments hold [REDACTED] in its place.
  redact: ["ACCT-[0-9]{6}"]
  servers:
    web:
      url: ${web.url}
      tools: { allow: [echo, create_issue, describe-me], approve: [create_issue] }
      arguments:
        create_issue: { owner: { enum: [my-org, other-org], required: true } }
approvals: { timeoutSeconds: 30 }
audit: { path: AUDIT_PATH }
`;
    const started = await startGuard(guardPolicy, ENV, { directory });
    auditPath = started.auditPath;
    try {
      await eventually(() => (started.guard.upstream("web")?.state().state === "ready" ? true : undefined), 20_000, "the upstream ready");
      const agent = await connectAgent(started.url, ENV.PERIMETER_AGENT_TOKEN, "2025-11-25");
      try {
        assert.match(resultText(await agent.callTool({ name: "web__echo", arguments: { message: "hello" } })), /web echo: hello/);
        await agent.callTool({ name: "web__describe-me", arguments: {} });
        assert.equal((await agent.callTool({ name: "web__create_issue", arguments: { owner: "evil-org", repo: "x" } })).isError, true);
        // Held: a human approves it through the guard's own store while the agent waits.
        const approved = async (args: Record<string, unknown>) => {
          const held = agent.callTool({ name: "web__create_issue", arguments: args });
          const request = await eventually(() => started.guard.approvals.list({ status: "pending", kind: "tool-call" })[0], 10_000, "the held call");
          started.guard.approvals.decide(request.id, { decision: "approve", approver: "admin:test" });
          return resultText(await held);
        };
        assert.match(await approved({ owner: "other-org", repo: "app", title: "t" }), /created issue in other-org\/app/);
        assert.match(await approved({ owner: "my-org", repo: "app", title: "ACCT-123456" }), /created issue in my-org\/app/);
        // Nested past what a record holds: the log keeps a placeholder, not the arguments.
        let deep: Record<string, unknown> = { repo: "x" };
        for (let level = 0; level < 40; level++) deep = { a: deep };
        await agent.callTool({ name: "web__create_issue", arguments: { owner: "my-org", ...deep } }).catch(() => undefined);
        await agent.callTool({ name: "web__nosuch", arguments: {} });
      } finally {
        await agent.close();
      }
    } finally {
      await started.close();
      await web.close();
    }
    // The policy the operator is about to deploy: echo dropped, other-org no longer an owner.
    writeFileSync(
      join(directory, "new.yaml"),
      `
version: 1
name: t
mcp:
  servers:
    web:
      url: https://web.example.invalid/mcp
      tools: { allow: [create_issue, describe-me], approve: [create_issue] }
      arguments:
        create_issue: { owner: { enum: [my-org], required: true }, title: { pattern: "[A-Za-z ]+" } }
`,
    );
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  test("each recorded call is replayed under the new policy, beside what was recorded, and the changes are counted", async () => {
    const run = capture(directory);
    assert.equal(await runCli(["replay", "-c", "new.yaml", "--from-audit", auditPath, "--format", "json"], run.io), 0, run.stderr());
    const report = JSON.parse(run.stdout()) as ReplayReport;
    assert.equal(report.sessions.length, 1);
    const session = report.sessions[0]!;
    assert.equal(session.id, "audit:hermes");
    const rows = session.calls.map((call) => [call.name, call.recorded?.decision, call.decision, call.stage ?? null, call.changed ?? null]);
    assert.deepEqual(rows, [
      ["web__echo", "allow", "deny", "allowlist", true],
      ["web__describe-me", "allow", "allow", null, false],
      ["web__create_issue", "deny", "deny", "arguments", false],
      ["web__create_issue", "hold", "deny", "arguments", true],
      // The log holds the title redacted, and the new title pattern refuses the placeholder: not the agent's value.
      ["web__create_issue", "hold", "undecided", "arguments", null],
      // The record could not hold these arguments, and a constraint reads them: the replay does not guess.
      ["web__create_issue", "deny", "undecided", null, null],
      ["web__nosuch", "deny", "deny", "allowlist", false],
    ]);
    assert.match(session.calls[4]?.reason ?? "", /does not match.*but the audit log holds some of these arguments redacted/);
    assert.match(session.calls[5]?.reason ?? "", /the arguments were not recorded \(.*nested more than 32 levels.*\), and 2 argument constraint\(s\) on this tool cannot be checked/);
    assert.equal(report.totals.changed, 2);
    assert.equal(session.outcome, "refused");
  });

  test("the text report marks what changed; --agent selects one agent's calls", async () => {
    const run = capture(directory);
    assert.equal(await runCli(["replay", "-c", "new.yaml", "--from-audit", auditPath], run.io), 0);
    assert.match(run.stdout(), /DENY {2}web__echo {3}\[was allow\]/);
    assert.match(run.stdout(), /2 decided differently than recorded/);
    const none = capture(directory);
    await runCli(["replay", "-c", "new.yaml", "--from-audit", auditPath, "--agent", "someone-else", "--format", "json"], none.io);
    assert.equal((JSON.parse(none.stdout()) as ReplayReport).sessions.length, 0);
  });
});
