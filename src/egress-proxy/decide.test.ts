// Requirement (issue 3): the decision is a pure function of the request and the policy — rule shapes (exact, *.suffix,
// .suffix), ports (443 unless a rule says otherwise), per-client and global rules, identity by token (Basic or Bearer)
// before source address, unknown clients under the default policy, addresses decided as addresses — and a policy is
// validated whole when it is compiled.
import { test } from "node:test";
import assert from "node:assert/strict";
import { compilePolicy, credentialsToken, decide, PolicyError, policyFromConfig } from "./index.ts";
import type { EgressDecision, EgressRequest } from "./index.ts";
import { parseConfig } from "../config/index.ts";

const policy = compilePolicy({
  allow: ["api.example.com", "*.cdn.example.net", ".example.org", { host: "plain.example.com", ports: [80] }],
  clients: [
    { name: "hermes", token: "hermes-token-0123456789", allow: [{ host: "pypi.org", requireSni: false }, "pypi.org:8443"] },
    { name: "builder", sources: ["10.42.0.0/16", "fd00:42::/64"], allow: ["registry.example.com"] },
  ],
  unknownClients: "global",
});

const request = (host: string, port = 443, extra: Partial<EgressRequest> = {}): EgressRequest => ({ kind: "connect", host, port, sourceAddress: "192.0.2.10", ...extra });
const reason = (decision: EgressDecision) => (decision.allow ? "allow" : decision.reason);

test("exact, *.suffix (subdomains only) and .suffix (apex and subdomains) match as documented", () => {
  assert.equal(reason(decide(request("api.example.com"), policy)), "allow");
  assert.equal(reason(decide(request("www.api.example.com"), policy)), "not-allowlisted");
  assert.equal(reason(decide(request("img.cdn.example.net"), policy)), "allow");
  assert.equal(reason(decide(request("a.b.cdn.example.net"), policy)), "allow");
  assert.equal(reason(decide(request("cdn.example.net"), policy)), "not-allowlisted", "*.suffix excludes the apex");
  assert.equal(reason(decide(request("example.org"), policy)), "allow", ".suffix includes the apex");
  assert.equal(reason(decide(request("www.example.org"), policy)), "allow");
  assert.equal(reason(decide(request("evilexample.org"), policy)), "not-allowlisted", "a suffix matches at a label boundary");
  assert.equal(reason(decide(request("API.Example.COM."), policy)), "allow", "case and a trailing dot do not matter");
});

test("ports default to 443 only; port 80 only where a rule says so", () => {
  assert.equal(reason(decide(request("api.example.com", 80), policy)), "port-not-allowed");
  assert.equal(reason(decide(request("plain.example.com", 80), policy)), "allow");
  assert.equal(reason(decide(request("plain.example.com", 443), policy)), "port-not-allowed");
});

test("a client gets the global rules plus its own; other clients do not get its rules", () => {
  const asHermes = { proxyAuthorization: "Bearer hermes-token-0123456789" };
  assert.equal(reason(decide(request("pypi.org", 443, asHermes), policy)), "allow");
  assert.equal(reason(decide(request("api.example.com", 443, asHermes), policy)), "allow");
  assert.equal(reason(decide(request("pypi.org"), policy)), "not-allowlisted");
  const decision = decide(request("pypi.org", 443, asHermes), policy);
  assert.equal(decision.allow && decision.client, "hermes");
  assert.equal(decision.allow && decision.requireSni, false, "requireSni: false on the only matching rule");
  const other = decide(request("pypi.org", 8443, asHermes), policy);
  assert.equal(other.allow && other.requireSni, true, "the rule for port 8443 keeps the default");
});

test("identity: Bearer or Basic (token as password, or as user when there is no password), then source CIDR", () => {
  assert.equal(credentialsToken("Bearer abc"), "abc");
  assert.equal(credentialsToken(`Basic ${Buffer.from("hermes:tok").toString("base64")}`), "tok");
  assert.equal(credentialsToken(`Basic ${Buffer.from("tok:").toString("base64")}`), "tok");
  assert.equal(credentialsToken(`basic ${Buffer.from("tok").toString("base64")}`), "tok");
  assert.equal(credentialsToken("Digest x"), undefined);
  const bySource = decide(request("registry.example.com", 443, { sourceAddress: "10.42.7.9" }), policy);
  assert.equal(bySource.allow && bySource.client, "builder");
  const bySourceV6 = decide(request("registry.example.com", 443, { sourceAddress: "fd00:42::9" }), policy);
  assert.equal(bySourceV6.allow && bySourceV6.client, "builder");
  const mapped = decide(request("registry.example.com", 443, { sourceAddress: "::ffff:10.42.7.9" }), policy);
  assert.equal(mapped.allow && mapped.client, "builder", "a listener on [::] reports IPv4 clients IPv4-mapped; they still match IPv4 sources");
  const tokenWins = decide(request("registry.example.com", 443, { sourceAddress: "10.42.7.9", proxyAuthorization: "Bearer hermes-token-0123456789" }), policy);
  assert.equal(tokenWins.client, "hermes", "credentials win over the source address");
  assert.equal(reason(decide(request("api.example.com", 443, { proxyAuthorization: "Bearer wrong-token-0123456789" }), policy)), "bad-credentials");
});

