// Adversarial tests of the guard's hot path, written by a second engineer who does not trust the first: upstreams
// that lie, stall, flood or break the wire format (against the node:http transport under the official SDK Client),
// agents that send what no client should (against the whole guard on loopback), and an audit log that fails under
// the group commit. Real servers on 127.0.0.1 only. Each test names the behaviour it proves.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { connect as netConnect, createServer as createNetServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/client";
import { AuditWriteError, readAuditRecords } from "../audit-log/index.ts";
import type { AuditLog, PreparedAuditEvent } from "../audit-log/index.ts";
import type { JSONRPCMessage } from "@modelcontextprotocol/client";
import { NodeHttpClientTransport } from "./http-transport.ts";
import type { HttpTransportOptions } from "./http-transport.ts";
import { connectAgent, eventually, recordingHandler, resultText, startGuard, startRecordingServer } from "./testing.ts";
import type { ScriptedHandler, SeenRequest } from "./testing.ts";
import { uploadAfterRefusal } from "../shared/testing.ts";

type Seen = SeenRequest;
type Handle = ScriptedHandler;

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function startServer(handle: Handle): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer(recordingHandler(handle, seen));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, seen, server };
}

const json = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
  response.end(text);
};
const event = (message: unknown, id?: string) => `${id === undefined ? "" : `id: ${id}\n`}event: message\ndata: ${JSON.stringify(message)}\n\n`;
const textResult = (id: string | number | undefined, text: string): JSONRPCMessage => ({ jsonrpc: "2.0", id: id as number, result: { content: [{ type: "text", text }] } });
const textOf = (result: unknown) => ((result as { content: Array<{ text?: string }> }).content[0]?.text ?? "") as string;

/**
 * A 2025-11-25 MCP server answering initialize and notifications itself; GET gets 405 unless `get` handles it; every
 * other request goes to `call`.
 */
function upstream(call: Handle, options: { sessionId?: string; get?: Handle } = {}): Handle {
  return (seen, response, request) => {
    if (seen.method === "DELETE") return void response.writeHead(200).end();
    if (seen.method === "GET") return options.get === undefined ? void response.writeHead(405).end() : options.get(seen, response, request);
    const message = seen.message;
    if (message?.method === "initialize") {
      const result = { protocolVersion: "2025-11-25", capabilities: { tools: { listChanged: true } }, serverInfo: { name: "hostile", version: "1.0.0" } };
      return json(response, 200, { jsonrpc: "2.0", id: message.id, result }, options.sessionId === undefined ? {} : { "mcp-session-id": options.sessionId });
    }
    if (message?.id === undefined) return void response.writeHead(202).end();
    call(seen, response, request);
  };
}

async function connect(url: string, options: HttpTransportOptions = {}): Promise<{ client: Client; transport: NodeHttpClientTransport; errors: Error[] }> {
  const transport = new NodeHttpClientTransport(new URL(url), options);
  const client = new Client({ name: "guard-under-test", version: "1.0.0" }, { capabilities: {} });
  const errors: Error[] = [];
  await client.connect(transport, { timeout: 5000 });
  client.onerror = (error) => errors.push(error);
  cleanups.push(() => client.close().catch(() => undefined));
  return { client, transport, errors };
}

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

