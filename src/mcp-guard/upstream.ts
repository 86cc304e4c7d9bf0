// One upstream MCP server as the guard sees it: a client connection that is (re)established in the background with
// backoff, the tool list from its last sync, and calls that fail fast and clearly while it is away. Credentials are
// resolved when a connection is made (so a rotated Secret is picked up on reconnect) and live only in the transport.
import { Client, ProtocolError } from "@modelcontextprotocol/client";
import type { CallToolResult, Progress, StandardSchemaV1, Tool, Transport } from "@modelcontextprotocol/client";
import type { Logger } from "../shared/index.ts";
import { NodeHttpClientTransport, UpstreamAnswerTooLargeError } from "./http-transport.ts";
import type { Redactor } from "./redact.ts";
import { ExactEnvironmentStdioTransport } from "./stdio-transport.ts";

export type UpstreamSpec =
  | { kind: "stdio"; command: string; args: readonly string[]; env: () => Record<string, string> }
  | {
      kind: "http";
      url: string;
      headers: () => Record<string, string>;
      /** A header that tells this upstream which agent calls (the builtin sandbox runner's X-Perimeter-Caller). */
      callerHeader?: string;
    };

export type UpstreamStateName = "connecting" | "ready" | "unavailable" | "closed";

export interface UpstreamState {
  state: UpstreamStateName;
  /** Why it is unavailable (redacted). */
  error?: string;
  since: number;
  /** Protocol version negotiated on the current connection. */
  protocolVersion?: string;
}

export class UpstreamUnavailableError extends Error {
  constructor(server: string, reason: string) {
    super(`upstream "${server}" is unavailable (${reason}); the guard keeps reconnecting in the background, try again later`);
    this.name = "UpstreamUnavailableError";
  }
}

export interface UpstreamOptions {
  logger: Logger;
  redactor: Redactor;
  /** Called after every successful tool sync with the complete list. */
  onTools: (server: string, tools: Tool[]) => void;
  onState?: (server: string, state: UpstreamState) => void;
  connectTimeoutMs: number;
  /** HTTP upstreams: how long a request's answer may stay silent before it is abandoned (past the call timeout). */
  idleTimeoutMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  /** Re-list tools this often even without list_changed, to catch definitions changed silently. */
  resyncIntervalMs?: number;
  clientInfo?: { name: string; version: string };
}

export interface CallOptions {
  signal: AbortSignal;
  timeoutMs: number;
  onprogress?: (progress: Progress) => void;
  /** The authenticated agent; sent only to an upstream whose spec names a callerHeader. */
  caller?: string;
}

export interface Upstream {
  readonly name: string;
  start(): void;
  state(): UpstreamState;
  tools(): Tool[] | undefined;
  callTool(tool: string, args: Record<string, unknown>, options: CallOptions): Promise<CallToolResult>;
  resync(): Promise<void>;
  /** The stdio child's pid, for operators and tests. */
  pid(): number | undefined;
  close(): Promise<void>;
}

type WireCodec = ReturnType<Client["_wireCodec"]>;

/**
 * The SDK Client with one cost removed from every tools/call. Without an explicit result schema, the SDK's request()
 * builds the result validator anew per call, and to do so first validates `undefined` against the method's result
 * schema (to learn whether the method exists in the era) and formats the resulting zod error: 3 % of the guard's CPU
 * in a profile. Here that validator is built once per wire codec (era), from the codec's own validateResult, and
 * passed as the schema: the same validation, the same errors, through the SDK's public request(request, schema)
 * form. Everything else (callTool's output-schema check, 2026-07-28 header mirroring, timeouts) is the SDK's.
 */
export class GuardClient extends Client {
  private readonly callToolValidators = new WeakMap<WireCodec, StandardSchemaV1>();

