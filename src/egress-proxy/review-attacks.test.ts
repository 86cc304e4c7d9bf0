// Attacker's review of issue 19: the metrics listener now also serves the audit feed and, on Compose, binds the
// container's address on the agent's network (src/render/agent-reach.test.ts). A refusal there must not read the body
// it refuses (src/shared/refusal.ts): a client streaming a huge body at it is answered and cut off, not drained.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createEgressProxy } from "./index.ts";
import type { EgressProxy } from "./index.ts";
import { uploadAfterRefusal } from "../shared/testing.ts";

let proxy: EgressProxy;
let port: number;

before(async () => {
  proxy = createEgressProxy({ allow: [], unknownClients: "global" });
  const bound = await proxy.listenMetrics("127.0.0.1:0");
  assert.equal(bound.kind, "tcp");
  port = bound.kind === "tcp" ? bound.port : 0;
});
after(() => proxy.close());

test("attack: a huge body sent to the metrics listener (/metrics, /healthz, elsewhere) is answered and cut off, not read to the end", async () => {
  for (const path of ["/metrics", "/healthz", "/nowhere"]) {
    const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${1024 ** 3}\r\n\r\n`;
    const attempt = await uploadAfterRefusal({ host: "127.0.0.1", port }, head);
    assert.match(attempt.answer, /^HTTP\/1\.1 405 /, path);
    assert.ok(attempt.closed, `${path}: the metrics listener kept reading (${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB sent)`);
    assert.ok(attempt.sentBytes < 256 * 1024 * 1024, `${path}: ${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB accepted before the close`);
  }
});
