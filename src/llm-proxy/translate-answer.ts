// Translation of a provider's answer into the agent's wire format (the requests: translate.ts): a whole JSON answer,
// SSE events one at a time, and a provider error's status. Pure functions over parsed bodies and events: no I/O.
import { TranslationError, isJsonObject, isString } from "./translate.ts";
import type { Json, Translation } from "./translate.ts";
import type { SseEvent } from "./usage.ts";

const FINISH_FROM_STOP: Readonly<Record<string, string>> = {
  end_turn: "stop",
  stop_sequence: "stop",
  pause_turn: "stop",
  max_tokens: "length",
  model_context_window_exceeded: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
};
const STOP_FROM_FINISH: Readonly<Record<string, string>> = { stop: "end_turn", length: "max_tokens", tool_calls: "tool_use", function_call: "tool_use", content_filter: "refusal" };

const finishReason = (stop: unknown): string => (isString(stop) ? (FINISH_FROM_STOP[stop] ?? "stop") : "stop");
const stopReason = (finish: unknown): string => (isString(finish) ? (STOP_FROM_FINISH[finish] ?? "end_turn") : "end_turn");

/** Anthropic counts cache reads and writes apart from input_tokens; OpenAI's prompt_tokens includes them. */
function anthropicInputTokens(usage: unknown): number | undefined {
  if (!isJsonObject(usage) || typeof usage.input_tokens !== "number") return undefined;
  const cached = (typeof usage.cache_creation_input_tokens === "number" ? usage.cache_creation_input_tokens : 0) + (typeof usage.cache_read_input_tokens === "number" ? usage.cache_read_input_tokens : 0);
  return usage.input_tokens + cached;
}

function openAiUsage(input: number, output: number): Json {
  return { prompt_tokens: input, completion_tokens: output, total_tokens: input + output };
}

/** A whole Anthropic message as a chat.completion. */
export function messagesAnswerToChat(message: Json, now: () => number = Date.now): Json {
  if (message.type !== "message" || !Array.isArray(message.content)) throw new TranslationError("the provider's answer is not an Anthropic message");
  let text = "";
  const toolCalls: Json[] = [];
  for (const block of message.content as unknown[]) {
    if (!isJsonObject(block)) continue;
    if (block.type === "text" && isString(block.text)) text += block.text;
    else if (block.type === "tool_use" && isString(block.id) && isString(block.name)) {
      toolCalls.push({ id: block.id, type: "function", function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
    }
  }
  const input = anthropicInputTokens(message.usage) ?? 0;
  const output = isJsonObject(message.usage) && typeof message.usage.output_tokens === "number" ? message.usage.output_tokens : 0;
  return {
    id: isString(message.id) ? message.id : "msg",
    object: "chat.completion",
    created: Math.floor(now() / 1000),
    model: message.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: text === "" && toolCalls.length > 0 ? null : text, refusal: null, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) },
        logprobs: null,
        finish_reason: finishReason(message.stop_reason),
      },
    ],
    usage: openAiUsage(input, output),
  };
}

/** A whole chat.completion as an Anthropic message. Unparseable tool arguments become `{}` (Anthropic needs an object). */
export function chatAnswerToMessages(completion: Json): Json {
  const choice = Array.isArray(completion.choices) ? (completion.choices[0] as unknown) : undefined;
  if (completion.object !== "chat.completion" || !isJsonObject(choice) || !isJsonObject(choice.message)) throw new TranslationError("the provider's answer is not a chat completion");
  const content: Json[] = [];
  if (isString(choice.message.content) && choice.message.content !== "") content.push({ type: "text", text: choice.message.content });
  if (Array.isArray(choice.message.tool_calls)) {
    for (const call of choice.message.tool_calls as unknown[]) {
      if (!isJsonObject(call) || !isJsonObject(call.function) || !isString(call.function.name)) continue;
      let input: unknown = {};
      try {
        input = JSON.parse(isString(call.function.arguments) && call.function.arguments !== "" ? call.function.arguments : "{}");
      } catch {
        input = {};
      }
      content.push({ type: "tool_use", id: isString(call.id) ? call.id : "toolu", name: call.function.name, input: isJsonObject(input) ? input : {} });
    }
  }
  const usage = isJsonObject(completion.usage) ? completion.usage : {};
  return {
    id: isString(completion.id) ? completion.id : "msg",
    type: "message",
    role: "assistant",
    model: completion.model,
    content,
    stop_reason: stopReason(choice.finish_reason),
    stop_sequence: null,
    usage: { input_tokens: typeof usage.prompt_tokens === "number" ? usage.prompt_tokens : 0, output_tokens: typeof usage.completion_tokens === "number" ? usage.completion_tokens : 0 },
  };
}

export interface AnswerTranslatorOptions {
  /** The agent asked for OpenAI's final usage chunk (`stream_options.include_usage`). */
  readonly includeUsage?: boolean;
  /** Applied to provider error messages before they reach the agent (DLP redaction). */
  readonly redact?: (text: string) => string;
  readonly now?: () => number;
}

