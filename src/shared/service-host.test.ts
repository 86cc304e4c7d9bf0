// The pieces every service is built on (src/shared): one error base, one address parser, one token check, one
// bounded body reader, one service host. Each is attacked here alone; the services' suites attack them in place.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BodyTooLargeError,
  PerimeterError,
  ServiceHost,
  bearerToken,
  createTokenVerifier,
  dialAddress,
  errorKinds,
  exitCodeFor,
  feedTokenVerifier,
  formatHostPort,
  httpStatusFor,
  isLoopbackHost,
  parseListenAddress,
  readBoundedBody,
  silentLogger,
  tokenMatches,
  withAuditFeed,
} from "./index.ts";
import { openAuditLog } from "../audit-log/index.ts";

test("every error code maps to one exit code and one HTTP status; what is not ours is internal", () => {
  const kinds = errorKinds();
  assert.ok(kinds.length >= 10);
  for (const kind of kinds) {
    const error = new PerimeterError(kind.code, "x");
    assert.equal(error.exitCode, kind.exit);
    assert.equal(exitCodeFor(error), kind.exit);
    assert.equal(httpStatusFor(error), kind.http);
  }
  assert.equal(exitCodeFor(new Error("bug")), 3);
  assert.equal(httpStatusFor(new TypeError("bug")), 500);
  assert.equal(exitCodeFor(new PerimeterError("usage", "x")), 2);
  assert.equal(exitCodeFor(new PerimeterError("audit_unavailable", "x")), 2);
  class Custom extends PerimeterError {}
  assert.equal(new Custom("denied", "x").name, "Custom");
});

