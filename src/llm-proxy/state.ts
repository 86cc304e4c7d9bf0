// The state of one llm-proxy as one typed object every stage takes (LlmProxyState), and the state of one request as
// another (LlmExchange). Nothing lives in module scope: several proxies (tests, `perimeter up`) share one process.
import type { ClientRequest, IncomingMessage, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Environment, PerimeterConfig } from "../config/index.ts";
import { cachingResolver, systemResolver } from "../net/index.ts";
import type { Resolver } from "../net/index.ts";
import { silentLogger } from "../shared/index.ts";
import type { AuditFeedRoute, Logger } from "../shared/index.ts";
import { createAuditRecorder } from "../audit-log/index.ts";
import type { AuditRecorder, RecorderLog } from "../audit-log/index.ts";
import type { DlpHit } from "./dlp.ts";
import type { ApiFlavor } from "./errors.ts";
import type { LlmKeyStore, VirtualKey } from "./keys.ts";
import { createUsageLedger } from "./limits.ts";
import type { UsageLedger } from "./limits.ts";
import { createLlmProxyMetrics } from "./metrics.ts";
import type { LlmProxyMetrics } from "./metrics.ts";
import { createGlobMatcher } from "./routing.ts";
import type { GlobMatcher } from "./routing.ts";
import { buildRuntime, configClientKeys } from "./setup.ts";
import type { LlmRuntime } from "./setup.ts";
import type { Translation } from "./translate.ts";
import { createUpstreamDialer } from "./upstream.ts";
import type { UpstreamDialer } from "./upstream.ts";
import type { Route } from "./usage.ts";

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
  /**
   * The read-only audit feed (GET /v1/audit/*), served on the proxy's own listener to the feed token only; without
   * it those paths are unknown routes.
   */
  readonly auditFeed?: AuditFeedRoute;
}

/** One proxy: what every request reads. Only `runtime` changes, replaced whole by a reload. */
export interface LlmProxyState {
  readonly environment: Environment;
  readonly logger: Logger;
  readonly now: () => number;
  readonly maxBodyBytes: number;
  readonly metrics: LlmProxyMetrics;
  readonly globMatcher: GlobMatcher;
  readonly keyStore: LlmKeyStore;
  readonly ledger: UsageLedger;
  readonly recorder: AuditRecorder;
  readonly dialer: UpstreamDialer;
  readonly auditFeed: AuditFeedRoute | undefined;
  /** A request reads it where it needs it, so a reload takes effect for the next step of a request in flight. */
  runtime: LlmRuntime;
}

/** Builds the proxy's state; throws LlmProxySetupError (or a missing-secret error) for a configuration it cannot run. */
export function createLlmProxyState(config: PerimeterConfig, dependencies: LlmProxyDependencies): LlmProxyState {
  const logger = dependencies.logger ?? silentLogger();
  const now = dependencies.now ?? Date.now;
  const metrics = createLlmProxyMetrics();
  const keyStore = dependencies.keyStore;
  const runtime = buildRuntime(config, dependencies.environment);
  keyStore.syncConfigClients(configClientKeys(config, dependencies.environment));
  return {
    environment: dependencies.environment,
    logger,
    now,
    maxBodyBytes: dependencies.maxBodyBytes ?? 32 * 1024 * 1024,
    metrics,
    globMatcher: createGlobMatcher(),
    keyStore,
    ledger: createUsageLedger(keyStore, now),
    recorder: createAuditRecorder(dependencies.audit, { component: "llm-proxy", logger, onFailure: () => metrics.auditFailures.inc() }),
    dialer: createUpstreamDialer({
      resolver: dependencies.resolver ?? cachingResolver(systemResolver()),
      ...(dependencies.allowCidrs === undefined ? {} : { allowCidrs: dependencies.allowCidrs }),
      ...(dependencies.ca === undefined ? {} : { ca: dependencies.ca }),
    }),
    auditFeed: dependencies.auditFeed,
    runtime,
  };
}

export interface RouteInfo {
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

/** The route a path (below /v1, or without it) names; undefined for /models and anything unknown. */
export function routeOf(relative: string): RouteInfo | undefined {
  return Object.hasOwn(ROUTES, relative) ? ROUTES[relative] : undefined;
}

/** One request, from its arrival to its outcome's record: what every stage reads and adds to. */
export interface LlmExchange {
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

export function createExchange(relative: string, info: RouteInfo | undefined, response: ServerResponse): LlmExchange {
  return {
    id: randomUUID(),
    started: performance.now(),
    route: info?.route ?? (relative === "/models" ? "models" : "unknown"),
    flavor: info?.flavor ?? "openai",
    stream: false,
    dlpHits: [],
    failovers: [],
    clientGone: false,
    response,
  };
}

/** How a request ended, for its record and the metrics. */
export interface LlmOutcome {
  readonly decision: "allow" | "deny" | "error";
  readonly reason: string;
  readonly status: number;
  readonly tokensIn?: number;
  readonly tokensOut?: number;
  readonly usageSource?: "provider" | "reserved" | "none";
  readonly cost?: number;
  readonly firstChunkMs?: number;
}

/** The path below /v1 (or the path itself when it is not below /v1), without the query. */
export function relativePath(request: IncomingMessage): { pathname: string; relative: string } {
  const pathname = (request.url ?? "/").split("?")[0] ?? "/";
  return { pathname, relative: pathname.startsWith("/v1/") ? pathname.slice(3) : pathname };
}
