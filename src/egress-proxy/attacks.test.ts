// The attack table of issue 3, one test per attack. Every name resolves through a resolver the test controls, to
// loopback addresses or to addresses the proxy must refuse; the proxy dials through a guard that throws for anything
// outside loopback, so a broken proxy could not send a packet off this machine (and CI runs this file inside
// ../shared/bin/offline as well). Each test asserts the refusal (status, X-Perimeter-Denied reason, audit record)
// and, where it matters, that the origin saw nothing.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { DENIED_RANGES, staticResolver } from "../net/index.ts";
import type { Resolver } from "../net/index.ts";
import { createEgressProxy } from "./index.ts";
import type { EgressPolicyInput, EgressProxy } from "./index.ts";
import type { BoundAddress } from "../shared/index.ts";
import { TLS_ACCESS_DENIED_ALERT } from "./client-hello.ts";
import {
  captureClientHello,
  guardedDial,
  httpThroughProxy,
  httpsOverTunnel,
  makeCertificate,
  memoryAudit,
  openTunnel,
  rawExchange,
  startHttpOrigin,
  startTrap,
  waitFor,
} from "./test-support.ts";
import type { Certificate, Origin } from "./test-support.ts";

// A loopback address of our own for the origins, so that port 443 is free whatever else runs on this machine.
const octet = () => 2 + Math.floor(Math.random() * 250);
const ORIGIN_IP = `127.${octet()}.${octet()}.${octet()}`;
const TRAP_IP = `127.${octet()}.${octet()}.1`;
const ORIGIN_CIDR = `${ORIGIN_IP}/32`;

let certificate: Certificate;
let tlsOrigin: Origin; // on ORIGIN_IP:443
let httpOrigin: Origin; // on ORIGIN_IP:<ephemeral>
let trap: Origin; // on TRAP_IP:443 — nothing may ever reach it

before(async () => {
  certificate = makeCertificate(["allowed.test", "other.test", "nosni.test"]);
  tlsOrigin = await new Promise<Origin>((resolve, reject) => {
    // Port 443 explicitly: the SNI check applies to CONNECT :443.
    startTlsOrigin443(resolve, reject);
  });
  httpOrigin = await startHttpOrigin(ORIGIN_IP, "http-origin");
  trap = await startTrapOn443();
});
after(async () => {
  await tlsOrigin.close();
  await httpOrigin.close();
  await trap.close();
});

function startTlsOrigin443(resolve: (origin: Origin) => void, reject: (error: Error) => void): void {
  const seen: Origin["seen"] = { connections: 0, serverNames: [], requests: [] };
  const server = tls.createServer({ cert: certificate.cert, key: certificate.key }, (socket) => {
    seen.serverNames.push((socket as tls.TLSSocket & { servername?: string | false }).servername ?? false);
    socket.on("data", () => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\nhello from origin443"));
    socket.on("error", () => {});
  });
  server.on("connection", () => {
    seen.connections += 1;
  });
  server.once("error", reject);
  server.listen(443, ORIGIN_IP, () => resolve({ host: ORIGIN_IP, port: 443, seen, close: () => new Promise((done) => server.close(() => done())) }));
}

async function startTrapOn443(): Promise<Origin> {
  const seen: Origin["seen"] = { connections: 0, serverNames: [], requests: [] };
  const server = net.createServer((socket) => {
    seen.connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(443, TRAP_IP, resolve);
  });
  return { host: TRAP_IP, port: 443, seen, close: () => new Promise((done) => server.close(() => done())) };
}

interface Harness {
  proxy: EgressProxy;
  address: BoundAddress & { kind: "tcp" };
  audit: ReturnType<typeof memoryAudit>;
  dial: ReturnType<typeof guardedDial>;
}

async function startProxy(policy: EgressPolicyInput, resolver: Resolver): Promise<Harness> {
  const audit = memoryAudit();
  const dial = guardedDial();
  // A generous rate unless a test sets one: many requests from one client follow each other here.
  const proxy = createEgressProxy({ ...policy, limits: { requestsPerSecondPerClient: 10_000, ...policy.limits } }, { resolver, audit, dial });
  const address = (await proxy.listen("127.0.0.1:0")) as BoundAddress & { kind: "tcp" };
  return { proxy, address, audit, dial };
}

function lastDecision(harness: Harness): Record<string, unknown> | undefined {
  return harness.audit.records.filter((record) => record.type === "egress-decision").at(-1);
}

function toText(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
  const parts: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) parts.push(((value >> shift) & 0xffffn).toString(16));
  return parts.join(":");
}

/** An address inside each deny-set range: the network address plus two (not .1, which is the proxy's own loopback
 * address), or the address itself for a /32 or /128. */
const rangeSamples = DENIED_RANGES.map((range, index) => {
  const width = range.family === 4 ? 32 : 128;
  const sample = range.bits === width ? range.network : range.network + 2n;
  return { name: `r${index}.allowed.test`, range: `${toText(range.network, range.family)}/${range.bits} (${range.name})`, address: toText(sample, range.family) };
});

