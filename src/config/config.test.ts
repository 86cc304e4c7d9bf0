// Requirements proved here (issue 2, "perimeter.yaml"): a strict schema where typos get "did you mean", secrets
// only by reference, pinned images, broad egress refused, inconsistent references refused, and every error naming
// file, line and column.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseConfig, parseHostRule, ruleMatchesHost, splitHostPort, configJsonSchema, expandPlaceholders, MissingSecretError } from "./index.ts";

const minimal = "version: 1\nname: hermes\n";

function problemsOf(text: string) {
  try {
    parseConfig(text, "test.yaml");
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail("config was accepted but should have been refused");
}

test("a minimal config loads with secure defaults", () => {
  const config = parseConfig(minimal);
  assert.equal(config.agent.approvals, "manual");
  assert.equal(config.agent.terminal, "sandbox");
  assert.equal(config.agent.allowPrivateUrls, false);
  assert.equal(config.sandbox.network, "none");
  assert.equal(config.egress.unknownClients, "deny");
  assert.equal(config.mcp.listen, "127.0.0.1:8700");
  assert.deepEqual(config.mcp.agents, [{ name: "hermes", tokenSecret: "PERIMETER_AGENT_TOKEN", refusals: "error" }]);
});

test("a typo is an error with a suggestion, at the key's line and column", () => {
  const problems = problemsOf(`${minimal}agent:\n  aprovals: manual\n`);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!.message, /unknown key "aprovals" — did you mean "approvals"\?/);
  assert.equal(problems[0]!.line, 4);
  assert.equal(problems[0]!.column, 3);
  assert.equal(problems[0]!.file, "test.yaml");
});

test("typos deep inside records are found too", () => {
  const problems = problemsOf(`${minimal}mcp:\n  servers:\n    gh:\n      command: [x]\n      tools: { allow: ["*"], aprove: [] }\n`);
  assert.match(problems[0]!.message, /did you mean "approve"/);
  assert.equal(problems[0]!.line, 7);
});

test("an enum typo suggests the closest value", () => {
  const problems = problemsOf(`${minimal}sandbox:\n  backend: bubblewrp\n`);
  assert.match(problems[0]!.message, /did you mean "bubblewrap"/);
});

test("a literal token where a secret name belongs is refused without echoing it", () => {
  const token = "123456789:AAExabcdefghijklmnopqrstuvwxyz012345";
  const problems = problemsOf(`${minimal}agent:\n  platforms:\n    telegram: { allowedUsers: ["1"], tokenSecret: "${token}" }\n`);
  assert.match(problems[0]!.message, /literal secret/);
  assert.ok(!problems[0]!.message.includes(token), "the message must not repeat the secret");
});

test("a credential pasted into an MCP header is refused; a ${VAR} reference is accepted", () => {
  const bad = problemsOf(`${minimal}mcp:\n  servers:\n    gh:\n      url: https://x.example/mcp\n      headers: { Authorization: "Bearer ghp_abcdefghijklmnopqrstuvwxyz0123456789" }\n`);
  assert.match(bad[0]!.message, /GitHub token/);
  const plain = problemsOf(`${minimal}mcp:\n  servers:\n    gh:\n      url: https://x.example/mcp\n      headers: { Authorization: "Bearer hunter2" }\n`);
  assert.match(plain[0]!.message, /placeholder/);
  const good = parseConfig(`${minimal}mcp:\n  servers:\n    gh:\n      url: https://x.example/mcp\n      headers: { Authorization: "Bearer \${GITHUB_TOKEN}" }\n`);
  assert.equal(good.mcp.servers.gh!.headers.Authorization, "Bearer ${GITHUB_TOKEN}");
});

test("images must carry a tag or digest other than latest", () => {
  assert.match(problemsOf(`${minimal}agent: { image: "nousresearch/hermes-agent:latest" }\n`)[0]!.message, /latest/);
  assert.match(problemsOf(`${minimal}agent: { image: "nousresearch/hermes-agent" }\n`)[0]!.message, /no tag/);
  assert.match(problemsOf(`${minimal}agent: { image: "registry:5000/hermes-agent" }\n`)[0]!.message, /no tag/);
  const digest = `nousresearch/hermes-agent@sha256:${"a".repeat(64)}`;
  assert.equal(parseConfig(`${minimal}agent: { image: "${digest}" }\n`).agent.image, digest);
});

