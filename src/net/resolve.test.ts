// The caching resolver (issue 3: a proxy must not wait for a DNS round trip on every request, as squid's ipcache
// avoids): answers are reused for a bounded time, concurrent lookups of one name share one query, failures are not
// remembered, and a cached answer is still checked against the deny set on every use.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cachingResolver, resolveChecked } from "./index.ts";
import type { Resolver } from "./index.ts";

function countingResolver(answers: Record<string, string[] | Error>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async lookup(host) {
      calls.push(host);
      await new Promise((resolve) => setImmediate(resolve));
      const answer = answers[host];
      if (answer === undefined || answer instanceof Error) throw answer ?? Object.assign(new Error(`${host} does not resolve`), { code: "ENOTFOUND" });
      return answer;
    },
  };
}

test("an answer is reused until its time is up, then looked up again", async () => {
  let clock = 0;
  const inner = countingResolver({ "api.example.test": ["203.0.113.7"] });
  const resolver = cachingResolver(inner, { ttlMs: 1000, now: () => clock });
  assert.deepEqual(await resolver.lookup("api.example.test"), ["203.0.113.7"]);
  clock = 999;
  assert.deepEqual(await resolver.lookup("API.example.test"), ["203.0.113.7"]);
  assert.equal(inner.calls.length, 1);
  clock = 1000;
  await resolver.lookup("api.example.test");
  assert.equal(inner.calls.length, 2);
});

test("concurrent lookups of one name share one query; each caller gets its own copy of the answer", async () => {
  const inner = countingResolver({ "a.test": ["198.51.100.1", "198.51.100.2"] });
  const resolver = cachingResolver(inner);
  const answers = await Promise.all(Array.from({ length: 10 }, () => resolver.lookup("a.test")));
  assert.equal(inner.calls.length, 1);
  (answers[0] as string[]).push("127.0.0.1");
  assert.deepEqual(await resolver.lookup("a.test"), ["198.51.100.1", "198.51.100.2"], "a caller's change does not reach the cache");
});

test("cached() gives a known answer at once (frozen: no caller can change the cache) and nothing for an unknown or expired name", async () => {
  let clock = 0;
  const inner = countingResolver({ "api.example.test": ["203.0.113.7"] });
  const resolver = cachingResolver(inner, { ttlMs: 1000, now: () => clock });
  assert.equal(resolver.cached?.("api.example.test"), undefined);
  await resolver.lookup("api.example.test");
  const known = resolver.cached?.("API.example.test");
  assert.deepEqual(known, ["203.0.113.7"]);
  assert.throws(() => (known as string[]).push("127.0.0.1"));
  clock = 1000;
  assert.equal(resolver.cached?.("api.example.test"), undefined, "expired");
  assert.equal(inner.calls.length, 1, "cached() never starts a lookup");
  // resolveChecked takes a cached answer without a lookup, and still checks it.
  clock = 500;
  const checked = await resolveChecked("api.example.test", { resolver, allowCidrs: ["203.0.113.0/24"] });
  assert.equal(checked.ok && checked.address, "203.0.113.7");
  const denied = await resolveChecked("api.example.test", { resolver });
  assert.equal(!denied.ok && denied.reason, "private-address", "203.0.113.0/24 is in the deny set (documentation range)");
  assert.equal(inner.calls.length, 1);
});

test("failures are not remembered: the next request asks again", async () => {
  const answers: Record<string, string[] | Error> = { "flaky.test": new Error("SERVFAIL") };
  const inner = countingResolver(answers);
  const resolver = cachingResolver(inner);
  await assert.rejects(resolver.lookup("flaky.test"), /SERVFAIL/);
  answers["flaky.test"] = ["192.0.2.10"];
  assert.deepEqual(await resolver.lookup("flaky.test"), ["192.0.2.10"]);
  assert.equal(inner.calls.length, 2);
});

test("the cache is bounded: past maxEntries the oldest name is forgotten", async () => {
  const inner = countingResolver({ "one.test": ["192.0.2.1"], "two.test": ["192.0.2.2"], "three.test": ["192.0.2.3"] });
  const resolver = cachingResolver(inner, { maxEntries: 2 });
  for (const name of ["one.test", "two.test", "three.test", "three.test", "two.test"]) await resolver.lookup(name);
  assert.equal(inner.calls.length, 3);
  await resolver.lookup("one.test");
  assert.equal(inner.calls.length, 4);
});

test("a cached answer is checked against the deny set on every use: a private address stays denied", async () => {
  const inner = countingResolver({ "rebind.test": ["10.0.0.5"] });
  const resolver = cachingResolver(inner);
  for (let attempt = 0; attempt < 3; attempt++) {
    const result = await resolveChecked("rebind.test", { resolver });
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.reason, "private-address");
  }
  const excepted = await resolveChecked("rebind.test", { resolver, allowCidrs: ["10.0.0.0/24"] });
  assert.equal(excepted.ok && excepted.address, "10.0.0.5");
  assert.equal(inner.calls.length, 1);
});

test("remembered address decisions equal fresh ones, and a change of exceptions or own addresses is never answered from memory", async () => {
  const { checkAddress, checkAddressRemembered } = await import("./address-policy.ts");
  const addresses = ["10.0.0.5", "127.0.0.1", "203.0.113.9", "93.184.216.34", "::ffff:10.0.0.5", "64:ff9b::a00:5", "fe80::1", "2606:4700::1111", "not-an-ip"];
  const optionSets = [{}, { allowCidrs: ["10.0.0.0/24"] }, { allowCidrs: ["10.0.0.0/24"], selfAddresses: ["10.0.0.5"] }, { selfAddresses: ["93.184.216.34"] }, { allowCidrs: ["127.0.0.0/8", "fe80::/10"] }];
  for (let pass = 0; pass < 2; pass++) {
    for (const options of optionSets) {
      for (const address of addresses) assert.deepEqual(checkAddressRemembered(address, options), checkAddress(address, options), `${address} ${JSON.stringify(options)} pass ${pass}`);
    }
  }
  assert.equal(checkAddressRemembered("10.0.0.5", { allowCidrs: ["10.0.0.0/24"] }).allowed, true);
  assert.equal(checkAddressRemembered("10.0.0.5", { allowCidrs: ["10.0.1.0/24"] }).allowed, false);
  assert.equal(checkAddressRemembered("10.0.0.5", { allowCidrs: ["10.0.0.0/24"], selfAddresses: ["10.0.0.5"] }).allowed, false);
});
