// The service host: what every `perimeter serve X` (and `perimeter up`, once per service) needs around its own
// request handling — bind listeners on a parsed address (TCP, IPv6, port 0, Unix socket with a stale one cleared),
// open the audit log with one failure policy, serve the read-only audit feed, wait for the stop signal, and close
// everything in the reverse order it was opened. A service is then configuration of one ServiceHost.
//
// Failure policy, the same for every service: an address that does not parse, a port in use and an audit log that
// cannot be opened are PerimeterErrors of exit code 2 (the operator must change something), raised before any
// listener accepts a connection; anything else is a bug (exit 3).
import { lstatSync, unlinkSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import net from "node:net";
import { resolve as resolvePath } from "node:path";
import type { AuditLog, AuditLogOptions } from "../audit-log/index.ts";
import { createTokenVerifier } from "./bearer.ts";
import type { TokenEntry, TokenVerifier } from "./bearer.ts";
import { PerimeterError } from "./errors.ts";
import { formatHostPort, parseListenAddress } from "./host-port.ts";
import type { ListenAddress, ParseListenOptions } from "./host-port.ts";
import type { Logger } from "./log.ts";

export type BoundAddress =
  | { readonly kind: "tcp"; readonly host: string; readonly port: number; readonly family: 4 | 6; readonly url: string }
  | { readonly kind: "unix"; readonly path: string };

/** "http://127.0.0.1:3128" or "unix:/run/x.sock", for the line a service prints when it is listening. */
export function describeBound(address: BoundAddress): string {
  return address.kind === "unix" ? `unix:${address.path}` : address.url;
}

/** Removes a stale Unix socket left by a crashed process; refuses to touch anything that is not a socket. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new PerimeterError("setup", `${path} exists and is not a socket: remove it or choose another path`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (alive) throw new PerimeterError("setup", `${path} is in use by another process`);
  unlinkSync(path);
}

/** Binds `server` to a parsed address. Throws PerimeterError("setup") naming the address when it cannot. */
export async function bindServer(server: net.Server, address: ListenAddress): Promise<BoundAddress> {
  if (address.kind === "unix") await clearStaleSocket(address.path);
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      server.once("error", onError);
      const done = () => {
        server.off("error", onError);
        resolve();
      };
      if (address.kind === "unix") server.listen(address.path, done);
      else server.listen(address.port, address.host, done);
    });
  } catch (error) {
    const shown = address.kind === "unix" ? address.path : formatHostPort(address.host, address.port);
    const code = (error as NodeJS.ErrnoException).code;
    const fix =
      code === "EADDRINUSE"
        ? ": another process listens there (find it with `ss -ltnp`), or choose another port"
        : code === "EADDRNOTAVAIL"
          ? ": no interface of this machine has that address"
          : code === "EACCES"
            ? ": this user may not bind there (ports below 1024 need CAP_NET_BIND_SERVICE)"
            : "";
    throw new PerimeterError("setup", `cannot listen on ${shown}: ${(error as Error).message}${fix}`, { cause: error });
  }
  const bound = server.address();
  if (bound === null || typeof bound === "string") return { kind: "unix", path: address.kind === "unix" ? address.path : String(bound) };
  const family = bound.family === "IPv6" ? 6 : 4;
  return { kind: "tcp", host: bound.address, port: bound.port, family, url: `http://${formatHostPort(bound.address, bound.port)}` };
}

