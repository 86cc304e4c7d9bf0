// The sandbox MCP server over real Streamable HTTP with the official MCP client, real bubblewrap sandboxes and the
// real audit log (SQLite in a temp directory).
import { uploadAfterRefusal } from "../shared/testing.ts";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { openAuditLog, readAuditRecords } from "../audit-log/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { createSandboxServer } from "./server.ts";
import type { SandboxAuditSink, SandboxServer, SandboxServerOptions } from "./server.ts";
import type { BubblewrapBackend } from "./bubblewrap.ts";
import type { SandboxBackend } from "./task.ts";
import { hostProcessesWith, testBackend, TEST_LIMITS } from "./test-support.ts";

const TOKEN = randomBytes(24).toString("hex");
let directory: string;
let backend: BubblewrapBackend;
let audit: AuditLog;
let server: SandboxServer;
let url: string;
let clock = Date.now();
const started: SandboxServer[] = [];

async function startServer(overrides: Partial<SandboxServerOptions> = {}): Promise<{ server: SandboxServer; url: string }> {
  const instance = createSandboxServer({
    backend,
    token: TOKEN,
    audit,
    concurrency: 4,
    queueLimit: 8,
    quotas: { concurrentRuns: 4, runsPerMinute: 1000 },
    workspaces: { ttlMs: 60_000, maxBytes: 64 * 1024, maxFiles: 50, maxPerCaller: 2, totalBytes: 1024 * 1024 },
    ceiling: { ...TEST_LIMITS, timeoutMs: 30_000 },
    now: () => clock,
    ...overrides,
  });
  started.push(instance);
  const address = await instance.listen("127.0.0.1:0");
  return { server: instance, url: address.url };
}

async function connect(target: string, caller?: string, version?: "2026-07-28"): Promise<Client> {
  const client = new Client({ name: "sandbox-test", version: "1.0.0" }, version === undefined ? {} : { versionNegotiation: { mode: { pin: version } } });
  await client.connect(new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers: { Authorization: `Bearer ${TOKEN}`, ...(caller !== undefined ? { "X-Perimeter-Caller": caller } : {}) } } }));
  return client;
}

type ToolResult = { content?: { type: string; text?: string }[]; structuredContent?: Record<string, unknown>; isError?: boolean };

async function call(client: Client, name: string, args: Record<string, unknown>, options: { signal?: AbortSignal } = {}): Promise<ToolResult> {
  return (await client.callTool({ name, arguments: args }, options)) as ToolResult;
}

const textOf = (result: ToolResult) => (result.content ?? []).map((block) => block.text ?? "").join("\n");

before(async () => {
  directory = mkdtempSync(join(tmpdir(), "perimeter-sandbox-server-"));
  audit = openAuditLog({ path: join(directory, "audit.db") });
  backend = await testBackend();
  ({ server, url } = await startServer());
});

after(async () => {
  for (const instance of started) await instance.close();
  await backend.close();
  audit.close();
  rmSync(directory, { recursive: true, force: true });
});

test("the endpoint needs the bearer token: none or a wrong one gets 401 with WWW-Authenticate; /healthz is open", async () => {
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
  const missing = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } });
  assert.equal(missing.status, 401);
  assert.match(missing.headers.get("www-authenticate") ?? "", /^Bearer realm="perimeter-sandbox"$/);
  const wrong = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}x` } });
  assert.equal(wrong.status, 401);
  assert.match(wrong.headers.get("www-authenticate") ?? "", /error="invalid_token"/);
  const health = await fetch(url.replace(/\/mcp$/, "/healthz"));
  assert.equal(health.status, 200);
});

test("metrics are served on a listener of their own without the runner's token, which runs nothing; the MCP listener no longer serves them", async () => {
  const metricsAddress = await server.listenMetrics("127.0.0.1:0");
  const metrics = await fetch(metricsAddress.url);
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^# HELP perimeter_sandbox_runs_total /m);
  assert.equal((await fetch(metricsAddress.url.replace(/\/metrics$/, "/healthz"))).status, 200);
  // The metrics port is no way in: no MCP there, with or without the token.
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
  const mcp = await fetch(metricsAddress.url.replace(/\/metrics$/, "/mcp"), { method: "POST", body, headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${TOKEN}` } });
  assert.equal(mcp.status, 404);
  // Whoever scrapes metrics needs no token, so the token that runs commands is not handed to the scraper.
  const onMcpListener = await fetch(url.replace(/\/mcp$/, "/metrics"), { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(onMcpListener.status, 404);
  assert.match(await onMcpListener.text(), /--metrics-listen/);
});

