// The first stage of a request: the route, the virtual key, the body and the model. Each refusal here is recorded
// and answered (record.ts deny); a request that passes leaves as an AdmittedRequest naming its key, its parsed body
// and the provider/model it resolved to, with the runtime it was admitted under.
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { BodyTooLargeError, PerimeterError, bearerToken, readBoundedBody } from "../shared/index.ts";
import type { VirtualKey } from "./keys.ts";
import { deny, recordOutcome, sendError } from "./record.ts";
import { listAliases, listModelIds, modelAllowed, planWire, resolveModel } from "./routing.ts";
import type { ModelTarget } from "./routing.ts";
import type { LlmRuntime } from "./setup.ts";
import type { LlmExchange, LlmProxyState, RouteInfo } from "./state.ts";

export interface AdmittedRequest {
  readonly key: VirtualKey;
  readonly info: RouteInfo;
  readonly body: Record<string, unknown>;
  /** The provider/model the requested name resolved to: the first hop of the failover chain. */
  readonly target: ModelTarget;
  /** The configuration the request was admitted under; the later stages decide with it too. */
  readonly runtime: LlmRuntime;
}

/** The virtual key a request presents: `Authorization: Bearer` (OpenAI SDKs) or `x-api-key` (Anthropic SDKs). */
export function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const bearer = bearerToken(headers.authorization);
  if (bearer !== undefined) return bearer;
  const apiKey = headers["x-api-key"];
  return typeof apiKey === "string" && apiKey !== "" ? apiKey : undefined;
}

export type BodyRead = { ok: true; body: Buffer } | { ok: false; reason: "too-large" | "aborted" };

/** The whole body, or why not: larger than `limit` (declared or sent), or the client went away first. */
export async function readBody(request: IncomingMessage, limit: number): Promise<BodyRead> {
  try {
    return { ok: true, body: await readBoundedBody(request, { limit }) };
  } catch (error) {
    if (error instanceof BodyTooLargeError) return { ok: false, reason: "too-large" };
    if (error instanceof PerimeterError) return { ok: false, reason: "aborted" };
    throw error;
  }
}

/** A JSON object, or undefined for anything else (invalid JSON, an array, a scalar). */
export function parseJsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(body.toString("utf8"));
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The key of the request, or undefined once it is refused. */
async function authenticate(state: LlmProxyState, exchange: LlmExchange, request: IncomingMessage): Promise<VirtualKey | undefined> {
  const presented = presentedKey(request.headers);
  if (presented === undefined) {
    await deny(state, exchange, { kind: "unauthorized", detail: "send the virtual key as Authorization: Bearer <key> (or x-api-key)" });
    return undefined;
  }
  const authentication = state.keyStore.authenticate(presented);
  if (!authentication.ok) {
    await deny(state, exchange, { kind: "unauthorized", detail: "ask the operator for a key (perimeter llm-keys create)" });
    return undefined;
  }
  exchange.key = authentication.key;
  return authentication.key;
}

/** GET /v1/models: the models and aliases this key may use, in the flavor the SDK asks for. */
function listModels(state: LlmProxyState, exchange: LlmExchange, key: VirtualKey, anthropicStyle: boolean): void {
  const llm = state.runtime.llm;
  const ids = [
    ...listModelIds(llm).filter((id) => modelAllowed(llm, key.models, { target: { provider: id.slice(0, id.indexOf("/")), model: id.slice(id.indexOf("/") + 1) } }, state.globMatcher)),
    ...listAliases(llm)
      .filter(({ alias }) => {
        const resolution = resolveModel(llm, alias);
        return resolution.ok && modelAllowed(llm, key.models, resolution, state.globMatcher);
      })
      .map(({ alias }) => alias),
  ];
  const body = anthropicStyle
    ? { data: ids.map((id) => ({ type: "model", id, display_name: id, created_at: "1970-01-01T00:00:00Z" })), has_more: false, first_id: ids[0] ?? null, last_id: ids.at(-1) ?? null }
    : { object: "list", data: ids.map((id) => ({ id, object: "model", created: 0, owned_by: id.includes("/") ? id.slice(0, id.indexOf("/")) : "perimeter" })) };
  exchange.response.writeHead(200, { "content-type": "application/json", "x-perimeter-request-id": exchange.id });
  exchange.response.end(JSON.stringify(body));
}

