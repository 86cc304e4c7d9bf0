// Requirements (issue 3, plain-HTTP forwarding): the upstream leg parses an origin's response strictly, so that no
// origin can make the proxy frame one response into another. Every shape a lenient parser would guess at is refused
// (bare LF or CR, obs-fold, whitespace before the colon, invalid names, control characters, two Content-Lengths,
// Content-Length with Transfer-Encoding, codings other than chunked, chunked in HTTP/1.0, oversized heads, bad status
// lines), and the chunked decoder gives the same answer however the body is split across reads, reports the bytes
// that follow the message as not consumed, and refuses malformed or oversized framing.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ChunkedError, LAST_CHUNK, createChunkedDecoder, encodeChunk, parseResponseHead, responseHasBody } from "./http1.ts";
import type { HeadParse, ResponseHead } from "./http1.ts";

const MAX = 64 * 1024;
const bytes = (text: string) => Buffer.from(text, "latin1");

function parsed(text: string, maxBytes = MAX): ResponseHead {
  const result = parseResponseHead(bytes(text), maxBytes);
  assert.equal(result.kind, "head", `expected a head, got ${JSON.stringify(result)}`);
  return (result as Extract<HeadParse, { kind: "head" }>).head;
}

function refused(input: string | Buffer, pattern: RegExp, maxBytes = MAX): void {
  const result = parseResponseHead(typeof input === "string" ? bytes(input) : input, maxBytes);
  assert.equal(result.kind, "invalid", `expected a refusal for ${JSON.stringify(String(input).slice(0, 120))}, got ${result.kind}`);
  const detail = (result as Extract<HeadParse, { kind: "invalid" }>).detail;
  assert.match(detail, pattern);
  // The detail ends up in a log line and an X-Perimeter-Error body: bounded, one line.
  assert.ok(detail.length <= 160, `detail too long: ${detail.length}`);
  assert.doesNotMatch(detail, /[\r\n]/);
}

