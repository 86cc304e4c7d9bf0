// The stages' state-free seams, tested alone (issue 15): the refusal table, the request checks and rewrites of
// plain-HTTP forwarding, listen targets, and the one decision record per request — built once, finished once.
import { test } from "node:test";
import assert from "node:assert/strict";
import type http from "node:http";
import { Writable } from "node:stream";
import { pino } from "pino";
import { PerimeterError } from "../shared/index.ts";
import type { ResponseHead } from "./http1.ts";
import { parseHttpTarget, responseHeaders, sameAuthority, upstreamRequestHead } from "./http-target.ts";
import { parseListenTarget } from "./listen.ts";
import { PolicyError } from "./policy.ts";
import { decisionEvent, finishRecord, finishRefused, noteAddresses, openRecord } from "./record.ts";
import { STATUS, clientErrorRefusal, outcomeOf, rawRefusal, upstreamFailure } from "./refusals.ts";
import { createProxyState } from "./state.ts";
import { memoryAudit } from "./test-support.ts";
import { UpstreamError } from "./upstream.ts";

const VIA = "perimeter-egress-test";

/** The parts of an IncomingMessage the checks read. */
function request(url: string, headers: Array<[string, string]> = [], method = "GET"): http.IncomingMessage {
  const lower: Record<string, string> = {};
  for (const [name, value] of headers) lower[name.toLowerCase()] = value;
  return { url, method, httpVersion: "1.1", rawHeaders: headers.flat(), headers: lower } as unknown as http.IncomingMessage;
}

test("refusals: policy refusals are deny, failures (502, 504, audit-unavailable) are error; every reason has a status", () => {
  assert.equal(outcomeOf("not-allowlisted"), "deny");
  assert.equal(outcomeOf("rate-limited"), "deny");
  assert.equal(outcomeOf("upstream-timeout"), "error");
  assert.equal(outcomeOf("dns-failure"), "error");
  assert.equal(outcomeOf("audit-unavailable"), "error");
  for (const [reason, status] of Object.entries(STATUS)) assert.ok(status >= 400 && status < 600, reason);
});

test("refusals: socket errors and UpstreamError map to one upstream reason each", () => {
  assert.equal(upstreamFailure(Object.assign(new Error("x"), { code: "ECONNREFUSED" })), "upstream-refused");
  assert.equal(upstreamFailure(Object.assign(new Error("x"), { code: "EPIPE" })), "upstream-reset");
  assert.equal(upstreamFailure(new UpstreamError("slow", "ERR_UPSTREAM_TIMEOUT")), "upstream-timeout");
  assert.equal(upstreamFailure(new UpstreamError("closed", "ECONNRESET")), "upstream-reset");
  assert.equal(upstreamFailure(undefined), "upstream-error");
  const timeout = new UpstreamError("slow", "ERR_UPSTREAM_TIMEOUT");
  assert.ok(timeout instanceof PerimeterError && timeout.code === "timeout" && timeout.httpStatus === 504);
});

test("refusals: parser errors name the limit to change; a raw refusal is one line with no control characters from input", () => {
  const limits = { maxHeaderBytes: 16384, headerTimeoutSeconds: 10 };
  assert.deepEqual(clientErrorRefusal(Object.assign(new Error("x"), { code: "HPE_HEADER_OVERFLOW" }), limits), { reason: "headers-too-large", message: "the request head is larger than 16384 bytes" });
  assert.equal(clientErrorRefusal(Object.assign(new Error("Content-Length can't be present with Transfer-Encoding"), { code: "HPE_INVALID_TRANSFER_ENCODING" }), limits).reason, "content-length-with-transfer-encoding");
  assert.equal(clientErrorRefusal(Object.assign(new Error("x"), { code: "HPE_LF_EXPECTED" }), limits).reason, "invalid-header");
  const raw = rawRefusal({ reason: "bad-credentials", message: "evil\r\nSet-Cookie: x=1" }).toString("latin1");
  assert.match(raw, /^HTTP\/1\.1 407 Proxy Authentication Required\r\n/);
  assert.match(raw, /X-Perimeter-Denied: bad-credentials\r\n/);
  assert.match(raw, /Proxy-Authenticate: Basic/);
  assert.doesNotMatch(raw, /\r\nSet-Cookie/, "the echoed message cannot add a header");
});

test("http target: absolute http:// URLs only, one Host naming the URL's site, no loop through this proxy", () => {
  const ok = parseHttpTarget(request("http://Example.test:8080/a?b", [["Host", "example.test:8080"]]), VIA);
  assert.ok(ok.ok);
  assert.equal(ok.target.host, "example.test");
  assert.equal(ok.target.port, 8080);
  const reason = (message: http.IncomingMessage) => {
    const parsed = parseHttpTarget(message, VIA);
    return parsed.ok ? "ok" : parsed.refusal.reason;
  };
  assert.equal(reason(request("/metrics")), "origin-form-request");
  assert.equal(reason(request("https://example.test/")), "use-connect-for-https");
  assert.equal(reason(request("http://example.test/", [], "TRACE")), "method-not-allowed");
  assert.equal(reason(request("http://user:pw@example.test/")), "bad-request");
  assert.equal(reason(request("http://example.test/", [["Host", "example.test"], ["host", "other.test"]])), "duplicate-header");
  assert.equal(reason(request("http://example.test/", [["Transfer-Encoding", "gzip, chunked"]])), "invalid-transfer-encoding");
  assert.equal(reason(request("http://example.test/", [["Host", "internal.test"]])), "host-mismatch");
  assert.equal(reason(request("http://example.test/", [["Via", `1.1 ${VIA}`]])), "loop-detected");
  assert.equal(reason(request("http://[::1]:80/", [["Host", "[0:0:0:0:0:0:0:1]"]])), "ok", "the same address in another notation");
});

