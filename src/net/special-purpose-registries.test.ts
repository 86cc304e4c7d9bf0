// Requirement (issue 12, item 9): the SSRF deny set covers every block the IANA special-purpose registries mark as not
// globally reachable (False, N/A, or a terminated allocation), first, middle and last address, in every form that
// reaches the same IPv4 host; the blocks they mark globally reachable, outside every such block, stay reachable.
// Containment here is judged by node:net's BlockList, not by the code under test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BlockList, isIP } from "node:net";
import { checkAddress } from "./index.ts";
import { IPV4_SPECIAL_PURPOSE, IPV6_SPECIAL_PURPOSE } from "./special-purpose-registries.ts";
import type { SpecialPurposeBlock } from "./special-purpose-registries.ts";

function toValue(address: string): bigint {
  if (isIP(address) === 4) return address.split(".").reduce((sum, part) => (sum << 8n) | BigInt(part), 0n);
  const [head = "", tail] = address.split("::");
  const headParts = head === "" ? [] : head.split(":");
  const tailParts = tail === undefined || tail === "" ? [] : tail.split(":");
  const parts = tail === undefined ? headParts : [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill("0"), ...tailParts];
  return parts.reduce((sum, part) => (sum << 16n) | BigInt(parseInt(part, 16)), 0n);
}

function toText(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
  const parts: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) parts.push(((value >> shift) & 0xffffn).toString(16));
  return parts.join(":");
}

/** First, middle and last address of a block, as text. */
function samples(block: string): { family: 4 | 6; addresses: string[] } {
  const [network = "", bitsText = ""] = block.split("/");
  const family = isIP(network) === 4 ? 4 : 6;
  const hostBits = BigInt((family === 4 ? 32 : 128) - Number(bitsText));
  const first = toValue(network);
  const last = first | ((1n << hostBits) - 1n);
  const middle = first + ((last - first + 1n) >> 1n);
  return { family, addresses: [...new Set([first, middle, last])].map((value) => toText(value, family)) };
}

const rows: readonly SpecialPurposeBlock[] = [...IPV4_SPECIAL_PURPOSE, ...IPV6_SPECIAL_PURPOSE];
const notReachable = rows.filter((row) => row.globallyReachable !== true);
// One list per family: a BlockList matches an IPv4 address against IPv4-mapped IPv6 rules too, so ::ffff:0:0/96
// would otherwise count every IPv4 block as inside a non-reachable one.
const notReachableLists = { 4: new BlockList(), 6: new BlockList() };
for (const row of notReachable) {
  const [network = "", bits = ""] = row.block.split("/");
  const family = isIP(network) === 4 ? 4 : 6;
  notReachableLists[family].addSubnet(network, Number(bits), family === 4 ? "ipv4" : "ipv6");
}

test("the registry tables are well formed: every block is a CIDR with its network address, none twice", () => {
  const seen = new Set<string>();
  for (const row of rows) {
    assert.match(row.block, /^[0-9a-f.:]+\/\d{1,3}$/, row.block);
    const { family, addresses } = samples(row.block);
    assert.equal(`${toText(toValue(addresses[0] as string), family)}`, toText(toValue(row.block.split("/")[0] as string), family), `${row.block} starts at its network address`);
    const [network = "", bits = ""] = row.block.split("/");
    const hostBits = BigInt((family === 4 ? 32 : 128) - Number(bits));
    assert.equal(toValue(network) & ((1n << hostBits) - 1n), 0n, `${row.block} has no host bits set`);
    assert.ok(!seen.has(row.block), `${row.block} appears once`);
    seen.add(row.block);
  }
  assert.equal(IPV4_SPECIAL_PURPOSE.length, 26);
  assert.equal(IPV6_SPECIAL_PURPOSE.length, 25);
});

for (const row of notReachable) {
  test(`registry: ${row.block} (${row.name}, ${row.rfc}; globally reachable: ${String(row.globallyReachable)}) is denied, first, middle and last`, () => {
    const { family, addresses } = samples(row.block);
    for (const address of addresses) {
      const forms = family === 4 ? [address, `::ffff:${address}`, `64:ff9b::${address}`] : [address];
      for (const form of forms) {
        const decision = checkAddress(form);
        assert.equal(decision.allowed, false, `${form} (in ${row.block}) must be denied`);
        assert.equal(!decision.allowed && decision.reason, "private-address", form);
      }
    }
  });
}

for (const row of rows.filter((entry) => entry.globallyReachable === true)) {
  const { family, addresses } = samples(row.block);
  const inside = addresses.every((address) => notReachableLists[family].check(address, family === 4 ? "ipv4" : "ipv6"));
  if (inside) {
    // The registry lets a more specific row be reachable inside a block that is not (anycast service addresses in
    // 192.0.0.0/24 and 2001::/23). The deny set keeps the whole enclosing block: an agent has no business with them,
    // and an operator who needs one writes an allowCidr for it.
    test(`registry: ${row.block} (${row.name}) is reachable but inside a non-reachable block, so denied`, () => {
      for (const address of addresses) assert.equal(checkAddress(address).allowed, false, address);
    });
  } else if (row.block === "64:ff9b::/96") {
    test("registry: 64:ff9b::/96 (NAT64 well-known prefix) is reachable by the registry, denied as an embedded-IPv4 form", () => {
      for (const address of addresses) assert.equal(checkAddress(address).allowed, false, address);
    });
  } else {
    test(`registry: ${row.block} (${row.name}) is globally reachable and outside every non-reachable block, so allowed`, () => {
      for (const address of addresses) assert.deepEqual(checkAddress(address), { allowed: true }, address);
    });
  }
}

test("beyond the registries: multicast, deprecated site-local and the embedded-IPv4 forms are denied", () => {
  for (const block of ["224.0.0.0/4", "ff00::/8", "fec0::/10", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96"]) {
    for (const address of samples(block).addresses) assert.equal(checkAddress(address).allowed, false, `${address} (in ${block})`);
  }
});
