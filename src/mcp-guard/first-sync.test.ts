// Issue 12, item 6: a client that lists tools once when it starts (Hermes does) must see them. The guard used to
// answer the first tools/list before its upstreams were connected, with an empty list. Now a tools/list waits until
// every upstream has connected or failed its first attempt (bounded by firstListWaitMs, 10 s by default), the guard
// sends notifications/tools/list_changed whenever what the agent sees changes, and /healthz says "starting" (503)
// while a tools/list would wait. The upstream is a real stdio MCP server (official SDK) that waits
// before answering initialize; the agent is the official SDK client.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import type { Tool } from "@modelcontextprotocol/client";
import { connectAgent, eventually, resultText, startGuard } from "./testing.ts";
import type { ProtocolVersion } from "./testing.ts";

const ENV = {
  PATH: process.env.PATH,
  HOME: "/tmp",
  PERIMETER_AGENT_TOKEN: "agent-token-first-sync-0123456789",
  PERIMETER_ADMIN_TOKEN: "admin-token-first-sync-abcdefghij",
};
const AGENT = ENV.PERIMETER_AGENT_TOKEN;
const SLOW_SERVER = join(import.meta.dirname, "fixtures/slow-start-server.ts");

function config(delayMs: number, extra = "", marker = "slow"): string {
  return `
version: 1
name: t
mcp:
  pinning: { trustOnFirstUse: true }
  servers:
    slow:
      command: ["${process.execPath}", "${SLOW_SERVER}", "${marker}"]
      env: { SLOW_START_MS: "${delayMs}" }
      tools: { allow: [ping] }
      timeoutSeconds: 20
${extra}
audit: { path: AUDIT_PATH }
`;
}

async function health(adminUrl: string): Promise<{ status: number; body: { status?: string; upstreams?: Record<string, string> } }> {
  const answer = await fetch(`${adminUrl}/healthz`);
  return { status: answer.status, body: (await answer.json()) as { status?: string; upstreams?: Record<string, string> } };
}

for (const version of ["2025-11-25", "2026-07-28"] as ProtocolVersion[]) {
  test(`over ${version}, a client listing tools once right after the guard starts sees the tools of an upstream that takes 1.5 s to connect; /healthz is 503 "starting" until then`, { timeout: 60_000 }, async () => {
    const started = await startGuard(config(1500), ENV, { waitReady: false });
    try {
      const early = await health(started.adminUrl);
      assert.equal(early.status, 503, "not ready before the first sync");
      assert.equal(early.body.status, "starting");
      const agent = await connectAgent(started.url, AGENT, version);
      try {
        const listed = Date.now();
        const { tools } = await agent.listTools();
        assert.deepEqual(
          tools.map((tool) => tool.name),
          ["slow__ping"],
          "the first and only listing has the slow upstream's tools",
        );
        assert.ok(Date.now() - listed < 10_000, "within the bound");
        assert.equal(resultText(await agent.callTool({ name: "slow__ping", arguments: {} })), "pong");
      } finally {
        await agent.close();
      }
      const ready = await health(started.adminUrl);
      assert.equal(ready.status, 200);
      assert.equal(ready.body.status, "ok");
      assert.equal(ready.body.upstreams?.slow, "ready");
    } finally {
      await started.close();
    }
  });
}

test("the wait is bounded: an upstream slower than firstListWaitMs leaves the first list without its tools, /healthz turns ready at the bound, and list_changed brings the tools to the client that listed once", { timeout: 60_000 }, async () => {
  const started = await startGuard(config(3000), ENV, { waitReady: false, firstListWaitMs: 500 });
  try {
    const changes: Tool[][] = [];
    const agent = new Client(
      { name: "lists-once", version: "1.0.0" },
      { listChanged: { tools: { debounceMs: 0, onChanged: (error, tools) => (error === null && tools !== null ? changes.push(tools) : undefined) } } },
    );
    await agent.connect(new StreamableHTTPClientTransport(new URL(started.url), { requestInit: { headers: { Authorization: `Bearer ${AGENT}` } } }));
    try {
      const asked = Date.now();
      const first = await agent.listTools();
      const waited = Date.now() - asked;
      assert.ok(waited >= 400 && waited < 2500, `the first list waited for the bound, no longer (${waited} ms)`);
      assert.deepEqual(first.tools, []);
      const afterBound = await health(started.adminUrl);
      assert.equal(afterBound.status, 200, "ready once a tools/list no longer waits, even while the slow upstream still connects");
      assert.equal(afterBound.body.upstreams?.slow, "connecting");
      const arrived = await eventually(() => changes.find((tools) => tools.some((tool) => tool.name === "slow__ping")), 20_000, "a list_changed carrying slow__ping");
      assert.deepEqual(
        arrived.map((tool) => tool.name),
        ["slow__ping"],
      );
    } finally {
      await agent.close();
    }
  } finally {
    await started.close();
  }
});

test("an upstream that fails its first attempt ends the wait and the starting state: the list answers with the others' tools, /healthz turns 200 and names it unavailable", { timeout: 60_000 }, async () => {
  const started = await startGuard(
    config(0, "    dead: { url: \"http://127.0.0.1:9/mcp\", tools: { allow: [\"*\"] }, timeoutSeconds: 2 }"),
    ENV,
    { waitReady: false, firstListWaitMs: 15_000 },
  );
  try {
    const agent = await connectAgent(started.url, AGENT, "2025-11-25");
    try {
      const asked = Date.now();
      const { tools } = await agent.listTools();
      assert.deepEqual(
        tools.map((tool) => tool.name),
        ["slow__ping"],
      );
      assert.ok(Date.now() - asked < 10_000, "the refused connection ended the wait, not the 15 s bound");
    } finally {
      await agent.close();
    }
    const ready = await health(started.adminUrl);
    assert.equal(ready.status, 200);
    assert.notEqual(ready.body.upstreams?.dead, "ready");
  } finally {
    await started.close();
  }
});

/** Processes whose command line holds `marker`. */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(marker)) found.push(Number(entry));
    } catch {
      // The process ended while the directory was read.
    }
  }
  return found;
}

test("closing the guard while an upstream is still connecting ends that upstream's process", { timeout: 60_000 }, async () => {
  const marker = `slow-start-${randomUUID()}`;
  const started = await startGuard(config(20_000, "", marker), ENV, { waitReady: false });
  await eventually(() => (processesWith(marker).length > 0 ? true : undefined), 10_000, "the upstream's process");
  assert.equal(started.guard.upstream("slow")?.state().state, "connecting");
  await started.close();
  await eventually(() => (processesWith(marker).length === 0 ? true : undefined), 5000, "the upstream's process to end");
});