describe("parseResponseHead: well-formed heads", () => {
  test("a head with Content-Length: status, reason, headers in their own case, length and framing", () => {
    const text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Mixed-Case: a b\r\nContent-Length: 5\r\n\r\n";
    const head = parsed(`${text}hello`);
    assert.equal(head.minor, 1);
    assert.equal(head.status, 200);
    assert.equal(head.reason, "OK");
    assert.deepEqual(head.rawHeaders, ["Content-Type", "text/plain", "X-Mixed-Case", "a b", "Content-Length", "5"]);
    assert.equal(head.length, text.length, "length stops at the blank line, not at the end of the buffer");
    assert.deepEqual(head.framing, { kind: "length", length: 5 });
    assert.equal(head.close, false);
  });

  test("need-more for every prefix that lacks the blank line", () => {
    const text = "HTTP/1.1 204 No Content\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n";
    for (let end = 0; end < text.length; end++) assert.deepEqual(parseResponseHead(bytes(text.slice(0, end)), MAX), { kind: "need-more" }, `prefix of ${end}`);
    assert.equal(parsed(text).status, 204);
  });

  test("framing: chunked, close-delimited, zero length; values trimmed of spaces and tabs only", () => {
    assert.deepEqual(parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: \tChunked \r\n\r\n").framing, { kind: "chunked" });
    assert.deepEqual(parsed("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n").framing, { kind: "close" });
    assert.deepEqual(parsed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").framing, { kind: "length", length: 0 });
    assert.deepEqual(parsed("HTTP/1.1 200 OK\r\nX-Value:  \t inner  space \t \r\n\r\n").rawHeaders, ["X-Value", "inner  space"]);
    assert.deepEqual(parsed("HTTP/1.1 200 OK\r\nX-Empty:\r\n\r\n").rawHeaders, ["X-Empty", ""]);
    assert.deepEqual(parsed("HTTP/1.1 200 OK\r\nX-Obs-Text: caf\xe9\r\n\r\n").rawHeaders, ["X-Obs-Text", "caf\xe9"], "obs-text is kept byte for byte");
  });

  test("a status line without a reason phrase, and with an empty one", () => {
    assert.equal(parsed("HTTP/1.1 204\r\n\r\n").reason, "");
    assert.equal(parsed("HTTP/1.1 204 \r\n\r\n").reason, "");
    assert.equal(parsed("HTTP/1.1 599 Custom\tReason\r\n\r\n").reason, "Custom\tReason");
  });

  test("connection: Connection tokens lowercased and merged; HTTP/1.0 closes unless it asks for keep-alive", () => {
    const head = parsed("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, X-Secret\r\nconnection: Upgrade\r\nContent-Length: 0\r\n\r\n");
    assert.deepEqual([...head.connectionTokens].sort(), ["keep-alive", "upgrade", "x-secret"]);
    assert.equal(head.close, false);
    assert.equal(parsed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").close, true);
    assert.equal(parsed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").close, true);
    assert.equal(parsed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").close, false);
    assert.equal(parsed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").minor, 0);
  });

  test("a head of exactly the limit is accepted, with or without body bytes after it", () => {
    const prefix = "HTTP/1.1 200 OK\r\nX-Pad: ";
    const text = `${prefix}${"a".repeat(1000 - prefix.length - 4)}\r\n\r\n`;
    assert.equal(text.length, 1000);
    assert.equal(parsed(text, 1000).length, 1000);
    assert.equal(parsed(`${text}body bytes beyond the limit`, 1000).length, 1000);
  });
});

describe("parseResponseHead: refusals", () => {
  test("bare LF line ends are refused at once, complete or not (not left waiting for a CRLF that never comes)", () => {
    refused("HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", /bare CR or LF/);
    refused("HTTP/1.1 200 OK\nContent-Length: 2\n", /bare CR or LF/);
    refused("HTTP/1.1 200 OK\n", /bare CR or LF/);
    refused("HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nhi", /bare CR or LF/);
    refused("HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 2\n", /bare CR or LF/);
    refused("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\n\r\n", /bare CR or LF/);
  });

  test("a bare CR is refused, complete or not; a CR waiting for its LF is not", () => {
    refused("HTTP/1.1 200 OK\r\nX-A: 1\r2\r\n\r\n", /bare CR or LF/);
    refused("HTTP/1.1 200 OK\rContent-Length: 0\r\n", /bare CR or LF/);
    assert.deepEqual(parseResponseHead(bytes("HTTP/1.1 200 OK\r\nX-A: 1\r"), MAX), { kind: "need-more" });
    assert.deepEqual(parseResponseHead(bytes("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r"), MAX), { kind: "need-more" });
  });

  test("obs-fold (a header continued on the next line), with a space or a tab", () => {
    refused("HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n", /obs-fold/);
    refused("HTTP/1.1 200 OK\r\nX-Folded: a\r\n\tb\r\n\r\n", /obs-fold/);
    refused("HTTP/1.1 200 OK\r\n Content-Length: 5\r\n\r\n", /obs-fold/);
  });

  test("whitespace before the colon", () => {
    refused("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", /invalid header name/);
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding\t: chunked\r\n\r\n", /invalid header name/);
  });

  test("invalid or missing header names", () => {
    refused("HTTP/1.1 200 OK\r\nX(Bad): 1\r\n\r\n", /invalid header name/);
    refused("HTTP/1.1 200 OK\r\nX Bad: 1\r\n\r\n", /invalid header name/);
    refused("HTTP/1.1 200 OK\r\nX-\xe9: 1\r\n\r\n", /invalid header name/);
    refused("HTTP/1.1 200 OK\r\nX-\x00: 1\r\n\r\n", /invalid header name/);
    refused("HTTP/1.1 200 OK\r\n: no name\r\n\r\n", /malformed header line/);
    refused("HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n", /malformed header line/);
  });

  test("control characters in values, anywhere in the value (leading and trailing ones are not trimmed away)", () => {
    for (const control of ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"]) {
      refused(`HTTP/1.1 200 OK\r\nX-Value: a${control}b\r\n\r\n`, /control character in the X-Value header/);
      refused(`HTTP/1.1 200 OK\r\nX-Value: ${control}ab\r\n\r\n`, /control character in the X-Value header/);
      refused(`HTTP/1.1 200 OK\r\nX-Value: ab${control}\r\n\r\n`, /control character in the X-Value header/);
    }
    // A vertical tab must not be trimmed into a valid framing header.
    refused("HTTP/1.1 200 OK\r\nContent-Length: \x0b5\r\n\r\nhello", /control character/);
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\x0c\r\n\r\n", /control character/);
  });

  test("two Content-Lengths, equal or not, and a Content-Length list", () => {
    refused("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", /more than one Content-Length/);
    refused("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\nhello!", /more than one Content-Length/);
    refused("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", /invalid Content-Length/);
  });

  test("Content-Length that is not a plain decimal that fits in a safe integer", () => {
    for (const value of ["", "-1", "+5", "0x10", "1e3", "5.0", "1 2", "99999999999999999", "9007199254740992"]) {
      refused(`HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\n\r\n`, /invalid Content-Length/);
    }
    assert.deepEqual(parsed("HTTP/1.1 200 OK\r\nContent-Length: 9007199254740991\r\n\r\n").framing, { kind: "length", length: Number.MAX_SAFE_INTEGER });
  });

  test("Content-Length with Transfer-Encoding, in either order", () => {
    refused("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", /both Content-Length and Transfer-Encoding/);
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", /both Content-Length and Transfer-Encoding/);
  });

  test("Transfer-Encoding other than exactly chunked, and two Transfer-Encoding headers", () => {
    for (const value of ["gzip", "gzip, chunked", "chunked, gzip", "identity", "chunked;q=1", "", "chunked, chunked", "x-chunked"]) {
      refused(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${value}\r\n\r\n`, /Transfer-Encoding .*only chunked/);
    }
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", /more than one Transfer-Encoding/);
  });

  test("Transfer-Encoding in an HTTP/1.0 response", () => {
    refused("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", /HTTP\/1\.0/);
  });

  test("a head longer than the limit, with its end and without", () => {
    const prefix = "HTTP/1.1 200 OK\r\nX-Pad: ";
    refused(`${prefix}${"a".repeat(1001 - prefix.length - 4)}\r\n\r\n`, /longer than 1000 bytes/, 1000);
    refused(`${prefix}${"a".repeat(MAX)}\r\n\r\n`, /longer than 65536 bytes/);
    // Without its end: waiting up to the limit, refused one byte past it.
    assert.deepEqual(parseResponseHead(bytes(`${prefix}${"a".repeat(1000 - prefix.length)}`), 1000), { kind: "need-more" });
    refused(`${prefix}${"a".repeat(1001 - prefix.length)}`, /longer than 1000 bytes/, 1000);
    refused(Buffer.alloc(MAX + 1, 0x61), /longer than 65536 bytes/);
  });

  test("bad status lines", () => {
    for (const line of [
      "HTTP/1.1 20 OK",
      "HTTP/1.1 2000 OK",
      "HTTP/1.1 099 Low",
      "HTTP/1.1 OK",
      "HTTP/2 200 OK",
      "HTTP/1.2 200 OK",
      "HTTP/2.0 200 OK",
      "http/1.1 200 OK",
      "HTTP/1.1  200 OK",
      " HTTP/1.1 200 OK",
      "HTTP/1.1 200 OK\x00",
      "HTTP/1.1 200 O\x7fK",
      "ICY 200 OK",
      "",
    ]) {
      refused(`${line}\r\nContent-Length: 0\r\n\r\n`, /malformed status line/);
    }
  });
});

test("responseHasBody: HEAD, 1xx, 204 and 304 have none (RFC 9112 section 6.3)", () => {
  for (const status of [200, 201, 206, 301, 404, 500, 599]) {
    assert.equal(responseHasBody("GET", status), true, `GET ${status}`);
    assert.equal(responseHasBody("POST", status), true, `POST ${status}`);
    assert.equal(responseHasBody("HEAD", status), false, `HEAD ${status}`);
  }
  for (const status of [100, 102, 103, 199, 204, 304]) assert.equal(responseHasBody("GET", status), false, `GET ${status}`);
});

describe("createChunkedDecoder", () => {
  // Three chunks (upper- and lowercase hex, extensions with and without whitespace and quoted strings, data holding
  // CRLF and the bytes of a chunk header), a last chunk with an extension, two trailers, then the next message.
  const body = Buffer.concat([bytes("Wiki"), bytes("pedia\r\n0\r\n\r\n"), Buffer.from(Array.from({ length: 26 }, (_, index) => (index * 37) % 256))]);
  const message = Buffer.concat([
    bytes("4;name=value\r\nWiki\r\n"),
    bytes('c ;quoted="a b;c"\r\npedia\r\n0\r\n\r\n\r\n'),
    bytes("1A\r\n"),
    body.subarray(16),
    bytes("\r\n0;last=yes\r\nExpires: never\r\nX-Trailer:  t\r\n\r\n"),
  ]);
  const next = bytes("HTTP/1.1 200 OK\r\n\r\n");

  function decodeIn(pieces: readonly Buffer[]): { data: Buffer; consumed: number[]; done: boolean } {
    const decoder = createChunkedDecoder();
    const out: Buffer[] = [];
    // Copies: the decoder may hand out views of buffers the caller reuses.
    const consumed = pieces.map((piece) => decoder.push(piece, (data) => out.push(Buffer.from(data))));
    return { data: Buffer.concat(out), consumed, done: decoder.done };
  }

  test("a multi-chunk body with extensions and trailers decodes intact, and the next message is not consumed", () => {
    const whole = Buffer.concat([message, next]);
    const result = decodeIn([whole]);
    assert.ok(result.done);
    assert.deepEqual(result.data, body);
    assert.deepEqual(result.consumed, [message.length]);
  });

  test("the same answer when the message is split at every pair of byte boundaries", () => {
    let runs = 0;
    for (let first = 0; first <= message.length; first++) {
      for (let second = first; second <= message.length; second++) {
        const pieces = [message.subarray(0, first), message.subarray(first, second), message.subarray(second), next];
        const result = decodeIn(pieces);
        assert.ok(result.done, `split at ${first}/${second}`);
        assert.deepEqual(result.data, body, `split at ${first}/${second}`);
        assert.deepEqual(result.consumed, [first, second - first, message.length - second, 0], `split at ${first}/${second}`);
        runs++;
      }
    }
    assert.ok(runs > 5000);
  });

  test("one byte at a time, with the next message's bytes in the read that ends the body", () => {
    const decoder = createChunkedDecoder();
    const out: Buffer[] = [];
    for (let index = 0; index < message.length - 1; index++) {
      assert.equal(decoder.push(message.subarray(index, index + 1), (data) => out.push(Buffer.from(data))), 1);
      assert.equal(decoder.done, false, `done too early at byte ${index}`);
    }
    assert.equal(decoder.push(Buffer.concat([message.subarray(-1), next]), (data) => out.push(Buffer.from(data))), 1);
    assert.ok(decoder.done);
    assert.deepEqual(Buffer.concat(out), body);
    assert.equal(decoder.push(next, () => assert.fail("no data after done")), 0, "nothing is consumed after the end");
  });

  test("not done after the last chunk until the blank line that ends the trailers", () => {
    const decoder = createChunkedDecoder();
    decoder.push(bytes("0\r\n"), () => {});
    assert.equal(decoder.done, false);
    decoder.push(bytes("X: 1\r\n"), () => {});
    assert.equal(decoder.done, false);
    assert.equal(decoder.push(bytes("\r\nrest"), () => {}), 2);
    assert.equal(decoder.done, true);
  });

  function throwsChunked(pieces: ReadonlyArray<string | Buffer>, pattern: RegExp): void {
    const decoder = createChunkedDecoder();
    assert.throws(
      () => {
        for (const piece of pieces) decoder.push(typeof piece === "string" ? bytes(piece) : piece, () => {});
      },
      (error: unknown) => error instanceof ChunkedError && pattern.test(error.message),
      `expected ChunkedError ${pattern} for ${JSON.stringify(pieces.map(String).join("").slice(0, 80))}`,
    );
  }

  test("bad chunk-size lines", () => {
    for (const line of ["g", "", " 5", "5 ", "-5", "+5", "0x5", "5 5", ";ext", "5\x00", "\t5"]) throwsChunked([`${line}\r\nhello\r\n0\r\n\r\n`], /invalid chunk size line/);
    throwsChunked(["5;ext\x01\r\nhello\r\n0\r\n\r\n"], /control character in a chunk extension/);
    throwsChunked(["5;ext\x7f\r\nhello\r\n0\r\n\r\n"], /control character in a chunk extension/);
  });

  test("chunk sizes that do not fit in a safe integer are refused; the largest that does is accepted", () => {
    throwsChunked(["10000000000000000\r\n"], /invalid chunk size line/);
    throwsChunked(["fffffffffffffff\r\n"], /chunk size/);
    throwsChunked(["20000000000000\r\n"], /chunk size/);
    throwsChunked(["20000000000001\r\n"], /chunk size/);
    const decoder = createChunkedDecoder();
    assert.equal(decoder.push(bytes("1fffffffffffff\r\nabc"), () => {}), 19);
    assert.equal(decoder.done, false);
    // Leading zeros are still one small number.
    const zeros = createChunkedDecoder();
    const out: Buffer[] = [];
    zeros.push(bytes("0000000000003\r\nabc\r\n0\r\n\r\n"), (data) => out.push(Buffer.from(data)));
    assert.ok(zeros.done);
    assert.equal(Buffer.concat(out).toString(), "abc");
  });

  test("a chunk-size line longer than 4 KiB, in one read or many", () => {
    const long = `5;${"x".repeat(4100)}\r\nhello\r\n0\r\n\r\n`;
    throwsChunked([long], /chunk-size line longer than 4096 bytes/);
    throwsChunked(long.match(/[^]{1,100}/g) as string[], /chunk-size line longer than 4096 bytes/);
    // Without its line end at all: refused as soon as it passes the limit.
    throwsChunked([`5;${"x".repeat(4095)}`], /longer than 4096/);
  });

  test("chunk data not followed by CRLF", () => {
    throwsChunked(["5\r\nhelloX\r\n0\r\n\r\n"], /not followed by CRLF/);
    throwsChunked(["5\r\nhello", "\r", "X"], /not followed by CRLF/);
    throwsChunked(["5\r\nhello0\r\n\r\n"], /not followed by CRLF/);
    throwsChunked(["5\r\nhello\n0\r\n\r\n"], /not followed by CRLF/);
  });

  test("bare LF in a size line, in a trailer, and as the final line end", () => {
    throwsChunked(["5\nhello\r\n0\r\n\r\n"], /bare LF in the chunk-size line/);
    throwsChunked(["5", "\n"], /bare LF in the chunk-size line/);
    throwsChunked(["0\r\nX: y\n\r\n"], /bare LF in the trailer section/);
    throwsChunked(["0\r\n\n"], /bare LF in the trailer section/);
    throwsChunked(["0\n\r\n"], /bare LF in the chunk-size line/);
  });

  test("malformed trailer lines (no colon, obs-fold, whitespace before the colon, control characters)", () => {
    for (const line of ["no colon", " X: folded", "X : y", "X: a\x01b", ": empty name"]) throwsChunked([`0\r\n${line}\r\n\r\n`], /malformed trailer line/);
  });

  test("trailers up to 16 KiB are accepted however they are split; one byte more is refused", () => {
    // The whole trailer section, blank line included, is exactly 16384 bytes.
    const line = (length: number) => `X-T: ${"t".repeat(length - 7)}\r\n`;
    const trailers = `${line(8000)}${line(8382)}\r\n`;
    assert.equal(trailers.length, 16384);
    const accept = (pieces: string[]) => {
      const decoder = createChunkedDecoder();
      for (const piece of ["0\r\n", ...pieces]) decoder.push(bytes(piece), () => {});
      assert.ok(decoder.done, `done after ${pieces.length} reads`);
    };
    accept([trailers]);
    for (const size of [1000, 4096, 7000, 12000]) accept(trailers.match(new RegExp(`[^]{1,${size}}`, "g")) as string[]);
    const over = `${line(8000)}${line(8383)}\r\n`;
    throwsChunked(["0\r\n", over], /trailer section longer than 16384 bytes/);
    throwsChunked(["0\r\n", ...(over.match(/[^]{1,1000}/g) as string[])], /trailer section longer than 16384 bytes/);
    // Many short trailers count too.
    throwsChunked(["0\r\n", "X: y\r\n".repeat(3000), "\r\n"], /trailer section longer than 16384 bytes/);
  });

  test("encodeChunk and LAST_CHUNK frame a body the decoder reads back", () => {
    const data = Buffer.from(Array.from({ length: 300 }, (_, index) => index % 256));
    const framed = Buffer.concat([...encodeChunk(data), ...encodeChunk(bytes("x")), LAST_CHUNK]);
    assert.equal(framed.subarray(0, 5).toString("latin1"), "12c\r\n");
    const result = decodeIn([framed]);
    assert.ok(result.done);
    assert.deepEqual(result.data, Buffer.concat([data, bytes("x")]));
    assert.deepEqual(result.consumed, [framed.length]);
  });
});
