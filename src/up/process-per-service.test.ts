// Requirements (issue 17, item 1): `perimeter up --process-per-service` runs each service as its own child process
// (more memory, a crash or a wedged event loop confined to one process): each serves from a pid of its own, with its
// own environment and one audit log; killing one service's process shows it restarted, with the exit and the restart
// recorded; SIGTERM stops them all and leaves no process (no sandbox) behind. The example's local Ollama may be
// absent: llm-proxy runs anyway and answers 502 naming the provider.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { verifyAuditLog, readAuditRecords } from "../audit-log/index.ts";
import { localConfig, processesMentioning, readSecrets, runPerimeter, startUp, temporaryDirectory } from "./test-support.ts";

interface Status {
  services: Array<{ name: string; pid: number; health: string; restarts: number; lastRestart?: { seq?: number; previousPid: number; signal: string | null } }>;
}

test("--process-per-service: each service is a process; a killed one is restarted and recorded; SIGTERM leaves nothing", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory);
  const environment = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory };
  const up = await startUp(["-c", config.file, "--process-per-service"], { env: environment, cwd: directory });
  const status = async (): Promise<Status> => {
    const result = await runPerimeter(["status", "-c", config.file, "--json"], { env: environment, cwd: directory });
    return JSON.parse(result.stdout) as Status;
  };
  try {
    const before = await status();
    assert.deepEqual(before.services.map((service) => service.name).sort(), ["dashboard", "egress-proxy", "llm-proxy", "mcp-guard", "sandbox"]);
    const pids = new Set(before.services.map((service) => service.pid));
    assert.equal(pids.size, 5, "five processes");
    assert.ok(!pids.has(up.child.pid as number), "none of them is up's own");
    for (const service of before.services) assert.equal(service.health, "healthy");

    const secrets = readSecrets(join(directory, "state", "secrets.env"));
    const absent = await fetch(`http://127.0.0.1:${config.ports.llm}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${secrets.HERMES_LLM_KEY}` },
      body: JSON.stringify({ model: "default", messages: [{ role: "user", content: "hello" }] }),
    });
    const absentBody = await absent.text();
    assert.equal(absent.status, 502, absentBody);
    assert.match(absentBody, /ollama/);
    const client = new Client({ name: "process-per-service-agent", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${config.ports.mcp}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${secrets.PERIMETER_AGENT_TOKEN}` } } }));
    try {
      const result = await client.callTool({ name: "sandbox__run", arguments: { script: "echo per-process-sandbox" } });
      assert.match(((result.content ?? []) as Array<{ text?: string }>).map((block) => block.text).join(""), /per-process-sandbox/);
    } finally {
      await client.close();
    }

    const victim = before.services.find((service) => service.name === "llm-proxy");
    assert.ok(victim !== undefined);
    process.kill(victim.pid, "SIGKILL");
    let after = before;
    for (let attempt = 0; attempt < 400; attempt++) {
      after = await status();
      const service = after.services.find((entry) => entry.name === "llm-proxy");
      if (service !== undefined && service.restarts === 1 && service.health === "healthy") break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const restarted = after.services.find((entry) => entry.name === "llm-proxy");
    assert.equal(restarted?.restarts, 1);
    assert.equal(restarted?.health, "healthy");
    assert.notEqual(restarted?.pid, victim.pid);
    assert.equal(restarted?.lastRestart?.previousPid, victim.pid);
    assert.equal(restarted?.lastRestart?.signal, "SIGKILL");
    const records = readAuditRecords(join(directory, "state", "audit.db"), { last: 500 });
    assert.equal(records.find((record) => record.type === "service-exit" && record.data.pid === victim.pid)?.data.signal, "SIGKILL");
    const restart = records.find((record) => record.type === "service-restart" && record.data.previousPid === victim.pid);
    assert.equal(restart?.data.service, "llm-proxy");
    assert.equal(restart?.seq, restarted?.lastRestart?.seq);
  } finally {
    up.child.kill("SIGTERM");
  }
  const exit = await up.exited;
  try {
    assert.equal(exit.code, 0, up.stderr().slice(-2000));
    assert.deepEqual(processesMentioning(directory), []);
    const auditPath = join(directory, "state", "audit.db");
    assert.equal(verifyAuditLog(auditPath).ok, true);
    const start = readAuditRecords(auditPath, { last: 1000 }).find((record) => record.type === "perimeter-start");
    assert.equal(start?.data.mode, "processes");
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
