// The egress proxy server: a thin adapter around the pure decision (decide.ts). Written by hand on node:http and
// node:net rather than on a proxy library because it is the security boundary of every byte the agent sends out and
// small enough to own. Client requests are parsed by Node's strict llhttp (duplicate Content-Length, CL with TE,
// obs-fold and invalid characters are rejected there, and we reject the rest below); every request is re-framed,
// never passed through raw, so a request smuggled past us cannot reach an origin. The upstream leg of plain HTTP is
// ours too (upstream.ts, http1.ts): a strict response parser and a keep-alive pool per client and address.
//
// Per request: identify the client and match rules (decide), rate and tunnel limits, resolve the name once and check
// every address (src/net), dial exactly the checked address, for CONNECT to 443 read the ClientHello and compare its
// SNI, record the decision in the audit log (group commit: the request goes out while its record commits, or after
// with auditBeforeForwarding; nothing comes back before the commit, and nothing more goes out if it fails), relay.
import http from "node:http";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { lstatSync, unlinkSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { normalizeHostname, splitHostPort } from "../config/index.ts";
import { cachingResolver, isUnspecifiedAddress, parseIpLiteral, resolveChecked, systemResolver } from "../net/index.ts";
import type { AddressFamily, CheckedAddress, Resolver } from "../net/index.ts";
import { createAuditRecorder } from "../audit-log/index.ts";
import type { AuditRecorder, RecorderLog } from "../audit-log/index.ts";
import { closeAfterAnswerIfBodyUnread, silentLogger } from "../shared/index.ts";
import type { Logger } from "../shared/index.ts";
import { TLS_ACCESS_DENIED_ALERT, createClientHelloReader } from "./client-hello.ts";
import { decide } from "./decide.ts";
import type { Decision } from "./decide.ts";
import { createRateLimiter, createTunnelCounter } from "./limits.ts";
import { createEgressMetrics } from "./metrics.ts";
import type { EgressMetrics } from "./metrics.ts";
import { PolicyError, clientConflicts, compileClient, compilePolicy } from "./policy.ts";
import type { ClientInput, EgressPolicy, EgressPolicyInput, PolicyClient } from "./policy.ts";
import type { ResponseHead } from "./http1.ts";
import { createUpstreamPool, exchange } from "./upstream.ts";
import type { Exchange } from "./upstream.ts";

const EMPTY = Buffer.alloc(0);

/**
 * Where the audit records go: the audit-log module's AuditLog satisfies this. `append` throws when it cannot record.
 * A sink that also offers `prepare` and `appendPrepared` (the AuditLog does) gets group commit: the records of one
 * event-loop turn are written in one transaction, and no answer reaches a client before its record is committed.
 */
export type AuditSink = RecorderLog;

/** A commit nothing waits for: its failure is logged and counted by the recorder. */
function ignoreCommitted(): void {}

/**
 * Opens the upstream connection. Always given an IP address that passed the SSRF check, never a name. `onread`, when
 * given, must be passed to net.connect: tunnels read into their own buffer instead of allocating one per read.
 */
export type Dialer = (target: { readonly host: string; readonly port: number; readonly family: AddressFamily; readonly onread?: net.OnReadOpts }) => net.Socket;

export interface EgressProxyDependencies {
  /** Name resolution; the proxy resolves each name once per request. @default cachingResolver(systemResolver()) */
  readonly resolver?: Resolver;
  /** @default net.connect */
  readonly dial?: Dialer;
  /** Audit records. Without one, records go to the operational log at info level (never dropped). */
  readonly audit?: AuditSink;
  /** Operational log (JSON lines on stderr in the CLI). @default silent */
  readonly logger?: Logger;
}

export type ListenTarget = string | { readonly host: string; readonly port: number } | { readonly path: string };

export type ListenAddress =
  | { readonly kind: "tcp"; readonly host: string; readonly port: number; readonly family: AddressFamily; readonly url: string }
  | { readonly kind: "unix"; readonly path: string };

export interface RuntimeClient {
  readonly name: string;
  /** Revokes the client: its token stops working at once and its open tunnels are closed. Idempotent. */
  remove(): void;
}

export type ReloadResult = { readonly ok: true } | { readonly ok: false; readonly problems: readonly string[] };

export interface EgressProxy {
  /** Starts accepting proxy clients on `host:port` (`[::1]:3128`), `{ host, port }` or a Unix socket path. May be called more than once. */
  listen(target: ListenTarget): Promise<ListenAddress>;
  /** Serves `/metrics` (Prometheus) and `/healthz` on a separate listener, never on the proxy port. */
  listenMetrics(target: ListenTarget): Promise<ListenAddress>;
  /** Proxy listeners (not metrics), in the order they were opened. */
  addresses(): ListenAddress[];
  metricsAddresses(): ListenAddress[];
  /** Swaps in a new policy atomically; open tunnels stay open. An invalid policy keeps the old one and says why. */
  reload(policy: EgressPolicyInput): ReloadResult;
  /** Adds a client at run time (e.g. one per sandbox task) with its own token and allowlist. Throws PolicyError. */
  addClient(client: ClientInput): RuntimeClient;
  /** The policy in force, runtime clients included. */
  policy(): EgressPolicy;
  stats(): { openTunnels: number; openConnections: number };
  readonly metrics: EgressMetrics;
  /** Stops listening and closes every tunnel and connection. */
  close(): Promise<void>;
}

/** Reasons beyond the pure decision's, for responses, audit records and metrics. */
type RefusalReason =
  | Exclude<Decision, { allow: true }>["reason"]
  | "proxy-address"
  | "dns-failure"
  | "rate-limited"
  | "tunnel-limit"
  | "sni-missing"
  | "sni-mismatch"
  | "sni-timeout"
  | "not-tls"
  | "malformed-client-hello"
  | "host-mismatch"
  | "loop-detected"
  | "origin-form-request"
  | "use-connect-for-https"
  | "method-not-allowed"
  | "upgrade-not-supported"
  | "bad-request"
  | "duplicate-header"
  | "duplicate-content-length"
  | "content-length-with-transfer-encoding"
  | "invalid-transfer-encoding"
  | "invalid-header"
  | "headers-too-large"
  | "header-timeout"
  | "audit-unavailable"
  | "upstream-refused"
  | "upstream-reset"
  | "upstream-unreachable"
  | "upstream-timeout"
  | "upstream-error";

const STATUS: Record<RefusalReason, number> = {
  "not-allowlisted": 403,
  "port-not-allowed": 403,
  "private-address": 403,
  "proxy-address": 403,
  "sni-missing": 403,
  "sni-mismatch": 403,
  "sni-timeout": 403,
  "not-tls": 403,
  "malformed-client-hello": 403,
  "host-mismatch": 403,
  "unknown-client": 407,
  "bad-credentials": 407,
  "invalid-host": 400,
  "origin-form-request": 400,
  "use-connect-for-https": 400,
  "bad-request": 400,
  "duplicate-header": 400,
  "duplicate-content-length": 400,
  "content-length-with-transfer-encoding": 400,
  "invalid-transfer-encoding": 400,
  "invalid-header": 400,
  "method-not-allowed": 405,
  "header-timeout": 408,
  "rate-limited": 429,
  "headers-too-large": 431,
  "upgrade-not-supported": 501,
  "tunnel-limit": 503,
  "audit-unavailable": 503,
  "loop-detected": 508,
  "dns-failure": 502,
  "upstream-refused": 502,
  "upstream-reset": 502,
  "upstream-unreachable": 502,
  "upstream-error": 502,
  "upstream-timeout": 504,
};

/** Refusals are "deny" (policy said no: X-Perimeter-Denied); failures are "error" (could not serve: X-Perimeter-Error). */
function outcomeOf(reason: RefusalReason): "deny" | "error" {
  const status = STATUS[reason];
  return status === 502 || status === 504 || reason === "audit-unavailable" ? "error" : "deny";
}

/** The one mapping from a socket error to an upstream failure reason. */
function upstreamFailure(error: unknown): "upstream-refused" | "upstream-reset" | "upstream-unreachable" | "upstream-timeout" | "upstream-error" {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ECONNREFUSED") return "upstream-refused";
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ECONNABORTED") return "upstream-reset";
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "EADDRNOTAVAIL") return "upstream-unreachable";
  if (code === "ETIMEDOUT" || code === "ERR_UPSTREAM_TIMEOUT") return "upstream-timeout";
  return "upstream-error";
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-authenticate",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
const FORWARDED_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Headers whose repetition makes a request ambiguous between us and the origin. */
const SINGLE_HEADERS = new Set(["host", "content-length", "transfer-encoding", "proxy-authorization"]);

const REASON_PHRASES: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  508: "Loop Detected",
};

