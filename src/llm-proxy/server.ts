// The llm-proxy HTTP server: a thin adapter over the pure decisions (routing.ts, dlp.ts, limits.ts) and the upstream
// dialer. Provider keys live here and nowhere in the agent: the agent holds a virtual key, the proxy checks it,
// redacts secrets from the prompt, reserves the worst-case cost, and relays the provider's answer chunk by chunk.
import http from "node:http";
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { AddressInfo } from "node:net";
import { placeholdersIn, readSecret, requireSecrets, secretValues } from "../config/index.ts";
import type { Environment, PerimeterConfig } from "../config/index.ts";
import { cachingResolver, systemResolver } from "../net/index.ts";
import type { Resolver } from "../net/index.ts";
import { closeAfterAnswerIfBodyUnread, silentLogger, stopReadingBody } from "../shared/index.ts";
import type { Logger } from "../shared/index.ts";
import { createAuditRecorder } from "../audit-log/index.ts";
import type { AuditRecorder, RecorderLog } from "../audit-log/index.ts";
import { UnscannableBodyError, createSecretScanner, inspectRequestBody } from "./dlp.ts";
import { MIN_SECRET_LENGTH } from "../dlp/index.ts";
import type { DlpHit, KnownSecret, SecretScanner } from "./dlp.ts";
import { errorReason, errorResponse, upstreamErrorDetails } from "./errors.ts";
import type { ApiFlavor, ProxyError } from "./errors.ts";
import type { LlmKeyStore, VirtualKey } from "./keys.ts";
import { createUsageLedger } from "./limits.ts";
import type { Reservation, UsageLedger } from "./limits.ts";
import { createLlmProxyMetrics } from "./metrics.ts";
import type { LlmProxyMetrics } from "./metrics.ts";
import { createGlobMatcher, failoverChain, listAliases, listModelIds, modelAllowed, planWire, resolveModel } from "./routing.ts";
import type { LlmSection, ModelTarget, ProviderKind } from "./routing.ts";
import { TranslationError, chatRequestToMessages, createAnswerTranslator, messagesRequestToChat, translatedErrorStatus } from "./translate.ts";
import type { AnswerTranslator, Translation } from "./translate.ts";
import { costOf, createSseSplitter, createStreamUsageTracker, estimatePromptTokens, maxOutputTokens, usageFromTail, usageIn } from "./usage.ts";
import type { Route } from "./usage.ts";
import { createUpstreamDialer } from "./upstream.ts";
import type { UpstreamDialer, UpstreamProvider } from "./upstream.ts";

export interface LlmProxyDependencies {
  /** The proxy's environment: provider keys, client keys and canary values are read from it at start. */
  readonly environment: Environment;
  readonly keyStore: LlmKeyStore;
  /** The audit log (src/audit-log): a request's decision is committed before it goes to a provider. */
  readonly audit: RecorderLog;
  readonly resolver?: Resolver;
  /** Explicit exceptions to the SSRF deny set for every provider (tests use it to reach a loopback stand-in). */
  readonly allowCidrs?: readonly string[];
  /** Extra CA certificates trusted for provider TLS. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** @default 32 MiB (base64 images make large prompts) */
  readonly maxBodyBytes?: number;
}

export interface LlmProxy {
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then cuts them. */
  close(graceMs?: number): Promise<void>;
  /** Applies a new configuration (providers, aliases, clients, DLP); the old one stays if the new one is invalid. */
  reload(config: PerimeterConfig): void;
  readonly metrics: LlmProxyMetrics;
}

/** A configuration the proxy cannot run with, with what to change. */
export class LlmProxySetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LlmProxySetupError";
  }
}

interface RouteInfo {
  readonly route: Route;
  readonly flavor: ApiFlavor;
}

// Where a route goes upstream depends on the provider's kind (routing.ts planWire), not on the route alone.
const ROUTES: Readonly<Record<string, RouteInfo>> = {
  "/chat/completions": { route: "chat-completions", flavor: "openai" },
  "/responses": { route: "responses", flavor: "openai" },
  "/embeddings": { route: "embeddings", flavor: "openai" },
  "/messages": { route: "messages", flavor: "anthropic" },
};

const MAX_JSON_KEPT = 8 * 1024 * 1024;
const TAIL_KEPT = 64 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
const RELAYED_HEADERS = ["content-type", "cache-control", "x-request-id", "request-id", "openai-processing-ms", "openai-version", "retry-after"];

interface Runtime {
  readonly config: PerimeterConfig;
  readonly llm: LlmSection;
  readonly providers: ReadonlyMap<string, UpstreamProvider>;
  readonly scanner: SecretScanner;
  readonly dlpMode: "redact" | "block";
}

/** Every secret name the configuration references, labelled by what it is (names are safe to log; values never). */
function referencedSecrets(config: PerimeterConfig): Array<{ name: string; label: string }> {
  const names: Array<{ name: string; label: string }> = [];
  const add = (name: string | undefined, label: string) => {
    if (name !== undefined) names.push({ name, label: `${label} ${name}` });
  };
  for (const provider of Object.values(config.llm.providers)) add(provider.apiKeySecret, "provider key");
  for (const client of config.llm.clients) add(client.keySecret, "client key");
  for (const canary of config.llm.canaries) add(canary, "canary");
  for (const platform of Object.values(config.agent.platforms)) {
    add(platform?.tokenSecret, "secret");
    for (const extra of platform?.extraSecrets ?? []) add(extra, "secret");
  }
  add(config.agent.apiServer.keySecret, "secret");
  add(config.mcp.admin.tokenSecret, "secret");
  for (const agent of config.mcp.agents) add(agent.tokenSecret, "secret");
  for (const server of Object.values(config.mcp.servers)) {
    for (const name of server.secrets) add(name, "secret");
    for (const value of [...Object.values(server.headers), ...Object.values(server.env)]) for (const name of placeholdersIn(value)) add(name, "secret");
  }
  add(config.sandbox.tokenSecret, "secret");
  for (const client of config.egress.clients) add(client.tokenSecret, "secret");
  return names;
}

