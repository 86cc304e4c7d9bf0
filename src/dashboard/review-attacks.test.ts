// Attacker's review of issue 19: on the VPS render the dashboard is a loopback unit and the agent's unit may dial any
// loopback port (src/render/agent-reach.test.ts). Without the admin token the agent cannot log in, but the login
// throttle is one budget for every source, so ten wrong logins a minute from the agent lock the operator out of the
// dashboard, the approval channel, for as long as the agent keeps it up.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { ENV, HttpSession, startPerimeter } from "./testing.ts";

test(
  "attack: an agent that reaches the dashboard's port cannot lock the operator out with wrong logins",
  { todo: "handed over with the VPS finding (render/vps: the agent's unit must not reach 127.0.0.1:8720); the throttle itself is one global budget by design (session.ts) and an exemption for the right token would undo it as a guessing limit" },
  async () => {
    const perimeter = await startPerimeter();
    try {
      const agent = new HttpSession(perimeter.base);
      // Not a browser: it writes whatever Origin the check wants.
      for (let attempt = 0; attempt < 10; attempt += 1) assert.equal((await agent.login(`wrong-guess-${attempt}-0123456789`)).status, 401);
      const operator = new HttpSession(perimeter.base);
      const answer = await operator.login(ENV.PERIMETER_ADMIN_TOKEN);
      assert.equal(answer.status, 303, `the operator's login with the right token was answered ${answer.status}`);
    } finally {
      await perimeter.close();
    }
  },
);

test(
  "attack: a login whose body trickles in is cut off within the server's bounds, not held open forever",
  { todo: "handed over (dashboard, mid-refactor in src/dashboard/state.ts): server.requestTimeout is 0 for the live tails and readForm calls readBoundedBody without timeoutMs, so an unauthenticated client holds a connection as long as it sends a byte now and then (pre-existing; the agent reaches the port on the VPS render)" },
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
