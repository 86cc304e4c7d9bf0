// Helpers for the egress proxy's tests: real TLS and HTTP origin servers on loopback addresses, certificates made
// with openssl, raw proxy clients, and a dialer that refuses anything but loopback (so a broken proxy under test
// cannot send a packet off this machine even outside ../shared/bin/offline). Not a test file itself.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import type { Dialer } from "./server.ts";
import type { BoundAddress } from "../shared/index.ts";
import { AuditWriteError } from "../audit-log/types.ts";
import { eventually } from "../shared/testing.ts";
import type { AuditEventInput, AuditRecord, PreparedAuditEvent } from "../audit-log/types.ts";

export interface Certificate {
  readonly cert: string;
  readonly key: string;
}

/** A self-signed certificate for `names` (the test trusts it directly), made by openssl. */
export function makeCertificate(names: readonly string[]): Certificate {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-egress-cert-"));
  try {
    const keyFile = join(directory, "key.pem");
    const certFile = join(directory, "cert.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", `/CN=${names[0]}`,
      "-addext", `subjectAltName=${names.map((name) => (net.isIP(name) ? `IP:${name}` : `DNS:${name}`)).join(",")}`,
    ], { stdio: "pipe" });
    return { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

export interface Origin {
  readonly host: string;
  readonly port: number;
  /** TCP connections accepted, and the SNI of each completed TLS handshake. */
  readonly seen: { connections: number; serverNames: Array<string | false>; requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders }> };
  close(): Promise<void>;
}

function track(server: net.Server, seen: Origin["seen"]): void {
  server.on("connection", () => {
    seen.connections += 1;
  });
}

async function listen(server: net.Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

function closer(server: http.Server): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

const respond = (name: string) => (request: http.IncomingMessage, response: http.ServerResponse, seen: Origin["seen"]) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    seen.requests.push({ method: request.method ?? "", url: request.url ?? "", headers: request.headers });
    const body = Buffer.concat(chunks);
    if (request.url === "/big") {
      response.writeHead(200, { "Content-Length": String(1 << 20) });
      response.end(Buffer.alloc(1 << 20, 97));
      return;
    }
    response.writeHead(200, { "Content-Type": "text/plain", "X-Origin": name });
    response.end(`hello from ${name} ${request.method} ${request.url}${body.length > 0 ? ` body=${body.toString()}` : ""}`);
  });
};

/** An HTTPS origin on `host` (a loopback address) with the given certificate. */
export async function startTlsOrigin(host: string, certificate: Certificate, name = "tls-origin"): Promise<Origin> {
  const seen: Origin["seen"] = { connections: 0, serverNames: [], requests: [] };
  const server = https.createServer({ cert: certificate.cert, key: certificate.key }, (request, response) => respond(name)(request, response, seen));
  server.on("secureConnection", (socket: tls.TLSSocket) => seen.serverNames.push((socket as tls.TLSSocket & { servername?: string | false }).servername ?? false));
  track(server, seen);
  const port = await listen(server, host);
  return { host, port, seen, close: closer(server) };
}

/** A plain HTTP origin on `host`. */
export async function startHttpOrigin(host: string, name = "http-origin"): Promise<Origin> {
  const seen: Origin["seen"] = { connections: 0, serverNames: [], requests: [] };
  const server = http.createServer((request, response) => respond(name)(request, response, seen));
  track(server, seen);
  const port = await listen(server, host);
  return { host, port, seen, close: closer(server) };
}

/** A TCP server that only counts connections: the place a rebinding attack would like to reach. */
export async function startTrap(host: string): Promise<Origin> {
  const seen: Origin["seen"] = { connections: 0, serverNames: [], requests: [] };
  const server = net.createServer((socket) => socket.destroy());
  track(server, seen);
  const port = await listen(server, host);
  return {
    host,
    port,
    seen,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface ParsedResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export function parseResponse(text: string): ParsedResponse {
  const end = text.indexOf("\r\n\r\n");
  const head = end === -1 ? text : text.slice(0, end);
  const [statusLine = "", ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine.split(" ")[1] ?? 0), headers, body: end === -1 ? "" : text.slice(end + 4) };
}

export function proxyEndpoint(address: BoundAddress): net.NetConnectOpts {
  return address.kind === "unix" ? { path: address.path } : { host: address.host, port: address.port };
}

/** Sends raw bytes to the proxy and collects everything until it closes (or `timeoutMs`). */
export async function rawExchange(address: BoundAddress, chunks: ReadonlyArray<string | Buffer>, options: { timeoutMs?: number; gapMs?: number } = {}): Promise<ParsedResponse & { closed: boolean; elapsedMs: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect(proxyEndpoint(address));
    const received: Buffer[] = [];
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseResponse(Buffer.concat(received).toString("latin1")), closed, elapsedMs: performance.now() - started });
    };
    const timer = setTimeout(finish, options.timeoutMs ?? 3000);
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      closed = true;
      finish();
    });
    socket.on("connect", async () => {
      for (const [index, chunk] of chunks.entries()) {
        if (socket.destroyed) return;
        if (index > 0 && options.gapMs !== undefined) await new Promise((resolveGap) => setTimeout(resolveGap, options.gapMs));
        if (!socket.destroyed) socket.write(chunk);
      }
    });
  });
}

export interface Tunnel {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** The body of a refusal (empty for 200). */
  readonly body: string;
  readonly socket: net.Socket;
}

