// A STAND-IN for the LLM providers (OpenAI, OpenAI-compatible servers, Anthropic), which are outside this network.
// It speaks their real wire formats over real HTTP(S): chat completions (with `stream_options.include_usage` and the
// final `choices: []` usage chunk, then `data: [DONE]`), the Responses API (`response.*` events), embeddings, models,
// and Anthropic messages (message_start, content_block_start/delta/stop, ping, message_delta, message_stop).
// Used by the tests and the benchmark; never by the product. Behaviour is chosen by the model name, as a real
// provider's behaviour depends on the model: `fail-503`, `fail-500-text`, `bad-request`, `hang`, `reset`,
// `slow-stream` (a chunk every 50 ms), `break-mid-stream` (drops the connection after three events), `gated` (first chunk, then waits for `release()`), `no-usage`,
// `tool-call` (calls the request's first tool, its arguments streamed in fragments: `tool_calls[].function.arguments`
// deltas, or Anthropic `input_json_delta`s after a text block), `error-in-stream` (a few chunks, then the format's own
// error event). Requests are checked the way the real APIs check them (roles, block types, tool results answering
// the previous turn's calls, Anthropic's required max_tokens), so a malformed translation gets the provider's 400.
import http from "node:http";
import https from "node:https";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Record<string, unknown> | undefined;
  /** TLS server name the client asked for (SNI), when served over HTTPS. */
  readonly servername: string | undefined;
}

export interface StandInProviderOptions {
  /** Serve HTTPS with this key and certificate. */
  readonly tls?: { key: string | Buffer; cert: string | Buffer };
  /** The provider key the proxy must present (Authorization: Bearer for OpenAI routes, x-api-key for Anthropic). */
  readonly expectedKey?: string;
  /** The text every answer consists of. */
  readonly reply?: string;
  /** Delay between streamed chunks. @default 0 */
  readonly chunkDelayMs?: number;
  /** Dimension of returned embeddings. @default 8 */
  readonly embeddingDimensions?: number;
  /** Don't keep request bodies (benchmarks). */
  readonly record?: boolean;
}

export interface StandInProvider {
  listen(host?: string): Promise<{ port: number; baseUrl: string }>;
  close(): Promise<void>;
  readonly requests: RecordedRequest[];
  /** Responses whose client went away before the provider finished writing. */
  cancelled(): number;
  /** Resolves at the next cancellation. */
  nextCancellation(): Promise<void>;
  /** Streams that ran to completion. */
  completed(): number;
  /** Lets `gated` streams finish. */
  release(): void;
  /** Number of connections accepted (to show a refused provider was never dialled). */
  connections(): number;
}

const DEFAULT_REPLY = "Hello from the stand-in provider, streaming one word at a time.";

function words(text: string): string[] {
  return text.split(/(?<= )/);
}

/** Prompt tokens the way a real tokenizer roughly counts them: ~4 characters each. */
function promptTokensOf(body: unknown): number {
  let characters = 0;
  const visit = (value: unknown, key?: string): void => {
    if (typeof value === "string") {
      if (key !== "model" && key !== "role" && key !== "type") characters += value.length;
    } else if (Array.isArray(value)) {
      for (const item of value) visit(item);
    } else if (typeof value === "object" && value !== null) {
      for (const [name, item] of Object.entries(value)) if (name !== "stream_options" && name !== "tools") visit(item, name);
    }
  };
  const record = body as Record<string, unknown>;
  visit(record.messages ?? record.input ?? record.system);
  if (record.system !== undefined && record.messages !== undefined) visit(record.system);
  if (record.instructions !== undefined) visit(record.instructions);
  return Math.max(1, Math.ceil(characters / 4));
}

function readJson(request: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>);
      } catch {
        resolve(undefined);
      }
    });
    request.on("error", () => resolve(undefined));
  });
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** The arguments every `tool-call` answer carries, streamed in these fragments. */
export const STAND_IN_TOOL_ARGUMENT_FRAGMENTS = ['{"city": "Par', 'is", "days"', ": 3}"];
const TOOL_TEXT = "Let me check.";

