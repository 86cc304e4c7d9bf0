// Requirements (issue 3): CONNECT tunnels and absolute-form HTTP with keep-alive are served for allowlisted hosts;
// the SSRF deny set holds unless a rule's allowCidr excepts a range; callers embedding the proxy (the sandbox runner)
// can listen on a Unix socket and add and remove clients, each with its own token and allowlist, at run time.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { staticResolver } from "../net/index.ts";
import { createEgressProxy, PolicyError } from "./index.ts";
import type { EgressProxy } from "./index.ts";
import type { BoundAddress } from "../shared/index.ts";
import {
  guardedDial,
  httpThroughProxy,
  httpsOverTunnel,
  makeCertificate,
  memoryAudit,
  openTunnel,
  startHttpOrigin,
  startTlsOrigin,
  waitFor,
} from "./test-support.ts";
import type { Certificate, Origin } from "./test-support.ts";

const ORIGIN_IP = "127.0.0.2";
const ORIGIN_CIDR = "127.0.0.2/32";

let certificate: Certificate;
let tlsOrigin: Origin;
let httpOrigin: Origin;

before(async () => {
  certificate = makeCertificate(["allowed.test", "api.allowed.test", "other.test"]);
  tlsOrigin = await startTlsOrigin(ORIGIN_IP, certificate, "tls-origin");
  httpOrigin = await startHttpOrigin(ORIGIN_IP, "http-origin");
});
after(async () => {
  await tlsOrigin.close();
  await httpOrigin.close();
});

const resolver = staticResolver({ "allowed.test": [ORIGIN_IP], "api.allowed.test": [ORIGIN_IP], "other.test": [ORIGIN_IP] });

function tcp(address: BoundAddress): BoundAddress & { kind: "tcp" } {
  assert.equal(address.kind, "tcp");
  return address as BoundAddress & { kind: "tcp" };
}

