// Requirements (issue 7, DESIGN.md SSRF facts): a provider URL that resolves to a private address is refused unless
// the provider says allowPrivateAddress or an explicit exception covers it; the name is resolved once and the checked
// address is dialled (Node never looks the name up again); TLS verifies the provider's certificate against its host
// name (SNI = that name). Nothing here leaves loopback: names are mapped to 127.0.0.1 by an injected resolver, and the
// addresses that must be refused are never dialled. The provider is a stand-in speaking OpenAI's wire format over TLS.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { staticResolver } from "../net/index.ts";
import type { Resolver } from "../net/index.ts";
import { createStandInProvider } from "./stand-in-provider.ts";
import type { StandInProvider } from "./stand-in-provider.ts";
import { eventually, post, startProxy, temporaryDirectory } from "./test-support.ts";

const AGENT_KEY = "sk-perimeter-ssrf-test-0123456789abcdefghijklm";
const body = { model: "remote/gpt-test", max_tokens: 5, messages: [{ role: "user", content: "hi" }] };

function certificateFor(name: string, ...more: string[]): { key: string; cert: string } {
  const directory = temporaryDirectory();
  const keyFile = join(directory, "key.pem");
  const certFile = join(directory, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", `/CN=${name}`, "-addext", `subjectAltName=${[name, ...more].map((entry) => `DNS:${entry}`).join(",")}`], { stdio: "ignore" });
  return { key: readFileSync(keyFile, "utf8"), cert: readFileSync(certFile, "utf8") };
}

function countingResolver(table: Record<string, string[]>): Resolver & { calls: () => number } {
  const inner = staticResolver(table);
  let calls = 0;
  return {
    lookup(host) {
      calls += 1;
      return inner.lookup(host);
    },
    calls: () => calls,
  };
}

const clients = `clients:\n  - { name: hermes, keySecret: AGENT_KEY }`;

describe("provider addresses and TLS (stand-in provider over HTTPS on loopback)", () => {
  let provider: StandInProvider;
  let wrongName: StandInProvider;
  let port: number;
  let wrongPort: number;
  let tls: { key: string; cert: string };
  let otherTls: { key: string; cert: string };

  before(async () => {
    tls = certificateFor("provider.test", "vllm.local.test");
    otherTls = certificateFor("other.test");
    provider = createStandInProvider({ tls });
    wrongName = createStandInProvider({ tls: otherTls });
    port = (await provider.listen()).port;
    wrongPort = (await wrongName.listen()).port;
  });

  after(async () => {
    await Promise.all([provider.close(), wrongName.close()]);
  });

  test("a provider name resolving to a private address is refused (502 upstream_address_refused) and never dialled", async () => {
    const connections = provider.connections();
    const harness = await startProxy(`providers:\n  remote: { baseUrl: "https://provider.test:${port}/v1", models: [gpt-test] }\n${clients}`, { AGENT_KEY }, {
      resolver: staticResolver({ "provider.test": ["127.0.0.1"] }),
      ca: tls.cert,
    });
    try {
      const response = await post(harness.url, "/v1/chat/completions", body, AGENT_KEY);
      assert.equal(response.status, 502);
      assert.equal(response.json.error?.code, "upstream_address_refused");
      assert.match(String(response.json.error?.message), /provider\.test resolves to 127\.0\.0\.1 \(loopback.*allowPrivateAddress/i);
      assert.equal(provider.connections(), connections, "the refused address was never dialled");
      // The outcome settles the committed decision after the answer: wait for it.
      await eventually(() => harness.records().at(-1)?.data.reason === "upstream-refused");
    } finally {
      await harness.close();
    }
  });

  test("literal private addresses in any notation are refused: 127.0.0.1, 2130706433, [::ffff:127.0.0.1], 0x7f.1", async () => {
    for (const host of ["127.0.0.1", "2130706433", "[::ffff:127.0.0.1]", "0x7f.1"]) {
      const connections = provider.connections();
      const harness = await startProxy(`providers:\n  remote: { baseUrl: "https://${host}:${port}/v1", models: [gpt-test] }\n${clients}`, { AGENT_KEY }, { ca: tls.cert });
      try {
        const response = await post(harness.url, "/v1/chat/completions", body, AGENT_KEY);
        assert.equal(response.status, 502, host);
        assert.equal(response.json.error?.code, "upstream_address_refused", host);
        assert.equal(provider.connections(), connections, `${host} was dialled`);
      } finally {
        await harness.close();
      }
    }
  });

  test("one denied address among the answers denies the name (169.254.169.254 next to an excepted loopback)", async () => {
    const harness = await startProxy(`providers:\n  remote: { baseUrl: "https://provider.test:${port}/v1", models: [gpt-test] }\n${clients}`, { AGENT_KEY }, {
      resolver: staticResolver({ "provider.test": ["127.0.0.1", "169.254.169.254"] }),
      allowCidrs: ["127.0.0.1/32"],
      ca: tls.cert,
    });
    try {
      const response = await post(harness.url, "/v1/chat/completions", body, AGENT_KEY);
      assert.equal(response.status, 502);
      assert.match(String(response.json.error?.message), /169\.254\.169\.254/);
    } finally {
      await harness.close();
    }
  });

  test("with an explicit exception the name is resolved once, the checked address dialled, and TLS verified with SNI = the provider's name", async () => {
    const resolver = countingResolver({ "provider.test": ["127.0.0.1"] });
    const harness = await startProxy(`providers:\n  remote: { baseUrl: "https://provider.test:${port}/v1", models: [gpt-test] }\n${clients}`, { AGENT_KEY }, {
      resolver,
      allowCidrs: ["127.0.0.1/32"],
      ca: tls.cert,
    });
    try {
      for (let index = 0; index < 3; index++) {
        const response = await post(harness.url, "/v1/chat/completions", body, AGENT_KEY);
        assert.equal(response.status, 200);
      }
      // provider.test is in no hosts file or DNS: had Node resolved it itself, the connection would have failed.
      assert.equal(resolver.calls(), 1, "resolved once (cached), never by Node");
      assert.equal(provider.requests.at(-1)?.servername, "provider.test");
      assert.equal(provider.requests.at(-1)?.headers.host, `provider.test:${port}`);
    } finally {
      await harness.close();
    }
  });

  test("a provider name with several checked addresses: a refused first one falls over to the next (Happy Eyeballs)", async () => {
    const dead = `127.${2 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
    const resolver = countingResolver({ "provider.test": [dead, "127.0.0.1"] });
    const harness = await startProxy(`providers:\n  remote: { baseUrl: "https://provider.test:${port}/v1", models: [gpt-test] }\n${clients}`, { AGENT_KEY }, {
      resolver,
      allowCidrs: ["127.0.0.0/8"],
      ca: tls.cert,
    });
    try {
      const before = provider.requests.length;
      const response = await post(harness.url, "/v1/chat/completions", body, AGENT_KEY);
      assert.equal(response.status, 200, JSON.stringify(response.json));
      assert.equal(provider.requests.length, before + 1);
      assert.equal(provider.requests.at(-1)?.servername, "provider.test");
      assert.equal(resolver.calls(), 1, "resolved once, by us");
    } finally {
      await harness.close();
    }
  });

  test("a certificate for another name is rejected (verification is on, against the provider's name)", async () => {
    const harness = await startProxy(`providers:\n  remote: { baseUrl: "https://provider.test:${wrongPort}/v1", models: [gpt-test] }\n${clients}`, { AGENT_KEY }, {
      resolver: staticResolver({ "provider.test": ["127.0.0.1"] }),
      allowCidrs: ["127.0.0.1/32"],
      ca: [tls.cert, otherTls.cert],
    });
    try {
      const response = await post(harness.url, "/v1/chat/completions", body, AGENT_KEY);
      assert.equal(response.status, 502);
      assert.equal(response.json.error?.code, "upstream_unavailable");
      assert.match(String(response.json.error?.message), /ERR_TLS_CERT_ALTNAME_INVALID/);
      assert.equal(wrongName.requests.length, 0);
    } finally {
      await harness.close();
    }
  });

  test("allowPrivateAddress: true is the per-provider exception (an in-cluster vLLM), and a refused provider fails over to it", async () => {
    const harness = await startProxy(
      `providers:
  remote: { baseUrl: "https://provider.test:${port}/v1", models: [gpt-test], failoverTo: local }
  local: { baseUrl: "https://vllm.local.test:${port}/v1", models: [gpt-test], allowPrivateAddress: true }
${clients}`,
      { AGENT_KEY },
      { resolver: staticResolver({ "provider.test": ["10.0.0.1"], "vllm.local.test": ["127.0.0.1"] }), ca: tls.cert },
    );
    try {
      const direct = await post(harness.url, "/v1/chat/completions", { ...body, model: "local/gpt-test" }, AGENT_KEY);
      assert.equal(direct.status, 200);
      assert.equal(provider.requests.at(-1)?.servername, "vllm.local.test");
      const failedOver = await post(harness.url, "/v1/chat/completions", body, AGENT_KEY);
      // remote resolves to 10.0.0.1: refused without dialling, and the request moves to local.
      assert.equal(failedOver.status, 200);
      await eventually(() => JSON.stringify(harness.records().at(-1)?.data.failovers) === JSON.stringify(["remote->local"]));
    } finally {
      await harness.close();
    }
  });
});
