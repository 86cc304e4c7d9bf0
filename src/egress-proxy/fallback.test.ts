// A name with several addresses: every one is checked, and when the first does not answer the proxy connects to the
// next (RFC 8305 order: families alternate, the next attempt starts on a failure or after 250 ms), never to anything
// unchecked. Origins and "dead" addresses are loopback addresses of our own (nothing listens on a dead one, so a
// connection to it is refused at once); the test's dialer refuses anything outside loopback.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { staticResolver } from "../net/index.ts";
import { createEgressProxy } from "./index.ts";
import type { EgressProxy } from "./index.ts";
import type { BoundAddress } from "../shared/index.ts";
import { dialOrder } from "./dial.ts";
import type { Dialer } from "./server.ts";
import { guardedDial, httpThroughProxy, memoryAudit, openTunnel, startHttpOrigin, waitFor } from "./test-support.ts";
import type { MemoryAudit, Origin } from "./test-support.ts";

const octet = () => 2 + Math.floor(Math.random() * 250);
const ORIGIN_IP = `127.${octet()}.${octet()}.${octet()}`;
const DEAD_IP = `127.${octet()}.${octet()}.${octet()}`;
const SILENT_IP = `127.${octet()}.${octet()}.${octet()}`;

let origin: Origin;
before(async () => {
  origin = await startHttpOrigin(ORIGIN_IP, "the-live-one");
});
after(async () => {
  await origin.close();
});

function start(names: Record<string, string[]>, dial: Dialer, audit: MemoryAudit, connectTimeoutSeconds = 10): Promise<{ proxy: EgressProxy; address: BoundAddress & { kind: "tcp" } }> {
  const proxy = createEgressProxy(
    {
      allow: Object.keys(names).map((host) => ({ host, ports: [origin.port], allowCidr: ["127.0.0.0/8"] })),
      unknownClients: "global",
      limits: { connectTimeoutSeconds },
    },
    { resolver: staticResolver(names), dial, audit },
  );
  return proxy.listen("127.0.0.1:0").then((address) => ({ proxy, address: address as BoundAddress & { kind: "tcp" } }));
}

const decisions = (audit: MemoryAudit) => audit.records.filter((record) => record.type === "egress-decision");

test("a refused first address: the request and the tunnel go to the next checked one, and the records say which", async () => {
  const dial = guardedDial();
  const audit = memoryAudit();
  const { proxy, address } = await start({ "multi.test": [DEAD_IP, ORIGIN_IP] }, dial, audit);
  try {
    const response = await httpThroughProxy(address, `http://multi.test:${origin.port}/first`);
    assert.equal(response.status, 200);
    assert.match(response.body, /hello from the-live-one GET \/first/);
    assert.deepEqual(dial.dialled, [`${DEAD_IP}:${origin.port}`, `${ORIGIN_IP}:${origin.port}`]);
    await waitFor(() => decisions(audit).length === 1);
    assert.deepEqual(decisions(audit)[0]?.addresses, [DEAD_IP, ORIGIN_IP]);
    assert.equal(decisions(audit)[0]?.decision, "allow");

    // The tunnel's record is written once it is open: it names the address it was opened to.
    const tunnel = await openTunnel(address, `multi.test:${origin.port}`);
    assert.equal(tunnel.status, 200);
    tunnel.socket.write(`GET /through-tunnel HTTP/1.1\r\nHost: multi.test:${origin.port}\r\nConnection: close\r\n\r\n`);
    let answer = "";
    tunnel.socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
    });
    await new Promise((resolve) => tunnel.socket.once("close", resolve));
    assert.match(answer, /hello from the-live-one GET \/through-tunnel/);
    await waitFor(() => decisions(audit).length === 2);
    const connect = decisions(audit)[1];
    assert.equal(connect?.method, "CONNECT");
    assert.equal(connect?.address, ORIGIN_IP);
    assert.deepEqual(connect?.addresses, [DEAD_IP, ORIGIN_IP]);
  } finally {
    await proxy.close();
  }
});

