// The event-stream parser under the guard's upstream transport: the WHATWG format as upstreams write it, fed the way a
// network delivers it (split anywhere), and bounded.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SseEventTooLargeError, SseParser } from "./sse.ts";
import type { ServerSentEvent } from "./sse.ts";

function parse(chunks: Array<string | Buffer>, maxEventBytes = 1024 * 1024): { events: ServerSentEvent[]; retries: number[] } {
  const events: ServerSentEvent[] = [];
  const retries: number[] = [];
  const parser = new SseParser({ maxEventBytes, onEvent: (event) => events.push(event), onRetry: (milliseconds) => retries.push(milliseconds) });
  for (const chunk of chunks) parser.push(typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk);
  parser.end();
  return { events, retries };
}

/** Every way of cutting `text` into two chunks, and one byte at a time. */
function splits(text: string): Buffer[][] {
  const bytes = Buffer.from(text, "utf8");
  const ways: Buffer[][] = [];
  for (let cut = 0; cut <= bytes.length; cut++) ways.push([bytes.subarray(0, cut), bytes.subarray(cut)]);
  ways.push([...bytes].map((byte) => Buffer.from([byte])));
  return ways;
}

describe("SSE parser", () => {
  test("one event per blank line; the type defaults to message; JSON data arrives intact", () => {
    const { events } = parse(['event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\ndata: second\n\n']);
    assert.deepEqual(
      events.map((event) => [event.event, event.data]),
      [
        ["message", '{"jsonrpc":"2.0","id":1,"result":{}}'],
        ["message", "second"],
      ],
    );
  });

  test("an event id is kept for resumption only when it is short and printable (it goes back as a header)", () => {
    const long = "x".repeat(1025);
    const { events } = parse([`id: good-1\ndata: a\n\nid: ${long}\ndata: b\n\nid: caf\u00e9\ndata: c\n\nid: ok-2\ndata: d\n\n`]);
    assert.deepEqual(
      events.map((event) => event.lastEventId),
      ["good-1", "good-1", "good-1", "ok-2"],
    );
  });

  test("CRLF, LF and lone CR all end lines (mixed in one stream)", () => {
    const { events } = parse(["data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r\n\n"]);
    assert.deepEqual(
      events.map((event) => event.data),
      ["a", "b", "c", "d"],
    );
  });

  test("multi-line data is joined with \\n; one leading space is removed, not more; a field without a colon is a field with an empty value", () => {
    const { events } = parse(["data: first\ndata:second\ndata:  third\ndata\n\n"]);
    assert.deepEqual(events[0]?.data, "first\nsecond\n third\n");
  });

  test("comments (keep-alives) are ignored and do not dispatch; unknown fields are ignored", () => {
    const { events } = parse([": keep-alive\n\n:\ndata: x\n: in the middle\nfoo: bar\ndata: y\n\n"]);
    assert.deepEqual(
      events.map((event) => event.data),
      ["x\ny"],
    );
  });

  test("an event split across chunks at every byte position (and byte by byte) parses the same", () => {
    const text = 'id: 7\r\nevent: message\r\ndata: {"text":"grüße — 👋"}\r\ndata: line two\r\n\r\n: ping\r\ndata: next\r\n\r\n';
    const expected = [
      { event: "message", data: '{"text":"grüße — 👋"}\nline two', lastEventId: "7" },
      { event: "message", data: "next", lastEventId: "7" },
    ];
    for (const chunks of splits(text)) assert.deepEqual(parse(chunks).events, expected, `split into ${chunks.length} chunks at ${chunks[0]?.length}`);
  });

  test("a CR at the end of one chunk and the LF at the start of the next are one line break, not two", () => {
    const { events } = parse(["data: a\r", "\ndata: b\r", "\n\r", "\n"]);
    assert.deepEqual(
      events.map((event) => event.data),
      ["a\nb"],
    );
  });

  test("ids persist across events; an id containing NUL is ignored; retry takes digits only", () => {
    const { events, retries } = parse(["id: 1\ndata: a\n\ndata: b\n\nid: x\u0000y\nretry: 2500\nretry: 10s\ndata: c\n\nid\ndata: d\n\n"]);
    assert.deepEqual(
      events.map((event) => event.lastEventId),
      ["1", "1", "1", ""],
    );
    assert.deepEqual(retries, [2500]);
  });

  test("an event with no data (a priming event) is not dispatched, but its id is kept; data: with nothing is an empty event", () => {
    const { events } = parse(["id: prime\n\n", "data:\n\n"]);
    assert.deepEqual(events, [{ event: "message", data: "", lastEventId: "prime" }]);
  });

  test("a byte-order mark at the start of the stream is skipped", () => {
    const { events } = parse(["\ufeffdata: x\n\n"]);
    assert.equal(events[0]?.data, "x");
  });

  test("an event without its closing blank line when the stream ends is discarded", () => {
    const { events } = parse(["data: complete\n\ndata: cut off\n"]);
    assert.deepEqual(
      events.map((event) => event.data),
      ["complete"],
    );
  });

  test("an event over maxEventBytes is refused, whether it grows by data lines or by one line that never ends", () => {
    assert.throws(() => parse([`data: ${"x".repeat(600)}\n`, `data: ${"y".repeat(600)}\n\n`], 1000), SseEventTooLargeError);
    const parser = new SseParser({ maxEventBytes: 1000, onEvent: () => assert.fail("nothing may be dispatched") });
    assert.throws(() => {
      for (let index = 0; index < 20; index++) parser.push(Buffer.from("z".repeat(100)));
    }, /larger than the 1000-byte limit \(maxMessageBytes\)/);
    // Many small events each under the limit are fine: the bound is per event, not per stream.
    const { events } = parse(Array.from({ length: 50 }, (_, index) => `data: ${"e".repeat(500)}${index}\n\n`), 1000);
    assert.equal(events.length, 50);
  });
});
