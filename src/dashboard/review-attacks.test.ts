// Attacker's review of issue 19: whoever reaches the dashboard's port without a token. The login throttle is one
// budget for every source by design (a guessing limit; on a VPS every client is 127.0.0.1), so the agent must not
// reach the port at all: src/render/agent-reach.test.ts holds every render to that. Here: a client trickling a login
// body cannot hold a connection open (it was held as long as it sent a byte now and then).
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startPerimeter } from "./testing.ts";

test(
  "attack: a login whose body trickles in is cut off within the server's bounds, not held open forever",
  async () => {
    const perimeter = await startPerimeter();
    const { port, host } = new URL(perimeter.base);
    const socket = net.connect({ host: host.split(":")[0] ?? "127.0.0.1", port: Number(port) });
    try {
      await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      socket.on("error", () => undefined);
      const closed = new Promise<boolean>((resolve) => socket.once("close", () => resolve(true)));
      socket.write(`POST /login HTTP/1.1\r\nHost: ${host}\r\nOrigin: ${perimeter.base}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4096\r\n\r\nt`);
      // One byte every two seconds: never idle long, never done.
      const trickle = setInterval(() => socket.write("o"), 2000);
      const outcome = await Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20_000))]);
      clearInterval(trickle);
      assert.ok(outcome, "the dashboard still held the trickling login after 20 s");
    } finally {
      socket.destroy();
      await perimeter.close();
    }
  },
);
