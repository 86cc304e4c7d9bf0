// Requirements (issue 7): the agent talks OpenAI/Anthropic wire formats to llm-proxy over real HTTP; the proxy holds
// the provider keys, relays streams chunk by chunk, cancels the upstream when the agent goes away, settles usage from
// streamed usage, maps provider errors to the agent's API flavor, and fails over before the first byte only.
// Providers are outside this network, so a stand-in provider speaking their real wire formats plays their part.
import http from "node:http";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createStandInProvider } from "./stand-in-provider.ts";
import type { StandInProvider } from "./stand-in-provider.ts";
import { eventually, post, postStream, request, sseData, startProxy } from "./test-support.ts";
import type { Harness } from "./test-support.ts";
import { uploadAfterRefusal } from "../shared/testing.ts";
import { readAuditRecords, verifyAuditLog } from "../audit-log/index.ts";

const PROVIDER_KEY = "sk-upstreamprovider-0123456789abcdefghij";
const ANTHROPIC_KEY = "sk-ant-api03-upstream-0123456789abcdefghijklmnop";
const AGENT_KEY = "sk-perimeter-agentkey0123456789abcdefghijklmnopq";

describe("llm-proxy against stand-in providers", () => {
  let openai: StandInProvider;
  let backup: StandInProvider;
  let anthropic: StandInProvider;
  let harness: Harness;

  before(async () => {
    openai = createStandInProvider({ expectedKey: PROVIDER_KEY });
    backup = createStandInProvider({ expectedKey: PROVIDER_KEY, reply: "Backup provider answering." });
    anthropic = createStandInProvider({ expectedKey: ANTHROPIC_KEY });
    const [main, second, claude] = await Promise.all([openai.listen(), backup.listen(), anthropic.listen()]);
    harness = await startProxy(
      `providers:
  main:
    baseUrl: ${main.baseUrl}
    apiKeySecret: MAIN_KEY
    models: [gpt-test, gated, slow-stream, break-mid-stream, fail-503, fail-500-text, bad-request, hang, reset, no-usage]
    allowPrivateAddress: true
    failoverTo: second
    timeoutSeconds: 1
    costPer1kTokens: { input: 1, output: 2 }
  second:
    baseUrl: ${second.baseUrl}
    apiKeySecret: MAIN_KEY
    models: [gpt-test]
    allowPrivateAddress: true
  lonely:
    baseUrl: ${second.baseUrl}
    apiKeySecret: MAIN_KEY
    models: [fail-503, bad-request, fail-500-text]
    allowPrivateAddress: true
  claude:
    kind: anthropic
    baseUrl: ${claude.baseUrl}
    apiKeySecret: CLAUDE_KEY
    models: [claude-test, fail-503]
    allowPrivateAddress: true
default: main/gpt-test
clients:
  - name: hermes
    keySecret: AGENT_KEY`,
      { MAIN_KEY: PROVIDER_KEY, CLAUDE_KEY: ANTHROPIC_KEY, AGENT_KEY },
    );
  });

  after(async () => {
    await harness.close();
    await Promise.all([openai.close(), backup.close(), anthropic.close()]);
  });

  test("a client without a key streaming a huge body is cut off after its 401 (and after a 404), not read to the end", async () => {
    const url = new URL(harness.url);
    for (const path of ["/v1/chat/completions", "/nowhere"]) {
      const head = `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${1024 ** 3}\r\n\r\n`;
      const attempt = await uploadAfterRefusal({ host: url.hostname, port: Number(url.port) }, head);
      assert.ok(attempt.closed, `${path}: the proxy kept reading (${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB sent)`);
      assert.match(attempt.answer, path === "/nowhere" ? /^HTTP\/1\.1 404 / : /^HTTP\/1\.1 401 /, path);
      assert.ok(attempt.sentBytes < 256 * 1024 * 1024, `${path}: ${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB accepted before the close`);
    }
  });

  test("non-streaming chat completion through the stand-in provider: provider key injected, virtual key never forwarded", async () => {
    const response = await post(harness.url, "/v1/chat/completions", { model: "main/gpt-test", messages: [{ role: "user", content: "Say hello" }] }, AGENT_KEY);
    assert.equal(response.status, 200);
    assert.equal((response.json.choices as Array<{ message: { content: string } }>)[0]?.message.content, "Hello from the stand-in provider, streaming one word at a time.");
    const seen = openai.requests.at(-1);
    assert.equal(seen?.headers.authorization, `Bearer ${PROVIDER_KEY}`);
    assert.equal(seen?.body?.model, "gpt-test", "the provider prefix is stripped");
    assert.ok(!JSON.stringify(seen?.headers).includes(AGENT_KEY), "the agent's virtual key must not reach the provider");
    const record = harness.records().at(-1);
    assert.equal(record?.data.client, "hermes");
    assert.equal(record?.data.provider, "main");
    assert.equal(record?.data.decision, "allow");
    assert.equal(record?.data.usageSource, "provider");
    assert.equal(record?.data.tokensOut, 11);
    assert.ok((record?.data.cost as number) > 0);
  });

  test("streaming is passed chunk by chunk: the first chunk reaches the agent before the stand-in provider finishes", async () => {
    const completedBefore = openai.completed();
    const stream = await postStream(harness.url, "/v1/chat/completions", { model: "main/gated", stream: true, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
    assert.equal(stream.status, 200);
    assert.match(String(stream.headers["content-type"]), /text\/event-stream/);
    let received = "";
    // The stand-in holds the rest of its stream until released, so this only completes if nothing is buffered.
    for (let guard = 0; guard < 20 && !received.includes('"content":"Hello '); guard++) received += (await stream.next()) ?? "";
    assert.match(received, /"content":"Hello "/);
    assert.equal(openai.completed(), completedBefore, "the upstream stream is still open");
    openai.release();
    const rest = await stream.rest();
    const events = sseData(received + rest);
    assert.equal(events.at(-1), "[DONE]");
    assert.ok(!events.some((event) => typeof event === "object" && event !== null && Array.isArray((event as { choices?: unknown[] }).choices) && (event as { choices: unknown[] }).choices.length === 0), "the usage chunk the proxy asked for is stripped when the agent did not ask");
    await eventually(() => harness.records().at(-1)?.data.model === "main/gated");
    const record = harness.records().at(-1);
    assert.equal(record?.data.usageSource, "provider", "usage settled from the streamed usage chunk");
    assert.equal(record?.data.tokensOut, 11);
    assert.equal(openai.requests.at(-1)?.body?.stream_options && (openai.requests.at(-1)?.body?.stream_options as { include_usage: boolean }).include_usage, true);
    assert.equal(typeof record?.data.firstChunkMs, "number");
  });

  test("streaming: the usage chunk is kept when the agent asked for include_usage, and matches the settled usage", async () => {
    const response = await post(harness.url, "/v1/chat/completions", { model: "main/gpt-test", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "count me" }] }, AGENT_KEY);
    const events = sseData(response.text);
    const usageChunk = events.find((event) => typeof event === "object" && event !== null && (event as { usage?: unknown }).usage !== null && (event as { usage?: unknown }).usage !== undefined) as { usage: { prompt_tokens: number; completion_tokens: number } };
    assert.ok(usageChunk !== undefined);
    await eventually(() => harness.records().at(-1)?.data.model === "main/gpt-test");
    const record = harness.records().at(-1);
    assert.equal(record?.data.tokensIn, usageChunk.usage.prompt_tokens);
    assert.equal(record?.data.tokensOut, usageChunk.usage.completion_tokens);
  });

  test("an agent disconnecting mid-stream cancels the upstream request to the stand-in provider", async () => {
    const cancelledBefore = openai.cancelled();
    const cancellation = openai.nextCancellation();
    const stream = await postStream(harness.url, "/v1/chat/completions", { model: "main/slow-stream", stream: true, messages: [{ role: "user", content: "long story" }] }, AGENT_KEY);
    const first = await stream.next();
    assert.ok(first !== undefined && first.includes("chat.completion.chunk"));
    stream.abort();
    await Promise.race([cancellation, new Promise((_, reject) => setTimeout(() => reject(new Error("upstream not cancelled within 3 s")), 3000))]);
    assert.equal(openai.cancelled(), cancelledBefore + 1);
    await eventually(() => harness.records().at(-1)?.data.model === "main/slow-stream");
    const record = harness.records().at(-1);
    assert.equal(record?.data.cancelled, true);
    assert.equal(record?.data.usageSource, "reserved", "a cut stream is charged its reservation");
  });

  test("Anthropic /v1/messages streaming: events relayed in order, usage settled from message_start and message_delta", async () => {
    const stream = await postStream(harness.url, "/v1/messages", { model: "claude/claude-test", max_tokens: 100, stream: true, messages: [{ role: "user", content: "Hi Claude" }] }, AGENT_KEY, { "anthropic-version": "2023-06-01" });
    const text = await stream.rest();
    const types = [...text.matchAll(/^event: (\S+)$/gm)].map((match) => match[1]);
    assert.deepEqual([types[0], types[1], types.at(-3), types.at(-2), types.at(-1)], ["message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"]);
    const seen = anthropic.requests.at(-1);
    assert.equal(seen?.headers["x-api-key"], ANTHROPIC_KEY);
    assert.equal(seen?.headers["anthropic-version"], "2023-06-01");
    assert.equal(seen?.headers.authorization, undefined);
    await eventually(() => harness.records().at(-1)?.data.model === "claude/claude-test");
    const record = harness.records().at(-1);
    assert.equal(record?.data.tokensOut, 11);
    assert.equal(record?.data.tokensIn, 3);
    assert.equal(record?.data.usageSource, "provider");
  });

  test("Anthropic /v1/messages non-streaming with the key in x-api-key, as the Anthropic SDK sends it", async () => {
    const response = await request(`${harness.url}/v1/messages`, "POST", { model: "claude/claude-test", max_tokens: 5, messages: [{ role: "user", content: "Hi" }] }, { "x-api-key": AGENT_KEY, "anthropic-version": "2023-06-01" });
    assert.equal(response.status, 200);
    assert.equal(response.json.type, "message");
    assert.equal((response.json.usage as { output_tokens: number }).output_tokens, 5);
  });

  test("Responses API streaming and embeddings are relayed with usage settled", async () => {
    const stream = await postStream(harness.url, "/v1/responses", { model: "main/gpt-test", input: "hello", stream: true }, AGENT_KEY);
    const text = await stream.rest();
    assert.match(text, /event: response.completed/);
    await eventually(() => harness.records().at(-1)?.data.route === "responses");
    assert.equal(harness.records().at(-1)?.data.usageSource, "provider");
    const embedding = await post(harness.url, "/v1/embeddings", { model: "main/gpt-test", input: ["one", "two"] }, AGENT_KEY);
    assert.equal(embedding.status, 200);
    assert.equal((embedding.json.data as unknown[]).length, 2);
    const record = harness.records().at(-1);
    assert.equal(record?.data.route, "embeddings");
    assert.equal(record?.data.tokensOut, 0);
    assert.equal(record?.data.usageSource, "provider");
  });

  test("GET /v1/models lists the models and aliases the key may use; /healthz and /metrics answer", async () => {
    const models = await request(`${harness.url}/v1/models`, "GET", undefined, { authorization: `Bearer ${AGENT_KEY}` });
    const ids = (models.json.data as Array<{ id: string }>).map((entry) => entry.id);
    assert.ok(ids.includes("main/gpt-test") && ids.includes("claude/claude-test") && ids.includes("default"));
    const health = await request(`${harness.url}/healthz`, "GET", undefined);
    assert.equal(health.status, 200);
    const metrics = await request(`${harness.url}/metrics`, "GET", undefined);
    assert.match(metrics.text, /llm_proxy_requests_total\{route="chat-completions",decision="allow",reason="ok"\} \d+/);
    assert.match(metrics.text, /llm_proxy_tokens_total\{provider="main",direction="output"\} \d+/);
  });

  test("failover: a 503 from the stand-in provider moves the request to failoverTo before any byte reached the agent", async () => {
    const response = await post(harness.url, "/v1/chat/completions", { model: "main/gpt-test", messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
    assert.equal(response.status, 200);
    // Make main fail: fail-503 is not served by "second", so the failover uses second's first model.
    const failed = await post(harness.url, "/v1/chat/completions", { model: "main/fail-503", messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
    assert.equal(failed.status, 200);
    assert.match(JSON.stringify(failed.json), /Backup provider answering/);
    const record = harness.records().at(-1);
    assert.deepEqual(record?.data.failovers, ["main->second"]);
    assert.equal(record?.data.provider, "second");
    assert.equal(backup.requests.at(-1)?.body?.model, "gpt-test");
  });

  test("failover on a connection reset and on a timeout (timeoutSeconds: 1)", async () => {
    const reset = await post(harness.url, "/v1/chat/completions", { model: "main/reset", messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
    assert.equal(reset.status, 200);
    assert.deepEqual(harness.records().at(-1)?.data.failovers, ["main->second"]);
    const started = Date.now();
    const hung = await post(harness.url, "/v1/chat/completions", { model: "main/hang", stream: true, messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
    assert.equal(hung.status, 200);
    assert.ok(Date.now() - started < 5000);
    assert.equal(sseData(hung.text).at(-1), "[DONE]");
    assert.deepEqual(harness.records().at(-1)?.data.failovers, ["main->second"]);
  });

  test("no failover once bytes reached the agent: a stand-in stream cut midway ends with an error event, not a silent end", async () => {
    const backupRequests = backup.requests.length;
    const stream = await postStream(harness.url, "/v1/chat/completions", { model: "main/break-mid-stream", stream: true, messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
    assert.equal(stream.status, 200);
    const events = sseData(await stream.rest());
    assert.ok(events.length >= 2);
    assert.notEqual(events.at(-1), "[DONE]");
    assert.equal((events.at(-1) as { error?: { code?: string } }).error?.code, "upstream_stream_broken");
    assert.equal(backup.requests.length, backupRequests, "the failover provider was not asked after the stream started");
    await eventually(() => harness.records().at(-1)?.data.model === "main/break-mid-stream");
    assert.equal(harness.records().at(-1)?.data.reason, "upstream-stream-broken");
  });

  test("error mapping: upstream errors become OpenAI-style bodies with the provider's status (no failover configured)", async () => {
    const unavailable = await post(harness.url, "/v1/chat/completions", { model: "lonely/fail-503", messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
    assert.equal(unavailable.status, 503);
    assert.equal(unavailable.json.error?.type, "server_error");
    assert.match(String(unavailable.json.error?.message), /provider lonely: The server is overloaded/);
    const plain = await post(harness.url, "/v1/chat/completions", { model: "lonely/fail-500-text", messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
    assert.equal(plain.status, 500);
    assert.equal(plain.json.error?.code, "upstream_500");
    assert.match(String(plain.json.error?.message), /upstream exploded/);
    const bad = await post(harness.url, "/v1/chat/completions", { model: "lonely/bad-request", messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error?.code, "invalid_value");
    assert.equal(harness.records().at(-1)?.data.decision, "error");
  });

  test("error mapping: /v1/messages errors are Anthropic-style; a stand-in 529 without failover keeps its status", async () => {
    const response = await request(`${harness.url}/v1/messages`, "POST", { model: "claude/fail-503", max_tokens: 5, messages: [{ role: "user", content: "x" }] }, { "x-api-key": AGENT_KEY });
    assert.equal(response.status, 529);
    assert.equal(response.json.type, "error");
    assert.equal((response.json.error as { type: string }).type, "overloaded_error");
    const unknownModel = await request(`${harness.url}/v1/messages`, "POST", { model: "claude/nope", max_tokens: 5, messages: [] }, { "x-api-key": AGENT_KEY });
    assert.equal(unknownModel.status, 404);
    assert.equal((unknownModel.json.error as { type: string }).type, "not_found_error");
  });

  test("requests for the wrong wire format, malformed bodies and unknown routes are refused with clear errors", async () => {
    // Chat completions and messages are translated across kinds (translate.test.ts); the Responses API has no Anthropic counterpart.
    const crossed = await post(harness.url, "/v1/responses", { model: "claude/claude-test", input: "hi" }, AGENT_KEY);
    assert.equal(crossed.status, 400);
    assert.match(String(crossed.json.error?.message), /no Anthropic counterpart; call POST \/v1\/chat\/completions or \/v1\/messages/);
    const malformed = await post(harness.url, "/v1/chat/completions", "{not json", AGENT_KEY);
    assert.equal(malformed.status, 400);
    const noModel = await post(harness.url, "/v1/chat/completions", { messages: [] }, AGENT_KEY);
    assert.equal(noModel.status, 400);
    assert.equal(noModel.json.error?.param, "model");
    const unknown = await post(harness.url, "/v1/audio/speech", { model: "x" }, AGENT_KEY);
    assert.equal(unknown.status, 404);
    let deep: unknown = "x";
    for (let level = 0; level < 80; level++) deep = [deep];
    const tooDeep = await post(harness.url, "/v1/chat/completions", { model: "main/gpt-test", messages: deep }, AGENT_KEY);
    assert.equal(tooDeep.status, 400, "a body too deep to scan is refused, not forwarded unscanned");
  });

  test("an oversized body is refused with 413 and the server keeps serving", async () => {
    const huge = { model: "main/gpt-test", messages: [{ role: "user", content: "a".repeat(33 * 1024 * 1024) }] };
    // The proxy answers before reading the body and closes; the client may see the answer or a reset while writing.
    const refused = await post(harness.url, "/v1/chat/completions", huge, AGENT_KEY).catch(() => undefined);
    if (refused !== undefined) assert.equal(refused.status, 413);
    await eventually(() => harness.records().at(-1)?.data.reason === "payload-too-large");
    const fine = await post(harness.url, "/v1/chat/completions", { model: "main/gpt-test", messages: [{ role: "user", content: "ok" }] }, AGENT_KEY);
    assert.equal(fine.status, 200);
  });
});

describe("audit log failure (stand-in provider)", () => {
  test("when the audit log fails, a request is refused with 503 before it reaches the provider, /healthz says so, and the next good write heals it", async () => {
    const provider = createStandInProvider();
    const { baseUrl } = await provider.listen();
    let failing = false;
    const harness = await startProxy(`providers:\n  main: { baseUrl: "${baseUrl}", models: [gpt-test], allowPrivateAddress: true }\nclients:\n  - { name: hermes, keySecret: AGENT_KEY }`, { AGENT_KEY }, {}, (log) => ({
      append(record) {
        if (failing) throw new Error("disk full (simulated)");
        return log.append(record);
      },
    }));
    const ask = () => post(harness.url, "/v1/chat/completions", { model: "main/gpt-test", max_tokens: 3, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
    try {
      assert.equal((await ask()).status, 200);
      failing = true;
      const requestsBefore = provider.requests.length;
      const refused = await ask();
      assert.equal(refused.status, 503);
      assert.equal(refused.json.error?.code, "audit_unavailable");
      assert.equal(provider.requests.length, requestsBefore, "a request whose decision cannot be recorded never reaches the provider");
      assert.equal((await request(`${harness.url}/healthz`, "GET", undefined)).status, 503);
      assert.match((await request(`${harness.url}/metrics`, "GET", undefined)).text, /llm_proxy_audit_failures_total [1-9]/);
      failing = false;
      assert.equal((await ask()).status, 200);
      assert.equal((await request(`${harness.url}/healthz`, "GET", undefined)).status, 200);
      await eventually(() => harness.records().length === 2 && harness.records().every((record) => record.data.status === 200));
    } finally {
      await harness.close();
      await provider.close();
    }
  });

  // Issue 12, item 5: the record used to be written after the answer, so a provider (or a crash) saw a request the
  // audit log did not yet hold.
  test("a request's decision is committed before the provider sees it, and its outcome settles it afterwards", async () => {
    const provider = createStandInProvider();
    const { baseUrl } = await provider.listen();
    const harness = await startProxy(`providers:\n  main: { baseUrl: "${baseUrl}", models: [gated], allowPrivateAddress: true }\nclients:\n  - { name: hermes, keySecret: AGENT_KEY }`, { AGENT_KEY });
    try {
      const answer = post(harness.url, "/v1/chat/completions", { model: "main/gated", stream: true, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
      await eventually(() => provider.requests.length === 1);
      // The provider holds the stream open mid-answer: the decision must already be on record.
      const during = readAuditRecords(harness.auditPath, { limit: 100 });
      const decision = during.find((record) => record.type === "llm-request");
      assert.equal(decision?.data.decision, "allow");
      assert.equal(decision?.data.client, "hermes");
      assert.equal(typeof decision?.data.reservedTokens, "number");
      assert.equal(during.some((record) => record.type === "llm-response"), false);
      provider.release();
      assert.equal((await answer).status, 200);
      await eventually(() => readAuditRecords(harness.auditPath, { limit: 100 }).some((record) => record.type === "llm-response"));
      const settled = readAuditRecords(harness.auditPath, { limit: 100 }).find((record) => record.type === "llm-response");
      assert.equal(settled?.data.decisionSeq, decision?.seq);
      assert.equal(settled?.data.status, 200);
      assert.equal(settled?.data.usageSource, "provider");
      assert.equal(verifyAuditLog(harness.auditPath).ok, true);
    } finally {
      provider.release();
      await harness.close();
      await provider.close();
    }
  });

  test("an answer whose outcome cannot be recorded is cut before its end, and /healthz turns unhealthy", async () => {
    const provider = createStandInProvider();
    const { baseUrl } = await provider.listen();
    let failing = false;
    const harness = await startProxy(`providers:\n  main: { baseUrl: "${baseUrl}", models: [gated], allowPrivateAddress: true }\nclients:\n  - { name: hermes, keySecret: AGENT_KEY }`, { AGENT_KEY }, {}, (log) => ({
      append(record) {
        if (failing) throw new Error("disk full (simulated)");
        return log.append(record);
      },
    }));
    try {
      const answer = new Promise<{ complete: boolean; text: string }>((resolve) => {
        const outgoing = http.request(`${harness.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${AGENT_KEY}` } }, (response) => {
          let text = "";
          response.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
          response.on("error", () => undefined);
          response.on("close", () => resolve({ complete: response.complete, text }));
        });
        outgoing.on("error", () => resolve({ complete: false, text: "" }));
        outgoing.end(JSON.stringify({ model: "main/gated", stream: true, messages: [{ role: "user", content: "hi" }] }));
      });
      await eventually(() => provider.requests.length === 1);
      failing = true;
      provider.release();
      const outcome = await answer;
      assert.ok(outcome.text.includes("chat.completion.chunk"), "the agent got the streamed chunks");
      assert.equal(outcome.complete, false, "the stream was cut, not ended cleanly");
      assert.equal((await request(`${harness.url}/healthz`, "GET", undefined)).status, 503);
    } finally {
      provider.release();
      await harness.close();
      await provider.close();
    }
  });

  test("a refusal's record is committed before the refusal is answered", async () => {
    const provider = createStandInProvider();
    const { baseUrl } = await provider.listen();
    const harness = await startProxy(`providers:\n  main: { baseUrl: "${baseUrl}", models: [gpt-test], allowPrivateAddress: true }\nclients:\n  - { name: hermes, keySecret: AGENT_KEY, models: [main/other] }`, { AGENT_KEY });
    try {
      const refused = await post(harness.url, "/v1/chat/completions", { model: "main/gpt-test", messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
      assert.equal(refused.status, 403);
      // Read at once, no polling: the record was committed before the answer was sent.
      assert.equal(readAuditRecords(harness.auditPath, { limit: 100 }).at(-1)?.data.reason, "model-not-allowed");
    } finally {
      await harness.close();
      await provider.close();
    }
  });
});