/** The parsed JSON object of the body, or undefined once the request is refused (or its client has gone). */
async function readJsonBody(state: LlmProxyState, exchange: LlmExchange, request: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const read = await readBody(request, state.maxBodyBytes);
  if (!read.ok) {
    if (read.reason === "too-large") {
      exchange.response.setHeader("connection", "close");
      await deny(state, exchange, { kind: "payload-too-large", limitBytes: state.maxBodyBytes });
    } else {
      await recordOutcome(state, exchange, { decision: "error", reason: "client-disconnected", status: 499 });
    }
    return undefined;
  }
  const body = parseJsonObject(read.body);
  if (body === undefined) await deny(state, exchange, { kind: "bad-request", detail: "the request body must be a JSON object" });
  return body;
}

/** Resolves the requested model and checks the key may use it and its provider can serve the route. */
async function admitModel(state: LlmProxyState, exchange: LlmExchange, key: VirtualKey, info: RouteInfo, body: Record<string, unknown>): Promise<AdmittedRequest | undefined> {
  if (typeof body.model !== "string" || body.model === "") {
    await deny(state, exchange, { kind: "bad-request", detail: "model is required (provider/model or an alias such as default)", param: "model" });
    return undefined;
  }
  exchange.requested = body.model;
  exchange.stream = body.stream === true;
  const runtime = state.runtime;
  const llm = runtime.llm;
  const resolution = resolveModel(llm, body.model);
  if (!resolution.ok) {
    await deny(state, exchange, { kind: "model-not-found", model: body.model, detail: resolution.reason });
    return undefined;
  }
  exchange.provider = resolution.target.provider;
  exchange.upstreamModel = resolution.target.model;
  if (!modelAllowed(llm, key.models, resolution, state.globMatcher)) {
    await deny(state, exchange, { kind: "model-not-allowed", model: body.model });
    return undefined;
  }
  const providerKind = llm.providers[resolution.target.provider]?.kind ?? "openai";
  const firstPlan = planWire(info.route, providerKind);
  if (!firstPlan.ok) {
    await deny(state, exchange, { kind: "bad-request", param: "model", detail: `model ${body.model} is served by an ${providerKind} provider: ${firstPlan.reason}` });
    return undefined;
  }
  return { key, info, body, target: resolution.target, runtime };
}

/**
 * Admits a request to the proxy's routes: undefined once it has been answered (a refusal, or the models list).
 * `info` is the route of `relative` (undefined for /models and unknown paths).
 */
export async function admitRequest(state: LlmProxyState, exchange: LlmExchange, request: IncomingMessage, pathname: string, relative: string, info: RouteInfo | undefined): Promise<AdmittedRequest | undefined> {
  const isModels = relative === "/models" && request.method === "GET";
  if (info === undefined && !isModels) {
    sendError(exchange, { kind: "not-found", detail: `no route ${request.method} ${pathname}; llm-proxy serves POST /v1/chat/completions, /v1/responses, /v1/embeddings, /v1/messages and GET /v1/models` });
    return undefined;
  }
  if (info !== undefined && request.method !== "POST") {
    sendError(exchange, { kind: "bad-request", detail: `use POST for ${pathname}` });
    return undefined;
  }
  const key = await authenticate(state, exchange, request);
  if (key === undefined) return undefined;
  if (info === undefined) {
    listModels(state, exchange, key, typeof request.headers["anthropic-version"] === "string");
    return undefined;
  }
  const body = await readJsonBody(state, exchange, request);
  if (body === undefined) return undefined;
  return admitModel(state, exchange, key, info, body);
}
