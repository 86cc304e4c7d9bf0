// Requirements (issue 13 item 9): an agent speaking OpenAI chat completions can use a model of an Anthropic-kind
// provider, and an agent speaking Anthropic messages a model of an OpenAI-kind provider — through the running proxy,
// streaming and not, with tool calls in both directions: system prompts, multi-part content with images, tools and
// tool_choice, assistant tool calls <-> tool_use blocks, tool results <-> tool_result blocks, stop reasons, max_tokens,
// temperature/top_p/stop, usage (budgets settle on the provider's own numbers), errors in the agent's format and
// status. DLP scans the agent's body as sent, and the translation again, so decoding cannot smuggle a secret out.
// Failover crosses kinds. The providers are stand-ins speaking the real wire formats (and refusing malformed
// requests as the real APIs do).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createStandInProvider, STAND_IN_TOOL_ARGUMENT_FRAGMENTS } from "./stand-in-provider.ts";
import type { StandInProvider } from "./stand-in-provider.ts";
import { eventually, post, postStream, request, sseData, startProxy } from "./test-support.ts";
import { messagesRequestToChat } from "./translate.ts";
import { createAnswerTranslator } from "./translate-answer.ts";
import type { Harness } from "./test-support.ts";

const OPENAI_KEY = "sk-upstreamprovider-translate-0123456789abcdef";
const ANTHROPIC_KEY = "sk-ant-api03-upstream-translate-0123456789abcdefghij";
const AGENT_KEY = "sk-perimeter-translatekey0123456789abcdefghijklmn";
const CANARY = "canary-translate-5f0c2a9e7d1b4c3a8e6f";
const ARGUMENTS = STAND_IN_TOOL_ARGUMENT_FRAGMENTS.join("");
const PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
const WEATHER_TOOL = { type: "function", function: { name: "get_weather", description: "Weather for a city", parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } }, required: ["city"] } } };

type Json = Record<string, unknown>;
const objects = (text: string) => sseData(text).filter((event): event is Json => typeof event === "object" && event !== null);

