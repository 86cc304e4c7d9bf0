// Requirement (issue 12, item 9; DESIGN.md "the proxy's own addresses"): a destination that is one of the service's
// own addresses is refused even under an allowCidr covering it, whatever the notation: addresses are compared as
// values (IPv4-mapped and -compatible IPv6, zero-compressed or full forms, zone ids), an own CIDR covers every
// address in it, and the unspecified address counts as the loopback address the kernel connects it to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkAddress, isUnspecifiedAddress, resolveChecked, staticResolver } from "./index.ts";

const loopbackException = { allowCidrs: ["127.0.0.0/8", "0.0.0.0/8", "::/128", "::1/128"], selfAddresses: ["127.0.0.1"] };

for (const notation of [
  "127.0.0.1",
  "::ffff:127.0.0.1",
  "::ffff:7f00:1",
  "0:0:0:0:0:ffff:7f00:1",
  "0000:0000:0000:0000:0000:FFFF:7F00:0001",
  "[::ffff:127.0.0.1]",
  "::127.0.0.1",
  "0x7f.1",
  "2130706433",
  "0.0.0.0",
  "::ffff:0.0.0.0",
]) {
  test(`own address: ${notation} is the proxy listening on 127.0.0.1, refused despite the allowCidr`, () => {
    const decision = checkAddress(notation, loopbackException);
    assert.equal(decision.allowed, false, notation);
    assert.equal(!decision.allowed && decision.reason, "proxy-address", notation);
  });
}

test("own address: the listener's own text may be any notation too (::ffff:127.0.0.1 listening is 127.0.0.1)", () => {
  for (const self of ["::ffff:127.0.0.1", "0:0:0:0:0:ffff:7f00:1", "::ffff:7f00:1"]) {
    const decision = checkAddress("127.0.0.1", { allowCidrs: ["127.0.0.0/8"], selfAddresses: [self] });
    assert.equal(!decision.allowed && decision.reason, "proxy-address", self);
  }
});

test("own address: IPv6 forms compare as values (zero compression, case, zone ids)", () => {
  const options = { allowCidrs: ["fe80::/10", "fd00::/8", "::1/128", "::/128"], selfAddresses: ["fe80::1%eth0", "FD00:0:0:0::5", "::1"] };
  for (const notation of ["fe80::1", "fe80:0:0:0:0:0:0:1", "FE80::1%lo", "fe80::0:1%2", "fd00::5", "fd00:0000::0005", "::1", "0:0:0:0:0:0:0:1", "::"]) {
    const decision = checkAddress(notation, options);
    assert.equal(!decision.allowed && decision.reason, "proxy-address", notation);
  }
  // Neighbours are not the proxy: the allowCidr lets them through.
  for (const notation of ["fe80::2", "fd00::6"]) assert.deepEqual(checkAddress(notation, options), { allowed: true }, notation);
});

test("own address: an own CIDR (a wildcard listener's loopback network) covers every address in it", () => {
  const options = { allowCidrs: ["127.0.0.0/8"], selfAddresses: ["127.0.0.0/8", "::1/128"] };
  for (const notation of ["127.0.0.1", "127.5.6.7", "::ffff:127.5.6.7", "127.255.255.254"]) {
    assert.equal(checkAddress(notation, options).allowed, false, notation);
  }
});

test("own address: a public own address (a wildcard listener on a public interface) is refused; others are not", () => {
  const options = { selfAddresses: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"] };
  for (const notation of ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "2606:2800:21f:cb07:6820:80da:AF6B:8B2C"]) {
    assert.equal(checkAddress(notation, options).allowed, false, notation);
  }
  assert.deepEqual(checkAddress("93.184.215.15", options), { allowed: true });
  // The mapped form of a public address is denied as private whatever it maps to: it never reaches the proxy anyway.
  assert.equal(checkAddress("::ffff:93.184.215.14", options).allowed, false);
});

test("own address: a private own address without an allowCidr is refused as private (the deny set speaks first)", () => {
  const decision = checkAddress("::ffff:127.0.0.1", { selfAddresses: ["127.0.0.1"] });
  assert.equal(!decision.allowed && decision.reason, "private-address");
});

test("own address: a malformed own address is a programming error, not a silent pass", () => {
  assert.throws(() => checkAddress("93.184.215.14", { selfAddresses: ["not-an-address"] }), /selfAddresses: "not-an-address"/);
  assert.throws(() => checkAddress("93.184.215.14", { selfAddresses: ["10.0.0.0/33"] }), /is not an address or CIDR/);
});

test("own address through resolveChecked: a name resolving to ::ffff:127.0.0.1 is proxy-address under a loopback allowCidr", async () => {
  const resolver = staticResolver({ "mapped.test": ["::ffff:127.0.0.1"], "other.test": ["::ffff:127.0.0.9"] });
  const mapped = await resolveChecked("mapped.test", { resolver, ...loopbackException });
  assert.equal(!mapped.ok && mapped.reason, "proxy-address");
  const other = await resolveChecked("other.test", { resolver, ...loopbackException });
  assert.equal(other.ok, true, "another loopback address is not the proxy's");
});

test("a wildcard listener is recognised in any notation (its every local address is then the proxy's own)", () => {
  for (const wildcard of ["0.0.0.0", "::", "0:0:0:0:0:0:0:0", "::ffff:0.0.0.0", "::ffff:0:0", "[::]"]) assert.equal(isUnspecifiedAddress(wildcard), true, wildcard);
  for (const specific of ["127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.1", "localhost"]) assert.equal(isUnspecifiedAddress(specific), false, specific);
});
