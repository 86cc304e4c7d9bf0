// A refusal answered before the request body was read (src/shared/refusal.ts, used by egress-proxy, mcp-guard and
// llm-proxy): the body is not read and thrown away (a CPU and bandwidth sink for anyone who can connect), the client
// still gets the answer (no reset before it could read it), and requests without an unread body keep their connection.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { closeAfterAnswerIfBodyUnread } from "./index.ts";
import { uploadAfterRefusal } from "./testing.ts";

async function refusingServer(readBodyFirst: boolean): Promise<{ port: number; bytesRead: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((request, response) => {
    const answer = () => {
      closeAfterAnswerIfBodyUnread(response, 300);
      response.writeHead(403, { "content-type": "text/plain", "content-length": "7" });
      response.end("refused");
    };
    if (readBodyFirst) request.resume().once("end", answer);
    else answer();
  });
  server.on("connection", (socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    bytesRead: () => [...sockets].reduce((total, socket) => total + socket.bytesRead, 0),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function rawClient(port: number): Promise<{ socket: net.Socket; answer: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
    socket.on("error", () => undefined);
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.once("connect", () => resolve({ socket, answer: () => answer, closed }));
    socket.once("error", reject);
  });
}

test("an unread body is not read: the client gets the answer, stalls in flow control, and is closed after the linger", async () => {
  const server = await refusingServer(false);
  try {
    const attempt = await uploadAfterRefusal({ host: "127.0.0.1", port: server.port }, `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${1024 ** 3}\r\n\r\n`, { forMs: 2000, maxBytes: 256 * 1024 * 1024 });
    assert.ok(attempt.closed, "closed after the linger");
    assert.match(attempt.answer, /^HTTP\/1\.1 403 [^]*\r\n\r\nrefused$/);
    assert.ok(server.bytesRead() < 4 * 1024 * 1024, `the server read ${server.bytesRead()} bytes of a body it refused`);
  } finally {
    await server.close();
  }
});

test("a request without a body, or whose body was read, keeps its keep-alive connection", async () => {
  for (const [readBodyFirst, request] of [
    [false, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"],
    [true, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"],
  ] as const) {
    const server = await refusingServer(readBodyFirst);
    try {
      const client = await rawClient(server.port);
      client.socket.write(request);
      await new Promise((resolve) => setTimeout(resolve, 500));
      client.socket.write(request);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(client.socket.destroyed, false, request);
      assert.equal(client.answer().match(/HTTP\/1\.1 403/g)?.length, 2, client.answer());
      client.socket.destroy();
    } finally {
      await server.close();
    }
  }
});

test("a refusal of a request whose body is unread says Connection: close, so a keep-alive client's next request is not sent into a connection nobody reads", async () => {
  const server = await refusingServer(false);
  try {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const send = (path: string, body?: string) =>
      new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
        const request = http.request({ host: "127.0.0.1", port: server.port, path, method: body === undefined ? "GET" : "POST", agent }, (response) => {
          response.resume();
          response.on("end", () => resolve({ status: response.statusCode ?? 0, connection: response.headers.connection }));
        });
        request.on("error", reject);
        request.end(body);
      });
    const refused = await send("/upload", "x".repeat(64 * 1024));
    assert.equal(refused.status, 403);
    assert.equal(refused.connection, "close");
    // Before, the agent reused the refused connection for this request and got ECONNRESET a second later.
    const next = await send("/next");
    assert.equal(next.status, 403);
    agent.destroy();
  } finally {
    await server.close();
  }
});
