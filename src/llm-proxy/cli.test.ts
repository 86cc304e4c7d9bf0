// Requirements (issue 7): `perimeter serve llm-proxy -c FILE --listen HOST:PORT` runs as its own process, serves the
// agent, reloads on SIGHUP, stops cleanly on SIGTERM; a missing provider key or canary refuses to start (exit 2)
// naming the variable and never printing a value. The provider is a stand-in speaking OpenAI's wire format.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createStandInProvider } from "./stand-in-provider.ts";
import { eventually, post, request, runPerimeter, startProxy, temporaryDirectory } from "./test-support.ts";
import { freePort } from "../shared/index.ts";

const root = join(import.meta.dirname, "..", "..");
const AGENT_KEY = "sk-perimeter-cli-test-0123456789abcdefghijklmn";
const PROVIDER_KEY = "sk-provider-cli-test-0123456789abcdefghijklmn";


function writeConfig(directory: string, baseUrl: string, extra = "", auditExtra = ""): string {
  const file = join(directory, "perimeter.yaml");
  writeFileSync(
    file,
    `version: 1
name: test
audit: { path: ${join(directory, "audit.db")}${auditExtra} }
llm:
  providers:
    main: { baseUrl: "${baseUrl}", apiKeySecret: PROVIDER_KEY, models: [gpt-test], allowPrivateAddress: true }
  default: main/gpt-test
  canaries: [CANARY_TOKEN]
  clients:
    - { name: hermes, keySecret: AGENT_KEY }
${extra}`,
  );
  return file;
}

