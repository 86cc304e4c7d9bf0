// Requirements (issue 15): the helpers the request stages were built from, each testable alone now that they are out
// of createLlmProxy's closure — which key a request presents, what body it carries, how an answer is relayed, what
// goes to the provider, and what a request may cost at most. The stages themselves are attacked through the running
// proxy (proxy.test.ts, dlp.test.ts, budgets.test.ts, translate.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import type { IncomingMessage } from "node:http";
import { parseConfig } from "../config/index.ts";
import { parseJsonObject, presentedKey, readBody } from "./admit.ts";
import { worstCaseOf } from "./budget.ts";
import { streamMode, upstreamHeaders } from "./forward.ts";
import { answerShape, streamErrorEvent } from "./relay.ts";
import { dlpKindLabel } from "./scan.ts";
import { relativePath, routeOf } from "./state.ts";
import type { UpstreamProvider } from "./upstream.ts";

test("presentedKey: Authorization Bearer (any case, surrounding blanks), else x-api-key; other schemes and blanks are no key", () => {
  assert.equal(presentedKey({ authorization: "Bearer sk-one" }), "sk-one");
  assert.equal(presentedKey({ authorization: "bearer  sk-one " }), "sk-one");
  assert.equal(presentedKey({ "x-api-key": "sk-two" }), "sk-two");
  assert.equal(presentedKey({ authorization: "Bearer sk-one", "x-api-key": "sk-two" }), "sk-one", "Authorization wins");
  assert.equal(presentedKey({ authorization: "Basic dXNlcjpwYXNz", "x-api-key": "sk-two" }), "sk-two");
  assert.equal(presentedKey({ authorization: "Bearer" }), undefined);
  assert.equal(presentedKey({ authorization: "Bearer two words" }), undefined);
  assert.equal(presentedKey({ "x-api-key": "" }), undefined);
  assert.equal(presentedKey({}), undefined);
});

test("parseJsonObject: a JSON object only (arrays, scalars, null and invalid JSON are not a request body)", () => {
  assert.deepEqual(parseJsonObject(Buffer.from('{"model":"m"}')), { model: "m" });
  for (const text of ["[]", "1", '"text"', "null", "{", ""]) assert.equal(parseJsonObject(Buffer.from(text)), undefined, text);
});

function fakeRequest(headers: Record<string, string>): PassThrough & { headers: Record<string, string>; complete: boolean } {
  return Object.assign(new PassThrough(), { headers, complete: false });
}

test("readBody: a declared length over the limit is refused before a byte is read; a body growing past it too; a client leaving is 'aborted'", async () => {
  const declared = fakeRequest({ "content-length": "11" });
  assert.deepEqual(await readBody(declared as unknown as IncomingMessage, 10), { ok: false, reason: "too-large" });

  const growing = fakeRequest({});
  const grown = readBody(growing as unknown as IncomingMessage, 10);
  growing.write(Buffer.alloc(6));
  growing.write(Buffer.alloc(6));
  assert.deepEqual(await grown, { ok: false, reason: "too-large" });

  const whole = fakeRequest({});
  const read = readBody(whole as unknown as IncomingMessage, 10);
  whole.end(Buffer.from("{}"));
  whole.complete = true;
  assert.deepEqual(await read, { ok: true, body: Buffer.from("{}") });

  const left = fakeRequest({});
  const gone = readBody(left as unknown as IncomingMessage, 10);
  left.write(Buffer.from("{"));
  left.destroy();
  assert.deepEqual(await gone, { ok: false, reason: "aborted" });
});

test("routeOf and relativePath: /v1 is optional, the query is ignored, /models and unknown paths have no forwarding route", () => {
  assert.deepEqual(routeOf("/chat/completions"), { route: "chat-completions", flavor: "openai" });
  assert.deepEqual(routeOf("/messages"), { route: "messages", flavor: "anthropic" });
  for (const path of ["/models", "/nope", "/constructor", "/__proto__", "/v1/chat/completions"]) assert.equal(routeOf(path), undefined, path);
  assert.deepEqual(relativePath({ url: "/v1/messages?beta=true" } as IncomingMessage), { pathname: "/v1/messages", relative: "/messages" });
  assert.deepEqual(relativePath({ url: "/chat/completions" } as IncomingMessage), { pathname: "/chat/completions", relative: "/chat/completions" });
});

test("answerShape: relayed headers only, our request id; a translated answer is ours (type, no length); compressed answers relayed as they are", () => {
  const plain = answerShape("req-1", { "content-type": "application/json", "content-length": "42", "set-cookie": ["a=b"], "x-request-id": "up-1" }, false);
  assert.deepEqual(plain.headers, { "x-perimeter-request-id": "req-1", "content-type": "application/json", "x-request-id": "up-1", "content-length": "42" });
  assert.deepEqual([plain.sse, plain.encoded, plain.buffered], [false, false, false]);

  const stream = answerShape("req-2", { "content-type": "text/event-stream", "content-length": "42" }, true);
  assert.equal(stream.headers["content-type"], "text/event-stream; charset=utf-8");
  assert.equal(stream.headers["cache-control"], "no-cache");
  assert.equal(stream.headers["content-length"], undefined, "a stream has no length");
  assert.deepEqual([stream.sse, stream.buffered], [true, false]);

  const translatedJson = answerShape("req-3", { "content-type": "application/json", "content-length": "42" }, true);
  assert.deepEqual([translatedJson.buffered, translatedJson.headers["content-length"]], [true, undefined], "its length is known once translated");

  const gzipped = answerShape("req-4", { "content-type": "text/event-stream", "content-encoding": "gzip" }, false);
  assert.deepEqual([gzipped.sse, gzipped.encoded, gzipped.headers["content-encoding"]], [false, true, "gzip"], "never parsed as SSE");
});

