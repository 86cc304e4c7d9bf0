// Requirements (issue 17, item 1): by default `perimeter up` runs every service in its own process. A bug outside
// every service (no service to charge it to and restart) stops every service and ends up with 3, recorded, leaving no
// process behind; and when up itself is killed with SIGKILL (no clean-up possible), the sandboxes its sandbox runner
// started die with it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { readAuditRecords, verifyAuditLog } from "../audit-log/index.ts";
import { FAULT_PRELOAD_OPTIONS, localConfig, processesMentioning, readSecrets, startUp, temporaryDirectory } from "./test-support.ts";

/** Every descendant of pid, from /proc (bounded by the process table). */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const parent = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, "utf8"))?.[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // ended while we looked
    }
  }
  const found: number[] = [];
  const queue = [root];
  for (let index = 0; index < queue.length && index < 10_000; index++) {
    for (const child of children.get(queue[index] as number) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

function alive(pid: number): boolean {
  try {
    // A zombie is dead: only its parent's wait is missing.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

test("a bug outside every service stops them all: up ends with 3, records why, and leaves nothing behind", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory);
  const environment = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory, NODE_OPTIONS: FAULT_PRELOAD_OPTIONS };
  const up = await startUp(["-c", config.file], { env: environment, cwd: directory });
  try {
    await fetch(`http://127.0.0.1:${config.ports.llm}/healthz`, { headers: { "x-perimeter-test-fault": "escape" } }).catch(() => undefined);
    const exit = await Promise.race([up.exited, new Promise<"running">((resolve) => setTimeout(() => resolve("running"), 30_000).unref())]);
    assert.notEqual(exit, "running", "perimeter up did not stop");
    assert.equal((exit as { code: number | null }).code, 3, up.stderr().slice(-2000));
    assert.match(up.stderr(), /injected fault: code outside every service threw/);
    assert.deepEqual(processesMentioning(directory), []);
    const auditPath = join(directory, "state", "audit.db");
    assert.equal(verifyAuditLog(auditPath).ok, true);
    const records = readAuditRecords(auditPath, { last: 1000 });
    assert.equal(records.find((record) => record.type === "perimeter-start")?.data.mode, "one-process");
    assert.match(String(records.findLast((record) => record.type === "perimeter-stop")?.data.reason), /uncaught exception outside every service \(TypeError\)/);
  } finally {
    if (up.child.exitCode === null && up.child.signalCode === null) up.child.kill("SIGKILL");
    rmSync(directory, { recursive: true, force: true });
  }
});

test("SIGKILL of perimeter up while a sandboxed command runs leaves no sandbox behind", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory);
  const environment = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory };
  const up = await startUp(["-c", config.file], { env: environment, cwd: directory });
  const secrets = readSecrets(join(directory, "state", "secrets.env"));
  const client = new Client({ name: "sigkill-agent", version: "1.0.0" });
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${config.ports.mcp}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${secrets.PERIMETER_AGENT_TOKEN}` } } }));
    void client.callTool({ name: "sandbox__run", arguments: { command: ["sleep", "100"] } }, { timeout: 120_000 }).catch(() => undefined);
    let started: number[] = [];
    for (let attempt = 0; attempt < 400 && !started.some((pid) => commandOf(pid).startsWith("sleep\u0000100")); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      started = descendants(up.child.pid as number).filter(alive);
    }
    assert.ok(started.length > 0, "the sandbox is running under perimeter up");
    up.child.kill("SIGKILL");
    await up.exited;
    let left = started.filter(alive);
    for (let attempt = 0; attempt < 200 && left.length > 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      left = started.filter(alive);
    }
    assert.deepEqual(left, [], "every process the sandbox runner started is gone");
  } finally {
    await client.close().catch(() => undefined);
    if (up.child.exitCode === null && up.child.signalCode === null) up.child.kill("SIGKILL");
    rmSync(directory, { recursive: true, force: true });
  }
});
