// An HTTP upstream that is not listening yet when the guard starts (perimeter up, or systemd, starts them together):
// the guard connects within milliseconds of it listening, not a backoff step later, and says so once in its log.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { freePort } from "../shared/index.ts";
import { startGuard, startRecordingServer } from "./testing.ts";

/** A TCP forwarder on `port` to the recording server, started later: until then the port refuses connections. */
function forwardLater(port: number, target: URL): Promise<net.Server> {
  const server = net.createServer((socket) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    socket.pipe(upstream).pipe(socket);
    socket.on("error", () => upstream.destroy());
    upstream.on("error", () => socket.destroy());
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

test("an upstream that refuses connections at start is connected within milliseconds of listening", async () => {
  const recording = await startRecordingServer();
  const port = await freePort();
  const target = new URL(recording.url);
  const yaml = `
version: 1
name: t
mcp:
  pinning: { trustOnFirstUse: true }
  servers:
    web:
      url: http://127.0.0.1:${port}${target.pathname}
      tools: { allow: [echo] }
audit: { path: AUDIT_PATH }
`;
  // A backoff whose first step (1 s) is far longer than what is asserted: only the start-up path can pass.
  const env = { PATH: process.env.PATH ?? "", PERIMETER_AGENT_TOKEN: "agent-token-upstream-start-0123", PERIMETER_ADMIN_TOKEN: "admin-token-upstream-start-4567" };
  const guard = await startGuard(yaml, env, { waitReady: false, backoff: { initialMs: 1000, maxMs: 30_000 } }).catch(async (error: unknown) => {
    await recording.close();
    throw error;
  });
  let forwarder: net.Server | undefined;
  try {
    await new Promise((resolve) => setTimeout(resolve, 700));
    forwarder = await forwardLater(port, target);
    const listening = performance.now();
    await guard.guard.ready(10_000);
    const waited = performance.now() - listening;
    assert.ok(waited < 400, `connected ${waited.toFixed(0)} ms after the upstream started listening`);
    const refusals = guard.logLines.filter((line) => line.includes('"upstream-connect-error"'));
    assert.equal(refusals.length, 1, `one warning for the whole wait, not one per retry: ${refusals.length}`);
    assert.match(refusals[0] ?? "", /ECONNREFUSED/);
    assert.match(refusals[0] ?? "", /retrying every 20 ms while it starts/);
  } finally {
    await guard.close();
    await recording.close();
    forwarder?.close();
  }
});