interface Refusal {
  readonly reason: RefusalReason;
  readonly message: string;
}

function refusalHeaders(reason: RefusalReason, body: Buffer): Array<[string, string]> {
  const headers: Array<[string, string]> = [
    [outcomeOf(reason) === "deny" ? "X-Perimeter-Denied" : "X-Perimeter-Error", reason],
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ["Cache-Control", "no-store"],
  ];
  if (STATUS[reason] === 407) headers.push(["Proxy-Authenticate", 'Basic realm="perimeter egress"'], ["Proxy-Authenticate", 'Bearer realm="perimeter egress"']);
  return headers;
}

function refusalBody(refusal: Refusal): Buffer {
  // One line, no control characters from client input (names are echoed).
  return Buffer.from(`perimeter egress-proxy: ${refusal.message.replace(/[\r\n\x00-\x1f\x7f]/g, " ")}\n`, "utf8");
}

/** A complete HTTP/1.1 response for a raw socket (CONNECT, parse errors). */
function rawRefusal(refusal: Refusal): Buffer {
  const status = STATUS[refusal.reason];
  const body = refusalBody(refusal);
  const lines = [`HTTP/1.1 ${status} ${REASON_PHRASES[status] ?? "Error"}`, ...refusalHeaders(refusal.reason, body).map(([name, value]) => `${name}: ${value}`), "Connection: close", "", ""];
  return Buffer.concat([Buffer.from(lines.join("\r\n"), "latin1"), body]);
}

function parseListenTarget(target: ListenTarget): { path: string } | { host: string; port: number } {
  if (typeof target !== "string") return "path" in target ? { path: target.path } : { host: target.host, port: target.port };
  if (target.startsWith("unix:")) return { path: target.slice(5) };
  if (target.includes("/")) return { path: target };
  // Port 0 (any free port) is valid for listening, unlike for a destination, so splitHostPort does not apply.
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(target);
  const parsed = match === null || Number(match[3]) > 65535 ? undefined : { host: (match[1] ?? match[2]) as string, port: Number(match[3]) };
  if (parsed === undefined) throw new Error(`"${target}" is not HOST:PORT or a socket path (write 127.0.0.1:3128, [::1]:3128 or /run/perimeter/egress.sock)`);
  return parsed;
}

/** Removes a stale Unix socket left by a crashed process; refuses to touch anything that is not a socket. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket: remove it or choose another path`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (alive) throw new Error(`${path} is in use by another process`);
  unlinkSync(path);
}

async function listenOn(server: net.Server, target: ListenTarget): Promise<ListenAddress> {
  const parsed = parseListenTarget(target);
  if ("path" in parsed) await clearStaleSocket(parsed.path);
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    const done = () => {
      server.off("error", onError);
      resolve();
    };
    if ("path" in parsed) server.listen(parsed.path, done);
    else server.listen(parsed.port, parsed.host, done);
  });
  const address = server.address();
  if (typeof address === "string" || address === null) return { kind: "unix", path: "path" in parsed ? parsed.path : String(address) };
  const family: AddressFamily = address.family === "IPv6" ? 6 : 4;
  const hostText = family === 6 ? `[${address.address}]` : address.address;
  return { kind: "tcp", host: address.address, port: address.port, family, url: `http://${hostText}:${address.port}` };
}

/**
 * Addresses (and ranges) that reach this process; the address policy compares them as values, in every notation. A
 * wildcard listener answers on every local address: each interface's, and on a loopback interface its whole network
 * (Linux delivers all of 127.0.0.0/8 locally, not only 127.0.0.1).
 */
function selfAddressesOf(addresses: readonly ListenAddress[]): string[] {
  const result = new Set<string>();
  for (const address of addresses) {
    if (address.kind !== "tcp") continue;
    if (isUnspecifiedAddress(address.host)) {
      for (const entries of Object.values(networkInterfaces())) {
        for (const entry of entries ?? []) result.add(entry.internal && entry.cidr !== null ? entry.cidr : entry.address);
      }
      result.add("0.0.0.0");
      result.add("::");
    } else {
      result.add(address.host);
    }
  }
  return [...result];
}

