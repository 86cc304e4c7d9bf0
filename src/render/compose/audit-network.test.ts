// The Compose render binds mcp-guard's admin listener and the feed listeners to names on the `audit` network only
// (agent-reach.test.ts attacks that). These tests hold every consumer of those addresses to the same names: the
// dashboard's sources, health and admin URL, `perimeter approvals` run in mcp-guard's container, and healthchecks.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { bindServer, parseListenAddress, parseTcp } from "../../shared/index.ts";
import { EXAMPLES, composeNetworks, exampleConfig, renderedFiles, yamlOf } from "../testing.ts";
import type { Loose } from "../testing.ts";

/** The networks on which Docker's embedded DNS answers `name` for a container of `document`. */
function networksResolving(document: Loose, name: string): string[] {
  const found: string[] = [];
  for (const [serviceName, service] of Object.entries(document.services as Record<string, Loose>)) {
    for (const network of composeNetworks(service)) {
      const aliases: string[] = Array.isArray(service.networks) ? [] : (service.networks[network]?.aliases ?? []);
      if (serviceName === name || aliases.includes(name)) found.push(network);
    }
  }
  return found;
}

function hostPortOf(url: string): string {
  return new URL(url).host;
}

for (const example of EXAMPLES) {
  test(`${example} (compose): the dashboard dials each audit-only listener by the name it binds, on a network the dashboard is on`, () => {
    const files = renderedFiles(exampleConfig(example), "compose");
    const document = yamlOf(files.get("compose.yaml") as string);
    const runtime = yamlOf(files.get("config/perimeter.yaml") as string);
    const dashboardNetworks = composeNetworks(document.services.dashboard);
    const urls: string[] = [runtime.dashboard.adminUrl, ...Object.values(runtime.dashboard.health as Record<string, string>), ...runtime.dashboard.sources.flatMap((source: Loose) => (source.url === undefined ? [] : [source.url]))];
    assert.ok(urls.length >= 5);
    for (const url of urls) {
      const { hostname } = new URL(url);
      assert.ok(networksResolving(document, hostname).some((network) => dashboardNetworks.includes(network)), `the dashboard cannot resolve ${hostname} (${url})`);
    }
    assert.equal(hostPortOf(runtime.dashboard.adminUrl), runtime.mcp.admin.listen, "adminUrl is where the admin listener binds");
    assert.ok(runtime.dashboard.sources.some((source: Loose) => source.url !== undefined && hostPortOf(source.url) === runtime.egress.metrics), "egress-proxy's feed is read where its metrics listener binds");
    const runner = document.services["sandbox-runner"]?.command as string[] | undefined;
    if (runner !== undefined) {
      const metrics = runner[runner.indexOf("--metrics-listen") + 1] as string;
      assert.equal(hostPortOf(runtime.dashboard.health.sandbox), metrics, "the runner's health is read where its metrics listener binds");
    }
  });

  test(`${example} (compose): \`docker compose exec mcp-guard perimeter approvals\` dials a name mcp-guard's own container resolves, and no healthcheck dials an audit-only port on loopback`, () => {
    const files = renderedFiles(exampleConfig(example), "compose");
    const document = yamlOf(files.get("compose.yaml") as string);
    const runtime = yamlOf(files.get("config/perimeter.yaml") as string);
    const admin = parseTcp(runtime.mcp.admin.listen);
    assert.ok(admin !== undefined);
    const ownNetworks = composeNetworks(document.services["mcp-guard"]);
    assert.ok(networksResolving(document, admin.host).some((network) => ownNetworks.includes(network)), `mcp-guard cannot resolve ${admin.host}`);
    const auditOnlyPorts = [admin.port, parseTcp(runtime.egress.metrics)?.port];
    for (const [name, service] of Object.entries(document.services as Record<string, Loose>)) {
      const check = JSON.stringify(service.healthcheck?.test ?? []);
      for (const port of auditOnlyPorts) assert.doesNotMatch(check, new RegExp(`(127\\.0\\.0\\.1|localhost|\\[::1\\]):${port}\\b`), `${name}'s healthcheck dials an audit-only port on loopback`);
    }
  });
}

test("a listener given a name binds the one address the name resolves to, not every interface (what the Compose alias relies on)", async () => {
  const server = net.createServer();
  try {
    const bound = await bindServer(server, parseListenAddress("localhost:0"));
    assert.equal(bound.kind, "tcp");
    const address = server.address() as net.AddressInfo;
    assert.ok(address.address === "127.0.0.1" || address.address === "::1", `bound ${address.address}`);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
