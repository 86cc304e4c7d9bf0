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
import type { AddressInfo } from "node:net";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { DEFAULT_REPLY, anthropicError, anthropicMessages, chatCompletions, embeddings, isRecord, openAiError, responsesApi, sendStandInJson } from "./stand-in-answers.ts";
import type { LlmStandInState } from "./stand-in-answers.ts";

export { STAND_IN_TOOL_ARGUMENT_FRAGMENTS } from "./stand-in-answers.ts";

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

interface StandInProviderState extends LlmStandInState {
  readonly options: StandInProviderOptions;
  readonly requests: RecordedRequest[];
  connections: number;
  releaseGate: () => void;
}

async function handleStandInRequest(stand: StandInProviderState, request: IncomingMessage, response: ServerResponse) {
  const path = (request.url ?? "/").split("?")[0] ?? "/";
  const anthropic = path.endsWith("/messages");
  const body = request.method === "POST" ? await readJson(request) : undefined;
  if (stand.options.record !== false) {
    stand.requests.push({ method: request.method ?? "", path, headers: request.headers, body, servername: (request.socket as TLSSocket).servername || undefined });
  }
  if (stand.options.expectedKey !== undefined) {
    const presented = anthropic ? request.headers["x-api-key"] : request.headers.authorization?.replace(/^Bearer /, "");
    if (presented !== stand.options.expectedKey) {
      if (anthropic) anthropicError(response, 401, "authentication_error", "invalid x-api-key");
      else openAiError(response, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
      return;
    }
  }
  if (request.method === "GET" && path.endsWith("/models")) {
    sendStandInJson(response, 200, { object: "list", data: [{ id: "stand-in-model", object: "model", created: 0, owned_by: "stand-in" }] });
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
  if (path.endsWith("/chat/completions")) await chatCompletions(stand, response, body, model);
  else if (path.endsWith("/responses")) await responsesApi(stand, response, body, model);
  else if (path.endsWith("/embeddings")) embeddings(stand, response, body, model);
  else if (anthropic) await anthropicMessages(stand, response, body, model);
  else openAiError(response, 404, `Invalid URL (POST ${path})`, "invalid_request_error", null);
}

export function createStandInProvider(options: StandInProviderOptions = {}): StandInProvider {
  const stand: StandInProviderState = {
    options,
    reply: options.reply ?? DEFAULT_REPLY,
    chunkDelay: options.chunkDelayMs ?? 0,
    requests: [],
    cancelled: 0,
    completed: 0,
    connections: 0,
    gate: Promise.resolve(),
    releaseGate: () => {},
    cancellationWaiters: [],
  };
  stand.gate = new Promise<void>((resolve) => (stand.releaseGate = resolve));
  const handler = (request: IncomingMessage, response: ServerResponse) => handleStandInRequest(stand, request, response);
  const server = options.tls === undefined ? http.createServer(handler) : https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler);
  server.on(options.tls === undefined ? "connection" : "secureConnection", () => {
    stand.connections += 1;
  });
  server.keepAliveTimeout = 30_000;

  return {
    requests: stand.requests,
    listen(host = "127.0.0.1") {
      return new Promise((resolve) => {
        server.listen(0, host, () => {
          const { port } = server.address() as AddressInfo;
          resolve({ port, baseUrl: `${options.tls === undefined ? "http" : "https"}://${host}:${port}/v1` });
        });
      });
    },
    close() {
      stand.releaseGate();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    cancelled: () => stand.cancelled,
    nextCancellation: () => new Promise((resolve) => stand.cancellationWaiters.push(resolve)),
    completed: () => stand.completed,
    release() {
      stand.releaseGate();
      stand.gate = new Promise<void>((resolve) => (stand.releaseGate = resolve));
    },
    connections: () => stand.connections,
  };
}
