// Requirement (issue 13 item 9): the official `openai` npm client, as an agent uses it, works against a model of an
// Anthropic-kind provider through llm-proxy — its stream helper assembles streamed tool-call arguments from the
// translated chunks, and a translated provider error raises its APIError with the status. `openai` is a pinned
// devDependency (the agent's client, not Perimeter's).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createStandInProvider, STAND_IN_TOOL_ARGUMENT_FRAGMENTS } from "./stand-in-provider.ts";
import type { StandInProvider } from "./stand-in-provider.ts";
import { startProxy } from "./test-support.ts";
import type { Harness } from "./test-support.ts";

interface ToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}
interface Completion {
  object: string;
  choices: Array<{ message: { content: string | null; tool_calls?: ToolCall[] }; finish_reason: string }>;
  usage?: { prompt_tokens: number; completion_tokens: number };
}
interface Chunk {
  choices: Array<{ delta: { content?: string | null }; finish_reason: string | null }>;
  usage?: { completion_tokens: number } | null;
}
interface OpenAiClient {
  chat: {
    completions: {
      create(body: Record<string, unknown>): Promise<Completion & AsyncIterable<Chunk>>;
      stream(body: Record<string, unknown>): { finalChatCompletion(): Promise<Completion> };
    };
  };
}
type OpenAiConstructor = new (options: { baseURL: string; apiKey: string; maxRetries: number }) => OpenAiClient;

// Loaded through a specifier in a variable and typed by the interfaces above: the test asserts what the SDK does on
// the wire, not its TypeScript declarations.
const packageName = "openai";
const loaded = (await import(packageName)) as { default: OpenAiConstructor; APIError: new (...args: never[]) => Error & { status: number } };

const PROVIDER_KEY = "sk-ant-api03-upstream-sdk-0123456789abcdefghijklmnop";
const AGENT_KEY = "sk-perimeter-sdktestkey0123456789abcdefghijklmnop";
const TOOL = { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };

describe("the official openai npm client against an Anthropic-kind model", () => {
  let anthropic: StandInProvider;
  let harness: Harness;
  let client: OpenAiClient;

  before(async () => {
    anthropic = createStandInProvider({ expectedKey: PROVIDER_KEY });
    const { baseUrl } = await anthropic.listen();
    harness = await startProxy(
      `providers:
  claude: { kind: anthropic, baseUrl: "${baseUrl}", apiKeySecret: CLAUDE_KEY, models: [claude-test, tool-call, fail-503], allowPrivateAddress: true }
default: claude/claude-test
clients:
  - { name: hermes, keySecret: AGENT_KEY }`,
      { CLAUDE_KEY: PROVIDER_KEY, AGENT_KEY },
    );
    const OpenAI = (loaded as { default: OpenAiConstructor }).default;
    client = new OpenAI({ baseURL: `${harness.url}/v1`, apiKey: AGENT_KEY, maxRetries: 0 });
  });

  after(async () => {
    await harness?.close();
    await anthropic?.close();
  });

  test("chat.completions.create: text and a tool call, not streamed", async () => {
    const text = await client.chat.completions.create({ model: "default", messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "hi" }] });
    assert.equal(text.choices[0]?.message.content, "Hello from the stand-in provider, streaming one word at a time.");
    assert.equal(text.usage?.completion_tokens, 11);
    const tool = await client.chat.completions.create({ model: "claude/tool-call", messages: [{ role: "user", content: "weather?" }], tools: [TOOL] });
    assert.equal(tool.choices[0]?.finish_reason, "tool_calls");
    assert.equal(tool.choices[0]?.message.tool_calls?.[0]?.function.name, "get_weather");
    assert.deepEqual(JSON.parse(tool.choices[0]?.message.tool_calls?.[0]?.function.arguments ?? ""), JSON.parse(STAND_IN_TOOL_ARGUMENT_FRAGMENTS.join("")));
  });

  test("streamed: the SDK's iterator yields the text and the usage chunk; its stream helper assembles the streamed tool call", async () => {
    const stream = await client.chat.completions.create({ model: "default", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "hi" }] });
    let text = "";
    let usage: Chunk["usage"];
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, "Hello from the stand-in provider, streaming one word at a time.");
    assert.equal(usage?.completion_tokens, 11);
    const final = await client.chat.completions.stream({ model: "claude/tool-call", messages: [{ role: "user", content: "weather?" }], tools: [TOOL] }).finalChatCompletion();
    const call = final.choices[0]?.message.tool_calls?.[0];
    assert.equal(final.choices[0]?.finish_reason, "tool_calls");
    assert.equal(final.choices[0]?.message.content, "Let me check.");
    assert.equal(call?.function.name, "get_weather");
    assert.match(call?.id ?? "", /^toolu_/);
    assert.equal(call?.function.arguments, STAND_IN_TOOL_ARGUMENT_FRAGMENTS.join(""));
  });

  test("a provider error raises the SDK's APIError with the translated status", async () => {
    const { APIError } = loaded as { APIError: new (...args: never[]) => Error & { status: number } };
    await assert.rejects(client.chat.completions.create({ model: "claude/fail-503", messages: [{ role: "user", content: "x" }] }), (error: unknown) => {
      assert.ok(error instanceof APIError);
      assert.equal(error.status, 503);
      return true;
    });
  });
});
