// The dashboard's stateless seams, alone: secret masking, the Host and Origin checks, the form reader's refusals
// (413 and 415 with their recorded reasons), the audit filter and the live tail's matching.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";
import { readAuditFilter, tailMatches } from "./routes-audit.ts";
import { allowedHostNames } from "./server.ts";
import { RequestError, hostAllowed, readForm, sameOrigin, scrubSecrets } from "./state.ts";
import type { IncomingMessage } from "node:http";

const fakeRequest = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe("dashboard seams", () => {
  test("a secret is masked raw, HTML-escaped and JSON-escaped", () => {
    const secret = `s3cr<e"t`;
    const text = `a ${secret} b s3cr&lt;e&quot;t c ${JSON.stringify(secret).slice(1, -1)}`;
    assert.equal(scrubSecrets([secret], text), "a [REDACTED] b [REDACTED] c [REDACTED]");
  });

  test("the Host must be loopback, the listen host (not a wildcard) or a configured name", () => {
    const hosts = allowedHostNames("::1", ["Dash.Example"]);
    assert.ok(hostAllowed(hosts, fakeRequest({ host: "[::1]:8720" })));
    assert.ok(hostAllowed(hosts, fakeRequest({ host: "dash.example:443" })));
    assert.ok(!hostAllowed(hosts, fakeRequest({ host: "evil.example" })));
    assert.ok(!allowedHostNames("0.0.0.0").has("0.0.0.0"));
    assert.ok(allowedHostNames("10.0.0.5").has("10.0.0.5"));
  });

  test("an Origin must be this dashboard's; none is accepted only outside a browser or same-origin", () => {
    assert.ok(sameOrigin(false, fakeRequest({ host: "127.0.0.1:8720", origin: "http://127.0.0.1:8720" })));
    assert.ok(!sameOrigin(true, fakeRequest({ host: "127.0.0.1:8720", origin: "http://127.0.0.1:8720" })));
    assert.ok(!sameOrigin(false, fakeRequest({ host: "127.0.0.1:8720", origin: "null" })));
    assert.ok(sameOrigin(false, fakeRequest({ host: "127.0.0.1:8720" })));
    assert.ok(!sameOrigin(false, fakeRequest({ host: "127.0.0.1:8720", "sec-fetch-site": "cross-site" })));
  });

  test("a RequestError answers its code's status and keeps the reason the audit log records", () => {
    assert.equal(new RequestError("too_large", "too-large", "x").status, 413);
    assert.equal(new RequestError("unsupported_media", "unsupported-type", "x").status, 415);
    assert.equal(new RequestError("bad_request", "bad-filter", "x").status, 400);
    assert.equal(new RequestError("not_found", "not-found", "x").reason, "not-found");
  });

  test("the form reader refuses an oversized body (413) and a non-form type (415)", async () => {
    const server = createServer((request, response) => {
      readForm(request).then(
        (fields) => response.end(`ok ${fields.get("a")}`),
        (error: RequestError) => response.writeHead(error.status).end(error.reason),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const form = { "content-type": "application/x-www-form-urlencoded" };
      assert.equal(await (await fetch(base, { method: "POST", headers: form, body: "a=1" })).text(), "ok 1");
      const big = await fetch(base, { method: "POST", headers: form, body: `a=${"x".repeat(17_000)}` });
      assert.deepEqual([big.status, await big.text()], [413, "too-large"]);
      const json = await fetch(base, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      assert.deepEqual([json.status, await json.text()], [415, "unsupported-type"]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("the audit filter normalises times and refuses long values, bad times and bad cursors (400 bad-filter)", () => {
    assert.deepEqual(readAuditFilter(new URLSearchParams("host=a&from=2026-01-31T12:00:00%2B01:00&before=42")), { host: "a", from: "2026-01-31T11:00:00.000Z", before: 42 });
    for (const query of [`host=${"h".repeat(257)}`, "from=yesterday", "before=-1"]) {
      assert.throws(() => readAuditFilter(new URLSearchParams(query)), (error: unknown) => error instanceof RequestError && error.status === 400 && error.reason === "bad-filter", query);
    }
  });

  test("a live tail shows only rows its filter matches, the time range end exclusive", () => {
    const row = { component: "egress-proxy", type: "egress-decision", decision: "deny", agent: "hermes", tool: null, host: "a.example", time: "2026-01-01T00:00:00.000Z" };
    assert.ok(tailMatches({ component: "egress-proxy", decision: "deny" }, row));
    assert.ok(!tailMatches({ agent: "other" }, row));
    assert.ok(!tailMatches({ to: "2026-01-01T00:00:00.000Z" }, row));
    assert.ok(tailMatches({ from: "2026-01-01T00:00:00.000Z" }, row));
  });
});