describe("hostile upstreams against the node:http transport", { timeout: 60_000 }, () => {
  test("a response for another request's id, sent on this request's stream, is not delivered as that request's result", async () => {
    let held: { id: string | number | undefined; response: ServerResponse } | undefined;
    const server = await startServer(
      upstream((seen, response) => {
        const argument = (seen.message?.params?.arguments as { message?: string } | undefined)?.message;
        response.writeHead(200, { "content-type": "text/event-stream" });
        if (argument === "slow") {
          held = { id: seen.message?.id, response };
          response.write(": working\n\n");
          return;
        }
        // The stream of the fast call carries a forged answer to the slow call first, then its own answer.
        response.end(event(textResult(held?.id, "forged")) + event(textResult(seen.message?.id, "fast")));
      }),
    );
    const { client } = await connect(server.url);
    const slow = client.callTool({ name: "echo", arguments: { message: "slow" } }, { timeout: 10_000 });
    await eventually(() => held, 5000, "the slow call upstream");
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: { message: "fast" } })), "fast");
    const settled = await Promise.race([slow.then(textOf), sleep(300).then(() => "still waiting")]);
    assert.equal(settled, "still waiting", "the slow call must not take the answer another stream forged for it");
    held?.response.end(event(textResult(held.id, "genuine")));
    assert.equal(textOf(await slow), "genuine");
  });

  test("duplicate responses for one id: the first is the result, the second is dropped (not handed to the Client as an unknown response)", async () => {
    const server = await startServer(
      upstream((seen, response) => {
        response.writeHead(200, { "content-type": "text/event-stream" });
        response.end(event(textResult(seen.message?.id, "first")) + event(textResult(seen.message?.id, "second")));
      }),
    );
    const { client, errors } = await connect(server.url);
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: {} })), "first");
    await sleep(100);
    assert.deepEqual(
      errors.filter((error) => /unknown message id|second/i.test(error.message)).map((error) => error.message),
      [],
    );
  });

  test("a stream kept open after its answer (keep-alive comments forever) is closed by the guard soon after, so sockets are not held", async () => {
    const socketsClosed: number[] = [];
    let answered = 0;
    const server = await startServer(
      upstream((seen, response, request) => {
        response.writeHead(200, { "content-type": "text/event-stream" });
        response.write(event(textResult(seen.message?.id, "answered")));
        answered = Date.now();
        const ping = setInterval(() => response.write(": still here\n\n"), 50);
        request.socket.once("close", () => {
          clearInterval(ping);
          socketsClosed.push(Date.now());
        });
      }),
    );
    const { client } = await connect(server.url, { idleTimeoutMs: 30_000 });
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: {} })), "answered");
    await eventually(() => (socketsClosed.length > 0 ? true : undefined), 5000, "the guard to close the answered stream");
    assert.ok((socketsClosed[0] as number) - answered < 3000);
  });

  test("retry: 0 does not make the guard hammer its upstream: a standalone stream that ends at once, and a resumed stream that never answers, are reopened at a bounded rate", async () => {
    let resumes = 0;
    const server = await startServer(
      upstream(
        (_seen, response) => {
          response.writeHead(200, { "content-type": "text/event-stream" });
          response.end("id: e-1\nretry: 0\ndata:\n\n");
        },
        {
          sessionId: "s-1",
          get: (seen, response) => {
            if (seen.headers["last-event-id"] !== undefined) resumes += 1;
            response.writeHead(200, { "content-type": "text/event-stream" });
            response.end(`id: e-${resumes + 1}\nretry: 0\ndata:\n\n`);
          },
        },
      ),
    );
    const { client } = await connect(server.url);
    const call = client.callTool({ name: "echo", arguments: {} }, { timeout: 1500 }).catch((error: unknown) => error);
    await sleep(1000);
    const gets = server.seen.filter((seen) => seen.method === "GET").length;
    assert.ok(gets <= 12, `${gets} GET requests in one second`);
    assert.ok(resumes <= 6, `${resumes} resumptions in one second`);
    await call;
  });

  test("an event stream written one byte at a time, with lone CR line ends and a byte-order mark, delivers the answer intact", async () => {
    const server = await startServer(
      upstream((seen, response) => {
        response.writeHead(200, { "content-type": "text/event-stream" });
        const text = `\ufeff: hi\r${event(textResult(seen.message?.id, "byte by byte: \u00e9\u4e2d\ud83d\ude00")).replaceAll("\n", "\r")}`;
        const bytes = Buffer.from(text, "utf8");
        let index = 0;
        const next = () => {
          if (index === bytes.length) return void response.end();
          response.write(bytes.subarray(index, index + 1));
          index += 1;
          setImmediate(next);
        };
        next();
      }),
    );
    const { client } = await connect(server.url);
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: {} })), "byte by byte: \u00e9\u4e2d\ud83d\ude00");
  });

  test("an upstream that closes mid-answer fails that call clearly; the next call gets its own answer on a fresh connection", async () => {
    let calls = 0;
    const server = await startServer(
      upstream((seen, response) => {
        calls += 1;
        if (calls === 1) {
          // Promise a long JSON body, send half, then cut the connection.
          response.writeHead(200, { "content-type": "application/json", "content-length": "400" });
          response.write(JSON.stringify(textResult(seen.message?.id, "cut")).slice(0, 30));
          setTimeout(() => response.socket?.destroy(), 20);
          return;
        }
        json(response, 200, textResult(seen.message?.id, `answer ${calls}`));
      }),
    );
    const { client } = await connect(server.url);
    await assert.rejects(client.callTool({ name: "echo", arguments: {} }, { timeout: 5000 }), /closed the connection before its answer was complete/);
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: {} })), "answer 2");
  });

  test("a body that is not JSON (declared application/json) fails the call saying so (not JSON.parse's token message with a piece of the body), and the connection keeps serving", async () => {
    let calls = 0;
    const server = await startServer(
      upstream((seen, response) => {
        calls += 1;
        if (calls === 1) {
          response.writeHead(200, { "content-type": "application/json" });
          response.end("<html>upstream-internal-detail-xyz</html>");
          return;
        }
        json(response, 200, textResult(seen.message?.id, "fine"));
      }),
    );
    const { client } = await connect(server.url);
    await assert.rejects(client.callTool({ name: "echo", arguments: {} }, { timeout: 5000 }), (error: Error) => /not valid JSON/.test(error.message) && !error.message.includes("upstream-internal"));
    assert.equal(textOf(await client.callTool({ name: "echo", arguments: {} })), "fine");
  });

  test("redirects on any path are not followed — 301/302/303/308 on POST and 302 on the standalone GET stream — and the credential never reaches the other host", async () => {
    const elsewhere = await startServer((_seen, response) => json(response, 200, {}));
    let status = 301;
    const server = await startServer(
      upstream(
        (_seen, response) => {
          response.writeHead(status, { location: `${elsewhere.url}?from=post` });
          response.end("moved");
        },
        {
          sessionId: "s-redirect",
          get: (_seen, response) => {
            response.writeHead(302, { location: `${elsewhere.url}?from=get` });
            response.end();
          },
        },
      ),
    );
    const { client } = await connect(server.url, { headers: { authorization: "Bearer upstream-credential-0123456789" } });
    for (const code of [301, 302, 303, 308]) {
      status = code;
      await assert.rejects(client.callTool({ name: "echo", arguments: {} }, { timeout: 5000 }), new RegExp(`redirect \\(HTTP ${code}\\)`));
    }
    await eventually(() => (server.seen.some((seen) => seen.method === "GET") ? true : undefined), 5000, "the standalone GET");
    await sleep(300);
    assert.deepEqual(elsewhere.seen, []);
    assert.ok(server.seen.every((seen) => seen.headers.authorization === "Bearer upstream-credential-0123456789"));
  });

  test("a 401 from the upstream fails the call naming the credentials to check, without retrying elsewhere or with other headers", async () => {
    const server = await startServer(
      upstream((_seen, response) => {
        response.writeHead(401, { "www-authenticate": 'Bearer resource_metadata="http://127.0.0.1:9/.well-known/oauth-protected-resource"', "content-type": "text/plain" });
        response.end("bad credential");
      }),
    );
    const { client } = await connect(server.url, { headers: { authorization: "Bearer upstream-credential-0123456789" } });
    await assert.rejects(client.callTool({ name: "echo", arguments: {} }, { timeout: 5000 }), /HTTP 401.*check the credentials in this server's headers/);
    await sleep(100);
    const calls = server.seen.filter((seen) => seen.message?.method === "tools/call");
    assert.equal(calls.length, 1);
  });

  test("an Mcp-Session-Id that is not visible ASCII (folded header, spaces, control bytes) is refused: no later request carries it or anything smuggled with it", async () => {
    for (const raw of ["abc\r\n X-Smuggled: yes", "abc def", "abc\x01"]) {
      const heads: string[] = [];
      const server = createNetServer((socket: Socket) => {
        let buffer = Buffer.alloc(0);
        socket.on("error", () => undefined);
        socket.on("data", (chunk: Buffer) => {
          buffer = Buffer.concat([buffer, chunk]);
          for (;;) {
            const end = buffer.indexOf("\r\n\r\n");
            if (end === -1) return;
            const head = buffer.subarray(0, end).toString("latin1");
            const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
            if (buffer.length < end + 4 + length) return;
            const body = buffer.subarray(end + 4, end + 4 + length).toString("utf8");
            buffer = buffer.subarray(end + 4 + length);
            heads.push(head);
            const message = body === "" ? undefined : (JSON.parse(body) as { id?: number; method?: string });
            if (message?.id === undefined) {
              socket.write("HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
              continue;
            }
            const result = message.method === "initialize" ? { protocolVersion: "2025-11-25", capabilities: { tools: {} }, serverInfo: { name: "raw", version: "1" } } : { content: [{ type: "text", text: "ok" }] };
            const text = JSON.stringify({ jsonrpc: "2.0", id: message.id, result });
            socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: ${raw}\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
          }
        });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
      const transport = new NodeHttpClientTransport(new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`));
      const client = new Client({ name: "guard-under-test", version: "1.0.0" }, { capabilities: {} });
      const connected = await client.connect(transport, { timeout: 3000 }).then(
        () => true,
        () => false,
      );
      if (connected) {
        await client.callTool({ name: "echo", arguments: {} }, { timeout: 3000 }).catch(() => undefined);
        await client.close();
      }
      for (const head of heads.slice(1)) {
        assert.doesNotMatch(head, /x-smuggled/i, JSON.stringify(raw));
        assert.doesNotMatch(head, /mcp-session-id/i, JSON.stringify(raw));
      }
    }
  });

  test("an upstream streaming progress forever: the call ends at its timeout and the stream is closed (nothing is held)", async () => {
    let closed = false;
    const server = await startServer(
      upstream((_seen, response, request) => {
        response.writeHead(200, { "content-type": "text/event-stream" });
        const token = (seen(_seen).params?._meta as { progressToken?: number } | undefined)?.progressToken;
        let progress = 0;
        const tick = setInterval(() => {
          progress += 1;
          response.write(event({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: token, progress } }));
        }, 5);
        request.socket.once("close", () => {
          clearInterval(tick);
          closed = true;
        });
      }),
    );
    const { client } = await connect(server.url);
    let progressSeen = 0;
    await assert.rejects(client.callTool({ name: "echo", arguments: {} }, { timeout: 500, onprogress: () => (progressSeen += 1) }), /timed out/i);
    assert.ok(progressSeen > 0);
    await eventually(() => (closed ? true : undefined), 5000, "the endless stream to be closed");
  });
});

function seen(entry: Seen): NonNullable<Seen["message"]> {
  return entry.message ?? {};
}

const ENV = {
  PATH: process.env.PATH,
  HOME: "/tmp",
  PERIMETER_AGENT_TOKEN: "agent-token-hermes-0123456789",
  PERIMETER_ADMIN_TOKEN: "admin-token-abcdefghijklmnop",
  WEB_TOKEN: "upstream-web-credential-5f3a9c1d",
};
const AGENT = ENV.PERIMETER_AGENT_TOKEN;
const MAX_REQUEST_BYTES = 4096;
const guardConfig = (webUrl: string) => `
version: 1
name: t
mcp:
  agents: [{ name: hermes, tokenSecret: PERIMETER_AGENT_TOKEN }]
  pinning: { trustOnFirstUse: true }
  limits: { maxRequestBytes: ${MAX_REQUEST_BYTES} }
  servers:
    web:
      url: ${webUrl}
      headers: { Authorization: "Bearer \${WEB_TOKEN}" }
      tools: { allow: [echo, echo-headers, slow] }
audit: { path: AUDIT_PATH }
`;
const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };
const INITIALIZE = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } } });

interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/** Sends bytes exactly as given on a fresh socket (pieces written `gapMs` apart) and reads the first answer. */
function rawExchange(port: number, pieces: Array<string | Buffer>, options: { gapMs?: number; endAfter?: boolean; timeoutMs?: number; headOnly?: boolean } = {}): Promise<RawAnswer & { closedBeforeAllSent: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, "127.0.0.1");
    let received = Buffer.alloc(0);
    let sent = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${options.timeoutMs ?? 5000} ms`));
    }, options.timeoutMs ?? 5000);
    const settle = () => {
      const text = received.toString("utf8");
      const headEnd = text.indexOf("\r\n\r\n");
      if (headEnd === -1) return false;
      const head = text.slice(0, headEnd);
      const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? -1);
      const body = text.slice(headEnd + 4);
      if (options.headOnly !== true && length >= 0 && Buffer.byteLength(body) < length) return false;
      clearTimeout(timer);
      resolve({ status: Number(head.split(" ")[1]), head, body, closedBeforeAllSent: sent < pieces.length });
      socket.destroy();
      return true;
    };
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      settle();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (!settle()) {
        clearTimeout(timer);
        reject(new Error(`connection closed without a complete answer: ${JSON.stringify(received.toString("utf8").slice(0, 200))}`));
      }
    });
    socket.once("connect", async () => {
      for (const piece of pieces) {
        if (socket.destroyed) return;
        socket.write(piece);
        sent += 1;
        if (options.gapMs !== undefined) await sleep(options.gapMs);
      }
      if (options.endAfter === true) socket.end();
    });
  });
}

