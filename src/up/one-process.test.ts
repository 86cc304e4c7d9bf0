// Requirements (issue 17, item 1, memory): `perimeter up --one-process` runs the same four services inside the
// supervisor's process — every one ready and serving, each with its own environment, one audit log — and SIGTERM
// still stops them all and leaves no process (no sandbox) behind. The example's local Ollama may be absent: llm-proxy
// runs anyway and answers 502 naming the provider.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { verifyAuditLog, readAuditRecords } from "../audit-log/index.ts";
import { localConfig, processesMentioning, readSecrets, runPerimeter, startUp, temporaryDirectory } from "./test-support.ts";

test("--one-process: every service in the supervisor's process serves; a sandboxed command runs; SIGTERM leaves nothing", async () => {
  const directory = temporaryDirectory();
  const config = await localConfig(directory);
  const environment = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory };
  const up = await startUp(["-c", config.file, "--one-process"], { env: environment, cwd: directory });
  try {
    const status = await runPerimeter(["status", "-c", config.file, "--json"], { env: environment, cwd: directory });
    assert.equal(status.code, 0, status.stdout);
    const services = (JSON.parse(status.stdout) as { services: Array<{ name: string; pid: number; health: string }> }).services;
    assert.deepEqual(services.map((service) => service.name).sort(), ["dashboard", "egress-proxy", "llm-proxy", "mcp-guard", "sandbox"]);
    for (const service of services) {
      assert.equal(service.pid, up.child.pid, `${service.name} runs in the supervisor's process`);
      assert.equal(service.health, "healthy");
    }
    assert.deepEqual(processesMentioning(directory).map((entry) => entry.pid), [up.child.pid], "no child processes");

    const secrets = readSecrets(join(directory, "state", "secrets.env"));
    // The example's provider is a local Ollama that is not running here: llm-proxy is up and says which provider failed.
    const absent = await fetch(`http://127.0.0.1:${config.ports.llm}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${secrets.HERMES_LLM_KEY}` },
      body: JSON.stringify({ model: "default", messages: [{ role: "user", content: "hello" }] }),
    });
    const absentBody = await absent.text();
    assert.equal(absent.status, 502, absentBody);
    assert.match(absentBody, /ollama/);
    const client = new Client({ name: "one-process-agent", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${config.ports.mcp}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${secrets.PERIMETER_AGENT_TOKEN}` } } }));
    try {
      const result = await client.callTool({ name: "sandbox__run", arguments: { script: "echo one-process-sandbox" } });
      assert.match(((result.content ?? []) as Array<{ text?: string }>).map((block) => block.text).join(""), /one-process-sandbox/);
    } finally {
      await client.close();
    }
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
    assert.equal(start?.data.mode, "one-process");
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
