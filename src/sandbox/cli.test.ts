// The commands through the real binary: `perimeter sandbox exec` and `perimeter serve sandbox`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { readAuditRecords } from "../audit-log/index.ts";

const NODE = process.execPath;
const BIN = join(import.meta.dirname, "../../bin/perimeter.js");
let directory: string;

before(() => {
  directory = mkdtempSync(join(tmpdir(), "perimeter-sandbox-cli-"));
});
after(() => {
  rmSync(directory, { recursive: true, force: true });
});

function perimeter(args: string[], options: { input?: string; env?: Record<string, string> } = {}) {
  const result = spawnSync(NODE, [BIN, ...args], { input: options.input ?? "", encoding: "utf8", timeout: 60_000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...options.env } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test("sandbox exec: prints the command's output and exits with its status", () => {
  const result = perimeter(["sandbox", "exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
  assert.equal(result.status, 3);
  assert.equal(result.stdout, "out\n");
  assert.equal(result.stderr, "err\n");
});

test("sandbox exec: a timeout exits 124 and says so; a memory kill exits 137", () => {
  const timedOut = perimeter(["sandbox", "exec", "--timeout", "1", "--", "sleep", "20"]);
  assert.equal(timedOut.status, 124);
  assert.match(timedOut.stderr, /timed out after 1 s/);
  const memory = perimeter(["sandbox", "exec", "--memory", "64Mi", "--", "python3", "-c", "x = bytearray(300 * 1024 * 1024)"]);
  assert.equal(memory.status, 137);
  assert.match(memory.stderr, /more than its 67108864 bytes of memory/);
});

test("sandbox exec: --env passes only the named variables; --stdin feeds standard input", () => {
  const result = perimeter(["sandbox", "exec", "--env", "CHOSEN", "--env", "SET=direct", "--stdin", "--", "sh", "-c", 'echo "$CHOSEN $SET [$NOT_CHOSEN]"; cat'], { input: "from stdin\n", env: { CHOSEN: "yes", NOT_CHOSEN: "leak" } });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout, "yes direct []\nfrom stdin\n");
  const missing = perimeter(["sandbox", "exec", "--env", "UNSET_VARIABLE", "--", "true"]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /UNSET_VARIABLE: it is not set/);
});

test("sandbox exec --workspace: files go in and come back, without following host symbolic links either way", () => {
  const workspace = join(directory, "work");
  const outside = join(directory, "outside");
  mkdirSync(workspace);
  mkdirSync(outside);
  writeFileSync(join(workspace, "input.txt"), "data\n");
  writeFileSync(join(outside, "secret.txt"), "host secret\n");
  symlinkSync(join(outside, "secret.txt"), join(workspace, "link-to-secret"));
  symlinkSync(outside, join(workspace, "link-dir"));
  // The sandbox tries to write through the host's symbolic links: into link-dir/, and over link-to-secret.
  const result = perimeter(["sandbox", "exec", "--workspace", workspace, "--", "sh", "-c", "ls; cat input.txt > copy.txt; mkdir -p link-dir sub; echo pwned > link-dir/secret.txt; echo pwned > link-to-secret; echo new > sub/new.txt"]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout, "input.txt\n");
  assert.match(result.stderr, /not copied into the workspace: link-dir \(symbolic link\)/);
  assert.equal(readFileSync(join(workspace, "copy.txt"), "utf8"), "data\n");
  assert.equal(readFileSync(join(workspace, "sub/new.txt"), "utf8"), "new\n");
  assert.equal(readFileSync(join(outside, "secret.txt"), "utf8"), "host secret\n");
  assert.equal(existsSync(join(outside, "link-dir")), false);
  assert.match(result.stderr, /not written back: link-dir\/secret.txt/);
  assert.match(result.stderr, /not written back: link-to-secret \(a symbolic link on the host\)/);
});

test("sandbox exec: usage mistakes exit 2 with what to write", () => {
  const noCommand = perimeter(["sandbox", "exec"]);
  assert.equal(noCommand.status, 2);
  assert.match(noCommand.stderr, /name the command after --/);
  const proxyWithoutAllow = perimeter(["sandbox", "exec", "--network", "proxy", "--", "true"]);
  assert.equal(proxyWithoutAllow.status, 2);
  assert.match(proxyWithoutAllow.stderr, /--allow HOST/);
  const badSize = perimeter(["sandbox", "exec", "--memory", "lots", "--", "true"]);
  assert.equal(badSize.status, 2);
  assert.match(badSize.stderr, /--memory: "lots" is not a size; write e\.g\. 512Mi/);
});

test("sandbox exec: without bubblewrap, the error says how to install it", () => {
  const result = perimeter(["sandbox", "exec", "--", "true"], { env: { PATH: "/nonexistent" } });
  assert.equal(result.status, 2);
  assert.match(result.stderr, /bubblewrap \(bwrap\) is not installed; install it: apt-get install bubblewrap/);
});

test("sandbox exec: without user namespaces, the error says which sysctl to set", () => {
  // A user namespace of our own where creating further ones is forbidden: the kernel refuses bwrap as a host with
  // user namespaces disabled would.
  const result = spawnSync("unshare", ["--user", "--map-root-user", "sh", "-c", `echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" "$@"`, NODE, BIN, "sandbox", "exec", "--", "true"], { encoding: "utf8", timeout: 60_000 });
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /cannot create a user namespace/);
  assert.match(result.stderr, /sysctl -w kernel\.unprivileged_userns_clone=1/);
});

test("serve sandbox: serves MCP with the token from --token-file, metrics apart (--metrics-listen, no token), records runs in the audit log, stops on SIGTERM", async () => {
  const token = randomBytes(24).toString("hex");
  const tokenFile = join(directory, "token");
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const auditPath = join(directory, "audit.db");
  const child = spawn(NODE, [BIN, "serve", "sandbox", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--audit-db", auditPath, "--metrics-listen", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "pipe"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  let stderr = "";
  let metricsUrl = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${stderr}`)), 30_000);
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+\/mcp) .*; metrics on (http:\/\/\S+\/metrics)/.exec(stderr);
      if (match !== null) {
        clearTimeout(timer);
        metricsUrl = match[2] as string;
        resolve(match[1] as string);
      }
    });
    child.on("exit", (code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  const client = new Client({ name: "cli-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  const result = (await client.callTool({ name: "run", arguments: { command: ["echo", "served"] } })) as { structuredContent?: { stdout?: string } };
  assert.equal(result.structuredContent?.stdout, "served\n");
  await client.close();
  const metrics = await fetch(metricsUrl);
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^perimeter_sandbox_runs_total\{outcome="exit"\} 1$/m);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  child.kill("SIGTERM");
  assert.equal(await exited, 0);
  const records = readAuditRecords(auditPath).filter((record) => record.component === "sandbox" && record.type === "sandbox-run");
  assert.deepEqual(records.map((record) => record.data.phase), ["started", "finished"]);
  assert.deepEqual(records[1]?.data.command, ["echo", "served"]);
});

test("serve sandbox: no token configured is a clear error naming the variable", () => {
  const result = perimeter(["serve", "sandbox", "--listen", "127.0.0.1:0", "--audit-db", join(directory, "unused.db")]);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /PERIMETER_SANDBOX_TOKEN/);
});

/** `perimeter serve sandbox` on free ports with the metrics listener; resolves once it says where it listens. */
async function startServe(args: string[], env: Record<string, string>) {
  const child = spawn(NODE, [BIN, "serve", "sandbox", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", ...args], { stdio: ["ignore", "ignore", "pipe"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let stderr = "";
  const urls = await new Promise<{ mcp: string; metrics: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${stderr}`)), 30_000);
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+\/mcp) .*; metrics on (http:\/\/\S+)\/metrics/.exec(stderr);
      if (match !== null) {
        clearTimeout(timer);
        resolve({ mcp: match[1] as string, metrics: match[2] as string });
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  return { child, exited, ...urls };
}

test("audit.feedTokenSecret: the runner's metrics listener serves its audit feed to the feed token only — not to no token, a wrong one, or the sandbox token (issue 19)", async () => {
  const configFile = join(directory, "feed.yaml");
  writeFileSync(configFile, "version: 1\nname: hermes\naudit:\n  feedTokenSecret: SANDBOX_FEED_TOKEN\n");
  const sandboxToken = randomBytes(24).toString("hex");
  const feedToken = "audit-feed-token-0123456789abcdef";
  const running = await startServe(["-c", configFile, "--audit-db", join(directory, "feed-audit.db")], { PERIMETER_SANDBOX_TOKEN: sandboxToken, SANDBOX_FEED_TOKEN: feedToken });
  const feedGet = async (path: string, authorization?: string) => {
    const response = await fetch(`${running.metrics}${path}`, { headers: authorization === undefined ? {} : { Authorization: authorization } });
    return { status: response.status, body: await response.text() };
  };
  try {
    const client = new Client({ name: "cli-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(running.mcp), { requestInit: { headers: { Authorization: `Bearer ${sandboxToken}` } } }));
    await client.callTool({ name: "run", arguments: { command: ["echo", "fed"] } });
    await client.close();
    const head = await feedGet("/v1/audit/head", `Bearer ${feedToken}`);
    assert.equal(head.status, 200, head.body);
    assert.ok((JSON.parse(head.body) as { head: { seq: number } | null }).head !== null, "the chain head is served");
    // The result is committed before it is answered, so both phases are in the feed now.
    const page = JSON.parse((await feedGet("/v1/audit/records?after=0", `Bearer ${feedToken}`)).body) as { records: Array<{ component: string; type: string; data: string }> };
    const runs = page.records.filter((record) => record.component === "sandbox" && record.type === "sandbox-run");
    assert.deepEqual(runs.map((record) => (JSON.parse(record.data) as { phase: string }).phase), ["started", "finished"]);
    for (const [what, authorization] of [
      ["no token", undefined],
      ["a wrong token", "Bearer not-the-feed-token-0123456789"],
      ["the sandbox runner's own token", `Bearer ${sandboxToken}`],
    ] as const) {
      const refused = await feedGet("/v1/audit/records?after=0", authorization);
      assert.equal(refused.status, 401, what);
      assert.doesNotMatch(refused.body, /sandbox-run/, what);
    }
    assert.match((await feedGet("/metrics")).body, /perimeter_sandbox_runs_total\{outcome="exit"\} 1/, "metrics are still served beside the feed");
    assert.equal((await feedGet("/healthz")).status, 200);
  } finally {
    running.child.kill("SIGTERM");
  }
  assert.equal(await running.exited, 0);
});

test("without audit.feedTokenSecret the runner serves no audit feed; a feed token the config names but the environment lacks stops the start (exit 2)", async () => {
  const running = await startServe(["--audit-db", join(directory, "no-feed-audit.db")], { PERIMETER_SANDBOX_TOKEN: randomBytes(24).toString("hex") });
  try {
    assert.equal((await fetch(`${running.metrics}/v1/audit/records?after=0`)).status, 404);
  } finally {
    running.child.kill("SIGTERM");
  }
  assert.equal(await running.exited, 0);
  const configFile = join(directory, "feed-missing.yaml");
  writeFileSync(configFile, "version: 1\nname: hermes\naudit:\n  feedTokenSecret: SANDBOX_FEED_TOKEN_UNSET\n");
  const missing = perimeter(["serve", "sandbox", "-c", configFile, "--listen", "127.0.0.1:0", "--audit-db", join(directory, "unused-feed.db")], { env: { PERIMETER_SANDBOX_TOKEN: randomBytes(24).toString("hex") } });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /SANDBOX_FEED_TOKEN_UNSET/);
  // Both the runner's token and the feed token unset: one start names both, not the first and then the next.
  const both = perimeter(["serve", "sandbox", "-c", configFile, "--listen", "127.0.0.1:0", "--audit-db", join(directory, "unused-feed.db")], { env: {} });
  assert.equal(both.status, 2);
  assert.match(both.stderr, /PERIMETER_SANDBOX_TOKEN/);
  assert.match(both.stderr, /SANDBOX_FEED_TOKEN_UNSET/);
});
