// Requirements (issue 3, plain-HTTP forwarding with keep-alive), proven through a real proxy on loopback against
// origins written here on raw sockets, so that every byte an origin sends is the test's choice:
// - framing is passed on correctly (Content-Length, chunked with extensions and trailers, close-delimited to HTTP/1.1
//   and HTTP/1.0 clients, HEAD, 204, 304, 103 passed on and 100 dropped);
// - a malformed origin response is a 502 with X-Perimeter-Error, never a guess, and its connection is never reused;
// - an origin cannot poison the response queue: bytes beyond a response's framing are never read as the next answer;
// - keep-alive reuses one origin connection per client, never across clients, retries a stale pooled connection for
//   a request that can be repeated and never for one that cannot;
// - request bodies arrive byte-exact (re-chunked when chunked), Expect: 100-continue is answered after the decision,
//   and a client that disconnects mid-body never makes the origin see a complete request;
// - the allow record is committed to the audit log before the origin receives a byte, and an unwritable audit log
//   lets nothing through;
// - an origin that does not answer gets a 504 after the idle timeout.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { staticResolver } from "../net/index.ts";
import { openAuditLog, readAuditRecords } from "../audit-log/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { createEgressProxy } from "./index.ts";
import type { EgressPolicyInput, EgressProxy } from "./index.ts";
import type { BoundAddress } from "../shared/index.ts";
import type { AuditSink } from "./server.ts";
import { guardedDial, memoryAudit, waitFor } from "./test-support.ts";

// Loopback addresses of our own: the origin's, and a second client source address.
const octet = () => 2 + Math.floor(Math.random() * 250);
const ORIGIN_IP = `127.${octet()}.${octet()}.${octet()}`;
const SECOND_SOURCE = `127.${octet()}.${octet()}.${octet()}`;
const ORIGIN_CIDR = `${ORIGIN_IP}/32`;
const WAIT_MS = 5000;

// ---------------------------------------------------------------------------------------------------------------
// A raw origin: parses requests itself (Content-Length and chunked bodies), records every byte, and hands each
// complete request to the test's handler, which answers with whatever bytes it likes.

interface OriginRequest {
  /** Index of the origin connection the request arrived on (0 for the first accepted). */
  readonly connection: number;
  /** Index of the request on its connection. */
  readonly index: number;
  readonly method: string;
  readonly target: string;
  readonly head: string;
  /** Names lowercased. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /** The body as it arrived, framing included. */
  readonly rawBody: Buffer;
  readonly socket: net.Socket;
}

interface RawOrigin {
  readonly port: number;
  readonly sockets: net.Socket[];
  readonly requests: OriginRequest[];
  /** Connections the proxy (or the origin) has closed. */
  readonly closed: Set<number>;
  /** Every byte received on a connection. */
  received(connection: number): Buffer;
  close(): Promise<void>;
}

type OriginHandler = (request: OriginRequest, origin: RawOrigin) => void;

function header(headers: ReadonlyArray<readonly [string, string]>, name: string): string | undefined {
  return headers.find(([key]) => key === name)?.[1];
}

/** Decodes a complete chunked body at `start`; undefined while incomplete. */
function dechunk(buffer: Buffer, start: number): { body: Buffer; end: number; trailers: string[] } | undefined {
  const parts: Buffer[] = [];
  let offset = start;
  for (;;) {
    const lineEnd = buffer.indexOf("\r\n", offset);
    if (lineEnd === -1) return undefined;
    const line = buffer.toString("latin1", offset, lineEnd);
    const size = Number.parseInt(line.split(";")[0] as string, 16);
    if (!/^[0-9a-fA-F]+/.test(line) || Number.isNaN(size)) throw new Error(`test parser: bad chunk size line ${JSON.stringify(line)}`);
    offset = lineEnd + 2;
    if (size === 0) {
      const trailers: string[] = [];
      for (;;) {
        const trailerEnd = buffer.indexOf("\r\n", offset);
        if (trailerEnd === -1) return undefined;
        const trailer = buffer.toString("latin1", offset, trailerEnd);
        offset = trailerEnd + 2;
        if (trailer === "") return { body: Buffer.concat(parts), end: offset, trailers };
        trailers.push(trailer);
      }
    }
    if (buffer.length < offset + size + 2) return undefined;
    parts.push(buffer.subarray(offset, offset + size));
    if (buffer.toString("latin1", offset + size, offset + size + 2) !== "\r\n") throw new Error("test parser: chunk data not followed by CRLF");
    offset += size + 2;
  }
}

function parseHead(text: string): { start: string; headers: Array<[string, string]> } {
  const [start = "", ...lines] = text.split("\r\n");
  const headers: Array<[string, string]> = [];
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return { start, headers };
}