describe("translation between chat completions and messages (stand-in providers)", () => {
  let openai: StandInProvider;
  let anthropic: StandInProvider;
  let harness: Harness;

  before(async () => {
    openai = createStandInProvider({ expectedKey: OPENAI_KEY });
    anthropic = createStandInProvider({ expectedKey: ANTHROPIC_KEY });
    const [gpt, claude] = await Promise.all([openai.listen(), anthropic.listen()]);
    harness = await startProxy(
      `providers:
  claude:
    kind: anthropic
    baseUrl: ${claude.baseUrl}
    apiKeySecret: CLAUDE_KEY
    models: [claude-test, tool-call, error-in-stream, bad-request, fail-503]
    allowPrivateAddress: true
    costPer1kTokens: { input: 3, output: 15 }
  flaky:
    kind: anthropic
    baseUrl: ${claude.baseUrl}
    apiKeySecret: CLAUDE_KEY
    models: [fail-503]
    allowPrivateAddress: true
    failoverTo: spare-gpt
  spare-gpt:
    baseUrl: ${gpt.baseUrl}
    apiKeySecret: GPT_KEY
    models: [gpt-test]
    allowPrivateAddress: true
  gpt:
    baseUrl: ${gpt.baseUrl}
    apiKeySecret: GPT_KEY
    models: [gpt-test, tool-call, error-in-stream, bad-request, fail-503]
    allowPrivateAddress: true
    costPer1kTokens: { input: 1, output: 2 }
  wobbly:
    baseUrl: ${gpt.baseUrl}
    apiKeySecret: GPT_KEY
    models: [fail-503]
    allowPrivateAddress: true
    failoverTo: spare-claude
  spare-claude:
    kind: anthropic
    baseUrl: ${claude.baseUrl}
    apiKeySecret: CLAUDE_KEY
    models: [claude-test]
    allowPrivateAddress: true
default: claude/claude-test
canaries: [CANARY_TOKEN]
clients:
  - name: hermes
    keySecret: AGENT_KEY`,
      { CLAUDE_KEY: ANTHROPIC_KEY, GPT_KEY: OPENAI_KEY, AGENT_KEY, CANARY_TOKEN: CANARY },
    );
  });

  after(async () => {
    await harness.close();
    await Promise.all([openai.close(), anthropic.close()]);
  });

  const lastRecord = async (model: string) => {
    await eventually(() => harness.records().at(-1)?.data.model === model);
    return harness.records().at(-1)?.data as Json;
  };

  describe("an OpenAI-speaking agent, an Anthropic-kind provider", () => {
    test("a whole conversation translates: system prompts, image parts, assistant tool_calls -> tool_use, tool messages -> tool_result, tools, tool_choice, sampling", async () => {
      const response = await post(
        harness.url,
        "/v1/chat/completions",
        {
          model: "default",
          messages: [
            { role: "system", content: "You are terse." },
            { role: "developer", content: [{ type: "text", text: "Answer in English." }] },
            {
              role: "user",
              content: [
                { type: "text", text: "What is in this picture, and the weather in Paris?" },
                { type: "image_url", image_url: { url: `data:image/png;base64,${PIXEL}`, detail: "low" } },
                { type: "image_url", image_url: { url: "https://images.example/cat.png" } },
              ],
            },
            { role: "assistant", content: "", tool_calls: [{ id: "call_abc", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }, { id: "functions.lookup:1", type: "function", function: { name: "get_weather", arguments: "" } }] },
            { role: "tool", tool_call_id: "call_abc", content: "sunny, 24 C" },
            { role: "tool", tool_call_id: "functions.lookup:1", content: [{ type: "text", text: "no data" }] },
            { role: "user", content: "Thanks." },
          ],
          tools: [WEATHER_TOOL],
          tool_choice: { type: "function", function: { name: "get_weather" } },
          parallel_tool_calls: false,
          temperature: 0.2,
          top_p: 0.9,
          stop: "###",
          user: "hermes-user-1",
          seed: 7,
        },
        AGENT_KEY,
      );
      assert.equal(response.status, 200, response.text);
      const sent = anthropic.requests.at(-1);
      assert.equal(sent?.path, "/v1/messages", "the Anthropic route of the provider");
      assert.equal(sent?.headers["x-api-key"], ANTHROPIC_KEY);
      assert.equal(sent?.headers["anthropic-version"], "2023-06-01");
      assert.equal(sent?.headers.authorization, undefined);
      const body = sent?.body as Json;
      assert.equal(body.model, "claude-test");
      assert.equal(body.max_tokens, 4096, "Anthropic requires max_tokens: the proxy's default reservation");
      assert.deepEqual(body.system, [
        { type: "text", text: "You are terse." },
        { type: "text", text: "Answer in English." },
      ]);
      assert.deepEqual(body.messages, [
        {
          role: "user",
          content: [
            { type: "text", text: "What is in this picture, and the weather in Paris?" },
            { type: "image", source: { type: "base64", media_type: "image/png", data: PIXEL } },
            { type: "image", source: { type: "url", url: "https://images.example/cat.png" } },
          ],
        },
        {
          role: "assistant",
          content: [
            { type: "tool_use", id: "call_abc", name: "get_weather", input: { city: "Paris" } },
            { type: "tool_use", id: "functions_lookup_1", name: "get_weather", input: {} },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "call_abc", content: [{ type: "text", text: "sunny, 24 C" }] },
            { type: "tool_result", tool_use_id: "functions_lookup_1", content: [{ type: "text", text: "no data" }] },
            { type: "text", text: "Thanks." },
          ],
        },
      ]);
      assert.deepEqual(body.tools, [{ name: "get_weather", description: "Weather for a city", input_schema: WEATHER_TOOL.function.parameters }]);
      assert.deepEqual(body.tool_choice, { type: "tool", name: "get_weather", disable_parallel_tool_use: true });
      assert.equal(body.temperature, 0.2);
      assert.equal(body.top_p, 0.9);
      assert.deepEqual(body.stop_sequences, ["###"]);
      assert.deepEqual(body.metadata, { user_id: "hermes-user-1" });
      assert.equal(body.seed, undefined, "a sampling hint without an Anthropic equivalent is dropped");

      assert.equal(response.json.object, "chat.completion");
      const choice = (response.json.choices as Json[])[0] as { message: Json; finish_reason: string };
      assert.equal(choice.message.role, "assistant");
      assert.equal(choice.message.content, "Hello from the stand-in provider, streaming one word at a time.");
      assert.equal(choice.finish_reason, "stop");
      const usage = response.json.usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
      assert.equal(usage.completion_tokens, 11);
      assert.equal(usage.total_tokens, usage.prompt_tokens + 11);
      const record = await lastRecord("default");
      assert.equal(record.translation, "chat-to-messages");
      assert.equal(record.usageSource, "provider");
      assert.equal(record.tokensIn, usage.prompt_tokens, "the budget settles on the provider's own input count");
      assert.equal(record.tokensOut, 11);
      assert.equal(record.cost, (usage.prompt_tokens / 1000) * 3 + (11 / 1000) * 15);
    });

    test("a tool call in the answer (not streamed) becomes tool_calls with the arguments as a JSON string, finish_reason tool_calls", async () => {
      const response = await post(harness.url, "/v1/chat/completions", { model: "claude/tool-call", max_tokens: 200, messages: [{ role: "user", content: "Weather in Paris?" }], tools: [WEATHER_TOOL], tool_choice: "required" }, AGENT_KEY);
      assert.equal(response.status, 200, response.text);
      assert.deepEqual((anthropic.requests.at(-1)?.body as Json).tool_choice, { type: "any" });
      assert.equal((anthropic.requests.at(-1)?.body as Json).max_tokens, 200);
      const choice = (response.json.choices as Json[])[0] as { message: { content: string | null; tool_calls: Array<{ id: string; type: string; function: { name: string; arguments: string } }> }; finish_reason: string };
      assert.equal(choice.finish_reason, "tool_calls");
      assert.equal(choice.message.content, "Let me check.");
      assert.equal(choice.message.tool_calls.length, 1);
      assert.match(choice.message.tool_calls[0]?.id ?? "", /^toolu_/);
      assert.equal(choice.message.tool_calls[0]?.type, "function");
      assert.equal(choice.message.tool_calls[0]?.function.name, "get_weather");
      assert.deepEqual(JSON.parse(choice.message.tool_calls[0]?.function.arguments ?? ""), JSON.parse(ARGUMENTS));
    });

    test("streamed: text and tool-call arguments arrive as chat.completion.chunks (input_json_delta -> arguments deltas), then finish_reason, the usage chunk asked for, [DONE]", async () => {
      const stream = await postStream(
        harness.url,
        "/v1/chat/completions",
        { model: "claude/tool-call", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "Weather in Paris?" }], tools: [WEATHER_TOOL] },
        AGENT_KEY,
      );
      assert.equal(stream.status, 200);
      assert.match(String(stream.headers["content-type"]), /^text\/event-stream/);
      const text = await stream.rest();
      assert.ok(!text.includes("event: "), "no Anthropic event names reach an OpenAI client");
      assert.equal(sseData(text).at(-1), "[DONE]");
      const chunks = objects(text);
      for (const chunk of chunks) assert.equal(chunk.object, "chat.completion.chunk");
      const deltas = chunks.flatMap((chunk) => (chunk.choices as Array<{ delta: Json; finish_reason: string | null }>).map((choice) => choice));
      assert.equal(deltas[0]?.delta.role, "assistant");
      assert.equal(deltas.map((choice) => choice.delta.content ?? "").join(""), "Let me check.");
      const calls = deltas.flatMap((choice) => (choice.delta.tool_calls as Array<{ index: number; id?: string; function: { name?: string; arguments?: string } }> | undefined) ?? []);
      assert.equal(calls[0]?.index, 0);
      assert.match(calls[0]?.id ?? "", /^toolu_/);
      assert.equal(calls[0]?.function.name, "get_weather");
      const argumentDeltas = calls.map((call) => call.function.arguments ?? "").filter((fragment) => fragment !== "");
      assert.deepEqual(argumentDeltas, STAND_IN_TOOL_ARGUMENT_FRAGMENTS, "each input_json_delta is relayed as it came, not gathered");
      assert.ok(calls.every((call) => call.index === 0));
      assert.equal(deltas.at(-1)?.finish_reason, "tool_calls");
      const usageChunk = chunks.at(-1) as { choices: unknown[]; usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
      assert.deepEqual(usageChunk.choices, []);
      assert.equal(usageChunk.usage.completion_tokens, 9, "message_delta's cumulative output_tokens");
      assert.equal(usageChunk.usage.total_tokens, usageChunk.usage.prompt_tokens + 9);
      const record = await lastRecord("claude/tool-call");
      assert.equal(record.usageSource, "provider");
      assert.equal(record.tokensIn, usageChunk.usage.prompt_tokens, "input from message_start");
      assert.equal(record.tokensOut, 9);
      assert.equal(record.stream, true);
      assert.equal((anthropic.requests.at(-1)?.body as Json).stream, true);
      assert.equal((anthropic.requests.at(-1)?.body as Json).stream_options, undefined, "stream_options is OpenAI's: not sent to Anthropic");
    });

    test("streamed text without include_usage: no usage chunk, but the budget still settles on message_start + message_delta", async () => {
      const stream = await postStream(harness.url, "/v1/chat/completions", { model: "claude/claude-test", stream: true, max_completion_tokens: 50, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
      const text = await stream.rest();
      const chunks = objects(text);
      assert.equal(sseData(text).at(-1), "[DONE]");
      assert.ok(chunks.every((chunk) => (chunk.choices as unknown[]).length === 1), "no usage chunk the agent did not ask for");
      assert.equal(chunks.map((chunk) => ((chunk.choices as Array<{ delta: { content?: string } }>)[0]?.delta.content ?? "")).join(""), "Hello from the stand-in provider, streaming one word at a time.");
      assert.equal((chunks.at(-1)?.choices as Array<{ finish_reason: string }>)[0]?.finish_reason, "stop");
      assert.equal((anthropic.requests.at(-1)?.body as Json).max_tokens, 50, "max_completion_tokens becomes max_tokens");
      const record = await lastRecord("claude/claude-test");
      assert.equal(record.usageSource, "provider");
      assert.equal(record.tokensOut, 11);
    });

    test("Anthropic errors reach the OpenAI client as OpenAI errors: 529 overloaded -> 503 server_error, 400 invalid_request_error keeps 400", async () => {
      const overloaded = await post(harness.url, "/v1/chat/completions", { model: "claude/fail-503", messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
      assert.equal(overloaded.status, 503);
      assert.equal(overloaded.json.error?.type, "server_error");
      assert.match(String(overloaded.json.error?.message), /Overloaded \(overloaded_error\)/);
      assert.equal(overloaded.json.type, undefined, "not the Anthropic error shape");
      const bad = await post(harness.url, "/v1/chat/completions", { model: "claude/bad-request", messages: [{ role: "user", content: "x" }] }, AGENT_KEY);
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error?.type, "invalid_request_error");
      assert.equal(bad.json.error?.code, "upstream_400");
      assert.match(String(bad.json.error?.message), /provider claude: messages: field required/);
    });

    test("an error event inside an Anthropic stream becomes an OpenAI error chunk, the stream is not [DONE], and the reservation is charged", async () => {
      const stream = await postStream(harness.url, "/v1/chat/completions", { model: "claude/error-in-stream", stream: true, max_tokens: 20, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
      const text = await stream.rest();
      const events = sseData(text);
      assert.notEqual(events.at(-1), "[DONE]");
      const error = (events.at(-1) as { error: Json }).error;
      assert.equal(error.type, "server_error");
      assert.equal(error.code, "upstream_overloaded_error");
      const record = await lastRecord("claude/error-in-stream");
      assert.equal(record.decision, "error");
      assert.equal(record.reason, "upstream-stream-broken");
      assert.equal(record.usageSource, "reserved");
    });

    test("what has no Anthropic equivalent is refused with 400 naming it, and nothing reaches the provider", async () => {
      const before = anthropic.requests.length;
      const cases: Array<[Json, string, RegExp]> = [
        [{ n: 2 }, "n", /one choice/],
        [{ response_format: { type: "json_object" } }, "response_format", /JSON modes/],
        [{ logprobs: true }, "logprobs", /log probabilities/],
        [{ frobnicate: 1 }, "frobnicate", /has no equivalent in Anthropic messages/],
        [{ messages: [{ role: "function", name: "f", content: "x" }] }, "messages[0].role", /role "function"/],
        [{ messages: [{ role: "user", content: [{ type: "input_audio", input_audio: { data: "AAAA", format: "wav" } }] }] }, "messages[0].content[0]", /input_audio/],
        [{ messages: [{ role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{not json" } }] }] }, "messages[0].tool_calls[0].function.arguments", /not valid JSON/],
        [{ tools: [{ type: "web_search" }] }, "tools[0]", /only \{ type: "function"/],
      ];
      for (const [extra, param, message] of cases) {
        const response = await post(harness.url, "/v1/chat/completions", { model: "claude/claude-test", messages: [{ role: "user", content: "hi" }], ...extra }, AGENT_KEY);
        assert.equal(response.status, 400, JSON.stringify(extra));
        assert.equal(response.json.error?.param, param);
        assert.match(String(response.json.error?.message), message);
      }
      assert.equal(anthropic.requests.length, before);
    });
  });

  describe("an Anthropic-speaking agent, an OpenAI-kind provider", () => {
    test("a whole conversation translates: system, tool_use -> tool_calls, tool_result -> tool messages before the rest of the turn, images, tools, tool_choice, stop_sequences", async () => {
      const response = await request(
        `${harness.url}/v1/messages`,
        "POST",
        {
          model: "gpt/gpt-test",
          max_tokens: 300,
          system: [{ type: "text", text: "You are terse." }],
          messages: [
            { role: "user", content: [{ type: "text", text: "Weather in Paris? Here is a map." }, { type: "image", source: { type: "base64", media_type: "image/png", data: PIXEL } }] },
            { role: "assistant", content: [{ type: "text", text: "Let me check." }, { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } }] },
            {
              role: "user",
              content: [
                { type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: "sunny" }] },
                { type: "text", text: "And tomorrow?" },
              ],
            },
          ],
          tools: [{ name: "get_weather", description: "Weather for a city", input_schema: WEATHER_TOOL.function.parameters }],
          tool_choice: { type: "any", disable_parallel_tool_use: true },
          stop_sequences: ["###"],
          temperature: 0.5,
          metadata: { user_id: "u-1" },
        },
        { "x-api-key": AGENT_KEY, "anthropic-version": "2023-06-01" },
      );
      assert.equal(response.status, 200, response.text);
      const sent = openai.requests.at(-1);
      assert.equal(sent?.path, "/v1/chat/completions");
      assert.equal(sent?.headers.authorization, `Bearer ${OPENAI_KEY}`);
      assert.equal(sent?.headers["x-api-key"], undefined, "the Anthropic-style header is not sent to an OpenAI provider");
      const body = sent?.body as Json;
      assert.deepEqual(body.messages, [
        { role: "system", content: "You are terse." },
        { role: "user", content: [{ type: "text", text: "Weather in Paris? Here is a map." }, { type: "image_url", image_url: { url: `data:image/png;base64,${PIXEL}` } }] },
        { role: "assistant", content: "Let me check.", tool_calls: [{ id: "toolu_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
        { role: "tool", tool_call_id: "toolu_1", content: "sunny" },
        { role: "user", content: "And tomorrow?" },
      ]);
      assert.deepEqual(body.tools, [WEATHER_TOOL]);
      assert.equal(body.tool_choice, "required");
      assert.equal(body.parallel_tool_calls, false);
      assert.deepEqual(body.stop, ["###"]);
      assert.equal(body.max_tokens, 300);
      assert.equal(body.temperature, 0.5);
      assert.equal(body.user, "u-1");
      assert.equal(response.json.type, "message");
      assert.equal(response.json.role, "assistant");
      assert.deepEqual(response.json.content, [{ type: "text", text: "Hello from the stand-in provider, streaming one word at a time." }]);
      assert.equal(response.json.stop_reason, "end_turn");
      const usage = response.json.usage as { input_tokens: number; output_tokens: number };
      assert.equal(usage.output_tokens, 11);
      const record = await lastRecord("gpt/gpt-test");
      assert.equal(record.translation, "messages-to-chat");
      assert.equal(record.tokensIn, usage.input_tokens);
      assert.equal(record.tokensOut, 11);
      assert.equal(record.usageSource, "provider");
    });

    test("a tool call in the answer (not streamed) becomes a tool_use block with the arguments as an object, stop_reason tool_use", async () => {
      const response = await request(
        `${harness.url}/v1/messages`,
        "POST",
        { model: "gpt/tool-call", max_tokens: 100, messages: [{ role: "user", content: "Weather?" }], tools: [{ name: "get_weather", input_schema: { type: "object" } }] },
        { "x-api-key": AGENT_KEY },
      );
      assert.equal(response.status, 200, response.text);
      assert.equal(response.json.stop_reason, "tool_use");
      const [block] = response.json.content as Array<{ type: string; id: string; name: string; input: unknown }>;
      assert.equal(block?.type, "tool_use");
      assert.match(block?.id ?? "", /^call_/);
      assert.equal(block?.name, "get_weather");
      assert.deepEqual(block?.input, JSON.parse(ARGUMENTS));
    });

    test("streamed: chunks become message_start, content_block_start tool_use, input_json_delta fragments, message_delta with the provider's usage, message_stop", async () => {
      const stream = await postStream(
        harness.url,
        "/v1/messages",
        { model: "gpt/tool-call", max_tokens: 100, stream: true, messages: [{ role: "user", content: "Weather?" }], tools: [{ name: "get_weather", input_schema: { type: "object" } }] },
        AGENT_KEY,
        { "anthropic-version": "2023-06-01" },
      );
      assert.equal(stream.status, 200);
      const text = await stream.rest();
      const names = [...text.matchAll(/^event: (.+)$/gm)].map((match) => match[1]);
      assert.deepEqual(names, ["message_start", "content_block_start", ...STAND_IN_TOOL_ARGUMENT_FRAGMENTS.map(() => "content_block_delta"), "content_block_stop", "message_delta", "message_stop"]);
      const events = objects(text);
      for (const [index, event] of events.entries()) assert.equal(event.type, names[index], "each data's type matches its event name");
      assert.deepEqual((events[1] as { content_block: Json }).content_block, { type: "tool_use", id: (events[1] as { content_block: { id: string } }).content_block.id, name: "get_weather", input: {} });
      const partial = events.filter((event) => event.type === "content_block_delta").map((event) => (event.delta as { type: string; partial_json: string }));
      assert.ok(partial.every((delta) => delta.type === "input_json_delta"));
      assert.deepEqual(partial.map((delta) => delta.partial_json), STAND_IN_TOOL_ARGUMENT_FRAGMENTS);
      const messageDelta = events.find((event) => event.type === "message_delta") as { delta: Json; usage: { input_tokens: number; output_tokens: number } };
      assert.equal(messageDelta.delta.stop_reason, "tool_use");
      assert.equal(messageDelta.usage.output_tokens, 7);
      const sent = openai.requests.at(-1)?.body as Json;
      assert.deepEqual(sent.stream_options, { include_usage: true }, "usage asked for, so the budget settles on real numbers");
      const record = await lastRecord("gpt/tool-call");
      assert.equal(record.usageSource, "provider");
      assert.equal(record.tokensOut, 7);
      assert.equal(record.tokensIn, messageDelta.usage.input_tokens);
    });

    test("streamed text: one text block; an OpenAI error chunk mid-stream becomes an Anthropic error event", async () => {
      const good = await postStream(harness.url, "/v1/messages", { model: "gpt/gpt-test", max_tokens: 100, stream: true, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
      const goodEvents = objects(await good.rest());
      assert.deepEqual(goodEvents.filter((event) => event.type === "content_block_start").map((event) => event.index), [0]);
      assert.equal(goodEvents.filter((event) => event.type === "content_block_delta").map((event) => (event.delta as { text: string }).text).join(""), "Hello from the stand-in provider, streaming one word at a time.");
      assert.equal(goodEvents.at(-1)?.type, "message_stop");
      const broken = await postStream(harness.url, "/v1/messages", { model: "gpt/error-in-stream", max_tokens: 100, stream: true, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
      const text = await broken.rest();
      assert.match(text, /event: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"provider: The server had an error/);
      assert.ok(!text.includes("message_stop"));
      const record = await lastRecord("gpt/error-in-stream");
      assert.equal(record.reason, "upstream-stream-broken");
    });

    test("OpenAI errors reach the Anthropic client as Anthropic errors with the provider's status", async () => {
      const bad = await request(`${harness.url}/v1/messages`, "POST", { model: "gpt/bad-request", max_tokens: 5, messages: [{ role: "user", content: "x" }] }, { "x-api-key": AGENT_KEY });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.type, "error");
      assert.equal((bad.json.error as Json).type, "invalid_request_error");
      assert.match(String((bad.json.error as Json).message), /Invalid value for 'messages'/);
      const missing = await request(`${harness.url}/v1/messages`, "POST", { model: "gpt/gpt-test", messages: [{ role: "user", content: "x" }] }, { "x-api-key": AGENT_KEY });
      assert.equal(missing.status, 400);
      assert.match(String((missing.json.error as Json).message), /max_tokens is required/);
      const serverTool = await request(`${harness.url}/v1/messages`, "POST", { model: "gpt/gpt-test", max_tokens: 5, messages: [{ role: "user", content: "x" }], tools: [{ type: "web_search_20250305", name: "web_search" }] }, { "x-api-key": AGENT_KEY });
      assert.equal(serverTool.status, 400);
      assert.match(String((serverTool.json.error as Json).message), /server tools run at Anthropic/);
    });
  });

  describe("DLP and failover across the translation", () => {
    test("DLP scans the agent's body as sent: a canary in the system prompt is redacted before translation", async () => {
      const response = await post(harness.url, "/v1/chat/completions", { model: "claude/claude-test", messages: [{ role: "system", content: `key ${CANARY}` }, { role: "user", content: "hi" }] }, AGENT_KEY);
      assert.equal(response.status, 200);
      const sent = JSON.stringify(anthropic.requests.at(-1)?.body);
      assert.ok(!sent.includes(CANARY));
      assert.match(sent, /\[REDACTED:canary CANARY_TOKEN\]/);
      const record = await lastRecord("claude/claude-test");
      assert.deepEqual(record.dlpHits, [{ kind: "canary CANARY_TOKEN", location: "messages[0].content" }]);
    });

    test("a secret hidden by JSON escapes in tool-call arguments, which translation decodes, is caught by the scan of the translation", async () => {
      // The agent's scan sees `\u0063anary-…`; the Anthropic body would carry the decoded canary in tool_use.input.
      const escaped = `{"note":"\\u${CANARY.charCodeAt(0).toString(16).padStart(4, "0")}${CANARY.slice(1)}"}`;
      assert.ok(!escaped.includes(CANARY));
      const response = await post(
        harness.url,
        "/v1/chat/completions",
        {
          model: "claude/claude-test",
          messages: [
            { role: "user", content: "save a note" },
            { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "save", arguments: escaped } }] },
            { role: "tool", tool_call_id: "call_1", content: "saved" },
          ],
        },
        AGENT_KEY,
      );
      assert.equal(response.status, 200, response.text);
      const sent = JSON.stringify(anthropic.requests.at(-1)?.body);
      assert.ok(!sent.includes(CANARY), "the decoded canary must not reach the provider");
      assert.match(sent, /\[REDACTED:canary CANARY_TOKEN\]/);
      const record = await lastRecord("claude/claude-test");
      assert.deepEqual(record.dlpHits, [{ kind: "canary CANARY_TOKEN", location: "(translated chat-to-messages) messages[1].content[0].input.note" }]);
    });

    test("failover crosses kinds: chat completions to an overloaded Anthropic provider fail over to an OpenAI one (sent as is), and messages the other way (translated)", async () => {
      const chat = await post(harness.url, "/v1/chat/completions", { model: "flaky/fail-503", messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
      assert.equal(chat.status, 200, chat.text);
      assert.equal(chat.json.object, "chat.completion");
      assert.equal((openai.requests.at(-1)?.body as Json).model, "gpt-test");
      assert.deepEqual((openai.requests.at(-1)?.body as Json).messages, [{ role: "user", content: "hi" }]);
      let record = await lastRecord("flaky/fail-503");
      assert.deepEqual(record.failovers, ["flaky->spare-gpt"]);
      assert.equal(record.translation, undefined, "the hop that answered speaks the agent's format");

      const messages = await request(`${harness.url}/v1/messages`, "POST", { model: "wobbly/fail-503", max_tokens: 20, messages: [{ role: "user", content: "hi" }] }, { "x-api-key": AGENT_KEY });
      assert.equal(messages.status, 200, messages.text);
      assert.equal(messages.json.type, "message");
      assert.equal(anthropic.requests.at(-1)?.body?.model, "claude-test");
      record = await lastRecord("wobbly/fail-503");
      assert.deepEqual(record.failovers, ["wobbly->spare-claude"]);
      assert.equal(record.translation, undefined);
    });

    test("a failover provider that cannot take the request in its format is left out of the chain, not sent half a request", async () => {
      const before = anthropic.requests.length;
      // n: 2 has no Anthropic equivalent: the OpenAI provider's 503 is the answer, the Anthropic hop is skipped.
      const response = await post(harness.url, "/v1/chat/completions", { model: "wobbly/fail-503", n: 2, messages: [{ role: "user", content: "hi" }] }, AGENT_KEY);
      assert.equal(response.status, 503);
      assert.equal(anthropic.requests.length, before);
    });
  });
});

describe("translation edge cases (pure)", () => {
  const event = (data: unknown, name?: string) => ({ raw: "", event: name, data: typeof data === "string" ? data : JSON.stringify(data) });
  const chunk = (delta: Json, finish: string | null = null) => event({ id: "chatcmpl-1", object: "chat.completion.chunk", model: "m", choices: [{ index: 0, delta, finish_reason: finish }] });
  const anthropicEvent = (type: string, data: Json) => event({ type, ...data }, type);

  test("chunks -> events: text then two tool calls become three blocks in order, each closed before the next opens; a stream without [DONE] still ends once finish_reason came", () => {
    const translator = createAnswerTranslator("messages-to-chat");
    let text = "";
    text += translator.event(chunk({ role: "assistant", content: "" }));
    text += translator.event(chunk({ content: "Checking." }));
    text += translator.event(chunk({ tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "a", arguments: "" } }] }));
    text += translator.event(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"x":1}' } }] }));
    text += translator.event(chunk({ tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "b", arguments: "{}" } }] }));
    text += translator.event(chunk({}, "tool_calls"));
    assert.equal(translator.complete(), false, "not complete before the end");
    text += translator.end();
    assert.equal(translator.complete(), true);
    const events = objects(text);
    assert.deepEqual(
      events.map((item) => `${String(item.type)}${item.index === undefined ? "" : `:${String(item.index)}`}`),
      ["message_start", "content_block_start:0", "content_block_delta:0", "content_block_stop:0", "content_block_start:1", "content_block_delta:1", "content_block_stop:1", "content_block_start:2", "content_block_delta:2", "content_block_stop:2", "message_delta", "message_stop"],
    );
    assert.deepEqual((events[4] as { content_block: Json }).content_block, { type: "tool_use", id: "call_a", name: "a", input: {} });
    assert.equal((events.at(-2) as { delta: { stop_reason: string } }).delta.stop_reason, "tool_use");
  });

  test("chunks -> events: a stream that ends before any finish_reason is incomplete and ends with an error event", () => {
    const translator = createAnswerTranslator("messages-to-chat");
    translator.event(chunk({ content: "Hel" }));
    const tail = translator.end();
    assert.equal(translator.complete(), false);
    assert.match(tail, /^event: error\n/);
  });

  test("events -> chunks: parallel tool_use blocks get tool indexes 0 and 1; prompt_tokens counts Anthropic's cache reads", () => {
    const translator = createAnswerTranslator("chat-to-messages", { includeUsage: true });
    let text = "";
    text += translator.event(anthropicEvent("message_start", { message: { id: "msg_1", model: "claude", usage: { input_tokens: 10, cache_read_input_tokens: 5, output_tokens: 1 } } }));
    text += translator.event(anthropicEvent("content_block_start", { index: 0, content_block: { type: "tool_use", id: "toolu_a", name: "a", input: {} } }));
    text += translator.event(anthropicEvent("content_block_delta", { index: 0, delta: { type: "input_json_delta", partial_json: '{"x":1}' } }));
    text += translator.event(anthropicEvent("content_block_start", { index: 1, content_block: { type: "tool_use", id: "toolu_b", name: "b", input: {} } }));
    text += translator.event(anthropicEvent("content_block_delta", { index: 1, delta: { type: "input_json_delta", partial_json: "{}" } }));
    text += translator.event(anthropicEvent("ping", {}));
    text += translator.event(anthropicEvent("message_delta", { delta: { stop_reason: "tool_use" }, usage: { output_tokens: 20 } }));
    text += translator.event(anthropicEvent("message_stop", {}));
    assert.equal(translator.complete(), true);
    const calls = objects(text).flatMap((item) => ((item.choices as Array<{ delta: { tool_calls?: Array<{ index: number; id?: string; function: { arguments: string } }> } }>)[0]?.delta.tool_calls ?? []));
    assert.deepEqual(calls.map((call) => [call.index, call.id ?? null, call.function.arguments]), [[0, "toolu_a", ""], [0, null, '{"x":1}'], [1, "toolu_b", ""], [1, null, "{}"]]);
    assert.deepEqual(objects(text).at(-1)?.usage, { prompt_tokens: 15, completion_tokens: 20, total_tokens: 35 });
    assert.equal(sseData(text).at(-1), "[DONE]");
  });

  test("messages -> chat: an image a tool returned follows the tool message in a user turn that names the call; is_error is said in the text", () => {
    const translated = messagesRequestToChat({
      model: "m",
      max_tokens: 5,
      messages: [
        { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "screenshot", input: {} }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", is_error: true, content: [{ type: "text", text: "partial" }, { type: "image", source: { type: "base64", media_type: "image/png", data: PIXEL } }] }] },
      ],
    });
    assert.deepEqual(translated.messages, [
      { role: "assistant", content: null, tool_calls: [{ id: "t1", type: "function", function: { name: "screenshot", arguments: "{}" } }] },
      { role: "tool", tool_call_id: "t1", content: "[tool error] partial" },
      { role: "user", content: [{ type: "text", text: "(returned by tool call t1)" }, { type: "image_url", image_url: { url: `data:image/png;base64,${PIXEL}` } }] },
    ]);
  });
});
