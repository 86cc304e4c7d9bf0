// Issue 14 item 2: a changed mcp-guard configuration takes effect without a restart of the process, and never
// silently leaves the old policy in force. `perimeter serve mcp-guard` in its own process: a saved file and SIGHUP
// apply a new tool allowlist; an invalid file is refused with an error log and a metric, and the running policy stays.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { freePort } from "../shared/index.ts";
import { connectAgent, eventually, startRecordingServer } from "./testing.ts";
import type { RecordingServer } from "./testing.ts";

const BIN = join(import.meta.dirname, "../../bin/perimeter.js");
const ENV = {
  PATH: process.env.PATH ?? "",
  HOME: tmpdir(),
  PERIMETER_AGENT_TOKEN: "reload-agent-token-0123456789",
  PERIMETER_ADMIN_TOKEN: "reload-admin-token-9876543210",
  WEB_TOKEN: "reload-upstream-token-abcdef",
};

describe("mcp-guard reloads its configuration (SIGHUP, file change) and refuses an invalid one loudly", { timeout: 180_000 }, () => {
  let web: RecordingServer;
  let directory: string;
  let configFile: string;
  let child: ChildProcessWithoutNullStreams;
  let stderr = "";
  let agentPort: number;
  let adminPort: number;

  const configText = (allow: string[], extra = "") => `version: 1
name: reload
mcp:
  listen: "127.0.0.1:${agentPort}"
  admin: { listen: "127.0.0.1:${adminPort}" }
  pinning: { trustOnFirstUse: true }
  servers:
    web:
      url: ${web.url}
      headers: { Authorization: "Bearer \${WEB_TOKEN}" }
      tools: { allow: [${allow.join(", ")}] }
audit: { path: ${join(directory, "audit.db")} }
${extra}`;
  /** As an editor or a ConfigMap update writes it: a new file renamed over the old one. */
  const save = (text: string) => {
    writeFileSync(`${configFile}.tmp`, text);
    renameSync(`${configFile}.tmp`, configFile);
  };
  const listed = async (): Promise<string[]> => {
    const client = await connectAgent(`http://127.0.0.1:${agentPort}/mcp`, ENV.PERIMETER_AGENT_TOKEN, "2026-07-28");
    try {
      return (await client.listTools()).tools.map((tool) => tool.name).sort();
    } finally {
      await client.close();
    }
  };
  const metrics = async () => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const reloadCount = (text: string, result: string) => Number(new RegExp(`perimeter_mcp_guard_config_reloads_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0);

  before(async () => {
    web = await startRecordingServer();
    directory = mkdtempSync(join(tmpdir(), "mcp-guard-reload-"));
    configFile = join(directory, "perimeter.yaml");
    agentPort = await freePort();
    adminPort = await freePort();
    save(configText(["echo", "create_issue"]));
    child = spawn(process.execPath, [BIN, "serve", "mcp-guard", "-c", configFile], { env: ENV });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-50_000)));
    await eventually(() => (stdout.includes("listening on") ? true : undefined), 20_000, `the guard to listen (stderr: ${stderr})`);
  });
  after(async () => {
    child.kill("SIGTERM");
    await web.close();
    rmSync(directory, { recursive: true, force: true });
  });

  test("a saved allowlist applies without a restart of the process (file change)", async () => {
    assert.deepEqual(await listed(), ["web__create_issue", "web__echo"]);
    save(configText(["echo"]));
    await eventually(async () => {
      const tools = await listed().catch(() => undefined);
      return tools !== undefined && !tools.includes("web__create_issue") ? true : undefined;
    }, 20_000, `create_issue to leave the list after the file change (stderr: ${stderr})`);
    assert.deepEqual(await listed(), ["web__echo"]);
    assert.equal(reloadCount(await metrics(), "applied"), 1);
    assert.match(stderr, /"event":"config-reloaded","trigger":"file-change"/);
  });

  test("an invalid file is refused with an error and a metric; the running policy stays in force", async () => {
    const before = await listed();
    save(configText(["echo"], "unknownSection: { typo: true }\n"));
    await eventually(() => (stderr.includes("config-reload-rejected") ? true : undefined), 20_000, "the refusal in the log");
    assert.match(stderr, /"level":50.*"event":"config-reload-rejected"/);
    assert.match(stderr, /keeping the current policy/);
    assert.equal(reloadCount(await metrics(), "rejected"), 1);
    // Not a half-applied new one: exactly the allowlist in force before the bad save.
    assert.deepEqual(before, ["web__echo"]);
    assert.deepEqual(await listed(), before);
  });

  test("a secret the new file needs but the environment lacks is refused by name, before the running guard is touched", async () => {
    save(configText(["echo"]).replace("${WEB_TOKEN}", "${MISSING_TOKEN}"));
    await eventually(() => (/MISSING_TOKEN/.test(stderr) ? true : undefined), 20_000, "the missing variable in the log");
    assert.equal(reloadCount(await metrics(), "rejected"), 2);
    assert.deepEqual(await listed(), ["web__echo"]);
  });

  test("SIGHUP reloads a wider allowlist, so a tool pinned at the first start comes back", async () => {
    // Written in place, then SIGHUP, as perimeter up and systemd's ExecReload send it.
    writeFileSync(configFile, configText(["echo", "create_issue"]));
    child.kill("SIGHUP");
    await eventually(async () => ((await listed().catch((): string[] => [])).includes("web__create_issue") ? true : undefined), 20_000, `create_issue to come back (stderr: ${stderr})`);
    // The watcher sees the write too; the SIGHUP is its own reload whichever comes first.
    await eventually(() => (stderr.includes('"event":"config-reloaded","trigger":"SIGHUP"') ? true : undefined), 20_000, "the SIGHUP reload");
    assert.ok(reloadCount(await metrics(), "applied") >= 2);
  });
});