/** Validates the `llm` section against the environment and builds what requests need. Throws on any problem. */
export function buildRuntime(config: PerimeterConfig, environment: Environment): Runtime {
  // A failover to a provider of the other kind is valid: chat completions and messages are translated (translate.ts).
  // Every unset variable in one error, so the operator fixes them in one round rather than one per failed start.
  requireSecrets(environment, [
    ...Object.entries(config.llm.providers).flatMap(([name, provider]) => (provider.apiKeySecret === undefined ? [] : [{ name: provider.apiKeySecret, usedFor: `llm-proxy provider ${name}` }])),
    ...config.llm.canaries.map((canary) => ({ name: canary, usedFor: "llm-proxy (llm.canaries)" })),
    ...config.llm.clients.map((client) => ({ name: client.keySecret, usedFor: `llm-proxy client ${client.name}` })),
  ]);
  const providers = new Map<string, UpstreamProvider>();
  for (const [name, provider] of Object.entries(config.llm.providers)) {
    const apiKey = provider.apiKeySecret === undefined ? undefined : readSecret(environment, provider.apiKeySecret, `llm-proxy provider ${name}`);
    providers.set(name, { name, config: provider, apiKey });
  }
  // A canary the proxy cannot see is a protection silently switched off: refuse to start instead.
  for (const canary of config.llm.canaries) {
    // The scanner ignores values this short (they would match ordinary words), so such a canary would guard nothing.
    if (readSecret(environment, canary, "llm-proxy (llm.canaries)").length < MIN_SECRET_LENGTH) {
      throw new LlmProxySetupError(`llm.canaries: the value of ${canary} is too short to be recognised; a canary needs at least ${MIN_SECRET_LENGTH} characters (plant a random one, e.g. openssl rand -hex 16)`);
    }
  }
  for (const client of config.llm.clients) readSecret(environment, client.keySecret, `llm-proxy client ${client.name}`);
  const known: KnownSecret[] = [];
  const seen = new Set<string>();
  for (const { name, label } of referencedSecrets(config)) {
    if (seen.has(name)) continue;
    seen.add(name);
    for (const value of secretValues(environment, [name])) known.push({ label, value });
  }
  return { config, llm: config.llm, providers, scanner: createSecretScanner(known), dlpMode: config.llm.dlp.mode };
}

/** The `llm.clients` keys with their values, for the key store. */
export function configClientKeys(config: PerimeterConfig, environment: Environment) {
  return config.llm.clients.map((client) => ({
    name: client.name,
    value: readSecret(environment, client.keySecret, `llm-proxy client ${client.name}`),
    policy: { models: client.models, limits: client.limits, budget: client.budget },
  }));
}

interface Exchange {
  readonly id: string;
  readonly started: number;
  readonly route: string;
  readonly flavor: ApiFlavor;
  key?: VirtualKey;
  requested?: string;
  provider?: string;
  upstreamModel?: string;
  /** Set while the provider tried speaks the other wire format than the agent's route. */
  translation?: Translation;
  stream: boolean;
  dlpHits: DlpHit[];
  failovers: string[];
  clientGone: boolean;
  upstreamRequest?: ClientRequest;
  response: ServerResponse;
  /** The seq of the committed decision to forward, once there is one: the outcome's record settles it. */
  decisionSeq?: number | null;
}

interface Outcome {
  readonly decision: "allow" | "deny" | "error";
  readonly reason: string;
  readonly status: number;
  readonly tokensIn?: number;
  readonly tokensOut?: number;
  readonly usageSource?: "provider" | "reserved" | "none";
  readonly cost?: number;
  readonly firstChunkMs?: number;
}

function bearerKey(headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers.authorization;
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match !== null) return match[1];
  }
  const apiKey = headers["x-api-key"];
  return typeof apiKey === "string" && apiKey !== "" ? apiKey : undefined;
}

function readBody(request: IncomingMessage, limit: number): Promise<{ ok: true; body: Buffer } | { ok: false; reason: "too-large" | "aborted" }> {
  return new Promise((resolve) => {
    const declared = Number(request.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      resolve({ ok: false, reason: "too-large" });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    request.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        resolve({ ok: false, reason: "too-large" });
        return;
      }
      chunks.push(chunk);
    });
    request.on("end", () => {
      if (done) return;
      done = true;
      resolve({ ok: true, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks) });
    });
    request.on("error", () => {
      if (done) return;
      done = true;
      resolve({ ok: false, reason: "aborted" });
    });
    request.on("close", () => {
      if (done) return;
      done = true;
      resolve({ ok: false, reason: "aborted" });
    });
  });
}

function upstreamHeaders(kind: ProviderKind, provider: UpstreamProvider, incoming: IncomingHttpHeaders, length: number, stream: boolean): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    "content-type": "application/json",
    "content-length": length,
    accept: stream ? "text/event-stream" : "application/json",
    // We read usage from the body, so ask for it uncompressed.
    "accept-encoding": "identity",
    "user-agent": "perimeter-llm-proxy/0.1",
  };
  if (kind === "anthropic") {
    if (provider.apiKey !== undefined) headers["x-api-key"] = provider.apiKey;
    headers["anthropic-version"] = typeof incoming["anthropic-version"] === "string" ? incoming["anthropic-version"] : "2023-06-01";
    if (typeof incoming["anthropic-beta"] === "string") headers["anthropic-beta"] = incoming["anthropic-beta"];
  } else {
    if (provider.apiKey !== undefined) headers.authorization = `Bearer ${provider.apiKey}`;
    if (typeof incoming["openai-beta"] === "string") headers["openai-beta"] = incoming["openai-beta"];
  }
  return headers;
}