test("insecure settings are refused with the fix", () => {
  assert.match(problemsOf(`${minimal}agent: { approvals: "off" }\n`)[0]!.message, /manual/);
  assert.match(problemsOf(`${minimal}agent: { allowPrivateUrls: true }\n`)[0]!.message, /private/);
  assert.match(problemsOf(`${minimal}agent: { platforms: { telegram: { allowedUsers: ["*"], tokenSecret: T } } }\n`)[0]!.message, /every user/);
  assert.match(problemsOf(`${minimal}agent: { platforms: { telegram: { allowedUsers: [], tokenSecret: T } } }\n`)[0]!.message, /empty allowlist/);
  assert.match(problemsOf(`${minimal}agent: { apiServer: { enabled: true } }\n`)[0]!.message, /without a key/);
  assert.match(problemsOf(`${minimal}egress: { allow: ["*"] }\n`)[0]!.message, /too broad/);
  assert.match(problemsOf(`${minimal}egress: { allow: ["*.com"] }\n`)[0]!.message, /too broad/);
  assert.match(problemsOf(`${minimal}egress: { allow: [".co.uk"] }\n`)[0]!.message, /public suffix/);
  assert.match(problemsOf(`${minimal}egress: { allow: ["*.github.io"] }\n`)[0]!.message, /public suffix/);
});

test("inconsistent references are refused", () => {
  assert.match(problemsOf(`${minimal}approvals: { tools: ["github__create_issue"] }\n`)[0]!.message, /not|server/);
  const providers = `llm:\n  providers:\n    minimax: { baseUrl: "https://api.minimax.io/v1", apiKeySecret: MINIMAX_API_KEY, models: [MiniMax-M2.7] }\n`;
  assert.match(problemsOf(`${minimal}${providers}  default: openai/gpt-5\n`)[0]!.message, /provider "openai"/);
  assert.match(problemsOf(`${minimal}${providers}  default: minimax/nope\n`)[0]!.message, /does not list model/);
  assert.equal(parseConfig(`${minimal}${providers}  default: minimax/MiniMax-M2.7\n`).llm.default, "minimax/MiniMax-M2.7");
  assert.match(problemsOf(`${minimal}mcp:\n  servers:\n    gh: { command: [x], tools: { allow: [get_*], approve: [create_issue] } }\n`)[0]!.message, /not in tools.allow/);
});

test("YAML syntax errors and non-mapping documents name the location", () => {
  const problems = problemsOf("version: 1\nname: [unclosed\n");
  assert.ok(problems[0]!.line >= 2);
  assert.match(problems[0]!.message, /YAML/);
  assert.match(problemsOf("- a\n- b\n")[0]!.message, /mapping/);
  assert.match(problemsOf("version: 1\nname: a\nname: b\n")[0]!.message, /YAML/);
});

test("host rules: exact, *.suffix, .suffix, ports; IPv6-safe host:port splitting", () => {
  const exact = parseHostRule("API.Example.com:443,80");
  assert.ok(exact.ok);
  assert.deepEqual(exact.rule.ports, [80, 443]);
  assert.ok(ruleMatchesHost(exact.rule, "api.example.com"));
  assert.ok(!ruleMatchesHost(exact.rule, "x.api.example.com"));
  const sub = parseHostRule("*.example.com");
  assert.ok(sub.ok);
  assert.deepEqual(sub.rule.ports, [443]);
  assert.ok(ruleMatchesHost(sub.rule, "a.example.com"));
  assert.ok(!ruleMatchesHost(sub.rule, "example.com"));
  assert.ok(!ruleMatchesHost(sub.rule, "evilexample.com"));
  const apex = parseHostRule(".example.com");
  assert.ok(apex.ok && ruleMatchesHost(apex.rule, "example.com") && ruleMatchesHost(apex.rule, "b.a.example.com"));
  assert.equal(parseHostRule("127.0.0.1").ok, false);
  assert.equal(parseHostRule("[::1]:443").ok, false);
  assert.equal(parseHostRule("example.com:99999").ok, false);
  assert.deepEqual(splitHostPort("[::1]:8080"), { host: "::1", port: 8080 });
  assert.deepEqual(splitHostPort("example.com:443"), { host: "example.com", port: 443 });
  assert.equal(splitHostPort("::1:443"), undefined);
});

