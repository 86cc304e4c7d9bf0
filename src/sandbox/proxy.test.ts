// Network mode "proxy": the sandbox's only way out is the egress proxy's Unix socket, reached through the in-sandbox
// forwarder on 127.0.0.1:3128, and each task's token selects its own allowlist. The "internet" here is a server the
// test runs on loopback, reached by names a static resolver maps to 127.0.0.1 (allowCidr lets the rule through the
// proxy's SSRF deny set); nothing leaves this machine.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { staticResolver } from "../net/index.ts";
import { createBubblewrapBackend } from "./bubblewrap.ts";
import type { BubblewrapBackend } from "./bubblewrap.ts";
import { createSandboxEgress } from "./egress.ts";
import type { SandboxEgress } from "./egress.ts";
import type { SandboxHostRule, SandboxTask } from "./task.ts";
import { TEST_LIMITS, text } from "./test-support.ts";

let upstream: Server;
let port: number;
let egress: SandboxEgress;
let backend: BubblewrapBackend;

before(async () => {
  upstream = createServer((request, response) => response.end(`hello from ${request.headers.host} ${request.url}`));
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  port = (upstream.address() as { port: number }).port;
  egress = await createSandboxEgress({ resolver: staticResolver({ "allowed.test": ["127.0.0.1"], "other.test": ["127.0.0.1"], "denied.test": ["127.0.0.1"] }) });
  backend = await createBubblewrapBackend({ defaults: { ...TEST_LIMITS, memoryBytes: 512 * 1024 ** 2 }, egressProxy: egress });
});

after(async () => {
  await backend.close();
  await egress.close();
  upstream.close();
});

const rule = (host: string): SandboxHostRule => ({ host, ports: [port], allowCidr: ["127.0.0.1/32"] });

const fetchScript = (urls: string[]): SandboxTask["files"] => [
  {
    path: "fetch.py",
    content: `
import os, sys, socket, urllib.request, urllib.error
if os.environ.get("PROXY_OVERRIDE"):
    proxy = os.environ["PROXY_OVERRIDE"]
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy, "https": proxy})))
for url in ${JSON.stringify(urls)}:
    try:
        print(url, urllib.request.urlopen(url, timeout=5).read().decode())
    except urllib.error.HTTPError as e:
        print(url, "http", e.code)
    except Exception as e:
        print(url, "error", type(e).__name__)
`,
  },
];

test("proxy mode: an allowlisted host is reached through the egress proxy; any other host gets 403", async () => {
  const result = await backend.run({ argv: ["python3", "fetch.py"], files: fetchScript([`http://allowed.test:${port}/x`, `http://denied.test:${port}/y`]), network: { mode: "proxy", allow: [rule("allowed.test")] } });
  assert.equal(result.exitCode, 0, text(result.stderr.data));
  assert.equal(result.limits.network, "proxy");
  const output = text(result.stdout.data);
  assert.match(output, new RegExp(`^http://allowed.test:${port}/x hello from allowed.test:${port} /x$`, "m"));
  assert.match(output, new RegExp(`^http://denied.test:${port}/y http 403$`, "m"));
});

test("proxy mode: the proxy is the only way out (a direct connection to the host's loopback service is refused)", async () => {
  const result = await backend.run({
    argv: ["python3", "-c", `import socket\ntry:\n    socket.create_connection(("127.0.0.1", ${port}), timeout=2); print("connected")\nexcept OSError as e:\n    print("refused", e.errno)\nprint(open("/proc/net/route").read().count("\\n"))`],
    network: { mode: "proxy", allow: [rule("allowed.test")] },
  });
  assert.match(text(result.stdout.data), /^refused 111$/m);
  assert.match(text(result.stdout.data), /^1$/m); // no IPv4 route, only the header line
});

test("proxy mode: each task's token carries its own allowlist, and is revoked when the task ends", async () => {
  const first = await backend.run({ script: "echo $HTTP_PROXY", network: { mode: "proxy", allow: [rule("allowed.test")] } });
  const firstProxy = text(first.stdout.data).trim();
  assert.match(firstProxy, /^http:\/\/sandbox-[0-9a-f]+:[A-Za-z0-9_-]+@127\.0\.0\.1:3128$/);
  // A concurrent task allowed only other.test cannot use allowed.test, and a finished task's token opens nothing.
  const second = await backend.run({
    argv: ["python3", "fetch.py"],
    files: fetchScript([`http://allowed.test:${port}/a`, `http://other.test:${port}/b`]),
    network: { mode: "proxy", allow: [rule("other.test")] },
  });
  const output = text(second.stdout.data);
  assert.match(output, new RegExp(`allowed.test:${port}/a http 403`));
  assert.match(output, new RegExp(`other.test:${port}/b hello from other.test`));
  const replay = await backend.run({
    argv: ["python3", "fetch.py"],
    files: fetchScript([`http://allowed.test:${port}/replay`]),
    env: { PROXY_OVERRIDE: firstProxy },
    network: { mode: "proxy", allow: [rule("other.test")] },
  });
  assert.match(text(replay.stdout.data), /replay http 407/);
});

test("proxy mode: a task in network mode 'none' does not get the proxy socket or a proxy variable", async () => {
  const result = await backend.run({ script: "ls /.perimeter 2>&1; echo \"[$HTTP_PROXY]\"" });
  assert.match(text(result.stdout.data), /No such file/);
  assert.match(text(result.stdout.data), /^\[\]$/m);
});

test("proxy mode without cgroups still starts its forwarder, and the result says memory was bounded by address space instead", async () => {
  const plain = await createBubblewrapBackend({ defaults: { ...TEST_LIMITS, memoryBytes: 256 * 1024 ** 2 }, egressProxy: egress, cgroups: "off" });
  try {
    const result = await plain.run({ argv: ["python3", "fetch.py"], files: fetchScript([`http://allowed.test:${port}/plain`]), network: { mode: "proxy", allow: [rule("allowed.test")] } });
    assert.match(text(result.stdout.data), /hello from allowed.test/);
    assert.ok(result.limits.missing.some((entry) => /address space instead/.test(entry)), result.limits.missing.join("; "));
  } finally {
    await plain.close();
  }
});