function readLimited(stream: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = () => resolve(Buffer.concat(chunks).toString("utf8"));
    stream.on("data", (chunk: Buffer) => {
      if (size < limit) chunks.push(chunk.subarray(0, limit - size));
      size += chunk.length;
    });
    stream.on("end", finish);
    stream.on("error", finish);
    stream.on("close", finish);
  });
}

/** An error in the stream's own format, so an SDK reading SSE raises it instead of seeing a silent truncation. */
function streamErrorEvent(flavor: ApiFlavor, message: string): string {
  if (flavor === "anthropic") return `event: error\ndata: ${JSON.stringify({ type: "error", error: { type: "api_error", message } })}\n\n`;
  return `data: ${JSON.stringify({ error: { message, type: "server_error", param: null, code: "upstream_stream_broken" } })}\n\n`;
}

interface RelayResult {
  readonly complete: boolean;
  readonly usage: { input?: number; output?: number };
  readonly firstChunkAt: number | undefined;
}

export function createLlmProxy(config: PerimeterConfig, dependencies: LlmProxyDependencies): LlmProxy {
  const logger = dependencies.logger ?? silentLogger();
  const now = dependencies.now ?? Date.now;
  const maxBodyBytes = dependencies.maxBodyBytes ?? 32 * 1024 * 1024;
  const metrics = createLlmProxyMetrics();
  const globMatcher = createGlobMatcher();
  const keyStore = dependencies.keyStore;
  let runtime = buildRuntime(config, dependencies.environment);
  keyStore.syncConfigClients(configClientKeys(config, dependencies.environment));
  const ledger: UsageLedger = createUsageLedger(keyStore, now);
  const recorder: AuditRecorder = createAuditRecorder(dependencies.audit, { component: "llm-proxy", logger, onFailure: () => metrics.auditFailures.inc() });
  const dialer: UpstreamDialer = createUpstreamDialer({
    resolver: dependencies.resolver ?? cachingResolver(systemResolver()),
    ...(dependencies.allowCidrs === undefined ? {} : { allowCidrs: dependencies.allowCidrs }),
    ...(dependencies.ca === undefined ? {} : { ca: dependencies.ca }),
  });

  /** What every record of a request says about it (the model name is the agent's text: redacted like a prompt). */
  const describe = (exchange: Exchange) => ({
    requestId: exchange.id,
    route: exchange.route,
    client: exchange.key?.client ?? null,
    keyId: exchange.key?.id ?? null,
    model: exchange.requested === undefined ? null : runtime.scanner.redact(exchange.requested).text.slice(0, 256),
    provider: exchange.provider ?? null,
    upstreamModel: exchange.upstreamModel ?? null,
    ...(exchange.translation === undefined ? {} : { translation: exchange.translation }),
    stream: exchange.stream,
    dlpHits: exchange.dlpHits.map((hit) => ({ kind: hit.kind, location: hit.location })),
  });

  /**
   * Commits the decision to forward (an `llm-request` record, decision allow) before anything goes to a provider.
   * False when it cannot be committed: the request is then refused (fail closed).
   */
  const commitDecision = async (exchange: Exchange, reserved: { tokens: number; cost: number }): Promise<boolean> => {
    try {
      const record = await recorder.record({ type: "llm-request", ...describe(exchange), decision: "allow", reason: "forwarding", reservedTokens: reserved.tokens, reservedCost: reserved.cost });
      // Null only from a sink that keeps no records (tests): the request is decided all the same.
      exchange.decisionSeq = record?.seq ?? null;
      return true;
    } catch {
      return false;
    }
  };

  /**
   * Records how a request ended, resolving once the record is committed (false when it could not be). A forwarded
   * request's outcome settles its committed decision (`llm-response`, naming it by `decisionSeq`: status, usage,
   * cost); the answer streams to the agent meanwhile, but its end waits for this commit (a failed one cuts it). A
   * request refused or failed before a decision to forward is one `llm-request` record, committed before the refusal
   * is answered (its failure is logged whole and turns /healthz unhealthy; the refusal stands).
   */
  const finish = (exchange: Exchange, outcome: Outcome): Promise<boolean> => {
    const latencyMs = Math.round((performance.now() - exchange.started) * 1000) / 1000;
    metrics.requests.inc({ route: exchange.route, decision: outcome.decision, reason: outcome.reason.split(":")[0] ?? outcome.reason });
    metrics.duration.observe({ route: exchange.route, provider: exchange.provider ?? "none" }, latencyMs / 1000);
    if (exchange.provider !== undefined && (outcome.tokensIn ?? 0) + (outcome.tokensOut ?? 0) > 0) {
      metrics.tokens.inc({ provider: exchange.provider, direction: "input" }, outcome.tokensIn ?? 0);
      metrics.tokens.inc({ provider: exchange.provider, direction: "output" }, outcome.tokensOut ?? 0);
      if ((outcome.cost ?? 0) > 0) metrics.cost.inc({ provider: exchange.provider }, outcome.cost ?? 0);
    }
    const result = {
      decision: outcome.decision,
      reason: outcome.reason,
      status: outcome.status,
      tokensIn: outcome.tokensIn ?? 0,
      tokensOut: outcome.tokensOut ?? 0,
      usageSource: outcome.usageSource ?? "none",
      cost: outcome.cost ?? 0,
      latencyMs,
      ...(outcome.firstChunkMs === undefined ? {} : { firstChunkMs: Math.round(outcome.firstChunkMs * 1000) / 1000 }),
      ...(exchange.failovers.length > 0 ? { failovers: exchange.failovers } : {}),
      ...(exchange.clientGone ? { cancelled: true } : {}),
    };
    if (exchange.decisionSeq === undefined) return recorder.refusal({ type: "llm-request", ...describe(exchange), ...result }).then(() => true);
    const settlement = { type: "llm-response", requestId: exchange.id, decisionSeq: exchange.decisionSeq, provider: exchange.provider ?? null, upstreamModel: exchange.upstreamModel ?? null, ...(exchange.translation === undefined ? {} : { translation: exchange.translation }), ...result };
    return new Promise((resolve) => recorder.commit(settlement, (error) => resolve(error === null)));
  };

  const sendError = (exchange: Exchange, error: ProxyError) => {
    const mapped = errorResponse(error, exchange.flavor);
    const response = exchange.response;
    if (!response.headersSent && !response.destroyed) {
      // Refused before its body was read (no route, no key, a bad key...): the body is never read (src/shared/refusal.ts).
      closeAfterAnswerIfBodyUnread(response);
      response.writeHead(mapped.status, { ...mapped.headers, "x-perimeter-request-id": exchange.id });
      response.end(mapped.body);
    }
    return mapped.status;
  };

  /** Refuses a request before anything went upstream: its record is committed, then the refusal is answered. */
  const deny = async (exchange: Exchange, error: ProxyError): Promise<void> => {
    // Stop reading an unread body now, not only once the answer is sent: the commit takes a turn or more.
    stopReadingBody(exchange.response.req);
    await finish(exchange, { decision: "deny", reason: errorReason(error), status: errorResponse(error, exchange.flavor).status });
    sendError(exchange, error);
  };

  const listModels = (exchange: Exchange, key: VirtualKey, anthropicStyle: boolean) => {
    const llm = runtime.llm;
    const ids = [
      ...listModelIds(llm).filter((id) => modelAllowed(llm, key.models, { target: { provider: id.slice(0, id.indexOf("/")), model: id.slice(id.indexOf("/") + 1) } }, globMatcher)),
      ...listAliases(llm)
        .filter(({ alias }) => {
          const resolution = resolveModel(llm, alias);
          return resolution.ok && modelAllowed(llm, key.models, resolution, globMatcher);
        })
        .map(({ alias }) => alias),
    ];
    const body = anthropicStyle
      ? { data: ids.map((id) => ({ type: "model", id, display_name: id, created_at: "1970-01-01T00:00:00Z" })), has_more: false, first_id: ids[0] ?? null, last_id: ids.at(-1) ?? null }
      : { object: "list", data: ids.map((id) => ({ id, object: "model", created: 0, owned_by: id.includes("/") ? id.slice(0, id.indexOf("/")) : "perimeter" })) };
    exchange.response.writeHead(200, { "content-type": "application/json", "x-perimeter-request-id": exchange.id });
    exchange.response.end(JSON.stringify(body));
  };

  /**
   * Relays a 2xx answer chunk by chunk, reading usage on the way (always from the provider's own events). With a
   * translator the agent gets its own wire format instead: SSE event by event, a JSON answer once it is whole.
   */
  const relay = (exchange: Exchange, upstream: IncomingMessage, stripUsageChunk: boolean, translator?: AnswerTranslator): Promise<RelayResult> =>
    new Promise((resolve) => {
      const response = exchange.response;
      const headers: OutgoingHttpHeaders = { "x-perimeter-request-id": exchange.id };
      for (const name of RELAYED_HEADERS) {
        const value = upstream.headers[name];
        if (value !== undefined) headers[name] = value;
      }
      const contentType = String(upstream.headers["content-type"] ?? "");
      // We ask for identity; a provider that compresses anyway is relayed byte for byte, unparsed (usage: reserved).
      const encoding = upstream.headers["content-encoding"];
      const encoded = encoding !== undefined && encoding !== "identity";
      if (encoded && translator === undefined) headers["content-encoding"] = encoding;
      const sse = contentType.includes("text/event-stream") && !encoded;
      // A translated answer is ours: its type is the agent's format's, and its length is known only once written.
      if (translator !== undefined) headers["content-type"] = sse ? "text/event-stream; charset=utf-8" : "application/json";
      if (sse) headers["cache-control"] = "no-cache";
      // A JSON body is relayed unchanged, so its length holds (and spares the chunked terminator's extra write).
      else if (translator === undefined && upstream.headers["content-length"] !== undefined && upstream.headers["transfer-encoding"] === undefined) headers["content-length"] = upstream.headers["content-length"];
      // A JSON answer to translate is held until it is whole (bounded by MAX_JSON_KEPT): its head waits with it.
      const buffered = translator !== undefined && !sse;
      if (!buffered) response.writeHead(upstream.statusCode ?? 200, headers);
      let firstChunkAt: number | undefined;
      let resolved = false;
      const splitter = sse ? createSseSplitter() : undefined;
      const tracker = sse ? createStreamUsageTracker() : undefined;
      let kept: Buffer[] | undefined = [];
      let keptBytes = 0;
      const recent: Buffer[] = [];
      let recentBytes = 0;

      let paused = false;
      const write = (data: string | Buffer) => {
        if (data.length === 0 || response.destroyed) return;
        firstChunkAt ??= performance.now();
        // Backpressure: a slow agent slows the provider down instead of filling our memory.
        if (!response.write(data) && !paused) {
          paused = true;
          upstream.pause();
          response.once("drain", () => {
            paused = false;
            upstream.resume();
          });
        }
      };
      const forwardEvents = (events: ReturnType<NonNullable<typeof splitter>["push"]>) => {
        let out = "";
        for (const event of events) {
          const { usageOnlyChunk } = (tracker as NonNullable<typeof tracker>).observe(event);
          if (translator !== undefined) {
            out += translator.event(event);
            continue;
          }
          if (usageOnlyChunk && stripUsageChunk) continue;
          out += event.raw;
        }
        write(out);
      };
      const jsonUsage = (): { input?: number; output?: number } => {
        if (encoded) return {};
        // Every format puts the top-level usage object last: read it from the tail, parse the whole body otherwise.
        const last = recent.at(-1);
        if (last !== undefined) {
          const fromTail = usageFromTail(last.subarray(Math.max(0, last.length - 4096)).toString("utf8"));
          if (fromTail.input !== undefined) return fromTail;
        }
        if (kept !== undefined) {
          try {
            return usageIn(JSON.parse(Buffer.concat(kept).toString("utf8")));
          } catch {
            return {};
          }
        }
        return usageFromTail(Buffer.concat(recent).toString("utf8"));
      };
      const done = (complete: boolean) => {
        if (resolved) return;
        resolved = true;
        resolve({ complete, usage: tracker !== undefined ? tracker.usage() : complete ? jsonUsage() : {}, firstChunkAt });
      };

      upstream.on("data", (chunk: Buffer) => {
        if (splitter !== undefined) {
          forwardEvents(splitter.push(chunk));
          return;
        }
        if (!buffered) write(chunk);
        if (encoded && !buffered) return;
        if (kept !== undefined) {
          if (keptBytes + chunk.length <= MAX_JSON_KEPT) {
            kept.push(chunk);
            keptBytes += chunk.length;
          } else {
            kept = undefined;
          }
        }
        recent.push(chunk);
        recentBytes += chunk.length;
        while (recent.length > 1 && recentBytes - (recent[0] as Buffer).length >= TAIL_KEPT) recentBytes -= (recent.shift() as Buffer).length;
      });
      /** A translated JSON answer the proxy could not produce: a 502 in the agent's format, never a half answer. */
      const untranslatable = (detail: string) => {
        if (!response.headersSent && !response.destroyed) {
          const mapped = errorResponse({ kind: "upstream-error", provider: exchange.provider ?? "", status: 502, message: `its answer could not be translated to the format you called: ${detail}` }, exchange.flavor);
          response.writeHead(mapped.status, { ...mapped.headers, "x-perimeter-request-id": exchange.id });
          response.end(mapped.body);
        }
        done(false);
      };
      upstream.on("end", () => {
        if (splitter !== undefined) forwardEvents(splitter.end());
        if (translator !== undefined && sse) {
          write(translator.end());
          if (!translator.complete()) {
            // The provider sent an error event or stopped early: the agent has the error in its own format.
            if (!response.destroyed) response.end();
            done(false);
            return;
          }
        }
        if (buffered) {
          let text: string;
          try {
            if (kept === undefined) throw new TranslationError(`it is larger than ${MAX_JSON_KEPT} bytes`);
            text = (translator as AnswerTranslator).json(Buffer.concat(kept).toString("utf8"));
          } catch (error) {
            untranslatable(error instanceof TranslationError ? error.message : "it is not what the provider's format promises");
            return;
          }
          headers["content-length"] = Buffer.byteLength(text);
          response.writeHead(upstream.statusCode ?? 200, headers);
          write(text);
        }
        // The answer's end is the caller's: it waits for the outcome's record (see finish).
        done(true);
      });
      const broken = () => {
        if (resolved) return;
        if (buffered) {
          untranslatable("the provider closed the connection before its answer was complete");
          return;
        }
        if (!exchange.clientGone && !response.destroyed) {
          // The provider went away mid-answer: say so in the stream's format, or cut a JSON body (never end it cleanly).
          if (sse) {
            response.end(streamErrorEvent(exchange.flavor, `provider ${exchange.provider ?? ""} closed the stream before it was complete`));
          } else {
            response.destroy();
          }
        }
        done(false);
      };
      upstream.on("error", broken);
      upstream.on("close", () => {
        if (!upstream.complete) broken();
      });
    });

  const forward = async (
    exchange: Exchange,
    info: RouteInfo,
    body: Record<string, unknown>,
    translated: ReadonlyMap<Translation, Record<string, unknown>>,
    chain: ModelTarget[],
    reservation: Reservation,
    worstInput: number,
    worstOutput: number,
  ) => {
    const stream = body.stream === true && info.route !== "embeddings";
    exchange.stream = stream;
    let stripUsageChunk = false;
    if (stream && info.route === "chat-completions") {
      // Ask for usage in the last chunk so budgets settle on real numbers; hide that chunk if the agent did not ask.
      const existing = typeof body.stream_options === "object" && body.stream_options !== null ? (body.stream_options as Record<string, unknown>) : {};
      stripUsageChunk = existing.include_usage !== true;
      body.stream_options = { ...existing, include_usage: true };
    }
    const settleWith = (provider: UpstreamProvider | undefined, tokensIn: number, tokensOut: number) => {
      const cost = provider === undefined ? 0 : costOf({ input: tokensIn, output: tokensOut }, provider.config.costPer1kTokens);
      ledger.settle(reservation, { tokensIn, tokensOut, cost });
      return cost;
    };

    let lastError: ProxyError | undefined;
    for (let index = 0; index < chain.length; index++) {
      if (exchange.clientGone) {
        // The agent left before anything was sent: send nothing, charge nothing.
        settleWith(undefined, 0, 0);
        void finish(exchange, { decision: "error", reason: "client-disconnected", status: 499 });
        return;
      }
      const target = chain[index] as ModelTarget;
      const provider = runtime.providers.get(target.provider);
      if (provider === undefined) {
        lastError = { kind: "internal", detail: `provider ${target.provider} vanished on reload` };
        continue;
      }
      if (index > 0) {
        exchange.failovers.push(`${chain[index - 1]?.provider}->${target.provider}`);
        metrics.failovers.inc({ from: chain[index - 1]?.provider ?? "", to: target.provider });
      }
      exchange.provider = target.provider;
      exchange.upstreamModel = target.model;
      // serve() keeps only hops whose wire plan holds and whose translation (if any) is prepared and scanned.
      const plan = planWire(info.route, provider.config.kind);
      if (!plan.ok || (plan.translation !== undefined && !translated.has(plan.translation))) {
        lastError = { kind: "internal", detail: `provider ${target.provider} changed its kind on reload` };
        continue;
      }
      if (plan.translation === undefined) delete exchange.translation;
      else exchange.translation = plan.translation;
      const outgoing = plan.translation === undefined ? body : (translated.get(plan.translation) as Record<string, unknown>);
      outgoing.model = target.model;
      const payload = JSON.stringify(outgoing);
      const outcome = await dialer.send({
        provider,
        path: plan.upstreamPath,
        headers: upstreamHeaders(provider.config.kind, provider, exchange.response.req.headers, Buffer.byteLength(payload), stream),
        body: payload,
        onRequest: (request) => {
          exchange.upstreamRequest = request;
        },
      });
      if (exchange.clientGone) {
        if (outcome.ok) outcome.response.destroy();
        metrics.upstreamCancelled.inc({ provider: provider.name });
        // The provider may have started work: charge what was reserved.
        const cost = outcome.ok ? settleWith(provider, worstInput, worstOutput) : settleWith(provider, 0, 0);
        void finish(exchange, { decision: "error", reason: "client-disconnected", status: 499, ...(outcome.ok ? { tokensIn: worstInput, tokensOut: worstOutput, usageSource: "reserved", cost } : {}) });
        return;
      }
      const hasNext = index + 1 < chain.length;
      if (!outcome.ok) {
        lastError = outcome.error;
        logger.warn({ requestId: exchange.id, provider: provider.name, error: errorReason(outcome.error) }, "upstream-request failed");
        if (outcome.retryable && hasNext) continue;
        break;
      }
      const upstream = outcome.response;
      const status = upstream.statusCode ?? 502;
      if (status >= 500 && hasNext) {
        upstream.resume();
        lastError = { kind: "upstream-error", provider: provider.name, status, message: "server error" };
        continue;
      }
      if (status >= 400 || status < 200) {
        const text = await readLimited(upstream, MAX_ERROR_BODY);
        const details = upstreamErrorDetails(text);
        // Translated: the other API's error type means nothing to the agent's SDK, so the status decides the type
        // and the provider's own type stays readable in the message.
        const error: ProxyError =
          plan.translation === undefined
            ? {
                kind: "upstream-error",
                provider: provider.name,
                status,
                message: runtime.scanner.redact(details.message).text,
                ...(details.type === undefined ? {} : { upstreamType: details.type }),
                ...(details.code === undefined ? {} : { upstreamCode: details.code }),
              }
            : {
                kind: "upstream-error",
                provider: provider.name,
                status: translatedErrorStatus(status, plan.translation),
                message: runtime.scanner.redact(`${details.message}${details.type === undefined ? "" : ` (${details.type})`}`).text,
              };
        settleWith(provider, 0, 0);
        const mapped = errorResponse(error, exchange.flavor);
        const retryAfter = upstream.headers["retry-after"];
        await finish(exchange, { decision: "error", reason: errorReason(error), status: mapped.status });
        if (!exchange.response.headersSent && !exchange.response.destroyed) {
          exchange.response.writeHead(mapped.status, { ...mapped.headers, ...(retryAfter === undefined ? {} : { "retry-after": retryAfter }), "x-perimeter-request-id": exchange.id });
          exchange.response.end(mapped.body);
        }
        return;
      }
      const translator =
        plan.translation === undefined ? undefined : createAnswerTranslator(plan.translation, { includeUsage: stream && !stripUsageChunk, redact: (text) => runtime.scanner.redact(text).text, now });
      const result = await relay(exchange, upstream, stripUsageChunk, translator);
      if (exchange.clientGone) metrics.upstreamCancelled.inc({ provider: provider.name });
      const firstChunkMs = result.firstChunkAt === undefined ? undefined : result.firstChunkAt - exchange.started;
      if (firstChunkMs !== undefined && stream) metrics.timeToFirstToken.observe({ provider: provider.name }, firstChunkMs / 1000);
      const reported = result.complete && result.usage.input !== undefined && result.usage.output !== undefined;
      // Without the provider's numbers (a cut stream, a provider that reports none) the reservation is charged.
      const tokensIn = reported ? (result.usage.input as number) : (result.usage.input ?? worstInput);
      const tokensOut = reported ? (result.usage.output as number) : worstOutput;
      const cost = settleWith(provider, tokensIn, tokensOut);
      const recorded = await finish(exchange, {
        decision: result.complete ? "allow" : "error",
        reason: result.complete ? "ok" : exchange.clientGone ? "client-disconnected" : "upstream-stream-broken",
        status: result.complete ? status : exchange.clientGone ? 499 : 502,
        tokensIn,
        tokensOut,
        usageSource: reported ? "provider" : "reserved",
        cost,
        ...(firstChunkMs === undefined ? {} : { firstChunkMs }),
      });
      const response = exchange.response;
      if (result.complete && !response.destroyed) {
        // The agent has every byte but the end: a complete answer ends only once its outcome is on record.
        if (recorded) response.end();
        else response.destroy();
      }
      return;
    }
    settleWith(undefined, 0, 0);
    const error = lastError ?? { kind: "internal", detail: "no provider to try" };
    await finish(exchange, { decision: "error", reason: errorReason(error), status: errorResponse(error, exchange.flavor).status });
    sendError(exchange, error);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const pathname = (request.url ?? "/").split("?")[0] ?? "/";
    if (pathname === "/healthz") {
      const healthy = recorder.healthy();
      response.writeHead(healthy ? 200 : 503, { "content-type": "application/json" });
      response.end(JSON.stringify({ status: healthy ? "ok" : "audit-unavailable" }));
      return;
    }
    if (pathname === "/metrics" && request.method === "GET") {
      const text = await metrics.registry.metrics();
      response.writeHead(200, { "content-type": metrics.registry.contentType });
      response.end(text);
      return;
    }
    const relative = pathname.startsWith("/v1/") ? pathname.slice(3) : pathname;
    const info = ROUTES[relative];
    const flavor: ApiFlavor = info?.flavor ?? "openai";
    const exchange: Exchange = { id: randomUUID(), started: performance.now(), route: info?.route ?? (relative === "/models" ? "models" : "unknown"), flavor, stream: false, dlpHits: [], failovers: [], clientGone: false, response };
    response.on("close", () => {
      if (!response.writableFinished) {
        exchange.clientGone = true;
        exchange.upstreamRequest?.destroy();
      }
    });
    try {
      await serve(exchange, request, relative, info);
    } catch (error) {
      // A bug in one request must not take the server down, and the request is still recorded.
      logger.error({ err: (error as Error).stack ?? String(error), requestId: exchange.id }, "llm-request crashed");
      if (!response.headersSent) sendError(exchange, { kind: "internal", detail: "see the llm-proxy logs" });
      else response.destroy();
      void finish(exchange, { decision: "error", reason: "internal", status: 500 });
    }
  };

  const serve = async (exchange: Exchange, request: IncomingMessage, relative: string, info: RouteInfo | undefined) => {
    const response = exchange.response;
    const pathname = (request.url ?? "/").split("?")[0] ?? "/";
    const isModels = relative === "/models" && request.method === "GET";
    if (info === undefined && !isModels) {
      sendError(exchange, { kind: "not-found", detail: `no route ${request.method} ${pathname}; llm-proxy serves POST /v1/chat/completions, /v1/responses, /v1/embeddings, /v1/messages and GET /v1/models` });
      return;
    }
    if (info !== undefined && request.method !== "POST") {
      sendError(exchange, { kind: "bad-request", detail: `use POST for ${pathname}` });
      return;
    }

    const presented = bearerKey(request.headers);
    if (presented === undefined) {
      await deny(exchange, { kind: "unauthorized", detail: "send the virtual key as Authorization: Bearer <key> (or x-api-key)" });
      return;
    }
    const authentication = keyStore.authenticate(presented);
    if (!authentication.ok) {
      await deny(exchange, { kind: "unauthorized", detail: "ask the operator for a key (perimeter llm-keys create)" });
      return;
    }
    exchange.key = authentication.key;
    if (isModels) {
      listModels(exchange, authentication.key, typeof request.headers["anthropic-version"] === "string");
      return;
    }
    const routeInfo = info as RouteInfo;

    const read = await readBody(request, maxBodyBytes);
    if (!read.ok) {
      if (read.reason === "too-large") {
        response.setHeader("connection", "close");
        await deny(exchange, { kind: "payload-too-large", limitBytes: maxBodyBytes });
      } else {
        await finish(exchange, { decision: "error", reason: "client-disconnected", status: 499 });
      }
      return;
    }
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(read.body.toString("utf8"));
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      body = parsed as Record<string, unknown>;
    } catch {
      await deny(exchange, { kind: "bad-request", detail: "the request body must be a JSON object" });
      return;
    }
    if (typeof body.model !== "string" || body.model === "") {
      await deny(exchange, { kind: "bad-request", detail: "model is required (provider/model or an alias such as default)", param: "model" });
      return;
    }
    exchange.requested = body.model;
    exchange.stream = body.stream === true;
    const llm = runtime.llm;
    const resolution = resolveModel(llm, body.model);
    if (!resolution.ok) {
      await deny(exchange, { kind: "model-not-found", model: body.model, detail: resolution.reason });
      return;
    }
    exchange.provider = resolution.target.provider;
    exchange.upstreamModel = resolution.target.model;
    if (!modelAllowed(llm, authentication.key.models, resolution, globMatcher)) {
      await deny(exchange, { kind: "model-not-allowed", model: body.model });
      return;
    }
    const providerKind = llm.providers[resolution.target.provider]?.kind ?? "openai";
    const firstPlan = planWire(routeInfo.route, providerKind);
    if (!firstPlan.ok) {
      await deny(exchange, { kind: "bad-request", param: "model", detail: `model ${body.model} is served by an ${providerKind} provider: ${firstPlan.reason}` });
      return;
    }

    let hits: DlpHit[];
    try {
      hits = inspectRequestBody(body, runtime.scanner, runtime.dlpMode);
    } catch (error) {
      if (error instanceof UnscannableBodyError) {
        await deny(exchange, { kind: "bad-request", detail: error.message, ...(error.param === undefined ? {} : { param: error.param }) });
        return;
      }
      throw error;
    }
    if (hits.length > 0) {
      exchange.dlpHits = hits;
      // A secret in an object key cannot be redacted without changing the request's meaning: refused in either mode.
      const blocked = runtime.dlpMode === "block" || hits.some((hit) => hit.inKey === true);
      const action = blocked ? "blocked" : "redacted";
      for (const hit of hits) metrics.dlpHits.inc({ kind: hit.kind.replace(/ [A-Z_][A-Z0-9_]*(?: \((?:base64|hex)\))?$/, ""), action });
      logger.warn({ requestId: exchange.id, client: authentication.key.client, hits: hits.map((hit) => `${hit.kind} at ${hit.location}`), action }, "dlp-hit");
      if (blocked) {
        await deny(exchange, { kind: "dlp-blocked", kinds: [...new Set(hits.map((hit) => hit.kind))] });
        return;
      }
    }

    // Each wire format the chain needs is made once, from the body DLP has scanned (and redacted), and scanned again:
    // parsing tool-call arguments decodes JSON escapes, so a translation can hold text the first scan could not read.
    const translated = new Map<Translation, Record<string, unknown>>();
    const chain: ModelTarget[] = [];
    for (const target of failoverChain(llm, resolution.target)) {
      const isFirst = chain.length === 0;
      const plan = planWire(routeInfo.route, llm.providers[target.provider]?.kind ?? "openai");
      if (!plan.ok) continue;
      if (plan.translation !== undefined && !translated.has(plan.translation)) {
        let output: Record<string, unknown>;
        let translationHits: DlpHit[];
        try {
          output = plan.translation === "chat-to-messages" ? chatRequestToMessages(body) : messagesRequestToChat(body);
          translationHits = inspectRequestBody(output, runtime.scanner, runtime.dlpMode);
        } catch (error) {
          if (!(error instanceof TranslationError) && !(error instanceof UnscannableBodyError)) throw error;
          if (isFirst) {
            await deny(exchange, { kind: "bad-request", detail: error.message, ...(error.param === undefined ? {} : { param: error.param }) });
            return;
          }
          // The failover provider cannot take this request in its format: it is left out of the chain, not half-sent.
          logger.warn({ requestId: exchange.id, provider: target.provider, reason: error.message }, "failover-skipped");
          continue;
        }
        if (translationHits.length > 0) {
          const located = translationHits.map((hit) => ({ ...hit, location: `(translated ${plan.translation}) ${hit.location}` }));
          exchange.dlpHits = [...exchange.dlpHits, ...located];
          const blocked = runtime.dlpMode === "block" || located.some((hit) => hit.inKey === true);
          for (const hit of located) metrics.dlpHits.inc({ kind: hit.kind.replace(/ [A-Z_][A-Z0-9_]*(?: \((?:base64|hex)\))?$/, ""), action: blocked ? "blocked" : "redacted" });
          logger.warn({ requestId: exchange.id, client: authentication.key.client, hits: located.map((hit) => `${hit.kind} at ${hit.location}`), action: blocked ? "blocked" : "redacted" }, "dlp-hit");
          if (blocked) {
            await deny(exchange, { kind: "dlp-blocked", kinds: [...new Set(located.map((hit) => hit.kind))] });
            return;
          }
        }
        translated.set(plan.translation, output);
      }
      chain.push(target);
    }
    // The worst case is that of the largest body any provider of the chain may receive.
    const promptTokens = Math.max(estimatePromptTokens(body), ...[...translated.values()].map((output) => estimatePromptTokens(output)));
    const outputTokens = maxOutputTokens(routeInfo.route, body);
    let worstCost = 0;
    const unpricedProviders: string[] = [];
    for (const target of chain) {
      const pricing = llm.providers[target.provider]?.costPer1kTokens;
      if (pricing === undefined) unpricedProviders.push(target.provider);
      worstCost = Math.max(worstCost, costOf({ input: promptTokens, output: outputTokens }, pricing));
    }
    const admission = ledger.admit(authentication.key, { tokens: promptTokens + outputTokens, cost: worstCost, unpricedProviders });
    if (!admission.ok) {
      await deny(exchange, admission.error);
      return;
    }
    if (!(await commitDecision(exchange, { tokens: promptTokens + outputTokens, cost: worstCost }))) {
      // Nothing goes to a provider unrecorded: the log refused the decision, so the request is refused (fail closed).
      ledger.settle(admission.reservation, { tokensIn: 0, tokensOut: 0, cost: 0 });
      sendError(exchange, { kind: "audit-unavailable" });
      metrics.requests.inc({ route: exchange.route, decision: "deny", reason: "audit-unavailable" });
      return;
    }
    try {
      await forward(exchange, routeInfo, body, translated, chain, admission.reservation, promptTokens, outputTokens);
    } finally {
      // Whatever happened, a reservation never stays in flight forever; unsettled means charged in full.
      if (!admission.reservation.settled) ledger.settle(admission.reservation, { tokensIn: promptTokens, tokensOut: outputTokens, cost: worstCost });
    }
  };

  const server = http.createServer({ headersTimeout: 30_000, requestTimeout: 120_000, keepAliveTimeout: 5_000, maxHeaderSize: 32 * 1024 }, (request, response) => {
    metrics.inFlight.inc();
    response.once("close", () => metrics.inFlight.dec());
    handle(request, response).catch((error: unknown) => {
      // A bug in one request must not take the server down: answer 500 (or cut the stream) and keep serving.
      logger.error({ err: (error as Error).stack ?? String(error), url: request.url }, "llm-request crashed");
      if (!response.headersSent) {
        const mapped = errorResponse({ kind: "internal", detail: "see the llm-proxy logs" }, "openai");
        response.writeHead(mapped.status, mapped.headers);
        response.end(mapped.body);
      } else {
        response.destroy();
      }
    });
  });
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    else socket.destroy();
  });

  return {
    metrics,
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const address = server.address() as AddressInfo;
          logger.info({ host: address.address, port: address.port, providers: [...runtime.providers.keys()] }, "llm-proxy listening");
          resolve({ host: address.address, port: address.port });
        });
      });
    },
    async close(graceMs = 5_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
      dialer.close();
    },
    reload(next) {
      const built = buildRuntime(next, dependencies.environment);
      keyStore.syncConfigClients(configClientKeys(next, dependencies.environment));
      runtime = built;
      logger.info({ providers: [...built.providers.keys()] }, "llm-proxy configuration reloaded");
    },
  };
}
