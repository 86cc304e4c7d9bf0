// Translation between OpenAI chat completions and Anthropic messages, so an agent that speaks one can use a model
// served by a provider that speaks the other (Hermes' custom provider speaks chat completions; Claude speaks messages).
// Pure functions over parsed bodies: no I/O. This file translates requests (translate-answer.ts: the answers). What
// has no equivalent on the other side is refused with a message saying what to remove (a silently dropped `n: 3` or
// `response_format` would change the answer), except a short list of sampling and bookkeeping hints that only tune
// the answer (IGNORED_* below, documented).
//
// The request is translated after DLP has scanned (and redacted) the agent's own body; the caller scans the
// translation again, because parsing tool-call arguments decodes JSON escapes a scan of the original could not read.
import { PerimeterError } from "../shared/index.ts";
import { DEFAULT_MAX_OUTPUT_TOKENS } from "./usage.ts";

export type Translation = "chat-to-messages" | "messages-to-chat";

/** A request that cannot be expressed in the provider's wire format: answered 400, nothing is sent. */
export class TranslationError extends PerimeterError {
  readonly param: string | undefined;
  constructor(message: string, param?: string) {
    super("bad_request", message);
    this.name = "TranslationError";
    this.param = param;
  }
}

export type Json = Record<string, unknown>;

export const isJsonObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
export const isString = (value: unknown): value is string => typeof value === "string";

/** Chat-completions parameters that only tune sampling or bookkeeping and have no Anthropic equivalent: dropped. */
const IGNORED_CHAT_PARAMETERS = new Set([
  "presence_penalty",
  "frequency_penalty",
  "seed",
  "logit_bias",
  "store",
  "metadata",
  "service_tier",
  "reasoning_effort",
  "reasoning",
  "include_reasoning",
  "prompt_cache_key",
  "safety_identifier",
  "verbosity",
  "min_p",
  "repetition_penalty",
  "top_a",
  // OpenRouter's routing hints (an agent configured for OpenRouter sends them).
  "provider",
  "transforms",
  "models",
  "route",
  "usage",
]);
const HANDLED_CHAT_PARAMETERS = new Set([
  "model",
  "messages",
  "stream",
  "stream_options",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "top_k",
  "stop",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "user",
  "n",
  "logprobs",
  "top_logprobs",
  "response_format",
]);

/** Messages parameters with no chat-completions equivalent that only tune the answer: dropped. */
const IGNORED_MESSAGES_PARAMETERS = new Set(["top_k", "thinking", "service_tier", "cache_control"]);
const HANDLED_MESSAGES_PARAMETERS = new Set(["model", "messages", "system", "max_tokens", "stream", "temperature", "top_p", "stop_sequences", "tools", "tool_choice", "metadata"]);

