// Attacker's review of issue 19 (the dashboard and the audit feed in every render): what the agent's own network lets
// it dial. An agent holding only its own credentials must not reach mcp-guard's admin listener (approvals) nor a
// metrics listener that serves the audit feed: where it can, a bearer token is the only wall left. llm-proxy is the
// one exception by design (its feed shares the agent's listener), and the tests say so.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseTcp, isWildcardHost } from "../shared/index.ts";
import { renderVps } from "./vps/render.ts";
import { EXAMPLES, composeNetworks, exampleConfig, renderedFiles, yamlOf } from "./testing.ts";
import type { Loose } from "./testing.ts";

/** Per perimeter service of a Compose render: its listeners that the agent must not reach, and where they bind. */
function composeProtectedListeners(runtime: Loose, document: Loose): Record<string, Array<{ what: string; listen: string | undefined }>> {
  const runner = document.services["sandbox-runner"]?.command as string[] | undefined;
  const metricsFlag = runner?.indexOf("--metrics-listen") ?? -1;
  return {
    "mcp-guard": [{ what: "the admin listener (approvals, audit feed)", listen: runtime.mcp.admin.listen }],
    "egress-proxy": [{ what: "the metrics listener (audit feed)", listen: runtime.egress.metrics }],
    "sandbox-runner": [{ what: "the metrics listener (audit feed)", listen: metricsFlag < 0 ? undefined : runner?.[metricsFlag + 1] }],
  };
}

/**
 * The networks on whose interface a listener of `serviceName` sits. A wildcard binds every interface; loopback none;
 * a name binds the one address Docker's embedded DNS gives it: a network-scoped alias resolves on its network only,
 * the service's own name on any of them (so it counts as all).
 */
function composeListenerNetworks(serviceName: string, service: Loose, listen: string): string[] {
  const address = parseTcp(listen);
  assert.ok(address !== undefined, `"${listen}" parses`);
  const networks = composeNetworks(service);
  if (isWildcardHost(address.host)) return networks;
  if (address.host === "127.0.0.1" || address.host === "::1" || address.host === "localhost") return [];
  if (address.host === serviceName || address.host === service.hostname || address.host === service.container_name) return networks;
  const aliased = networks.filter((network) => (service.networks[network]?.aliases ?? []).includes(address.host));
  assert.ok(aliased.length > 0, `${serviceName} binds ${listen}, a name it holds on none of its networks (it would not start)`);
  return aliased;
}

for (const example of EXAMPLES) {
  test(`attack (${example}, compose): neither the agent nor a tool server's container can dial an admin or audit-feed listener`, () => {
    const files = renderedFiles(exampleConfig(example), "compose");
    const document = yamlOf(files.get("compose.yaml") as string);
    const runtime = yamlOf(files.get("config/perimeter.yaml") as string);
    // The agent, and every container that runs someone else's code (MCP tool servers, model servers).
    const perimeterImage = document.services["mcp-guard"].image as string;
    const untrusted = Object.entries(document.services as Record<string, Loose>).filter(([name, service]) => name === "hermes-gateway" || (service.image !== perimeterImage && service.network_mode !== "none"));
    const reachable: string[] = [];
    let checked = 0;
    for (const [serviceName, listeners] of Object.entries(composeProtectedListeners(runtime, document))) {
      const service = document.services[serviceName];
      if (service === undefined) continue;
      for (const { what, listen } of listeners) {
        assert.ok(listen !== undefined, `${serviceName}: ${what} is configured`);
        checked += 1;
        const bound = composeListenerNetworks(serviceName, service, listen);
        for (const [peer, peerService] of untrusted) {
          const shared = bound.filter((network) => composeNetworks(peerService).includes(network));
          if (shared.length > 0) reachable.push(`${peer} reaches ${serviceName} ${what} on ${listen}, via ${shared.join(",")}`);
        }
      }
    }
    assert.ok(checked >= 2, "the admin listener and egress-proxy's metrics listener were checked");
    assert.deepEqual(reachable, []);
  });
}

test("compose: llm-proxy's audit feed shares the agent's listener (by design): the feed token is its only wall, and it is not an agent credential", () => {
  const files = renderedFiles(exampleConfig("compose-vps"), "compose");
  const document = yamlOf(files.get("compose.yaml") as string);
  const runtime = yamlOf(files.get("config/perimeter.yaml") as string);
  assert.ok(composeNetworks(document.services["llm-proxy"]).includes("agent"));
  const agentEnv = files.get("env/hermes-gateway.env.example") ?? "";
  assert.doesNotMatch(agentEnv, new RegExp(`^${runtime.audit.feedTokenSecret}=`, "m"), "the agent's env file must not carry the feed token");
  assert.doesNotMatch(agentEnv, new RegExp(`^${runtime.mcp.admin.tokenSecret}=`, "m"), "the agent's env file must not carry the admin token");
});

test(
  "attack (vps): the agent's unit cannot dial the dashboard, mcp-guard's admin listener or a feed-serving metrics socket on loopback",
  () => {
    const render = renderVps(exampleConfig("vps"));
    const runtime = yamlOf(render.files.find((file) => file.path === "files/etc/perimeter/perimeter.yaml")?.content ?? "");
    const nft = render.files.find((file) => file.path === "files/etc/perimeter/nftables.nft")?.content ?? "";
    const agent = render.units.find((entry) => entry.name === "hermes-gateway.service");
    assert.ok(agent !== undefined);
    const allow = agent.service.filter(([key]) => key === "IPAddressAllow").map(([, value]) => value);
    const agentMayUseLoopback = allow.some((value) => /\blocalhost\b|127\.0\.0\.1|::1/.test(value));
    // With loopback allowed, the only per-port wall could be the firewall's output chain for the agent's uid, which
    // must come before the blanket `oifname "lo" accept` to matter.
    const output = nft.slice(nft.indexOf("chain output"));
    const loopbackAccept = output.indexOf('oifname "lo" accept');
    const agentPortRule = output.search(/meta skuid \d+ .*tcp dport/);
    const portWall = agentPortRule >= 0 && (loopbackAccept < 0 || agentPortRule < loopbackAccept);
    const protectedPorts = [runtime.dashboard.listen, runtime.mcp.admin.listen].map((listen: string) => parseTcp(listen)?.port);
    assert.ok(!agentMayUseLoopback || portWall, `the agent's unit dials any loopback port, including ${protectedPorts.join(", ")}`);
    // And that wall must not hand the agent a protected port (tools.test.ts loads the ruleset and dials them).
    const given = [...output.matchAll(/meta skuid \d+ oifname "lo" ip6? daddr \S+ tcp dport (\{[^}]*\}|\d+) accept/g)].flatMap((match) => (match[1] ?? "").replace(/[{}]/g, "").split(",").map(Number));
    assert.ok(given.length > 0, "the agent is given its proxies' ports on loopback");
    const metricsPorts = [runtime.egress.metrics].map((listen: string) => parseTcp(listen)?.port);
    assert.deepEqual(given.filter((port) => [...protectedPorts, ...metricsPorts].includes(port)), [], "the agent's loopback ports include a protected one");
  },
);
