// Sending a request to a provider. The provider's host is resolved once, every address is checked against the SSRF
// deny set (src/net), and the connection is made to the checked address through a `lookup` that can only return it —
// Node never resolves the name again. TLS still verifies the certificate against the provider's host name (SNI =
// that name). A provider with `allowPrivateAddress: true` (an in-cluster vLLM/Ollama) is the one exception to the
// deny set; it is still resolved once and dialled at the resolved address.
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import type { LookupFunction } from "node:net";
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { resolveChecked } from "../net/index.ts";
import type { CheckedAddress, Resolver } from "../net/index.ts";
import type { LlmProviderConfig } from "../config/index.ts";
import { PerimeterError } from "../shared/index.ts";
import type { ProxyError } from "./errors.ts";

export interface UpstreamProvider {
  readonly name: string;
  readonly config: LlmProviderConfig;
  /** From the proxy's own environment (apiKeySecret); undefined for a keyless local server. */
  readonly apiKey: string | undefined;
}

export type UpstreamOutcome =
  | { ok: true; response: IncomingMessage; request: ClientRequest }
  | { ok: false; error: ProxyError; /** Worth trying the failover provider. */ retryable: boolean };

export interface UpstreamSend {
  readonly provider: UpstreamProvider;
  /** Path below the provider's base URL, e.g. `/chat/completions`. */
  readonly path: string;
  readonly headers: OutgoingHttpHeaders;
  /** A string, so that Node sends headers and body in one write. */
  readonly body: string;
  /** Called as soon as the request exists, so the caller can destroy it when the agent goes away. */
  readonly onRequest: (request: ClientRequest) => void;
}

export interface UpstreamDialer {
  send(options: UpstreamSend): Promise<UpstreamOutcome>;
  close(): void;
}

export interface UpstreamDialerOptions {
  readonly resolver: Resolver;
  /** Explicit exceptions to the deny set for every provider (tests map a name to loopback this way). */
  readonly allowCidrs?: readonly string[];
  /** Extra trusted CA certificates for provider TLS; the system store is used otherwise. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** How long a checked resolution is reused. @default 30000 */
  readonly resolveTtlMs?: number;
  readonly now?: () => number;
}

const EVERY_ADDRESS = ["0.0.0.0/0", "::/0"];

interface ParsedBase {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly basePath: string;
}

function parseBase(baseUrl: string): ParsedBase {
  const url = new URL(baseUrl);
  const secure = url.protocol === "https:";
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return { secure, host, port: url.port === "" ? (secure ? 443 : 80) : Number(url.port), basePath: url.pathname.replace(/\/+$/, "") };
}

/**
 * A lookup that answers with the checked addresses only, so that Node never resolves the name itself. Given several
 * (A and AAAA, or several of one family), Node's own Happy Eyeballs (`autoSelectFamily`, on by default) asks for all
 * of them and falls over from one that fails or stays silent for 250 ms to the next.
 */
function pinnedLookup(candidates: readonly CheckedAddress[]): LookupFunction {
  const first = candidates[0] as CheckedAddress;
  return (_hostname, options, callback) => {
    if (options.all === true) callback(null, candidates.map((candidate) => ({ ...candidate })));
    else callback(null, first.address, first.family);
  };
}

function connectionError(provider: string, timeoutSeconds: number, error: NodeJS.ErrnoException): ProxyError {
  if (error.code === "ETIMEDOUT" || error.name === "UpstreamTimeoutError") return { kind: "upstream-timeout", provider, timeoutSeconds };
  return { kind: "upstream-unavailable", provider, detail: error.code ?? error.message };
}

class UpstreamTimeoutError extends PerimeterError {
  constructor() {
    super("timeout", "upstream timed out");
    this.name = "UpstreamTimeoutError";
  }
}

export function createUpstreamDialer(options: UpstreamDialerOptions): UpstreamDialer {
  const now = options.now ?? Date.now;
  const ttl = options.resolveTtlMs ?? 30_000;
  const agents = new Map<string, http.Agent>();
  const resolutions = new Map<string, { candidates: readonly CheckedAddress[]; expiresAt: number }>();
  const bases = new Map<string, ParsedBase>();

  const agentFor = (provider: UpstreamProvider, base: ParsedBase): http.Agent => {
    const key = `${provider.name}|${provider.config.baseUrl}`;
    let agent = agents.get(key);
    if (agent === undefined) {
      const common = { keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 64 };
      agent = base.secure ? new https.Agent({ ...common, ...(options.ca === undefined ? {} : { ca: options.ca as string | Buffer | Array<string | Buffer> }) }) : new http.Agent(common);
      agents.set(key, agent);
    }
    return agent;
  };

  const checkedAddresses = async (provider: UpstreamProvider, host: string): Promise<{ ok: true; candidates: readonly CheckedAddress[] } | { ok: false; error: ProxyError; retryable: boolean }> => {
    const cacheKey = `${host}|${provider.config.allowPrivateAddress}`;
    const cached = resolutions.get(cacheKey);
    if (cached !== undefined && cached.expiresAt > now()) return { ok: true, candidates: cached.candidates };
    const allowCidrs = provider.config.allowPrivateAddress ? EVERY_ADDRESS : (options.allowCidrs ?? []);
    const result = await resolveChecked(host, { resolver: options.resolver, allowCidrs });
    if (!result.ok) {
      if (result.reason === "dns-failure") return { ok: false, error: { kind: "upstream-unavailable", provider: provider.name, detail: `cannot resolve ${host}` }, retryable: true };
      return {
        ok: false,
        error: { kind: "upstream-refused", provider: provider.name, detail: `${result.detail}; set allowPrivateAddress: true on this provider only if it is an in-cluster service` },
        retryable: true,
      };
    }
    resolutions.set(cacheKey, { candidates: result.candidates, expiresAt: now() + ttl });
    return { ok: true, candidates: result.candidates };
  };

  return {
    async send({ provider, path, headers, body, onRequest }) {
      let base = bases.get(provider.config.baseUrl);
      if (base === undefined) {
        base = parseBase(provider.config.baseUrl);
        bases.set(provider.config.baseUrl, base);
      }
      const checked = await checkedAddresses(provider, base.host);
      if (!checked.ok) return checked;
      const timeoutSeconds = provider.config.timeoutSeconds;
      const requestOptions: https.RequestOptions = {
        host: base.host,
        port: base.port,
        method: "POST",
        path: `${base.basePath}${path}`,
        headers,
        agent: agentFor(provider, base),
        lookup: pinnedLookup(checked.candidates),
        // SNI and certificate verification use the provider's name, not the address we dial.
        ...(base.secure && isIP(base.host) === 0 ? { servername: base.host } : {}),
      };
      return new Promise<UpstreamOutcome>((resolve) => {
        const request = (base.secure ? https : http).request(requestOptions);
        onRequest(request);
        let settled = false;
        // Idle timeout on the socket: covers connect, waiting for headers, and gaps between streamed chunks.
        request.setTimeout(timeoutSeconds * 1000, () => request.destroy(new UpstreamTimeoutError()));
        request.once("response", (response) => {
          settled = true;
          resolve({ ok: true, response, request });
        });
        request.on("error", (error: NodeJS.ErrnoException) => {
          if (settled) return;
          settled = true;
          resolve({ ok: false, error: connectionError(provider.name, timeoutSeconds, error), retryable: true });
        });
        request.end(body);
      });
    },

    close() {
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}