test("placeholders expand from the environment and an unset one is an error naming the variable", () => {
  assert.equal(expandPlaceholders({ TOKEN: "abc" }, "Bearer ${TOKEN}", "github"), "Bearer abc");
  assert.throws(() => expandPlaceholders({}, "Bearer ${TOKEN}", "github"), MissingSecretError);
});

test("the JSON Schema describes every section", () => {
  const schema = configJsonSchema() as { properties: Record<string, unknown>; required: string[] };
  for (const section of ["version", "name", "agent", "llm", "mcp", "sandbox", "egress", "approvals", "audit", "kubernetes"]) {
    assert.ok(section in schema.properties, `schema lacks ${section}`);
  }
  assert.deepEqual([...schema.required].sort(), ["name", "version"]);
});

test("the README's config reference is generated from the current schema", async () => {
  const { readFileSync } = await import("node:fs");
  const { configReferenceMarkdown, REFERENCE_START, REFERENCE_END } = await import("./reference.ts");
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const block = readme.slice(readme.indexOf(REFERENCE_START) + REFERENCE_START.length, readme.indexOf(REFERENCE_END)).trim();
  assert.equal(block, configReferenceMarkdown(), "README is stale: run node_modules/.bin/node scripts/config-reference.ts --write");
});

test("a listen address in the config file with port 0 is refused, for every service, saying why and what to do", () => {
  // Issue 12: llm.listen 127.0.0.1:0 passed the schema and then failed at start; another component must reach each
  // of these addresses, so a port picked at each start is refused here and left to --listen HOST:0 in tests.
  const cases = [
    ["llm", "llm:\n  listen: 127.0.0.1:0\n"],
    ["mcp", "mcp:\n  listen: 127.0.0.1:0\n"],
    ["mcp.admin", "mcp:\n  admin: { listen: \"[::1]:0\" }\n"],
    ["sandbox", "sandbox:\n  listen: 0.0.0.0:0\n"],
    ["egress", "egress:\n  listen: 127.0.0.1:0\n"],
    ["egress.metrics", "egress:\n  metrics: 127.0.0.1:0\n"],
  ];
  for (const [where, yaml] of cases) {
    const problems = problemsOf(`${minimal}${yaml}`);
    assert.equal(problems.length, 1, where);
    assert.match(problems[0]!.message, /port 0 \(a free port picked at each start\) cannot be reached/, where);
    assert.match(problems[0]!.message, /--listen (127\.0\.0\.1|\[::1\]|0\.0\.0\.0):0 on the command line/, where);
  }
  const fixed = parseConfig(`${minimal}llm:\n  listen: 127.0.0.1:8702\negress:\n  metrics: "[::1]:9090"\n`);
  assert.equal(fixed.llm.listen, "127.0.0.1:8702");
  assert.equal(fixed.egress.metrics, "[::1]:9090");
});

test("listen addresses are read as the services read them (src/shared/host-port.ts): what a service would refuse at start is refused here", () => {
  for (const listen of ["127.0.0.1:8700", "[::1]:8700", "[fd00::1]:3128", "0.0.0.0:3128", "mcp-guard:8700"]) {
    assert.equal(parseConfig(`${minimal}mcp:\n  listen: "${listen}"\n`).mcp.listen, listen);
  }
  for (const listen of ["[1:2]:8700", "[::1%eth0]:8700", "[localhost]:8700", "a/b:8700", "two words:8700", "127.0.0.1", "127.0.0.1:70000"]) {
    const problems = problemsOf(`${minimal}mcp:\n  listen: "${listen}"\n`);
    assert.ok(problems.some((problem) => problem.path === "mcp.listen" && problem.message.includes("is not HOST:PORT (write 127.0.0.1:8700, or [::1]:8700 for IPv6)")), `${listen}: ${JSON.stringify(problems)}`);
  }
  const zero = problemsOf(`${minimal}llm:\n  listen: "[::1]:0"\n`);
  assert.ok(zero.some((problem) => problem.path === "llm.listen" && problem.message.includes("pass --listen [::1]:0 on the command line")), JSON.stringify(zero));
});