test("a client without the token streaming a huge body is cut off after its 401, not read to the end", async () => {
  const target = new URL(url);
  const head = `POST /mcp HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\nContent-Length: ${1024 ** 3}\r\n\r\n`;
  const attempt = await uploadAfterRefusal({ host: target.hostname, port: Number(target.port) }, head);
  assert.ok(attempt.closed, `the runner kept reading (${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB sent)`);
  assert.match(attempt.answer, /^HTTP\/1\.1 401 /);
  assert.ok(attempt.sentBytes < 256 * 1024 * 1024, `${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB accepted before the close`);
});

test("a foreign Host header is refused (DNS rebinding) even with the token", async () => {
  const port = new URL(url).port;
  const response = await new Promise<number>((resolve, reject) => {
    import("node:http").then(({ request }) => {
      const outgoing = request({ host: "127.0.0.1", port, path: "/mcp", method: "POST", headers: { host: `evil.example:${port}`, authorization: `Bearer ${TOKEN}`, "content-type": "application/json" } }, (incoming) => {
        incoming.resume();
        resolve(incoming.statusCode ?? 0);
      });
      outgoing.on("error", reject);
      outgoing.end(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }));
    }, reject);
  });
  assert.equal(response, 403);
});

test("tools/list offers run, write_file, read_file and list_files with honest annotations", async () => {
  const client = await connect(url);
  const { tools } = await client.listTools();
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  assert.deepEqual([...byName.keys()].sort(), ["list_files", "read_file", "run", "write_file"]);
  assert.deepEqual(byName.get("run")?.annotations, { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false });
  assert.equal(byName.get("read_file")?.annotations?.readOnlyHint, true);
  assert.equal(byName.get("list_files")?.annotations?.readOnlyHint, true);
  assert.equal(byName.get("write_file")?.annotations?.destructiveHint, true);
  assert.equal(byName.get("write_file")?.annotations?.idempotentHint, true);
  await client.close();
});

test("run: a python program with input files returns its output and the files it was asked for", async () => {
  const client = await connect(url);
  const result = await call(client, "run", {
    command: ["python3", "main.py"],
    files: [{ path: "main.py", content: "import sys\nd=open('data.txt').read()\nopen('out.txt','w').write(d.upper())\nprint('ok', len(d))\nprint('warn', file=sys.stderr)\n" }, { path: "data.txt", content: "hello" }],
    collect: ["out.txt"],
  });
  assert.equal(result.isError, false, textOf(result));
  const structured = result.structuredContent as { exitCode: number; stdout: string; stderr: string; files: { path: string; content: string }[]; reason: string };
  assert.equal(structured.exitCode, 0);
  assert.equal(structured.stdout, "ok 5\n");
  assert.equal(structured.stderr, "warn\n");
  assert.deepEqual(structured.files.map((file) => [file.path, file.content]), [["out.txt", "HELLO"]]);
  assert.match(textOf(result), /exit code: 0; ended by: exit/);
  await client.close();
});

test("run: every call gets a fresh workspace unless it names one", async () => {
  const client = await connect(url);
  await call(client, "run", { script: "echo secret > left.txt" });
  const second = await call(client, "run", { script: "ls -A; echo end" });
  assert.equal((second.structuredContent as { stdout: string }).stdout, "end\n");
  await client.close();
});

test("named workspaces: write_file, run, list_files and read_file share files across calls", async () => {
  const client = await connect(url);
  const name = `ws-${randomBytes(3).toString("hex")}`;
  assert.equal((await call(client, "write_file", { workspace: name, path: "src/in.txt", content: "abc" })).isError, undefined);
  const run = await call(client, "run", { workspace: name, script: "cat src/in.txt; tr a-z A-Z < src/in.txt > out.txt", collect: ["out.txt"] });
  assert.equal((run.structuredContent as { stdout: string }).stdout, "abc");
  const listed = await call(client, "list_files", { workspace: name });
  assert.deepEqual((listed.structuredContent as { files: { path: string }[] }).files.map((file) => file.path), ["out.txt", "src/in.txt"]);
  const read = await call(client, "read_file", { workspace: name, path: "out.txt" });
  assert.equal(textOf(read), "ABC");
  // Another caller with the same workspace name sees nothing of it.
  const other = await connect(url, "other-agent");
  const foreign = await call(other, "read_file", { workspace: name, path: "out.txt" });
  assert.equal(foreign.isError, true);
  await other.close();
  await client.close();
});

