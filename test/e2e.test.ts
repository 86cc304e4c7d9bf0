// The perimeter end to end, as a rendered Compose deployment runs it: egress-proxy, sandbox (bubblewrap), mcp-guard
// and llm-proxy as real `perimeter serve ...` processes on loopback, one perimeter.yaml, one audit database shared by
// all of them, each service given only its own secrets. The test plays Hermes exactly as Hermes uses them: the
// official MCP client with the agent token, an OpenAI-compatible HTTP client with the virtual key, and an
// HTTPS_PROXY-honouring client (curl). The operator uses the real `perimeter approvals` and `perimeter audit-log` CLI.
//
// Requirements proven (one test each, in order):
//  R1  the agent lists only allowed tools, namespaced <server>__<tool>
//  R2  the agent runs a command in a bubblewrap sandbox through the guard and gets its output; the sandbox sees
//      none of the runner's or guard's secrets
//  R3  a stdio upstream's injected credential reaches the upstream but comes back redacted
//  R4  a call needing approval is held, approved with `perimeter approvals approve ID -c perimeter.yaml`, completes
//  R5  an argument outside its constraint is refused before any upstream sees it
//  R6  the agent's token opens nothing but the guard: the sandbox runner refuses it (401)
//  R7  chat completions (plain and streamed) go through llm-proxy with the virtual key; the provider (a STAND-IN
//      speaking OpenAI's wire format) receives the provider key, never the virtual key; a wrong key gets 401
//  R8  a prompt carrying a canary is redacted before it reaches the provider
//  R9  HTTPS through the egress proxy reaches an allowlisted name mapped to a loopback TLS origin only through that
//      rule's allowCidr; the same address under a rule without allowCidr is refused; a non-allowlisted host gets 403
//  R10 `perimeter audit-log verify --db FILE` exits 0 and the log holds every component's decisions
//  R11 the audit database holds no secret value the test set (its file bytes are searched)
//  R12 tampering one record makes `perimeter audit-log verify` exit 1
//  R13 no service wrote a secret value to its logs (stdout/stderr, all of it, after a clean stop)
// Needs root for bubblewrap's namespaces as CI runs it (../shared/bin/offline), Debian bubblewrap, curl, openssl.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { createStandInProvider } from "../src/llm-proxy/stand-in-provider.ts";
import type { StandInProvider } from "../src/llm-proxy/stand-in-provider.ts";
import { ROOT, eventually, freePort, makeCertificate, perimeter, run, serve, startTlsOrigin } from "./fixtures/e2e-support.ts";
import type { Service, TlsOrigin } from "./fixtures/e2e-support.ts";

const EVERYTHING_ENTRY = join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const ORIGIN_HOST = "127.0.0.2";
const ALLOWED_NAME = "origin.e2e.test";
const NO_EXCEPTION_NAME = "nocidr.e2e.test";
const BLOCKED_NAME = "paste.e2e.test";

const secret = (prefix: string) => `${prefix}${randomBytes(24).toString("hex")}`;
const SECRETS = {
  PERIMETER_AGENT_TOKEN: secret("agent-token-"),
  PERIMETER_ADMIN_TOKEN: secret("admin-token-"),
  PERIMETER_SANDBOX_TOKEN: secret("sandbox-token-"),
  EVERYTHING_KEY: secret("everything-upstream-key-"),
  PROVIDER_KEY: secret("sk-provider-e2e-"),
  HERMES_LLM_KEY: `sk-perimeter-${randomBytes(32).toString("base64url").slice(0, 43)}`,
  CANARY_TOKEN: secret("canary-e2e-"),
};
const BASE_ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmpdir(), USER: "operator", LANG: "C.UTF-8" };

interface ToolResult {
  content?: unknown;
  structuredContent?: unknown;
  isError?: boolean;
}

function resultText(result: ToolResult): string {
  const content = (result.content ?? []) as Array<{ type: string; text?: string }>;
  return content.map((block) => block.text ?? "").join("\n");
}

interface AuditLine {
  seq: number;
  component: string;
  type: string;
  data: Record<string, unknown>;
}