test("listen addresses: IPv4, bracketed IPv6, names, port 0; garbage refused with what to write", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:3128"), { kind: "tcp", host: "127.0.0.1", port: 3128 });
  assert.deepEqual(parseListenAddress("[::1]:0"), { kind: "tcp", host: "::1", port: 0 });
  assert.deepEqual(parseListenAddress("[FE80::1]:80"), { kind: "tcp", host: "fe80::1", port: 80 });
  assert.deepEqual(parseListenAddress("LocalHost:8700"), { kind: "tcp", host: "localhost", port: 8700 });
  assert.deepEqual(parseListenAddress("unix:/run/x.sock", { unix: true }), { kind: "unix", path: "/run/x.sock" });
  assert.deepEqual(parseListenAddress("/run/x.sock", { unix: true }), { kind: "unix", path: "/run/x.sock" });
  for (const bad of ["::1:80", "[::1]", "127.0.0.1", "127.0.0.1:65536", "[not-v6]:80", "[::1%eth0]:80", "a b:80", ":80", "/run/x.sock", "unix:/x", "127.0.0.1:-1", "127.0.0.1:80x"]) {
    assert.throws(() => parseListenAddress(bad, { what: "--listen" }), (error: unknown) => error instanceof PerimeterError && error.code === "bad_address" && error.message.includes(`--listen "${bad}" is not HOST:PORT`) && error.message.includes("[::1]:8700"), bad);
  }
  assert.throws(() => parseListenAddress("nope", { unix: true, example: "127.0.0.1:3128" }), /not HOST:PORT or a socket path \(write 127\.0\.0\.1:3128, \[::1\]:3128 or a socket path/);
  assert.equal(formatHostPort("::1", 80), "[::1]:80");
  assert.equal(formatHostPort("10.0.0.1", 80), "10.0.0.1:80");
  assert.equal(dialAddress({ kind: "tcp", host: "0.0.0.0", port: 9 }), "127.0.0.1:9");
  assert.equal(dialAddress({ kind: "tcp", host: "::", port: 9 }), "[::1]:9");
  for (const loopback of ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"]) assert.ok(isLoopbackHost(loopback), loopback);
  for (const other of ["0.0.0.0", "::", "10.0.0.1", "::ffff:10.0.0.1", "localhost.example.com", "128.0.0.1"]) assert.ok(!isLoopbackHost(other), other);
});

test("bearer tokens: only the Bearer scheme, the right token, in constant time; empty tokens never match", () => {
  assert.equal(bearerToken("Bearer abc"), "abc");
  assert.equal(bearerToken("bearer   abc  "), "abc");
  assert.equal(bearerToken(["Bearer one", "Bearer two"]), "one");
  for (const header of [undefined, "", "Basic abc", "Bearer", "Bearer a b", "Bearerabc"]) assert.equal(bearerToken(header), undefined, String(header));
  const verifier = createTokenVerifier([{ name: "feed", token: "f".repeat(32) }, { name: "admin", token: "a".repeat(32) }, { name: "blank", token: "" }]);
  assert.equal(verifier.verify("f".repeat(32)), "feed");
  assert.equal(verifier.verify("a".repeat(32)), "admin");
  assert.equal(verifier.verify(""), undefined);
  assert.equal(verifier.verify(undefined), undefined);
  assert.equal(verifier.verify("f".repeat(31)), undefined);
  assert.ok(tokenMatches("secret-value", "secret-value"));
  assert.ok(!tokenMatches("secret-valuE", "secret-value"));
  assert.ok(!tokenMatches("", ""));
});

async function bodyServer(limit: number, timeoutMs?: number): Promise<{ port: number; outcomes: string[]; close(): Promise<void> }> {
  const outcomes: string[] = [];
  const server = http.createServer((request, response) => {
    readBoundedBody(request, { limit, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }).then(
      (body) => {
        outcomes.push(`ok:${body.length}`);
        response.end("ok");
      },
      (error: PerimeterError) => {
        outcomes.push(`${error.code}${error instanceof BodyTooLargeError ? ":large" : ""}`);
        response.writeHead(error.httpStatus, { connection: "close" }).end(error.message);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as net.AddressInfo).port, outcomes, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function rawRequest(port: number, text: string, thenWrite?: (socket: net.Socket) => void): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(text);
      thenWrite?.(socket);
    });
    let answer = "";
    socket.on("data", (chunk) => (answer += chunk.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(answer));
    setTimeout(() => socket.destroy(), 3000).unref();
  });
}

test("bounded bodies: a declared or streamed body over the limit is refused (413), a slow one times out", async () => {
  const server = await bodyServer(1024, 300);
  try {
    assert.match(await rawRequest(server.port, "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"), /^HTTP\/1\.1 200/);
    assert.match(await rawRequest(server.port, "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 999999999\r\n\r\n"), /^HTTP\/1\.1 413/);
    // Chunked: no length declared, the body grows past the bound while streaming.
    const chunk = "x".repeat(600);
    const chunked = `POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${(600).toString(16)}\r\n${chunk}\r\n${(600).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`;
    assert.match(await rawRequest(server.port, chunked), /^HTTP\/1\.1 413/);
    // Declares 10 bytes, sends 2, then waits: the reader gives up instead of holding the request forever.
    assert.match(await rawRequest(server.port, "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhi"), /^HTTP\/1\.1 504/);
    assert.deepEqual(server.outcomes, ["ok:5", "too_large:large", "too_large:large", "timeout"]);
  } finally {
    await server.close();
  }
});

test("the service host: a busy port is a setup error naming the fix; a stale socket is cleared; a file is not", async () => {
  const host = new ServiceHost("test", silentLogger());
  const first = http.createServer((_request, response) => response.end("first"));
  const bound = await host.listen(first, "127.0.0.1:0");
  assert.equal(bound.kind, "tcp");
  const busy = http.createServer();
  await assert.rejects(host.listen(busy, `127.0.0.1:${bound.kind === "tcp" ? bound.port : 0}`), (error: unknown) => error instanceof PerimeterError && error.code === "setup" && error.exitCode === 2 && /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*another process listens there/.test(error.message));
  await assert.rejects(host.listen(http.createServer(), "127.0.0.1"), (error: unknown) => error instanceof PerimeterError && error.code === "bad_address");

  const dir = mkdtempSync(join(tmpdir(), "perimeter-host-"));
  const socketPath = join(dir, "svc.sock");
  const stale = net.createServer();
  await new Promise<void>((resolve) => stale.listen(socketPath, resolve));
  // A crashed process leaves its socket file behind: simulate by closing the handle without unlinking.
  (stale as unknown as { _handle: { close(): void } | null })._handle?.close();
  const reused = http.createServer((_request, response) => response.end("unix"));
  const unixBound = await host.listen(reused, socketPath, { unix: true });
  assert.deepEqual(unixBound, { kind: "unix", path: socketPath });
  const plainFile = join(dir, "not-a-socket");
  writeFileSync(plainFile, "keep me");
  await assert.rejects(host.listen(http.createServer(), plainFile, { unix: true }), /exists and is not a socket/);
  const live = http.createServer();
  await assert.rejects(host.listen(live, socketPath, { unix: true }), /in use by another process/);

  const order: string[] = [];
  host.defer("first", () => void order.push("first"));
  host.defer("second", () => {
    order.push("second");
    throw new Error("closing failed");
  });
  host.defer("third", async () => void order.push("third"));
  await host.close();
  await host.close();
  assert.deepEqual(order, ["third", "second", "first"]);
  assert.equal(first.listening, false);
  assert.equal(reused.listening, false);
});

test("the audit feed through the host: the feed token reads, no token / a wrong one / another service's token do not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "perimeter-feed-"));
  const auditPath = join(dir, "audit.db");
  const log = openAuditLog({ path: auditPath });
  log.append({ component: "egress-proxy", type: "egress-decision", data: { decision: "deny", host: "metadata.invalid" } });
  const feedToken = "feed-token-value-0123456789abcdef";
  assert.throws(() => feedTokenVerifier("PERIMETER_AUDIT_FEED_TOKEN", {}), (error: unknown) => error instanceof PerimeterError && error.code === "missing_secret" && error.message.includes("PERIMETER_AUDIT_FEED_TOKEN"));
  assert.equal(feedTokenVerifier(undefined, {}), undefined);
  const verifier = feedTokenVerifier("PERIMETER_AUDIT_FEED_TOKEN", { PERIMETER_AUDIT_FEED_TOKEN: feedToken });
  assert.ok(verifier !== undefined);
  const host = new ServiceHost("test", silentLogger());
  const feed = await host.openAuditFeed({ auditPath, verifier, tokenHint: "the audit feed token (audit.feedTokenSecret)" });
  const server = http.createServer(withAuditFeed(feed, (_request, response) => void response.end("metrics")));
  const bound = await host.listen(server, "127.0.0.1:0");
  const base = bound.kind === "tcp" ? bound.url : "";
  try {
    const get = (path: string, token?: string) => fetch(`${base}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
    assert.equal(await (await get("/metrics")).text(), "metrics");
    const ok = await get("/v1/audit/records?after=0", feedToken);
    assert.equal(ok.status, 200);
    const page = (await ok.json()) as { records: Array<{ component: string; data: string }> };
    assert.equal(page.records.length, 1);
    assert.match(page.records[0]?.data ?? "", /metadata\.invalid/);
    const none = await get("/v1/audit/head");
    assert.equal(none.status, 401);
    assert.match(await none.text(), /audit\.feedTokenSecret/);
    assert.equal((await get("/v1/audit/head", "wrong")).status, 401);
    assert.equal((await get("/v1/audit/head", "the-sandbox-token-of-mcp-guard")).status, 401);
    const post = await fetch(`${base}/v1/audit/records`, { method: "POST", headers: { authorization: `Bearer ${feedToken}` }, body: "{}" });
    assert.equal(post.status, 405);
  } finally {
    await host.close();
    log.close();
  }
});
