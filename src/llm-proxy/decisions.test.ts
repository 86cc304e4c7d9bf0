// Requirements (issue 7): model names resolve as provider/model, aliases (`default` → llm.default, llm.aliases) and
// unambiguous bare names; allowlists take globs and aliases; failover chains stop at cycles; the prompt estimate is
// an upper bound of what providers count; SSE is split correctly across arbitrary chunk boundaries and usage is read
// from every wire format; budgets reserve and settle exactly. Pure functions, no sockets.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../config/index.ts";
import { failoverChain, modelAllowed, planWire, resolveModel } from "./routing.ts";
import { createSseSplitter, createStreamUsageTracker, estimatePromptTokens, maxOutputTokens, usageFromTail, usageIn, DEFAULT_MAX_OUTPUT_TOKENS } from "./usage.ts";
import { createUsageLedger } from "./limits.ts";
import type { VirtualKey } from "./keys.ts";
import { errorResponse } from "./errors.ts";

const config = parseConfig(`version: 1
name: test
llm:
  providers:
    minimax: { baseUrl: "https://api.minimax.io/v1", models: [MiniMax-M2.7], failoverTo: openrouter }
    openrouter: { baseUrl: "https://openrouter.ai/api/v1", models: [anthropic/claude-sonnet-4, MiniMax-M2.7], failoverTo: minimax }
    vllm: { baseUrl: "http://vllm:8000/v1", models: [qwen3], allowPrivateAddress: true }
    claude: { kind: anthropic, baseUrl: "https://api.anthropic.com/v1", models: [claude-sonnet-4] }
  default: minimax/MiniMax-M2.7
  aliases: { local: vllm/qwen3 }
`);
const llm = config.llm;

describe("routing", () => {
  test("default, aliases, provider/model (model names with slashes) and unambiguous bare names resolve", () => {
    assert.deepEqual(resolveModel(llm, "default"), { ok: true, target: { provider: "minimax", model: "MiniMax-M2.7" }, requested: "default", alias: "default" });
    assert.deepEqual(resolveModel(llm, "local"), { ok: true, target: { provider: "vllm", model: "qwen3" }, requested: "local", alias: "local" });
    assert.deepEqual(resolveModel(llm, "openrouter/anthropic/claude-sonnet-4"), { ok: true, target: { provider: "openrouter", model: "anthropic/claude-sonnet-4" }, requested: "openrouter/anthropic/claude-sonnet-4" });
    assert.deepEqual(resolveModel(llm, "qwen3"), { ok: true, target: { provider: "vllm", model: "qwen3" }, requested: "qwen3" });
  });

  test("unknown models, unlisted models of a known provider and ambiguous bare names are refused with the fix", () => {
    const ambiguous = resolveModel(llm, "MiniMax-M2.7");
    assert.equal(ambiguous.ok, false);
    assert.match(!ambiguous.ok ? ambiguous.reason : "", /several providers \(minimax, openrouter\): write provider\/model/);
    const unlisted = resolveModel(llm, "minimax/gpt-5");
    assert.match(!unlisted.ok ? unlisted.reason : "", /does not serve "gpt-5"/);
    assert.equal(resolveModel(llm, "nope").ok, false);
    const noDefault = resolveModel({ ...llm, default: undefined }, "default");
    assert.match(!noDefault.ok ? noDefault.reason : "", /set llm.default/);
  });

  test("allowlists: globs over provider/model, alias names, and alias targets", () => {
    const resolve = (model: string) => {
      const resolution = resolveModel(llm, model);
      assert.ok(resolution.ok);
      return resolution;
    };
    assert.equal(modelAllowed(llm, ["*"], resolve("local")), true);
    assert.equal(modelAllowed(llm, ["default"], resolve("default")), true);
    assert.equal(modelAllowed(llm, ["default"], resolve("minimax/MiniMax-M2.7")), true, "an alias grants its target by name");
    assert.equal(modelAllowed(llm, ["default"], resolve("local")), false);
    assert.equal(modelAllowed(llm, ["openrouter/anthropic/*"], resolve("openrouter/anthropic/claude-sonnet-4")), true);
    assert.equal(modelAllowed(llm, ["openrouter/anthropic/*"], resolve("openrouter/MiniMax-M2.7")), false);
    assert.equal(modelAllowed(llm, [], resolve("default")), false, "an empty allowlist allows nothing");
  });

  test("failover chains follow failoverTo, keep the model when the next provider lists it, and stop at cycles", () => {
    assert.deepEqual(failoverChain(llm, { provider: "minimax", model: "MiniMax-M2.7" }), [
      { provider: "minimax", model: "MiniMax-M2.7" },
      { provider: "openrouter", model: "MiniMax-M2.7" },
    ]);
    assert.deepEqual(failoverChain(llm, { provider: "vllm", model: "qwen3" }), [{ provider: "vllm", model: "qwen3" }]);
  });

  test("wire plan: chat completions and messages reach either kind (translated across), Responses and embeddings only OpenAI", () => {
    assert.deepEqual(planWire("chat-completions", "openai"), { ok: true, upstreamPath: "/chat/completions", translation: undefined });
    assert.deepEqual(planWire("chat-completions", "anthropic"), { ok: true, upstreamPath: "/messages", translation: "chat-to-messages" });
    assert.deepEqual(planWire("messages", "anthropic"), { ok: true, upstreamPath: "/messages", translation: undefined });
    assert.deepEqual(planWire("messages", "openai"), { ok: true, upstreamPath: "/chat/completions", translation: "messages-to-chat" });
    assert.deepEqual(planWire("embeddings", "openai"), { ok: true, upstreamPath: "/embeddings", translation: undefined });
    for (const route of ["responses", "embeddings"] as const) {
      const plan = planWire(route, "anthropic");
      assert.equal(plan.ok, false);
      assert.match(plan.ok ? "" : plan.reason, /no Anthropic counterpart; call POST \/v1\/chat\/completions or \/v1\/messages/);
    }
  });
});

