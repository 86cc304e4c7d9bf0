// Requirement (DESIGN.md, issue 3): every address in the SSRF deny set is refused in every notation, IPv4 embedded
// in IPv6 included; explicit allow-cidr exceptions are the only way through; the proxy's own address never is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkAddress, parseIpLiteral, embeddedIpv4, resolveChecked, staticResolver } from "./index.ts";

const denied = [
  "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.255.0.1",
  "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.0.0.8", "192.168.1.1", "198.18.0.1", "198.19.255.255",
  "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
  "::", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0", "ff02::1",
  "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "64:ff9b::10.0.0.1",
  "::ffff:93.184.215.14", "::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe", "2002:7f00:0001::1", "2002:a9fe:a9fe::", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::127.0.0.1",
];
for (const address of denied) {
  test(`deny set: ${address} is refused`, () => {
    const decision = checkAddress(address);
    assert.equal(decision.allowed, false, `${address} must be denied`);
  });
}

for (const address of ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "172.32.0.1", "100.128.0.1"]) {
  test(`public address ${address} is allowed`, () => {
    assert.deepEqual(checkAddress(address), { allowed: true });
  });
}

test("odd IPv4 notations are parsed before deciding", () => {
  assert.equal(parseIpLiteral("0x7f.1")?.address, "127.0.0.1");
  assert.equal(parseIpLiteral("2130706433")?.address, "127.0.0.1");
  assert.equal(parseIpLiteral("0177.0.0.1")?.address, "127.0.0.1");
  assert.equal(parseIpLiteral("127.1")?.address, "127.0.0.1");
  assert.equal(parseIpLiteral("0x7f000001")?.address, "127.0.0.1");
  assert.equal(parseIpLiteral("0251.0376.0251.0376")?.address, "169.254.169.254");
  assert.equal(parseIpLiteral("[::ffff:127.0.0.1]")?.address, "0:0:0:0:0:ffff:7f00:1");
  assert.equal(parseIpLiteral("example.com"), undefined);
  assert.equal(parseIpLiteral("1.2.3.4.5"), undefined);
  assert.equal(parseIpLiteral("256.1.1.1"), undefined);
  for (const notation of ["0x7f.1", "2130706433", "0177.0.0.1", "127.1", "0x7f000001", "0251.0376.0251.0376"]) {
    assert.equal(checkAddress(notation).allowed, false, notation);
  }
});

test("the dotted-quad fast path gives the same answer as the general parser", () => {
  for (const address of ["0.0.0.0", "127.0.0.1", "10.0.0.1", "93.184.215.14", "255.255.255.255", "1.2.3.4"]) {
    assert.deepEqual(parseIpLiteral(address), { address, family: 4 });
  }
  // Leading zeros are octal (inet_aton), so these must not take the fast path.
  assert.equal(parseIpLiteral("010.0.0.1")?.address, "8.0.0.1");
  assert.equal(parseIpLiteral("0127.0.0.1")?.address, "87.0.0.1");
  assert.equal(parseIpLiteral(" 127.0.0.1 ")?.address, "127.0.0.1");
});

test("IPv4 embedded in IPv6 is extracted (mapped, NAT64, 6to4, Teredo)", () => {
  assert.equal(embeddedIpv4("::ffff:10.1.2.3"), "10.1.2.3");
  assert.equal(embeddedIpv4("64:ff9b::7f00:1"), "127.0.0.1");
  assert.equal(embeddedIpv4("2002:c0a8:0101::1"), "192.168.1.1");
  assert.equal(embeddedIpv4("2606:4700::1"), undefined);
});

test("an allow-cidr exception lets exactly its range through; the proxy's own address never", () => {
  assert.deepEqual(checkAddress("10.43.0.10", { allowCidrs: ["10.43.0.0/16"] }), { allowed: true });
  assert.equal(checkAddress("10.44.0.10", { allowCidrs: ["10.43.0.0/16"] }).allowed, false);
  assert.deepEqual(checkAddress("::ffff:10.43.0.10", { allowCidrs: ["10.43.0.0/16"] }), { allowed: true });
  const self = checkAddress("10.43.0.10", { allowCidrs: ["10.43.0.0/16"], selfAddresses: ["10.43.0.10"] });
  assert.equal(self.allowed, false);
});

test("resolveChecked: one private address among public ones denies the name; failures are dns-failure", async () => {
  const resolver = staticResolver({ "mixed.test": ["93.184.215.14", "10.0.0.1"], "public.test": ["93.184.215.14"], "empty.test": [] });
  const mixed = await resolveChecked("mixed.test", { resolver });
  assert.equal(mixed.ok, false);
  assert.equal(!mixed.ok && mixed.reason, "private-address");
  const good = await resolveChecked("public.test", { resolver });
  assert.deepEqual(good, { ok: true, address: "93.184.215.14", family: 4, addresses: ["93.184.215.14"], candidates: [{ address: "93.184.215.14", family: 4 }] });
  // Every address comes back checked and in canonical form, in resolver order: the ones a caller may dial.
  const dual = await resolveChecked("dual.test", { resolver: staticResolver({ "dual.test": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.14"] }) });
  assert.deepEqual(dual.ok && dual.candidates, [
    { address: "2606:2800:21f:cb07:6820:80da:af6b:8b2c", family: 6 },
    { address: "93.184.215.14", family: 4 },
  ]);
  assert.equal((await resolveChecked("missing.test", { resolver })).ok, false);
  assert.equal((await resolveChecked("empty.test", { resolver })).ok, false);
  const literal = await resolveChecked("0x7f.1", { resolver });
  assert.equal(!literal.ok && literal.reason, "private-address");
});