/** Opens `CONNECT authority` through the proxy; on 200 the socket is the tunnel, otherwise the refusal is read. */
export function openTunnel(address: BoundAddress, authority: string, headers: Record<string, string> = {}): Promise<Tunnel> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxyEndpoint(address));
    let buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to CONNECT ${authority}`));
    }, 5000);
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("connect", () => {
      const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${extra}\r\n`);
    });
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf("\r\n\r\n");
      if (end === -1) return;
      const parsed = parseResponse(buffer.subarray(0, end + 4).toString("latin1"));
      if (parsed.status === 200) {
        clearTimeout(timer);
        socket.off("data", onData);
        // Bytes that came with the 200 (a server that speaks first) wait in the stream, paused, until the caller
        // attaches its own reader and calls resume(); flowing with no listener would drop them.
        if (buffer.length > end + 4) {
          socket.pause();
          socket.unshift(buffer.subarray(end + 4));
        }
        resolve({ ...parsed, body: "", socket });
        return;
      }
      const length = Number(parsed.headers["content-length"] ?? 0);
      if (buffer.length - end - 4 >= length) {
        clearTimeout(timer);
        socket.off("data", onData);
        socket.destroy();
        resolve({ ...parsed, body: buffer.subarray(end + 4, end + 4 + length).toString("utf8"), socket });
      }
    };
    socket.on("data", onData);
  });
}

/** TLS over an open tunnel, then one HTTPS GET; resolves with the response body or rejects with the TLS error. */
export function httpsOverTunnel(socket: net.Socket, options: { servername?: string; ca: string; hostname: string; path?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket,
      ca: options.ca,
      ...(options.servername !== undefined ? { servername: options.servername } : {}),
      // Verify the certificate against the name we meant, whatever SNI was (or was not) sent.
      checkServerIdentity: (_host, certificate) => tls.checkServerIdentity(options.hostname, certificate),
    });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new Error("TLS exchange timed out"));
    }, 5000);
    let body = "";
    secure.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    secure.on("secureConnect", () => secure.write(`GET ${options.path ?? "/"} HTTP/1.1\r\nHost: ${options.hostname}\r\nConnection: close\r\n\r\n`));
    secure.on("data", (chunk: Buffer) => {
      body += chunk.toString("utf8");
    });
    secure.on("end", () => {
      clearTimeout(timer);
      resolve(body);
    });
  });
}

/** Records every address the proxy dials, and refuses (throws) anything outside loopback. */
export function guardedDial(): Dialer & { readonly dialled: string[] } {
  const dialled: string[] = [];
  const dial = (({ host, port, family, onread }) => {
    dialled.push(`${host}:${port}`);
    const loopback = family === 4 ? host.startsWith("127.") : host === "::1";
    if (!loopback) throw Object.assign(new Error(`test guard: refusing to dial ${host} (not loopback)`), { code: "EACCES" });
    return net.connect({ host, port, family, ...(onread !== undefined ? { onread } : {}) });
  }) as Dialer & { dialled: string[] };
  dial.dialled = dialled;
  return dial;
}

/** One plain HTTP request through the proxy (absolute-form), with an optional keep-alive agent. */
export function httpThroughProxy(
  address: BoundAddress & { kind: "tcp" },
  url: string,
  options: { agent?: http.Agent; headers?: Record<string, string>; method?: string; body?: string } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: address.host,
      port: address.port,
      method: options.method ?? "GET",
      path: url,
      headers: { Host: new URL(url).host, ...options.headers },
      agent: options.agent ?? false,
      setHost: false,
    });
    request.on("error", reject);
    request.on("response", (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString("utf8");
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.end(options.body);
  });
}

/**
 * An in-memory audit sink with the AuditLog's group-commit interface, so that tests take the path production takes
 * (records queued and committed at the end of the turn). Set `failing` to make every commit throw, as a full disk
 * would; `commits` counts the transactions written.
 */
export interface MemoryAudit {
  readonly records: Array<Record<string, unknown>>;
  failing: boolean;
  commits: number;
  append(event: Record<string, unknown>): void;
  prepare(event: AuditEventInput): PreparedAuditEvent;
  appendPrepared(events: readonly PreparedAuditEvent[]): AuditRecord[];
}

export function memoryAudit(): MemoryAudit {
  const queued = new WeakMap<PreparedAuditEvent, Record<string, unknown>>();
  const audit: MemoryAudit = {
    records: [],
    failing: false,
    commits: 0,
    append(event) {
      if (audit.failing) throw new AuditWriteError("cannot write to the audit log: disk full (test)");
      audit.records.push(event);
    },
    prepare(event) {
      const prepared: PreparedAuditEvent = { component: event.component, type: event.type, data: event, dataText: "" };
      queued.set(prepared, { ...event });
      return prepared;
    },
    appendPrepared(events) {
      if (audit.failing) throw new AuditWriteError("cannot write to the audit log: disk full (test)");
      audit.commits += 1;
      for (const event of events) audit.records.push(queued.get(event) as Record<string, unknown>);
      return [];
    },
  };
  return audit;
}

export async function waitFor(condition: () => boolean, timeoutMs = 3000, what = "condition"): Promise<void> {
  await eventually(() => (condition() ? true : undefined), timeoutMs, what, 10);
}

/** The first flight of a real Node TLS client (OpenSSL), captured on a loopback socket. */
export async function captureClientHello(servername: string | undefined): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const captured = new Promise<Buffer>((resolve) => {
    server.once("connection", (socket) => {
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        const all = Buffer.concat(chunks);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          socket.destroy();
          resolve(all.subarray(0, 5 + all.readUInt16BE(3)));
        }
      });
    });
  });
  const client = tls.connect({ host: "127.0.0.1", port, ...(servername !== undefined ? { servername } : {}), rejectUnauthorized: false });
  client.on("error", () => {});
  const hello = await captured;
  client.destroy();
  server.close();
  return hello;
}