describe("SSRF: every address the deny set holds is refused, whatever the name", () => {
  let harness: Harness;
  before(async () => {
    const table: Record<string, string[]> = {};
    for (const sample of rangeSamples) table[sample.name] = [sample.address];
    Object.assign(table, {
      "mapped.allowed.test": ["::ffff:127.0.0.1"],
      "mapped-metadata.allowed.test": ["::ffff:169.254.169.254"],
      "mapped-hex.allowed.test": ["::ffff:7f00:1"],
      "nat64.allowed.test": ["64:ff9b::7f00:1"],
      "nat64-metadata.allowed.test": ["64:ff9b::a9fe:a9fe"],
      "6to4.allowed.test": ["2002:7f00:1::1"],
      "mixed.allowed.test": [ORIGIN_IP, "10.0.0.1"],
      "mixed-v6.allowed.test": [ORIGIN_IP, "fd00::1"],
      "self.allowed.test": ["127.0.0.1"],
      "allowed.test": [ORIGIN_IP],
      "0x7f.1": [ORIGIN_IP],
    });
    harness = await startProxy(
      {
        allow: [
          { host: ".allowed.test", ports: [443, httpOrigin.port] },
          // Exceptions for the origin only: the mixed-record names reach it only if the other address is ignored.
          { host: "mixed.allowed.test", allowCidr: [ORIGIN_CIDR] },
          { host: "mixed-v6.allowed.test", allowCidr: [ORIGIN_CIDR] },
          // An exception for all of loopback still never reaches the proxy itself.
          { host: "self.allowed.test", allowCidr: ["127.0.0.0/8"] },
          // A rule whose name looks like an address: the address is what is decided.
          { host: "0x7f.1", allowCidr: [ORIGIN_CIDR] },
        ],
        unknownClients: "global",
      },
      staticResolver(table),
    );
  });
  after(() => harness.proxy.close());

  for (const sample of rangeSamples) {
    test(`deny-set range ${sample.range}: a name resolving to ${sample.address} is refused (CONNECT)`, async () => {
      const tunnel = await openTunnel(harness.address, `${sample.name}:443`);
      assert.equal(tunnel.status, 403);
      assert.equal(tunnel.headers["x-perimeter-denied"], "private-address");
      assert.equal(lastDecision(harness)?.reason, "private-address");
      assert.deepEqual(harness.dial.dialled, [], "nothing was dialled");
    });
  }

  test("deny-set: the same refusal holds for absolute-form HTTP (169.254.169.254, cloud metadata)", async () => {
    const metadata = rangeSamples.find((sample) => sample.address.startsWith("169.254."));
    const response = await httpThroughProxy(harness.address, `http://${metadata?.name}:${httpOrigin.port}/latest/meta-data/`);
    assert.equal(response.status, 403);
    assert.equal(response.headers["x-perimeter-denied"], "private-address");
  });

  for (const [name, address] of [
    ["mapped.allowed.test", "::ffff:127.0.0.1"],
    ["mapped-metadata.allowed.test", "::ffff:169.254.169.254"],
    ["mapped-hex.allowed.test", "::ffff:7f00:1"],
    ["nat64.allowed.test", "64:ff9b::7f00:1"],
    ["nat64-metadata.allowed.test", "64:ff9b::a9fe:a9fe"],
    ["6to4.allowed.test", "2002:7f00:1::1"],
  ] as const) {
    test(`IPv4 embedded in IPv6: ${name} resolving to ${address} is refused`, async () => {
      const tunnel = await openTunnel(harness.address, `${name}:443`);
      assert.equal(tunnel.status, 403);
      assert.equal(tunnel.headers["x-perimeter-denied"], "private-address");
    });
  }

  for (const literal of ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[64:ff9b::a9fe:a9fe]", "[::1]", "[fe80::1]"]) {
    test(`an IPv6 literal CONNECT ${literal}:443 is refused as a private address`, async () => {
      const tunnel = await openTunnel(harness.address, `${literal}:443`);
      assert.equal(tunnel.status, 403);
      assert.equal(tunnel.headers["x-perimeter-denied"], "private-address");
    });
  }

  for (const notation of ["0177.0.0.1", "0x7f.1", "2130706433", "127.1", "0x7f000001", "0251.0376.0251.0376", "0xa9.0xfe.0xa9.0xfe"]) {
    test(`odd IPv4 notation CONNECT ${notation}:443 is decided as the address it is (refused)`, async () => {
      const tunnel = await openTunnel(harness.address, `${notation}:443`);
      assert.equal(tunnel.status, 403);
      assert.equal(tunnel.headers["x-perimeter-denied"], "private-address");
      assert.deepEqual(harness.dial.dialled, []);
    });
  }

  for (const url of ["http://0x7f000001/", "http://2130706433:80/", "http://0177.1/", "http://[::ffff:127.0.0.1]/"]) {
    test(`odd notation in an absolute-form URL ${url} is refused`, async () => {
      const response = await httpThroughProxy(harness.address, url);
      assert.equal(response.status, 403);
      assert.equal(response.headers["x-perimeter-denied"], "private-address");
    });
  }

  test("a public IP literal is not allowlisted by any host rule (rules name hosts)", async () => {
    const tunnel = await openTunnel(harness.address, "93.184.215.14:443");
    assert.equal(tunnel.status, 403);
    assert.equal(tunnel.headers["x-perimeter-denied"], "not-allowlisted");
    assert.deepEqual(harness.dial.dialled, []);
  });

  test("a name with mixed A records (one allowed, one private) is refused as a whole", async () => {
    const tunnel = await openTunnel(harness.address, "mixed.allowed.test:443");
    assert.equal(tunnel.status, 403);
    assert.equal(tunnel.headers["x-perimeter-denied"], "private-address");
    assert.match(tunnel.body, /10\.0\.0\.1/);
    const v6 = await openTunnel(harness.address, "mixed-v6.allowed.test:443");
    assert.equal(v6.headers["x-perimeter-denied"], "private-address");
    assert.equal(tlsOrigin.seen.connections, 0, "the allowed address was not dialled either");
  });

  test("the proxy's own listening address is refused even under an allowCidr covering it", async () => {
    const tunnel = await openTunnel(harness.address, "self.allowed.test:443");
    assert.equal(tunnel.status, 403);
    assert.equal(tunnel.headers["x-perimeter-denied"], "proxy-address");
  });

  test("a rule written like an address (0x7f.1) cannot reach that address", async () => {
    const tunnel = await openTunnel(harness.address, "0x7f.1:443");
    assert.equal(tunnel.headers["x-perimeter-denied"], "private-address");
    assert.deepEqual(harness.dial.dialled, []);
  });
});