test("named workspaces expire after their idle TTL and are bounded in size and number per caller", async () => {
  const client = await connect(url, "ttl-caller");
  await call(client, "write_file", { workspace: "short", path: "a.txt", content: "x" });
  clock += 61_000;
  const expired = await call(client, "read_file", { workspace: "short", path: "a.txt" });
  assert.equal(expired.isError, true);
  assert.match(textOf(expired), /may have expired/);
  const big = await call(client, "write_file", { workspace: "big", path: "a.bin", content: Buffer.alloc(70 * 1024).toString("base64"), encoding: "base64" });
  assert.equal(big.isError, true);
  assert.match(textOf(big), /the limit is 65536/);
  await call(client, "write_file", { workspace: "one", path: "a", content: "1" });
  await call(client, "write_file", { workspace: "two", path: "a", content: "2" });
  const third = await call(client, "write_file", { workspace: "three", path: "a", content: "3" });
  assert.match(textOf(third), /already hold 2 workspaces/);
  // A run that grows a workspace past its bound leaves it as it was, and says so.
  const grow = await call(client, "run", { workspace: "one", script: "head -c 100000 /dev/zero > big" });
  assert.match(textOf(grow), /workspace "one" was not updated/);
  assert.deepEqual((await call(client, "list_files", { workspace: "one" })).structuredContent?.files, [{ path: "a", size: 1, mode: 0o644 }]);
  await client.close();
});

test("write_file refuses paths that leave the workspace", async () => {
  const client = await connect(url);
  for (const path of ["../x", "/etc/passwd", "a/../../b"]) {
    const result = await call(client, "write_file", { workspace: "paths", path, content: "x" });
    assert.equal(result.isError, true, path);
  }
  await client.close();
});

test("every run is recorded in the audit log: caller, command, limits, result and duration; refusals too", async () => {
  const client = await connect(url, "audited-agent");
  const marker = randomBytes(4).toString("hex");
  await call(client, "run", { command: ["echo", marker] });
  await call(client, "run", { command: ["true"], script: "true" });
  const records = readAuditRecords(audit.path, { last: 50 }).filter((record) => record.component === "sandbox" && record.data.caller === "audited-agent");
  const startedRecord = records.find((record) => record.type === "sandbox-run" && record.data.phase === "started" && JSON.stringify(record.data.command) === JSON.stringify(["echo", marker]));
  const finished = records.find((record) => record.type === "sandbox-run" && record.data.phase === "finished" && JSON.stringify(record.data.command) === JSON.stringify(["echo", marker]));
  assert.ok(startedRecord !== undefined && finished !== undefined);
  assert.equal(finished.data.exitCode, 0);
  assert.equal(finished.data.reason, "exit");
  assert.equal(typeof finished.data.durationMs, "number");
  assert.equal((finished.data.limits as { memoryBytes: number }).memoryBytes, TEST_LIMITS.memoryBytes);
  assert.equal(finished.data.decisionSeq, startedRecord.seq, "the finish settles the committed start");
  assert.ok(records.some((record) => record.data.phase === "refused" && /exactly one/.test(String(record.data.reason))));
  await client.close();
});

test("audit failure: when the start cannot be recorded, nothing runs (fail closed)", async () => {
  let runs = 0;
  const counting: SandboxBackend = { name: "bubblewrap", run: async (task, options) => ((runs += 1), backend.run(task, options)), close: async () => {} };
  let failing = true;
  const sink: SandboxAuditSink = {
    append(event) {
      if (failing) throw new Error("disk full");
      return audit.append(event);
    },
  };
  const { url: failingUrl } = await startServer({ backend: counting, audit: sink });
  const client = await connect(failingUrl);
  const result = await call(client, "run", { command: ["true"] });
  assert.equal(result.isError, true);
  assert.match(textOf(result), /audit log is unavailable/);
  assert.equal(runs, 0);
  const health = () => fetch(new URL("/healthz", failingUrl)).then((response) => response.status);
  assert.equal(await health(), 503, "/healthz says the runner refuses everything");
  failing = false;
  const healed = await call(client, "run", { command: ["true"] });
  assert.equal(healed.isError, false);
  assert.equal(runs, 1);
  assert.equal(await health(), 200);
  await client.close();
});