test("streamErrorEvent: an error in the stream's own format, which the SDKs raise", () => {
  assert.deepEqual(JSON.parse(streamErrorEvent("openai", "gone").slice("data: ".length)), { error: { message: "gone", type: "server_error", param: null, code: "upstream_stream_broken" } });
  const anthropic = streamErrorEvent("anthropic", "gone");
  assert.ok(anthropic.startsWith("event: error\ndata: ") && anthropic.endsWith("\n\n"));
  assert.deepEqual(JSON.parse(anthropic.split("data: ")[1] as string), { type: "error", error: { type: "api_error", message: "gone" } });
});

test("streamMode: a streamed chat completion asks for usage and hides that chunk unless the agent asked; embeddings never stream", () => {
  const asked = { stream: true, stream_options: { include_usage: true } };
  assert.deepEqual(streamMode("chat-completions", asked), { stream: true, stripUsageChunk: false });
  const notAsked: Record<string, unknown> = { stream: true };
  assert.deepEqual(streamMode("chat-completions", notAsked), { stream: true, stripUsageChunk: true });
  assert.deepEqual(notAsked.stream_options, { include_usage: true });
  const messages: Record<string, unknown> = { stream: true };
  assert.deepEqual(streamMode("messages", messages), { stream: true, stripUsageChunk: false });
  assert.equal(messages.stream_options, undefined, "only chat completions get stream_options");
  assert.deepEqual(streamMode("embeddings", { stream: true }), { stream: false, stripUsageChunk: false });
  assert.deepEqual(streamMode("chat-completions", {}), { stream: false, stripUsageChunk: false });
});

test("upstreamHeaders: the provider's key in its own scheme, never the agent's credentials; identity encoding asked", () => {
  const provider = (kind: "openai" | "anthropic", apiKey?: string) => ({ name: "p", config: { kind }, apiKey }) as unknown as UpstreamProvider;
  const incoming = { authorization: "Bearer sk-perimeter-agent", "x-api-key": "sk-perimeter-agent", "anthropic-beta": "tools-1", "openai-beta": "assistants=v2", cookie: "c=1" };
  const openai = upstreamHeaders("openai", provider("openai", "sk-up"), incoming, 12, true);
  assert.deepEqual(openai, { "content-type": "application/json", "content-length": 12, accept: "text/event-stream", "accept-encoding": "identity", "user-agent": "perimeter-llm-proxy/0.1", authorization: "Bearer sk-up", "openai-beta": "assistants=v2" });
  const anthropic = upstreamHeaders("anthropic", provider("anthropic", "sk-ant"), incoming, 12, false);
  assert.equal(anthropic["x-api-key"], "sk-ant");
  assert.equal(anthropic["anthropic-version"], "2023-06-01");
  assert.equal(anthropic["anthropic-beta"], "tools-1");
  assert.equal(anthropic.authorization, undefined);
  assert.equal(anthropic.accept, "application/json");
  const keyless = upstreamHeaders("openai", provider("openai"), incoming, 1, false);
  assert.equal(keyless.authorization, undefined, "a keyless local server gets no Authorization, not the agent's");
});

test("worstCaseOf: the largest body any hop receives at the most expensive price; unpriced hops named", () => {
  const config = parseConfig(
    `version: 1\nname: t\nllm:\n  providers:\n    cheap: { baseUrl: "https://a.example/v1", models: [m], costPer1kTokens: { input: 1, output: 1 } }\n    dear: { baseUrl: "https://b.example/v1", models: [m], costPer1kTokens: { input: 10, output: 10 } }\n    free: { baseUrl: "https://c.example/v1", models: [m] }\n`,
    "inline.yaml",
  );
  const body = { model: "cheap/m", max_tokens: 100, messages: [{ role: "user", content: "x".repeat(400) }] };
  const bigger = { ...body, messages: [{ role: "user", content: "x".repeat(4000) }] };
  const chain = [
    { provider: "cheap", model: "m" },
    { provider: "dear", model: "m" },
    { provider: "free", model: "m" },
  ];
  const plain = worstCaseOf(config.llm, "chat-completions", body, { chain, translated: new Map() });
  const translated = worstCaseOf(config.llm, "chat-completions", body, { chain, translated: new Map([["chat-to-messages", bigger]]) });
  assert.equal(plain.outputTokens, 100);
  assert.ok(translated.promptTokens > plain.promptTokens, "a larger translated body raises the estimate");
  assert.equal(plain.cost, ((plain.promptTokens + plain.outputTokens) * 10) / 1000, "priced at the dearest hop");
  assert.deepEqual(plain.unpricedProviders, ["free"]);
});

test("dlpKindLabel: the metrics label drops the secret's name and encoding (bounded labels)", () => {
  assert.equal(dlpKindLabel("provider key MAIN_KEY (base64)"), "provider key");
  assert.equal(dlpKindLabel("canary CANARY_TOKEN"), "canary");
  assert.equal(dlpKindLabel("github token"), "github token");
});
