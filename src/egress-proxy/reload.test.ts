// Requirements (issue 3): a reload swaps the policy atomically without dropping open tunnels; an invalid new policy
// keeps the old one and says why; metrics (decisions by reason, open tunnels, bytes, latency) and /healthz are
// served on their own listener, never on the proxy port.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { staticResolver } from "../net/index.ts";
import { createEgressProxy } from "./index.ts";
import type { EgressProxy } from "./index.ts";
import type { BoundAddress } from "../shared/index.ts";
import { guardedDial, httpThroughProxy, makeCertificate, memoryAudit, openTunnel, rawExchange, startHttpOrigin, startTlsOrigin, waitFor } from "./test-support.ts";
import type { Certificate, Origin } from "./test-support.ts";
import tls from "node:tls";

const ORIGIN_IP = "127.0.0.3";
const ORIGIN_CIDR = `${ORIGIN_IP}/32`;
let certificate: Certificate;
let tlsOrigin: Origin;
let httpOrigin: Origin;
let proxy: EgressProxy;
let address: BoundAddress & { kind: "tcp" };
let metricsAddress: BoundAddress & { kind: "tcp" };

const rule = (host: string) => ({ host, ports: [tlsOrigin.port, httpOrigin.port], allowCidr: [ORIGIN_CIDR] });

before(async () => {
  certificate = makeCertificate(["first.test", "second.test"]);
  tlsOrigin = await startTlsOrigin(ORIGIN_IP, certificate);
  httpOrigin = await startHttpOrigin(ORIGIN_IP);
  proxy = createEgressProxy(
    { allow: [rule("first.test")], unknownClients: "global" },
    { resolver: staticResolver({ "first.test": [ORIGIN_IP], "second.test": [ORIGIN_IP] }), dial: guardedDial() },
  );
  address = (await proxy.listen("127.0.0.1:0")) as BoundAddress & { kind: "tcp" };
  metricsAddress = (await proxy.listenMetrics("127.0.0.1:0")) as BoundAddress & { kind: "tcp" };
});
after(async () => {
  await proxy.close();
  await tlsOrigin.close();
  await httpOrigin.close();
});

function get(url: string): Promise<{ status: number; body: string; contentType: string | undefined }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body, contentType: response.headers["content-type"] }));
      })
      .on("error", reject);
  });
}

/** A TLS session over a tunnel that stays open, so that traffic can be sent before and after a reload. */
async function openSession(host: string): Promise<tls.TLSSocket> {
  const tunnel = await openTunnel(address, `${host}:${tlsOrigin.port}`);
  assert.equal(tunnel.status, 200);
  const secure = tls.connect({ socket: tunnel.socket, servername: host, ca: certificate.cert });
  await new Promise<void>((resolve, reject) => {
    secure.once("secureConnect", () => resolve());
    secure.once("error", reject);
  });
  return secure;
}

function exchange(secure: tls.TLSSocket, host: string, path: string): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const end = text.indexOf("\r\n\r\n");
      const length = /content-length: (\d+)/i.exec(text);
      const complete = length !== null ? text.length >= end + 4 + Number(length[1]) : text.endsWith("\r\n0\r\n\r\n");
      if (end !== -1 && complete) {
        secure.off("data", onData);
        resolve(text.slice(end + 4));
      }
    };
    secure.on("data", onData);
    secure.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

test("a reload that removes a host keeps the tunnel already open to it, and refuses new ones", async () => {
  const session = await openSession("first.test");
  assert.match(await exchange(session, "first.test", "/before"), /GET \/before/);
  assert.deepEqual(proxy.reload({ allow: [rule("second.test")], unknownClients: "global" }), { ok: true });
  assert.match(await exchange(session, "first.test", "/after"), /GET \/after/, "the open tunnel still carries traffic");
  const refused = await openTunnel(address, `first.test:${tlsOrigin.port}`);
  assert.equal(refused.status, 403);
  assert.equal(refused.headers["x-perimeter-denied"], "not-allowlisted");
  const allowed = await openTunnel(address, `second.test:${tlsOrigin.port}`);
  assert.equal(allowed.status, 200, "the new policy is in force");
  allowed.socket.destroy();
  session.destroy();
  proxy.reload({ allow: [rule("first.test")], unknownClients: "global" });
});