describe("usage accounting", () => {
  test("the prompt estimate bounds what a tokenizer counts, skips media payloads and counts a fixed cost per image", () => {
    const text = "Grüße aus Zürich — 你好，世界! ".repeat(50);
    const estimate = estimatePromptTokens({ model: "m", messages: [{ role: "user", content: text }] });
    assert.ok(estimate >= Buffer.byteLength(text), "at least one token per byte of text");
    const image = estimatePromptTokens({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: `data:image/png;base64,${"A".repeat(100_000)}` } }] }] });
    assert.ok(image < 5000, "a base64 image is not counted byte by byte");
    assert.ok(image >= 2000, "but a fixed per-image cost is");
    assert.equal(estimatePromptTokens({ input: [[1, 2, 3, 4]] }), 4 + 8, "token arrays count one per number");
  });

  test("max output: max_completion_tokens, max_tokens, max_output_tokens, times n; the default cap when absent", () => {
    assert.equal(maxOutputTokens("chat-completions", { max_tokens: 100, n: 3 }), 300);
    assert.equal(maxOutputTokens("chat-completions", { max_completion_tokens: 50, max_tokens: 100 }), 50);
    assert.equal(maxOutputTokens("chat-completions", {}), DEFAULT_MAX_OUTPUT_TOKENS);
    assert.equal(maxOutputTokens("responses", { max_output_tokens: 7 }), 7);
    assert.equal(maxOutputTokens("messages", { max_tokens: 9 }), 9);
    assert.equal(maxOutputTokens("embeddings", { max_tokens: 9 }), 0);
  });

  test("SSE split at every possible chunk boundary yields the same events, multi-byte characters intact", () => {
    const stream = 'data: {"choices":[{"delta":{"content":"héllo"}}]}\n\nevent: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":7}}\n\r\n\r\ndata: [DONE]\n\n';
    const bytes = Buffer.from(stream);
    const whole = createSseSplitter().push(bytes).map((event) => event.data);
    assert.equal(whole.length, 3);
    for (let cut = 1; cut < bytes.length; cut++) {
      const splitter = createSseSplitter();
      const events = [...splitter.push(bytes.subarray(0, cut)), ...splitter.push(bytes.subarray(cut)), ...splitter.end()];
      assert.deepEqual(events.map((event) => event.data), whole, `cut at ${cut}`);
      assert.equal(events.map((event) => event.raw).join(""), stream, "forwarded bytes are the received bytes");
    }
  });

  test("an event that never ends is passed on unparsed past 4 MiB instead of being held", () => {
    const splitter = createSseSplitter();
    assert.deepEqual(splitter.push(Buffer.alloc(3 * 1024 * 1024, "a")), []);
    const events = splitter.push(Buffer.alloc(2 * 1024 * 1024, "b"));
    assert.equal(events.length, 1);
    assert.equal(events[0]?.raw.length, 5 * 1024 * 1024);
    assert.deepEqual(splitter.end(), []);
  });

  test("usage is read from OpenAI, Responses and Anthropic objects and streams; the include_usage chunk is recognised", () => {
    assert.deepEqual(usageIn({ usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } }), { input: 3, output: 4 });
    assert.deepEqual(usageIn({ usage: { prompt_tokens: 5, total_tokens: 5 } }), { input: 5, output: 0 });
    assert.deepEqual(usageIn({ type: "response.completed", response: { usage: { input_tokens: 2, output_tokens: 6 } } }), { input: 2, output: 6 });
    assert.deepEqual(usageIn({ usage: { input_tokens: 10, cache_read_input_tokens: 90, output_tokens: 1 } }), { input: 100, output: 1 });
    const tracker = createStreamUsageTracker();
    assert.deepEqual(tracker.observe({ raw: "", event: "message_start", data: '{"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":1}}}' }), { usageOnlyChunk: false });
    tracker.observe({ raw: "", event: "message_delta", data: '{"type":"message_delta","usage": {"output_tokens":30}}' });
    assert.deepEqual(tracker.usage(), { input: 12, output: 30 });
    const openai = createStreamUsageTracker();
    assert.deepEqual(openai.observe({ raw: "", event: undefined, data: '{"choices":[{"delta":{}}],"usage":null}' }), { usageOnlyChunk: false });
    assert.deepEqual(openai.observe({ raw: "", event: undefined, data: '{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}' }), { usageOnlyChunk: true });
    assert.deepEqual(usageFromTail(`${"0.1,".repeat(1000)}0.2]}],"model":"m","usage":{"prompt_tokens":8,"total_tokens":8}}`), { input: 8, output: 0 });
  });
});