  constructor(...parameters: ConstructorParameters<typeof Client>) {
    super(...parameters);
    const request = Client.prototype.request;
    const validatorFor = (codec: WireCodec): StandardSchemaV1 => {
      let validator = this.callToolValidators.get(codec);
      if (validator === undefined) {
        validator = {
          "~standard": {
            version: 1,
            vendor: "mcp-wire-codec",
            validate: (value: unknown) => {
              const outcome = codec.validateResult("tools/call", value);
              return outcome.ok ? { value: outcome.value } : { issues: [{ message: outcome.reason === "invalid" ? outcome.message : "not-in-era: tools/call" }] };
            },
          },
        };
        this.callToolValidators.set(codec, validator);
      }
      return validator;
    };
    // An own property: request() is overloaded, which a subclass method cannot restate simply.
    this.request = ((message: { method: string }, schemaOrOptions?: unknown, options?: unknown) => {
      // Only once a version is negotiated: before that the SDK resolves a bootstrap codec of its own.
      if (message.method === "tools/call" && !isStandardSchema(schemaOrOptions) && this.getNegotiatedProtocolVersion() !== undefined) {
        return request.call(this, message as never, validatorFor(this._wireCodec()), schemaOrOptions as never);
      }
      return request.call(this, message as never, schemaOrOptions as never, options as never);
    }) as Client["request"];
  }
}

function isStandardSchema(value: unknown): boolean {
  return typeof value === "object" && value !== null && "~standard" in value;
}