describe("DNS rebinding: the dialled address is the one that was checked", () => {
  test("first answer allowed, second private: the first request dials the checked address once, the second is refused", async () => {
    const answers = [[ORIGIN_IP], [TRAP_IP]];
    const lookups: string[] = [];
    // Each request resolves once; a proxy that looked the name up again before dialling would get the trap address.
    const rebinding: Resolver = {
      async lookup(host) {
        lookups.push(host);
        return answers[Math.min(lookups.length - 1, answers.length - 1)] as string[];
      },
    };
    const harness = await startProxy({ allow: [{ host: "rebind.test", allowCidr: [ORIGIN_CIDR] }], unknownClients: "global" }, rebinding);
    try {
      const first = await openTunnel(harness.address, "rebind.test:443");
      assert.equal(first.status, 200);
      // The SNI must match the CONNECT host, so send rebind.test; the origin's certificate is for allowed.test.
      const body = await httpsOverTunnel(first.socket, { servername: "rebind.test", ca: certificate.cert, hostname: "allowed.test" });
      assert.match(body, /hello from origin443/);
      assert.deepEqual(lookups, ["rebind.test"], "one lookup for the first request");
      assert.deepEqual(harness.dial.dialled, [`${ORIGIN_IP}:443`], "dialled exactly the checked address");
      assert.equal(lastDecision(harness)?.address, ORIGIN_IP, "the audit record names the checked (and dialled) address");
      const second = await openTunnel(harness.address, "rebind.test:443");
      assert.equal(second.status, 403);
      assert.equal(second.headers["x-perimeter-denied"], "private-address");
      assert.equal(lookups.length, 2);
      assert.deepEqual(harness.dial.dialled, [`${ORIGIN_IP}:443`], "the private answer was never dialled");
      assert.equal(trap.seen.connections, 0);
    } finally {
      await harness.proxy.close();
    }
  });

  test("absolute-form HTTP: each request resolves once and is sent to the checked address", async () => {
    let calls = 0;
    const rebinding: Resolver = {
      async lookup() {
        calls += 1;
        return calls % 2 === 1 ? [ORIGIN_IP] : [TRAP_IP];
      },
    };
    const harness = await startProxy({ allow: [{ host: "rebind.test", ports: [httpOrigin.port], allowCidr: [ORIGIN_CIDR] }], unknownClients: "global" }, rebinding);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ok = await httpThroughProxy(harness.address, `http://rebind.test:${httpOrigin.port}/one`, { agent });
      assert.equal(ok.status, 200);
      const refused = await httpThroughProxy(harness.address, `http://rebind.test:${httpOrigin.port}/two`, { agent });
      assert.equal(refused.status, 403);
      assert.equal(refused.headers["x-perimeter-denied"], "private-address");
      assert.equal(calls, 2);
      assert.ok(harness.dial.dialled.every((entry) => entry === `${ORIGIN_IP}:${httpOrigin.port}`));
    } finally {
      agent.destroy();
      await harness.proxy.close();
    }
  });
});