async function startRawOrigin(handler: OriginHandler): Promise<RawOrigin> {
  const sockets: net.Socket[] = [];
  const chunks: Buffer[][] = [];
  const requests: OriginRequest[] = [];
  const closed = new Set<number>();
  const server = net.createServer();
  const origin: RawOrigin = {
    port: 0,
    sockets,
    requests,
    closed,
    received: (connection) => Buffer.concat(chunks[connection] ?? []),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  server.on("connection", (socket) => {
    const connection = sockets.length;
    sockets.push(socket);
    chunks.push([]);
    let buffer = Buffer.alloc(0);
    let index = 0;
    socket.on("error", () => {});
    socket.on("close", () => closed.add(connection));
    socket.on("data", (chunk: Buffer) => {
      chunks[connection]?.push(chunk);
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const end = buffer.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buffer.toString("latin1", 0, end);
        const { start, headers } = parseHead(head);
        const [method = "", target = ""] = start.split(" ");
        let body: Buffer;
        let consumed: number;
        if (header(headers, "transfer-encoding") === "chunked") {
          const decoded = dechunk(buffer, end + 4);
          if (decoded === undefined) return;
          body = decoded.body;
          consumed = decoded.end;
        } else {
          const length = Number(header(headers, "content-length") ?? 0);
          if (buffer.length < end + 4 + length) return;
          body = buffer.subarray(end + 4, end + 4 + length);
          consumed = end + 4 + length;
        }
        const request: OriginRequest = { connection, index: index++, method, target, head, headers, body: Buffer.from(body), rawBody: Buffer.from(buffer.subarray(end + 4, consumed)), socket };
        buffer = buffer.subarray(consumed);
        requests.push(request);
        handler(request, origin);
        if (socket.destroyed) return;
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, ORIGIN_IP, () => resolve());
  });
  return Object.assign(origin, { port: (server.address() as net.AddressInfo).port });
}

const reply = (socket: net.Socket, text: string | Buffer) => socket.write(typeof text === "string" ? Buffer.from(text, "latin1") : text);
const ok = (body: string, extra = "") => `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

// ---------------------------------------------------------------------------------------------------------------
// A raw client: sends bytes and reads responses with its own parser, reporting a response cut short as incomplete.

interface ClientResponse {
  readonly status: number;
  /** Names lowercased, in order. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly informational: ReadonlyArray<{ status: number; headers: ReadonlyArray<readonly [string, string]> }>;
  readonly body: Buffer;
  readonly framing: "none" | "length" | "chunked" | "close";
  readonly trailers: readonly string[];
  /** False when the connection closed before the response's framing said it was over. */
  readonly complete: boolean;
}

class RawClient {
  readonly socket: net.Socket;
  /** Everything received, for assertions about what never came. */
  readonly transcript: Buffer[] = [];
  private buffer = Buffer.alloc(0);
  private ended = false;
  /** The connection ended with a reset, not a clean close: a close-delimited body is then incomplete. */
  private reset = false;
  private readonly wake = new Set<() => void>();
  private informational: Array<{ status: number; headers: Array<[string, string]> }> = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.transcript.push(chunk);
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (const wake of [...this.wake]) wake();
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNRESET") this.reset = true;
    });
    socket.on("close", () => {
      this.ended = true;
      for (const wake of [...this.wake]) wake();
    });
  }

  static connect(address: BoundAddress & { kind: "tcp" }, localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: address.host, port: address.port, ...(localAddress !== undefined ? { localAddress } : {}) });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new RawClient(socket));
      });
    });
  }

  get closed(): boolean {
    return this.ended;
  }

  send(data: string | Buffer): void {
    this.socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
  }

  /** Resolves with the first non-undefined value of `attempt`, re-tried on every read and at close. */
  until<T>(attempt: () => T | undefined, what: string, timeoutMs = WAIT_MS): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        let value: T | undefined;
        try {
          value = attempt();
        } catch (error) {
          done();
          reject(error);
          return;
        }
        if (value === undefined) return;
        done();
        resolve(value);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${JSON.stringify(Buffer.concat(this.transcript).toString("latin1").slice(0, 300))}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.wake.delete(check);
      };
      this.wake.add(check);
      check();
    });
  }

  /** Reads one response (after any 1xx); `method` tells whether a body may follow. */
  response(method = "GET", timeoutMs = WAIT_MS): Promise<ClientResponse> {
    return this.until(() => this.tryResponse(method), `a response to ${method}`, timeoutMs);
  }

  waitClosed(timeoutMs = WAIT_MS): Promise<true> {
    return this.until(() => (this.ended ? true : undefined), "the connection to close", timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private tryResponse(method: string): ClientResponse | undefined {
    for (;;) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end === -1) {
        if (!this.ended) return undefined;
        return { status: 0, headers: [], informational: this.takeInformational(), body: Buffer.alloc(0), framing: "none", trailers: [], complete: false };
      }
      const { start, headers } = parseHead(this.buffer.toString("latin1", 0, end));
      const status = Number(start.split(" ")[1]);
      const rest = this.buffer.subarray(end + 4);
      if (status >= 100 && status < 200) {
        this.informational.push({ status, headers });
        this.buffer = rest;
        continue;
      }
      const finish = (framing: ClientResponse["framing"], body: Buffer, consumed: number, complete: boolean, trailers: string[] = []): ClientResponse => {
        this.buffer = rest.subarray(consumed);
        return { status, headers, informational: this.takeInformational(), body: Buffer.from(body), framing, trailers, complete };
      };
      if (method === "HEAD" || status === 204 || status === 304) return finish("none", Buffer.alloc(0), 0, true);
      if (header(headers, "transfer-encoding") === "chunked") {
        const decoded = dechunk(rest, 0);
        if (decoded !== undefined) return finish("chunked", decoded.body, decoded.end, true, decoded.trailers);
        return this.ended ? finish("chunked", rest, rest.length, false) : undefined;
      }
      const length = header(headers, "content-length");
      if (length !== undefined) {
        if (rest.length >= Number(length)) return finish("length", rest.subarray(0, Number(length)), Number(length), true);
        return this.ended ? finish("length", rest, rest.length, false) : undefined;
      }
      return this.ended ? finish("close", rest, rest.length, !this.reset) : undefined;
    }
  }

  private takeInformational(): Array<{ status: number; headers: Array<[string, string]> }> {
    const taken = this.informational;
    this.informational = [];
    return taken;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Harness: one origin and one proxy per test, so that connection counts belong to the test alone.

interface Harness {
  readonly proxy: EgressProxy;
  readonly address: BoundAddress & { kind: "tcp" };
  readonly origin: RawOrigin;
  readonly audit: ReturnType<typeof memoryAudit>;
  /** An absolute-form request to the origin through the proxy. */
  request(method: string, path: string, options?: { version?: string; headers?: string[]; body?: string | Buffer; host?: string }): Buffer;
  client(localAddress?: string): Promise<RawClient>;
}

async function withProxy(
  handler: OriginHandler,
  run: (harness: Harness) => Promise<void>,
  options: { policy?: Partial<EgressPolicyInput>; audit?: AuditSink } = {},
): Promise<void> {
  const origin = await startRawOrigin(handler);
  const audit = memoryAudit();
  const rule = { host: "origin.test", ports: [origin.port], allowCidr: [ORIGIN_CIDR] };
  const proxy = createEgressProxy(
    { allow: [rule], unknownClients: "global", ...options.policy, limits: { requestsPerSecondPerClient: 10_000, ...options.policy?.limits } },
    { resolver: staticResolver({ "origin.test": [ORIGIN_IP], "denied.test": [ORIGIN_IP] }), audit: options.audit ?? audit, dial: guardedDial() },
  );
  const address = (await proxy.listen("127.0.0.1:0")) as BoundAddress & { kind: "tcp" };
  const clients: RawClient[] = [];
  const harness: Harness = {
    proxy,
    address,
    origin,
    audit,
    request(method, path, { version = "1.1", headers = [], body, host = "origin.test" } = {}) {
      const authority = `${host}:${origin.port}`;
      const length = body !== undefined && !headers.some((line) => /^(content-length|transfer-encoding):/i.test(line)) ? [`Content-Length: ${Buffer.byteLength(body)}`] : [];
      const head = [`${method} http://${authority}${path} HTTP/${version}`, `Host: ${authority}`, ...headers, ...length, "", ""].join("\r\n");
      return Buffer.concat([Buffer.from(head, "latin1"), body === undefined ? Buffer.alloc(0) : Buffer.from(body)]);
    },
    async client(localAddress) {
      const client = await RawClient.connect(address, localAddress);
      clients.push(client);
      return client;
    },
  };
  try {
    await run(harness);
  } finally {
    for (const client of clients) client.destroy();
    await proxy.close();
    await origin.close();
  }
}