function requestHead(port: number, method: string, headers: Record<string, string>): string {
  const lines = [`${method} /mcp HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

describe("hostile agents against the guard's endpoint", { timeout: 60_000 }, () => {
  let web: Awaited<ReturnType<typeof startRecordingServer>>;
  let started: Awaited<ReturnType<typeof startGuard>>;
  let port: number;
  before(async () => {
    web = await startRecordingServer();
    started = await startGuard(guardConfig(web.url), ENV);
    port = Number(new URL(started.url).port);
    await eventually(() => (started.guard.upstream("web")?.state().state === "ready" ? true : undefined), 20_000, "the upstream ready");
  });
  after(async () => {
    await started.close();
    await web.close();
  });

  test("every method without a token gets 401 with WWW-Authenticate; with a foreign Host or Origin 403, even with the token", async () => {
    for (const method of ["POST", "GET", "DELETE", "OPTIONS", "PUT", "PATCH", "HEAD"]) {
      const unauthenticated = await fetch(started.url, { method, headers: MCP_HEADERS, ...(["POST", "PUT", "PATCH"].includes(method) ? { body: INITIALIZE } : {}) });
      assert.equal(unauthenticated.status, 401, method);
      assert.match(unauthenticated.headers.get("www-authenticate") ?? "", /^Bearer realm=/, method);
      const foreignOrigin = await fetch(started.url, { method, headers: { ...MCP_HEADERS, authorization: `Bearer ${AGENT}`, origin: "http://evil.example" } });
      assert.equal(foreignOrigin.status, 403, method);
      const foreignHost = await rawExchange(port, [requestHead(port, method, { Host: "evil.example", Authorization: `Bearer ${AGENT}`, "Content-Length": "0" }).replace(`Host: 127.0.0.1:${port}\r\n`, "")], { headOnly: method === "HEAD" });
      assert.equal(foreignHost.status, 403, method);
    }
  });

  test("an unauthenticated client streaming a huge body is cut off after its 401, not read to the end (no free CPU and bandwidth sink)", async () => {
    const variants: Array<Record<string, string>> = [{}, { Host: "evil.example" }];
    for (const extra of variants) {
      const head = requestHead(port, "POST", { "Content-Type": "application/json", "Content-Length": String(1024 ** 3), ...extra });
      const attempt = await uploadAfterRefusal({ host: "127.0.0.1", port }, extra.Host === undefined ? head : head.replace(`Host: 127.0.0.1:${port}\r\n`, ""));
      assert.ok(attempt.closed, `the guard kept reading (${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB sent)`);
      assert.match(attempt.answer, extra.Host === undefined ? /^HTTP\/1\.1 401 / : /^HTTP\/1\.1 403 /);
      assert.ok(attempt.sentBytes < 256 * 1024 * 1024, `${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB accepted before the close`);
    }
  });

  test("wrong content type, malformed JSON, a JSON-RPC batch of junk: clean JSON-RPC errors with no stack trace, no token, no upstream credential", async () => {
    const authorized = { ...MCP_HEADERS, authorization: `Bearer ${AGENT}` };
    const answers = [
      await fetch(started.url, { method: "POST", headers: { ...authorized, "content-type": "text/plain" }, body: INITIALIZE }),
      await fetch(started.url, { method: "POST", headers: authorized, body: "{\"jsonrpc\": \"2.0\", " }),
      await fetch(started.url, { method: "POST", headers: authorized, body: "[1, null, {}]" }),
      await fetch(started.url, { method: "POST", headers: authorized, body: "\u0000\uffff" }),
      await fetch(started.url, { method: "POST", headers: authorized, body: JSON.stringify({ jsonrpc: "2.0", id: { nested: true }, method: "tools/call", params: { name: 7 } }) }),
    ];
    for (const answer of answers) {
      const text = await answer.text();
      assert.ok(answer.status >= 400 && answer.status < 500, `${answer.status}: ${text}`);
      assert.match(answer.headers.get("content-type") ?? "", /^application\/json/);
      assert.doesNotMatch(text, /\n\s+at |node:internal|\.ts:\d+/);
      for (const secret of [AGENT, ENV.WEB_TOKEN]) assert.ok(!text.includes(secret));
      assert.equal((JSON.parse(text) as { jsonrpc: string }).jsonrpc, "2.0");
    }
  });

  test("a tool result carries no protocol _meta of the upstream hop: the upstream's server info stays behind the guard", async () => {
    for (const version of ["2026-07-28", "2025-11-25"] as const) {
      const client = await connectAgent(started.url, AGENT, version);
      try {
        const result = await client.callTool({ name: "web__echo", arguments: { message: "who answered?" } });
        assert.equal(resultText(result), "web echo: who answered?", version);
        assert.ok(!JSON.stringify(result).includes("recording-upstream"), `${version}: ${JSON.stringify(result._meta)}`);
      } finally {
        await client.close();
      }
    }
  });

  test("answers to an authenticated agent are marked not to be stored by any cache", async () => {
    const client = await connectAgent(started.url, AGENT, "2026-07-28");
    try {
      const call = await fetch(started.url, {
        method: "POST",
        headers: { ...MCP_HEADERS, authorization: `Bearer ${AGENT}`, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: { _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} } } }),
      });
      assert.equal(call.status, 200, await call.clone().text());
      assert.match(call.headers.get("cache-control") ?? "", /no-store/);
      const refused = await fetch(started.url, { method: "POST", headers: { ...MCP_HEADERS, authorization: `Bearer ${AGENT}` }, body: "{bad" });
      assert.match(refused.headers.get("cache-control") ?? "", /no-store/);
    } finally {
      await client.close();
    }
  });

  test("an oversized body is refused while it is read: 413 arrives before the agent has sent the rest, for a declared length and for chunks", async () => {
    const chunkOf = (bytes: number) => `${bytes.toString(16)}\r\n${"x".repeat(bytes)}\r\n`;
    const declared = await rawExchange(port, [requestHead(port, "POST", { ...MCP_HEADERS, Authorization: `Bearer ${AGENT}`, "Content-Length": String(50 * MAX_REQUEST_BYTES) }), ...Array.from({ length: 50 }, () => "x".repeat(MAX_REQUEST_BYTES))], { gapMs: 20 });
    assert.equal(declared.status, 413);
    assert.ok(declared.closedBeforeAllSent, "the answer came before the body was complete");
    const chunked = await rawExchange(port, [requestHead(port, "POST", { ...MCP_HEADERS, Authorization: `Bearer ${AGENT}`, "Transfer-Encoding": "chunked" }), ...Array.from({ length: 50 }, () => chunkOf(1024))], { gapMs: 20 });
    assert.equal(chunked.status, 413);
    assert.ok(chunked.closedBeforeAllSent, "the answer came before the body was complete");
    assert.match(chunked.body, /must not exceed 4096 bytes/);
  });

  test("a body arriving in odd pieces (one byte at a time, chunk boundaries inside UTF-8) is read whole and answered", async () => {
    const body = Buffer.from(INITIALIZE.replace('"raw"', '"r\u00e9\u4e2d\ud83d\ude00"'), "utf8");
    const pieces: Buffer[] = [];
    for (let index = 0; index < body.length; index += 1) pieces.push(body.subarray(index, index + 1));
    const answer = await rawExchange(port, [requestHead(port, "POST", { ...MCP_HEADERS, Authorization: `Bearer ${AGENT}`, "Content-Length": String(body.length) }), ...pieces], { gapMs: 1, timeoutMs: 10_000 });
    assert.equal(answer.status, 200, answer.body);
    assert.match(answer.head, /mcp-session-id/i);
  });

  test("agents that go away mid-body or mid-answer leave the guard serving, with nothing logged as a guard error", async () => {
    const errorsBefore = started.logLines.filter((line) => /"level":(50|60)/.test(line)).length;
    for (let round = 0; round < 5; round += 1) {
      const socket = netConnect(port, "127.0.0.1");
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      socket.write(requestHead(port, "POST", { ...MCP_HEADERS, Authorization: `Bearer ${AGENT}`, "Content-Length": "500" }) + INITIALIZE.slice(0, 40));
      await sleep(20);
      socket.destroy();
    }
    // Mid-answer: a slow call over 2025-11-25 (an event stream) whose agent disappears while it runs.
    const client = await connectAgent(started.url, AGENT, "2025-11-25");
    const call = client.callTool({ name: "web__slow", arguments: { ms: 400 } }).catch((error: unknown) => error);
    await sleep(100);
    await client.close();
    await call;
    const fresh = await connectAgent(started.url, AGENT, "2026-07-28");
    try {
      assert.equal(resultText(await fresh.callTool({ name: "web__echo", arguments: { message: "still here" } })), "web echo: still here");
    } finally {
      await fresh.close();
    }
    await sleep(600);
    const errors = started.logLines.filter((line) => /"level":(50|60)/.test(line)).slice(errorsBefore);
    assert.deepEqual(errors, []);
  });

  test("many sessions from one agent: the oldest are retired (their id gets 404), the guard keeps serving, and no upstream credential reaches the agent", async () => {
    const authorized = { ...MCP_HEADERS, authorization: `Bearer ${AGENT}` };
    const ids: string[] = [];
    for (let index = 0; index < 40; index += 1) {
      const answer = await fetch(started.url, { method: "POST", headers: authorized, body: INITIALIZE });
      assert.equal(answer.status, 200);
      await answer.text();
      ids.push(answer.headers.get("mcp-session-id") ?? "");
    }
    assert.equal(new Set(ids).size, 40);
    const list = (id: string) => fetch(started.url, { method: "POST", headers: { ...authorized, "mcp-session-id": id, "mcp-protocol-version": "2025-11-25" }, body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" }) });
    assert.equal((await list(ids[0] as string)).status, 404);
    const newest = await list(ids[39] as string);
    assert.equal(newest.status, 200);
    assert.ok(!(await newest.text()).includes(ENV.WEB_TOKEN));
  });
});

/** The real audit log behind a switch: while `failWhen` says so, a commit fails as a full disk would. */
function failingAudit(log: AuditLog) {
  const state: { failWhen: ((events: readonly PreparedAuditEvent[]) => boolean) | undefined; failedCommits: number } = { failWhen: undefined, failedCommits: 0 };
  const refuse = () => {
    state.failedCommits += 1;
    throw new AuditWriteError("cannot write to the audit log: database or disk is full (test)");
  };
  const audit = {
    append: (event: Parameters<AuditLog["append"]>[0]) => (state.failWhen?.([log.prepare(event)]) === true ? refuse() : log.append(event)),
    prepare: (event: Parameters<AuditLog["prepare"]>[0]) => log.prepare(event),
    appendPrepared: (events: readonly PreparedAuditEvent[]) => (state.failWhen?.(events) === true ? refuse() : log.appendPrepared(events)),
  };
  return { audit, state };
}

describe("tool-call records under group commit, with an audit log that fails", { timeout: 60_000 }, () => {
  let web: Awaited<ReturnType<typeof startRecordingServer>>;
  let started: Awaited<ReturnType<typeof startGuard>>;
  let failing: ReturnType<typeof failingAudit>;
  let agent: Client;

  before(async () => {
    web = await startRecordingServer();
    started = await startGuard(guardConfig(web.url), ENV, { wrapAudit: (log) => (failing = failingAudit(log)).audit });
    await eventually(() => (started.guard.upstream("web")?.state().state === "ready" ? true : undefined), 20_000, "the upstream ready");
    agent = await connectAgent(started.url, AGENT, "2026-07-28");
  });
  after(async () => {
    await agent.close();
    await started.close();
    await web.close();
  });

  const upstreamSaw = (marker: string) => web.requests.some((request) => request.body.includes(marker));
  const auditFailures = async () => Number(/perimeter_mcp_guard_audit_failures_total (\d+)/.exec(await (await fetch(`${started.adminUrl}/metrics`)).text())?.[1] ?? "NaN");

  test("the dispatch record cannot be committed: the call is refused and the upstream never sees it", async () => {
    failing.state.failWhen = (events) => events.some((event) => event.type === "tool-dispatch");
    try {
      const result = await agent.callTool({ name: "web__echo", arguments: { message: "dispatch-unrecorded-1" } });
      assert.equal(result.isError, true);
      assert.match(resultText(result), /refused because the audit log cannot be written/);
    } finally {
      failing.state.failWhen = undefined;
    }
    await sleep(100);
    assert.equal(upstreamSaw("dispatch-unrecorded-1"), false);
  });

  test("the result record cannot be committed: the upstream ran the call, but its result is withheld from the agent", async () => {
    failing.state.failWhen = (events) => events.some((event) => event.type === "tool-call" && event.data.resultBytes !== undefined);
    let result;
    try {
      result = await agent.callTool({ name: "web__echo", arguments: { message: "result-unrecorded-2" } });
    } finally {
      failing.state.failWhen = undefined;
    }
    assert.equal(result.isError, true);
    assert.match(resultText(result), /result was withheld because the audit log cannot be written/);
    assert.ok(!JSON.stringify(result).includes("web echo: result-unrecorded-2"));
    assert.equal(upstreamSaw("result-unrecorded-2"), true);
  });

  const health = async () => {
    const answer = await fetch(`${started.adminUrl}/healthz`);
    return { status: answer.status, body: (await answer.json()) as { status?: string } };
  };

  test("a refused call's record is committed before the agent hears of the refusal; one that cannot be written is counted and logged, the answer stays a refusal and says so, and /healthz is 503 until a record is written again", async () => {
    const before = readAuditRecords(started.auditPath).length;
    const refused = await agent.callTool({ name: "web__not-allowed", arguments: { marker: "refused-3" } });
    assert.equal(refused.isError, true);
    const landed = readAuditRecords(started.auditPath, { afterSeq: 0 }).slice(before).find((record) => record.type === "tool-call" && record.data.decision === "deny" && JSON.stringify(record.data).includes("refused-3"));
    assert.equal(landed?.data.agent, "hermes", "the refusal's record is already in the log");

    const failuresBefore = await auditFailures();
    failing.state.failedCommits = 0;
    failing.state.failWhen = (events) => events.some((event) => event.data.decision === "deny");
    assert.equal((await health()).status, 200);
    try {
      const again = await agent.callTool({ name: "web__not-allowed", arguments: { marker: "refused-4" } });
      assert.equal(again.isError, true);
      assert.match(resultText(again), /could not be written to the audit log/);
      assert.ok(failing.state.failedCommits > 0, "the commit was tried before the answer");
    } finally {
      failing.state.failWhen = undefined;
    }
    assert.equal(await auditFailures(), failuresBefore + 1);
    assert.ok(started.logLines.some((line) => /"level":50/.test(line) && /audit write failed for a refused call/.test(line)));
    assert.ok(!readAuditRecords(started.auditPath).some((record) => JSON.stringify(record.data).includes("refused-4")));
    const down = await health();
    assert.equal(down.status, 503, "a lost record makes the guard unhealthy");
    assert.equal(down.body.status, "audit-failing");

    assert.equal(resultText(await agent.callTool({ name: "web__echo", arguments: { message: "recorded-again-5" } })), "web echo: recorded-again-5");
    assert.equal((await health()).status, 200, "healthy again once a record is written");
  });
});

test("the agent's token never goes upstream on any path — POST, the GET stream, DELETE — across a session expiry and the reconnect it forces", { timeout: 60_000 }, async () => {
  let session = 1;
  const server = await startServer(
    upstream(
      (seen, response) => {
        if (seen.headers["mcp-session-id"] !== `s-${session}`) return json(response, 404, { jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null });
        if (seen.message?.method === "tools/list") return json(response, 200, { jsonrpc: "2.0", id: seen.message.id, result: { tools: [{ name: "echo", inputSchema: { type: "object" } }] } });
        json(response, 200, textResult(seen.message?.id, `session ${session}`));
      },
      {
        get: (_seen, response) => {
          response.writeHead(200, { "content-type": "text/event-stream" });
          response.write(": open\n\n");
        },
      },
    ),
  );
  // The initialize answer must carry the current session id: wrap the helper's answer.
  server.server.prependListener("request", (_request: IncomingMessage, response: ServerResponse) => {
    const writeHead = response.writeHead.bind(response) as (...parameters: unknown[]) => ServerResponse;
    (response as unknown as { writeHead: (...parameters: unknown[]) => ServerResponse }).writeHead = (status: unknown, headers?: unknown) =>
      writeHead(status, { ...(headers as Record<string, string>), ...(status === 200 ? { "mcp-session-id": `s-${session}` } : {}) });
  });
  const started = await startGuard(guardConfig(server.url).replace("allow: [echo, echo-headers, slow]", "allow: [echo]"), ENV, { backoff: { initialMs: 50, maxMs: 200 } });
  try {
    await eventually(() => (started.guard.upstream("web")?.state().state === "ready" ? true : undefined), 10_000, "the upstream ready");
    const client = await connectAgent(started.url, AGENT, "2025-11-25");
    assert.equal(resultText(await client.callTool({ name: "web__echo", arguments: {} })), "session 1");
    session = 2; // the upstream forgets session 1: the next call fails, the guard reconnects with a new session
    await client.callTool({ name: "web__echo", arguments: {} });
    const answer = await eventually(async () => {
      const result = await client.callTool({ name: "web__echo", arguments: {} });
      return resultText(result) === "session 2" ? true : undefined;
    }, 10_000, "a call on the new session");
    assert.equal(answer, true);
    await client.close();
  } finally {
    await started.close();
  }
  const methods = new Set(server.seen.map((seen) => seen.method));
  assert.ok(methods.has("POST") && methods.has("GET") && methods.has("DELETE"), [...methods].join(","));
  assert.ok(server.seen.filter((seen) => seen.message?.method === "initialize").length >= 2, "a reconnect happened");
  for (const seen of server.seen) {
    assert.equal(seen.headers.authorization, `Bearer ${ENV.WEB_TOKEN}`, `${seen.method} ${seen.message?.method ?? ""}`);
    assert.ok(!JSON.stringify(seen.headers).includes(AGENT), `${seen.method} carried the agent's token`);
  }
});
