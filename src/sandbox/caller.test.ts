// Who is calling: mcp-guard forwards the authenticated agent to the sandbox runner, so two agents behind one guard
// have their own named workspaces and quotas there. A real guard (mcp-guard's factory), a real runner and real
// bubblewrap sandboxes, over loopback; the agents use the official MCP client.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { openAuditLog, readAuditRecords } from "../audit-log/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { parseConfig } from "../config/index.ts";
import { createMcpGuard, openGuardDatabase } from "../mcp-guard/index.ts";
import type { McpGuard } from "../mcp-guard/index.ts";
import { eventually } from "../shared/testing.ts";
import { createSandboxServer } from "./server.ts";
import type { SandboxServer } from "./server.ts";
import type { BubblewrapBackend } from "./bubblewrap.ts";
import { testBackend, TEST_LIMITS } from "./test-support.ts";

const ENV = {
  PATH: process.env.PATH,
  HOME: "/tmp",
  HERMES_TOKEN: `hermes-${randomBytes(16).toString("hex")}`,
  OPS_TOKEN: `ops-${randomBytes(16).toString("hex")}`,
  PERIMETER_ADMIN_TOKEN: `admin-${randomBytes(16).toString("hex")}`,
  PERIMETER_SANDBOX_TOKEN: `sandbox-${randomBytes(16).toString("hex")}`,
};

let directory: string;
let backend: BubblewrapBackend;
let runnerAudit: AuditLog;
let runner: SandboxServer;
let guardAudit: AuditLog;
let guardDatabase: ReturnType<typeof openGuardDatabase>;
let guard: McpGuard;
let guardUrl: string;
const clients: Client[] = [];

before(async () => {
  directory = mkdtempSync(join(tmpdir(), "perimeter-sandbox-caller-"));
  runnerAudit = openAuditLog({ path: join(directory, "runner.db") });
  backend = await testBackend();
  runner = createSandboxServer({
    backend,
    token: ENV.PERIMETER_SANDBOX_TOKEN,
    audit: runnerAudit,
    concurrency: 4,
    queueLimit: 8,
    quotas: { concurrentRuns: 4, runsPerMinute: 3 },
    workspaces: { ttlMs: 60_000, maxBytes: 64 * 1024, maxFiles: 50, maxPerCaller: 2, totalBytes: 1024 * 1024 },
    ceiling: TEST_LIMITS,
  });
  const runnerAddress = await runner.listen("127.0.0.1:0");
  const guardPath = join(directory, "guard.db");
  const config = parseConfig(`version: 1
name: callers
mcp:
  pinning: { trustOnFirstUse: true }
  agents: [{ name: hermes, tokenSecret: HERMES_TOKEN }, { name: ops, tokenSecret: OPS_TOKEN }]
  servers:
    sandbox: { builtin: sandbox, url: "${runnerAddress.url}", tools: { allow: [run, write_file, read_file, list_files] } }
audit: { path: ${guardPath} }
`);
  guardAudit = openAuditLog({ path: guardPath });
  guardDatabase = openGuardDatabase(guardPath);
  guard = createMcpGuard(config, { env: ENV, audit: guardAudit, database: guardDatabase }, { listen: "127.0.0.1:0", adminListen: "127.0.0.1:0", backoff: { initialMs: 100, maxMs: 1000 } });
  const { agent } = await guard.listen();
  guardUrl = `http://127.0.0.1:${agent.port}/mcp`;
});

after(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await guard.close();
  guardDatabase.close();
  guardAudit.close();
  await runner.close();
  await backend.close();
  runnerAudit.close();
  rmSync(directory, { recursive: true, force: true });
});

async function agent(token: string): Promise<Client> {
  const client = new Client({ name: "agent", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(guardUrl), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  clients.push(client);
  await eventually(async () => ((await client.listTools()).tools.some((tool) => tool.name === "sandbox__run") ? true : undefined), 20_000, "sandbox__run through the guard");
  return client;
}

type ToolResult = { content?: { type: string; text?: string }[]; isError?: boolean };
const textOf = (result: ToolResult) => (result.content ?? []).map((block) => block.text ?? "").join("\n");
const call = async (client: Client, name: string, args: Record<string, unknown>) => (await client.callTool({ name: `sandbox__${name}`, arguments: args })) as ToolResult;

test("two agents through one guard: each has its own named workspaces and its own quota at the runner, which records who called", async () => {
  const hermes = await agent(ENV.HERMES_TOKEN);
  const ops = await agent(ENV.OPS_TOKEN);

  // The same workspace name is two workspaces: neither agent sees the other's file.
  assert.equal((await call(hermes, "write_file", { workspace: "notes", path: "owner.txt", content: "hermes" })).isError, undefined);
  const opsRead = await call(ops, "read_file", { workspace: "notes", path: "owner.txt" });
  assert.equal(opsRead.isError, true, `ops read hermes' file: ${textOf(opsRead)}`);
  assert.equal(textOf(await call(hermes, "read_file", { workspace: "notes", path: "owner.txt" })), "hermes");

  // Quotas: hermes spends its 3 starts a minute; ops is still served.
  for (let index = 0; index < 2; index++) assert.equal((await call(hermes, "run", { command: ["true"] })).isError, false);
  assert.equal((await call(hermes, "run", { command: ["cat", "owner.txt"], workspace: "notes" })).isError, false);
  const refused = await call(hermes, "run", { command: ["true"] });
  assert.equal(refused.isError, true);
  assert.match(textOf(refused), /quota: hermes has started 3 runs/);
  const served = await call(ops, "run", { command: ["echo", "ops-served"] });
  assert.equal(served.isError, false, textOf(served));
  assert.match(textOf(served), /ops-served/);

  const callers = readAuditRecords(join(directory, "runner.db")).filter((record) => record.type === "sandbox-run" && record.data.phase === "started").map((record) => record.data.caller);
  assert.deepEqual(callers, ["hermes", "hermes", "hermes", "ops"]);
});

test("an agent cannot name itself to the runner: a caller header it sends to the guard is not forwarded", async () => {
  const client = new Client({ name: "agent", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(guardUrl), { requestInit: { headers: { Authorization: `Bearer ${ENV.OPS_TOKEN}`, "X-Perimeter-Caller": "hermes" } } }));
  clients.push(client);
  const read = await call(client, "read_file", { workspace: "notes", path: "owner.txt" });
  assert.equal(read.isError, true, "ops reached hermes' workspace by naming itself hermes");
  const records = readAuditRecords(join(directory, "runner.db")).filter((record) => record.type === "sandbox-file-read");
  assert.equal(records.at(-1)?.data.caller, "ops");
});