function formatAuthority(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

interface ConnectionState {
  readonly startedAt: number;
  readonly source: string;
  client: string;
  requests: number;
  readonly hosts: Set<string>;
  tunnel: boolean;
  upstreamErrors: number;
}

interface OpenTunnel {
  readonly client: string;
  finish(reason: string): void;
}

const ignore = () => {};

/** How long a connection attempt runs alone before the next address is tried too (RFC 8305's 250 ms). */
const ATTEMPT_DELAY_MS = 250;

/** The order to try checked addresses in: the resolver's first, then alternating address families (RFC 8305 §4). */
export function dialOrder(candidates: readonly CheckedAddress[]): CheckedAddress[] {
  const firstFamily = candidates[0]?.family;
  const same = candidates.filter((candidate) => candidate.family === firstFamily);
  const other = candidates.filter((candidate) => candidate.family !== firstFamily);
  const order: CheckedAddress[] = [];
  for (let index = 0; index < Math.max(same.length, other.length); index++) {
    if (index < same.length) order.push(same[index] as CheckedAddress);
    if (index < other.length) order.push(other[index] as CheckedAddress);
  }
  return order;
}

const defaultDial: Dialer = ({ host, port, family, onread }) => net.connect({ host, port, family, noDelay: true, ...(onread !== undefined ? { onread } : {}) });

/** Largest response head accepted from an origin (Node's own client allows 16 KiB). */
const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

/** Bytes one tunnel reads from its upstream at a time. */
const RELAY_BUFFER_BYTES = 64 * 1024;

interface UpstreamReader {
  readonly onread: net.OnReadOpts;
  /** Starts delivering to the client (bytes that arrived before are delivered first). */
  start(client: net.Socket, upstream: net.Socket): void;
}

/**
 * Reads a tunnel's upstream into one buffer of its own and writes straight from it to the client, reading again only
 * once the write has completed. Streams would allocate a fresh 64 KiB Buffer per read, and on a heap the size of this
 * service the garbage collection that causes doubles the CPU per byte relayed. The tunnel's buffer is allocated at its
 * first byte, so an idle tunnel costs none; the very first read lands in a small buffer shared by the proxy and is
 * copied at once.
 */
function createUpstreamReader(shared: Buffer): UpstreamReader {
  let own: Buffer | undefined;
  let handedOut = false;
  let target: net.Socket | undefined;
  let source: net.Socket | undefined;
  const pending: Buffer[] = [];
  const resume = (error?: Error | null) => {
    if ((error === undefined || error === null) && source !== undefined && !source.destroyed) source.resume();
  };
  return {
    onread: {
      buffer: () => {
        if (!handedOut) {
          handedOut = true;
          return shared;
        }
        own ??= Buffer.allocUnsafe(RELAY_BUFFER_BYTES);
        return own;
      },
      callback: (bytes, buffer) => {
        // The client is gone: nothing to deliver to, keep reading so that the upstream's end is seen.
        if (target?.destroyed === true) return true;
        if (buffer === shared || target === undefined) {
          const copy = Buffer.from(buffer.subarray(0, bytes));
          if (target === undefined) {
            pending.push(copy);
            return false;
          }
          if (target.write(copy)) return true;
          target.once("drain", () => resume());
          return false;
        }
        target.write(buffer.subarray(0, bytes), resume);
        return false;
      },
    },
    start(client, upstream) {
      target = client;
      source = upstream;
      for (const chunk of pending.splice(0)) client.write(chunk);
      upstream.resume();
    },
  };
}

export function createEgressProxy(input: EgressPolicyInput, dependencies: EgressProxyDependencies = {}): EgressProxy {
  let configPolicy = compilePolicy(input);
  const runtimeClients = new Map<symbol, PolicyClient>();
  let effective: EgressPolicy = configPolicy;
  const resolver = dependencies.resolver ?? cachingResolver(systemResolver());
  const dial = dependencies.dial ?? defaultDial;
  const logger = dependencies.logger ?? silentLogger();
  const metrics = createEgressMetrics();
  const rateLimiter = createRateLimiter();
  const tunnelCounter = createTunnelCounter();
  const tunnels = new Set<OpenTunnel>();
  const connections = new Map<net.Socket, ConnectionState>();
  const servers: Array<{ server: http.Server; address: ListenAddress }> = [];
  const metricsServers: Array<{ server: http.Server; address: ListenAddress }> = [];
  let selfAddresses: string[] = [];
  let closing = false;
  // Via token for loop detection: a request that already passed through this instance is refused.
  const viaToken = `perimeter-egress-${randomBytes(6).toString("hex")}`;
  // Idle keep-alive connections to origins, keyed by client and checked address (see upstream.ts).
  const upstreamPool = createUpstreamPool();
  // Every tunnel's first upstream read lands here and is copied at once (see createUpstreamReader).
  const firstReadBuffer = Buffer.allocUnsafe(16 * 1024);
  // The one recorder every service records through (src/audit-log/recorder.ts). Its health is false from a failed
  // commit until the next one succeeds: meanwhile every request waits for its record's commit before anything of it
  // goes out, whatever auditBeforeForwarding says (see mayForwardWhileCommitting).
  const recorder: AuditRecorder | undefined =
    dependencies.audit === undefined ? undefined : createAuditRecorder(dependencies.audit, { component: "egress-proxy", logger, onFailure: () => metrics.auditFailures.inc() });
  const auditHealthy = (): boolean => recorder?.healthy() ?? true;

  /**
   * Whether an allowed request may go to the origin while its decision record is being committed. The record is
   * queued first and commits at the end of this event-loop turn, before any answer from the origin can be read (that
   * needs a later turn), and the answer is held until the commit anyway: what is traded is only that the request's
   * bytes may have left when a commit fails. That failure is loud (the record goes to the operational log, the answer
   * is withheld) and switches the proxy to commit-first until the log accepts writes again.
   */
  function mayForwardWhileCommitting(): boolean {
    return recorder?.grouped === true && !effective.auditBeforeForwarding && auditHealthy();
  }

  function rebuildEffective(): void {
    effective = { ...configPolicy, clients: [...configPolicy.clients, ...runtimeClients.values()] };
  }

  /**
   * Records an audit event; `then(true)` once it is committed, `then(false)` when it could not be (the caller must
   * then refuse; the recorder has logged the whole record and counted it). With group commit `then` runs at the end of
   * this event-loop turn, otherwise at once; a `soon` record (a closed connection's, which nothing waits for and no
   * request depends on) rides with the next commit.
   */
  function audit(record: Record<string, unknown> & { type: string }, then?: (ok: boolean) => void, options: { soon?: boolean } = {}): void {
    if (recorder === undefined) {
      logger.info({ audit: { component: "egress-proxy", ...record } }, record.type);
      then?.(true);
    } else if (options.soon === true) recorder.soon(record);
    else if (then === undefined) recorder.commit(record, ignoreCommitted);
    else recorder.commit(record, (error) => then(error === null));
  }

  function rateKey(decision: Decision, source: string): string {
    return decision.client === "unknown" ? `unknown:${source}` : `client:${decision.client}`;
  }

  interface DecisionRecord {
    readonly client: string;
    readonly source: string;
    readonly method: string;
    readonly host: string;
    readonly port: number;
    readonly address?: string | undefined;
    /** Every checked address of the name, when there is more than one: the proxy dials the first that answers. */
    readonly addresses?: readonly string[] | undefined;
    readonly sni?: string | undefined;
    readonly rules?: readonly string[];
    readonly startedAt: number;
  }

  /** Records and counts a final outcome; `then(false)` when the audit write failed (the caller must then refuse). */
  const allowedCounter = metrics.decisions.labels("allow", "allowlisted");
  const setupTimers = { connect: metrics.setupSeconds.labels("connect"), http: metrics.setupSeconds.labels("http") };

  function recordDecision(
    record: DecisionRecord,
    outcome: { decision: "allow" } | { decision: "deny" | "error"; reason: RefusalReason; detail?: string },
    then?: (ok: boolean) => void,
  ): void {
    const reason = outcome.decision === "allow" ? "allowlisted" : outcome.reason;
    if (outcome.decision === "allow") allowedCounter.inc();
    else metrics.decisions.inc({ decision: outcome.decision, reason });
    return audit({
      type: "egress-decision",
      client: record.client,
      source: record.source,
      method: record.method,
      host: record.host,
      port: record.port,
      address: record.address ?? null,
      ...(record.addresses !== undefined ? { addresses: record.addresses } : {}),
      decision: outcome.decision,
      reason,
      status: outcome.decision === "allow" ? (record.method === "CONNECT" ? 200 : null) : STATUS[outcome.reason],
      ...(record.sni !== undefined ? { sni: record.sni } : {}),
      ...(record.rules !== undefined ? { rules: record.rules } : {}),
      ...(outcome.decision !== "allow" && outcome.detail !== undefined ? { detail: outcome.detail } : {}),
      durationMs: Math.round((performance.now() - record.startedAt) * 1000) / 1000,
    }, then);
  }

  /** Rate limit, then resolve and check every address. A refusal, or the address to dial. */
  async function admit(
    decision: Decision,
    source: string,
    kind: "connect" | "http",
  ): Promise<{ ok: false; refusal: Refusal; address?: string } | { ok: true; address: string; candidates: readonly CheckedAddress[]; release?: () => void }> {
    const limits = effective.limits;
    if (!rateLimiter.take(rateKey(decision, source), limits.requestsPerSecondPerClient, performance.now())) {
      if (!decision.allow) return { ok: false, refusal: { reason: decision.reason, message: decision.message } };
      return { ok: false, refusal: { reason: "rate-limited", message: `client "${decision.client}" is over ${limits.requestsPerSecondPerClient} requests per second; slow down or raise egress.limits.requestsPerSecondPerClient` } };
    }
    if (!decision.allow) return { ok: false, refusal: { reason: decision.reason, message: decision.message } };
    let release: (() => void) | undefined;
    if (kind === "connect") {
      const slot = tunnelCounter.acquire(rateKey(decision, source), limits.tunnelsPerClient, limits.tunnelsTotal);
      if (!slot.ok) {
        const message =
          slot.scope === "client"
            ? `client "${decision.client}" already holds ${limits.tunnelsPerClient} tunnels; close some or raise egress.limits.tunnelsPerClient`
            : `the proxy already holds ${limits.tunnelsTotal} tunnels; retry later or raise egress.limits.tunnelsTotal`;
        return { ok: false, refusal: { reason: "tunnel-limit", message } };
      }
      release = slot.release;
    }
    const resolved = await resolveChecked(decision.host, { resolver, allowCidrs: decision.allowCidrs, selfAddresses, timeoutMs: limits.connectTimeoutSeconds * 1000 });
    if (!resolved.ok) {
      release?.();
      const message =
        resolved.reason === "dns-failure"
          ? `${decision.host} could not be resolved (${resolved.detail})`
          : resolved.reason === "proxy-address"
            ? `${resolved.detail}: that is this proxy, and a request to it would loop`
            : `${resolved.detail}, which is in the SSRF deny set; if this host really lives in a private range, give its rule an allowCidr for that range`;
      const reason: RefusalReason = resolved.reason === "invalid-address" ? "private-address" : resolved.reason;
      return { ok: false, refusal: { reason, message }, address: resolved.addresses[0] };
    }
    return { ok: true, address: resolved.address, candidates: resolved.candidates, ...(release !== undefined ? { release } : {}) };
  }

  /**
   * Connects to one of the checked addresses, within one connect timeout for the whole attempt. Several addresses (a
   * name with A and AAAA records, or several of one family) are tried as RFC 8305 says: alternating families from the
   * resolver's first, the next one as soon as an attempt fails or after ATTEMPT_DELAY_MS without an answer (the
   * earlier ones keep trying); the first to connect wins and the others are destroyed before anything is read from
   * them. Only addresses that passed the deny-set check are ever dialled; the name never reaches a socket.
   */
  function dialChecked(candidates: readonly CheckedAddress[], port: number, onread?: net.OnReadOpts): Promise<{ socket: net.Socket; address: string }> {
    return new Promise((resolve, reject) => {
      const order = dialOrder(candidates);
      const attempts = new Set<net.Socket>();
      let next = 0;
      let settled = false;
      let lastError: unknown;
      let stagger: NodeJS.Timeout | undefined;
      const finish = (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        clearTimeout(stagger);
        for (const socket of attempts) socket.destroy();
        attempts.clear();
        reject(error);
      };
      const deadline = setTimeout(() => {
        const targets = order.map((candidate) => formatAuthority(candidate.address, port)).join(", ");
        finish(Object.assign(new Error(`connecting to ${targets} timed out`), { code: "ERR_UPSTREAM_TIMEOUT" }));
      }, effective.limits.connectTimeoutSeconds * 1000);
      const attempt = (): void => {
        clearTimeout(stagger);
        stagger = undefined;
        if (settled) return;
        const candidate = order[next];
        if (candidate === undefined) {
          // Nothing left to start: an attempt still running decides, or, with none left, the last error does.
          if (attempts.size === 0) finish(lastError ?? new Error("no address to connect to"));
          return;
        }
        next += 1;
        let socket: net.Socket;
        try {
          socket = dial({ host: candidate.address, port, family: candidate.family, ...(onread !== undefined ? { onread } : {}) });
        } catch (error) {
          lastError = error;
          attempt();
          return;
        }
        attempts.add(socket);
        const onError = (error: Error) => {
          attempts.delete(socket);
          lastError = error;
          attempt();
        };
        socket.once("error", onError);
        socket.once("connect", () => {
          attempts.delete(socket);
          if (settled) {
            socket.destroy();
            return;
          }
          settled = true;
          clearTimeout(deadline);
          clearTimeout(stagger);
          for (const other of attempts) other.destroy();
          attempts.clear();
          socket.removeListener("error", onError);
          // From here until its user listens (after the audit commit), an error must not be uncaught: it shows as
          // `destroyed`, which every user checks before it starts.
          socket.on("error", ignore);
          resolve({ socket, address: candidate.address });
        });
        if (next < order.length) stagger = setTimeout(attempt, ATTEMPT_DELAY_MS);
      };
      attempt();
    });
  }

  /** Ends a raw client socket after a refusal, giving the client a moment to read it. */
  function refuseRaw(socket: net.Socket, refusal: Refusal): void {
    if (socket.destroyed) return;
    socket.end(rawRefusal(refusal));
    setTimeout(() => socket.destroy(), 2000).unref();
  }

  // -------------------------------------------------------------------------------------------------------------
  // CONNECT

  async function handleConnect(request: http.IncomingMessage, client: net.Socket, head: Buffer): Promise<void> {
    const startedAt = performance.now();
    const state = connections.get(client);
    if (state !== undefined) state.tunnel = true;
    const source = client.remoteAddress ?? "unix";
    client.on("error", () => client.destroy());
    const target = splitHostPort(request.url ?? "");
    const record = { client: "unknown", source, method: "CONNECT", host: request.url ?? "", port: target?.port ?? 0, startedAt };
    const refuse = (refusal: Refusal, extra: Partial<DecisionRecord> = {}) => {
      recordDecision({ ...record, ...extra }, { decision: outcomeOf(refusal.reason), reason: refusal.reason, detail: refusal.message });
      refuseRaw(client, refusal);
    };
    if (target === undefined) return refuse({ reason: "bad-request", message: `CONNECT needs host:port (e.g. CONNECT api.example.com:443), not "${String(request.url).slice(0, 100)}"` });
    const duplicate = duplicateHeader(request);
    if (duplicate !== undefined) return refuse({ reason: "duplicate-header", message: `the ${duplicate} header appears more than once` });

    const decision = decide({ kind: "connect", host: target.host, port: target.port, sourceAddress: source, proxyAuthorization: request.headers["proxy-authorization"] }, effective);
    Object.assign(record, { client: decision.client, host: decision.host });
    const admitted = await admit(decision, source, "connect");
    if (!admitted.ok) return refuse(admitted.refusal, { address: admitted.address });
    const release = admitted.release ?? (() => {});
    if (client.destroyed) return release();
    const addresses = admitted.candidates.length > 1 ? admitted.candidates.map((candidate) => candidate.address) : undefined;

    let upstream: net.Socket;
    let dialled: string;
    const reader = createUpstreamReader(firstReadBuffer);
    try {
      ({ socket: upstream, address: dialled } = await dialChecked(admitted.candidates, target.port, reader.onread));
    } catch (error) {
      release();
      const reason = upstreamFailure(error);
      return refuse({ reason, message: `could not connect to ${decision.host}:${target.port} (${(addresses ?? [admitted.address]).join(", ")}): ${(error as Error).message}` }, { address: admitted.address, addresses });
    }
    // The tunnel's records name the address it was actually opened to.
    const decided = { ...record, address: dialled, addresses, rules: decision.allow ? decision.rules : [] };
    setupTimers.connect.observe((performance.now() - startedAt) / 1000);
    if (client.destroyed) {
      upstream.destroy();
      return release();
    }
    const requireSni = decision.allow && decision.requireSni && target.port === 443;
    if (!requireSni) {
      // Until the tunnel is relayed: nothing read from the client is lost, an upstream error is seen via `destroyed`.
      client.pause();
      return recordDecision(decided, { decision: "allow" }, (ok) => {
        if (!ok || client.destroyed || upstream.destroyed || upstream.readableEnded) {
          upstream.destroy();
          release();
          if (!ok) refuseRaw(client, { reason: "audit-unavailable", message: "the audit log cannot be written, so nothing is let through; see the proxy's log" });
          else if (!client.destroyed) refuseRaw(client, { reason: "upstream-reset", message: `${decision.host}:${target.port} closed the connection at once` });
          return;
        }
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        relay(client, upstream, reader, head, { ...decided, sni: undefined }, release);
      });
    }
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    peekSni(client, upstream, reader, head, decided, release);
  }

  /** Reads the ClientHello before anything reaches the origin; refuses a missing or different SNI. */
  function peekSni(client: net.Socket, upstream: net.Socket, upstreamReader: UpstreamReader, head: Buffer, record: DecisionRecord, release: () => void): void {
    const reader = createClientHelloReader();
    let settled = false;
    const refuseTls = (reason: RefusalReason, detail: string, sni?: string) => {
      settled = true;
      cleanup();
      recordDecision({ ...record, sni }, { decision: "deny", reason, detail });
      upstream.destroy();
      release();
      // The 200 is already sent: a TLS alert is the only way left to tell the client.
      if (reason === "not-tls") client.destroy();
      else client.end(TLS_ACCESS_DENIED_ALERT);
      setTimeout(() => client.destroy(), 1000).unref();
    };
    const timer = setTimeout(() => refuseTls("sni-timeout", `no complete TLS ClientHello within ${effective.limits.headerTimeoutSeconds} s`), effective.limits.headerTimeoutSeconds * 1000);
    const onClose = () => {
      if (settled) return;
      settled = true;
      cleanup();
      upstream.destroy();
      release();
    };
    const onData = (chunk: Buffer) => {
      if (settled) return;
      const result = reader.push(chunk);
      if (result.kind === "need-more") return;
      if (result.kind === "invalid") return refuseTls(result.reason === "not-tls" ? "not-tls" : "malformed-client-hello", result.detail);
      const sni = result.serverName === undefined ? undefined : normalizeHostname(result.serverName);
      if (result.serverName === undefined) return refuseTls("sni-missing", `the TLS ClientHello for ${record.host} carries no SNI; send SNI, or set requireSni: false on the rule for clients that cannot`);
      if (sni !== record.host) return refuseTls("sni-mismatch", `TLS SNI "${result.serverName}" differs from the CONNECT host ${record.host}`, result.serverName);
      settled = true;
      cleanup();
      // Until the tunnel is relayed: the client's next bytes wait in its socket, the origin's in upstreamReader's
      // pending list; an upstream error shows as destroyed. The ClientHello may go ahead while the decision commits
      // (see mayForwardWhileCommitting): nothing comes back before the commit.
      client.pause();
      const helloSent = mayForwardWhileCommitting() && !upstream.destroyed;
      if (helloSent) upstream.write(reader.buffered());
      recordDecision({ ...record, sni }, { decision: "allow" }, (ok) => {
        if (!ok || client.destroyed || upstream.destroyed || upstream.readableEnded) {
          upstream.destroy();
          release();
          if (!client.destroyed) client.end(TLS_ACCESS_DENIED_ALERT);
          return;
        }
        relay(client, upstream, upstreamReader, helloSent ? EMPTY : reader.buffered(), { ...record, sni }, release);
      });
    };
    function cleanup() {
      clearTimeout(timer);
      client.off("data", onData);
      client.off("close", onClose);
      upstream.off("close", onClose);
      upstream.off("error", onClose);
    }
    client.on("close", onClose);
    upstream.on("close", onClose);
    upstream.on("error", onClose);
    client.on("data", onData);
    if (head.length > 0) onData(head);
  }

  /** Relays bytes both ways until either side closes, the tunnel idles out or outlives its lifetime. */
  function relay(client: net.Socket, upstream: net.Socket, upstreamReader: UpstreamReader, first: Buffer, record: DecisionRecord, release: () => void): void {
    const opened = performance.now();
    const limits = effective.limits;
    metrics.openTunnels.inc();
    let done = false;
    const tunnel: OpenTunnel = { client: record.client, finish };
    tunnels.add(tunnel);
    const lifetime = setTimeout(() => finish("lifetime-exceeded"), limits.tunnelLifetimeSeconds * 1000);
    function finish(reason: string): void {
      if (done) return;
      done = true;
      clearTimeout(lifetime);
      clearTimeout(grace);
      tunnels.delete(tunnel);
      release();
      metrics.openTunnels.dec();
      client.destroy();
      upstream.destroy();
      const toUpstream = upstream.bytesWritten;
      const fromUpstream = upstream.bytesRead;
      metrics.bytes.inc({ direction: "upstream" }, toUpstream);
      metrics.bytes.inc({ direction: "downstream" }, fromUpstream);
      audit({
        type: "connection-close",
        kind: "tunnel",
        client: record.client,
        source: record.source,
        host: record.host,
        port: record.port,
        address: record.address ?? null,
        ...(record.sni !== undefined ? { sni: record.sni } : {}),
        reason,
        bytesToUpstream: toUpstream,
        bytesFromUpstream: fromUpstream,
        durationMs: Math.round(performance.now() - opened),
      }, undefined, { soon: true });
    }
    client.setTimeout(limits.idleTimeoutSeconds * 1000, () => finish("idle-timeout"));
    upstream.setTimeout(limits.idleTimeoutSeconds * 1000, () => finish("idle-timeout"));
    client.on("error", (error) => finish(`client-${(error as NodeJS.ErrnoException).code ?? "error"}`));
    upstream.on("error", (error) => finish(upstreamFailure(error)));
    // When one side is gone, the other is ended, not destroyed: bytes still queued for it (the tail of a download)
    // must be delivered. The tunnel is finished when both are closed, or a few seconds later at most.
    let grace: NodeJS.Timeout | undefined;
    const sideClosed = (other: net.Socket) => () => {
      if (client.destroyed && upstream.destroyed) return finish("closed");
      other.end();
      // Read on (and discard) so that the other side's own end is seen: a client unpiped from a departed upstream,
      // or an upstream paused behind a write to a departed client, would otherwise sit until the grace timer.
      other.resume();
      grace ??= setTimeout(() => finish("closed"), Math.min(5000, limits.idleTimeoutSeconds * 1000));
    };
    client.on("close", sideClosed(upstream));
    upstream.on("close", sideClosed(client));
    if (first.length > 0) upstream.write(first);
    client.pipe(upstream);
    upstream.once("end", () => client.end());
    upstreamReader.start(client, upstream);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Plain HTTP (absolute-form)

  function duplicateHeader(request: http.IncomingMessage): string | undefined {
    const seen = new Set<string>();
    for (let index = 0; index < request.rawHeaders.length; index += 2) {
      const name = (request.rawHeaders[index] as string).toLowerCase();
      if (!SINGLE_HEADERS.has(name)) continue;
      if (seen.has(name)) return name;
      seen.add(name);
    }
    return undefined;
  }

  function respondRefusal(response: http.ServerResponse, refusal: Refusal, keepAlive: boolean): void {
    if (response.headersSent) {
      response.destroy();
      return;
    }
    const body = refusalBody(refusal);
    // A refused request's body is never read, and its connection is closed a moment after the answer (see
    // src/shared/refusal.ts); otherwise the connection is kept only for a well-formed, fully understood request.
    if (!closeAfterAnswerIfBodyUnread(response) && !keepAlive) response.shouldKeepAlive = false;
    response.writeHead(STATUS[refusal.reason], REASON_PHRASES[STATUS[refusal.reason]], refusalHeaders(refusal.reason, body).flat());
    response.end(body);
  }

  /** Checks that an absolute-form request is one we forward; the target, or the refusal. */
  function parseHttpTarget(request: http.IncomingMessage): { ok: true; url: URL; host: string; port: number } | { ok: false; refusal: Refusal } {
    const raw = request.url ?? "";
    const fail = (reason: RefusalReason, message: string) => ({ ok: false as const, refusal: { reason, message } });
    if (raw.startsWith("/") || raw === "*") return fail("origin-form-request", "this is a forward proxy: point HTTP_PROXY/HTTPS_PROXY at it and request absolute URLs (metrics and health are on the metrics listener)");
    if (/^https:\/\//i.test(raw)) return fail("use-connect-for-https", "send https:// URLs through a CONNECT tunnel (HTTPS_PROXY), not as plain proxy requests");
    if (!/^http:\/\//i.test(raw)) return fail("bad-request", `"${raw.slice(0, 100)}" is not an absolute http:// URL`);
    if (!FORWARDED_METHODS.has(request.method ?? "")) return fail("method-not-allowed", `method ${request.method} is not forwarded (allowed: ${[...FORWARDED_METHODS].join(", ")}; CONNECT for tunnels)`);
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return fail("bad-request", `"${raw.slice(0, 100)}" is not a valid URL`);
    }
    if (url.username !== "" || url.password !== "") return fail("bad-request", "credentials in the URL are not forwarded; send them in an Authorization header");
    const duplicate = duplicateHeader(request);
    if (duplicate !== undefined) return fail("duplicate-header", `the ${duplicate} header appears more than once`);
    const transferEncoding = request.headers["transfer-encoding"];
    if (transferEncoding !== undefined && transferEncoding.trim().toLowerCase() !== "chunked") {
      return fail("invalid-transfer-encoding", `Transfer-Encoding "${transferEncoding.slice(0, 50)}" is not forwarded; only chunked is`);
    }
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === "" ? 80 : Number(url.port);
    const hostHeader = request.headers.host;
    // Most clients send exactly the URL's authority; anything else is compared in canonical form.
    if (hostHeader !== undefined && hostHeader !== url.host) {
      // The origin routes by Host; a Host naming another site than the URL is virtual-host fronting.
      const parsed = splitHostPort(hostHeader) ?? (hostHeader.includes(":") && !hostHeader.startsWith("[") ? undefined : { host: hostHeader.replace(/^\[(.*)\]$/, "$1"), port: 80 });
      const canonical = (text: string) => parseIpLiteral(text)?.address ?? normalizeHostname(text);
      const headerHost = parsed === undefined ? undefined : canonical(parsed.host);
      if (parsed === undefined || headerHost === undefined || headerHost !== canonical(host) || parsed.port !== port) {
        return fail("host-mismatch", `the Host header "${hostHeader.slice(0, 100)}" names another site than the request URL ${url.host}`);
      }
    }
    const via = request.headers.via;
    if (via !== undefined && via.includes(viaToken)) return fail("loop-detected", "this request already passed through this proxy");
    return { ok: true, url, host, port };
  }

  async function handleHttp(request: http.IncomingMessage, response: http.ServerResponse, expectsContinue = false): Promise<void> {
    const startedAt = performance.now();
    const socket = request.socket;
    const state = connections.get(socket);
    const source = socket.remoteAddress ?? "unix";
    if (state !== undefined) state.requests += 1;
    const record = { client: "unknown", source, method: request.method ?? "", host: request.url ?? "", port: 0, startedAt };
    const refuse = (refusal: Refusal, extra: Partial<DecisionRecord> = {}) => {
      recordDecision({ ...record, ...extra }, { decision: outcomeOf(refusal.reason), reason: refusal.reason, detail: refusal.message });
      // Keep the connection only when the request was well-formed and fully understood.
      respondRefusal(response, refusal, STATUS[refusal.reason] === 403 || STATUS[refusal.reason] === 429);
    };
    const target = parseHttpTarget(request);
    if (!target.ok) return refuse(target.refusal);
    record.port = target.port;
    const decision = decide({ kind: "http", host: target.host, port: target.port, sourceAddress: source, proxyAuthorization: request.headers["proxy-authorization"] }, effective);
    Object.assign(record, { client: decision.client, host: decision.host });
    if (state !== undefined) {
      state.client = decision.client;
      if (state.hosts.size < 32) state.hosts.add(formatAuthority(decision.host, target.port));
    }
    const admitted = await admit(decision, source, "http");
    if (!admitted.ok) return refuse(admitted.refusal, { address: admitted.address });
    if (response.destroyed) return;
    const addresses = admitted.candidates.length > 1 ? admitted.candidates.map((candidate) => candidate.address) : undefined;
    const decided: DecisionRecord = { ...record, address: admitted.address, addresses, rules: decision.allow ? decision.rules : [] };
    const targets = () => (addresses ?? [admitted.address]).join(", ");

    const limits = effective.limits;
    // Unidentified clients are told apart by source address (as for rate limits): they must not share connections. A
    // connection is pooled under the address it is open to, and taken for any address the name checks out to now.
    const poolPrefix = `${rateKey(decision, source)}\0`;
    const poolKeyOf = (address: string) => `${poolPrefix}${address}\0${target.port}`;
    const pooledAddress = (): string | undefined => admitted.candidates.find((candidate) => upstreamPool.has(poolKeyOf(candidate.address)))?.address;
    const connectionTokens = new Set((request.headers.connection ?? "").toLowerCase().split(",").map((token) => token.trim()));
    // The request body as received: none, under its Content-Length, or (Node has de-chunked it) re-chunked by us.
    const contentLength = request.headers["content-length"];
    const body = request.headers["transfer-encoding"] !== undefined ? "chunked" : contentLength !== undefined && contentLength !== "0" ? "length" : "none";
    let head = `${request.method} ${target.url.pathname}${target.url.search} HTTP/1.1\r\n`;
    for (let index = 0; index < request.rawHeaders.length; index += 2) {
      const name = request.rawHeaders[index] as string;
      const lower = name.toLowerCase();
      // Expect is answered here (checkContinue), after the decision: the origin sees a plain request. The body's
      // framing is written below from what Node parsed, never left to the header loop: a client's "Connection:
      // content-length" would otherwise strip it while the body is still sent, and the origin would read the body
      // as a second request (to any virtual host, never decided or audited).
      if (HOP_BY_HOP.has(lower) || connectionTokens.has(lower) || lower === "host" || lower === "expect" || lower === "content-length") continue;
      head += `${name}: ${request.rawHeaders[index + 1] as string}\r\n`;
    }
    const framing = body === "chunked" ? "Transfer-Encoding: chunked\r\n" : contentLength !== undefined ? `Content-Length: ${contentLength}\r\n` : "";
    head += `Host: ${target.url.host}\r\nVia: ${request.httpVersion} ${viaToken}\r\n${framing}\r\n`;

    let finished = false;
    let current: Exchange | undefined;
    // The response head is written with the first body bytes or at the end (Node would not send it earlier anyway):
    // until then a body that turns out malformed at once, or never comes, is still answered with a 502 or 504
    // instead of a bare reset.
    let pendingHead: ResponseHead | undefined;
    const writePendingHead = (): boolean => {
      if (pendingHead === undefined) return true;
      const responseHead = pendingHead;
      pendingHead = undefined;
      try {
        response.writeHead(responseHead.status, responseHead.reason, responseHeaders(responseHead));
        return true;
      } catch (error) {
        fail("upstream-error", `${target.url.host} sent a response head this proxy cannot pass on: ${(error as Error).message}`, true);
        return false;
      }
    };
    // Whether the decision record has committed; until then nothing reaches the client (see mayForwardWhileCommitting).
    let committed = false;
    let answerAfterCommit: (() => void) | undefined;
    const fail = (reason: RefusalReason, message: string, recorded: boolean) => {
      if (finished) return;
      finished = true;
      current?.abort();
      if (state !== undefined) state.upstreamErrors += 1;
      const answer = () => {
        if (!recorded) refuse({ reason, message }, { address: admitted.address });
        else if (!response.headersSent) respondRefusal(response, { reason, message }, false);
        else {
          // A response under way can only be cut short. Reset, not closed: a close-delimited response (to an
          // HTTP/1.0 client) would otherwise end in a clean close and read as complete.
          if (response.socket !== null && !response.socket.destroyed) response.socket.resetAndDestroy();
          response.destroy();
        }
      };
      if (committed) answer();
      else answerAfterCommit = answer;
    };
    const lifetimeTimer = setTimeout(() => fail("upstream-timeout", `the exchange with ${target.url.host} outlived ${limits.tunnelLifetimeSeconds} s`, true), limits.tunnelLifetimeSeconds * 1000);
    lifetimeTimer.unref();
    response.on("close", () => {
      clearTimeout(lifetimeTimer);
      if (!response.writableFinished && !finished) {
        finished = true;
        current?.abort();
      }
    });
    response.on("drain", () => current?.resume());

    const send = (upstream: net.Socket, address: string, reused: boolean, retried: boolean) => {
      if (finished) {
        upstream.destroy();
        return;
      }
      // A new connection the origin closed while the decision was being committed: its events are already past.
      if (upstream.destroyed || !upstream.writable || upstream.readableEnded) {
        upstream.destroy();
        fail("upstream-reset", `${target.url.host} (${address}) closed the connection before the request was sent`, true);
        return;
      }
      const started = exchange({
        socket: upstream,
        reused,
        method: request.method ?? "GET",
        head,
        body,
        request,
        maxHeadBytes: MAX_RESPONSE_HEAD_BYTES,
        idleTimeoutMs: limits.idleTimeoutSeconds * 1000,
        onInformational: (interim) => {
          // 103 Early Hints is passed on; 100 was answered by us (checkContinue), 102 is obsolete.
          if (interim.status !== 103 || request.httpVersionMinor === 0) return;
          const links = headerValues(interim, "link");
          if (links.length === 0) return;
          // Node refuses Link values it cannot validate (even a valid comma-separated list); thrown from here it would
          // be uncaught in the upstream socket's data handler and end the process. Hints are optional: dropped.
          try {
            response.writeEarlyHints({ link: links });
          } catch (error) {
            logger.debug({ err: error, host: target.url.host }, "103 Early Hints not passed on");
          }
        },
        onHead: (responseHead) => {
          pendingHead = responseHead;
        },
        onData: (data) => (writePendingHead() ? response.write(data) : true),
        onEnd: (reusable) => {
          if (!writePendingHead()) {
            upstream.destroy();
            return;
          }
          finished = true;
          clearTimeout(lifetimeTimer);
          if (reusable) upstreamPool.give(poolKeyOf(address), upstream);
          response.end();
        },
        onError: (error, responseStarted) => {
          // A pooled connection the origin had closed: try once more on a new one, if nothing can be repeated twice.
          if (error.retryable && !retried && !responseStarted && !finished) {
            current = undefined;
            connectAndSend(true);
            return;
          }
          fail(upstreamFailure(error), `${target.url.host} (${address}): ${error.message}`, true);
        },
      });
      // The answer is read only once the decision is committed.
      if (!committed) started.pause();
      current = started;
    };

    const sendWhenConnected = (connecting: Promise<{ socket: net.Socket; address: string }>, retried: boolean) => {
      connecting.then(
        (connected) => send(connected.socket, connected.address, false, retried),
        (error: unknown) => fail(upstreamFailure(error), `could not connect to ${target.url.host} (${targets()}): ${(error as Error).message}`, true),
      );
    };
    const connectAndSend = (retried: boolean) => sendWhenConnected(dialChecked(admitted.candidates, target.port), retried);

    // Either the request goes out while its decision record commits (the answer is read only after the commit), or
    // (auditBeforeForwarding, a failing log, or a client waiting for 100 Continue) the decision is committed before
    // a byte reaches the origin; a new connection is opened meanwhile.
    // An idle connection is taken from the pool only when the request is sent on it, and never in the turn that read
    // the request: bytes an origin sent unasked on it in that turn have then been seen by the pool, which drops the
    // connection, instead of being read as this request's answer. (Until the exchange listens on it, the pool must:
    // a reset with no error listener would end the process.)
    const overlap = !expectsContinue && mayForwardWhileCommitting();
    const connecting = pooledAddress() !== undefined ? undefined : dialChecked(admitted.candidates, target.port);
    connecting?.catch(ignore);
    const sendRequest = () => {
      if (connecting !== undefined) return sendWhenConnected(connecting, false);
      if (finished) return;
      const address = pooledAddress();
      const idle = address === undefined ? undefined : upstreamPool.take(poolKeyOf(address));
      return idle !== undefined && address !== undefined ? send(idle, address, true, false) : connectAndSend(false);
    };
    // Queued before the record: at the end of this turn the request goes out first, then the record commits.
    if (overlap) setImmediate(sendRequest);
    recordDecision(decided, { decision: "allow" }, (ok) => {
      committed = true;
      setupTimers.http.observe((performance.now() - startedAt) / 1000);
      if (!ok) {
        finished = true;
        clearTimeout(lifetimeTimer);
        current?.abort();
        connecting?.then((connected) => connected.socket.destroy(), ignore);
        respondRefusal(response, { reason: "audit-unavailable", message: "the audit log cannot be written, so nothing is let through; see the proxy's log" }, false);
        return;
      }
      if (answerAfterCommit !== undefined) return answerAfterCommit();
      if (overlap) return current?.resume();
      if (expectsContinue && !response.destroyed) response.writeContinue();
      sendRequest();
    });
  }

  function headerValues(head: ResponseHead, lowerName: string): string[] {
    const values: string[] = [];
    for (let index = 0; index < head.rawHeaders.length; index += 2) if ((head.rawHeaders[index] as string).toLowerCase() === lowerName) values.push(head.rawHeaders[index + 1] as string);
    return values;
  }

  /** The origin's response headers minus hop-by-hop ones (and those its Connection header names), plus our Via. */
  function responseHeaders(head: ResponseHead): string[] {
    const headers: string[] = [];
    for (let index = 0; index < head.rawHeaders.length; index += 2) {
      const name = head.rawHeaders[index] as string;
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower) || head.connectionTokens.has(lower)) continue;
      headers.push(name, head.rawHeaders[index + 1] as string);
    }
    headers.push("Via", `1.${head.minor} ${viaToken}`);
    return headers;
  }

  /** Errors Node's parser raises before a request exists: malformed heads, oversized heads, slow heads. */
  function handleClientError(error: NodeJS.ErrnoException & { reason?: string }, socket: net.Socket): void {
    if (!socket.writable || error.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    const detail = error.reason ?? error.message;
    let refusal: Refusal;
    switch (error.code) {
      case "HPE_HEADER_OVERFLOW":
        refusal = { reason: "headers-too-large", message: `the request head is larger than ${effective.limits.maxHeaderBytes} bytes` };
        break;
      case "ERR_HTTP_REQUEST_TIMEOUT":
        refusal = { reason: "header-timeout", message: `the request head did not arrive within ${effective.limits.headerTimeoutSeconds} s` };
        break;
      case "HPE_UNEXPECTED_CONTENT_LENGTH":
        refusal = { reason: "duplicate-content-length", message: `malformed request: ${detail}` };
        break;
      case "HPE_INVALID_TRANSFER_ENCODING":
        refusal = /Content-Length/i.test(detail)
          ? { reason: "content-length-with-transfer-encoding", message: `malformed request: ${detail}` }
          : { reason: "invalid-transfer-encoding", message: `malformed request: ${detail}` };
        break;
      case "HPE_INVALID_HEADER_TOKEN":
      case "HPE_LF_EXPECTED":
      case "HPE_CR_EXPECTED":
        refusal = { reason: "invalid-header", message: `malformed request: ${detail} (obs-fold and control characters are refused)` };
        break;
      default:
        refusal = { reason: "bad-request", message: `malformed request: ${detail}` };
    }
    recordDecision({ client: "unknown", source: socket.remoteAddress ?? "unix", method: "", host: "", port: 0, startedAt: performance.now() }, { decision: "deny", reason: refusal.reason, detail: refusal.message });
    refuseRaw(socket, refusal);
  }

  function onConnection(socket: net.Socket): void {
    const state: ConnectionState = { startedAt: performance.now(), source: socket.remoteAddress ?? "unix", client: "unknown", requests: 0, hosts: new Set(), tunnel: false, upstreamErrors: 0 };
    connections.set(socket, state);
    socket.once("close", () => {
      connections.delete(socket);
      if (state.tunnel || state.requests === 0) return;
      metrics.bytes.inc({ direction: "upstream" }, socket.bytesRead);
      metrics.bytes.inc({ direction: "downstream" }, socket.bytesWritten);
      audit({
        type: "connection-close",
        kind: "http",
        client: state.client,
        source: state.source,
        hosts: [...state.hosts],
        requests: state.requests,
        upstreamErrors: state.upstreamErrors,
        reason: "closed",
        bytesToUpstream: socket.bytesRead,
        bytesFromUpstream: socket.bytesWritten,
        durationMs: Math.round(performance.now() - state.startedAt),
      }, undefined, { soon: true });
    });
  }

  function applyTimeouts(server: http.Server): void {
    const limits = effective.limits;
    server.headersTimeout = limits.headerTimeoutSeconds * 1000;
    server.requestTimeout = Math.max(limits.tunnelLifetimeSeconds * 1000, server.headersTimeout);
    server.keepAliveTimeout = limits.idleTimeoutSeconds * 1000;
    // No socket idle timeout on client connections: while a request waits on its upstream the client side is
    // idle by design, and the upstream's own idle timeout answers it with a 504 instead of a silent close.
    server.timeout = 0;
  }

  function createFrontServer(): http.Server {
    const limits = effective.limits;
    const server = http.createServer({
      maxHeaderSize: limits.maxHeaderBytes,
      requireHostHeader: false,
      // Checked often enough that the header timeout holds to within half a second.
      connectionsCheckingInterval: Math.min(500, limits.headerTimeoutSeconds * 500),
      headersTimeout: limits.headerTimeoutSeconds * 1000,
      requestTimeout: Math.max(limits.tunnelLifetimeSeconds * 1000, limits.headerTimeoutSeconds * 1000),
      keepAliveTimeout: limits.idleTimeoutSeconds * 1000,
      noDelay: true,
    });
    applyTimeouts(server);
    server.on("connection", onConnection);
    const serveHttp = (expectsContinue: boolean) => (request: http.IncomingMessage, response: http.ServerResponse) => {
      handleHttp(request, response, expectsContinue).catch((error: unknown) => {
        logger.error({ err: error }, "request handler failed");
        respondRefusal(response, { reason: "upstream-error", message: "internal error in the proxy" }, false);
      });
    };
    server.on("request", serveHttp(false));
    // Expect: 100-continue is answered after the decision is recorded, so a refused upload is never read.
    server.on("checkContinue", serveHttp(true));
    server.on("connect", (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      handleConnect(request, socket, head).catch((error: unknown) => {
        logger.error({ err: error }, "CONNECT handler failed");
        socket.destroy();
      });
    });
    server.on("upgrade", (request: http.IncomingMessage, socket: net.Socket) => {
      const record = { client: "unknown", source: socket.remoteAddress ?? "unix", method: request.method ?? "", host: request.url ?? "", port: 0, startedAt: performance.now() };
      const refusal: Refusal = { reason: "upgrade-not-supported", message: "protocol upgrades (WebSocket over plain http) are not forwarded; use wss:// through CONNECT" };
      recordDecision(record, { decision: "deny", reason: refusal.reason, detail: refusal.message });
      refuseRaw(socket, refusal);
    });
    server.on("clientError", handleClientError);
    return server;
  }

  function metricsHandler(request: http.IncomingMessage, response: http.ServerResponse): void {
    const path = (request.url ?? "").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/healthz") {
      // Unhealthy while the audit log refuses writes: every request is refused then, and a probe should say so. The
      // next successful commit (any request's) makes it healthy again.
      const problem = closing || servers.length === 0 ? "not listening" : !auditHealthy() ? "audit log failing: every request is refused (audit-unavailable); see the proxy's log" : undefined;
      response.writeHead(problem === undefined ? 200 : 503, { "Content-Type": "text/plain; charset=utf-8" }).end(problem === undefined ? "ok\n" : `${problem}\n`);
      return;
    }
    if (path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => response.writeHead(200, { "Content-Type": metrics.registry.contentType }).end(text),
        (error: unknown) => {
          logger.error({ err: error }, "metrics collection failed");
          response.writeHead(500).end();
        },
      );
      return;
    }
    response.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("not found: try /metrics or /healthz\n");
  }

  return {
    async listen(target) {
      if (closing) throw new Error("the proxy is closed");
      const server = createFrontServer();
      const address = await listenOn(server, target);
      servers.push({ server, address });
      selfAddresses = selfAddressesOf([...servers, ...metricsServers].map((entry) => entry.address));
      logger.info({ address }, "egress proxy listening");
      return address;
    },
    async listenMetrics(target) {
      if (closing) throw new Error("the proxy is closed");
      const server = http.createServer(metricsHandler);
      const address = await listenOn(server, target);
      metricsServers.push({ server, address });
      selfAddresses = selfAddressesOf([...servers, ...metricsServers].map((entry) => entry.address));
      return address;
    },
    addresses: () => servers.map((entry) => entry.address),
    metricsAddresses: () => metricsServers.map((entry) => entry.address),
    reload(next) {
      let compiled: EgressPolicy;
      try {
        compiled = compilePolicy(next);
        const conflicts = clientConflicts([...compiled.clients, ...runtimeClients.values()]);
        if (conflicts.length > 0) throw new PolicyError(conflicts);
      } catch (error) {
        const problems = error instanceof PolicyError ? error.problems : [(error as Error).message];
        metrics.policyReloads.inc({ result: "rejected" });
        logger.error({ problems }, "new egress policy is invalid; keeping the current one");
        return { ok: false, problems };
      }
      configPolicy = compiled;
      rebuildEffective();
      for (const { server } of servers) applyTimeouts(server);
      metrics.policyReloads.inc({ result: "applied" });
      logger.info({ rules: compiled.rules.length, clients: compiled.clients.length }, "egress policy reloaded");
      return { ok: true };
    },
    addClient(client) {
      const problems: string[] = [];
      const compiled = compileClient(client, [], problems);
      if (compiled === undefined) throw new PolicyError(problems);
      const conflicts = clientConflicts([...effective.clients, compiled]);
      if (conflicts.length > 0) throw new PolicyError(conflicts);
      const key = Symbol(compiled.name);
      runtimeClients.set(key, compiled);
      rebuildEffective();
      return {
        name: compiled.name,
        remove() {
          if (!runtimeClients.delete(key)) return;
          rebuildEffective();
          for (const tunnel of [...tunnels]) if (tunnel.client === compiled.name) tunnel.finish("client-removed");
          upstreamPool.clear((poolKey) => poolKey.startsWith(`client:${compiled.name}\0`));
        },
      };
    },
    policy: () => effective,
    stats: () => ({ openTunnels: tunnels.size, openConnections: connections.size }),
    metrics,
    async close() {
      closing = true;
      const all = [...servers, ...metricsServers];
      servers.length = 0;
      metricsServers.length = 0;
      const closed = all.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
      for (const tunnel of [...tunnels]) tunnel.finish("proxy-closed");
      for (const { server } of all) server.closeAllConnections();
      for (const socket of connections.keys()) socket.destroy();
      upstreamPool.clear();
      // Records still queued for this turn are written before the caller closes the audit log.
      recorder?.flush();
      await Promise.all(closed);
    },
  };
}
