// Attacker's review (issues 15, 19): /healthz and /metrics sit on the agent's own listener and take no key. A client
// streaming a huge body at them must be answered and cut off, not drained (src/shared/refusal.ts): otherwise anyone
// who reaches the port has a free CPU and bandwidth sink in the proxy (and, in `perimeter up`, in every service).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createStandInProvider } from "./stand-in-provider.ts";
import type { StandInProvider } from "./stand-in-provider.ts";
import { startProxy } from "./test-support.ts";
import type { Harness } from "./test-support.ts";
import { uploadAfterRefusal } from "../shared/testing.ts";

const PROVIDER_KEY = "sk-upstreamprovider-review-0123456789abcdef";
const AGENT_KEY = "sk-perimeter-review-agentkey0123456789abcdefghij";

let provider: StandInProvider;
let harness: Harness;

before(async () => {
  provider = createStandInProvider({ expectedKey: PROVIDER_KEY });
  const { baseUrl } = await provider.listen();
  harness = await startProxy(
    `providers:\n  main:\n    baseUrl: ${baseUrl}\n    apiKeySecret: MAIN_KEY\n    models: [gpt-test]\n    allowPrivateAddress: true\ndefault: main/gpt-test\nclients:\n  - name: hermes\n    keySecret: AGENT_KEY`,
    { MAIN_KEY: PROVIDER_KEY, AGENT_KEY },
  );
});
after(async () => {
  await harness.close();
  await provider.close();
});

test("attack: a huge body sent to /healthz or /metrics, without a key, is answered and cut off, not read to the end", async () => {
  const url = new URL(harness.url);
  for (const path of ["/healthz", "/metrics"]) {
    const head = `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${1024 ** 3}\r\n\r\n`;
    const attempt = await uploadAfterRefusal({ host: url.hostname, port: Number(url.port) }, head);
    assert.match(attempt.answer, /^HTTP\/1\.1 \d{3} /, path);
    assert.ok(attempt.closed, `${path}: the proxy kept reading (${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB sent)`);
    assert.ok(attempt.sentBytes < 256 * 1024 * 1024, `${path}: ${(attempt.sentBytes / 1024 / 1024).toFixed(0)} MiB accepted before the close`);
  }
});