describe("rules: hosts, ports and SNI", () => {
  let harness: Harness;
  before(async () => {
    harness = await startProxy(
      {
        allow: [
          { host: "allowed.test", ports: [443, httpOrigin.port], allowCidr: [ORIGIN_CIDR] },
          { host: "other.test", allowCidr: [ORIGIN_CIDR] },
          { host: "nosni.test", allowCidr: [ORIGIN_CIDR], requireSni: false },
        ],
        unknownClients: "global",
      },
      staticResolver({ "allowed.test": [ORIGIN_IP], "other.test": [ORIGIN_IP], "nosni.test": [ORIGIN_IP], "evil.test": [ORIGIN_IP] }),
    );
  });
  after(() => harness.proxy.close());

  test("CONNECT to an allowlisted host with SNI equal to the CONNECT host succeeds (port 443, SNI checked)", async () => {
    const tunnel = await openTunnel(harness.address, "allowed.test:443");
    assert.equal(tunnel.status, 200);
    const body = await httpsOverTunnel(tunnel.socket, { servername: "allowed.test", ca: certificate.cert, hostname: "allowed.test" });
    assert.match(body, /hello from origin443/);
    assert.equal(lastDecision(harness)?.sni, "allowed.test");
  });

  test("a host that is not allowlisted gets 403 not-allowlisted with the line to add", async () => {
    const tunnel = await openTunnel(harness.address, "evil.test:443");
    assert.equal(tunnel.status, 403);
    assert.equal(tunnel.headers["x-perimeter-denied"], "not-allowlisted");
    assert.match(tunnel.body, /add "evil\.test" to egress\.allow/);
    assert.equal(tunnel.body.split("\n").filter(Boolean).length, 1, "one line");
  });

  test("CONNECT to a port the rule does not list is refused (port-not-allowed)", async () => {
    for (const port of [22, 80, 8443]) {
      const tunnel = await openTunnel(harness.address, `allowed.test:${port}`);
      assert.equal(tunnel.status, 403);
      assert.equal(tunnel.headers["x-perimeter-denied"], "port-not-allowed");
      assert.match(tunnel.body, /allowed\.test:\d+/);
    }
  });

  test("SNI mismatch (domain fronting: CONNECT allowed.test, SNI other.test) is refused before the origin sees a hello", async () => {
    const before = tlsOrigin.seen.serverNames.length;
    const tunnel = await openTunnel(harness.address, "allowed.test:443");
    assert.equal(tunnel.status, 200);
    await assert.rejects(httpsOverTunnel(tunnel.socket, { servername: "other.test", ca: certificate.cert, hostname: "other.test" }), (error: NodeJS.ErrnoException) => /ALERT_ACCESS_DENIED|ECONNRESET|socket disconnected/i.test(`${error.code} ${error.message}`));
    await waitFor(() => lastDecision(harness)?.reason === "sni-mismatch", 2000, "sni-mismatch decision");
    assert.equal(lastDecision(harness)?.sni, "other.test");
    assert.equal(tlsOrigin.seen.serverNames.length, before, "no TLS handshake reached the origin");
  });

  test("a ClientHello without SNI is refused (sni-missing)", async () => {
    const tunnel = await openTunnel(harness.address, "allowed.test:443");
    assert.equal(tunnel.status, 200);
    await assert.rejects(httpsOverTunnel(tunnel.socket, { ca: certificate.cert, hostname: "allowed.test" }));
    await waitFor(() => lastDecision(harness)?.reason === "sni-missing", 2000, "sni-missing decision");
  });

  test("a rule with requireSni: false lets a client without SNI through", async () => {
    const tunnel = await openTunnel(harness.address, "nosni.test:443");
    assert.equal(tunnel.status, 200);
    const body = await httpsOverTunnel(tunnel.socket, { ca: certificate.cert, hostname: "allowed.test" });
    assert.match(body, /hello from origin443/);
  });

  test("plain bytes instead of TLS on a CONNECT to 443 are refused (not-tls)", async () => {
    const tunnel = await openTunnel(harness.address, "allowed.test:443");
    tunnel.socket.write("GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
    await waitFor(() => tunnel.socket.destroyed || tunnel.socket.readableEnded, 2000, "tunnel closed");
    await waitFor(() => lastDecision(harness)?.reason === "not-tls", 2000, "not-tls decision");
  });

  test("a ClientHello fragmented into tiny TCP segments still passes the SNI check", async () => {
    const tunnel = await openTunnel(harness.address, "allowed.test:443");
    tunnel.socket.setNoDelay(true);
    // A duplex that writes the client's first flight in 7-byte pieces with pauses, then passes through.
    const inner = tunnel.socket;
    let first = true;
    const fragmenting = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        if (!first) {
          inner.write(chunk, callback);
          return;
        }
        first = false;
        (async () => {
          for (let offset = 0; offset < chunk.length; offset += 7) {
            inner.write(chunk.subarray(offset, offset + 7));
            await new Promise((resolve) => setTimeout(resolve, 1));
          }
          callback();
        })().catch(callback);
      },
      final(callback) {
        inner.end(callback);
      },
    });
    inner.on("data", (chunk: Buffer) => fragmenting.push(chunk));
    inner.on("end", () => fragmenting.push(null));
    const body = await httpsOverTunnel(fragmenting as unknown as net.Socket, { servername: "allowed.test", ca: certificate.cert, hostname: "allowed.test" });
    assert.match(body, /hello from origin443/);
  });

  test("absolute-form request whose Host header names another site than the URI is refused (host-mismatch)", async () => {
    const before = httpOrigin.seen.requests.length;
    const response = await httpThroughProxy(harness.address, `http://allowed.test:${httpOrigin.port}/`, { headers: { Host: "evil.test" } });
    assert.equal(response.status, 403);
    assert.equal(response.headers["x-perimeter-denied"], "host-mismatch");
    const port = await httpThroughProxy(harness.address, `http://allowed.test:${httpOrigin.port}/`, { headers: { Host: "allowed.test:1" } });
    assert.equal(port.headers["x-perimeter-denied"], "host-mismatch");
    assert.equal(httpOrigin.seen.requests.length, before, "the origin saw nothing");
  });
});

