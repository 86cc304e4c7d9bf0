// freePort: below the kernel's ephemeral range (no outgoing connection of another test takes the port meanwhile), and
// never the same port twice in one process (two services of one test config once got the same one).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { freePort } from "./free-port.ts";

test("200 ports in a row: distinct, bindable, outside the ephemeral range", async () => {
  const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number) as [number, number];
  const seen = new Set<number>();
  for (let index = 0; index < 200; index += 1) {
    const port = await freePort();
    assert.ok(!seen.has(port), `port ${port} handed out twice`);
    seen.add(port);
    assert.ok(port < low || port > high, `port ${port} is inside the ephemeral range ${low}-${high}`);
  }
  const last = [...seen].at(-1) as number;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(last, "127.0.0.1", resolve);
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test("a port taken by a listener is not handed out", async () => {
  const blockers = [];
  // Hold 30 freshly chosen ports: none of the next 100 may be one of them (each is checked by binding it).
  for (let index = 0; index < 30; index += 1) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    blockers.push(server);
  }
  const held = new Set(blockers.map((server) => (server.address() as { port: number }).port));
  for (let index = 0; index < 100; index += 1) assert.ok(!held.has(await freePort()));
  for (const server of blockers) server.close();
});