test("unknown clients get the global list, or nothing under unknownClients: deny", () => {
  assert.equal(reason(decide(request("api.example.com"), policy)), "allow");
  const strict = compilePolicy({ allow: ["api.example.com"], clients: [{ name: "a", token: "a-token-0123456789abc" }], unknownClients: "deny" });
  assert.equal(reason(decide(request("api.example.com"), strict)), "unknown-client");
  assert.equal(reason(decide(request("api.example.com"), compilePolicy({ allow: ["api.example.com"] }))), "unknown-client", "deny is the default");
});

test("addresses in any notation are decided as addresses: private ones as private-address, public ones never match a rule", () => {
  for (const host of ["127.0.0.1", "0x7f.1", "2130706433", "::ffff:127.0.0.1", "169.254.169.254"]) {
    assert.equal(reason(decide(request(host), policy)), "private-address", host);
  }
  assert.equal(reason(decide(request("93.184.215.14"), policy)), "not-allowlisted");
  assert.equal(reason(decide(request("bad host"), policy)), "invalid-host");
  assert.equal(reason(decide(request("-bad-.example"), policy)), "invalid-host");
  assert.equal(reason(decide(request("a..example"), policy)), "invalid-host");
});

test("every refusal message says what was refused and what to add", () => {
  const refused = decide(request("evil.example", 443, { proxyAuthorization: "Bearer hermes-token-0123456789" }), policy);
  assert.equal(refused.allow, false);
  assert.match(refused.allow ? "" : refused.message, /^CONNECT evil\.example:443 refused: evil\.example is not allowlisted for client "hermes"; add "evil\.example" to egress\.allow \(or client "hermes"'s allow list\)/);
  const port = decide(request("api.example.com", 8080), policy);
  assert.match(port.allow ? "" : port.message, /allowlisted for port 443 only; add "api\.example\.com:8080"/);
});

test("the same input always gives the same decision (pure)", () => {
  const input = request("img.cdn.example.net");
  assert.deepEqual(decide(input, policy), decide(input, policy));
});

test("compilePolicy rejects the whole policy and lists every problem", () => {
  assert.throws(
    () =>
      compilePolicy({
        allow: ["*", "*.co.uk", "10.0.0.1", { host: "ok.example.com", allowCidr: ["10.0.0.0/33"] }],
        clients: [
          { name: "a", token: "short" },
          { name: "b" },
          { name: "c", token: "same-token-0123456789" },
          { name: "c", token: "same-token-0123456789" },
          { name: "unknown", token: "unknown-token-0123456789" },
        ],
        limits: { tunnelsTotal: 0 },
      }),
    (error: unknown) => {
      assert.ok(error instanceof PolicyError);
      const text = error.problems.join("\n");
      for (const expected of [/"\*" is too broad/, /co\.uk is a public suffix/, /IP literal/, /not a CIDR/, /at least 16 characters/, /give it a token/, /defined twice/, /same token/, /tunnelsTotal/, /"unknown" is what the proxy calls unidentified clients/]) {
        assert.match(text, expected);
      }
      return true;
    },
  );
});

test("policyFromConfig reads tokens from the named variables; with no clients the global list applies to everyone", () => {
  const config = parseConfig("version: 1\nname: hermes\negress:\n  allow: [api.telegram.org]\n");
  const open = policyFromConfig(config.egress, {});
  assert.equal(open.policy.unknownClients, "global");
  assert.equal(open.notes.length, 1);
  const withClients = parseConfig("version: 1\nname: hermes\negress:\n  clients:\n    - { name: hermes, tokenSecret: EGRESS_TOKEN, allow: [pypi.org] }\n");
  const { policy: input } = policyFromConfig(withClients.egress, { EGRESS_TOKEN: "from-the-environment-0123" }, { allow: ["extra.example.com"], allowCidrs: ["10.43.0.0/16"] });
  const compiled = compilePolicy(input);
  assert.equal(compiled.unknownClients, "deny");
  assert.equal(reason(decide(request("pypi.org", 443, { proxyAuthorization: "Bearer from-the-environment-0123" }), compiled)), "allow");
  assert.deepEqual(compiled.rules.map((rule) => [rule.host, rule.allowCidrs]), [["extra.example.com", ["10.43.0.0/16"]]]);
  assert.deepEqual(compiled.clients[0]?.rules[0]?.allowCidrs, ["10.43.0.0/16"], "--allow-cidr applies to every rule");
  assert.throws(() => policyFromConfig(withClients.egress, {}), /EGRESS_TOKEN/);
});
