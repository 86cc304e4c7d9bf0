// The guard's listener helpers alone (listener-http.ts, mcp-endpoint.ts's envelope check): DNS-rebinding protection
// and which requests skip the 2025 classification. The running guard's tests (attacks.test.ts: a foreign Host or
// Origin gets 403) prove the same through sockets; these pin the rules without a guard.
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, test } from "node:test";
import { allowedHostsFor, hostRejection } from "./listener-http.ts";
import { claimsModernEnvelope } from "./mcp-endpoint.ts";

const requestWith = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe("listener helpers", () => {
  test("a listener answers to loopback names, its own address unless it is a wildcard, and mcp.allowedHosts (lower-cased)", () => {
    assert.deepEqual(allowedHostsFor("127.0.0.1:8700", []), ["localhost", "127.0.0.1", "[::1]"]);
    assert.deepEqual(allowedHostsFor("10.0.0.5:8700", ["Guard.Internal"]), ["localhost", "127.0.0.1", "[::1]", "10.0.0.5", "guard.internal"]);
    assert.deepEqual(allowedHostsFor("[fd00::5]:8700", []), ["localhost", "127.0.0.1", "[::1]", "[fd00::5]"]);
    assert.deepEqual(allowedHostsFor("0.0.0.0:8700", []), ["localhost", "127.0.0.1", "[::1]"]);
    assert.deepEqual(allowedHostsFor("[::]:8700", []), ["localhost", "127.0.0.1", "[::1]"]);
  });

  test("a foreign Host or a foreign browser Origin is refused with how to fix it; ours pass", () => {
    const allowed = allowedHostsFor("127.0.0.1:8700", ["guard.internal"]);
    assert.equal(hostRejection(requestWith({ host: "127.0.0.1:8700" }), allowed), undefined);
    assert.equal(hostRejection(requestWith({ host: "guard.internal:8700", origin: "http://guard.internal:8700" }), allowed), undefined);
    assert.match(hostRejection(requestWith({ host: "attacker.example:8700" }), allowed) ?? "", /Host "attacker.example:8700" is not allowed \(add it to mcp.allowedHosts/);
    assert.match(hostRejection(requestWith({ host: "127.0.0.1:8700", origin: "http://attacker.example" }), allowed) ?? "", /Origin "http:\/\/attacker.example" is not allowed/);
    assert.notEqual(hostRejection(requestWith({}), allowed), undefined);
  });

  test("only a single non-initialize request carrying the protocol version in _meta claims the 2026-07-28 envelope", () => {
    const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28" };
    assert.equal(claimsModernEnvelope({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: meta } }), true);
    assert.equal(claimsModernEnvelope({ jsonrpc: "2.0", id: 1, method: "initialize", params: { _meta: meta } }), false);
    assert.equal(claimsModernEnvelope({ jsonrpc: "2.0", method: "notifications/initialized", params: { _meta: meta } }), false);
    assert.equal(claimsModernEnvelope([{ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: meta } }]), false);
    assert.equal(claimsModernEnvelope({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }), false);
    assert.equal(claimsModernEnvelope("not json"), false);
  });
});