/** Turns a provider's answer into the agent's wire format: a whole JSON body, or SSE events one at a time. */
export interface AnswerTranslator {
  /** The agent-format text for one upstream SSE event ("" when it has no counterpart). */
  event(event: SseEvent): string;
  /** Called at the upstream's clean end: anything still owed, or an error event when the answer was incomplete. */
  end(): string;
  /** True once the stream reached its proper end without an error event from the provider. */
  complete(): boolean;
  /** A whole JSON answer. Throws TranslationError when it is not the expected shape. */
  json(text: string): string;
}

const openAiEvent = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;
const anthropicEvent = (type: string, data: Json) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** A whole (non-streaming) answer from the provider: a JSON object, or a TranslationError saying what it was not. */
function answerObject(text: string): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new TranslationError("the provider's answer is not JSON");
  }
  if (!isJsonObject(parsed)) throw new TranslationError("the provider's answer is not a JSON object");
  return parsed;
}

function parseEventData(event: SseEvent): Json | undefined {
  if (event.data === "" || event.data === "[DONE]") return undefined;
  try {
    const parsed: unknown = JSON.parse(event.data);
    return isJsonObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export function createAnswerTranslator(translation: Translation, options: AnswerTranslatorOptions = {}): AnswerTranslator {
  return translation === "chat-to-messages" ? chatFromMessagesStream(options) : messagesFromChatStream(options);
}

/** Anthropic events (message_start … message_stop) to chat.completion.chunk events, for an OpenAI-speaking agent. */
function chatFromMessagesStream(options: AnswerTranslatorOptions): AnswerTranslator {
  const now = options.now ?? Date.now;
  const redact = options.redact ?? ((text: string) => text);
  let id = "msg";
  let model: unknown = null;
  const created = Math.floor(now() / 1000);
  let input = 0;
  let output = 0;
  let finished = false;
  let failed = false;
  const toolIndexOfBlock = new Map<number, number>();
  const chunk = (delta: Json, finish: string | null = null) =>
    openAiEvent({ id, object: "chat.completion.chunk", created, model, system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  return {
    event(event) {
      const data = parseEventData(event);
      if (data === undefined || finished || failed) return "";
      switch (data.type) {
        case "message_start": {
          const message = isJsonObject(data.message) ? data.message : {};
          if (isString(message.id)) id = message.id;
          model = message.model ?? null;
          input = anthropicInputTokens(message.usage) ?? input;
          return chunk({ role: "assistant", content: "" });
        }
        case "content_block_start": {
          const block = isJsonObject(data.content_block) ? data.content_block : {};
          const index = typeof data.index === "number" ? data.index : -1;
          if (block.type === "text" && isString(block.text) && block.text !== "") return chunk({ content: block.text });
          if (block.type !== "tool_use") return "";
          const toolIndex = toolIndexOfBlock.size;
          toolIndexOfBlock.set(index, toolIndex);
          const started = isJsonObject(block.input) && Object.keys(block.input).length > 0 ? JSON.stringify(block.input) : "";
          return chunk({ tool_calls: [{ index: toolIndex, id: block.id, type: "function", function: { name: block.name, arguments: started } }] });
        }
        case "content_block_delta": {
          const delta = isJsonObject(data.delta) ? data.delta : {};
          if (delta.type === "text_delta" && isString(delta.text)) return chunk({ content: delta.text });
          const toolIndex = typeof data.index === "number" ? toolIndexOfBlock.get(data.index) : undefined;
          if (delta.type === "input_json_delta" && isString(delta.partial_json) && delta.partial_json !== "" && toolIndex !== undefined) {
            return chunk({ tool_calls: [{ index: toolIndex, function: { arguments: delta.partial_json } }] });
          }
          return "";
        }
        case "message_delta": {
          const usage = isJsonObject(data.usage) ? data.usage : {};
          if (typeof usage.output_tokens === "number") output = usage.output_tokens;
          input = anthropicInputTokens(usage) ?? input;
          const delta = isJsonObject(data.delta) ? data.delta : {};
          return chunk({}, finishReason(delta.stop_reason));
        }
        case "message_stop":
          finished = true;
          return `${options.includeUsage === true ? openAiEvent({ id, object: "chat.completion.chunk", created, model, system_fingerprint: null, choices: [], usage: openAiUsage(input, output) }) : ""}data: [DONE]\n\n`;
        case "error": {
          failed = true;
          const error = isJsonObject(data.error) ? data.error : {};
          const type = isString(error.type) ? error.type : "api_error";
          return openAiEvent({ error: { message: redact(`provider: ${isString(error.message) ? error.message : type}`), type: type === "overloaded_error" || type === "api_error" ? "server_error" : type, param: null, code: `upstream_${type}` } });
        }
        default:
          return "";
      }
    },
    end() {
      if (finished || failed) return "";
      failed = true;
      return openAiEvent({ error: { message: "the provider's stream ended before message_stop", type: "server_error", param: null, code: "upstream_stream_broken" } });
    },
    complete: () => finished && !failed,
    json: (text) => JSON.stringify(messagesAnswerToChat(answerObject(text), now)),
  };
}

/** chat.completion.chunk events to Anthropic events, for an Anthropic-speaking agent. */
function messagesFromChatStream(options: AnswerTranslatorOptions): AnswerTranslator {
  const redact = options.redact ?? ((text: string) => text);
  let started = false;
  let finished = false;
  let failed = false;
  let blocks = 0;
  let open: { index: number; tool?: number } | undefined;
  const blockOfTool = new Map<number, number>();
  let stop: string | undefined;
  let input = 0;
  let output = 0;
  const close = (): string => {
    if (open === undefined) return "";
    const text = anthropicEvent("content_block_stop", { index: open.index });
    open = undefined;
    return text;
  };
  const startBlock = (block: Json, tool?: number): string => {
    const text = close();
    open = { index: blocks++, ...(tool === undefined ? {} : { tool }) };
    return text + anthropicEvent("content_block_start", { index: open.index, content_block: block });
  };
  const finish = (): string => {
    finished = true;
    return `${close()}${anthropicEvent("message_delta", { delta: { stop_reason: stop ?? "end_turn", stop_sequence: null }, usage: { input_tokens: input, output_tokens: output } })}${anthropicEvent("message_stop", {})}`;
  };
  return {
    event(event) {
      if (finished || failed) return "";
      if (event.data === "[DONE]") return started ? finish() : "";
      const data = parseEventData(event);
      if (data === undefined) return "";
      if (data.error !== undefined) {
        failed = true;
        const error = isJsonObject(data.error) ? data.error : {};
        return anthropicEvent("error", { error: { type: "api_error", message: redact(`provider: ${isString(error.message) ? error.message : "error in stream"}`) } });
      }
      let out = "";
      if (!started) {
        started = true;
        out += anthropicEvent("message_start", {
          message: { id: isString(data.id) ? data.id : "msg", type: "message", role: "assistant", model: data.model ?? null, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } },
        });
      }
      if (isJsonObject(data.usage)) {
        if (typeof data.usage.prompt_tokens === "number") input = data.usage.prompt_tokens;
        if (typeof data.usage.completion_tokens === "number") output = data.usage.completion_tokens;
      }
      const choice = Array.isArray(data.choices) ? (data.choices[0] as unknown) : undefined;
      if (!isJsonObject(choice)) return out;
      const delta = isJsonObject(choice.delta) ? choice.delta : {};
      if (isString(delta.content) && delta.content !== "") {
        if (open === undefined || open.tool !== undefined) out += startBlock({ type: "text", text: "" });
        out += anthropicEvent("content_block_delta", { index: (open as { index: number }).index, delta: { type: "text_delta", text: delta.content } });
      }
      if (Array.isArray(delta.tool_calls)) {
        for (const call of delta.tool_calls as unknown[]) {
          if (!isJsonObject(call)) continue;
          const toolIndex = typeof call.index === "number" ? call.index : 0;
          const fn = isJsonObject(call.function) ? call.function : {};
          if (!blockOfTool.has(toolIndex)) {
            out += startBlock({ type: "tool_use", id: isString(call.id) ? call.id : `toolu_${toolIndex}`, name: isString(fn.name) ? fn.name : "", input: {} }, toolIndex);
            blockOfTool.set(toolIndex, (open as { index: number }).index);
          }
          if (isString(fn.arguments) && fn.arguments !== "") out += anthropicEvent("content_block_delta", { index: blockOfTool.get(toolIndex) as number, delta: { type: "input_json_delta", partial_json: fn.arguments } });
        }
      }
      if (isString(choice.finish_reason)) {
        stop = stopReason(choice.finish_reason);
        out += close();
      }
      return out;
    },
    end() {
      if (finished || failed) return "";
      // Some OpenAI-compatible servers end without `data: [DONE]`; a finish_reason already said the answer is whole.
      if (started && stop !== undefined) return finish();
      failed = true;
      return anthropicEvent("error", { error: { type: "api_error", message: "the provider's stream ended before its answer was complete" } });
    },
    complete: () => finished && !failed,
    json: (text) => JSON.stringify(chatAnswerToMessages(answerObject(text))),
  };
}

/**
 * A provider error as the agent's SDK should see it: the other API's error type means nothing to it, so the status
 * decides the type (the provider's type stays in the message), and Anthropic's 529 "overloaded" becomes 503 for an
 * OpenAI client (both are retried; 529 is not an HTTP status every client knows).
 */
export function translatedErrorStatus(status: number, translation: Translation): number {
  return translation === "chat-to-messages" && status === 529 ? 503 : status;
}
