// Requirement (issue 3): the SNI of a CONNECT to 443 is read from the TLS ClientHello without terminating TLS, however
// the hello is split across TCP segments and TLS records; ambiguous hellos (two server_name extensions, two names)
// and non-TLS bytes are refused rather than guessed at.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClientHelloReader } from "./client-hello.ts";
import type { ClientHelloResult } from "./client-hello.ts";
import { captureClientHello } from "./test-support.ts";

/** Re-records a single-record ClientHello into records of `size` handshake bytes each. */
function rerecord(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5);
  const records: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += size) {
    const fragment = body.subarray(offset, offset + size);
    records.push(Buffer.from([22, 3, 1, fragment.length >> 8, fragment.length & 0xff]), fragment);
  }
  return Buffer.concat(records);
}

function feed(bytes: Buffer, segment: number): ClientHelloResult {
  const reader = createClientHelloReader();
  let result: ClientHelloResult = { kind: "need-more" };
  for (let offset = 0; offset < bytes.length && result.kind === "need-more"; offset += segment) {
    result = reader.push(bytes.subarray(offset, offset + segment));
  }
  return result;
}

test("a real ClientHello yields its SNI", async () => {
  const hello = await captureClientHello("api.allowed.test");
  const result = feed(hello, hello.length);
  assert.equal(result.kind, "complete");
  assert.equal(result.kind === "complete" && result.serverName, "api.allowed.test");
});

test("a ClientHello without SNI is complete with no server name", async () => {
  const hello = await captureClientHello(undefined);
  const result = feed(hello, hello.length);
  assert.deepEqual(result.kind === "complete" && result.serverName, undefined);
  assert.equal(result.kind, "complete");
});

test("fragmentation across TCP segments of every size from 1 byte gives the same answer", async () => {
  const hello = await captureClientHello("allowed.test");
  for (const segment of [1, 2, 3, 5, 7, 64, 100, 517]) {
    const result = feed(hello, segment);
    assert.equal(result.kind === "complete" && result.serverName, "allowed.test", `segments of ${segment} bytes`);
  }
});

test("fragmentation across TLS records (and segments within them) gives the same answer", async () => {
  const hello = await captureClientHello("allowed.test");
  for (const recordSize of [30, 40, 200, 1000]) {
    const split = rerecord(hello, recordSize);
    for (const segment of [1, 13, split.length]) {
      const result = feed(split, segment);
      assert.equal(result.kind === "complete" && result.serverName, "allowed.test", `records of ${recordSize}, segments of ${segment}`);
    }
  }
});

test("bytes after the ClientHello (early data) do not disturb the answer", async () => {
  const hello = await captureClientHello("allowed.test");
  const result = feed(Buffer.concat([hello, Buffer.from([23, 3, 3, 0, 1, 0])]), 9);
  assert.equal(result.kind === "complete" && result.serverName, "allowed.test");
});

test("non-TLS bytes (an HTTP request, SSLv2 hello) are refused as not-tls", () => {
  assert.equal((feed(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 4) as { reason?: string }).reason, "not-tls");
  assert.equal((feed(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0, 0]), 7) as { reason?: string }).reason, "not-tls");
});

/** Builds a ClientHello by hand with the given extensions (type, data). */
function buildHello(extensions: Array<[number, Buffer]>): Buffer {
  const extensionBytes = Buffer.concat(extensions.map(([type, data]) => Buffer.concat([Buffer.from([type >> 8, type & 0xff, data.length >> 8, data.length & 0xff]), data])));
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    Buffer.from([0, 2, 0x13, 0x01]),
    Buffer.from([1, 0]),
    Buffer.from([extensionBytes.length >> 8, extensionBytes.length & 0xff]),
    extensionBytes,
  ]);
  const handshake = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([22, 3, 1, handshake.length >> 8, handshake.length & 0xff]), handshake]);
}

function serverNameExtension(...names: string[]): Buffer {
  const entries = Buffer.concat(names.map((name) => Buffer.concat([Buffer.from([0, name.length >> 8, name.length & 0xff]), Buffer.from(name)])));
  return Buffer.concat([Buffer.from([entries.length >> 8, entries.length & 0xff]), entries]);
}

test("a hand-built hello parses, so the refusals below are about what they test", () => {
  const result = feed(buildHello([[0, serverNameExtension("allowed.test")]]), 1000);
  assert.equal(result.kind === "complete" && result.serverName, "allowed.test");
});

test("two server_name extensions (one name for us, another for the server) are refused", () => {
  const result = feed(buildHello([[0, serverNameExtension("allowed.test")], [0, serverNameExtension("evil.test")]]), 1000);
  assert.equal(result.kind, "invalid");
  assert.match(result.kind === "invalid" ? result.detail : "", /appears twice/);
});

test("two host_names in one server_name extension are refused", () => {
  const result = feed(buildHello([[0, serverNameExtension("allowed.test", "evil.test")]]), 1000);
  assert.equal(result.kind, "invalid");
});

test("a server name with control characters, or truncated vectors, are refused", () => {
  assert.equal(feed(buildHello([[0, serverNameExtension("allowed.test\u0000evil")]]), 1000).kind, "invalid");
  const truncated = buildHello([[0, serverNameExtension("allowed.test")]]);
  truncated.writeUInt16BE(0xffff, truncated.length - serverNameExtension("allowed.test").length - 2); // extension length beyond the message
  assert.equal(feed(truncated, 1000).kind, "invalid");
});

test("a ClientHello claiming to be larger than the limit is refused without waiting for it", () => {
  const header = Buffer.from([22, 3, 1, 0, 4, 1, 0x10, 0, 0]); // handshake length 1 MiB
  assert.equal((feed(header, 9) as { reason?: string }).reason, "client-hello-too-large");
});

test("a hello spread over hundreds of one-byte records is refused (bounded work)", async () => {
  const hello = await captureClientHello("allowed.test");
  const result = feed(rerecord(hello, 1).subarray(0, 6 * 100), 600);
  assert.equal(result.kind, "invalid");
});
