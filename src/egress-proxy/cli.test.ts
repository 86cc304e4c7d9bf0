// Requirements (issue 3): `perimeter serve egress-proxy` works from flags alone (--allow-cidr applying to every rule),
// or from perimeter.yaml's egress section with client tokens from environment variables; it reloads when the config
// file changes and on SIGHUP without dropping tunnels, keeps the old policy when the new file is invalid (and logs
// why), writes its audit records to the audit log, and shuts down cleanly on SIGTERM.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { readAuditRecords, verifyAuditLog } from "../audit-log/index.ts";
import type { BoundAddress } from "../shared/index.ts";
import { httpThroughProxy, makeCertificate, openTunnel, startHttpOrigin, startTlsOrigin, waitFor } from "./test-support.ts";
import type { Certificate, Origin } from "./test-support.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const ORIGIN_IP = "127.0.0.4";
let certificate: Certificate;
let tlsOrigin: Origin;
let httpOrigin: Origin;
let directory: string;

before(async () => {
  certificate = makeCertificate(["allowed.test", "later.test"]);
  tlsOrigin = await startTlsOrigin(ORIGIN_IP, certificate);
  httpOrigin = await startHttpOrigin(ORIGIN_IP);
  directory = mkdtempSync(join(tmpdir(), "perimeter-egress-cli-"));
});
after(async () => {
  await tlsOrigin.close();
  await httpOrigin.close();
  rmSync(directory, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  proxy: BoundAddress & { kind: "tcp" };
  metrics: string | undefined;
  stderr: () => string;
  exited: Promise<number | null>;
}

function toAddress(url: string): BoundAddress & { kind: "tcp" } {
  const parsed = new URL(url);
  return { kind: "tcp", host: parsed.hostname, port: Number(parsed.port), family: 4, url };
}

/** Starts the real CLI and waits for its "listening" line. */
async function startCli(args: string[], env: Record<string, string> = {}): Promise<Running> {
  const child = spawn(process.execPath, [join(ROOT, "bin", "perimeter.js"), "serve", "egress-proxy", ...args], {
    cwd: directory,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await waitFor(() => /listening/.test(stdout) || child.exitCode !== null, 10_000, "the CLI to listen");
  const proxy = /proxy=(\S+)/.exec(stdout)?.[1];
  if (proxy === undefined) throw new Error(`CLI did not start: ${stderr}`);
  return { child, proxy: toAddress(proxy), metrics: /metrics=(\S+)/.exec(stdout)?.[1], stderr: () => stderr, exited };
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}

test("flags alone: --allow with --allow-cidr, --resolve, --metrics and --audit; SIGTERM exits 0; records are in the audit log", async () => {
  const auditFile = join(directory, "flags-audit.db");
  const running = await startCli([
    "--listen", "127.0.0.1:0",
    "--allow", `allowed.test:${tlsOrigin.port},${httpOrigin.port}`,
    "--allow", `unreachable.test:${tlsOrigin.port}`,
    "--allow-cidr", `${ORIGIN_IP}/32`,
    "--resolve", `allowed.test=${ORIGIN_IP}`,
    "--resolve", "unreachable.test=10.1.2.3",
    "--metrics", "127.0.0.1:0",
    "--audit", auditFile,
  ]);
  try {
    const tunnel = await openTunnel(running.proxy, `allowed.test:${tlsOrigin.port}`);
    assert.equal(tunnel.status, 200);
    const secure = tls.connect({ socket: tunnel.socket, servername: "allowed.test", ca: certificate.cert });
    await new Promise<void>((resolve, reject) => secure.once("secureConnect", resolve).once("error", reject));
    secure.destroy();
    const plain = await httpThroughProxy(running.proxy, `http://allowed.test:${httpOrigin.port}/cli`);
    assert.equal(plain.status, 200);
    const denied = await openTunnel(running.proxy, `elsewhere.test:${tlsOrigin.port}`);
    assert.equal(denied.headers["x-perimeter-denied"], "not-allowlisted");
    assert.match(denied.body, /--allow elsewhere\.test/);
    const privateRange = await openTunnel(running.proxy, `unreachable.test:${tlsOrigin.port}`);
    assert.equal(privateRange.headers["x-perimeter-denied"], "private-address", "--allow-cidr excepts only its own range");
    assert.ok(running.metrics !== undefined);
    assert.match(await get(`${running.metrics}/metrics`), /perimeter_egress_decisions_total\{decision="deny",reason="not-allowlisted"\} 1/);
    assert.equal(await get(`${running.metrics}/healthz`), "ok\n");
  } finally {
    running.child.kill("SIGTERM");
  }
  assert.equal(await running.exited, 0);
  const records = readAuditRecords(auditFile);
  const decisions = records.filter((record) => record.type === "egress-decision");
  assert.ok(decisions.some((record) => record.data.decision === "allow" && record.data.host === "allowed.test" && record.data.address === ORIGIN_IP));
  assert.ok(decisions.some((record) => record.data.reason === "not-allowlisted" && record.data.host === "elsewhere.test"));
  assert.ok(records.some((record) => record.type === "connection-close" && record.data.kind === "tunnel"));
  assert.ok(records.every((record) => record.component === "egress-proxy"));
  assert.equal(verifyAuditLog(auditFile).ok, true, "the hash chain verifies");
});

test("--audit-before-forwarding: each request's allow record is committed before the origin receives it (new and kept-alive connections)", async () => {
  const auditFile = join(directory, "strict-audit.db");
  const seenAtOrigin: number[] = [];
  const allowRecords = () => readAuditRecords(auditFile, { limit: 100_000 }).filter((record) => record.type === "egress-decision" && record.data.decision === "allow").length;
  const origin = http.createServer((request, response) => {
    seenAtOrigin.push(allowRecords());
    response.end("ok");
  });
  await new Promise<void>((resolve) => origin.listen(0, ORIGIN_IP, resolve));
  const port = (origin.address() as { port: number }).port;
  const running = await startCli(["--listen", "127.0.0.1:0", "--allow", `allowed.test:${port}`, "--allow-cidr", `${ORIGIN_IP}/32`, "--resolve", `allowed.test=${ORIGIN_IP}`, "--audit", auditFile, "--audit-before-forwarding"]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let index = 0; index < 10; index++) {
      const response = await httpThroughProxy(running.proxy, `http://allowed.test:${port}/r${index}`, index % 2 === 0 ? { agent } : {});
      assert.equal(response.status, 200);
    }
  } finally {
    agent.destroy();
    running.child.kill("SIGTERM");
    origin.close();
  }
  assert.equal(await running.exited, 0);
  assert.deepEqual(seenAtOrigin, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "the i-th request found i allow records");
});

test("config: client tokens from env; file change and SIGHUP reload without dropping a tunnel; an invalid file keeps the old policy and logs why", async () => {
  const configFile = join(directory, "perimeter.yaml");
  const config = (hosts: string[]) => `version: 1
name: hermes
egress:
  clients:
    - name: hermes
      tokenSecret: EGRESS_HERMES_TOKEN
      allow:
${hosts.map((host) => `        - { host: ${host}, ports: [${tlsOrigin.port}], allowCidr: ["${ORIGIN_IP}/32"] }`).join("\n")}
  limits: { headerTimeoutSeconds: 5 }
`;
  writeFileSync(configFile, config(["allowed.test"]));
  const token = "hermes-egress-token-0123456789abcdef";
  const running = await startCli(["-c", configFile, "--listen", "127.0.0.1:0", "--resolve", `allowed.test=${ORIGIN_IP}`, "--resolve", `later.test=${ORIGIN_IP}`, "--audit", join(directory, "config-audit.db")], {
    EGRESS_HERMES_TOKEN: token,
  });
  const auth = { "Proxy-Authorization": `Bearer ${token}` };
  try {
    assert.equal((await openTunnel(running.proxy, `allowed.test:${tlsOrigin.port}`)).status, 407, "unknown clients are denied once clients are defined");
    const held = await openTunnel(running.proxy, `allowed.test:${tlsOrigin.port}`, auth);
    assert.equal(held.status, 200);
    assert.equal((await openTunnel(running.proxy, `later.test:${tlsOrigin.port}`, auth)).status, 403);

    // File change: later.test replaces allowed.test.
    writeFileSync(configFile, config(["later.test"]));
    await waitFor(() => /policy reloaded/.test(running.stderr()), 5000, "file-change reload");
    assert.equal((await openTunnel(running.proxy, `later.test:${tlsOrigin.port}`, auth)).status, 200);
    assert.equal((await openTunnel(running.proxy, `allowed.test:${tlsOrigin.port}`, auth)).status, 403);
    const secure = tls.connect({ socket: held.socket, servername: "allowed.test", ca: certificate.cert });
    await new Promise<void>((resolve, reject) => secure.once("secureConnect", resolve).once("error", reject));
    secure.destroy();

    // An invalid file: the old policy stays, the log says why.
    writeFileSync(configFile, config(["later.test"]).replace("later.test,", "'*.com',"));
    await waitFor(() => /keeping the current policy/.test(running.stderr()), 5000, "rejected reload");
    assert.match(running.stderr(), /too broad/);
    assert.equal((await openTunnel(running.proxy, `later.test:${tlsOrigin.port}`, auth)).status, 200);

    // SIGHUP reloads too (the watcher may also see the write; the SIGHUP reload is logged with its trigger).
    writeFileSync(configFile, config(["allowed.test", "later.test"]));
    running.child.kill("SIGHUP");
    await waitFor(() => /"trigger":"SIGHUP"[^\n]*policy reloaded/.test(running.stderr()), 5000, "SIGHUP reload");
    assert.equal((await openTunnel(running.proxy, `allowed.test:${tlsOrigin.port}`, auth)).status, 200);
  } finally {
    running.child.kill("SIGTERM");
  }
  assert.equal(await running.exited, 0);
});

test("audit.feedTokenSecret: the metrics listener serves the audit feed to the feed token only — not to no token, a wrong one, or the agent's own client token (issue 19)", async () => {
  const configFile = join(directory, "feed.yaml");
  writeFileSync(
    configFile,
    `version: 1
name: hermes
audit:
  feedTokenSecret: EGRESS_FEED_TOKEN
egress:
  clients:
    - name: hermes
      tokenSecret: EGRESS_HERMES_TOKEN
      allow:
        - { host: allowed.test, ports: [${httpOrigin.port}], allowCidr: ["${ORIGIN_IP}/32"] }
`,
  );
  const clientToken = "hermes-egress-token-0123456789abcdef";
  const feedToken = "audit-feed-token-0123456789abcdef";
  const running = await startCli(["-c", configFile, "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--resolve", `allowed.test=${ORIGIN_IP}`, "--audit", join(directory, "feed-audit.db")], {
    EGRESS_HERMES_TOKEN: clientToken,
    EGRESS_FEED_TOKEN: feedToken,
  });
  const feedGet = (path: string, authorization?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get(`${running.metrics as string}${path}`, { headers: authorization === undefined ? {} : { Authorization: authorization } }, (response) => {
          let body = "";
          response.on("data", (chunk: Buffer) => {
            body += chunk.toString();
          });
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
        })
        .on("error", reject);
    });
  try {
    const allowed = await httpThroughProxy(running.proxy, `http://allowed.test:${httpOrigin.port}/feed`, { headers: { "Proxy-Authorization": `Bearer ${clientToken}` } });
    assert.equal(allowed.status, 200);
    const head = await feedGet("/v1/audit/head", `Bearer ${feedToken}`);
    assert.equal(head.status, 200, head.body);
    assert.ok((JSON.parse(head.body) as { head: { seq: number } | null }).head !== null, "the chain head is served");
    // The decision is committed before the answer, so it is in the feed now.
    const page = JSON.parse((await feedGet("/v1/audit/records?after=0", `Bearer ${feedToken}`)).body) as { records: Array<{ component: string; type: string }> };
    assert.ok(page.records.some((record) => record.component === "egress-proxy" && record.type === "egress-decision"));
    for (const [what, authorization] of [
      ["no token", undefined],
      ["a wrong token", "Bearer not-the-feed-token-0123456789"],
      ["the agent's client token", `Bearer ${clientToken}`],
    ] as const) {
      const refused = await feedGet("/v1/audit/records?after=0", authorization);
      assert.equal(refused.status, 401, what);
      assert.doesNotMatch(refused.body, /egress-decision/, what);
    }
    assert.match(await get(`${running.metrics as string}/metrics`), /perimeter_egress_decisions_total/, "metrics are still served beside the feed");
    assert.equal((await feedGet("/healthz")).status, 200);
  } finally {
    running.child.kill("SIGTERM");
  }
  assert.equal(await running.exited, 0);
});

test("without audit.feedTokenSecret the metrics listener serves no audit feed", async () => {
  const running = await startCli(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--allow", "allowed.test", "--audit", join(directory, "no-feed-audit.db")]);
  try {
    const answer = await new Promise<number>((resolve, reject) => {
      http.get(`${running.metrics as string}/v1/audit/records?after=0`, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      }).on("error", reject);
    });
    assert.equal(answer, 404);
  } finally {
    running.child.kill("SIGTERM");
  }
  assert.equal(await running.exited, 0);
});

test("usage errors exit 2 with a message saying how to fix it", async () => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [join(ROOT, "bin", "perimeter.js"), "serve", "egress-proxy", ...args], { cwd: directory, env: { PATH: process.env.PATH ?? "", ...env } });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.on("exit", (code) => resolve({ code, stderr }));
    });
  const broad = await run(["--allow", "*.com", "--listen", "127.0.0.1:0"]);
  assert.equal(broad.code, 2);
  assert.match(broad.stderr, /too broad/);
  const cidr = await run(["--allow-cidr", "10.0.0.0/99"]);
  assert.equal(cidr.code, 2);
  assert.match(cidr.stderr, /not a CIDR/);
  const configFile = join(directory, "needs-token.yaml");
  writeFileSync(configFile, "version: 1\nname: hermes\negress:\n  clients:\n    - { name: hermes, tokenSecret: MISSING_EGRESS_TOKEN, allow: [api.example.com] }\n");
  const missing = await run(["-c", configFile]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /MISSING_EGRESS_TOKEN/);
  // The audit feed's token is named with the clients' in one message.
  writeFileSync(configFile, "version: 1\nname: hermes\naudit: { feedTokenSecret: MISSING_FEED_TOKEN }\negress:\n  clients:\n    - { name: hermes, tokenSecret: MISSING_EGRESS_TOKEN, allow: [api.example.com] }\n");
  const both = await run(["-c", configFile, "--listen", "127.0.0.1:0"]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /MISSING_EGRESS_TOKEN/);
  assert.match(both.stderr, /MISSING_FEED_TOKEN/);
});

test("when its output pipe loses its reader the proxy shuts down cleanly with 141 (as after SIGPIPE), never hangs", async () => {
  for (const closed of [["stdout"], ["stdout", "stderr"]] as const) {
    const child = spawn(process.execPath, [join(ROOT, "bin", "perimeter.js"), "serve", "egress-proxy", "--allow", "allowed.test", "--listen", "127.0.0.1:0"], {
      cwd: directory,
      env: { PATH: process.env.PATH ?? "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // The reader goes away before the proxy says it is listening: that line meets a broken pipe.
    for (const name of closed) child[name]?.destroy();
    const code = await Promise.race([
      new Promise<number | null>((resolve) => child.once("exit", (exitCode) => resolve(exitCode))),
      new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 15_000)),
    ]);
    if (code === "hung") child.kill("SIGKILL");
    assert.equal(code, 141, `${closed.join(" and ")} closed`);
    if (!closed.includes("stderr" as never)) assert.match(stderr, /shutting down/, "the service's own shutdown ran");
  }
});