/** Resolves when the stop signal fires (at once if it already has). */
export function untilStopped(signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

export interface ServiceAuditOptions extends Omit<AuditLogOptions, "path" | "signingKeyFile"> {
  /** The audit database, relative to `cwd` when not absolute. */
  path: string;
  signingKeyFile?: string;
  /** Directory relative paths are resolved against (the command's working directory). */
  cwd: string;
}

/** Opens the audit log; throws PerimeterError("audit_unavailable") saying which file and how to fix it. */
export async function openServiceAudit(options: ServiceAuditOptions): Promise<AuditLog> {
  const { openAuditLog } = await import("../audit-log/index.ts");
  const { cwd, path, signingKeyFile, ...rest } = options;
  const file = resolvePath(cwd, path);
  try {
    return openAuditLog({ ...rest, path: file, ...(signingKeyFile !== undefined ? { signingKeyFile: resolvePath(cwd, signingKeyFile) } : {}) });
  } catch (error) {
    throw new PerimeterError("audit_unavailable", `cannot open the audit log ${file}: ${(error as Error).message} (make its directory writable by this user, or set audit.path)`, { cause: error });
  }
}

export type RequestHandler = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>;

export interface AuditFeedRoute {
  /** Answers /v1/audit/* and returns true; false for every other path. */
  handle(request: IncomingMessage, response: ServerResponse): boolean;
  close(): void;
}

export interface AuditFeedRouteOptions {
  /** The audit database the service writes; the feed reads it through its own read-only connection. */
  auditPath: string;
  /** Who may read: the feed token (and, on mcp-guard, the admin token). */
  verifier: TokenVerifier;
  /** How to name the token in a 401, e.g. "the audit feed token (audit.feedTokenSecret)". */
  tokenHint: string;
}

/** The read-only audit feed (src/audit-log/feed.ts) over a separate read-only connection on the service's log. */
export async function openAuditFeedRoute(options: AuditFeedRouteOptions): Promise<AuditFeedRoute> {
  const [{ DatabaseSync }, { createAuditFeed }, { bearerToken }] = await Promise.all([import("node:sqlite"), import("../audit-log/index.ts"), import("./bearer.ts")]);
  let database: InstanceType<typeof DatabaseSync>;
  try {
    database = new DatabaseSync(options.auditPath, { readOnly: true });
  } catch (error) {
    throw new PerimeterError("audit_unavailable", `cannot open the audit log ${options.auditPath} to serve its feed: ${(error as Error).message}`, { cause: error });
  }
  const feed = createAuditFeed({ database, authenticate: (authorization) => options.verifier.verify(bearerToken(authorization)), tokenHint: options.tokenHint });
  return { handle: feed, close: () => database.close() };
}

/**
 * The verifier of the audit feed token named by `audit.feedTokenSecret`, or undefined when the config sets none.
 * Throws PerimeterError("missing_secret") when the variable it names is unset or empty.
 */
export function feedTokenVerifier(secretName: string | undefined, env: Readonly<Record<string, string | undefined>>, extra: readonly TokenEntry[] = []): TokenVerifier | undefined {
  if (secretName === undefined) return extra.length === 0 ? undefined : createTokenVerifier(extra);
  const token = env[secretName];
  if (token === undefined || token === "") {
    throw new PerimeterError("missing_secret", `audit.feedTokenSecret names ${secretName}, which is not set: set it to the audit feed token (the dashboard presents the same one), or remove audit.feedTokenSecret`);
  }
  return createTokenVerifier([{ name: "feed", token }, ...extra]);
}

/** A handler that answers the audit feed's routes first and passes every other request to `next`. */
export function withAuditFeed(feed: AuditFeedRoute | undefined, next: RequestHandler): RequestHandler {
  if (feed === undefined) return next;
  return (request, response) => (feed.handle(request, response) ? undefined : next(request, response));
}

interface Closer {
  readonly label: string;
  readonly close: () => void | Promise<void>;
}

/**
 * One service's resources and lifetime. Everything opened through it (listeners, the audit log, anything given to
 * `defer`) is closed by `close()` in the reverse order, each failure logged and the rest still closed.
 */
export class ServiceHost {
  readonly name: string;
  readonly logger: Logger;
  #closers: Closer[] = [];
  #closed: Promise<void> | undefined;

  constructor(name: string, logger: Logger) {
    this.name = name;
    this.logger = logger;
  }

  /** Runs `close` when the service stops (reverse order of registration). */
  defer(label: string, close: () => void | Promise<void>): void {
    this.#closers.push({ label, close });
  }

  /** Parses `address` (a string from flags or config, or an already parsed one) and binds `server` there. */
  async listen(server: net.Server, address: string | ListenAddress, options: ParseListenOptions = {}): Promise<BoundAddress> {
    const parsed = typeof address === "string" ? parseListenAddress(address, options) : address;
    const bound = await bindServer(server, parsed);
    this.defer(`listener ${describeBound(bound)}`, () => closeServer(server));
    return bound;
  }

  /** Opens the audit log (closed, with its final checkpoint, when the service stops). */
  async openAudit(options: ServiceAuditOptions): Promise<AuditLog> {
    const log = await openServiceAudit(options);
    this.defer("audit log", () => log.close());
    return log;
  }

  /** Opens the read-only audit feed on the service's log (closed when the service stops). */
  async openAuditFeed(options: AuditFeedRouteOptions): Promise<AuditFeedRoute> {
    const feed = await openAuditFeedRoute(options);
    this.defer("audit feed", () => feed.close());
    return feed;
  }

  /** Waits for the stop signal, then closes everything. */
  async serveUntil(signal: AbortSignal): Promise<void> {
    await untilStopped(signal);
    this.logger.info("shutting down");
    await this.close();
  }

  /** Closes everything opened through this host, newest first. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      for (const closer of this.#closers.reverse()) {
        try {
          await closer.close();
        } catch (error) {
          this.logger.error({ event: "close-failed", what: closer.label, error: (error as Error).message }, `${this.name}: closing ${closer.label} failed`);
        }
      }
      this.#closers = [];
    })();
    return this.#closed;
  }
}

/** Stops accepting, ends idle keep-alive connections, and waits for the rest to finish. */
function closeServer(server: net.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  });
}