function firstToolName(body: Record<string, unknown>): string {
  const tool = Array.isArray(body.tools) ? (body.tools[0] as unknown) : undefined;
  if (isRecord(tool) && typeof tool.name === "string") return tool.name;
  if (isRecord(tool) && isRecord(tool.function) && typeof tool.function.name === "string") return tool.function.name;
  return "get_weather";
}

/** What api.anthropic.com refuses with 400 invalid_request_error (the subset a translation could get wrong). */
export function anthropicRequestProblem(body: Record<string, unknown>): string | undefined {
  if (typeof body.max_tokens !== "number" || !Number.isInteger(body.max_tokens) || body.max_tokens < 1) return "max_tokens: Field required";
  if (!Array.isArray(body.messages)) return "messages: Field required";
  if (body.system !== undefined && typeof body.system !== "string" && !(Array.isArray(body.system) && body.system.every((block) => isRecord(block) && block.type === "text" && typeof block.text === "string"))) {
    return "system: Input should be a valid string or a list of text blocks";
  }
  let previousToolUses = new Set<string>();
  for (const [index, message] of body.messages.entries()) {
    if (!isRecord(message) || (message.role !== "user" && message.role !== "assistant")) return `messages.${index}.role: Input should be 'user' or 'assistant'`;
    const blocks = typeof message.content === "string" ? [{ type: "text", text: message.content }] : message.content;
    if (!Array.isArray(blocks)) return `messages.${index}.content: Input should be a valid list`;
    const toolUses = new Set<string>();
    for (const [blockIndex, block] of blocks.entries()) {
      const where = `messages.${index}.content.${blockIndex}`;
      if (!isRecord(block)) return `${where}: Input should be an object`;
      switch (block.type) {
        case "text":
          if (typeof block.text !== "string" || block.text === "") return `${where}: text content blocks must be non-empty`;
          break;
        case "image":
          if (!isRecord(block.source) || (block.source.type === "base64" ? typeof block.source.data !== "string" || !/^image\//.test(String(block.source.media_type)) : block.source.type !== "url")) return `${where}.source: invalid image source`;
          break;
        case "document":
          if (!isRecord(block.source)) return `${where}.source: Field required`;
          break;
        case "tool_use":
          if (message.role !== "assistant" || typeof block.id !== "string" || !/^[a-zA-Z0-9_-]+$/.test(block.id) || typeof block.name !== "string" || !isRecord(block.input)) return `${where}: invalid tool_use block`;
          toolUses.add(block.id);
          break;
        case "tool_result":
          if (message.role !== "user" || typeof block.tool_use_id !== "string" || !previousToolUses.has(block.tool_use_id)) {
            return `${where}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(block.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`;
          }
          break;
        default:
          return `${where}.type: Input tag '${String(block.type)}' found using 'type' does not match any of the expected tags`;
      }
    }
    previousToolUses = toolUses;
  }
  if (body.tools !== undefined && !(Array.isArray(body.tools) && body.tools.every((tool) => isRecord(tool) && typeof tool.name === "string" && isRecord(tool.input_schema)))) return "tools: each tool needs name and input_schema";
  return undefined;
}

/** What api.openai.com refuses with 400 for chat completions (the subset a translation could get wrong). */
export function chatRequestProblem(body: Record<string, unknown>): string | undefined {
  if (!Array.isArray(body.messages)) return "Missing required parameter: 'messages'.";
  let pendingCalls = new Set<string>();
  for (const [index, message] of body.messages.entries()) {
    if (!isRecord(message) || !["system", "developer", "user", "assistant", "tool"].includes(String(message.role))) return `Invalid value for 'messages[${index}].role'.`;
    if (message.role === "tool") {
      if (typeof message.tool_call_id !== "string" || !pendingCalls.has(message.tool_call_id)) {
        return `Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. (messages[${index}])`;
      }
      if (typeof message.content !== "string" && !Array.isArray(message.content)) return `Invalid type for 'messages[${index}].content'.`;
      continue;
    }
    pendingCalls = new Set();
    if (message.role === "assistant" && message.tool_calls !== undefined) {
      if (!Array.isArray(message.tool_calls)) return `Invalid type for 'messages[${index}].tool_calls'.`;
      for (const call of message.tool_calls) {
        if (!isRecord(call) || typeof call.id !== "string" || call.type !== "function" || !isRecord(call.function) || typeof call.function.name !== "string" || typeof call.function.arguments !== "string") {
          return `Invalid value for 'messages[${index}].tool_calls'.`;
        }
        pendingCalls.add(call.id);
      }
    }
  }
  if (body.tools !== undefined && !(Array.isArray(body.tools) && body.tools.every((tool) => isRecord(tool) && tool.type === "function" && isRecord(tool.function) && typeof tool.function.name === "string"))) {
    return "Invalid value for 'tools'.";
  }
  return undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createStandInProvider(options: StandInProviderOptions = {}): StandInProvider {
  const requests: RecordedRequest[] = [];
  const reply = options.reply ?? DEFAULT_REPLY;
  const chunkDelay = options.chunkDelayMs ?? 0;
  let cancelled = 0;
  let completed = 0;
  let connections = 0;
  let releaseGate: () => void = () => {};
  let gate = new Promise<void>((resolve) => (releaseGate = resolve));
  const cancellationWaiters: Array<() => void> = [];
  const created = () => Math.floor(Date.now() / 1000);

  const sendJson = (response: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "x-request-id": `req_${randomUUID()}` });
    response.end(text);
  };

  const openAiError = (response: ServerResponse, status: number, message: string, type: string, code: string | null) =>
    sendJson(response, status, { error: { message, type, param: null, code } });
  const anthropicError = (response: ServerResponse, status: number, type: string, message: string) =>
    sendJson(response, status, { type: "error", error: { type, message } });

  /** Writes SSE events one by one; stops (counting a cancellation) when the client goes away. */
  const stream = async (response: ServerResponse, events: string[], model: string): Promise<void> => {
    response.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-request-id": `req_${randomUUID()}` });
    let gone = false;
    response.on("close", () => {
      if (!response.writableFinished) {
        gone = true;
        cancelled += 1;
        for (const waiter of cancellationWaiters.splice(0)) waiter();
      }
    });
    for (let index = 0; index < events.length; index++) {
      if (gone) return;
      response.write(events[index]);
      if (model === "gated" && index === 1) await Promise.race([gate, new Promise<void>((resolve) => response.once("close", () => resolve()))]);
      if (model === "break-mid-stream" && index === 2) {
        // Let the first events reach the wire, then drop the connection as a crashing provider does.
        await sleep(20);
        response.socket?.destroy();
        return;
      }
      const delay = model === "slow-stream" ? 50 : chunkDelay;
      if (delay > 0 && index < events.length - 1) await sleep(delay);
    }
    if (gone) return;
    response.end();
    completed += 1;
  };

  const chatCompletions = async (response: ServerResponse, body: Record<string, unknown>, model: string) => {
    const id = `chatcmpl-${randomUUID().replaceAll("-", "").slice(0, 24)}`;
    const limit = typeof body.max_tokens === "number" ? body.max_tokens : typeof body.max_completion_tokens === "number" ? body.max_completion_tokens : Infinity;
    const pieces = words(reply).slice(0, limit);
    const usage = { prompt_tokens: promptTokensOf(body), completion_tokens: pieces.length, total_tokens: promptTokensOf(body) + pieces.length };
    const toolCall = model === "tool-call" ? { id: `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`, name: firstToolName(body) } : undefined;
    if (body.stream !== true && toolCall !== undefined) {
      sendJson(response, 200, {
        id,
        object: "chat.completion",
        created: created(),
        model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: null, refusal: null, tool_calls: [{ id: toolCall.id, type: "function", function: { name: toolCall.name, arguments: STAND_IN_TOOL_ARGUMENT_FRAGMENTS.join("") } }] },
            logprobs: null,
            finish_reason: "tool_calls",
          },
        ],
        usage: { ...usage, completion_tokens: 7, total_tokens: usage.prompt_tokens + 7 },
        system_fingerprint: null,
      });
      return;
    }
    if (body.stream !== true) {
      sendJson(response, 200, {
        id,
        object: "chat.completion",
        created: created(),
        model,
        choices: [{ index: 0, message: { role: "assistant", content: pieces.join(""), refusal: null }, logprobs: null, finish_reason: "stop" }],
        usage,
        system_fingerprint: null,
      });
      return;
    }
    const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true && model !== "no-usage";
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: created(), model, system_fingerprint: null, choices, ...(includeUsage ? { usage: null } : {}), ...extra })}\n\n`;
    const opening = chunk([{ index: 0, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null }]);
    if (toolCall !== undefined) {
      await stream(
        response,
        [
          opening,
          chunk([{ index: 0, delta: { tool_calls: [{ index: 0, id: toolCall.id, type: "function", function: { name: toolCall.name, arguments: "" } }] }, logprobs: null, finish_reason: null }]),
          ...STAND_IN_TOOL_ARGUMENT_FRAGMENTS.map((fragment) => chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: fragment } }] }, logprobs: null, finish_reason: null }])),
          chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "tool_calls" }]),
          ...(includeUsage ? [chunk([], { usage: { ...usage, completion_tokens: 7, total_tokens: usage.prompt_tokens + 7 } })] : []),
          "data: [DONE]\n\n",
        ],
        model,
      );
      return;
    }
    if (model === "error-in-stream") {
      // OpenAI reports a failure after the stream began as a data event with an `error` object.
      const failure = `data: ${JSON.stringify({ error: { message: "The server had an error while processing your request.", type: "server_error", param: null, code: null } })}\n\n`;
      await stream(response, [opening, ...pieces.slice(0, 2).map((piece) => chunk([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }])), failure], model);
      return;
    }
    const events = [
      opening,
      ...pieces.map((piece) => chunk([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }])),
      chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]),
      ...(includeUsage ? [chunk([], { usage })] : []),
      "data: [DONE]\n\n",
    ];
    await stream(response, events, model);
  };

  const responsesApi = async (response: ServerResponse, body: Record<string, unknown>, model: string) => {
    const id = `resp_${randomUUID().replaceAll("-", "")}`;
    const itemId = `msg_${randomUUID().replaceAll("-", "")}`;
    const limit = typeof body.max_output_tokens === "number" ? body.max_output_tokens : Infinity;
    const pieces = words(reply).slice(0, limit);
    const inputTokens = promptTokensOf(body);
    const usage = { input_tokens: inputTokens, input_tokens_details: { cached_tokens: 0 }, output_tokens: pieces.length, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: inputTokens + pieces.length };
    const text = pieces.join("");
    const outputItem = { id: itemId, type: "message", status: "completed", role: "assistant", content: [{ type: "output_text", text, annotations: [] }] };
    const base = { id, object: "response", created_at: created(), model, output: [] as unknown[], status: "in_progress", usage: null as unknown };
    if (body.stream !== true) {
      sendJson(response, 200, { ...base, status: "completed", output: [outputItem], usage });
      return;
    }
    let sequence = 0;
    const event = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...data })}\n\n`;
    const events = [
      event("response.created", { response: base }),
      event("response.in_progress", { response: base }),
      event("response.output_item.added", { output_index: 0, item: { ...outputItem, status: "in_progress", content: [] } }),
      event("response.content_part.added", { item_id: itemId, output_index: 0, content_index: 0, part: { type: "output_text", text: "", annotations: [] } }),
      ...pieces.map((piece) => event("response.output_text.delta", { item_id: itemId, output_index: 0, content_index: 0, delta: piece })),
      event("response.output_text.done", { item_id: itemId, output_index: 0, content_index: 0, text }),
      event("response.content_part.done", { item_id: itemId, output_index: 0, content_index: 0, part: { type: "output_text", text, annotations: [] } }),
      event("response.output_item.done", { output_index: 0, item: outputItem }),
      event("response.completed", { response: { ...base, status: "completed", output: [outputItem], usage } }),
    ];
    await stream(response, events, model);
  };

  const embeddings = (response: ServerResponse, body: Record<string, unknown>, model: string) => {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    const dimensions = options.embeddingDimensions ?? 8;
    const tokens = promptTokensOf({ input: inputs });
    sendJson(response, 200, {
      object: "list",
      data: inputs.map((_, index) => ({ object: "embedding", index, embedding: Array.from({ length: dimensions }, (_unused, position) => Math.sin(index + position) / 2) })),
      model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  };

  const anthropicMessages = async (response: ServerResponse, body: Record<string, unknown>, model: string) => {
    const id = `msg_${randomUUID().replaceAll("-", "").slice(0, 24)}`;
    const limit = typeof body.max_tokens === "number" ? body.max_tokens : Infinity;
    const pieces = words(reply).slice(0, limit);
    const inputTokens = promptTokensOf(body);
    const toolUse = model === "tool-call" ? { id: `toolu_${randomUUID().replaceAll("-", "").slice(0, 24)}`, name: firstToolName(body) } : undefined;
    const startUsage = { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 };
    const event = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const messageStart = event("message_start", { message: { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage: startUsage } });
    if (toolUse !== undefined) {
      if (body.stream !== true) {
        sendJson(response, 200, {
          id,
          type: "message",
          role: "assistant",
          model,
          content: [
            { type: "text", text: TOOL_TEXT },
            { type: "tool_use", id: toolUse.id, name: toolUse.name, input: JSON.parse(STAND_IN_TOOL_ARGUMENT_FRAGMENTS.join("")) as unknown },
          ],
          stop_reason: "tool_use",
          stop_sequence: null,
          usage: { ...startUsage, output_tokens: 9 },
        });
        return;
      }
      await stream(
        response,
        [
          messageStart,
          event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
          event("content_block_delta", { index: 0, delta: { type: "text_delta", text: TOOL_TEXT } }),
          event("content_block_stop", { index: 0 }),
          event("content_block_start", { index: 1, content_block: { type: "tool_use", id: toolUse.id, name: toolUse.name, input: {} } }),
          event("content_block_delta", { index: 1, delta: { type: "input_json_delta", partial_json: "" } }),
          ...STAND_IN_TOOL_ARGUMENT_FRAGMENTS.map((fragment) => event("content_block_delta", { index: 1, delta: { type: "input_json_delta", partial_json: fragment } })),
          event("content_block_stop", { index: 1 }),
          event("message_delta", { delta: { stop_reason: "tool_use", stop_sequence: null }, usage: { output_tokens: 9 } }),
          event("message_stop", {}),
        ],
        model,
      );
      return;
    }
    if (body.stream === true && model === "error-in-stream") {
      // Anthropic reports a failure after the stream began (e.g. overloaded) as an `error` event, then ends.
      await stream(
        response,
        [
          messageStart,
          event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
          ...pieces.slice(0, 2).map((piece) => event("content_block_delta", { index: 0, delta: { type: "text_delta", text: piece } })),
          event("error", { error: { type: "overloaded_error", message: "Overloaded" } }),
        ],
        model,
      );
      return;
    }
    if (body.stream !== true) {
      sendJson(response, 200, {
        id,
        type: "message",
        role: "assistant",
        model,
        content: [{ type: "text", text: pieces.join("") }],
        stop_reason: "end_turn",
        stop_sequence: null,
        usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: pieces.length },
      });
      return;
    }
    const events = [
      messageStart,
      event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
      event("ping", {}),
      ...pieces.map((piece) => event("content_block_delta", { index: 0, delta: { type: "text_delta", text: piece } })),
      event("content_block_stop", { index: 0 }),
      event("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: pieces.length } }),
      event("message_stop", {}),
    ];
    await stream(response, events, model);
  };

  const handler = async (request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? "/").split("?")[0] ?? "/";
    const anthropic = path.endsWith("/messages");
    const body = request.method === "POST" ? await readJson(request) : undefined;
    if (options.record !== false) {
      requests.push({ method: request.method ?? "", path, headers: request.headers, body, servername: (request.socket as TLSSocket).servername || undefined });
    }
    if (options.expectedKey !== undefined) {
      const presented = anthropic ? request.headers["x-api-key"] : request.headers.authorization?.replace(/^Bearer /, "");
      if (presented !== options.expectedKey) {
        if (anthropic) anthropicError(response, 401, "authentication_error", "invalid x-api-key");
        else openAiError(response, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
        return;
      }
    }
    if (request.method === "GET" && path.endsWith("/models")) {
      sendJson(response, 200, { object: "list", data: [{ id: "stand-in-model", object: "model", created: 0, owned_by: "stand-in" }] });
      return;
    }
    if (body === undefined) {
      openAiError(response, 400, "We could not parse the JSON body of your request.", "invalid_request_error", null);
      return;
    }
    const model = typeof body.model === "string" ? body.model : "";
    switch (model) {
      case "fail-503":
        if (anthropic) anthropicError(response, 529, "overloaded_error", "Overloaded");
        else openAiError(response, 503, "The server is overloaded or not ready yet.", "server_error", null);
        return;
      case "fail-500-text":
        response.writeHead(500, { "content-type": "text/plain" });
        response.end("upstream exploded");
        return;
      case "bad-request":
        if (anthropic) anthropicError(response, 400, "invalid_request_error", "messages: field required");
        else openAiError(response, 400, "Invalid value for 'messages'.", "invalid_request_error", "invalid_value");
        return;
      case "hang":
        return;
      case "reset":
        request.socket.destroy();
        return;
    }
    const problem = anthropic ? anthropicRequestProblem(body) : path.endsWith("/chat/completions") ? chatRequestProblem(body) : undefined;
    if (problem !== undefined) {
      if (anthropic) anthropicError(response, 400, "invalid_request_error", problem);
      else openAiError(response, 400, problem, "invalid_request_error", null);
      return;
    }
    if (path.endsWith("/chat/completions")) await chatCompletions(response, body, model);
    else if (path.endsWith("/responses")) await responsesApi(response, body, model);
    else if (path.endsWith("/embeddings")) embeddings(response, body, model);
    else if (anthropic) await anthropicMessages(response, body, model);
    else openAiError(response, 404, `Invalid URL (POST ${path})`, "invalid_request_error", null);
  };

  const server = options.tls === undefined ? http.createServer(handler) : https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler);
  server.on(options.tls === undefined ? "connection" : "secureConnection", () => {
    connections += 1;
  });
  server.keepAliveTimeout = 30_000;

  return {
    requests,
    listen(host = "127.0.0.1") {
      return new Promise((resolve) => {
        server.listen(0, host, () => {
          const { port } = server.address() as AddressInfo;
          resolve({ port, baseUrl: `${options.tls === undefined ? "http" : "https"}://${host}:${port}/v1` });
        });
      });
    },
    close() {
      releaseGate();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    cancelled: () => cancelled,
    nextCancellation: () => new Promise((resolve) => cancellationWaiters.push(resolve)),
    completed: () => completed,
    release() {
      releaseGate();
      gate = new Promise<void>((resolve) => (releaseGate = resolve));
    },
    connections: () => connections,
  };
}