test("a first address that never answers: the next is tried after 250 ms, and the silent attempt is dropped", async () => {
  const silent: net.Socket[] = [];
  const inner = guardedDial();
  // A connection attempt that neither connects nor fails, as to an address whose packets vanish (a broken IPv6
  // route): a socket never told to connect.
  const dial: Dialer = (target) => {
    if (target.host === SILENT_IP) {
      const socket = new net.Socket();
      silent.push(socket);
      return socket;
    }
    return inner(target);
  };
  const audit = memoryAudit();
  const { proxy, address } = await start({ "slow-first.test": [SILENT_IP, ORIGIN_IP] }, dial, audit);
  try {
    const started = performance.now();
    const response = await httpThroughProxy(address, `http://slow-first.test:${origin.port}/`);
    const elapsed = performance.now() - started;
    assert.equal(response.status, 200);
    assert.ok(elapsed >= 200 && elapsed < 5000, `answered after ${Math.round(elapsed)} ms: the second attempt starts 250 ms after the first`);
    assert.equal(silent.length, 1);
    assert.equal(silent[0]?.destroyed, true, "the attempt that lost is destroyed");
  } finally {
    await proxy.close();
  }
});

test("when no address answers: 502 naming every address tried, nothing else dialled, the decision names them all", async () => {
  const dial = guardedDial();
  const audit = memoryAudit();
  const secondDead = `127.${octet()}.${octet()}.${octet()}`;
  const { proxy, address } = await start({ "all-dead.test": [DEAD_IP, secondDead] }, dial, audit);
  try {
    const response = await httpThroughProxy(address, `http://all-dead.test:${origin.port}/`);
    assert.equal(response.status, 502);
    assert.equal(response.headers["x-perimeter-error"], "upstream-refused");
    assert.match(response.body, new RegExp(`${DEAD_IP.replaceAll(".", "\\.")}, ${secondDead.replaceAll(".", "\\.")}`));
    assert.deepEqual(dial.dialled, [`${DEAD_IP}:${origin.port}`, `${secondDead}:${origin.port}`]);
    // The decision was to allow (recorded as the request went out); the failure is the client's 502.
    await waitFor(() => decisions(audit).length === 1);
    assert.deepEqual(decisions(audit)[0]?.addresses, [DEAD_IP, secondDead]);
  } finally {
    await proxy.close();
  }
});

test("a name checked out to one private address among others is still refused before any dialling", async () => {
  const dial = guardedDial();
  const audit = memoryAudit();
  const proxy = createEgressProxy(
    { allow: [{ host: "mixed.test", ports: [origin.port], allowCidr: [`${ORIGIN_IP}/32`] }], unknownClients: "global" },
    { resolver: staticResolver({ "mixed.test": [ORIGIN_IP, DEAD_IP] }), dial, audit },
  );
  const address = (await proxy.listen("127.0.0.1:0")) as BoundAddress & { kind: "tcp" };
  try {
    const response = await httpThroughProxy(address, `http://mixed.test:${origin.port}/`);
    assert.equal(response.status, 403);
    assert.equal(response.headers["x-perimeter-denied"], "private-address");
    assert.deepEqual(dial.dialled, [], "the allowed first address is not dialled either: the whole name is refused");
  } finally {
    await proxy.close();
  }
});

test("dial order: the resolver's first family, then families alternating (RFC 8305)", () => {
  const v6 = (n: number) => ({ address: `2001:db8::${n}`, family: 6 as const });
  const v4 = (n: number) => ({ address: `192.0.2.${n}`, family: 4 as const });
  assert.deepEqual(dialOrder([v6(1), v6(2), v6(3), v4(1)]), [v6(1), v4(1), v6(2), v6(3)]);
  assert.deepEqual(dialOrder([v4(1), v4(2), v6(1), v6(2)]), [v4(1), v6(1), v4(2), v6(2)]);
  assert.deepEqual(dialOrder([v4(1)]), [v4(1)]);
  assert.deepEqual(dialOrder([]), []);
});