test("http target: a Host header names the URL's authority in any notation of the same name or address", () => {
  assert.equal(sameAuthority("EXAMPLE.test", "example.test", 80), true);
  assert.equal(sameAuthority("example.test:80", "example.test", 80), true);
  assert.equal(sameAuthority("example.test:81", "example.test", 80), false);
  assert.equal(sameAuthority("0x7f.1", "127.0.0.1", 80), true);
  assert.equal(sameAuthority("::1", "::1", 80), false, "an unbracketed IPv6 Host is not an authority");
});

test("http target: the upstream head drops hop-by-hop headers and those Connection names, and writes the body's framing itself", () => {
  const message = request("http://example.test/p?q=1", [
    ["Host", "example.test"],
    ["Connection", "keep-alive, content-length, X-Secret"],
    ["X-Secret", "hop"],
    ["Proxy-Authorization", "Bearer token"],
    ["Expect", "100-continue"],
    ["Content-Length", "5"],
    ["Accept", "*/*"],
  ], "POST");
  const { head, body } = upstreamRequestHead(message, new URL("http://example.test/p?q=1"), VIA);
  assert.equal(body, "length");
  assert.equal(head, `POST /p?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: example.test\r\nVia: 1.1 ${VIA}\r\nContent-Length: 5\r\n\r\n`);
  const chunked = upstreamRequestHead(request("http://example.test/", [["Transfer-Encoding", "chunked"]], "PUT"), new URL("http://example.test/"), VIA);
  assert.equal(chunked.body, "chunked");
  assert.match(chunked.head, /Transfer-Encoding: chunked\r\n\r\n$/);
  const origin = { rawHeaders: ["Connection", "X-Hop", "X-Hop", "1", "Keep-Alive", "timeout=5", "Content-Type", "text/plain"], connectionTokens: new Set(["x-hop"]), minor: 1 } as unknown as ResponseHead;
  assert.deepEqual(responseHeaders(origin, VIA), ["Content-Type", "text/plain", "Via", `1.1 ${VIA}`]);
});

test("listen targets: HOST:PORT with port 0, [IPv6]:PORT, socket paths and objects; anything else says what to write", () => {
  assert.deepEqual(parseListenTarget("127.0.0.1:0"), { kind: "tcp", host: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListenTarget("[::1]:3128"), { kind: "tcp", host: "::1", port: 3128 });
  assert.deepEqual(parseListenTarget("/run/perimeter/egress.sock"), { kind: "unix", path: "/run/perimeter/egress.sock" });
  assert.deepEqual(parseListenTarget({ path: "/tmp/x.sock" }), { kind: "unix", path: "/tmp/x.sock" });
  assert.deepEqual(parseListenTarget({ host: "::1", port: 0 }), { kind: "tcp", host: "::1", port: 0 });
  assert.throws(() => parseListenTarget("localhost"), (error: unknown) => error instanceof PerimeterError && error.code === "bad_address" && /127\.0\.0\.1:3128/.test(error.message));
});

test("policy errors are PerimeterErrors of the config kind (exit 2) that keep every problem", () => {
  const error = new PolicyError(["a", "b"]);
  assert.ok(error instanceof PerimeterError);
  assert.equal(error.exitCode, 2);
  assert.equal(error.name, "PolicyError");
  assert.deepEqual(error.problems, ["a", "b"]);
});

test("record: one request, one egress-decision record, built as the stages learn and finished once; a second finish is logged, never written", async () => {
  const audit = memoryAudit();
  const lines: string[] = [];
  const logger = pino({ level: "info" }, new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(chunk.toString()), done()) }));
  const state = createProxyState({ allow: ["example.test"] }, { audit, logger });
  const record = openRecord("192.0.2.7", "CONNECT", "Example.test:443", 443);
  record.client = "hermes";
  record.host = "example.test";
  noteAddresses(record, "203.0.113.1", [{ address: "203.0.113.1" }, { address: "2001:db8::1" }]);
  const committed = await new Promise<boolean>((resolve) => finishRecord(state, record, { decision: "allow" }, resolve));
  assert.equal(committed, true);
  finishRefused(state, record, { reason: "upstream-reset", message: "late" });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(audit.records.length, 1, "the second outcome is not recorded");
  const written = audit.records[0] as Record<string, unknown>;
  assert.equal(written.type, "egress-decision");
  assert.equal(written.decision, "allow");
  assert.equal(written.status, 200);
  assert.deepEqual(written.addresses, ["203.0.113.1", "2001:db8::1"]);
  assert.ok(lines.some((line) => /finished twice/.test(line)), "the bug in a stage is logged");
  const refused = decisionEvent(openRecord("192.0.2.7", "GET", "http://x/"), { decision: "deny", reason: "invalid-host", detail: "bad" }, "invalid-host");
  assert.equal(refused.status, 400);
  assert.equal(refused.address, null);
  assert.equal(refused.detail, "bad");
  assert.equal("addresses" in refused || "sni" in refused || "rules" in refused, false, "fields the request never reached are left out");
});
