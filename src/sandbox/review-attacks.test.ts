// Attacker's review (issue 15): the runner's MCP listener answers /healthz without a token (a probe), and on Compose
// the MCP tool servers' containers share its network, on the VPS anything on loopback reaches its socket proxy. A
// client streaming a huge body at /healthz must be answered and cut off, not drained (src/shared/refusal.ts), as the
// token-guarded /mcp already is.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { openAuditLog } from "../audit-log/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { createSandboxServer } from "./server.ts";
import type { SandboxServer } from "./server.ts";
import type { BubblewrapBackend } from "./bubblewrap.ts";
import { testBackend, TEST_LIMITS } from "./test-support.ts";
import { uploadAfterRefusal } from "../shared/testing.ts";

let directory: string;
let audit: AuditLog;
let backend: BubblewrapBackend;
let server: SandboxServer;
let url: URL;

before(async () => {
  directory = mkdtempSync(join(tmpdir(), "perimeter-sandbox-review-"));
  audit = openAuditLog({ path: join(directory, "audit.db") });
  backend = await testBackend();
  server = createSandboxServer({
    backend,
    token: randomBytes(24).toString("hex"),
    audit,
    concurrency: 1,
    queueLimit: 1,
    quotas: { concurrentRuns: 1, runsPerMinute: 10 },
    workspaces: { ttlMs: 60_000, maxBytes: 64 * 1024, maxFiles: 5, maxPerCaller: 1, totalBytes: 1024 * 1024 },
    ceiling: { ...TEST_LIMITS, timeoutMs: 30_000 },
  });
  url = new URL((await server.listen("127.0.0.1:0")).url);
});
after(async () => {
  await server.close();
  await backend.close();
  audit.close();
  rmSync(directory, { recursive: true, force: true });
});

test("attack: a huge body sent to /healthz on the MCP listener, without a token, is answered and cut off, not read to the end", async () => {
  const head = `POST /healthz HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${1024 ** 3}\r\n\r\n`;
  const attempt = await uploadAfterRefusal({ host: url.hostname, port: Number(url.port) }, head);
  assert.match(attempt.answer, /^HTTP\/1\.1 200 /);
  assert.ok(attempt.closed, `the runner kept reading (${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB sent)`);
  assert.ok(attempt.sentBytes < 256 * 1024 * 1024, `${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB accepted before the close`);
});