describe("budget ledger", () => {
  const key = (budget: VirtualKey["budget"], limits: VirtualKey["limits"] = {}): VirtualKey => ({ id: "k1", client: "c", source: "cli", models: ["*"], limits, budget, createdAt: "", revokedAt: undefined, revokedReason: undefined });
  const memoryStore = () => {
    const added: Array<[string, string, number, number, number]> = [];
    return { added, usageTotals: () => ({ dayTokens: 0, dayCost: 0, totalTokens: 0, totalCost: 0 }), addUsage: (...row: [string, string, number, number, number]) => void added.push(row) };
  };

  test("reservations add up before any settles; settling frees the difference and persists real usage", () => {
    const store = memoryStore();
    let time = Date.parse("2026-03-01T12:00:00Z");
    const ledger = createUsageLedger(store, () => time);
    const policy = key({ tokensPerDay: 100 });
    const first = ledger.admit(policy, { tokens: 40, cost: 0 });
    const second = ledger.admit(policy, { tokens: 40, cost: 0 });
    const third = ledger.admit(policy, { tokens: 40, cost: 0 });
    assert.ok(first.ok && second.ok);
    assert.equal(third.ok, false);
    ledger.settle(first.reservation, { tokensIn: 5, tokensOut: 5, cost: 0 });
    ledger.settle(first.reservation, { tokensIn: 5, tokensOut: 5, cost: 0 });
    assert.equal(store.added.length, 1, "settling twice counts once");
    assert.ok(ledger.admit(policy, { tokens: 40, cost: 0 }).ok, "10 used + 40 + 40 in flight fits");
    time += 86_400_000;
    assert.ok(ledger.admit(policy, { tokens: 100, cost: 0 }).ok, "a new UTC day starts a new daily budget");
  });

  test("cost budgets and total budgets are checked with the most expensive provider's worst case", () => {
    const ledger = createUsageLedger(memoryStore(), () => 0);
    assert.equal(ledger.admit(key({ costTotal: 1 }), { tokens: 10, cost: 1.01 }).ok, false);
    const admitted = ledger.admit(key({ costTotal: 1 }), { tokens: 10, cost: 0.6 });
    assert.ok(admitted.ok);
    const refused = ledger.admit(key({ costTotal: 1 }), { tokens: 10, cost: 0.6 });
    assert.ok(!refused.ok && refused.error.kind === "budget-exhausted" && refused.error.budget === "costTotal");
  });

  test("request-rate buckets refill over the minute", () => {
    let time = 0;
    const ledger = createUsageLedger(memoryStore(), () => time);
    const policy = key({}, { requestsPerMinute: 2 });
    assert.ok(ledger.admit(policy, { tokens: 1, cost: 0 }).ok);
    assert.ok(ledger.admit(policy, { tokens: 1, cost: 0 }).ok);
    const refused = ledger.admit(policy, { tokens: 1, cost: 0 });
    assert.ok(!refused.ok && refused.error.kind === "rate-limited" && Math.round(refused.error.retryAfterSeconds) === 30);
    time += 30_000;
    assert.ok(ledger.admit(policy, { tokens: 1, cost: 0 }).ok);
  });
});

describe("error mapping", () => {
  test("every error has an OpenAI-style and an Anthropic-style body", () => {
    const openai = errorResponse({ kind: "rate-limited", limit: "requestsPerMinute", retryAfterSeconds: 0.2, detail: "slow down" }, "openai");
    assert.equal(openai.status, 429);
    assert.equal(openai.headers["retry-after"], "1");
    assert.deepEqual(JSON.parse(openai.body), { error: { message: "slow down", type: "requests", param: null, code: "rate_limit_exceeded" } });
    const anthropic = errorResponse({ kind: "unauthorized", detail: "x" }, "anthropic");
    assert.equal(anthropic.status, 401);
    assert.deepEqual(JSON.parse(anthropic.body).error.type, "authentication_error");
    assert.equal(JSON.parse(anthropic.body).type, "error");
  });
});
