// Attacker's review (issue 19): the admin listener's /healthz and /metrics take no token, and on Compose and the VPS
// render the agent can reach that listener (src/render/agent-reach.test.ts). A client streaming a huge body at them
// must be answered and cut off, not drained (src/shared/refusal.ts), as the token-guarded routes already are.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ENV, guardYaml } from "../dashboard/testing.ts";
import { startGuard, startRecordingServer } from "./testing.ts";
import type { RecordingServer, StartedGuard } from "./testing.ts";
import { uploadAfterRefusal } from "../shared/testing.ts";

let web: RecordingServer;
let guard: StartedGuard;

before(async () => {
  web = await startRecordingServer();
  guard = await startGuard(guardYaml(web.url), ENV);
});
after(async () => {
  await guard.close();
  await web.close();
});

test("attack: a huge body sent to the admin listener's /healthz or /metrics, without a token, is answered and cut off, not read to the end", async () => {
  const admin = new URL(guard.adminUrl);
  for (const path of ["/healthz", "/metrics"]) {
    const head = `POST ${path} HTTP/1.1\r\nHost: ${admin.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${1024 ** 3}\r\n\r\n`;
    const attempt = await uploadAfterRefusal({ host: admin.hostname, port: Number(admin.port) }, head);
    assert.match(attempt.answer, /^HTTP\/1\.1 \d{3} /, path);
    assert.ok(attempt.closed, `${path}: the admin listener kept reading (${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB sent)`);
    assert.ok(attempt.sentBytes < 256 * 1024 * 1024, `${path}: ${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB accepted before the close`);
  }
});
