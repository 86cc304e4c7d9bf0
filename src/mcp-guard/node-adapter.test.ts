// The agent-side adapter between node:http and the SDK's web-standard handlers, on a real loopback server with raw
// HTTP clients. Each test names the behaviour it proves.
import assert from "node:assert/strict";
import { createServer, request as httpRequest } from "node:http";
import type { IncomingHttpHeaders, Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect as netConnect } from "node:net";
import { after, describe, test } from "node:test";
import { toNodeListener } from "./node-adapter.ts";
import type { WebHandler } from "./node-adapter.ts";

const AUTH = { token: "", clientId: "hermes", scopes: [] };
const servers: Server[] = [];
after(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

async function serve(handler: WebHandler, maxRequestBytes = 1024, keepAliveMs?: number): Promise<{ port: number; errors: Error[] }> {
  const errors: Error[] = [];
  const listener = toNodeListener(handler, { maxRequestBytes, onerror: (error) => errors.push(error), ...(keepAliveMs === undefined ? {} : { keepAliveMs }) });
  const server = createServer((request, response) => void listener(request, response, AUTH));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, errors };
}

function post(port: number, body: string | undefined, headers: Record<string, string> = {}, method = "POST"): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: "127.0.0.1", port, path: "/mcp", method, headers: { "content-type": "application/json", ...headers } }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    request.on("error", reject);
    request.end(body);
  });
}

describe("agent-side node:http adapter", () => {
  test("a JSON body reaches the handler parsed, with the agent's authInfo, and the web Request carries no second copy of it", async () => {
    let received: { parsedBody?: unknown; authInfo?: unknown; bodyUsed?: boolean; hasBody?: boolean; header?: string | null } = {};
    const { port } = await serve(async (request, options) => {
      received = { parsedBody: options.parsedBody, authInfo: options.authInfo, hasBody: request.body !== null, header: request.headers.get("x-custom") };
      return Response.json({ ok: true });
    });
    const answer = await post(port, JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }), { "x-custom": "kept" });
    assert.equal(answer.status, 200);
    assert.deepEqual(received, { parsedBody: { jsonrpc: "2.0", id: 1, method: "ping" }, authInfo: AUTH, hasBody: false, header: "kept" });
  });

  test("a body that is not JSON reaches the handler as text (so the SDK answers it with its own parse error)", async () => {
    let text: string | undefined;
    let parsed: unknown = "unset";
    const { port } = await serve(async (request, options) => {
      parsed = options.parsedBody;
      text = await request.text();
      return new Response(null, { status: 400 });
    });
    assert.equal((await post(port, "{not json")).status, 400);
    assert.equal(parsed, undefined);
    assert.equal(text, "{not json");
  });

  test("a body over maxRequestBytes gets 413 naming the limit and the connection is closed — declared or streamed — and the handler never runs", async () => {
    let calls = 0;
    const { port } = await serve(async () => {
      calls += 1;
      return Response.json({});
    }, 100);
    const declared = await post(port, "x".repeat(500));
    assert.equal(declared.status, 413);
    assert.match(declared.body, /must not exceed 100 bytes \(mcp\.limits\.maxRequestBytes\)/);
    assert.equal(declared.headers.connection, "close");
    const streamed = await post(port, "y".repeat(500), { "transfer-encoding": "chunked" });
    assert.equal(streamed.status, 413);
    assert.equal(calls, 0);
  });

  test("a complete answer goes out with its Content-Length (not chunked); an event stream is relayed event by event as it is produced", async () => {
    let release: () => void = () => undefined;
    const { port } = await serve(async (request) => {
      if (request.headers.get("x-mode") === "json") return Response.json({ result: "whole" });
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode("data: first\n\n"));
          release = () => {
            controller.enqueue(new TextEncoder().encode("data: second\n\n"));
            controller.close();
          };
        },
      });
      return new Response(stream, { headers: { "content-type": "text/event-stream" } });
    });
    const whole = await post(port, "{}", { "x-mode": "json" });
    assert.equal(whole.headers["content-length"], String(Buffer.byteLength(whole.body)));
    assert.equal(whole.headers["transfer-encoding"], undefined);
    assert.deepEqual(JSON.parse(whole.body), { result: "whole" });

    const events: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const request = httpRequest({ host: "127.0.0.1", port, path: "/mcp", method: "POST", headers: { "content-type": "application/json" } }, (response) => {
        assert.equal(response.headers["content-type"], "text/event-stream");
        response.on("data", (chunk: Buffer) => {
          events.push(chunk.toString("utf8"));
          // The first event arrived while the stream was still open: release the second.
          if (events.length === 1) release();
        });
        response.on("end", () => resolve());
      });
      request.on("error", reject);
      request.end("{}");
    });
    assert.deepEqual(events.join(""), "data: first\n\ndata: second\n\n");
  });

  test("the agent closing its connection aborts the request's signal (the SDK's cancellation on 2026-07-28)", async () => {
    let aborted = false;
    const { port } = await serve(
      (request) =>
        new Promise<Response>((resolve) => {
          request.signal.addEventListener("abort", () => {
            aborted = true;
            resolve(new Response(null, { status: 499 }));
          });
        }),
    );
    const socket = netConnect(port, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write('POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.destroy();
    for (let waited = 0; !aborted && waited < 2000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(aborted, true);
  });

  test("a handler that throws is reported and answered 500 with the request's id", async () => {
    const { port, errors } = await serve(async () => {
      throw new Error("boom");
    });
    const answer = await post(port, JSON.stringify({ jsonrpc: "2.0", id: 42, method: "tools/call" }));
    assert.equal(answer.status, 500);
    assert.deepEqual(JSON.parse(answer.body), { jsonrpc: "2.0", error: { code: -32603, message: "Internal server error" }, id: 42 });
    assert.deepEqual(
      errors.map((error) => error.message),
      ["boom"],
    );
  });

  test("a silent event stream (a call held for approval) gets SSE keep-alive comments between events, so a client's read timeout does not cut it", async () => {
    const { port } = await serve(
      async () => {
        const encoder = new TextEncoder();
        const stream = new ReadableStream<Uint8Array>({
          async start(controller) {
            await new Promise((resolve) => setTimeout(resolve, 400));
            controller.enqueue(encoder.encode('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'));
            controller.close();
          },
        });
        return new Response(stream, { headers: { "content-type": "text/event-stream" } });
      },
      1024,
      100,
    );
    const answer = await post(port, JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "x" } }), { accept: "application/json, text/event-stream" });
    const events = answer.body.split("\n\n").filter((part) => part !== "");
    assert.ok(events.filter((event) => event === ": keep-alive").length >= 2, answer.body);
    assert.equal(events.at(-1), 'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}');
    const json = await serve(async () => Response.json({ ok: true }), 1024, 10);
    assert.equal((await post(json.port, JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }))).body, '{"ok":true}', "a JSON answer gets no comment");
  });
});