describe("header smuggling and malformed requests are refused before anything is forwarded", () => {
  let harness: Harness;
  before(async () => {
    harness = await startProxy(
      { allow: [{ host: "allowed.test", ports: [httpOrigin.port], allowCidr: [ORIGIN_CIDR] }], unknownClients: "global", limits: { maxHeaderBytes: 4096, headerTimeoutSeconds: 1 } },
      staticResolver({ "allowed.test": [ORIGIN_IP] }),
    );
  });
  after(() => harness.proxy.close());

  const url = () => `http://allowed.test:${httpOrigin.port}/`;
  const host = () => `allowed.test:${httpOrigin.port}`;
  const cases: Array<[string, () => string, number, string]> = [
    ["duplicate Content-Length", () => `POST ${url()} HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, 400, "duplicate-content-length"],
    ["conflicting Content-Length values", () => `POST ${url()} HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc`, 400, "duplicate-content-length"],
    ["Content-Length with Transfer-Encoding (CL.TE)", () => `POST ${url()} HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n`, 400, "content-length-with-transfer-encoding"],
    ["obs-fold (a header continued on the next line)", () => `GET ${url()} HTTP/1.1\r\nHost: ${host()}\r\nX-Folded: a\r\n b\r\n\r\n`, 400, "invalid-header"],
    ["a control character in a header value", () => `GET ${url()} HTTP/1.1\r\nHost: ${host()}\r\nX-Bad: a\u0001b\r\n\r\n`, 400, "invalid-header"],
    ["whitespace between header name and colon", () => `GET ${url()} HTTP/1.1\r\nHost: ${host()}\r\nContent-Length : 0\r\n\r\n`, 400, "invalid-header"],
    ["a Transfer-Encoding other than chunked", () => `POST ${url()} HTTP/1.1\r\nHost: ${host()}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 400, "invalid-transfer-encoding"],
    ["duplicate Host headers", () => `GET ${url()} HTTP/1.1\r\nHost: ${host()}\r\nHost: evil.test\r\n\r\n`, 400, "duplicate-header"],
    ["duplicate Proxy-Authorization headers", () => `CONNECT ${host()} HTTP/1.1\r\nProxy-Authorization: Bearer a\r\nProxy-Authorization: Bearer b\r\n\r\n`, 400, "duplicate-header"],
    ["bare LF line endings", () => `GET ${url()} HTTP/1.1\nHost: ${host()}\n\n`, 400, "bad-request"],
    ["an oversized request head", () => `GET ${url()} HTTP/1.1\r\nHost: ${host()}\r\nX-Big: ${"a".repeat(8192)}\r\n\r\n`, 431, "headers-too-large"],
    ["an origin-form request to the proxy itself", () => `GET /metrics HTTP/1.1\r\nHost: ${host()}\r\n\r\n`, 400, "origin-form-request"],
    ["TRACE (cross-site tracing)", () => `TRACE ${url()} HTTP/1.1\r\nHost: ${host()}\r\n\r\n`, 405, "method-not-allowed"],
    ["an https:// URL sent as a plain proxy request", () => `GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n`, 400, "use-connect-for-https"],
    ["a protocol upgrade over plain http", () => `GET ${url()} HTTP/1.1\r\nHost: ${host()}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, 501, "upgrade-not-supported"],
    ["credentials in the URL", () => `GET http://user:pass@allowed.test:${httpOrigin.port}/ HTTP/1.1\r\nHost: ${host()}\r\n\r\n`, 400, "bad-request"],
    ["CONNECT without a port", () => `CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n`, 400, "bad-request"],
  ];
  for (const [name, request, status, reason] of cases) {
    test(`${name} → ${status} ${reason}, nothing forwarded`, async () => {
      const before = httpOrigin.seen.requests.length;
      const response = await rawExchange(harness.address, [request()]);
      assert.equal(response.status, status, response.body);
      assert.equal(response.headers["x-perimeter-denied"], reason);
      assert.equal(httpOrigin.seen.requests.length, before, "the origin saw nothing");
      await waitFor(() => lastDecision(harness)?.reason === reason, 1000, "decision record");
    });
  }

  test("slowloris: a request head dribbled one byte at a time is cut off at the header timeout (408)", async () => {
    const text = `GET ${url()} HTTP/1.1\r\nHost: ${host()}\r\nX-Slow: ${"a".repeat(60)}\r\n\r\n`;
    const response = await rawExchange(harness.address, [...text], { gapMs: 100, timeoutMs: 5000 });
    assert.equal(response.closed, true);
    assert.equal(response.status, 408);
    assert.equal(response.headers["x-perimeter-denied"], "header-timeout");
    assert.ok(response.elapsedMs < 3000, `closed after ${Math.round(response.elapsedMs)} ms (timeout 1 s)`);
  });

  test("slowloris: a connection that sends nothing is closed", async () => {
    const response = await rawExchange(harness.address, [], { timeoutMs: 5000 });
    assert.equal(response.closed, true);
    assert.ok(response.elapsedMs < 3500, `closed after ${Math.round(response.elapsedMs)} ms`);
  });
});

describe("limits and identity", () => {
  test("a client over its tunnel limit gets 503 tunnel-limit; closing one frees a slot; the total limit holds too", async () => {
    const harness = await startProxy(
      {
        allow: [{ host: "allowed.test", ports: [httpOrigin.port], allowCidr: [ORIGIN_CIDR] }],
        clients: [
          { name: "a", token: "client-a-token-0123456789" },
          { name: "b", token: "client-b-token-0123456789" },
        ],
        limits: { tunnelsPerClient: 2, tunnelsTotal: 3 },
      },
      staticResolver({ "allowed.test": [ORIGIN_IP] }),
    );
    const asA = { "Proxy-Authorization": "Bearer client-a-token-0123456789" };
    const asB = { "Proxy-Authorization": "Bearer client-b-token-0123456789" };
    const target = `allowed.test:${httpOrigin.port}`;
    try {
      const first = await openTunnel(harness.address, target, asA);
      const second = await openTunnel(harness.address, target, asA);
      assert.deepEqual([first.status, second.status], [200, 200]);
      const third = await openTunnel(harness.address, target, asA);
      assert.equal(third.status, 503);
      assert.equal(third.headers["x-perimeter-denied"], "tunnel-limit");
      assert.match(third.body, /tunnelsPerClient/);
      first.socket.destroy();
      await waitFor(() => harness.proxy.stats().openTunnels === 1, 2000, "tunnel release");
      const again = await openTunnel(harness.address, target, asA);
      assert.equal(again.status, 200, "a closed tunnel frees its slot");
      const forB = await openTunnel(harness.address, target, asB);
      assert.equal(forB.status, 200);
      const overTotal = await openTunnel(harness.address, target, asB);
      assert.equal(overTotal.status, 503);
      assert.match(overTotal.body, /tunnelsTotal/);
      for (const tunnel of [second, again, forB]) tunnel.socket.destroy();
    } finally {
      await harness.proxy.close();
    }
  });

  test("a client over its request rate gets 429 rate-limited; another client is unaffected", async () => {
    const harness = await startProxy(
      {
        allow: [{ host: "allowed.test", ports: [httpOrigin.port], allowCidr: [ORIGIN_CIDR] }],
        clients: [
          { name: "fast", token: "fast-client-token-0123456789" },
          { name: "calm", token: "calm-client-token-0123456789" },
        ],
        limits: { requestsPerSecondPerClient: 3 },
      },
      staticResolver({ "allowed.test": [ORIGIN_IP] }),
    );
    const url = `http://allowed.test:${httpOrigin.port}/`;
    try {
      const statuses: number[] = [];
      for (let index = 0; index < 5; index++) {
        const response = await httpThroughProxy(harness.address, url, { headers: { "Proxy-Authorization": "Bearer fast-client-token-0123456789" } });
        statuses.push(response.status);
        if (response.status === 429) assert.equal(response.headers["x-perimeter-denied"], "rate-limited");
      }
      assert.deepEqual(statuses.slice(0, 3), [200, 200, 200]);
      assert.ok(statuses.slice(3).includes(429), `statuses ${statuses.join(",")}`);
      const calm = await httpThroughProxy(harness.address, url, { headers: { "Proxy-Authorization": "Bearer calm-client-token-0123456789" } });
      assert.equal(calm.status, 200);
    } finally {
      await harness.proxy.close();
    }
  });

  test("wrong or malformed credentials get 407 bad-credentials, not the default policy", async () => {
    const harness = await startProxy(
      { allow: [{ host: "allowed.test", ports: [httpOrigin.port], allowCidr: [ORIGIN_CIDR] }], clients: [{ name: "a", token: "client-a-token-0123456789" }], unknownClients: "global" },
      staticResolver({ "allowed.test": [ORIGIN_IP] }),
    );
    try {
      for (const header of ["Bearer client-a-token-0123456780", "Basic !!!", "Digest abc", `Basic ${Buffer.from("a:wrong").toString("base64")}`]) {
        const tunnel = await openTunnel(harness.address, `allowed.test:${httpOrigin.port}`, { "Proxy-Authorization": header });
        assert.equal(tunnel.status, 407, header);
        assert.equal(tunnel.headers["x-perimeter-denied"], "bad-credentials");
        assert.match(tunnel.headers["proxy-authenticate"] ?? "", /Basic|Bearer/);
      }
      assert.equal((await openTunnel(harness.address, `allowed.test:${httpOrigin.port}`)).status, 200, "no credentials: the global list (unknownClients: global)");
    } finally {
      await harness.proxy.close();
    }
  });

  test("clients identified by source CIDR get their own rules", async () => {
    const harness = await startProxy(
      {
        clients: [
          { name: "loopback-agent", sources: ["127.0.0.0/8"], allow: [{ host: "allowed.test", ports: [httpOrigin.port], allowCidr: [ORIGIN_CIDR] }] },
          { name: "elsewhere", sources: ["10.9.0.0/16"], allow: [{ host: "other.test", ports: [httpOrigin.port], allowCidr: [ORIGIN_CIDR] }] },
        ],
      },
      staticResolver({ "allowed.test": [ORIGIN_IP], "other.test": [ORIGIN_IP] }),
    );
    try {
      assert.equal((await openTunnel(harness.address, `allowed.test:${httpOrigin.port}`)).status, 200);
      const other = await openTunnel(harness.address, `other.test:${httpOrigin.port}`);
      assert.equal(other.status, 403);
      assert.match(other.body, /client "loopback-agent"/);
    } finally {
      await harness.proxy.close();
    }
  });

  test("a request that already passed through this proxy (its Via token) is refused as a loop", async () => {
    const harness = await startProxy({ allow: [{ host: "allowed.test", ports: [httpOrigin.port], allowCidr: [ORIGIN_CIDR] }], unknownClients: "global" }, staticResolver({ "allowed.test": [ORIGIN_IP] }));
    try {
      await httpThroughProxy(harness.address, `http://allowed.test:${httpOrigin.port}/first`);
      const via = String(httpOrigin.seen.requests.at(-1)?.headers.via);
      assert.match(via, /perimeter-egress-/);
      const looped = await httpThroughProxy(harness.address, `http://allowed.test:${httpOrigin.port}/again`, { headers: { Via: via } });
      assert.equal(looped.status, 508);
      assert.equal(looped.headers["x-perimeter-denied"], "loop-detected");
    } finally {
      await harness.proxy.close();
    }
  });

  test("an idle tunnel is closed at the idle timeout; a busy one at the maximum lifetime", async () => {
    const echo = net.createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, ORIGIN_IP, resolve));
    const port = (echo.address() as net.AddressInfo).port;
    const harness = await startProxy(
      { allow: [{ host: "allowed.test", ports: [port], allowCidr: [ORIGIN_CIDR] }], unknownClients: "global", limits: { idleTimeoutSeconds: 1, tunnelLifetimeSeconds: 2 } },
      staticResolver({ "allowed.test": [ORIGIN_IP] }),
    );
    const closeReasons = () => harness.audit.records.filter((record) => record.type === "connection-close").map((record) => record.reason);
    try {
      const idle = await openTunnel(harness.address, `allowed.test:${port}`);
      assert.equal(idle.status, 200);
      const started = performance.now();
      await waitFor(() => closeReasons().includes("idle-timeout"), 4000, "idle-timeout close");
      assert.ok(performance.now() - started >= 900, "not before the idle timeout");
      idle.socket.destroy();

      const busy = await openTunnel(harness.address, `allowed.test:${port}`);
      busy.socket.resume();
      const ticker = setInterval(() => busy.socket.write("ping"), 200); // never idle for a whole second
      try {
        await waitFor(() => closeReasons().includes("lifetime-exceeded"), 5000, "lifetime-exceeded close");
      } finally {
        clearInterval(ticker);
        busy.socket.destroy();
      }
    } finally {
      await harness.proxy.close();
      echo.close();
    }
  });

  test("CONNECT to 443 with no ClientHello is closed at the header timeout (sni-timeout)", async () => {
    const harness = await startProxy({ allow: [{ host: "allowed.test", allowCidr: [ORIGIN_CIDR] }], unknownClients: "global", limits: { headerTimeoutSeconds: 1 } }, staticResolver({ "allowed.test": [ORIGIN_IP] }));
    try {
      const tunnel = await openTunnel(harness.address, "allowed.test:443");
      assert.equal(tunnel.status, 200);
      const started = performance.now();
      await waitFor(() => tunnel.socket.destroyed || tunnel.socket.readableEnded, 4000, "tunnel closed");
      assert.ok(performance.now() - started < 3000);
      tunnel.socket.destroy();
      await waitFor(() => lastDecision(harness)?.reason === "sni-timeout", 1000, "sni-timeout decision");
    } finally {
      await harness.proxy.close();
    }
  });

  test("an audit log that cannot be written refuses the request (fail closed) and the origin sees nothing", async () => {
    const failing = {
      append() {
        throw new Error("disk full");
      },
    };
    const proxy = createEgressProxy({ allow: [{ host: "allowed.test", ports: [httpOrigin.port], allowCidr: [ORIGIN_CIDR] }], unknownClients: "global" }, { resolver: staticResolver({ "allowed.test": [ORIGIN_IP] }), audit: failing, dial: guardedDial() });
    const address = (await proxy.listen("127.0.0.1:0")) as BoundAddress & { kind: "tcp" };
    try {
      const before = httpOrigin.seen.requests.length;
      const response = await httpThroughProxy(address, `http://allowed.test:${httpOrigin.port}/`);
      assert.equal(response.status, 503);
      assert.equal(response.headers["x-perimeter-error"], "audit-unavailable");
      const tunnel = await openTunnel(address, `allowed.test:${httpOrigin.port}`);
      assert.equal(tunnel.status, 503);
      assert.equal(httpOrigin.seen.requests.length, before);
    } finally {
      await proxy.close();
    }
  });
});

