// How the stand-in provider (stand-in-provider.ts) answers: OpenAI chat completions, the Responses API, embeddings and
// Anthropic messages, whole or streamed as SSE in each API's real event sequence, with usage the way each reports it.
// Behaviour is chosen by the model name (see stand-in-provider.ts). Test support: never used by the product.
import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";

/** The stand-in's counters and gate, shared by its handler and its answers. */
export interface LlmStandInState {
  readonly options: {
    readonly embeddingDimensions?: number;
  };
  readonly reply: string;
  readonly chunkDelay: number;
  cancelled: number;
  completed: number;
  /** `gated` streams wait for it after their first chunk (release() resolves it). */
  gate: Promise<void>;
  readonly cancellationWaiters: Array<() => void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const created = () => Math.floor(Date.now() / 1000);

export const DEFAULT_REPLY = "Hello from the stand-in provider, streaming one word at a time.";

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

export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** The arguments every `tool-call` answer carries, streamed in these fragments. */
export const STAND_IN_TOOL_ARGUMENT_FRAGMENTS = ['{"city": "Par', 'is", "days"', ": 3}"];
const TOOL_TEXT = "Let me check.";

function firstToolName(body: Record<string, unknown>): string {
  const tool = Array.isArray(body.tools) ? (body.tools[0] as unknown) : undefined;
  if (isRecord(tool) && typeof tool.name === "string") return tool.name;
  if (isRecord(tool) && isRecord(tool.function) && typeof tool.function.name === "string") return tool.function.name;
  return "get_weather";
}

export function sendStandInJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "x-request-id": `req_${randomUUID()}` });
  response.end(text);
}

export function openAiError(response: ServerResponse, status: number, message: string, type: string, code: string | null): void {
  sendStandInJson(response, status, { error: { message, type, param: null, code } });
}

export function anthropicError(response: ServerResponse, status: number, type: string, message: string): void {
  sendStandInJson(response, status, { type: "error", error: { type, message } });
}

/** Writes SSE events one by one; stops (counting a cancellation) when the client goes away. */
export async function streamEvents(stand: LlmStandInState, response: ServerResponse, events: string[], model: string): Promise<void> {
  response.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-request-id": `req_${randomUUID()}` });
  let gone = false;
  response.on("close", () => {
    if (!response.writableFinished) {
      gone = true;
      stand.cancelled += 1;
      for (const waiter of stand.cancellationWaiters.splice(0)) waiter();
    }
  });
  for (let index = 0; index < events.length; index++) {
    if (gone) return;
    response.write(events[index]);
    if (model === "gated" && index === 1) await Promise.race([stand.gate, new Promise<void>((resolve) => response.once("close", () => resolve()))]);
    if (model === "break-mid-stream" && index === 2) {
      // Let the first events reach the wire, then drop the connection as a crashing provider does.
      await sleep(20);
      response.socket?.destroy();
      return;
    }
    const delay = model === "slow-stream" ? 50 : stand.chunkDelay;
    if (delay > 0 && index < events.length - 1) await sleep(delay);
  }
  if (gone) return;
  response.end();
  stand.completed += 1;
}

export async function chatCompletions(stand: LlmStandInState, response: ServerResponse, body: Record<string, unknown>, model: string) {
  const id = `chatcmpl-${randomUUID().replaceAll("-", "").slice(0, 24)}`;
  const limit = typeof body.max_tokens === "number" ? body.max_tokens : typeof body.max_completion_tokens === "number" ? body.max_completion_tokens : Infinity;
  const pieces = words(stand.reply).slice(0, limit);
  const usage = { prompt_tokens: promptTokensOf(body), completion_tokens: pieces.length, total_tokens: promptTokensOf(body) + pieces.length };
  const toolCall = model === "tool-call" ? { id: `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`, name: firstToolName(body) } : undefined;
  if (body.stream !== true && toolCall !== undefined) {
    sendStandInJson(response, 200, {
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
    sendStandInJson(response, 200, {
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
    await streamEvents(
      stand,
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
    await streamEvents(stand, response, [opening, ...pieces.slice(0, 2).map((piece) => chunk([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }])), failure], model);
    return;
  }
  const events = [
    opening,
    ...pieces.map((piece) => chunk([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }])),
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]),
    ...(includeUsage ? [chunk([], { usage })] : []),
    "data: [DONE]\n\n",
  ];
  await streamEvents(stand, response, events, model);
}

export async function responsesApi(stand: LlmStandInState, response: ServerResponse, body: Record<string, unknown>, model: string) {
  const id = `resp_${randomUUID().replaceAll("-", "")}`;
  const itemId = `msg_${randomUUID().replaceAll("-", "")}`;
  const limit = typeof body.max_output_tokens === "number" ? body.max_output_tokens : Infinity;
  const pieces = words(stand.reply).slice(0, limit);
  const inputTokens = promptTokensOf(body);
  const usage = { input_tokens: inputTokens, input_tokens_details: { cached_tokens: 0 }, output_tokens: pieces.length, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: inputTokens + pieces.length };
  const text = pieces.join("");
  const outputItem = { id: itemId, type: "message", status: "completed", role: "assistant", content: [{ type: "output_text", text, annotations: [] }] };
  const base = { id, object: "response", created_at: created(), model, output: [] as unknown[], status: "in_progress", usage: null as unknown };
  if (body.stream !== true) {
    sendStandInJson(response, 200, { ...base, status: "completed", output: [outputItem], usage });
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
  await streamEvents(stand, response, events, model);
}

export function embeddings(stand: LlmStandInState, response: ServerResponse, body: Record<string, unknown>, model: string) {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  const dimensions = stand.options.embeddingDimensions ?? 8;
  const tokens = promptTokensOf({ input: inputs });
  sendStandInJson(response, 200, {
    object: "list",
    data: inputs.map((_, index) => ({ object: "embedding", index, embedding: Array.from({ length: dimensions }, (_unused, position) => Math.sin(index + position) / 2) })),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}

export async function anthropicMessages(stand: LlmStandInState, response: ServerResponse, body: Record<string, unknown>, model: string) {
  const id = `msg_${randomUUID().replaceAll("-", "").slice(0, 24)}`;
  const limit = typeof body.max_tokens === "number" ? body.max_tokens : Infinity;
  const pieces = words(stand.reply).slice(0, limit);
  const inputTokens = promptTokensOf(body);
  const toolUse = model === "tool-call" ? { id: `toolu_${randomUUID().replaceAll("-", "").slice(0, 24)}`, name: firstToolName(body) } : undefined;
  const startUsage = { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 };
  const event = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const messageStart = event("message_start", { message: { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage: startUsage } });
  if (toolUse !== undefined) {
    if (body.stream !== true) {
      sendStandInJson(response, 200, {
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
    await streamEvents(
      stand,
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
    await streamEvents(
      stand,
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
    sendStandInJson(response, 200, {
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
  await streamEvents(stand, response, events, model);
}
