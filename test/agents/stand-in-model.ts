// A STAND-IN for the model a real agent CLI talks to (through llm-proxy), which lies outside this network. It plays a
// script: each turn of the agent's main loop gets the script's next step, a tool call or a final text, in the wire
// format the agent asked in: OpenAI chat completions or the Responses API, streamed or not. Other requests are the
// agent's side queries (titles, "who speaks next", summaries of a fetched page, follow-up suggestions that reuse the
// history and append a question): they get a short text and never advance the script. Every turn is recorded as the
// model saw it (the tools offered, the tool results handed back), so a test can say what the agent told its model.
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";

export type WireApi = "chat-completions" | "responses";

/** A tool result the agent handed back to the model, as text. */
export interface ToolResultView {
  readonly callId: string;
  readonly text: string;
}

/** One main-loop turn, as the model saw it. */
export interface TurnView {
  readonly index: number;
  readonly api: WireApi;
  readonly stream: boolean;
  /** Names of the tools offered in this request. */
  readonly tools: readonly string[];
  /** Tool results after the model's last call (the answer to the previous step). */
  readonly results: readonly ToolResultView[];
  /** When the request arrived (ms since the model started). */
  readonly at: number;
  /** The offered tool whose name ends with `suffix` (agents prefix MCP tools with their server name). */
  tool(suffix: string): string;
}

export type ModelAction = { readonly call: string; readonly arguments: Record<string, unknown> } | { readonly say: string };
export type ScriptStep = (view: TurnView) => ModelAction;

export interface SideQuery {
  readonly api: WireApi;
  readonly stream: boolean;
  readonly at: number;
  readonly tools: readonly string[];
}

export interface ScriptedModel {
  listen(): Promise<{ baseUrl: string }>;
  close(): Promise<void>;
  readonly turns: readonly TurnView[];
  readonly sideQueries: readonly SideQuery[];
  /** Every request's headers, to show what llm-proxy sent (the provider key, never the virtual key). */
  readonly headers: readonly http.IncomingHttpHeaders[];
  /** Problems the model met (an unknown tool, a request it could not read): the test fails on any. */
  readonly problems: readonly string[];
  /** Plays `script` from the next conversation on (a new agent run starts at its first step). */
  setScript(script: readonly ScriptStep[]): void;
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((part) => (isObject(part) && typeof part.text === "string" ? part.text : typeof part === "string" ? part : "")).join("");
  return content === undefined || content === null ? "" : JSON.stringify(content);
}

/** What a request shows: the tools offered, the results after the model's last call, how many calls it made before,
 * and whether it is a turn of the main loop (it ends with the prompt or with tool results) rather than a side query
 * that reuses the history and appends a question of its own. */
interface RequestView {
  tools: string[];
  /** Tools offered inside a namespace, by their qualified name `<namespace>__<name>`. */
  namespaced: Map<string, { namespace: string; name: string }>;
  results: ToolResultView[];
  callsBefore: number;
  mainLoop: boolean;
}

/** The main loop offers the MCP servers' tools (agents name them <server>__<tool>); a side query that wants a
 * structured answer offers only a tool of its own (Qwen's respond_in_schema). */
const offersServerTools = (tools: readonly string[]) => tools.some((name) => name.includes("__"));

function chatView(body: Json): RequestView {
  const tools = (Array.isArray(body.tools) ? body.tools : []).flatMap((tool) => (isObject(tool) && isObject(tool.function) && typeof tool.function.name === "string" ? [tool.function.name] : []));
  const messages = Array.isArray(body.messages) ? body.messages.filter(isObject) : [];
  const results: ToolResultView[] = [];
  for (let index = messages.length - 1; index >= 0 && messages[index]?.role === "tool"; index -= 1) {
    const message = messages[index] as Json;
    results.unshift({ callId: String(message.tool_call_id), text: textOf(message.content) });
  }
  const assistants = messages.filter((message) => message.role === "assistant");
  const last = messages.at(-1);
  const mainLoop = offersServerTools(tools) && (last?.role === "tool" || (last?.role === "user" && assistants.length === 0));
  return { tools, namespaced: new Map(), results, callsBefore: assistants.filter((message) => Array.isArray(message.tool_calls) && message.tool_calls.length > 0).length, mainLoop };
}