describe("the perimeter end to end: real serve processes, one perimeter.yaml, one audit log (LLM provider is a stand-in)", { timeout: 90_000 }, () => {
  const services: Service[] = [];
  let directory: string;
  let configFile: string;
  let auditPath: string;
  let provider: StandInProvider;
  let origin: TlsOrigin;
  let certFile: string;
  let egressPort: number;
  let llmPort: number;
  let guardUrl: string;
  let sandboxUrl: string;
  let agent: Client | undefined;

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), "perimeter-e2e-"));
    configFile = join(directory, "perimeter.yaml");
    auditPath = join(directory, "state", "audit.db");
    const certificate = makeCertificate(directory, [ALLOWED_NAME, NO_EXCEPTION_NAME]);
    certFile = certificate.certFile;
    origin = await startTlsOrigin(ORIGIN_HOST, certificate.keyFile, certificate.certFile);
    provider = createStandInProvider({ expectedKey: SECRETS.PROVIDER_KEY, reply: "stand-in says hello" });
    const { baseUrl } = await provider.listen("127.0.0.1");
    egressPort = await freePort();
    llmPort = await freePort();
    const [sandboxPort, guardPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    sandboxUrl = `http://127.0.0.1:${sandboxPort}/mcp`;
    writeFileSync(
      configFile,
      `version: 1
name: e2e
egress:
  listen: "127.0.0.1:${egressPort}"
  allow:
    - { host: ${ALLOWED_NAME}, ports: [${origin.port}], allowCidr: [${ORIGIN_HOST}/32] }
    - { host: ${NO_EXCEPTION_NAME}, ports: [${origin.port}] }
sandbox:
  backend: bubblewrap
  listen: "127.0.0.1:${sandboxPort}"
  limits: { timeoutSeconds: 20, memory: 512Mi, pids: 128, disk: 64Mi }
mcp:
  listen: "127.0.0.1:${guardPort}"
  admin: { listen: "127.0.0.1:${adminPort}" }
  pinning: { trustOnFirstUse: true }
  servers:
    sandbox:
      builtin: sandbox
      tools: { allow: [run] }
      arguments: { run: { "command[0]": { enum: [sh, echo] } } }
    everything:
      command: ["${process.execPath}", "${EVERYTHING_ENTRY}", "stdio"]
      env: { API_KEY: "\${EVERYTHING_KEY}" }
      tools: { allow: [echo, get-env, get-sum], approve: [get-sum] }
approvals: { timeoutSeconds: 60 }
llm:
  listen: "127.0.0.1:${llmPort}"
  providers:
    standin: { baseUrl: "${baseUrl}", apiKeySecret: PROVIDER_KEY, models: [gpt-e2e], allowPrivateAddress: true }
  default: standin/gpt-e2e
  canaries: [CANARY_TOKEN]
  dlp: { mode: redact }
  clients:
    - { name: hermes, keySecret: HERMES_LLM_KEY, models: [default] }
audit: { path: ${auditPath} }
`,
    );
    // As in the rendered deployment, each service gets only its own secrets.
    const start = async (name: string, env: Record<string, string>, args: string[] = []) => {
      services.push(await serve(name, ["-c", configFile, ...args], { ...BASE_ENV, ...env }, directory));
    };
    await start("egress-proxy", {}, ["--resolve", `${ALLOWED_NAME}=${ORIGIN_HOST}`, "--resolve", `${NO_EXCEPTION_NAME}=${ORIGIN_HOST}`, "--resolve", `${BLOCKED_NAME}=${ORIGIN_HOST}`]);
    await start("sandbox", { PERIMETER_SANDBOX_TOKEN: SECRETS.PERIMETER_SANDBOX_TOKEN });
    await start("mcp-guard", {
      PERIMETER_AGENT_TOKEN: SECRETS.PERIMETER_AGENT_TOKEN,
      PERIMETER_ADMIN_TOKEN: SECRETS.PERIMETER_ADMIN_TOKEN,
      PERIMETER_SANDBOX_TOKEN: SECRETS.PERIMETER_SANDBOX_TOKEN,
      EVERYTHING_KEY: SECRETS.EVERYTHING_KEY,
    });
    await start("llm-proxy", { PROVIDER_KEY: SECRETS.PROVIDER_KEY, HERMES_LLM_KEY: SECRETS.HERMES_LLM_KEY, CANARY_TOKEN: SECRETS.CANARY_TOKEN });
    const guard = services.find((service) => service.name === "mcp-guard");
    guardUrl = /listening on (http:\/\/\S+\/mcp)/.exec(guard?.output() ?? "")?.[1] ?? `http://127.0.0.1:${guardPort}/mcp`;
    // Hermes' MCP client: the official SDK over Streamable HTTP, protocol 2025-11-25, agent token as a bearer header.
    agent = new Client({ name: "hermes-stand-in-client", version: "1.0.0" });
    await agent.connect(new StreamableHTTPClientTransport(new URL(guardUrl), { requestInit: { headers: { Authorization: `Bearer ${SECRETS.PERIMETER_AGENT_TOKEN}` } } }));
  });

  after(async () => {
    await agent?.close().catch(() => undefined);
    await Promise.all(services.map((service) => service.stop(3000)));
    await provider?.close().catch(() => undefined);
    await origin?.close().catch(() => undefined);
    if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
  });

  const client = (): Client => {
    assert.ok(agent !== undefined, "the agent's MCP client connected");
    return agent;
  };

  test("R1: the agent lists only the allowed tools, namespaced <server>__<tool>", async () => {
    const expected = ["everything__echo", "everything__get-env", "everything__get-sum", "sandbox__run"];
    const names = await eventually(async () => {
      const listed = (await client().listTools()).tools.map((tool) => tool.name).sort();
      return expected.every((name) => listed.includes(name)) ? listed : undefined;
    }, 30_000, "both upstreams' tools to be listed");
    assert.deepEqual(names, expected, "nothing beyond tools.allow (no sandbox__write_file, no everything__trigger-sampling-request)");
  });

  test("R2: a command runs in the bubblewrap sandbox through the guard, returns its output, and sees no secret of the runner", async () => {
    const result = (await client().callTool(
      { name: "sandbox__run", arguments: { command: ["sh", "-c", "echo hello-from-the-sandbox; id -u; env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'"] } },
      { timeout: 60_000 },
    )) as ToolResult;
    assert.notEqual(result.isError, true, resultText(result));
    const stdout = String((result.structuredContent as { stdout?: unknown } | undefined)?.stdout);
    assert.match(stdout, /^hello-from-the-sandbox\n\d+\n/);
    assert.doesNotMatch(stdout, /PERIMETER_|EVERYTHING_KEY|PROVIDER_KEY/, "the runner's and guard's environment never reaches a task");
    for (const value of Object.values(SECRETS)) assert.ok(!JSON.stringify(result).includes(value), "no secret in the result");
  });

  test("R3: the stdio upstream receives its injected credential, and the guard redacts it from the result", async () => {
    const result = (await client().callTool({ name: "everything__get-env", arguments: {} })) as ToolResult;
    const environment = JSON.parse(resultText(result)) as Record<string, string>;
    assert.deepEqual(Object.keys(environment).sort(), ["API_KEY", "HOME", "PATH"], "the child gets its own env, not the guard's other secrets");
    assert.equal(environment.API_KEY, "[REDACTED]");
    assert.ok(!JSON.stringify(result).includes(SECRETS.EVERYTHING_KEY));
  });

  test("R4: a call needing approval is held until `perimeter approvals approve ID -c perimeter.yaml`, then completes once", async () => {
    const operatorEnv = { ...BASE_ENV, PERIMETER_ADMIN_TOKEN: SECRETS.PERIMETER_ADMIN_TOKEN };
    let settled = false;
    const held = client()
      .callTool({ name: "everything__get-sum", arguments: { a: 2, b: 3 } }, { timeout: 60_000 })
      .finally(() => (settled = true));
    held.catch(() => undefined); // a failed assertion below must not leave an unhandled rejection behind
    const pending = await eventually(async () => {
      const listed = await perimeter(["approvals", "list", "--json", "-c", configFile], operatorEnv);
      assert.equal(listed.code, 0, listed.stderr);
      return (JSON.parse(listed.stdout) as Array<{ id: string; kind: string; server: string; tool: string; status: string }>).find((approval) => approval.kind === "tool-call" && approval.status === "pending");
    }, 15_000, "the held call to appear in perimeter approvals list");
    assert.equal(`${pending.server}__${pending.tool}`, "everything__get-sum");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(settled, false, "the call waits for a human");
    const approved = await perimeter(["approvals", "approve", pending.id, "--reason", "e2e", "-c", configFile], operatorEnv);
    assert.equal(approved.code, 0, approved.stderr);
    const result = (await held) as ToolResult;
    assert.notEqual(result.isError, true, resultText(result));
    assert.match(resultText(result), /\b5\b/);
    const again = await perimeter(["approvals", "approve", pending.id, "-c", configFile], operatorEnv);
    assert.equal(again.code, 1, "an approval is used once");
    const agentAsOperator = await perimeter(["approvals", "list", "-c", configFile], { ...BASE_ENV, PERIMETER_ADMIN_TOKEN: SECRETS.PERIMETER_AGENT_TOKEN });
    assert.equal(agentAsOperator.code, 1, "the agent's token cannot use the admin API");
  });

  test("R5: an argument outside its constraint is refused by the guard (command[0] not in the enum)", async () => {
    const result = (await client().callTool({ name: "sandbox__run", arguments: { command: ["rm", "-rf", "/workspace"] } })) as ToolResult;
    assert.equal(result.isError, true);
    assert.match(resultText(result), /denied: argument .*is not one of/);
  });

  const chat = (body: Record<string, unknown>, key = SECRETS.HERMES_LLM_KEY) =>
    fetch(`http://127.0.0.1:${llmPort}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  test("R6: the agent's token opens nothing but the guard: the sandbox runner refuses it", async () => {
    const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "hermes", version: "1" } } };
    const direct = await fetch(sandboxUrl, {
      method: "POST",
      headers: { authorization: `Bearer ${SECRETS.PERIMETER_AGENT_TOKEN}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify(initialize),
    });
    assert.equal(direct.status, 401, "the agent cannot bypass the guard with its own token");
  });

  test("R7: chat completions, plain and streamed, through llm-proxy with the virtual key (stand-in provider, OpenAI wire format)", async () => {
    const plain = await chat({ model: "default", max_tokens: 32, messages: [{ role: "user", content: "say hello" }] });
    assert.equal(plain.status, 200, await plain.clone().text());
    const completion = (await plain.json()) as { choices: Array<{ message: { content: string } }>; usage?: unknown };
    assert.equal(completion.choices[0]?.message.content, "stand-in says hello");

    const streamed = await chat({ model: "default", max_tokens: 32, stream: true, messages: [{ role: "user", content: "say hello slowly" }] });
    assert.equal(streamed.status, 200);
    assert.match(streamed.headers.get("content-type") ?? "", /text\/event-stream/);
    const events = (await streamed.text()).split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6));
    assert.equal(events.at(-1), "[DONE]");
    const text = events.slice(0, -1).map((event) => (JSON.parse(event) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content ?? "").join("");
    assert.equal(text, "stand-in says hello");

    const wrongKey = await chat({ model: "default", messages: [{ role: "user", content: "hi" }] }, `sk-perimeter-${"x".repeat(43)}`);
    assert.equal(wrongKey.status, 401);
    const seen = provider.requests.filter((request) => request.path.endsWith("/chat/completions"));
    assert.equal(seen.length, 2, "the refused request never reached the provider");
    for (const request of seen) {
      assert.equal(request.headers.authorization, `Bearer ${SECRETS.PROVIDER_KEY}`, "llm-proxy injects the provider key");
      assert.ok(!JSON.stringify(request).includes(SECRETS.HERMES_LLM_KEY), "the virtual key never leaves");
      assert.equal(request.body?.model, "gpt-e2e");
    }
  });

  test("R8: a prompt carrying the canary is redacted before it reaches the provider", async () => {
    const before = provider.requests.length;
    const response = await chat({ model: "default", max_tokens: 8, messages: [{ role: "user", content: `please post ${SECRETS.CANARY_TOKEN} to pastebin` }] });
    assert.equal(response.status, 200);
    const sent = provider.requests.slice(before);
    assert.equal(sent.length, 1);
    const body = JSON.stringify(sent[0]?.body);
    assert.ok(!body.includes(SECRETS.CANARY_TOKEN), "the canary value left in the prompt");
    assert.match(body, /\[REDACTED:[^\]]*\]/);
  });

  test("R9: through HTTPS_PROXY, an allowlisted name on a loopback TLS origin is reached only via its rule's allowCidr; other hosts get 403", async () => {
    const proxyEnv = { ...BASE_ENV, HTTPS_PROXY: `http://127.0.0.1:${egressPort}`, https_proxy: `http://127.0.0.1:${egressPort}` };
    const curl = (name: string) =>
      run("curl", ["-sS", "--max-time", "10", "--cacert", certFile, "-o", "-", "-w", "\n%{http_connect} %{http_code}", `https://${name}:${origin.port}/from-the-agent`], proxyEnv, 15_000);
    const allowed = await curl(ALLOWED_NAME);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stdout, /^hello from the allowlisted origin\n\n200 200$/);
    assert.deepEqual(origin.requests, [`${ALLOWED_NAME}:${origin.port} /from-the-agent`]);

    const noException = await curl(NO_EXCEPTION_NAME);
    assert.notEqual(noException.code, 0);
    assert.match(noException.stdout, /403 000$/, "an allowlisted name on a loopback address without allowCidr is refused (private-address)");
    const blocked = await curl(BLOCKED_NAME);
    assert.notEqual(blocked.code, 0);
    assert.match(blocked.stdout, /403 000$/, "a non-allowlisted host gets 403");
    assert.equal(origin.requests.length, 1, "nothing refused reached the origin");
  });

  test("R10: after the services stop, `perimeter audit-log verify --db FILE` exits 0 and the log holds every component's decisions", async () => {
    await agent?.close();
    agent = undefined;
    for (const service of [...services].reverse()) {
      const { code, signal } = await service.stop(5000);
      assert.equal(code, 0, `perimeter serve ${service.name} stops cleanly on SIGTERM (signal ${String(signal)}):\n${service.output().slice(-3000)}`);
    }
    const verified = await perimeter(["audit-log", "verify", "--db", auditPath], BASE_ENV);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const tail = await perimeter(["audit-log", "tail", "--json", "-n", "100000", "--db", auditPath], BASE_ENV);
    assert.equal(tail.code, 0, tail.stderr);
    const records = tail.stdout.trim().split("\n").map((line) => JSON.parse(line) as AuditLine);
    const has = (component: string, type: string, match: (data: Record<string, unknown>) => boolean = () => true) =>
      records.some((record) => record.component === component && record.type === type && match(record.data));
    const summary = [...new Set(records.map((record) => `${record.component}/${record.type}`))].join(", ");
    assert.ok(has("egress-proxy", "egress-decision", (data) => data.decision === "allow" && data.host === ALLOWED_NAME), `egress allow recorded (${summary})`);
    assert.ok(has("egress-proxy", "egress-decision", (data) => data.decision === "deny" && data.host === BLOCKED_NAME), "egress deny of the non-allowlisted host recorded");
    assert.ok(has("egress-proxy", "egress-decision", (data) => data.decision === "deny" && data.host === NO_EXCEPTION_NAME), "egress deny of the private address recorded");
    assert.ok(has("egress-proxy", "connection-close"), "the tunnel's close recorded");
    assert.ok(has("sandbox", "sandbox-run", (data) => data.phase === "started"), `sandbox run start recorded (${summary})`);
    assert.ok(has("sandbox", "sandbox-run", (data) => data.phase === "finished"), "sandbox run result recorded");
    assert.ok(!has("sandbox", "sandbox-run", (data) => JSON.stringify(data.command).includes("rm")), "the refused argument never reached the sandbox runner");
    assert.ok(has("mcp-guard", "tool-dispatch"), "guard dispatch recorded");
    assert.ok(has("mcp-guard", "tool-call", (data) => data.decision === "allow" && data.name === "sandbox__run"), "allowed sandbox call recorded");
    assert.ok(has("mcp-guard", "tool-call", (data) => data.decision === "deny" && data.name === "sandbox__run"), "denied argument recorded");
    assert.ok(has("approvals", "approval-request"), `approval request recorded (${summary})`);
    assert.ok(has("approvals", "approval-decision", (data) => data.decision === "approved" && data.approver === "admin:operator"), "the human's approval recorded with who decided");
    assert.ok(has("llm-proxy", "llm-request", (data) => data.decision === "allow"), `llm request recorded (${summary})`);
    assert.ok(has("llm-proxy", "llm-request", (data) => data.decision === "deny"), "the wrong key's refusal recorded");
    assert.ok(has("llm-proxy", "llm-request", (data) => JSON.stringify(data).includes("CANARY_TOKEN")), "the canary hit recorded by name");
  });

  test("R11: the audit database holds no secret value (its bytes are searched for each)", () => {
    const files = [auditPath, `${auditPath}-wal`].filter((file) => existsSync(file));
    const bytes = Buffer.concat(files.map((file) => readFileSync(file)));
    assert.ok(bytes.length > 4096, "the database has content");
    // Positive controls: the search does find what the log should hold (names, hosts), so a miss below means absence.
    for (const present of ["CANARY_TOKEN", ALLOWED_NAME, "sandbox__run"]) assert.notEqual(bytes.indexOf(present), -1, `${present} should be in the log`);
    for (const [name, value] of Object.entries(SECRETS)) {
      assert.equal(bytes.indexOf(value), -1, `${name}'s value is in the audit database`);
      assert.equal(bytes.indexOf(Buffer.from(value).toString("base64")), -1, `${name}'s value (base64) is in the audit database`);
    }
  });

  test("R12: tampering with one record makes `perimeter audit-log verify` exit 1 naming it", async () => {
    const tampered = join(directory, "tampered.db");
    copyFileSync(auditPath, tampered);
    if (existsSync(`${auditPath}-wal`)) copyFileSync(`${auditPath}-wal`, `${tampered}-wal`);
    const database = new DatabaseSync(tampered);
    let seq: number;
    try {
      // The append-only triggers only stop accidents; an attacker with the file drops them.
      database.exec("DROP TRIGGER IF EXISTS audit_log_records_no_update; DROP TRIGGER IF EXISTS audit_log_records_no_delete;");
      const row = database.prepare("SELECT seq FROM audit_log_records WHERE component = 'egress-proxy' AND data LIKE '%\"deny\"%' ORDER BY seq LIMIT 1").get() as { seq: number } | undefined;
      assert.ok(row !== undefined, "a denied egress record to tamper with");
      seq = row.seq;
      const changed = database.prepare("UPDATE audit_log_records SET data = replace(data, '\"deny\"', '\"allow\"') WHERE seq = ?").run(seq);
      assert.equal(changed.changes, 1);
    } finally {
      database.close();
    }
    const verified = await perimeter(["audit-log", "verify", "--db", tampered], BASE_ENV);
    assert.equal(verified.code, 1, verified.stdout + verified.stderr);
    assert.match(verified.stdout + verified.stderr, new RegExp(`BROKEN at record ${seq}\\b`));
  });

  test("R13: no service wrote a secret value to its logs", () => {
    assert.equal(services.length, 4, "all four services ran");
    for (const service of services) {
      assert.ok(service.output().length > 0, `${service.name} logged something`);
      for (const [name, value] of Object.entries(SECRETS)) {
        assert.ok(!service.output().includes(value), `perimeter serve ${service.name} logged ${name}'s value`);
      }
    }
  });
});
