// One upstream MCP server as the guard sees it: a client connection that is (re)established in the background with
// backoff, the tool list from its last sync, and calls that fail fast and clearly while it is away. Credentials are
// resolved when a connection is made (so a rotated Secret is picked up on reconnect) and live only in the transport.
import { ProtocolError } from "@modelcontextprotocol/client";
import type { CallToolResult, Client, Progress, Tool, Transport } from "@modelcontextprotocol/client";
import type { Logger } from "../shared/index.ts";
import { GuardClient } from "./guard-client.ts";
import { NodeHttpClientTransport, UpstreamAnswerTooLargeError } from "./http-transport.ts";
import type { Redactor } from "./redact.ts";
import { ExactEnvironmentStdioTransport } from "./stdio-transport.ts";
// errors.ts directly: this module is loaded where the rest of shared/ (pino) need not be.
import { PerimeterError } from "../shared/errors.ts";

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

export { GuardClient } from "./guard-client.ts";

export class UpstreamUnavailableError extends PerimeterError {
  constructor(server: string, reason: string) {
    super("unavailable", `upstream "${server}" is unavailable (${reason}); the guard keeps reconnecting in the background, try again later`);
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

const DEFAULT_BACKOFF = { initialMs: 250, maxMs: 30_000 };
/**
 * An HTTP upstream that refuses the connection before it was ever connected is most likely still starting (under
 * `perimeter up` or systemd the guard and its upstreams start together): for this long after start() a refusal is
 * retried every REFUSED_RETRY_MS, not with the doubling backoff, so the guard is ready within milliseconds of its
 * upstream instead of a backoff step later. A refused connection on loopback costs a few microseconds.
 */
export const START_GRACE_MS = 10_000;
const REFUSED_RETRY_MS = 20;

/** Whether an error is, or was caused by, a refused TCP connection (nobody listening yet). */
function isConnectionRefused(error: unknown): boolean {
  for (let cause = error, depth = 0; cause !== undefined && cause !== null && depth < 8; depth += 1) {
    if ((cause as { code?: unknown }).code === "ECONNREFUSED") return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

export function createUpstream(name: string, spec: UpstreamSpec, options: UpstreamOptions): Upstream {
  return new UpstreamConnection(name, spec, options);
}

/**
 * One upstream's connection and its lifecycle: connecting → ready ⇄ unavailable (reconnecting with backoff) → closed.
 * Its methods are short on purpose: each step of the lifecycle is one of them.
 */
class UpstreamConnection implements Upstream {
  readonly name: string;
  private readonly spec: UpstreamSpec;
  private readonly options: UpstreamOptions;
  private readonly backoff: { initialMs: number; maxMs: number };
  private current: { client: Client; transport: Transport } | undefined;
  /** The client of a connection attempt in progress: close() must end it too (a stdio child would outlive the guard). */
  private attempting: Client | undefined;
  private status: UpstreamState = { state: "connecting", since: Date.now() };
  private toolList: Tool[] | undefined;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** When start() ran (monotonic: a clock stepped back must not stretch the fast path); refusals before the first connection are retried fast until START_GRACE_MS after it. */
  private startedAt = 0;
  /** Whether the refusal fast path has logged its one warning. */
  private refusalLogged = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private connectedAt = 0;
  private closing = false;
  private syncing: Promise<void> | undefined;
  private resyncAgain = false;

  constructor(name: string, spec: UpstreamSpec, options: UpstreamOptions) {
    this.name = name;
    this.spec = spec;
    this.options = options;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  start(): void {
    this.startedAt = performance.now();
    void this.connect();
    const interval = this.options.resyncIntervalMs;
    if (interval !== undefined && interval > 0) {
      this.resyncTimer = setInterval(() => {
        if (this.status.state === "ready") this.syncInBackground();
      }, interval);
      this.resyncTimer.unref();
    }
  }

  state(): UpstreamState {
    return this.status;
  }

  tools(): Tool[] | undefined {
    return this.toolList;
  }

  resync(): Promise<void> {
    return this.sync();
  }

  pid(): number | undefined {
    return this.current?.transport instanceof ExactEnvironmentStdioTransport ? this.current.transport.pid : undefined;
  }

  async callTool(tool: string, args: Record<string, unknown>, callOptions: CallOptions): Promise<CallToolResult> {
    const connection = this.current;
    if (connection === undefined || this.status.state !== "ready") throw new UpstreamUnavailableError(this.name, this.status.error ?? this.status.state);
    const { spec } = this;
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
      if (!connectionFine && this.current === connection) this.dropConnection(this.describe(error));
      throw error;
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.resyncTimer !== undefined) clearInterval(this.resyncTimer);
    const connection = this.current;
    this.current = undefined;
    this.status = { state: "closed", since: Date.now() };
    const pending = this.attempting;
    this.attempting = undefined;
    if (pending !== undefined) await pending.close().catch(() => undefined);
    if (connection !== undefined) {
      connection.client.onclose = undefined;
      await connection.client.close().catch(() => undefined);
    }
  }

  private setState(next: Omit<UpstreamState, "since">): void {
    this.status = { ...next, since: Date.now() };
    this.options.onState?.(this.name, this.status);
  }

  private describe(error: unknown): string {
    return this.options.redactor.text(error instanceof Error ? error.message : String(error)).slice(0, 500);
  }

  private syncInBackground(): void {
    void this.sync().catch((error: unknown) => this.options.logger.warn({ event: "upstream-sync-error", server: this.name, error: this.describe(error) }));
  }

  /** The upstream refused the connection before it was ever connected, within START_GRACE_MS of start(). */
  private stillStarting(error: unknown): boolean {
    return this.spec.kind === "http" && this.connectedAt === 0 && performance.now() - this.startedAt < START_GRACE_MS && isConnectionRefused(error);
  }

  private scheduleFastRetry(): void {
    if (this.closing || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, REFUSED_RETRY_MS);
    this.retryTimer.unref();
  }

  private scheduleReconnect(): void {
    if (this.closing || this.retryTimer !== undefined) return;
    // A connection that stayed up a while earns a fresh backoff; a crash loop keeps doubling up to the cap.
    if (this.connectedAt !== 0 && Date.now() - this.connectedAt > 10_000) this.attempt = 0;
    const delay = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(this.attempt, 16));
    this.attempt += 1;
    const jittered = Math.round(delay * (0.8 + Math.random() * 0.4));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, jittered);
    this.retryTimer.unref();
  }

  private dropConnection(reason: string): void {
    const previous = this.current;
    this.current = undefined;
    if (previous !== undefined) {
      previous.client.onclose = undefined;
      void previous.client.close().catch(() => undefined);
    }
    if (this.closing) return;
    this.setState({ state: "unavailable", error: reason });
    this.options.logger.warn({ event: "upstream-disconnect", server: this.name, reason }, "upstream unavailable; reconnecting");
    this.scheduleReconnect();
  }

  private sync(): Promise<void> {
    // Coalesce: list_changed bursts and the periodic timer share one listing at a time.
    if (this.syncing !== undefined) {
      this.resyncAgain = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      do {
        this.resyncAgain = false;
        const connection = this.current;
        if (connection === undefined) return;
        const result = await connection.client.listTools(undefined, { timeout: this.options.connectTimeoutMs, cacheMode: "bypass" });
        if (connection !== this.current) return;
        this.toolList = result.tools;
        this.options.onTools(this.name, result.tools);
      } while (this.isResyncDue());
    })().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /** (A method, so that TypeScript does not keep its narrowing of `resyncAgain` across an await.) */
  private isResyncDue(): boolean {
    return this.resyncAgain;
  }

  private makeTransport(): Transport {
    const { spec, options, name } = this;
    if (spec.kind === "stdio") {
      return new ExactEnvironmentStdioTransport({
        command: spec.command,
        args: spec.args,
        env: spec.env(),
        onStderrLine: (line) => options.logger.debug({ event: "upstream-stderr", server: name, line: options.redactor.text(line) }),
      });
    }
    // node:http with keep-alive (http-transport.ts). It follows no redirect at all: the credential headers would
    // follow it. A request that stays silent well past the call timeout is abandoned (the Client times out first).
    return new NodeHttpClientTransport(new URL(spec.url), { headers: spec.headers(), idleTimeoutMs: options.idleTimeoutMs ?? options.connectTimeoutMs + 5_000 });
  }

  private makeClient(): Client {
    return new GuardClient(this.options.clientInfo ?? { name: "perimeter-mcp-guard", version: "0.1.0" }, {
      capabilities: {},
      // stdio: the plain initialize handshake (a probe would spawn a second child). HTTP: probe for 2026-07-28 and
      // fall back to 2025-11-25.
      ...(this.spec.kind === "http" ? { versionNegotiation: { mode: "auto" as const } } : {}),
      listChanged: { tools: { autoRefresh: false, debounceMs: 100, onChanged: () => this.syncInBackground() } },
    });
  }

  private async connect(): Promise<void> {
    if (this.closing) return;
    this.setState({ state: "connecting" });
    let client: Client | undefined;
    try {
      const transport = this.makeTransport();
      client = this.makeClient();
      const connection = { client, transport };
      client.onclose = () => {
        if (this.current === connection) this.dropConnection("the connection closed");
      };
      client.onerror = (error) => this.options.logger.debug({ event: "upstream-error", server: this.name, error: this.describe(error) });
      this.attempting = client;
      await client.connect(transport, { timeout: this.options.connectTimeoutMs });
      this.attempting = undefined;
      if (this.closing) {
        void client.close().catch(() => undefined);
        return;
      }
      this.current = connection;
      this.connectedAt = Date.now();
      await this.sync();
      const version = client.getNegotiatedProtocolVersion();
      this.setState({ state: "ready", ...(version === undefined ? {} : { protocolVersion: version }) });
      this.options.logger.info({ event: "upstream-connect", server: this.name, protocolVersion: version, tools: this.toolList?.length ?? 0 }, "upstream connected");
    } catch (error) {
      this.connectFailed(client, error);
    }
  }

  private connectFailed(client: Client | undefined, error: unknown): void {
    if (this.attempting === client) this.attempting = undefined;
    const reason = this.describe(error);
    if (client !== undefined && this.current?.client === client) {
      this.dropConnection(reason);
      return;
    }
    if (client !== undefined) void client.close().catch(() => undefined);
    if (this.closing) return;
    this.setState({ state: "unavailable", error: reason });
    if (this.stillStarting(error)) {
      if (!this.refusalLogged) this.options.logger.warn({ event: "upstream-connect-error", server: this.name, error: reason }, `cannot connect to upstream; retrying every ${REFUSED_RETRY_MS} ms while it starts`);
      this.refusalLogged = true;
      this.scheduleFastRetry();
      return;
    }
    this.options.logger.warn({ event: "upstream-connect-error", server: this.name, error: reason }, "cannot connect to upstream; will retry");
    this.scheduleReconnect();
  }
}