function responsesView(body: Json): RequestView {
  // A namespace groups tools (`{ type: "namespace", name: "mcp__perimeter", tools: [...] }`); a call to a member names
  // it and its namespace. The view offers members as `<namespace>__<name>`, as other agents name MCP tools.
  const namespaced = new Map<string, { namespace: string; name: string }>();
  const names = (tool: unknown): string[] => {
    if (!isObject(tool) || typeof tool.name !== "string") return [];
    if (tool.type !== "namespace" || !Array.isArray(tool.tools)) return [tool.name];
    const namespace = tool.name;
    return tool.tools.flatMap((member) => {
      if (!isObject(member) || typeof member.name !== "string") return [];
      namespaced.set(`${namespace}__${member.name}`, { namespace, name: member.name });
      return [`${namespace}__${member.name}`];
    });
  };
  const tools = (Array.isArray(body.tools) ? body.tools : []).flatMap(names);
  const input = typeof body.input === "string" ? [{ type: "message", role: "user", content: body.input }] : Array.isArray(body.input) ? body.input.filter(isObject) : [];
  const isCall = (item: Json) => item.type === "function_call" || item.type === "custom_tool_call";
  const isOutput = (item: Json) => item.type === "function_call_output" || item.type === "custom_tool_call_output";
  const results: ToolResultView[] = [];
  for (let index = input.length - 1; index >= 0 && isOutput(input[index] as Json); index -= 1) {
    const item = input[index] as Json;
    results.unshift({ callId: String(item.call_id), text: textOf(item.output) });
  }
  const last = input.at(-1);
  const answered = input.some((item) => isCall(item) || ((item.type === "message" || item.type === undefined) && item.role === "assistant"));
  const mainLoop = offersServerTools(tools) && last !== undefined && (isOutput(last) || ((last.type === "message" || last.type === undefined) && last.role === "user" && !answered));
  return { tools, namespaced, results, callsBefore: input.filter(isCall).length, mainLoop };
}

const sse = (data: unknown, event?: string) => `${event === undefined ? "" : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`;