function checkParameters(body: Json, handled: ReadonlySet<string>, ignored: ReadonlySet<string>, target: string): void {
  for (const name of Object.keys(body)) {
    if (handled.has(name) || ignored.has(name)) continue;
    throw new TranslationError(`parameter "${name}" has no equivalent in ${target}, which this model's provider speaks; remove it, or use a model whose provider speaks your API`, name);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Requests: chat completions -> messages

const DATA_URL = /^data:([a-z0-9.+-]+\/[a-z0-9.+-]+);base64,(.*)$/is;

/** Anthropic accepts tool ids of [a-zA-Z0-9_-] only; other providers' ids (`functions.get:0`) are mapped the same way on both sides. */
const toolId = (id: string): string => id.replace(/[^a-zA-Z0-9_-]/g, "_") || "tool";

function imageBlockFromUrl(url: unknown, path: string): Json {
  if (!isString(url)) throw new TranslationError(`${path}: image_url.url must be a string`, path);
  const data = DATA_URL.exec(url);
  if (data !== null) return { type: "image", source: { type: "base64", media_type: (data[1] as string).toLowerCase(), data: data[2] } };
  if (/^https?:\/\//i.test(url)) return { type: "image", source: { type: "url", url } };
  throw new TranslationError(`${path}: an image must be a data:image/...;base64 URL or an http(s) URL`, path);
}

/** OpenAI content (a string or parts) as Anthropic content blocks; empty text is left out (Anthropic refuses it). */
function chatContentToBlocks(content: unknown, path: string, allowed: "text" | "media"): Json[] {
  if (content === undefined || content === null) return [];
  if (isString(content)) return content === "" ? [] : [{ type: "text", text: content }];
  if (!Array.isArray(content)) throw new TranslationError(`${path} must be a string or an array of content parts`, path);
  const blocks: Json[] = [];
  content.forEach((part: unknown, index) => {
    const where = `${path}[${index}]`;
    if (!isJsonObject(part)) throw new TranslationError(`${where} must be an object`, where);
    if (part.type === "text" || part.type === "refusal") {
      const text = part.type === "text" ? part.text : part.refusal;
      if (!isString(text)) throw new TranslationError(`${where}.${String(part.type)} must be a string`, where);
      if (text !== "") blocks.push({ type: "text", text });
      return;
    }
    if (allowed === "media" && part.type === "image_url") {
      const image = part.image_url;
      blocks.push(imageBlockFromUrl(isJsonObject(image) ? image.url : image, where));
      return;
    }
    if (allowed === "media" && part.type === "file" && isJsonObject(part.file)) {
      const data = isString(part.file.file_data) ? DATA_URL.exec(part.file.file_data) : null;
      if (data !== null && (data[1] as string).toLowerCase() === "application/pdf") {
        blocks.push({ type: "document", source: { type: "base64", media_type: "application/pdf", data: data[2] } });
        return;
      }
      throw new TranslationError(`${where}: only PDF files sent inline (file.file_data as a data:application/pdf;base64 URL) can be passed to an Anthropic model`, where);
    }
    throw new TranslationError(`${where}: content part "${String(part.type)}" has no equivalent in Anthropic messages here; send text${allowed === "media" ? ", images or PDF files" : ""}`, where);
  });
  return blocks;
}

function parseToolArguments(text: unknown, path: string): Json {
  if (text === undefined || text === null || (isString(text) && text.trim() === "")) return {};
  if (!isString(text)) throw new TranslationError(`${path} must be a string of JSON`, path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new TranslationError(`${path} is not valid JSON; an Anthropic model needs tool-call arguments as a JSON object`, path);
  }
  if (!isJsonObject(parsed)) throw new TranslationError(`${path} must be a JSON object`, path);
  return parsed;
}

/** Anthropic takes one system prompt and strictly user/assistant turns; consecutive turns of one role are merged. */
export function chatRequestToMessages(body: Json): Json {
  checkParameters(body, HANDLED_CHAT_PARAMETERS, IGNORED_CHAT_PARAMETERS, "Anthropic messages");
  if (body.n !== undefined && body.n !== null && body.n !== 1) throw new TranslationError("n: an Anthropic model answers with one choice; remove n or set it to 1", "n");
  if (body.logprobs === true) throw new TranslationError("logprobs: an Anthropic model does not return log probabilities; remove logprobs", "logprobs");
  if (body.top_logprobs !== undefined && body.top_logprobs !== null && body.top_logprobs !== 0) throw new TranslationError("top_logprobs: an Anthropic model does not return log probabilities; remove top_logprobs", "top_logprobs");
  if (body.response_format !== undefined && body.response_format !== null && !(isJsonObject(body.response_format) && body.response_format.type === "text")) {
    throw new TranslationError("response_format: JSON modes have no equivalent in Anthropic messages; describe the format in the prompt or use a tool with a schema", "response_format");
  }
  if (!Array.isArray(body.messages)) throw new TranslationError("messages must be an array", "messages");

  const system: Json[] = [];
  const turns: Array<{ role: "user" | "assistant"; content: Json[] }> = [];
  const push = (role: "user" | "assistant", content: Json[]) => {
    if (content.length === 0) return;
    const last = turns.at(-1);
    if (last !== undefined && last.role === role) last.content.push(...content);
    else turns.push({ role, content });
  };
  body.messages.forEach((message: unknown, index) => {
    const path = `messages[${index}]`;
    if (!isJsonObject(message)) throw new TranslationError(`${path} must be an object`, path);
    switch (message.role) {
      case "system":
      case "developer":
        system.push(...chatContentToBlocks(message.content, `${path}.content`, "text"));
        return;
      case "user":
        push("user", chatContentToBlocks(message.content, `${path}.content`, "media"));
        return;
      case "assistant": {
        if (message.function_call !== undefined && message.function_call !== null) throw new TranslationError(`${path}.function_call is the deprecated form; send tool_calls`, `${path}.function_call`);
        const blocks = chatContentToBlocks(message.content, `${path}.content`, "text");
        if (isString(message.refusal) && message.refusal !== "" && blocks.length === 0) blocks.push({ type: "text", text: message.refusal });
        if (message.tool_calls !== undefined && message.tool_calls !== null) {
          if (!Array.isArray(message.tool_calls)) throw new TranslationError(`${path}.tool_calls must be an array`, `${path}.tool_calls`);
          message.tool_calls.forEach((call: unknown, callIndex) => {
            const where = `${path}.tool_calls[${callIndex}]`;
            if (!isJsonObject(call) || !isString(call.id) || !isJsonObject(call.function) || !isString(call.function.name)) {
              throw new TranslationError(`${where} must be { id, type: "function", function: { name, arguments } }`, where);
            }
            blocks.push({ type: "tool_use", id: toolId(call.id), name: call.function.name, input: parseToolArguments(call.function.arguments, `${where}.function.arguments`) });
          });
        }
        push("assistant", blocks);
        return;
      }
      case "tool": {
        if (!isString(message.tool_call_id)) throw new TranslationError(`${path}.tool_call_id is required`, `${path}.tool_call_id`);
        const content = chatContentToBlocks(message.content, `${path}.content`, "media");
        push("user", [{ type: "tool_result", tool_use_id: toolId(message.tool_call_id), ...(content.length > 0 ? { content } : {}) }]);
        return;
      }
      default:
        throw new TranslationError(`${path}.role "${String(message.role)}" has no equivalent in Anthropic messages; use system, user, assistant or tool`, `${path}.role`);
    }
  });

  const translated: Json = {
    model: body.model,
    max_tokens: positive(body.max_completion_tokens) ?? positive(body.max_tokens) ?? DEFAULT_MAX_OUTPUT_TOKENS,
    messages: turns,
  };
  if (system.length > 0) translated.system = system;
  for (const name of ["temperature", "top_p", "top_k"] as const) if (typeof body[name] === "number") translated[name] = body[name];
  if (isString(body.stop)) translated.stop_sequences = [body.stop];
  else if (Array.isArray(body.stop)) translated.stop_sequences = body.stop.filter(isString);
  if (isString(body.user)) translated.metadata = { user_id: body.user };
  if (body.stream === true) translated.stream = true;
  if (body.tools !== undefined && body.tools !== null) {
    if (!Array.isArray(body.tools)) throw new TranslationError("tools must be an array", "tools");
    translated.tools = body.tools.map((tool: unknown, index) => {
      const where = `tools[${index}]`;
      if (!isJsonObject(tool) || tool.type !== "function" || !isJsonObject(tool.function) || !isString(tool.function.name)) {
        throw new TranslationError(`${where}: only { type: "function", function: { name, description, parameters } } tools can be passed to an Anthropic model`, where);
      }
      const schema = isJsonObject(tool.function.parameters) ? tool.function.parameters : { type: "object", properties: {} };
      return { name: tool.function.name, ...(isString(tool.function.description) ? { description: tool.function.description } : {}), input_schema: schema };
    });
  }
  const choice = chatToolChoice(body.tool_choice);
  if (body.parallel_tool_calls === false && choice?.type !== "none") translated.tool_choice = { ...(choice ?? { type: "auto" }), disable_parallel_tool_use: true };
  else if (choice !== undefined) translated.tool_choice = choice;
  return translated;
}

function positive(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
}

function chatToolChoice(choice: unknown): Json | undefined {
  if (choice === undefined || choice === null) return undefined;
  if (choice === "auto") return { type: "auto" };
  if (choice === "none") return { type: "none" };
  if (choice === "required") return { type: "any" };
  if (isJsonObject(choice) && choice.type === "function" && isJsonObject(choice.function) && isString(choice.function.name)) return { type: "tool", name: choice.function.name };
  throw new TranslationError('tool_choice must be "auto", "none", "required" or { type: "function", function: { name } }', "tool_choice");
}

// ---------------------------------------------------------------------------------------------------------------
// Requests: messages -> chat completions

function mediaUrlFromSource(source: unknown, path: string, kind: "image" | "document"): string {
  if (!isJsonObject(source)) throw new TranslationError(`${path}.source is required`, `${path}.source`);
  if (source.type === "base64" && isString(source.media_type) && isString(source.data)) return `data:${source.media_type};base64,${source.data}`;
  if (source.type === "url" && isString(source.url) && kind === "image") return source.url;
  throw new TranslationError(`${path}.source: only base64${kind === "image" ? " and url" : ""} sources can be passed to an OpenAI-compatible model`, `${path}.source`);
}

/** An Anthropic content block (not tool_use/tool_result) as an OpenAI content part, or undefined for thinking. */
function blockToChatPart(block: Json, path: string): Json | undefined {
  switch (block.type) {
    case "text":
      if (!isString(block.text)) throw new TranslationError(`${path}.text must be a string`, path);
      return { type: "text", text: block.text };
    case "image":
      return { type: "image_url", image_url: { url: mediaUrlFromSource(block.source, path, "image") } };
    case "document": {
      if (isJsonObject(block.source) && block.source.type === "text" && isString(block.source.data)) return { type: "text", text: block.source.data };
      if (isJsonObject(block.source) && block.source.media_type !== "application/pdf") throw new TranslationError(`${path}: only PDF and plain-text documents can be passed to an OpenAI-compatible model`, path);
      return { type: "file", file: { filename: isString(block.title) ? block.title : "document.pdf", file_data: mediaUrlFromSource(block.source, path, "document") } };
    }
    case "thinking":
    case "redacted_thinking":
      // The other provider cannot verify the signature of Claude's thinking; the visible answer carries the turn.
      return undefined;
    default:
      throw new TranslationError(`${path}: content block "${String(block.type)}" has no equivalent in chat completions; send text, images, documents, tool_use and tool_result`, path);
  }
}

function anthropicBlocks(content: unknown, path: string): Json[] {
  if (isString(content)) return [{ type: "text", text: content }];
  if (!Array.isArray(content)) throw new TranslationError(`${path} must be a string or an array of content blocks`, path);
  return content.map((block: unknown, index) => {
    if (!isJsonObject(block)) throw new TranslationError(`${path}[${index}] must be an object`, `${path}[${index}]`);
    return block;
  });
}

const textOf = (parts: Json[]): string => parts.map((part) => (part.type === "text" ? String(part.text) : "")).join("\n");

/** Tool results become `tool` messages right after the assistant's turn; the rest of a user turn follows them. */
export function messagesRequestToChat(body: Json): Json {
  checkParameters(body, HANDLED_MESSAGES_PARAMETERS, IGNORED_MESSAGES_PARAMETERS, "OpenAI chat completions");
  if (!Array.isArray(body.messages)) throw new TranslationError("messages must be an array", "messages");
  const messages: Json[] = [];
  if (body.system !== undefined && body.system !== null) {
    const parts = anthropicBlocks(body.system, "system").map((block, index) => blockToChatPart(block, `system[${index}]`)).filter((part) => part !== undefined);
    if (parts.some((part) => part.type !== "text")) throw new TranslationError("system may hold text blocks only", "system");
    messages.push({ role: "system", content: textOf(parts) });
  }
  body.messages.forEach((message: unknown, index) => {
    const path = `messages[${index}]`;
    if (!isJsonObject(message) || (message.role !== "user" && message.role !== "assistant")) throw new TranslationError(`${path}.role must be user or assistant`, `${path}.role`);
    const blocks = anthropicBlocks(message.content, `${path}.content`);
    if (message.role === "assistant") {
      const texts: string[] = [];
      const calls: Json[] = [];
      blocks.forEach((block, blockIndex) => {
        const where = `${path}.content[${blockIndex}]`;
        if (block.type === "tool_use") {
          if (!isString(block.id) || !isString(block.name)) throw new TranslationError(`${where}: tool_use needs id and name`, where);
          calls.push({ id: block.id, type: "function", function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
          return;
        }
        const part = blockToChatPart(block, where);
        if (part === undefined) return;
        if (part.type !== "text") throw new TranslationError(`${where}: an assistant turn may hold text and tool_use only`, where);
        texts.push(String(part.text));
      });
      messages.push({ role: "assistant", content: texts.length > 0 ? texts.join("") : null, ...(calls.length > 0 ? { tool_calls: calls } : {}) });
      return;
    }
    const parts: Json[] = [];
    blocks.forEach((block, blockIndex) => {
      const where = `${path}.content[${blockIndex}]`;
      if (block.type !== "tool_result") {
        const part = blockToChatPart(block, where);
        if (part !== undefined) parts.push(part);
        return;
      }
      if (!isString(block.tool_use_id)) throw new TranslationError(`${where}.tool_use_id is required`, where);
      const resultParts = block.content === undefined ? [] : anthropicBlocks(block.content, `${where}.content`).map((inner, innerIndex) => blockToChatPart(inner, `${where}.content[${innerIndex}]`)).filter((part) => part !== undefined);
      const text = textOf(resultParts.filter((part) => part.type === "text"));
      messages.push({ role: "tool", tool_call_id: block.tool_use_id, content: block.is_error === true ? `[tool error] ${text}` : text });
      // A tool message holds text only: images a tool returned follow in a user turn, saying where they came from.
      const media = resultParts.filter((part) => part.type !== "text");
      if (media.length > 0) parts.push({ type: "text", text: `(returned by tool call ${block.tool_use_id})` }, ...media);
    });
    if (parts.length === 0) return;
    const only = parts[0] as Json;
    messages.push({ role: "user", content: parts.length === 1 && only.type === "text" ? only.text : parts });
  });

  const translated: Json = { model: body.model, messages };
  const maxTokens = positive(body.max_tokens);
  if (maxTokens === undefined) throw new TranslationError("max_tokens is required (a positive integer)", "max_tokens");
  translated.max_tokens = maxTokens;
  for (const name of ["temperature", "top_p"] as const) if (typeof body[name] === "number") translated[name] = body[name];
  if (Array.isArray(body.stop_sequences) && body.stop_sequences.length > 0) translated.stop = body.stop_sequences.filter(isString);
  if (isJsonObject(body.metadata) && isString(body.metadata.user_id)) translated.user = body.metadata.user_id;
  if (body.stream === true) {
    translated.stream = true;
    // Usage arrives in a last chunk only when asked for; it settles the budget and becomes message_delta's usage.
    translated.stream_options = { include_usage: true };
  }
  if (body.tools !== undefined && body.tools !== null) {
    if (!Array.isArray(body.tools)) throw new TranslationError("tools must be an array", "tools");
    translated.tools = body.tools.map((tool: unknown, index) => {
      const where = `tools[${index}]`;
      if (!isJsonObject(tool) || !isString(tool.name) || (tool.type !== undefined && tool.type !== "custom") || !isJsonObject(tool.input_schema)) {
        throw new TranslationError(`${where}: only custom tools ({ name, description, input_schema }) can be passed to an OpenAI-compatible model; Anthropic's server tools run at Anthropic`, where);
      }
      return { type: "function", function: { name: tool.name, ...(isString(tool.description) ? { description: tool.description } : {}), parameters: tool.input_schema } };
    });
  }
  if (body.tool_choice !== undefined && body.tool_choice !== null) {
    const choice = body.tool_choice;
    if (!isJsonObject(choice)) throw new TranslationError("tool_choice must be an object", "tool_choice");
    if (choice.type === "auto") translated.tool_choice = "auto";
    else if (choice.type === "any") translated.tool_choice = "required";
    else if (choice.type === "none") translated.tool_choice = "none";
    else if (choice.type === "tool" && isString(choice.name)) translated.tool_choice = { type: "function", function: { name: choice.name } };
    else throw new TranslationError('tool_choice.type must be "auto", "any", "tool" (with name) or "none"', "tool_choice");
    if (choice.disable_parallel_tool_use === true && translated.tools !== undefined) translated.parallel_tool_calls = false;
  }
  return translated;
}