describe("happy paths", () => {
  let proxy: EgressProxy;
  let address: BoundAddress & { kind: "tcp" };
  const audit = memoryAudit();
  const dial = guardedDial();

  before(async () => {
    proxy = createEgressProxy(
      {
        allow: [
          { host: "allowed.test", ports: [tlsOrigin.port, httpOrigin.port], allowCidr: [ORIGIN_CIDR] },
          { host: "private.test", ports: [tlsOrigin.port] },
        ],
        unknownClients: "global",
      },
      { resolver: staticResolver({ "allowed.test": [ORIGIN_IP], "private.test": [ORIGIN_IP] }), audit, dial },
    );
    address = tcp(await proxy.listen("127.0.0.1:0"));
  });
  after(() => proxy.close());

  test("CONNECT to an allowlisted host with an allowCidr for its loopback address tunnels TLS end to end", async () => {
    const tunnel = await openTunnel(address, `allowed.test:${tlsOrigin.port}`);
    assert.equal(tunnel.status, 200);
    const body = await httpsOverTunnel(tunnel.socket, { servername: "allowed.test", ca: certificate.cert, hostname: "allowed.test" });
    assert.match(body, /hello from tls-origin GET \//);
    assert.ok(dial.dialled.includes(`${ORIGIN_IP}:${tlsOrigin.port}`));
    await waitFor(() => audit.records.some((record) => record.type === "connection-close" && record.host === "allowed.test"), 3000, "tunnel close record");
    const close = audit.records.find((record) => record.type === "connection-close" && record.host === "allowed.test") as { bytesToUpstream: number; bytesFromUpstream: number };
    assert.ok(close.bytesToUpstream > 0 && close.bytesFromUpstream > 0, "bytes each way are recorded");
  });

  test("a tunnel relays megabytes both ways intact, with the server speaking first and the client half-closing", async () => {
    const download = randomBytes(8 * 1024 * 1024 + 17);
    const upload = randomBytes(3 * 1024 * 1024 + 5);
    const received = createHash("sha256");
    const server = net.createServer((socket) => {
      socket.write(download); // before the client sends anything: the proxy must hold it until the tunnel is up
      socket.on("data", (chunk: Buffer) => received.update(chunk));
      socket.on("end", () => socket.end());
    });
    await new Promise<void>((resolve) => server.listen(0, ORIGIN_IP, resolve));
    const port = (server.address() as net.AddressInfo).port;
    proxy.reload({ allow: [{ host: "allowed.test", ports: [tlsOrigin.port, httpOrigin.port, port], allowCidr: [ORIGIN_CIDR] }, { host: "private.test", ports: [tlsOrigin.port] }], unknownClients: "global" });
    try {
      const tunnel = await openTunnel(address, `allowed.test:${port}`);
      assert.equal(tunnel.status, 200);
      const got = createHash("sha256");
      let length = 0;
      const ended = new Promise<void>((resolve) => tunnel.socket.on("end", resolve));
      tunnel.socket.on("data", (chunk: Buffer) => {
        got.update(chunk);
        length += chunk.length;
      });
      tunnel.socket.resume();
      for (let offset = 0; offset < upload.length; offset += 100_000) tunnel.socket.write(upload.subarray(offset, offset + 100_000));
      tunnel.socket.end();
      await ended;
      assert.equal(length, download.length);
      assert.equal(got.digest("hex"), createHash("sha256").update(download).digest("hex"), "download intact");
      assert.equal(received.digest("hex"), createHash("sha256").update(upload).digest("hex"), "upload intact");
    } finally {
      server.close();
    }
  });

  test("the same name without an allowCidr is denied: it resolves to loopback, inside the SSRF deny set", async () => {
    const tunnel = await openTunnel(address, `private.test:${tlsOrigin.port}`);
    assert.equal(tunnel.status, 403);
    assert.equal(tunnel.headers["x-perimeter-denied"], "private-address");
    assert.match(tunnel.body, /allowCidr/);
  });

  test("absolute-form HTTP requests are forwarded over one keep-alive client connection", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    agent.on("free", (socket) => sockets.add(socket));
    try {
      for (let index = 0; index < 3; index++) {
        const response = await httpThroughProxy(address, `http://allowed.test:${httpOrigin.port}/page/${index}?q=${index}`, { agent });
        assert.equal(response.status, 200);
        assert.equal(response.body, `hello from http-origin GET /page/${index}?q=${index}`);
        assert.equal(response.headers["x-origin"], "http-origin");
      }
      const post = await httpThroughProxy(address, `http://allowed.test:${httpOrigin.port}/submit`, { agent, method: "POST", body: "payload" });
      assert.equal(post.body, "hello from http-origin POST /submit body=payload");
      assert.equal(sockets.size, 1, "all requests used one client connection");
      const forwarded = httpOrigin.seen.requests.at(-1);
      assert.equal(forwarded?.headers.host, `allowed.test:${httpOrigin.port}`);
      assert.equal(forwarded?.headers["proxy-authorization"], undefined);
      assert.match(String(forwarded?.headers.via), /perimeter-egress-/);
    } finally {
      agent.destroy();
    }
  });

  test("one audit record per decision carries client, host, port, resolved address, decision and reason", () => {
    const allowed = audit.records.find((record) => record.type === "egress-decision" && record.decision === "allow" && record.method === "CONNECT");
    assert.deepEqual(
      { ...allowed, durationMs: undefined },
      {
        component: "egress-proxy",
        type: "egress-decision",
        client: "unknown",
        source: "127.0.0.1",
        method: "CONNECT",
        host: "allowed.test",
        port: tlsOrigin.port,
        address: ORIGIN_IP,
        decision: "allow",
        reason: "allowlisted",
        status: 200,
        rules: ["allowed.test"],
        durationMs: undefined,
      },
    );
    const denied = audit.records.find((record) => record.type === "egress-decision" && record.reason === "private-address");
    assert.equal(denied?.decision, "deny");
    assert.equal(denied?.address, ORIGIN_IP);
  });
});