test("an invalid new policy is refused with the reasons, and the old policy stays in force", async () => {
  const before = proxy.policy();
  const result = proxy.reload({ allow: ["*.com", { host: "ok.test", allowCidr: ["not-a-cidr"] }], limits: { tunnelsTotal: -1 } });
  assert.equal(result.ok, false);
  const problems = result.ok ? [] : result.problems;
  assert.ok(problems.some((problem) => /too broad/.test(problem)));
  assert.ok(problems.some((problem) => /not a CIDR/.test(problem)));
  assert.ok(problems.some((problem) => /tunnelsTotal/.test(problem)));
  assert.equal(proxy.policy(), before, "the very same policy object is still in force");
  const tunnel = await openTunnel(address, `first.test:${tlsOrigin.port}`);
  assert.equal(tunnel.status, 200);
  tunnel.socket.destroy();
});

test("/metrics exposes decisions by reason, open tunnels, bytes and the setup latency histogram; /healthz answers", async () => {
  await httpThroughProxy(address, `http://first.test:${httpOrigin.port}/metrics-probe`);
  await openTunnel(address, `nowhere.test:${tlsOrigin.port}`);
  const held = await openTunnel(address, `first.test:${tlsOrigin.port}`);
  await waitFor(() => proxy.stats().openTunnels === 1, 2000, "one open tunnel");
  const metrics = await get(`${metricsAddress.url}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.contentType ?? "", /text\/plain/);
  assert.match(metrics.body, /perimeter_egress_decisions_total\{decision="allow",reason="allowlisted"\} \d+/);
  assert.match(metrics.body, /perimeter_egress_decisions_total\{decision="deny",reason="not-allowlisted"\} [1-9]/);
  assert.match(metrics.body, /perimeter_egress_open_tunnels 1/);
  assert.match(metrics.body, /perimeter_egress_bytes_total\{direction="downstream"\} [1-9]/);
  assert.match(metrics.body, /perimeter_egress_setup_seconds_bucket\{le="[0-9.]+",kind="connect"\} \d+/);
  assert.match(metrics.body, /perimeter_egress_policy_reloads_total\{result="rejected"\} 1/);
  held.socket.destroy();
  const health = await get(`${metricsAddress.url}/healthz`);
  assert.deepEqual([health.status, health.body], [200, "ok\n"]);
  assert.equal((await get(`${metricsAddress.url}/other`)).status, 404);
});

test("/healthz is 503 while the audit log refuses writes (every request is refused then) and ok once a commit succeeds", async () => {
  const audit = memoryAudit();
  const failing = createEgressProxy({ allow: [rule("first.test")], unknownClients: "global" }, { resolver: staticResolver({ "first.test": [ORIGIN_IP] }), dial: guardedDial(), audit });
  const proxyAddress = (await failing.listen("127.0.0.1:0")) as BoundAddress & { kind: "tcp" };
  const health = (await failing.listenMetrics("127.0.0.1:0")) as BoundAddress & { kind: "tcp" };
  try {
    assert.equal((await get(`${health.url}/healthz`)).status, 200);
    audit.failing = true;
    assert.equal((await httpThroughProxy(proxyAddress, `http://first.test:${httpOrigin.port}/`)).status, 503);
    const down = await get(`${health.url}/healthz`);
    assert.equal(down.status, 503);
    assert.match(down.body, /audit log failing/);
    assert.match((await get(`${health.url}/metrics`)).body, /perimeter_egress_audit_failures_total 1\b/);
    audit.failing = false;
    assert.equal((await httpThroughProxy(proxyAddress, `http://first.test:${httpOrigin.port}/`)).status, 200);
    assert.deepEqual(await get(`${health.url}/healthz`).then((response) => [response.status, response.body]), [200, "ok\n"]);
  } finally {
    await failing.close();
  }
});

test("the proxy port does not serve metrics (origin-form requests are refused)", async () => {
  const response = await rawExchange(address, ["GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]);
  assert.equal(response.status, 400);
  assert.equal(response.headers["x-perimeter-denied"], "origin-form-request");
});