test("by default a ClientHello goes out while its record commits; when the commit fails the client gets an alert, never the origin's answer, and nothing more goes out until the log works again", async () => {
  const helloIp = `127.${octet()}.${octet()}.3`;
  // A raw origin on 443 that answers whatever arrives: the bytes it got, per connection, show what went out.
  const received: number[] = [];
  const origin = net.createServer((socket) => {
    const index = received.push(0) - 1;
    socket.on("data", (chunk: Buffer) => {
      received[index] = (received[index] ?? 0) + chunk.length;
      socket.write("ORIGIN-ANSWER");
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve, reject) => {
    origin.once("error", reject);
    origin.listen(443, helloIp, resolve);
  });
  const harness = await startProxy({ allow: [{ host: "hello.test", allowCidr: [`${helloIp}/32`] }], unknownClients: "global" }, staticResolver({ "hello.test": [helloIp] }));
  const hello = await captureClientHello("hello.test");
  /** Opens a tunnel, sends the ClientHello and returns everything the client got back until the tunnel closed. */
  const attempt = async (): Promise<Buffer> => {
    const tunnel = await openTunnel(harness.address, "hello.test:443");
    assert.equal(tunnel.status, 200);
    const chunks: Buffer[] = [];
    tunnel.socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    const closed = new Promise<void>((resolve) => tunnel.socket.once("close", () => resolve()));
    tunnel.socket.write(hello);
    // The origin answers at once; a tunnel that works stays open, so stop reading once the answer came.
    await Promise.race([closed, waitFor(() => Buffer.concat(chunks).includes("ORIGIN-ANSWER"), 3000, "the answer").catch(() => {})]);
    tunnel.socket.destroy();
    return Buffer.concat(chunks);
  };
  try {
    harness.audit.failing = true;
    const first = await attempt();
    assert.deepEqual(first, TLS_ACCESS_DENIED_ALERT, "an access_denied alert, never the origin's answer");
    // The origin may read it a moment after the client saw its tunnel close.
    await waitFor(() => received[0] === hello.length, 3000, "the ClientHello, sent while its record committed (and failed), at the origin");
    const second = await attempt();
    assert.deepEqual(second, TLS_ACCESS_DENIED_ALERT);
    await waitFor(() => received.length === 2, 3000, "the second connection");
    assert.equal(received[1], 0, "after a failed commit nothing goes out before a commit succeeds");
    harness.audit.failing = false;
    const third = await attempt();
    assert.equal(third.toString(), "ORIGIN-ANSWER", "once the log accepts writes, tunnels work again");
    assert.equal(harness.audit.records.filter((record) => record.type === "egress-decision" && record.decision === "allow").length, 1, "only the third tunnel's decision is in the log");
  } finally {
    await harness.proxy.close();
    await new Promise<void>((resolve) => origin.close(() => resolve()));
  }
});

describe("upstream failures are 502/504 with a reason", () => {
  test("a refused upstream connection is 502 upstream-refused; an unresolvable name is 502 dns-failure", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const probe = net.createServer();
      probe.listen(0, ORIGIN_IP, () => {
        const port = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(port));
      });
    });
    const harness = await startProxy({ allow: [{ host: "allowed.test", ports: [closedPort], allowCidr: [ORIGIN_CIDR] }, { host: "missing.test", ports: [closedPort] }], unknownClients: "global" }, staticResolver({ "allowed.test": [ORIGIN_IP] }));
    try {
      const tunnel = await openTunnel(harness.address, `allowed.test:${closedPort}`);
      assert.equal(tunnel.status, 502);
      assert.equal(tunnel.headers["x-perimeter-error"], "upstream-refused");
      const http502 = await httpThroughProxy(harness.address, `http://allowed.test:${closedPort}/`);
      assert.equal(http502.status, 502);
      assert.equal(http502.headers["x-perimeter-error"], "upstream-refused");
      const dns = await openTunnel(harness.address, `missing.test:${closedPort}`);
      assert.equal(dns.status, 502);
      assert.equal(dns.headers["x-perimeter-error"], "dns-failure");
    } finally {
      await harness.proxy.close();
    }
  });

  test("an upstream that accepts but never answers is 504 upstream-timeout (plain HTTP)", async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, ORIGIN_IP, resolve));
    const port = (silent.address() as net.AddressInfo).port;
    const harness = await startProxy({ allow: [{ host: "allowed.test", ports: [port], allowCidr: [ORIGIN_CIDR] }], unknownClients: "global", limits: { idleTimeoutSeconds: 1 } }, staticResolver({ "allowed.test": [ORIGIN_IP] }));
    try {
      const response = await httpThroughProxy(harness.address, `http://allowed.test:${port}/`);
      assert.equal(response.status, 504);
      assert.equal(response.headers["x-perimeter-error"], "upstream-timeout");
    } finally {
      await harness.proxy.close();
      silent.close();
    }
  });
});

test("the trap address was never reached by any test in this file", async () => {
  await startTrap("127.0.0.1").then((probe) => probe.close());
  assert.equal(trap.seen.connections, 0);
});
