// The commands as an operator runs them: `perimeter serve mcp-guard -c perimeter.yaml` in its own process, and
// `perimeter approvals list|show|approve|deny -c perimeter.yaml` deciding held calls and tool-definition reviews over
// the admin listener named in the config. Also: a guard killed with SIGKILL mid-traffic leaves an intact audit chain
// and restarts onto it.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { verifyAuditLog } from "../audit-log/index.ts";
import type { Approval } from "../approvals/index.ts";
import { connectAgent, eventually, resultText, startRecordingServer } from "./testing.ts";
import type { RecordingServer } from "./testing.ts";
import { freePort } from "../shared/index.ts";

const BIN = join(import.meta.dirname, "../../bin/perimeter.js");
const ENV = {
  PATH: process.env.PATH ?? "",
  HOME: tmpdir(),
  USER: "alice",
  PERIMETER_AGENT_TOKEN: "cli-agent-token-0123456789",
  PERIMETER_ADMIN_TOKEN: "cli-admin-token-9876543210",
  WEB_TOKEN: "cli-upstream-token-abcdef123",
};


function perimeter(args: string[], env: Record<string, string> = ENV): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr });
    });
  });
}

interface Served {
  child: ChildProcessWithoutNullStreams;
  url: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function serve(configFile: string): Promise<Served> {
  const child = spawn(process.execPath, [BIN, "serve", "mcp-guard", "-c", configFile, "--listen", "127.0.0.1:0"], { env: ENV });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  const url = await eventually(() => /listening on (http:\/\/\S+\/mcp)/.exec(stdout)?.[1], 20_000, `the guard to listen (stderr: ${stderr})`);
  return { child, url, stderr: () => stderr, exited };
}

describe("perimeter serve mcp-guard and perimeter approvals", { timeout: 120_000 }, () => {
  let web: RecordingServer;
  let directory: string;
  let configFile: string;
  let auditPath: string;
  let adminPort: number;

  before(async () => {
    adminPort = await freePort();
    web = await startRecordingServer();
    directory = mkdtempSync(join(tmpdir(), "mcp-guard-cli-"));
    configFile = join(directory, "perimeter.yaml");
    auditPath = join(directory, "state", "audit.db");
    writeFileSync(
      configFile,
      `version: 1
name: cli
mcp:
  admin: { listen: "127.0.0.1:${adminPort}" }
  servers:
    web:
      url: ${web.url}
      headers: { Authorization: "Bearer \${WEB_TOKEN}" }
      tools: { allow: [echo, create_issue], approve: [create_issue] }
approvals: { timeoutSeconds: 30 }
audit: { path: ${auditPath} }
`,
    );
  });
  after(async () => {
    await web.close();
    rmSync(directory, { recursive: true, force: true });
  });

  test("operators review new tool definitions and decide held calls with the CLI; the agent's call waits for them", async () => {
    const served = await serve(configFile);
    const client = await connectAgent(served.url, ENV.PERIMETER_AGENT_TOKEN, "2025-11-25");
    try {
      // Trust-on-first-use is off: both tools wait for review.
      assert.deepEqual((await client.listTools()).tools, []);
      const reviews = await perimeter(["approvals", "list", "-c", configFile, "--kind", "tool-definition"]);
      assert.equal(reviews.code, 0, reviews.stderr);
      assert.match(reviews.stdout, /ID\s+KIND\s+STATUS/);
      assert.match(reviews.stdout, /web__create_issue .*new definition/);
      const listed = JSON.parse((await perimeter(["approvals", "list", "--json", "-c", configFile])).stdout) as Approval[];
      const reviewIds = listed.filter((approval) => approval.kind === "tool-definition").map((approval) => approval.id);
      assert.equal(reviewIds.length, 2);
      const approvedReviews = await perimeter(["approvals", "approve", ...reviewIds, "-c", configFile]);
      assert.equal(approvedReviews.code, 0, approvedReviews.stderr);
      await eventually(async () => ((await client.listTools()).tools.length === 2 ? true : undefined), 10_000, "the reviewed tools");

      const held = client.callTool({ name: "web__create_issue", arguments: { owner: "my-org", repo: "app", title: "from the CLI test" } });
      const pending = await eventually(async () => {
        const result = await perimeter(["approvals", "list", "--json", "-c", configFile]);
        return (JSON.parse(result.stdout) as Approval[]).find((approval) => approval.kind === "tool-call");
      }, 10_000, "the held call");
      const table = await perimeter(["approvals", "list", "-c", configFile]);
      assert.match(table.stdout, new RegExp(`${pending.id}\\s+tool-call\\s+pending\\s+hermes\\s+web__create_issue`));
      assert.match(table.stdout, /args \{"owner":"my-org","repo":"app","title":"from the CLI test"\}/);
      const shown = await perimeter(["approvals", "show", pending.id, "-c", configFile]);
      assert.match(shown.stdout, /"title": "from the CLI test"/);
      const approved = await perimeter(["approvals", "approve", pending.id, "--reason", "ticket 42", "-c", configFile]);
      assert.equal(approved.code, 0, approved.stderr);
      assert.equal(approved.stdout.trim(), `${pending.id} approved (web__create_issue)`);
      assert.equal(resultText(await held), "created issue in my-org/app: from the CLI test");
      const decided = JSON.parse((await perimeter(["approvals", "show", pending.id, "--json", "-c", configFile])).stdout) as Approval;
      assert.equal(decided.approver, "admin:alice");
      assert.equal(decided.reason, "ticket 42");
      assert.equal(decided.status, "used");

      const again = await perimeter(["approvals", "deny", pending.id, "-c", configFile]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /is used; only pending requests can be decided/);
      const unknown = await perimeter(["approvals", "approve", "cnosuchid22", "-c", configFile]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /no approval request cnosuchid22/);
      const noToken = await perimeter(["approvals", "list", "-c", configFile], { ...ENV, PERIMETER_ADMIN_TOKEN: "" });
      assert.equal(noToken.code, 2);
      assert.match(noToken.stderr, /PERIMETER_ADMIN_TOKEN/);
      const agentToken = await perimeter(["approvals", "approve", pending.id, "-c", configFile], { ...ENV, PERIMETER_ADMIN_TOKEN: ENV.PERIMETER_AGENT_TOKEN });
      assert.equal(agentToken.code, 1);
      assert.match(agentToken.stderr, /needs the admin bearer token/);
    } finally {
      await client.close();
      served.child.kill("SIGTERM");
    }
    const { code } = await served.exited;
    assert.equal(code, 0, "SIGTERM is a clean shutdown");
    const verification = verifyAuditLog(auditPath);
    assert.equal(verification.ok, true, JSON.stringify(verification));
  });

  test("a guard killed with SIGKILL in the middle of traffic leaves an intact audit chain and restarts onto it", async () => {
    const served = await serve(configFile);
    const client = await connectAgent(served.url, ENV.PERIMETER_AGENT_TOKEN, "2026-07-28");
    let completed = 0;
    const traffic = Array.from({ length: 4 }, async () => {
      for (let index = 0; index < 500; index++) {
        try {
          const result = await client.callTool({ name: "web__echo", arguments: { message: `m${index}` } });
          if (result.isError !== true) completed += 1;
        } catch {
          return;
        }
      }
    });
    await eventually(() => (completed >= 40 ? true : undefined), 20_000, "traffic to flow");
    served.child.kill("SIGKILL");
    assert.equal((await served.exited).signal, "SIGKILL");
    await Promise.all(traffic);
    await client.close().catch(() => undefined);
    const afterKill = verifyAuditLog(auditPath);
    assert.equal(afterKill.ok, true, JSON.stringify(afterKill));

    const restarted = await serve(configFile);
    // "listening" comes before the upstream connection: wait for it, as an agent retrying would.
    await eventually(async () => {
      const health = (await (await fetch(`http://127.0.0.1:${adminPort}/healthz`)).json()) as { upstreams?: Record<string, string> };
      return health.upstreams?.web === "ready" ? true : undefined;
    }, 20_000, "the restarted guard's upstream to be ready");
    const again = await connectAgent(restarted.url, ENV.PERIMETER_AGENT_TOKEN, "2025-11-25");
    try {
      assert.equal(resultText(await again.callTool({ name: "web__echo", arguments: { message: "after restart" } })), "web echo: after restart");
    } finally {
      await again.close();
      restarted.child.kill("SIGTERM");
      await restarted.exited;
    }
    const final = verifyAuditLog(auditPath);
    assert.equal(final.ok, true, JSON.stringify(final));
    assert.ok(final.ok && afterKill.ok && final.records > afterKill.records, "the restarted guard appended to the same chain");
  });

  test("builtin sandbox end to end: the agent runs a command in the real sandbox runner (bubblewrap) through the guard, which alone holds the runner's token", async () => {
    const sandboxToken = "sandbox-runner-token-cli-0099887766";
    const sandboxPort = await freePort();
    const sandboxConfig = join(directory, "sandbox.yaml");
    writeFileSync(
      sandboxConfig,
      `version: 1
name: cli
mcp:
  admin: { listen: "127.0.0.1:${await freePort()}" }
  pinning: { trustOnFirstUse: true }
  servers:
    sandbox: { builtin: sandbox, tools: { allow: [run] } }
sandbox: { backend: bubblewrap, listen: "127.0.0.1:${sandboxPort}" }
audit: { path: ${join(directory, "sandbox-audit.db")} }
`,
    );
    const env = { ...ENV, PERIMETER_SANDBOX_TOKEN: sandboxToken };
    const runner = spawn(process.execPath, [BIN, "serve", "sandbox", "-c", sandboxConfig], { env });
    let runnerOutput = "";
    runner.stderr.on("data", (chunk: Buffer) => (runnerOutput += chunk.toString()));
    runner.stdout.on("data", (chunk: Buffer) => (runnerOutput += chunk.toString()));
    const runnerExited = new Promise((resolve) => runner.on("close", resolve));
    const guard = spawn(process.execPath, [BIN, "serve", "mcp-guard", "-c", sandboxConfig, "--listen", "127.0.0.1:0"], { env });
    let guardOut = "";
    guard.stdout.on("data", (chunk: Buffer) => (guardOut += chunk.toString()));
    const guardExited = new Promise((resolve) => guard.on("close", resolve));
    try {
      await eventually(() => (/listening on/.test(runnerOutput) ? true : undefined), 30_000, `the sandbox runner (${runnerOutput})`);
      const url = await eventually(() => /listening on (http:\/\/\S+\/mcp)/.exec(guardOut)?.[1], 20_000, "the guard");
      const client = await connectAgent(url, ENV.PERIMETER_AGENT_TOKEN, "2026-07-28");
      try {
        await eventually(async () => ((await client.listTools()).tools.some((tool) => tool.name === "sandbox__run") ? true : undefined), 20_000, "sandbox__run");
        const result = await client.callTool({ name: "sandbox__run", arguments: { command: ["sh", "-c", "echo from-the-box; id -u"] } }, { timeout: 60_000 });
        assert.notEqual(result.isError, true, resultText(result));
        assert.match(String((result.structuredContent as { stdout?: string }).stdout), /^from-the-box\n\d+\n$/);
        assert.ok(!JSON.stringify(result).includes(sandboxToken));
      } finally {
        await client.close();
      }
    } finally {
      guard.kill("SIGTERM");
      runner.kill("SIGTERM");
      await Promise.all([guardExited, runnerExited]);
    }
  });

  test("serve mcp-guard refuses to start without -c, with a missing token, when the admin token equals an agent token, or on the admin address", async () => {
    const noConfig = await perimeter(["serve", "mcp-guard"]);
    assert.equal(noConfig.code, 2);
    assert.match(noConfig.stderr, /-c perimeter\.yaml/);
    const missing = await perimeter(["serve", "mcp-guard", "-c", configFile], { ...ENV, WEB_TOKEN: "" });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /WEB_TOKEN/);
    assert.ok(!missing.stderr.includes(ENV.PERIMETER_AGENT_TOKEN));
    const shared = await perimeter(["serve", "mcp-guard", "-c", configFile], { ...ENV, PERIMETER_ADMIN_TOKEN: ENV.PERIMETER_AGENT_TOKEN });
    assert.equal(shared.code, 2);
    assert.match(shared.stderr, /the agent could approve its own calls/);
    assert.ok(!shared.stderr.includes(ENV.PERIMETER_AGENT_TOKEN), "the error names the variable, not the value");
    const sameListener = await perimeter(["serve", "mcp-guard", "-c", configFile, "--listen", `127.0.0.1:${adminPort}`]);
    assert.equal(sameListener.code, 2);
    assert.match(sameListener.stderr, /must be different addresses/);
  });
});