/** One request on a fresh client connection. */
async function once(harness: Harness, method: string, path: string, options: Parameters<Harness["request"]>[2] = {}): Promise<ClientResponse> {
  const client = await harness.client();
  client.send(harness.request(method, path, options));
  return client.response(method);
}

const text = (response: ClientResponse) => response.body.toString("latin1");
const get = (response: ClientResponse, name: string) => header(response.headers, name);

// ---------------------------------------------------------------------------------------------------------------

describe("framing is passed on correctly", { timeout: 30_000 }, () => {
  test("a Content-Length body arrives byte-exact, hop-by-hop headers are dropped, and the origin connection is kept", async () => {
    const payload = Buffer.from(Array.from({ length: 100_003 }, (_, index) => (index * 131 + 7) % 256));
    await withProxy(
      (request) => {
        const head = `HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: ${payload.length}\r\nConnection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nSet-Cookie: b=2\r\nX-End: kept\r\n\r\n`;
        reply(request.socket, request.target === "/binary" ? Buffer.concat([Buffer.from(head, "latin1"), payload]) : ok("second"));
      },
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/binary"));
        const response = await client.response();
        assert.equal(response.status, 200);
        assert.ok(response.complete);
        assert.equal(get(response, "content-length"), String(payload.length));
        assert.deepEqual(response.body, payload);
        assert.equal(get(response, "x-hop"), undefined, "a header the origin's Connection names is hop-by-hop");
        assert.notEqual(get(response, "keep-alive"), "timeout=5", "the origin's Keep-Alive is not passed on (Node's own may be there)");
        assert.equal(get(response, "x-end"), "kept");
        assert.deepEqual(response.headers.filter(([name]) => name === "set-cookie").map(([, value]) => value), ["a=1", "b=2"], "repeated headers kept, in order");
        assert.match(get(response, "via") ?? "", /^1\.1 perimeter-egress-/);
        client.send(harness.request("GET", "/next"));
        assert.equal(text(await client.response()), "second");
        assert.equal(harness.origin.sockets.length, 1, "the exchange ended where its framing said: connection reused");
      },
    );
  });

  test("a chunked response (extensions, trailers, split across writes) reaches an HTTP/1.1 client de-chunked and intact", async () => {
    const pieces = ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Expires\r\n\r\n4;ext=1\r\nWiki\r", "\n5 ; name=\"q;v\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n", "0;last\r\nExpires: never\r\n", "\r\n"];
    await withProxy(
      (request) => {
        if (request.target !== "/chunked") return void reply(request.socket, ok("after"));
        let index = 0;
        const next = () => {
          const piece = pieces[index++];
          if (piece === undefined) return;
          reply(request.socket, piece);
          setTimeout(next, 10);
        };
        next();
      },
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/chunked"));
        const response = await client.response();
        assert.equal(response.status, 200);
        assert.equal(response.framing, "chunked");
        assert.ok(response.complete);
        assert.equal(text(response), "Wikipedia in\r\n\r\nchunks.");
        assert.deepEqual(response.trailers, [], "trailers are read and dropped, not passed on");
        assert.equal(get(response, "trailer"), undefined);
        client.send(harness.request("GET", "/next"));
        assert.equal(text(await client.response()), "after");
        assert.equal(harness.origin.sockets.length, 1, "the last chunk ended the exchange exactly: connection reused");
      },
    );
  });

  test("a close-delimited response reaches an HTTP/1.1 client chunked, and the client connection stays usable", async () => {
    await withProxy(
      (request) => {
        if (request.target !== "/close") return void reply(request.socket, ok("after"));
        reply(request.socket, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the ");
        setTimeout(() => request.socket.end("connection closes"), 20);
      },
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/close"));
        const response = await client.response();
        assert.equal(response.status, 200);
        assert.equal(response.framing, "chunked");
        assert.ok(response.complete);
        assert.equal(text(response), "until the connection closes");
        client.send(harness.request("GET", "/next"));
        assert.equal(text(await client.response()), "after");
        assert.equal(client.closed, false);
        assert.equal(harness.origin.sockets.length, 2, "a close-delimited exchange is never reused");
      },
    );
  });

  test("a close-delimited response reaches an HTTP/1.0 client close-delimited", async () => {
    await withProxy(
      (request) => {
        reply(request.socket, "HTTP/1.1 200 OK\r\n\r\nclose-");
        setTimeout(() => request.socket.end("delimited"), 20);
      },
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/close", { version: "1.0" }));
        const response = await client.response();
        assert.equal(response.status, 200);
        assert.equal(response.framing, "close");
        assert.equal(get(response, "transfer-encoding"), undefined, "no chunked framing for HTTP/1.0");
        assert.equal(text(response), "close-delimited");
        await client.waitClosed();
        const forwarded = harness.origin.requests[0];
        assert.match(forwarded?.head ?? "", /^GET \/close HTTP\/1\.1\r\n/, "the origin is spoken to in HTTP/1.1");
        assert.match(header(forwarded?.headers ?? [], "via") ?? "", /^1\.0 perimeter-egress-/);
      },
    );
  });

  test("HEAD with a Content-Length: no body is awaited, and the next request on the same connection gets its own answer", async () => {
    await withProxy(
      (request) => {
        if (request.method === "HEAD") reply(request.socket, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"h\"\r\n\r\n");
        else reply(request.socket, ok("answer to GET"));
      },
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("HEAD", "/resource"));
        const head = await client.response("HEAD");
        assert.equal(head.status, 200);
        assert.equal(get(head, "content-length"), "1234");
        assert.equal(get(head, "etag"), '"h"');
        client.send(harness.request("GET", "/resource"));
        const response = await client.response();
        assert.equal(text(response), "answer to GET");
        assert.equal(Buffer.concat(client.transcript).toString("latin1").split("HTTP/1.1 ").length - 1, 2, "exactly two responses, no body after the HEAD");
        assert.equal(harness.origin.sockets.length, 1);
      },
    );
  });

  test("204 and 304 carry no body (even with a Content-Length) and the connection stays in step", async () => {
    await withProxy(
      (request) => {
        if (request.target === "/204") reply(request.socket, "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
        else if (request.target === "/304") reply(request.socket, "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\nContent-Length: 10\r\n\r\n");
        else reply(request.socket, ok(`answer to ${request.target}`));
      },
      async (harness) => {
        const client = await harness.client();
        // One at a time: pipelined requests would be served concurrently, on as many origin connections.
        client.send(harness.request("GET", "/204"));
        const noContent = await client.response();
        assert.equal(noContent.status, 204);
        assert.equal(get(noContent, "x-a"), "1");
        client.send(harness.request("GET", "/304"));
        const notModified = await client.response();
        assert.equal(notModified.status, 304);
        assert.equal(get(notModified, "etag"), '"e"');
        client.send(harness.request("GET", "/after"));
        const after = await client.response();
        assert.equal(text(after), "answer to /after");
        assert.equal(harness.origin.sockets.length, 1);
      },
    );
  });

  test("103 Early Hints reach an HTTP/1.1 client; 100 from the origin and hints Node cannot write are dropped; HTTP/1.0 gets none", async () => {
    const interim =
      "HTTP/1.1 100 Continue\r\n\r\n" +
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n" +
      // A valid Link list (RFC 8288) that Node's writeEarlyHints refuses, and a malformed one: neither may crash the proxy.
      "HTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload, </b.js>; rel=preload\r\n\r\n" +
      "HTTP/1.1 103 Early Hints\r\nLink: not a link\r\n\r\n";
    await withProxy(
      (request) => reply(request.socket, `${interim}${ok(`final ${request.target}`)}`),
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/hints"));
        const response = await client.response();
        assert.equal(response.status, 200);
        assert.equal(text(response), "final /hints");
        assert.deepEqual(
          response.informational.map((entry) => [entry.status, header(entry.headers, "link")]),
          [[103, "</style.css>; rel=preload; as=style"]],
        );
        const old = await harness.client();
        old.send(harness.request("GET", "/old", { version: "1.0" }));
        const oldResponse = await old.response();
        assert.equal(text(oldResponse), "final /old");
        assert.deepEqual(oldResponse.informational, [], "no 1xx to an HTTP/1.0 client");
        // Still serving after the unwritable hints.
        client.send(harness.request("GET", "/again"));
        assert.equal(text(await client.response()), "final /again");
      },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("malformed origin responses: 502 with X-Perimeter-Error, connection never reused", { timeout: 60_000 }, () => {
  const cases: Array<{ name: string; response: string }> = [
    { name: "two Content-Lengths", response: "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 9\r\n\r\nbad!smuggled" },
    { name: "Content-Length with Transfer-Encoding", response: "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbad!\r\n0\r\n\r\n" },
    { name: "Transfer-Encoding gzip", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbad!" },
    { name: "Transfer-Encoding in HTTP/1.0", response: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbad!\r\n0\r\n\r\n" },
    { name: "obs-fold", response: "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 4\r\n\r\nbad!" },
    { name: "bare LF line ends", response: "HTTP/1.1 200 OK\nContent-Length: 4\n\nbad!" },
    { name: "whitespace before the colon", response: "HTTP/1.1 200 OK\r\nContent-Length : 4\r\n\r\nbad!" },
    { name: "a control character in a value", response: "HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 4\r\n\r\nbad!" },
    { name: "a malformed status line", response: "HTTP/1.1 2000 Too Much\r\nContent-Length: 4\r\n\r\nbad!" },
    { name: "a bad first chunk size", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbad!\r\n0\r\n\r\n" },
    { name: "a chunk size past 2^53", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20000000000001\r\nbad!" },
    { name: "an unrequested 101", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n" },
    { name: "a head larger than 64 KiB", response: `HTTP/1.1 200 OK\r\nX-Big: ${"b".repeat(66 * 1024)}\r\nContent-Length: 4\r\n\r\nbad!` },
    { name: "a head larger than 64 KiB that never ends", response: `HTTP/1.1 200 OK\r\nX-Big: ${"b".repeat(70 * 1024)}` },
    { name: "an endless stream of informational responses", response: `${"HTTP/1.1 100 Continue\r\n\r\n".repeat(17)}HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbad!` },
  ];

  for (const { name, response: bad } of cases) {
    test(name, async () => {
      await withProxy(
        (request) => reply(request.socket, request.target === "/bad" ? bad : ok("good")),
        async (harness) => {
          const started = performance.now();
          const response = await once(harness, "GET", "/bad");
          assert.equal(response.status, 502, `got ${response.status} ${text(response)}`);
          assert.equal(get(response, "x-perimeter-error"), "upstream-error");
          assert.match(text(response), /^perimeter egress-proxy: origin\.test:\d+ \(127\.[0-9.]+\): /);
          assert.ok(performance.now() - started < 2000, "refused at once, not after a timeout");
          const badConnection = harness.origin.requests.find((request) => request.target === "/bad")?.connection as number;
          await waitFor(() => harness.origin.closed.has(badConnection), WAIT_MS, "the malformed connection to be closed");
          const next = await once(harness, "GET", "/good");
          assert.equal(text(next), "good");
          assert.notEqual(harness.origin.requests.find((request) => request.target === "/good")?.connection, badConnection);
        },
      );
    });
  }

  test("an origin that closes mid-body (Content-Length): the client sees a truncated response, not a complete one", async () => {
    await withProxy(
      (request) => {
        reply(request.socket, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
        setTimeout(() => request.socket.end(), 50);
      },
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/cut"));
        const response = await client.response();
        assert.equal(response.status, 200);
        assert.equal(get(response, "content-length"), "10");
        assert.equal(text(response), "hello");
        assert.equal(response.complete, false);
        assert.ok(client.closed, "the client connection is closed: its framing cannot be completed");
      },
    );
  });

  /** The origin sends one chunk, then closes (tail "") or sends a malformed chunk; the client reads what it gets. */
  const cutMidBody = (version: "1.0" | "1.1", check: (response: ClientResponse, harness: Harness) => Promise<void>) => async () => {
    for (const tail of ["", "zz\r\n"]) {
      await withProxy(
        (request) => {
          reply(request.socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
          setTimeout(() => (tail === "" ? request.socket.end() : reply(request.socket, tail)), 50);
        },
        async (harness) => {
          const client = await harness.client();
          client.send(harness.request("GET", "/cut", { version }));
          const response = await client.response();
          assert.equal(response.status, 200);
          assert.equal(response.complete, false, `tail ${JSON.stringify(tail)}: never completed`);
          await check(response, harness);
        },
      );
    }
  };

  test(
    "an origin that fails mid-body: an HTTP/1.0 client (close-delimited) sees a reset, not a clean close that reads as complete",
    cutMidBody("1.0", async (response) => {
      assert.equal(response.framing, "close");
    }),
  );

  test(
    "an origin that closes mid-body (chunked) or sends a bad chunk after the first: truncated, never completed",
    cutMidBody("1.1", async (response, harness) => {
      assert.equal(response.framing, "chunked");
      assert.equal(text(response).includes("0\r\n\r\n"), false, "no last chunk was made up");
      await waitFor(() => harness.origin.closed.has(0), WAIT_MS, "the origin connection to be closed");
    }),
  );
});

// ---------------------------------------------------------------------------------------------------------------

describe("response-queue poisoning: bytes beyond a response never answer the next request", { timeout: 30_000 }, () => {
  const poison = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Poison: 1\r\n\r\npoison";

  async function nextIsGenuine(firstAnswer: string | ((socket: net.Socket) => void), waitMs = 0): Promise<void> {
    await withProxy(
      (request) => {
        if (request.target !== "/first") return void reply(request.socket, ok(`genuine answer to ${request.target}`));
        if (typeof firstAnswer === "string") reply(request.socket, firstAnswer);
        else firstAnswer(request.socket);
      },
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/first"));
        const first = await client.response();
        assert.equal(first.status, 200);
        assert.equal(text(first), "first");
        if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
        for (const path of ["/second", "/third"]) {
          client.send(harness.request("GET", path));
          const next = await client.response();
          assert.equal(text(next), `genuine answer to ${path}`);
          assert.equal(get(next, "x-poison"), undefined);
        }
        const second = harness.origin.requests.find((request) => request.target === "/second");
        assert.equal(second?.connection, 1, "the connection that carried extra bytes was not reused");
        assert.ok(harness.origin.closed.has(0));
        assert.equal(Buffer.concat(client.transcript).toString("latin1").includes("poison"), false);
      },
    );
  }

  test("two responses to one request in one write (Content-Length)", async () => {
    await nextIsGenuine(`${ok("first")}${poison}`);
  });

  test("extra bytes after a chunked body in the same write", async () => {
    await nextIsGenuine(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n${poison}`);
  });

  test("a second response written after the first, while the connection is idle in the pool", async () => {
    await nextIsGenuine((socket) => {
      reply(socket, ok("first"));
      setTimeout(() => reply(socket, poison), 30);
    }, 150);
  });

  test("extra bytes after a HEAD response's head", async () => {
    await withProxy(
      (request) => reply(request.socket, request.method === "HEAD" ? `HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello${poison}` : ok(`genuine answer to ${request.target}`)),
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("HEAD", "/head"));
        assert.equal((await client.response("HEAD")).status, 200);
        client.send(harness.request("GET", "/second"));
        assert.equal(text(await client.response()), "genuine answer to /second");
        assert.equal(harness.origin.requests.find((request) => request.target === "/second")?.connection, 1);
      },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("keep-alive", { timeout: 30_000 }, () => {
  test("20 sequential requests over one client connection use one origin connection", async () => {
    await withProxy(
      (request) => reply(request.socket, ok(`answer ${request.target}`)),
      async (harness) => {
        const client = await harness.client();
        for (let index = 0; index < 20; index++) {
          client.send(harness.request("GET", `/n/${index}`));
          assert.equal(text(await client.response()), `answer /n/${index}`);
        }
        assert.equal(harness.origin.sockets.length, 1);
        assert.deepEqual(harness.origin.requests.map((request) => request.index), Array.from({ length: 20 }, (_, index) => index));
      },
    );
  });

  test("a connection is reused only when the origin's response allows it (Connection: close, HTTP/1.0)", async () => {
    const answers: Record<string, string> = {
      "/close": "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
      "/http10": "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
      "/http10-keep-alive": "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
      "/plain": ok("ok"),
    };
    await withProxy(
      (request) => reply(request.socket, answers[request.target.split("?")[0] as string] as string),
      async (harness) => {
        const client = await harness.client();
        for (const path of ["/close", "/plain", "/http10", "/plain", "/http10-keep-alive", "/plain"]) {
          client.send(harness.request("GET", `${path}?${harness.origin.requests.length}`));
          assert.equal(text(await client.response()), "ok");
        }
        assert.deepEqual(
          harness.origin.requests.map((request) => request.connection),
          [0, 1, 1, 2, 2, 2],
          "a new connection after Connection: close and after HTTP/1.0 without keep-alive only",
        );
        assert.equal(client.closed, false, "the client's own connection is not closed by the origin's Connection header");
      },
    );
  });

  test("removing a run-time client closes its idle origin connections at once", async () => {
    await withProxy(
      (request) => reply(request.socket, ok("ok")),
      async (harness) => {
        const task = harness.proxy.addClient({ name: "task-7", token: "task-seven-token-0123456789", allow: [`origin.test:${harness.origin.port}`], allowCidrs: [ORIGIN_CIDR] });
        const client = await harness.client();
        client.send(harness.request("GET", "/", { headers: ["Proxy-Authorization: Bearer task-seven-token-0123456789"] }));
        assert.equal((await client.response()).status, 200);
        client.destroy();
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(harness.origin.closed.has(0), false, "idle in the pool while the client exists");
        task.remove();
        await waitFor(() => harness.origin.closed.has(0), 1000, "the removed client's pooled connection to close");
      },
    );
  });

  test("two clients (Proxy-Authorization tokens) never share an origin connection", async () => {
    const rule = (port: number) => ({ host: "origin.test", ports: [port], allowCidr: [ORIGIN_CIDR] });
    let port = 0;
    await withProxy(
      (request) => reply(request.socket, ok(`answer ${request.target}`)),
      async (harness) => {
        port = harness.origin.port;
        harness.proxy.reload({
          unknownClients: "deny",
          clients: [
            { name: "alpha", token: "alpha-token-0123456789", allow: [rule(port)] },
            { name: "beta", token: "beta-token-0123456789", allow: [rule(port)] },
          ],
          limits: { requestsPerSecondPerClient: 10_000 },
        });
        const ask = async (who: "alpha" | "beta", path: string) => {
          const client = await harness.client();
          client.send(harness.request("GET", path, { headers: [`Proxy-Authorization: Bearer ${who}-token-0123456789`] }));
          const response = await client.response();
          assert.equal(text(response), `answer ${path}`);
          client.destroy();
        };
        await ask("alpha", "/alpha/1");
        await ask("beta", "/beta/1");
        await ask("alpha", "/alpha/2");
        await ask("beta", "/beta/2");
        const connectionOf = (path: string) => harness.origin.requests.find((request) => request.target === path)?.connection;
        assert.equal(harness.origin.sockets.length, 2);
        assert.equal(connectionOf("/alpha/1"), connectionOf("/alpha/2"), "each client reuses its own connection");
        assert.equal(connectionOf("/beta/1"), connectionOf("/beta/2"));
        assert.notEqual(connectionOf("/alpha/1"), connectionOf("/beta/1"));
      },
    );
  });

  test("two unidentified clients from different source addresses never share an origin connection", async () => {
    await withProxy(
      (request) => reply(request.socket, ok(`answer ${request.target}`)),
      async (harness) => {
        const ask = async (source: string, path: string) => {
          const client = await harness.client(source);
          client.send(harness.request("GET", path));
          assert.equal(text(await client.response()), `answer ${path}`);
          client.destroy();
        };
        await ask("127.0.0.1", "/one/1");
        await ask(SECOND_SOURCE, "/two/1");
        await ask("127.0.0.1", "/one/2");
        const connectionOf = (path: string) => harness.origin.requests.find((request) => request.target === path)?.connection;
        assert.notEqual(connectionOf("/one/1"), connectionOf("/two/1"));
        assert.equal(connectionOf("/one/1"), connectionOf("/one/2"));
      },
    );
  });

  test("a pooled connection the origin closed while idle is not used: the next request goes out on a new one", async () => {
    await withProxy(
      (request) => {
        reply(request.socket, ok(`answer ${request.target}`));
        if (request.target === "/first") setTimeout(() => request.socket.end(), 20);
      },
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/first"));
        await client.response();
        await waitFor(() => harness.origin.closed.has(0), WAIT_MS, "the origin to close its idle connection");
        client.send(harness.request("POST", "/second", { body: "once" }));
        const response = await client.response();
        assert.equal(text(response), "answer /second");
        assert.equal(harness.origin.requests.find((request) => request.target === "/second")?.connection, 1);
      },
    );
  });

  /** The origin closes a reused connection as the next request arrives on it, without answering. */
  const closeOnSecond: OriginHandler = (request) => {
    if (request.connection === 0 && request.index === 1) request.socket.destroy();
    else reply(request.socket, ok(`answer ${request.method} ${request.target} ${request.body.toString()}`));
  };

  test("a GET on a pooled connection the origin closed is retried transparently on a new one", async () => {
    await withProxy(closeOnSecond, async (harness) => {
      const client = await harness.client();
      client.send(harness.request("GET", "/first"));
      await client.response();
      client.send(harness.request("GET", "/again"));
      const response = await client.response();
      assert.equal(response.status, 200);
      assert.equal(text(response), "answer GET /again ");
      assert.deepEqual(
        harness.origin.requests.filter((request) => request.target === "/again").map((request) => request.connection),
        [0, 1],
        "sent once on the stale connection, once on a new one",
      );
    });
  });

  for (const [name, method, body] of [
    ["a POST with a body", "POST", "charge the card"],
    ["a POST without a body (not idempotent)", "POST", ""],
    ["a PATCH with an empty body (not idempotent)", "PATCH", ""],
    ["a PUT with a body (idempotent, but its body cannot be sent twice)", "PUT", "x"],
  ] as const) {
    test(`${name} on a pooled connection the origin closed is not retried: 502`, async () => {
      await withProxy(closeOnSecond, async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/first"));
        await client.response();
        client.send(harness.request(method, "/once", { body }));
        const response = await client.response();
        assert.equal(response.status, 502);
        assert.equal(get(response, "x-perimeter-error"), "upstream-reset");
        // Give a (wrong) retry every chance to happen before counting.
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(harness.origin.sockets.length, 1, "no second connection: nothing was sent twice");
        assert.equal(harness.origin.requests.filter((request) => request.target === "/once").length, 1);
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------

describe("request bodies", { timeout: 30_000 }, () => {
  const echo: OriginHandler = (request) => reply(request.socket, ok(`got ${request.body.length}`));

  test("a Content-Length body is forwarded byte-exact under its Content-Length", async () => {
    const body = randomBytes(1024 * 1024 + 3);
    await withProxy(echo, async (harness) => {
      const response = await once(harness, "PUT", "/upload", { body });
      assert.equal(text(response), `got ${body.length}`);
      const received = harness.origin.requests[0];
      assert.deepEqual(received?.body, body);
      assert.equal(header(received?.headers ?? [], "content-length"), String(body.length));
      assert.equal(header(received?.headers ?? [], "transfer-encoding"), undefined);
    });
  });

  test("a Connection header naming Content-Length cannot strip the body's framing (the body smuggled as a second request)", async () => {
    const smuggled = "GET /smuggled HTTP/1.1\r\nHost: not-allowlisted.test\r\n\r\n";
    await withProxy(echo, async (harness) => {
      for (const connection of ["content-length", "keep-alive, Content-Length"]) {
        const response = await once(harness, "POST", "/innocent", { headers: [`Connection: ${connection}`], body: smuggled });
        assert.equal(response.status, 200);
        assert.equal(text(response), `got ${smuggled.length}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(harness.origin.requests.map((request) => [request.target, request.body.toString()]), [["/innocent", smuggled], ["/innocent", smuggled]]);
    });
  });

  test("a chunked request body arrives re-chunked with identical bytes, no trailers or extensions passed on", async () => {
    const parts = [randomBytes(1000), Buffer.from("\r\n0\r\n\r\n"), randomBytes(70_000)];
    await withProxy(echo, async (harness) => {
      const client = await harness.client();
      client.send(harness.request("POST", "/chunked", { headers: ["Transfer-Encoding: chunked"] }));
      for (const [index, part] of parts.entries()) {
        client.send(Buffer.concat([Buffer.from(`${part.length.toString(16)};n=${index}\r\n`), part, Buffer.from("\r\n")]));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      client.send("0\r\nX-Client-Trailer: t\r\n\r\n");
      const response = await client.response();
      const expected = Buffer.concat(parts);
      assert.equal(text(response), `got ${expected.length}`);
      const received = harness.origin.requests[0];
      assert.equal(header(received?.headers ?? [], "transfer-encoding"), "chunked");
      assert.equal(header(received?.headers ?? [], "content-length"), undefined);
      assert.deepEqual(received?.body, expected);
      const raw = received?.rawBody.toString("latin1") ?? "";
      assert.ok(raw.endsWith("\r\n0\r\n\r\n"), "ends with the last chunk and no trailers");
      assert.equal(raw.includes(";n="), false, "chunk extensions are not passed on");
    });
  });

  test("Expect: 100-continue to an allowed host: 100 first, then the body flows; the origin never sees Expect", async () => {
    await withProxy(echo, async (harness) => {
      const client = await harness.client();
      client.send(harness.request("POST", "/expect", { headers: ["Expect: 100-continue", "Content-Length: 11"] }));
      await client.until(() => (Buffer.concat(client.transcript).toString("latin1").startsWith("HTTP/1.1 100 Continue\r\n\r\n") ? true : undefined), "100 Continue");
      assert.equal(harness.origin.requests.length, 0, "nothing complete reached the origin before the body");
      client.send("hello world");
      const response = await client.response();
      assert.deepEqual(response.informational.map((entry) => entry.status), [100]);
      assert.equal(text(response), "got 11");
      const received = harness.origin.requests[0];
      assert.equal(received?.body.toString(), "hello world");
      assert.equal(header(received?.headers ?? [], "expect"), undefined);
    });
  });

  test("Expect: 100-continue to a denied host: 403 without a 100, and the origin is never contacted", async () => {
    await withProxy(echo, async (harness) => {
      const client = await harness.client();
      client.send(harness.request("POST", "/expect", { host: "denied.test", headers: ["Expect: 100-continue", "Content-Length: 11"] }));
      const response = await client.response();
      assert.equal(response.status, 403);
      assert.equal(get(response, "x-perimeter-denied"), "not-allowlisted");
      assert.deepEqual(response.informational, []);
      // The body was never asked for, so the connection cannot stay in step: it is closed.
      await client.waitClosed();
      assert.equal(harness.origin.sockets.length, 0);
    });
  });

  test("a refused upload is not read: the 403 arrives, the proxy reads little of the body and closes the connection", async () => {
    await withProxy(echo, async (harness) => {
      const client = await harness.client();
      client.send(harness.request("POST", "/upload", { host: "denied.test", headers: [`Content-Length: ${1024 ** 3}`] }));
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const started = performance.now();
      let sent = 0;
      while (!client.closed && performance.now() - started < 2500 && sent < 256 * 1024 * 1024) {
        if (!client.socket.write(chunk)) await new Promise((resolve) => setTimeout(resolve, 5));
        sent += chunk.length;
      }
      const response = await client.response();
      assert.equal(response.status, 403);
      assert.equal(get(response, "x-perimeter-denied"), "not-allowlisted");
      await client.waitClosed();
      assert.ok(sent < 128 * 1024 * 1024, `${(sent / 1024 / 1024).toFixed(0)} MiB of a refused body accepted`);
      assert.equal(harness.origin.sockets.length, 0);
    });
  });

  test("a client that disconnects mid-body: the origin sees the connection closed, never a complete request", async () => {
    for (const chunked of [false, true]) {
      await withProxy(echo, async (harness) => {
        const client = await harness.client();
        if (chunked) client.send(Buffer.concat([harness.request("POST", "/partial", { headers: ["Transfer-Encoding: chunked"] }), Buffer.from("10\r\n0123456789abcdef\r\n")]));
        else client.send(Buffer.concat([harness.request("POST", "/partial", { headers: ["Content-Length: 100000"] }), randomBytes(1000)]));
        await waitFor(() => harness.origin.sockets.length === 1 && harness.origin.received(0).includes(chunked ? "0123456789abcdef" : "\r\n\r\n"), WAIT_MS, "the start of the request at the origin");
        client.destroy();
        await waitFor(() => harness.origin.closed.has(0), WAIT_MS, "the origin connection to be closed");
        assert.equal(harness.origin.requests.length, 0, "the origin never saw a complete request");
        const raw = harness.origin.received(0).toString("latin1");
        if (chunked) assert.equal(raw.includes("\r\n0\r\n\r\n"), false, "no last chunk was made up");
        else assert.ok(raw.length - raw.indexOf("\r\n\r\n") - 4 < 100_000);
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("audit ordering with a real SQLite audit log", { timeout: 30_000 }, () => {
  let directory: string;
  before(() => {
    directory = mkdtempSync(join(tmpdir(), "perimeter-forwarding-"));
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  /** withProxy with a real SQLite audit log of its own, closed afterwards (closing twice is harmless). */
  const withAuditedProxy = async (name: string, handler: OriginHandler, run: (harness: Harness, log: AuditLog, path: string) => Promise<void>, policy: Partial<EgressPolicyInput> = {}) => {
    const path = join(directory, `${name}.sqlite`);
    const log = openAuditLog({ path });
    try {
      await withProxy(handler, (harness) => run(harness, log, path), { audit: log, policy });
    } finally {
      log.close();
    }
  };

  const allowRecords = (path: string) => readAuditRecords(path, { limit: 100_000 }).filter((record) => record.type === "egress-decision" && record.data.decision === "allow");

  test("auditBeforeForwarding: when the origin receives a request, its allow record is already committed (new and pooled connections)", async () => {
    const seenAtOrigin: number[] = [];
    const path = join(directory, "ordering.sqlite");
    await withAuditedProxy(
      "ordering",
      (request) => {
        seenAtOrigin.push(allowRecords(path).length);
        reply(request.socket, ok("ok"));
      },
      async (harness) => {
        const client = await harness.client();
        for (let index = 0; index < 5; index++) {
          client.send(harness.request("GET", `/r/${index}`));
          assert.equal((await client.response()).status, 200);
        }
        const other = await harness.client();
        other.send(harness.request("GET", "/other"));
        assert.equal((await other.response()).status, 200);
      },
      { auditBeforeForwarding: true },
    );
    assert.deepEqual(seenAtOrigin, [1, 2, 3, 4, 5, 6], "the i-th request found i allow records");
    const first = allowRecords(path)[0];
    assert.equal(first?.data.host, "origin.test");
    assert.equal(first?.data.address, ORIGIN_IP);
  });

  test("auditBeforeForwarding, with a closed audit log: 503 audit-unavailable, and the origin receives nothing (neither on a new nor a pooled connection)", async () => {
    await withAuditedProxy(
      "closed",
      (request) => reply(request.socket, ok("ok")),
      async (harness, log) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/before"));
        assert.equal((await client.response()).status, 200);
        log.close();
        const received = harness.origin.received(0).length;
        client.send(harness.request("GET", "/pooled"));
        const refused = await client.response();
        assert.equal(refused.status, 503);
        assert.equal(get(refused, "x-perimeter-error"), "audit-unavailable");
        const fresh = await once(harness, "POST", "/fresh", { body: "secret" });
        assert.equal(fresh.status, 503);
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(harness.origin.received(0).length, received, "not a byte on the pooled connection");
        for (let connection = 1; connection < harness.origin.sockets.length; connection++) assert.equal(harness.origin.received(connection).length, 0, "not a byte on a new connection");
        assert.deepEqual(harness.origin.requests.map((request) => request.target), ["/before"]);
      },
      { auditBeforeForwarding: true },
    );
  });

  test("by default, with a closed audit log: the request in flight may reach the origin but its answer never reaches the client (503); from then on nothing reaches the origin", async () => {
    await withAuditedProxy(
      "closed-default",
      (request) => reply(request.socket, ok(`answer ${request.target}`)),
      async (harness, log) => {
        // Two requests at once leave two idle connections to the origin in the pool.
        const first = await harness.client();
        const second = await harness.client();
        first.send(harness.request("GET", "/one"));
        second.send(harness.request("GET", "/two"));
        assert.equal(text(await first.response()), "answer /one");
        assert.equal(text(await second.response()), "answer /two");
        assert.equal(harness.origin.sockets.length, 2);
        log.close();
        // Sent while its record commits (and fails): the origin got it, the client gets the refusal instead.
        first.send(harness.request("GET", "/in-flight"));
        const refused = await first.response();
        assert.equal(refused.status, 503);
        assert.equal(get(refused, "x-perimeter-error"), "audit-unavailable");
        assert.doesNotMatch(text(refused), /answer/);
        await waitFor(() => harness.origin.requests.some((request) => request.target === "/in-flight"), WAIT_MS, "the request, sent while its record committed, at the origin");
        // The failure switched the proxy to commit first: nothing goes out any more, on the other pooled connection
        // or a new one, with a body or without.
        const received = harness.origin.received(0).length + harness.origin.received(1).length;
        second.send(harness.request("GET", "/pooled"));
        assert.equal((await second.response()).status, 503);
        const fresh = await once(harness, "POST", "/fresh", { body: "secret" });
        assert.equal(fresh.status, 503);
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(harness.origin.received(0).length + harness.origin.received(1).length, received, "not a byte on a pooled connection");
        for (let connection = 2; connection < harness.origin.sockets.length; connection++) assert.equal(harness.origin.received(connection).length, 0, "not a byte on a new connection");
        assert.deepEqual(harness.origin.requests.map((request) => request.target).sort(), ["/in-flight", "/one", "/two"]);
      },
    );
  });

  // In both, the next request reaches the proxy first and the origin's mischief right after it: both are read in one
  // turn of the loop, while the decision's record waits for the group commit.
  const pooledConnectionMeddled = (name: string, meddle: (socket: net.Socket) => void) =>
    withAuditedProxy(
      name,
      (request) => reply(request.socket, ok(`answer ${request.target}`)),
      async (harness) => {
        const client = await harness.client();
        client.send(harness.request("GET", "/first"));
        await client.response();
        client.send(harness.request("GET", "/second"));
        meddle(harness.origin.sockets[0] as net.Socket);
        const response = await client.response();
        assert.equal(text(response), "answer /second");
        assert.equal(harness.origin.requests.find((request) => request.target === "/second")?.connection, 1, "the second request went out on a new connection");
      },
    );

  test("a reset on a pooled connection while the next request's record commits is survived: the GET goes out on a new connection", async () => {
    await pooledConnectionMeddled("reset", (socket) => socket.resetAndDestroy());
  });

  test("stray bytes on a pooled connection while the next request's record commits: never the answer, connection dropped", async () => {
    await pooledConnectionMeddled("stray", (socket) => reply(socket, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison"));
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("timeouts", { timeout: 30_000 }, () => {
  test("an origin that never answers gets a 504 after the idle timeout", async () => {
    await withProxy(
      () => {},
      async (harness) => {
        const started = performance.now();
        const response = await once(harness, "GET", "/silent");
        const elapsed = performance.now() - started;
        assert.equal(response.status, 504);
        assert.equal(get(response, "x-perimeter-error"), "upstream-timeout");
        assert.ok(elapsed >= 400 && elapsed < 3000, `answered after ${Math.round(elapsed)} ms (idle timeout 0.5 s)`);
        await waitFor(() => harness.origin.closed.has(0), WAIT_MS, "the silent connection to be closed");
      },
      { policy: { limits: { idleTimeoutSeconds: 0.5 } } },
    );
  });

  test("an origin that sends a head and then nothing gets a 504 too (the head is not passed on alone)", async () => {
    await withProxy(
      (request) => reply(request.socket, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
      async (harness) => {
        const response = await once(harness, "GET", "/stall");
        assert.equal(response.status, 504);
        assert.equal(get(response, "x-perimeter-error"), "upstream-timeout");
      },
      { policy: { limits: { idleTimeoutSeconds: 0.5 } } },
    );
  });

  test("an exchange that outlives the lifetime limit is cut, even while bytes keep coming", async () => {
    await withProxy(
      (request) => {
        reply(request.socket, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        const timer = setInterval(() => (request.socket.destroyed ? clearInterval(timer) : reply(request.socket, "x")), 100);
        request.socket.on("close", () => clearInterval(timer));
      },
      async (harness) => {
        const started = performance.now();
        const response = await once(harness, "GET", "/trickle");
        const elapsed = performance.now() - started;
        assert.equal(response.complete, false);
        assert.ok(elapsed >= 900 && elapsed < 4000, `cut after ${Math.round(elapsed)} ms (lifetime 1 s)`);
      },
      { policy: { limits: { tunnelLifetimeSeconds: 1 } } },
    );
  });
});

describe("a response head dribbled in", { timeout: 30_000 }, () => {
  test("a byte at a time, the end of the head split at every point: parsed once, delivered intact", async () => {
    const body = "dribbled";
    const response = `HTTP/1.1 200 OK\r\nX-Padding: ${"p".repeat(3000)}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    await withProxy(
      (request) => {
        let index = 0;
        const next = () => {
          if (request.socket.destroyed) return;
          request.socket.write(response.slice(index, index + 1), "latin1");
          index += 1;
          if (index < response.length) setImmediate(next);
        };
        next();
      },
      async (harness) => {
        const answer = await once(harness, "GET", "/slow");
        assert.equal(answer.status, 200);
        assert.equal(text(answer), body);
        assert.equal(get(answer, "x-padding")?.length, 3000);
      },
    );
  });

  test("a bare LF arriving on its own after a CR-less line is still refused at once", async () => {
    const parts = ["HTTP/1.1 200 OK\r\nX-A: 1", "\n", "Content-Length: 2\r\n\r\nok"];
    await withProxy(
      (request) => {
        let index = 0;
        const next = () => {
          if (request.socket.destroyed || index >= parts.length) return;
          request.socket.write(parts[index] as string, "latin1");
          index += 1;
          setTimeout(next, 20);
        };
        next();
      },
      async (harness) => {
        const answer = await once(harness, "GET", "/lf");
        assert.equal(answer.status, 502);
        assert.equal(get(answer, "x-perimeter-error"), "upstream-error");
        assert.match(text(answer), /bare CR or LF/);
      },
    );
  });
});