/** `perimeter serve llm-proxy` on port 0 with the test's keys (and `extra` variables); its "listening" log line. */
async function serveOnFreePort(file: string, extra: Record<string, string>) {
  const child = spawn(process.execPath, [join(root, "bin", "perimeter.js"), "serve", "llm-proxy", "-c", file, "--listen", "127.0.0.1:0"], {
    env: { PATH: process.env.PATH, PROVIDER_KEY, AGENT_KEY, CANARY_TOKEN: "canary-value-for-the-cli-test-0123456789", ...extra },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await eventually(() => stderr.includes("llm-proxy listening") || child.exitCode !== null, 15_000);
  const line = stderr.split("\n").find((entry) => entry.includes("llm-proxy listening"));
  if (line === undefined) child.kill("SIGKILL");
  assert.ok(line !== undefined, `the proxy did not start: ${stderr}`);
  return { child, exited, line, stderr: () => stderr };
}

test("serve llm-proxy as a process: serves the agent, reloads on SIGHUP, exits 0 on SIGTERM (stand-in provider)", async () => {
  const provider = createStandInProvider({ expectedKey: PROVIDER_KEY });
  const { baseUrl } = await provider.listen();
  const directory = temporaryDirectory();
  const file = writeConfig(directory, baseUrl);
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, "bin", "perimeter.js"), "serve", "llm-proxy", "-c", file, "--listen", `127.0.0.1:${port}`], {
    env: { PATH: process.env.PATH, PROVIDER_KEY, AGENT_KEY, CANARY_TOKEN: "canary-value-for-the-cli-test-0123456789" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    await eventually(() => stderr.includes("llm-proxy listening"), 15_000);
    const url = `http://127.0.0.1:${port}`;
    const response = await post(url, "/v1/chat/completions", { model: "default", max_tokens: 3, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
    assert.equal(response.status, 200);
    assert.equal((await post(url, "/v1/chat/completions", { model: "quick", max_tokens: 3, messages: [] }, AGENT_KEY)).status, 404);
    writeConfig(directory, baseUrl, "  aliases: { quick: main/gpt-test }\n");
    child.kill("SIGHUP");
    await eventually(() => stderr.includes("configuration reloaded"), 5000);
    assert.equal((await post(url, "/v1/chat/completions", { model: "quick", max_tokens: 3, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY)).status, 200);
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.ok(!stderr.includes(PROVIDER_KEY) && !stderr.includes(AGENT_KEY), "no secret in the logs");
  } finally {
    child.kill("SIGKILL");
    await provider.close();
  }
});

test("serve llm-proxy refuses to start without a provider key or a canary value: exit 2 naming the variable", async () => {
  const directory = temporaryDirectory();
  const file = writeConfig(directory, "http://127.0.0.1:9/v1");
  const missingKey = await runPerimeter(["serve", "llm-proxy", "-c", file, "--listen", "127.0.0.1:1"], { AGENT_KEY, CANARY_TOKEN: "canary-value-0123456789abcdef" });
  assert.equal(missingKey.code, 2);
  assert.match(missingKey.stderr, /PROVIDER_KEY/);
  const missingCanary = await runPerimeter(["serve", "llm-proxy", "-c", file, "--listen", "127.0.0.1:1"], { AGENT_KEY, PROVIDER_KEY });
  assert.equal(missingCanary.code, 2);
  assert.match(missingCanary.stderr, /CANARY_TOKEN/);
  assert.ok(!missingCanary.stderr.includes(PROVIDER_KEY));
  const badListen = await runPerimeter(["serve", "llm-proxy", "-c", file, "--listen", "localhost"], {});
  assert.equal(badListen.code, 2);
  assert.match(badListen.stderr, /not HOST:PORT/);
});

test("serve llm-proxy --listen 127.0.0.1:0 listens on a free port and logs it (issue 12: it was refused as not HOST:PORT)", async () => {
  const provider = createStandInProvider({ expectedKey: PROVIDER_KEY });
  const { baseUrl } = await provider.listen();
  const file = writeConfig(temporaryDirectory(), baseUrl);
  const { child, exited, line } = await serveOnFreePort(file, {});
  try {
    const { port } = JSON.parse(line) as { port: number };
    assert.ok(Number.isInteger(port) && port > 0, `the log names the port picked: ${line}`);
    const response = await post(`http://127.0.0.1:${port}`, "/v1/chat/completions", { model: "default", max_tokens: 3, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
    assert.equal(response.status, 200);
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  } finally {
    child.kill("SIGKILL");
    await provider.close();
  }
});

const FEED_TOKEN = "feed-token-for-the-cli-test-0123456789abcdef";

test("issue 19: with audit.feedTokenSecret, serve llm-proxy serves its audit feed to the feed token only; no token, a wrong token and a valid client key are refused", async () => {
  const provider = createStandInProvider({ expectedKey: PROVIDER_KEY });
  const { baseUrl } = await provider.listen();
  const file = writeConfig(temporaryDirectory(), baseUrl, "", ", feedTokenSecret: FEED_TOKEN");
  const { child, exited, line, stderr } = await serveOnFreePort(file, { FEED_TOKEN });
  try {
    const url = `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`;
    assert.equal((await post(url, "/v1/chat/completions", { model: "default", max_tokens: 3, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY)).status, 200);

    const head = await request(`${url}/v1/audit/head`, "GET", undefined, { authorization: `Bearer ${FEED_TOKEN}` });
    assert.equal(head.status, 200, head.text);
    assert.ok(typeof (head.json.head as { seq?: unknown } | null)?.seq === "number", `the feed names the chain head: ${head.text}`);
    const records = await request(`${url}/v1/audit/records?after=0`, "GET", undefined, { authorization: `Bearer ${FEED_TOKEN}` });
    assert.equal(records.status, 200);
    const types = (records.json.records as Array<{ type: string; component: string }>).map((record) => `${record.component}/${record.type}`);
    assert.ok(types.includes("llm-proxy/llm-request") && types.includes("llm-proxy/llm-response"), `the feed holds the proxy's records: ${types.join(", ")}`);

    const refusals: Array<[string, Record<string, string>]> = [
      ["no token", {}],
      ["a wrong token", { authorization: `Bearer ${FEED_TOKEN.replace(/.$/, "x")}` }],
      ["a valid client key", { authorization: `Bearer ${AGENT_KEY}` }],
      ["a valid client key as x-api-key", { "x-api-key": AGENT_KEY }],
      ["the provider key", { authorization: `Bearer ${PROVIDER_KEY}` }],
    ];
    for (const [what, headers] of refusals) {
      for (const path of ["/v1/audit/head", "/v1/audit/records?after=0"]) {
        const refused = await request(`${url}${path}`, "GET", undefined, headers);
        assert.equal(refused.status, 401, `${what} is refused at ${path}: ${refused.text}`);
        assert.ok(!refused.text.includes("llm-request") && !refused.text.includes(FEED_TOKEN) && !refused.text.includes(AGENT_KEY), `${what}: nothing of the log (or a token) in the refusal`);
      }
    }
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.ok(!stderr().includes(FEED_TOKEN), "the feed token is never logged");
  } finally {
    child.kill("SIGKILL");
    await provider.close();
  }
});

test("issue 19: without audit.feedTokenSecret there is no audit feed on the proxy's listener; a feed token that names an unset variable refuses the start (exit 2)", async () => {
  const harness = await startProxy(`providers:\n  main: { baseUrl: "http://127.0.0.1:9/v1", models: [gpt-test], allowPrivateAddress: true }\nclients:\n  - { name: hermes, keySecret: AGENT_KEY }`, { AGENT_KEY });
  try {
    const head = await request(`${harness.url}/v1/audit/head`, "GET", undefined, { authorization: `Bearer ${AGENT_KEY}` });
    assert.equal(head.status, 404, head.text);
    assert.ok(!head.text.includes("seq"), "no part of the log is served");
  } finally {
    await harness.close();
  }
  const file = writeConfig(temporaryDirectory(), "http://127.0.0.1:9/v1", "", ", feedTokenSecret: FEED_TOKEN");
  const missing = await runPerimeter(["serve", "llm-proxy", "-c", file, "--listen", "127.0.0.1:0"], { AGENT_KEY, PROVIDER_KEY, CANARY_TOKEN: "canary-value-0123456789abcdef" });
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /FEED_TOKEN/);
});

test("serve llm-proxy names every missing variable in one start, the audit feed token with the llm section's own", async () => {
  const file = writeConfig(temporaryDirectory(), "http://127.0.0.1:9", "", ", feedTokenSecret: FEED_TOKEN_UNSET");
  const result = await runPerimeter(["serve", "llm-proxy", "-c", file, "--listen", "127.0.0.1:0"], { PATH: process.env.PATH ?? "", PROVIDER_KEY, CANARY_TOKEN: "canary-value-for-the-cli-test-0123456789" });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /AGENT_KEY/);
  assert.match(result.stderr, /FEED_TOKEN_UNSET/);
});