export function createUpstream(name: string, spec: UpstreamSpec, options: UpstreamOptions): Upstream {
  const { logger, redactor } = options;
  const backoff = options.backoff ?? { initialMs: 250, maxMs: 30_000 };
  let current: { client: Client; transport: Transport } | undefined;
  /** The client of a connection attempt in progress: close() must end it too (a stdio child would outlive the guard). */
  let attempting: Client | undefined;
  let status: UpstreamState = { state: "connecting", since: Date.now() };
  let tools: Tool[] | undefined;
  let attempt = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let resyncTimer: NodeJS.Timeout | undefined;
  let connectedAt = 0;
  let closing = false;
  let syncing: Promise<void> | undefined;
  let resyncAgain = false;

  const setState = (next: Omit<UpstreamState, "since">) => {
    status = { ...next, since: Date.now() };
    options.onState?.(name, status);
  };

  const describe = (error: unknown): string => redactor.text(error instanceof Error ? error.message : String(error)).slice(0, 500);

  const scheduleReconnect = () => {
    if (closing || retryTimer !== undefined) return;
    // A connection that stayed up a while earns a fresh backoff; a crash loop keeps doubling up to the cap.
    if (connectedAt !== 0 && Date.now() - connectedAt > 10_000) attempt = 0;
    const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 16));
    attempt += 1;
    const jittered = Math.round(delay * (0.8 + Math.random() * 0.4));
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void connect();
    }, jittered);
    retryTimer.unref();
  };

  const dropConnection = (reason: string) => {
    const previous = current;
    current = undefined;
    if (previous !== undefined) {
      previous.client.onclose = undefined;
      void previous.client.close().catch(() => undefined);
    }
    if (closing) return;
    setState({ state: "unavailable", error: reason });
    logger.warn({ event: "upstream-disconnect", server: name, reason }, "upstream unavailable; reconnecting");
    scheduleReconnect();
  };

  const sync = (): Promise<void> => {
    // Coalesce: list_changed bursts and the periodic timer share one listing at a time.
    if (syncing !== undefined) {
      resyncAgain = true;
      return syncing;
    }
    syncing = (async () => {
      do {
        resyncAgain = false;
        const connection = current;
        if (connection === undefined) return;
        const result = await connection.client.listTools(undefined, { timeout: options.connectTimeoutMs, cacheMode: "bypass" });
        if (connection !== current) return;
        tools = result.tools;
        options.onTools(name, result.tools);
      } while (resyncAgain);
    })().finally(() => {
      syncing = undefined;
    });
    return syncing;
  };

  const makeTransport = (): Transport => {
    if (spec.kind === "stdio") {
      return new ExactEnvironmentStdioTransport({
        command: spec.command,
        args: spec.args,
        env: spec.env(),
        onStderrLine: (line) => logger.debug({ event: "upstream-stderr", server: name, line: redactor.text(line) }),
      });
    }
    // node:http with keep-alive (http-transport.ts). It follows no redirect at all: the credential headers would
    // follow it. A request that stays silent well past the call timeout is abandoned (the Client times out first).
    return new NodeHttpClientTransport(new URL(spec.url), { headers: spec.headers(), idleTimeoutMs: options.idleTimeoutMs ?? options.connectTimeoutMs + 5_000 });
  };

  const connect = async (): Promise<void> => {
    if (closing) return;
    setState({ state: "connecting" });
    let client: Client | undefined;
    try {
      const transport = makeTransport();
      client = new GuardClient(options.clientInfo ?? { name: "perimeter-mcp-guard", version: "0.1.0" }, {
        capabilities: {},
        // stdio: the plain initialize handshake (a probe would spawn a second child). HTTP: probe for 2026-07-28
        // and fall back to 2025-11-25.
        ...(spec.kind === "http" ? { versionNegotiation: { mode: "auto" as const } } : {}),
        listChanged: {
          tools: {
            autoRefresh: false,
            debounceMs: 100,
            onChanged: () => {
              void sync().catch((error: unknown) => logger.warn({ event: "upstream-sync-error", server: name, error: describe(error) }));
            },
          },
        },
      });
      const connection = { client, transport };
      client.onclose = () => {
        if (current === connection) dropConnection("the connection closed");
      };
      client.onerror = (error) => logger.debug({ event: "upstream-error", server: name, error: describe(error) });
      attempting = client;
      await client.connect(transport, { timeout: options.connectTimeoutMs });
      attempting = undefined;
      if (closing) {
        void client.close().catch(() => undefined);
        return;
      }
      current = connection;
      connectedAt = Date.now();
      await sync();
      const version = client.getNegotiatedProtocolVersion();
      setState({ state: "ready", ...(version === undefined ? {} : { protocolVersion: version }) });
      logger.info({ event: "upstream-connect", server: name, protocolVersion: version, tools: tools?.length ?? 0 }, "upstream connected");
    } catch (error) {
      if (attempting === client) attempting = undefined;
      const reason = describe(error);
      if (client !== undefined && current?.client === client) {
        dropConnection(reason);
        return;
      }
      if (client !== undefined) void client.close().catch(() => undefined);
      if (closing) return;
      setState({ state: "unavailable", error: reason });
      logger.warn({ event: "upstream-connect-error", server: name, error: reason }, "cannot connect to upstream; will retry");
      scheduleReconnect();
    }
  };

  return {
    name,
    start() {
      void connect();
      if (options.resyncIntervalMs !== undefined && options.resyncIntervalMs > 0) {
        resyncTimer = setInterval(() => {
          if (status.state === "ready") void sync().catch((error: unknown) => logger.warn({ event: "upstream-sync-error", server: name, error: describe(error) }));
        }, options.resyncIntervalMs);
        resyncTimer.unref();
      }
    },
    state: () => status,
    tools: () => tools,
    async callTool(tool, args, callOptions) {
      const connection = current;
      if (connection === undefined || status.state !== "ready") throw new UpstreamUnavailableError(name, status.error ?? status.state);
      try {
        return (await connection.client.callTool(
          { name: tool, arguments: args },
          {
            signal: callOptions.signal,
            timeout: callOptions.timeoutMs,
            ...(callOptions.onprogress === undefined ? {} : { onprogress: callOptions.onprogress, resetTimeoutOnProgress: false }),
            // Per request: one connection carries every agent's calls.
            ...(spec.kind === "http" && spec.callerHeader !== undefined && callOptions.caller !== undefined ? { headers: { [spec.callerHeader]: callOptions.caller } } : {}),
          },
        )) as CallToolResult;
      } catch (error) {
        // The server answered with a JSON-RPC error, the answer was refused for its size, or the caller went away: the
        // connection is fine. Anything else (a dead child, a refused socket, an expired HTTP session) means reconnect.
        const connectionFine = error instanceof ProtocolError || error instanceof UpstreamAnswerTooLargeError || callOptions.signal.aborted || /timed? ?out/i.test(String((error as Error).message));
        if (!connectionFine && current === connection) {
          dropConnection(describe(error));
        }
        throw error;
      }
    },
    resync: () => sync(),
    pid: () => (current?.transport instanceof ExactEnvironmentStdioTransport ? current.transport.pid : undefined),
    async close() {
      closing = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      if (resyncTimer !== undefined) clearInterval(resyncTimer);
      const connection = current;
      current = undefined;
      status = { state: "closed", since: Date.now() };
      const pending = attempting;
      attempting = undefined;
      if (pending !== undefined) await pending.close().catch(() => undefined);
      if (connection !== undefined) {
        connection.client.onclose = undefined;
        await connection.client.close().catch(() => undefined);
      }
    },
  };
}