test("concurrency: runs beyond the slots wait in the queue, and beyond the queue are refused as busy", async () => {
  const { url: smallUrl } = await startServer({ concurrency: 1, queueLimit: 1 });
  const client = await connect(smallUrl);
  const results = await Promise.all([0, 1, 2].map((index) => call(client, "run", { script: `sleep 0.4; echo ${index}` })));
  const busy = results.filter((result) => result.isError === true);
  const served = results.filter((result) => result.isError === false);
  assert.equal(served.length, 2);
  assert.equal(busy.length, 1);
  assert.match(textOf(busy[0] as ToolResult), /busy/);
  await client.close();
});

test("per-caller quotas: a caller over its rate is refused while another caller is still served", async () => {
  const { url: quotaUrl } = await startServer({ quotas: { concurrentRuns: 4, runsPerMinute: 2 } });
  const greedy = await connect(quotaUrl, "greedy");
  const polite = await connect(quotaUrl, "polite");
  assert.equal((await call(greedy, "run", { command: ["true"] })).isError, false);
  assert.equal((await call(greedy, "run", { command: ["true"] })).isError, false);
  const third = await call(greedy, "run", { command: ["true"] });
  assert.equal(third.isError, true);
  assert.match(textOf(third), /quota: greedy has started 2 runs/);
  assert.equal((await call(polite, "run", { command: ["true"] })).isError, false);
  await greedy.close();
  await polite.close();
});

test("attacks through the server (fork bomb, output flood, timeout) are contained and the next call is served", async () => {
  const client = await connect(url, "attacker");
  const bomb = await call(client, "run", { script: "b() { b | b & }; b & while :; do :; done", timeoutSeconds: 2 });
  assert.equal((bomb.structuredContent as { reason: string }).reason, "timeout");
  const flood = await call(client, "run", { command: ["yes"] });
  assert.equal((flood.structuredContent as { reason: string; stdoutTruncated: boolean }).reason, "output-limit");
  const next = await call(client, "run", { command: ["echo", "still-serving"] });
  assert.equal((next.structuredContent as { stdout: string }).stdout, "still-serving\n");
  await client.close();
});

for (const version of ["2025-11-25", "2026-07-28"] as const) {
  const how = version === "2025-11-25" ? "notifications/cancelled, served statelessly" : "the request's HTTP exchange closes";
  test(`when a ${version} caller goes away mid-run (${how}), the sandbox is stopped and nothing it started survives`, async () => {
    const client = await connect(url, undefined, version === "2026-07-28" ? version : undefined);
    const marker = `abandoned-${randomBytes(4).toString("hex")}`;
    const controller = new AbortController();
    const pending = call(client, "run", { command: ["/bin/sh", "-c", "sleep 30", marker], timeoutSeconds: 25 }, { signal: controller.signal }).catch((error: unknown) => error);
    for (let attempt = 0; attempt < 100 && (await hostProcessesWith(marker)).length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok((await hostProcessesWith(marker)).length > 0, "the task never started");
    controller.abort();
    await pending;
    for (let attempt = 0; attempt < 150 && (await hostProcessesWith(marker)).length > 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(await hostProcessesWith(marker), []);
    await client.close();
    const check = await connect(url);
    assert.equal(((await call(check, "run", { command: ["echo", "ok"] })).structuredContent as { stdout: string }).stdout, "ok\n");
    await check.close();
  });
}

test("a task error (bad input) is the call's error, and the server keeps serving", async () => {
  const client = await connect(url);
  const bad = await call(client, "run", { command: ["true"], files: [{ path: "../../x", content: "x" }] });
  assert.equal(bad.isError, true);
  assert.match(textOf(bad), /leaves the workspace/);
  assert.equal((await call(client, "run", { command: ["true"] })).isError, false);
  await client.close();
  void server;
});
