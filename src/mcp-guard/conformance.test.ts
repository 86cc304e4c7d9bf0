// The MCP conformance suite (@modelcontextprotocol/conformance, server mode) against the guard, compared with the
// same suite against the upstream it guards (@modelcontextprotocol/server-everything, served over Streamable HTTP
// for the direct run and over stdio behind the guard). The guard must pass every check the upstream passes.
// The suite cannot send a bearer token, so a relay in front of the guard adds the agent's Authorization header and
// forwards everything else (Host and Origin included) unchanged: the suite's DNS-rebinding checks still reach the
// guard's own Host/Origin validation.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EVERYTHING_ENTRY, eventually, startGuard } from "./testing.ts";
import { freePort } from "../shared/index.ts";

const CONFORMANCE = join(import.meta.dirname, "../../node_modules/@modelcontextprotocol/conformance/dist/index.js");
const TOKEN = "conformance-agent-token-123456";

interface ScenarioResult {
  passed: string[];
  failed: string[];
}

/** Runs the server suite against `url`; returns, per scenario, the ids of checks that passed and failed. */
async function runSuite(url: string): Promise<Map<string, ScenarioResult>> {
  const output = mkdtempSync(join(tmpdir(), "conformance-"));
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [CONFORMANCE, "server", "--url", url, "-o", output], { stdio: ["ignore", "ignore", "pipe"], env: { PATH: process.env.PATH ?? "", HOME: tmpdir() } });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
      const timer = setTimeout(() => child.kill("SIGKILL"), 150_000);
      child.on("error", reject);
      // The suite exits non-zero when any scenario fails; the comparison below decides.
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        if (signal !== null) reject(new Error(`conformance suite killed (${signal}): ${stderr}`));
        else resolve(void code);
      });
    });
    const results = new Map<string, ScenarioResult>();
    for (const directory of readdirSync(output)) {
      const scenario = directory.replace(/^server-/, "").replace(/-\d{4}-\d{2}-\d{2}T.*$/, "");
      const checks = JSON.parse(readFileSync(join(output, directory, "checks.json"), "utf8")) as Array<{ id: string; status: string }>;
      results.set(scenario, {
        passed: checks.filter((check) => check.status === "SUCCESS").map((check) => check.id),
        failed: checks.filter((check) => check.status !== "SUCCESS").map((check) => check.id),
      });
    }
    return results;
  } finally {
    rmSync(output, { recursive: true, force: true });
  }
}


test("MCP conformance suite: the guard passes every check its upstream (server-everything) passes", { timeout: 360_000 }, async () => {
  // The upstream alone, over Streamable HTTP.
  const port = await freePort();
  const everything = spawn(process.execPath, [EVERYTHING_ENTRY, "streamableHttp"], { env: { PATH: process.env.PATH ?? "", PORT: String(port) }, stdio: ["ignore", "ignore", "ignore"] });
  let direct: Map<string, ScenarioResult>;
  try {
    await eventually(async () => {
      try {
        await fetch(`http://127.0.0.1:${port}/mcp`, { method: "GET" });
        return true;
      } catch {
        return undefined;
      }
    }, 15_000, "server-everything to listen");
    direct = await runSuite(`http://127.0.0.1:${port}/mcp`);
  } finally {
    everything.kill("SIGTERM");
  }

  // The same server behind the guard (stdio upstream, every tool allowed and trusted).
  const started = await startGuard(
    `
version: 1
name: t
mcp:
  pinning: { trustOnFirstUse: true }
  servers:
    everything:
      command: ["${process.execPath}", "${EVERYTHING_ENTRY}", "stdio"]
      tools: { allow: ["*"] }
audit: { path: AUDIT_PATH }
`,
    { PATH: process.env.PATH, PERIMETER_AGENT_TOKEN: TOKEN, PERIMETER_ADMIN_TOKEN: "conformance-admin-token-654321" },
  );
  const target = new URL(started.url);
  const relay = createServer((incoming, outgoing) => {
    const forwarded = httpRequest(
      { host: target.hostname, port: target.port, method: incoming.method, path: incoming.url, headers: { ...incoming.headers, authorization: `Bearer ${TOKEN}` } },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    forwarded.on("error", () => outgoing.destroy());
    incoming.pipe(forwarded);
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  let guarded: Map<string, ScenarioResult>;
  try {
    guarded = await runSuite(`http://127.0.0.1:${(relay.address() as AddressInfo).port}/mcp`);
  } finally {
    relay.closeAllConnections();
    await new Promise<void>((resolve) => relay.close(() => resolve()));
    await started.close();
  }

  const summary = [...direct].map(([scenario, result]) => {
    const through = guarded.get(scenario);
    return `${scenario}: upstream ${result.passed.length}/${result.passed.length + result.failed.length}, guard ${through?.passed.length ?? 0}/${(through?.passed.length ?? 0) + (through?.failed.length ?? 0)}`;
  });
  console.log(`conformance (passed/total checks per scenario):\n  ${summary.join("\n  ")}`);
  assert.ok(direct.size >= 20, `the suite ran its scenarios against the upstream (${direct.size})`);
  const regressions: string[] = [];
  for (const [scenario, result] of direct) {
    const through = guarded.get(scenario);
    for (const check of result.passed) if (!(through?.passed.includes(check) ?? false)) regressions.push(`${scenario}/${check}`);
  }
  assert.deepEqual(regressions, [], "checks the upstream passes but the guard fails");
  const dns = guarded.get("dns-rebinding-protection");
  assert.deepEqual(dns?.failed, [], "the guard rejects rebinding Host/Origin headers (the upstream alone does not)");
});
