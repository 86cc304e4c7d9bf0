// The guard's upstream Streamable HTTP transport against real node:http servers on loopback: small MCP servers written
// here that answer each way the spec allows (JSON, event streams, 202, sessions, errors, redirects, silence), the
// official SDK server on both protocol revisions, and an https server. The official SDK Client runs the protocol on
// top, as in the guard. Each test names the behaviour it proves.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Client, ProtocolError } from "@modelcontextprotocol/client";
import type { JSONRPCMessage } from "@modelcontextprotocol/client";
import { NodeHttpClientTransport, UpstreamAnswerTooLargeError, UpstreamIdleTimeoutError } from "./http-transport.ts";
import type { HttpTransportOptions } from "./http-transport.ts";
import { eventually, recordingHandler, startRecordingServer } from "./testing.ts";
import type { ScriptedHandler, SeenRequest } from "./testing.ts";
import { GuardClient } from "./upstream.ts";

type Seen = SeenRequest;
type Handle = ScriptedHandler;

interface TestServer {
  url: string;
  seen: Seen[];
  server: Server;
  close(): Promise<void>;
}

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

async function listen(server: Server, seen: Seen[], scheme: "http" | "https"): Promise<TestServer> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const started: TestServer = {
    url: `${scheme}://127.0.0.1:${port}/mcp`,
    seen,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(started);
  return started;
}

async function startServer(handle: Handle): Promise<TestServer> {
  const seen: Seen[] = [];
  return listen(createServer(recordingHandler(handle, seen)), seen, "http");
}

const json = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
  response.end(text);
};
const sseEvent = (message: unknown, id?: string) => `${id === undefined ? "" : `id: ${id}\n`}event: message\ndata: ${JSON.stringify(message)}\n\n`;

interface LegacyOptions {
  answer: "json" | "sse";
  sessionId?: string;
  /** Serve the standalone GET stream (otherwise 405); open ones are kept here to push notifications. */
  getStreams?: ServerResponse[];
  /** Answers tools/call instead of the default echo. */
  call?: (seen: Seen, response: ServerResponse, request: IncomingMessage) => void;
}

/** A 2025-11-25 MCP server: initialize, tools/list, an echo tool; sessions when sessionId is set. */
function legacyServer(options: LegacyOptions): Handle {
  let sessionLive = options.sessionId !== undefined;
  const answer = (response: ServerResponse, message: JSONRPCMessage, headers: Record<string, string> = {}) => {
    if (options.answer === "json") return json(response, 200, message, headers);
    response.writeHead(200, { "content-type": "text/event-stream", ...headers });
    response.end(sseEvent(message));
  };
  const handle: Handle = (seen, response, request) => {
    if (seen.method === "DELETE") {
      sessionLive = false;
      response.writeHead(200).end();
      return;
    }
    if (seen.method === "GET") {
      if (options.getStreams === undefined) return void response.writeHead(405).end();
      response.writeHead(200, { "content-type": "text/event-stream" });
      response.write(": open\n\n");
      options.getStreams.push(response);
      return;
    }
    const message = seen.message;
    if (message?.method === "initialize") {
      sessionLive = options.sessionId !== undefined;
      const result = { protocolVersion: "2025-11-25", capabilities: { tools: { listChanged: true } }, serverInfo: { name: "legacy", version: "1.0.0" } };
      return answer(response, { jsonrpc: "2.0", id: message.id as number, result }, options.sessionId === undefined ? {} : { "mcp-session-id": options.sessionId });
    }
    if (options.sessionId !== undefined && (!sessionLive || seen.headers["mcp-session-id"] !== options.sessionId)) {
      return json(response, 404, { jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null });
    }
    if (message?.id === undefined) return void response.writeHead(202).end();
    if (message.method === "tools/list") {
      return answer(response, { jsonrpc: "2.0", id: message.id, result: { tools: [{ name: "echo", inputSchema: { type: "object", properties: { message: { type: "string" } } } }] } });
    }
    if (message.method === "tools/call") {
      if (options.call !== undefined) return options.call(seen, response, request);
      const text = `echo: ${String((message.params?.arguments as { message?: string } | undefined)?.message)}`;
      return answer(response, { jsonrpc: "2.0", id: message.id, result: { content: [{ type: "text", text }] } });
    }
    return json(response, 200, { jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "Method not found" } });
  };
  return handle;
}