describe("embedding API (sandbox runner): Unix socket listener and run-time clients", () => {
  let proxy: EgressProxy;
  let directory: string;
  let socketAddress: BoundAddress;

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), "perimeter-egress-"));
    proxy = createEgressProxy({ unknownClients: "deny" }, { resolver, dial: guardedDial() });
    socketAddress = await proxy.listen(join(directory, "egress.sock"));
  });
  after(async () => {
    await proxy.close();
    rmSync(directory, { recursive: true, force: true });
  });

  test("listen() accepts a Unix socket path and reports it", () => {
    assert.deepEqual(socketAddress, { kind: "unix", path: join(directory, "egress.sock") });
    assert.ok(existsSync(join(directory, "egress.sock")));
    assert.deepEqual(proxy.addresses(), [socketAddress]);
  });

  test("a run-time client gets exactly its own allowlist, by its own token, until removed", async () => {
    const task = proxy.addClient({ name: "task-1", token: "task-one-token-0123456789", allow: [`allowed.test:${tlsOrigin.port}`], allowCidrs: [ORIGIN_CIDR] });
    const other = proxy.addClient({ name: "task-2", token: "task-two-token-0123456789", allow: [`other.test:${tlsOrigin.port}`], allowCidrs: [ORIGIN_CIDR] });
    const bearer = { "Proxy-Authorization": "Bearer task-one-token-0123456789" };
    const basic = { "Proxy-Authorization": `Basic ${Buffer.from("task-1:task-one-token-0123456789").toString("base64")}` };

    const open = await openTunnel(socketAddress, `allowed.test:${tlsOrigin.port}`, bearer);
    assert.equal(open.status, 200);
    assert.match(await httpsOverTunnel(open.socket, { servername: "allowed.test", ca: certificate.cert, hostname: "allowed.test" }), /hello from tls-origin/);
    assert.equal((await openTunnel(socketAddress, `allowed.test:${tlsOrigin.port}`, basic)).status, 200, "Basic with the token as password works too");

    const notMine = await openTunnel(socketAddress, `other.test:${tlsOrigin.port}`, bearer);
    assert.equal(notMine.status, 403);
    assert.equal(notMine.headers["x-perimeter-denied"], "not-allowlisted");
    assert.match(notMine.body, /client "task-1"/);

    const anonymous = await openTunnel(socketAddress, `allowed.test:${tlsOrigin.port}`);
    assert.equal(anonymous.status, 407);
    assert.equal(anonymous.headers["x-perimeter-denied"], "unknown-client");

    const held = await openTunnel(socketAddress, `allowed.test:${tlsOrigin.port}`, bearer);
    assert.equal(held.status, 200);
    task.remove();
    await waitFor(() => held.socket.destroyed || held.socket.readableEnded, 2000, "removed client's tunnel to close");
    const revoked = await openTunnel(socketAddress, `allowed.test:${tlsOrigin.port}`, bearer);
    assert.equal(revoked.status, 407);
    assert.equal(revoked.headers["x-perimeter-denied"], "bad-credentials");
    task.remove(); // idempotent
    other.remove();
  });

  test("addClient refuses broad patterns, short tokens and a token already in use, naming the problem", () => {
    assert.throws(() => proxy.addClient({ name: "bad", token: "0123456789abcdef0123", allow: ["*.com"] }), (error: unknown) => error instanceof PolicyError && /too broad/.test(error.message));
    assert.throws(() => proxy.addClient({ name: "short", token: "short", allow: ["allowed.test"] }), /at least 16 characters/);
    const first = proxy.addClient({ name: "one", token: "same-token-0123456789", allow: ["allowed.test"] });
    assert.throws(() => proxy.addClient({ name: "two", token: "same-token-0123456789", allow: ["allowed.test"] }), /same token/);
    assert.throws(() => proxy.addClient({ name: "one", token: "another-token-0123456789", allow: ["allowed.test"] }), /defined twice/);
    first.remove();
  });

  test("run-time clients survive a policy reload", async () => {
    const task = proxy.addClient({ name: "survivor", token: "survivor-token-0123456789", allow: [`allowed.test:${tlsOrigin.port}`], allowCidrs: [ORIGIN_CIDR] });
    assert.deepEqual(proxy.reload({ unknownClients: "deny", allow: [] }), { ok: true });
    const tunnel = await openTunnel(socketAddress, `allowed.test:${tlsOrigin.port}`, { "Proxy-Authorization": "Bearer survivor-token-0123456789" });
    assert.equal(tunnel.status, 200);
    tunnel.socket.destroy();
    task.remove();
  });

  test("close() removes the Unix socket", async () => {
    const second = createEgressProxy({}, { resolver });
    const path = join(directory, "second.sock");
    await second.listen({ path });
    assert.ok(existsSync(path));
    await second.close();
    assert.equal(existsSync(path), false);
  });
});