export function createScriptedModel(options: { readonly expectedKey: string; readonly script: readonly ScriptStep[]; readonly finalText?: string; readonly sideText?: string }): ScriptedModel {
  const started = Date.now();
  const turns: TurnView[] = [];
  const sideQueries: SideQuery[] = [];
  const headers: http.IncomingHttpHeaders[] = [];
  const problems: string[] = [];
  const finalText = options.finalText ?? "All steps done.";
  let script = options.script;
  const sideText = options.sideText ?? "ok";

  const decide = (api: WireApi, body: Json): { action: ModelAction; view: RequestView } => {
    const view = api === "chat-completions" ? chatView(body) : responsesView(body);
    const stream = body.stream === true;
    if (!view.mainLoop) {
      sideQueries.push({ api, stream, at: Date.now() - started, tools: view.tools });
      return { action: { say: sideText }, view };
    }
    const turn: TurnView = {
      // The step answers the history, so a retried request gets the same answer as the first.
      index: view.callsBefore,
      api,
      stream,
      tools: view.tools,
      results: view.results,
      at: Date.now() - started,
      tool(suffix) {
        // MCP tool names are sanitized by some agents (Codex: get-sum becomes get_sum).
        const wanted = [suffix, suffix.replaceAll("-", "_")];
        const found = view.tools.find((name) => wanted.some((tail) => name === tail || name.endsWith(`__${tail}`)));
        if (found === undefined) throw new Error(`the agent offered no tool ending in ${suffix} (offered: ${view.tools.join(", ")})`);
        return found;
      },
    };
    turns.push(turn);
    const step = script[turn.index];
    if (step === undefined) return { action: { say: finalText }, view };
    try {
      return { action: step(turn), view };
    } catch (error) {
      problems.push(`turn ${turn.index}: ${(error as Error).message}`);
      return { action: { say: `script stopped: ${(error as Error).message}` }, view };
    }
  };

  const usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };

  const chat = (response: ServerResponse, body: Json, action: ModelAction) => {
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = String(body.model);
    const call = "call" in action ? { id: `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`, name: action.call, arguments: JSON.stringify(action.arguments) } : undefined;
    if (body.stream !== true) {
      const message = call === undefined ? { role: "assistant", content: (action as { say: string }).say } : { role: "assistant", content: null, tool_calls: [{ id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } }] };
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ id, object: "chat.completion", created, model, choices: [{ index: 0, message, finish_reason: call === undefined ? "stop" : "tool_calls" }], usage }));
      return;
    }
    const chunk = (delta: Json, finish: string | null) => sse({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish }] });
    response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    response.write(chunk({ role: "assistant", content: "" }, null));
    if (call === undefined) {
      for (const word of (action as { say: string }).say.split(/(?<= )/)) response.write(chunk({ content: word }, null));
      response.write(chunk({}, "stop"));
    } else {
      // Arguments arrive in fragments, as real providers stream them.
      response.write(chunk({ tool_calls: [{ index: 0, id: call.id, type: "function", function: { name: call.name, arguments: "" } }] }, null));
      const middle = Math.ceil(call.arguments.length / 2);
      for (const fragment of [call.arguments.slice(0, middle), call.arguments.slice(middle)]) response.write(chunk({ tool_calls: [{ index: 0, function: { arguments: fragment } }] }, null));
      response.write(chunk({}, "tool_calls"));
    }
    if (isObject(body.stream_options) && body.stream_options.include_usage === true) response.write(sse({ id, object: "chat.completion.chunk", created, model, choices: [], usage }));
    response.end("data: [DONE]\n\n");
  };

  const responses = (response: ServerResponse, body: Json, action: ModelAction, view: RequestView) => {
    const id = `resp_${randomUUID().replaceAll("-", "")}`;
    const model = String(body.model);
    const base = { id, object: "response", created_at: Math.floor(Date.now() / 1000), model, status: "in_progress", output: [] as unknown[], usage: null as unknown };
    const responseUsage = { input_tokens: 10, input_tokens_details: { cached_tokens: 0 }, output_tokens: 5, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 15 };
    const item =
      "call" in action
        ? {
            id: `fc_${randomUUID().replaceAll("-", "")}`,
            type: "function_call",
            status: "completed",
            call_id: `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`,
            ...(view.namespaced.get(action.call) ?? { name: action.call }),
            arguments: JSON.stringify(action.arguments),
          }
        : { id: `msg_${randomUUID().replaceAll("-", "")}`, type: "message", status: "completed", role: "assistant", content: [{ type: "output_text", text: action.say, annotations: [] }] };
    const completed = { ...base, status: "completed", output: [item], usage: responseUsage };
    if (body.stream !== true) {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(completed));
      return;
    }
    let sequence = 0;
    const event = (type: string, data: Json) => sse({ type, sequence_number: sequence++, ...data }, type);
    response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    response.write(event("response.created", { response: base }));
    response.write(event("response.in_progress", { response: base }));
    if (item.type === "function_call") {
      const call = item as { id: string; arguments: string };
      response.write(event("response.output_item.added", { output_index: 0, item: { ...item, status: "in_progress", arguments: "" } }));
      const middle = Math.ceil(call.arguments.length / 2);
      for (const fragment of [call.arguments.slice(0, middle), call.arguments.slice(middle)]) response.write(event("response.function_call_arguments.delta", { item_id: call.id, output_index: 0, delta: fragment }));
      response.write(event("response.function_call_arguments.done", { item_id: call.id, output_index: 0, arguments: call.arguments }));
    } else {
      const text = (action as { say: string }).say;
      response.write(event("response.output_item.added", { output_index: 0, item: { ...item, status: "in_progress", content: [] } }));
      response.write(event("response.content_part.added", { item_id: item.id, output_index: 0, content_index: 0, part: { type: "output_text", text: "", annotations: [] } }));
      response.write(event("response.output_text.delta", { item_id: item.id, output_index: 0, content_index: 0, delta: text }));
      response.write(event("response.output_text.done", { item_id: item.id, output_index: 0, content_index: 0, text }));
      response.write(event("response.content_part.done", { item_id: item.id, output_index: 0, content_index: 0, part: { type: "output_text", text, annotations: [] } }));
    }
    response.write(event("response.output_item.done", { output_index: 0, item }));
    response.end(event("response.completed", { response: completed }));
  };

  const readBody = (request: IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      request.on("error", reject);
    });

  const server = http.createServer((request, response) => {
    void (async () => {
      headers.push(request.headers);
      const path = (request.url ?? "/").split("?")[0] ?? "/";
      if (request.headers.authorization !== `Bearer ${options.expectedKey}`) {
        problems.push(`${request.method ?? ""} ${path} without the provider key`);
        response.writeHead(401, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { message: "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key" } }));
        return;
      }
      if (request.method === "GET" && path.endsWith("/models")) {
        response.writeHead(200, { "content-type": "application/json" });
        response.end(JSON.stringify({ object: "list", data: [{ id: "scripted", object: "model", created: 0, owned_by: "stand-in" }] }));
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(await readBody(request));
      } catch {
        body = undefined;
      }
      const api: WireApi | undefined = path.endsWith("/chat/completions") ? "chat-completions" : path.endsWith("/responses") ? "responses" : undefined;
      if (request.method !== "POST" || api === undefined || !isObject(body)) {
        problems.push(`unexpected ${request.method ?? ""} ${path}`);
        response.writeHead(404, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { message: `Invalid URL (${request.method ?? ""} ${path})`, type: "invalid_request_error" } }));
        return;
      }
      const { action, view } = decide(api, body);
      if (api === "chat-completions") chat(response, body, action);
      else responses(response, body, action, view);
    })().catch((error: unknown) => {
      problems.push(`handler failed: ${String(error)}`);
      response.destroy();
    });
  });

  return {
    turns,
    sideQueries,
    headers,
    problems,
    setScript(next) {
      script = next;
    },
    listen: () =>
      new Promise((resolve) => {
        server.listen(0, "127.0.0.1", () => resolve({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` }));
      }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