async function connect(url: string, options: HttpTransportOptions = {}, clientOptions: ConstructorParameters<typeof Client>[1] = {}): Promise<{ client: Client; transport: NodeHttpClientTransport }> {
  const transport = new NodeHttpClientTransport(new URL(url), options);
  const client = new Client({ name: "guard-under-test", version: "1.0.0" }, { capabilities: {}, ...clientOptions });
  await client.connect(transport, { timeout: 5000 });
  return { client, transport };
}

const textOf = (result: unknown) => ((result as { content: Array<{ text?: string }> }).content[0]?.text ?? "") as string;

describe("upstream Streamable HTTP transport (node:http)", { timeout: 60_000 }, () => {
  test("JSON answers: initialize, list and call; every request carries the configured headers, Content-Type and Accept, the negotiated MCP-Protocol-Version and the issued session id", async () => {
    const upstream = await startServer(legacyServer({ answer: "json", sessionId: "session-1" }));
    const { client } = await connect(upstream.url, { headers: { Authorization: "Bearer upstream-credential", "X-Tenant": "t1" } });
    const result = await client.callTool({ name: "echo", arguments: { message: "hi" } });
    assert.equal(textOf(result), "echo: hi");
    const posts = upstream.seen.filter((seen) => seen.method === "POST");
    assert.deepEqual(
      posts.map((seen) => seen.message?.method),
      ["initialize", "notifications/initialized", "tools/list", "tools/call"].filter((method) => posts.some((seen) => seen.message?.method === method)),
    );
    for (const seen of posts) {
      assert.equal(seen.headers.authorization, "Bearer upstream-credential");
      assert.equal(seen.headers["x-tenant"], "t1");
      assert.equal(seen.headers["content-type"], "application/json");
      assert.equal(seen.headers.accept, "application/json, text/event-stream");
    }
    const [initialize, ...rest] = posts;
    assert.equal(initialize?.headers["mcp-session-id"], undefined, "no session id before the server issued one");
    for (const seen of rest) {
      assert.equal(seen.headers["mcp-session-id"], "session-1");
      assert.equal(seen.headers["mcp-protocol-version"], "2025-11-25");
    }
    await client.close();
  });

  test("event-stream answers: progress and the response on one stream, written in pieces with CRLF line ends, arrive in order", async () => {
    const upstream = await startServer(
      legacyServer({
        answer: "sse",
        call: (seen, response) => {
          const token = (seen.message?.params?._meta as { progressToken?: number } | undefined)?.progressToken;
          const progress = sseEvent({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: token, progress: 1, total: 2, message: "half" } }).replaceAll("\n", "\r\n");
          const final = sseEvent({ jsonrpc: "2.0", id: seen.message?.id as number, result: { content: [{ type: "text", text: "done" }] } }).replaceAll("\n", "\r\n");
          response.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
          response.write(": comment first\r\n\r\n");
          const all = progress + final;
          const cuts = [5, 17, progress.length - 1, progress.length + 9];
          let from = 0;
          for (const cut of cuts) {
            response.write(all.slice(from, cut));
            from = cut;
          }
          response.end(all.slice(from));
        },
      }),
    );
    const { client } = await connect(upstream.url);
    const progress: string[] = [];
    const result = await client.callTool({ name: "echo", arguments: {} }, { onprogress: (update) => progress.push(`${update.progress}/${update.total} ${update.message}`) });
    assert.equal(textOf(result), "done");
    assert.deepEqual(progress, ["1/2 half"]);
    await client.close();
  });

  test("notifications get 202; after notifications/initialized the standalone GET stream opens and delivers list_changed; close() sends DELETE with the session id", async () => {
    const getStreams: ServerResponse[] = [];
    const upstream = await startServer(legacyServer({ answer: "sse", sessionId: "session-2", getStreams }));
    let changed = 0;
    const { client } = await connect(upstream.url, {}, { listChanged: { tools: { autoRefresh: false, debounceMs: 0, onChanged: () => (changed += 1) } } });
    await eventually(() => (getStreams.length === 1 ? true : undefined), 5000, "the GET stream");
    const get = upstream.seen.find((seen) => seen.method === "GET");
    assert.equal(get?.headers.accept, "text/event-stream");
    assert.equal(get?.headers["mcp-session-id"], "session-2");
    getStreams[0]?.write(sseEvent({ jsonrpc: "2.0", method: "notifications/tools/list_changed" }));
    await eventually(() => (changed === 1 ? true : undefined), 5000, "list_changed");
    await client.close();
    const deleted = upstream.seen.find((seen) => seen.method === "DELETE");
    assert.equal(deleted?.headers["mcp-session-id"], "session-2");
  });

  test("a server without a standalone stream answers GET with 405: no error, no retry loop", async () => {
    const upstream = await startServer(legacyServer({ answer: "json" }));
    const errors: string[] = [];
    const { client, transport } = await connect(upstream.url);
    const previous = transport.onerror;
    transport.onerror = (error) => {
      errors.push(error.message);
      previous?.(error);
    };
    await eventually(() => (upstream.seen.some((seen) => seen.method === "GET") ? true : undefined), 5000, "the GET attempt");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(upstream.seen.filter((seen) => seen.method === "GET").length, 1);
    assert.deepEqual(errors, []);
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: { message: "still fine" } })), "echo: still fine");
    await client.close();
  });

  test("404 while holding a session: the call fails naming the expired session and the transport closes, so the guard reconnects", async () => {
    const upstream = await startServer(legacyServer({ answer: "json", sessionId: "session-3" }));
    const { client, transport } = await connect(upstream.url);
    let closed = false;
    client.onclose = () => (closed = true);
    // The upstream restarts and forgets the session.
    await fetch(upstream.url, { method: "DELETE" });
    await assert.rejects(client.callTool({ name: "echo", arguments: { message: "x" } }), /no longer knows this session \(HTTP 404/);
    await eventually(() => (closed ? true : undefined), 2000, "the transport to close");
    assert.equal(transport.sessionId, undefined);
  });

  test("oversized answers are refused naming the limit — a JSON body, a declared Content-Length, one event — and the rest is not read", async () => {
    const limit = 64 * 1024;
    const big = "x".repeat(limit * 4);
    let finishedWriting = 0;
    let mode: "json-chunked" | "json-declared" | "sse" | "small" = "json-chunked";
    const upstream = await startServer(
      legacyServer({
        answer: "json",
        call: (seen, response) => {
          if (mode === "small") return json(response, 200, { jsonrpc: "2.0", id: seen.message?.id, result: { content: [{ type: "text", text: "small" }] } });
          const message = JSON.stringify({ jsonrpc: "2.0", id: seen.message?.id, result: { content: [{ type: "text", text: big }] } });
          response.on("finish", () => (finishedWriting += 1));
          if (mode === "json-declared") {
            response.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(message)) });
            response.flushHeaders();
            return; // The body never comes: the declared length alone must be enough to refuse.
          }
          if (mode === "json-chunked") {
            response.writeHead(200, { "content-type": "application/json" });
            for (let index = 0; index < 64; index++) response.write(message);
            response.end();
            return;
          }
          response.writeHead(200, { "content-type": "text/event-stream" });
          response.write(`event: message\ndata: ${message}`);
          for (let index = 0; index < 64; index++) response.write(big);
          response.end("\n\n");
        },
      }),
    );
    const { client } = await connect(upstream.url, { maxMessageBytes: limit });
    for (const next of ["json-chunked", "json-declared", "sse"] as const) {
      mode = next;
      const error = await client.callTool({ name: "echo", arguments: {} }).then(
        () => assert.fail(`${next}: the answer was accepted`),
        (rejection: unknown) => rejection,
      );
      assert.ok(error instanceof UpstreamAnswerTooLargeError, `${next}: ${String(error)}`);
      assert.match((error as Error).message, new RegExp(`larger than the ${limit}-byte limit \\(maxMessageBytes\\)`));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(finishedWriting, 0, "no oversized answer was read to its end");
    // Refusing an answer leaves the connection usable: the next call works.
    mode = "small";
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: {} })), "small");
    await client.close();
  });

  test("non-2xx answers fail with the status: 500 with its text, 401 with a hint at the configured credentials", async () => {
    let status = 500;
    const upstream = await startServer(
      legacyServer({
        answer: "json",
        call: (_seen, response) => {
          response.writeHead(status, { "content-type": "text/plain" });
          response.end(status === 500 ? "database on fire" : "bad token");
        },
      }),
    );
    const { client } = await connect(upstream.url);
    await assert.rejects(client.callTool({ name: "echo", arguments: {} }), /answered POST with HTTP 500 Internal Server Error: database on fire/);
    status = 401;
    await assert.rejects(client.callTool({ name: "echo", arguments: {} }), /HTTP 401 Unauthorized \(check the credentials in this server's headers\)/);
    await client.close();
  });

  test("redirects are not followed: a 307 elsewhere fails naming the redirect, and the other server never sees a request or the credentials", async () => {
    const elsewhere = await startServer((_seen, response) => json(response, 200, {}));
    const upstream = await startServer((_seen, response) => {
      response.writeHead(307, { location: elsewhere.url });
      response.end();
    });
    await assert.rejects(connect(upstream.url, { headers: { Authorization: "Bearer must-not-travel" } }), /redirect \(HTTP 307\) to http:\/\/127\.0\.0\.1:\d+; redirects are not followed/);
    assert.equal(elsewhere.seen.length, 0);
    assert.ok(upstream.seen.length >= 1);
  });

  test("a silent upstream: the request fails after idleTimeoutMs with an error naming the timeout", async () => {
    const upstream = await startServer(
      legacyServer({
        answer: "json",
        call: () => undefined, // never answers
      }),
    );
    const { client } = await connect(upstream.url, { idleTimeoutMs: 300 });
    const started = Date.now();
    const error = await client.callTool({ name: "echo", arguments: {} }, { timeout: 10_000 }).then(
      () => assert.fail("a silent upstream answered"),
      (rejection: unknown) => rejection,
    );
    assert.ok(error instanceof UpstreamIdleTimeoutError, String(error));
    assert.match((error as Error).message, /sent nothing for 300 ms \(idle timeout\)/);
    assert.ok(Date.now() - started < 3000);
    await client.close();
  });

  test("a stream that ends before its answer: without an event id the call fails at once; with one it is resumed by GET with Last-Event-ID", async () => {
    let resumable = false;
    let pendingId: string | number | undefined;
    const upstream = await startServer((seen, response) => {
      if (seen.method === "GET" && seen.headers["last-event-id"] === "e-1") {
        response.writeHead(200, { "content-type": "text/event-stream" });
        response.end(sseEvent({ jsonrpc: "2.0", id: pendingId, result: { content: [{ type: "text", text: "resumed" }] } }, "e-2"));
        return;
      }
      if (seen.method === "GET") return void response.writeHead(405).end();
      const message = seen.message;
      if (message?.method === "tools/call") {
        pendingId = message.id;
        response.writeHead(200, { "content-type": "text/event-stream" });
        // The server closes the stream early (2025-11-25 servers may, to poll), leaving the answer for later.
        response.end(resumable ? "id: e-1\nretry: 50\ndata:\n\n" : ": nothing\n\n");
        return;
      }
      return legacyServer({ answer: "json" })(seen, response, undefined as unknown as IncomingMessage);
    });
    const { client } = await connect(upstream.url);
    const started = Date.now();
    await assert.rejects(client.callTool({ name: "echo", arguments: {} }, { timeout: 10_000 }), /ended its event stream before answering/);
    assert.ok(Date.now() - started < 2000, "failed at once, not at the timeout");
    resumable = true;
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: {} })), "resumed");
    assert.ok(upstream.seen.some((seen) => seen.method === "GET" && seen.headers["last-event-id"] === "e-1"));
    await client.close();
  });

  test("cancellation on 2025-11-25: notifications/cancelled goes upstream and the cancelled call's stream is closed", async () => {
    let streamClosed = false;
    const upstream = await startServer(
      legacyServer({
        answer: "sse",
        call: (_seen, response, request) => {
          response.writeHead(200, { "content-type": "text/event-stream" });
          response.write(": working\n\n");
          request.socket.once("close", () => (streamClosed = true));
        },
      }),
    );
    const { client } = await connect(upstream.url);
    const controller = new AbortController();
    const call = client.callTool({ name: "echo", arguments: {} }, { signal: controller.signal });
    await eventually(() => (upstream.seen.some((seen) => seen.message?.method === "tools/call") ? true : undefined), 5000, "the call upstream");
    controller.abort("the agent went away");
    await assert.rejects(call);
    await eventually(() => (upstream.seen.some((seen) => seen.message?.method === "notifications/cancelled") ? true : undefined), 5000, "notifications/cancelled");
    await eventually(() => (streamClosed ? true : undefined), 5000, "the stream to close");
    await client.close();
  });

  test("2026-07-28 against a server that answers a request with 400 and a JSON-RPC error: per-request headers are sent and the error is the call's answer", async () => {
    const upstream = await startServer((seen, response) => {
      const message = seen.message;
      if (seen.method === "GET") return void response.writeHead(405).end();
      if (message?.method === "server/discover") {
        return json(response, 200, { jsonrpc: "2.0", id: message.id, result: { supportedVersions: ["2026-07-28"], capabilities: { tools: {} } } });
      }
      if (message?.method === "tools/list") return json(response, 200, { jsonrpc: "2.0", id: message.id, result: { tools: [{ name: "grüße", inputSchema: { type: "object" } }] } });
      if (message?.method === "tools/call") return json(response, 400, { jsonrpc: "2.0", id: message.id, error: { code: -32602, message: "the upstream refuses these arguments" } });
      if (message?.id === undefined) return void response.writeHead(202).end();
      return json(response, 200, { jsonrpc: "2.0", id: message.id, result: {} });
    });
    const { client } = await connect(upstream.url, {}, { versionNegotiation: { mode: "auto" } });
    assert.equal(client.getNegotiatedProtocolVersion(), "2026-07-28");
    const error = await client.callTool({ name: "grüße", arguments: {} }).then(
      () => assert.fail("accepted"),
      (rejection: unknown) => rejection,
    );
    assert.ok(error instanceof ProtocolError, String(error));
    assert.match((error as Error).message, /the upstream refuses these arguments/);
    const call = upstream.seen.find((seen) => seen.message?.method === "tools/call");
    assert.equal(call?.headers["mcp-protocol-version"], "2026-07-28");
    assert.equal(call?.headers["mcp-method"], "tools/call");
    assert.equal(call?.headers["mcp-name"], `=?base64?${Buffer.from("grüße").toString("base64")}?=`, "a non-ASCII name is sent base64-encoded");
    assert.equal(call?.headers["mcp-session-id"], undefined);
    await client.close();
  });

  test("the official SDK server on both revisions: calls work, 2026-07-28 carries Mcp-Method/Mcp-Name, and aborting a 2026-07-28 call ends it without harming the connection", async () => {
    const recording = await startRecordingServer();
    try {
      for (const mode of [{ pin: "2026-07-28" as const }, "legacy" as const]) {
        const { client } = await connect(recording.url, { headers: { Authorization: "Bearer configured" } }, { versionNegotiation: { mode } });
        assert.equal(textOf(await client.callTool({ name: "echo", arguments: { message: "a" } })), "web echo: a");
        const controller = new AbortController();
        const slow = client.callTool({ name: "slow", arguments: { ms: 3000 } }, { signal: controller.signal });
        setTimeout(() => controller.abort("cancelled"), 100);
        const started = Date.now();
        await assert.rejects(slow);
        assert.ok(Date.now() - started < 2000);
        assert.equal(textOf(await client.callTool({ name: "echo", arguments: { message: "b" } })), "web echo: b");
        await client.close();
      }
      const modernCall = recording.requests.find((seen) => seen.headers["mcp-method"] === "tools/call");
      assert.equal(modernCall?.headers["mcp-name"], "echo");
      assert.equal(modernCall?.headers["mcp-protocol-version"], "2026-07-28");
      assert.ok(recording.requests.every((seen) => seen.headers.authorization === "Bearer configured"));
    } finally {
      await recording.close();
    }
  });

  test("configured headers cannot override what the transport sets (session, protocol version, framing)", async () => {
    const upstream = await startServer(legacyServer({ answer: "json", sessionId: "real-session" }));
    const { client } = await connect(upstream.url, { headers: { "Mcp-Session-Id": "forged", "Content-Type": "text/plain", "Content-Length": "1", Host: "evil.example", "X-Fine": "yes" } });
    await client.callTool({ name: "echo", arguments: { message: "x" } });
    const call = upstream.seen.find((seen) => seen.message?.method === "tools/call");
    assert.equal(call?.headers["mcp-session-id"], "real-session");
    assert.equal(call?.headers["content-type"], "application/json");
    assert.match(String(call?.headers.host), /^127\.0\.0\.1:\d+$/);
    assert.equal(call?.headers["x-fine"], "yes");
    await client.close();
  });

  test("https upstreams: the certificate is verified against the CA store (a self-signed upstream is refused) and works once trusted", async () => {
    const directory = mkdtempSync(join(tmpdir(), "mcp-guard-tls-"));
    try {
      execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(directory, "key.pem"), "-out", join(directory, "cert.pem"), "-days", "1", "-subj", "/CN=upstream", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
      const cert = readFileSync(join(directory, "cert.pem"));
      const seen: Seen[] = [];
      const upstream = await listen(createHttpsServer({ key: readFileSync(join(directory, "key.pem")), cert }, recordingHandler(legacyServer({ answer: "sse" }), seen)), seen, "https");
      await assert.rejects(connect(upstream.url), /self[- ]signed certificate/);
      assert.equal(seen.length, 0, "nothing was sent before the certificate was checked");
      const { client } = await connect(upstream.url, { ca: cert });
      assert.equal(textOf(await client.callTool({ name: "echo", arguments: { message: "tls" } })), "echo: tls");
      await client.close();
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test("the guard's Client (validator built once per era) refuses an invalid tools/call result exactly as the SDK Client does, on both revisions", async () => {
    const invalid = { content: "not a list" };
    const upstream = await startServer((seen, response) => {
      const message = seen.message;
      if (seen.method === "GET") return void response.writeHead(405).end();
      if (message?.method === "server/discover") {
        if (seen.headers["x-era"] === "legacy") return json(response, 400, { jsonrpc: "2.0", error: { code: -32601, message: "Method not found" }, id: null });
        return json(response, 200, { jsonrpc: "2.0", id: message.id, result: { supportedVersions: ["2026-07-28"], capabilities: { tools: {} } } });
      }
      if (message?.method === "initialize") {
        return json(response, 200, { jsonrpc: "2.0", id: message.id, result: { protocolVersion: "2025-11-25", capabilities: { tools: {} }, serverInfo: { name: "s", version: "1" } } });
      }
      if (message?.id === undefined) return void response.writeHead(202).end();
      if (message.method === "tools/call") {
        const good = (message.params?.arguments as { good?: boolean } | undefined)?.good === true;
        const complete = seen.headers["x-era"] === "modern" ? { resultType: "complete" } : {};
        return json(response, 200, { jsonrpc: "2.0", id: message.id, result: { ...(good ? { content: [{ type: "text", text: "fine" }] } : invalid), ...complete } });
      }
      return json(response, 200, { jsonrpc: "2.0", id: message.id, result: { tools: [] } });
    });
    for (const era of ["legacy", "modern"] as const) {
      const messages: string[] = [];
      for (const Kind of [Client, GuardClient]) {
        const client = new Kind({ name: "c", version: "1" }, { capabilities: {}, versionNegotiation: { mode: "auto" } });
        await client.connect(new NodeHttpClientTransport(new URL(upstream.url), { headers: { "x-era": era } }));
        assert.equal(client.getNegotiatedProtocolVersion(), era === "legacy" ? "2025-11-25" : "2026-07-28");
        assert.equal(textOf(await client.callTool({ name: "t", arguments: { good: true } })), "fine");
        const error = await client.callTool({ name: "t", arguments: {} }).then(
          () => assert.fail(`${Kind.name} accepted an invalid result`),
          (rejection: unknown) => rejection as Error,
        );
        messages.push(error.message);
        await client.close();
      }
      assert.match(messages[0] ?? "", /Invalid result for tools\/call/);
      assert.equal(messages[1], messages[0], `${era}: the same refusal from both clients`);
    }
  });

  test("urls other than http(s), and urls with user:password@, are refused at construction", () => {
    assert.throws(() => new NodeHttpClientTransport(new URL("file:///etc/passwd")), /is not http: or https:/);
    assert.throws(() => new NodeHttpClientTransport(new URL("http://user:pass@127.0.0.1/mcp")), /must not carry credentials/);
  });
});
