// Attacker's review (issues 15, 19): the metrics listener (/metrics, /healthz, and the audit feed when configured)
// takes no proxy credentials. A client streaming a huge body at it must be answered and cut off, not drained
// (src/shared/refusal.ts): otherwise whoever reaches the port has a free CPU and bandwidth sink in the proxy.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { uploadAfterRefusal } from "../shared/testing.ts";
import { createEgressProxy } from "./index.ts";
import type { EgressProxy } from "./index.ts";

let proxy: EgressProxy;
let port: number;

before(async () => {
  proxy = createEgressProxy({ allow: ["example.test"] });
  await proxy.listen("127.0.0.1:0");
  const address = await proxy.listenMetrics("127.0.0.1:0");
  if (address.kind !== "tcp") throw new Error("expected a TCP metrics listener");
  port = address.port;
});
after(() => proxy.close());

test("attack: a huge body sent to /healthz, /metrics or an unknown path of the metrics listener is answered and cut off, not read to the end", async () => {
  for (const [method, path] of [["POST", "/healthz"], ["GET", "/metrics"], ["PUT", "/nothing"]] as const) {
    const head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${1024 ** 3}\r\n\r\n`;
    const attempt = await uploadAfterRefusal({ host: "127.0.0.1", port }, head);
    assert.match(attempt.answer, /^HTTP\/1\.1 \d{3} /, path);
    assert.ok(attempt.closed, `${method} ${path}: the proxy kept reading (${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB sent)`);
    assert.ok(attempt.sentBytes < 256 * 1024 * 1024, `${method} ${path}: ${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB accepted before the close`);
  }
});
