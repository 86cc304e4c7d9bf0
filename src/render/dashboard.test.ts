// Requirements (issue 19, "the rendered deployments include the dashboard"): every target runs the dashboard, and it
// is never exposed: on Kubernetes a ClusterIP Service only, a NetworkPolicy that admits no ingress, loopback in its
// pod (kubectl port-forward reaches 127.0.0.1 there); each perimeter pod admits the dashboard on exactly its feed
// port and the agent on none of them; on Compose its port is published on 127.0.0.1 only, from networks the agent is
// not on; on the VPS a loopback unit. The Telegram approver bot goes out through the egress proxy as its own client.
// `exposures` is the check; each attack below mutates a real render and must be caught by it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderTarget } from "./index.ts";
import { renderVps } from "./vps/render.ts";
import { composeNetworks, configFrom, exampleConfig, exampleText, find, manifestObjects, renderedFiles, yamlOf } from "./testing.ts";
import type { AnyObject, Loose } from "./testing.ts";

const ADMIN_PORT = 8710;
const EGRESS_METRICS = 9090;
const SANDBOX_METRICS = 9464;

/** The feed (and admin) port of each perimeter workload the dashboard reads; llm-proxy's is its one listener. */
function feedPorts(llmPort: number, sandboxEgress: boolean): Record<string, number> {
  return {
    "egress-proxy": EGRESS_METRICS,
    "llm-proxy": llmPort,
    "mcp-guard": ADMIN_PORT,
    "sandbox-runner": SANDBOX_METRICS,
    ...(sandboxEgress ? { "egress-proxy-sandbox": EGRESS_METRICS } : {}),
  };
}

const peerName = (peer: Loose): string => peer.podSelector?.matchLabels?.["app.kubernetes.io/name"] ?? "*";
const portsOf = (rule: Loose): number[] => (rule.ports ?? []).map((port: Loose) => port.port).sort();

/** Everything that would expose the dashboard or a feed/admin port in a Kubernetes render; empty when none. */
function exposures(objects: readonly AnyObject[], tools: string, feeds: Record<string, number>, agentPorts: readonly number[]): string[] {
  const found: string[] = [];
  for (const object of objects) {
    if (object.kind === "Ingress" || object.kind === "Gateway" || object.kind === "HTTPRoute") found.push(`${object.kind} ${object.metadata.name}`);
    if (object.kind === "Service" && (object.spec as Loose).type !== "ClusterIP") found.push(`Service ${object.metadata.name} is ${(object.spec as Loose).type}`);
    if (object.kind === "Service" && ((object.spec as Loose).externalIPs ?? []).length > 0) found.push(`Service ${object.metadata.name} has externalIPs`);
  }
  const dashboard = objects.find((object) => object.kind === "NetworkPolicy" && object.metadata.name === "dashboard" && object.metadata.namespace === tools);
  if (dashboard === undefined) return [...found, "no NetworkPolicy selects the dashboard"];
  const spec = dashboard.spec as Loose;
  if (!spec.policyTypes.includes("Ingress")) found.push("the dashboard's policy does not restrict ingress");
  if ((spec.ingress ?? []).length > 0) found.push("the dashboard's policy admits ingress (port-forward needs none)");
  for (const rule of spec.egress ?? []) {
    for (const peer of rule.to ?? []) {
      const name = peerName(peer);
      if (peer.ipBlock !== undefined || feeds[name] === undefined) found.push(`the dashboard may reach ${peer.ipBlock?.cidr ?? name}`);
      else if (portsOf(rule).join() !== String(feeds[name])) found.push(`the dashboard may reach ${name} on ${portsOf(rule).join(",")}`);
    }
  }
  const deployment = objects.find((object) => object.kind === "Deployment" && object.metadata.name === "dashboard");
  const container = (deployment?.spec as Loose)?.template.spec.containers[0];
  if (container === undefined) found.push("no dashboard Deployment");
  else if ((container.command as string[]).some((word) => word.startsWith("--listen") || word.startsWith("0.0.0.0"))) found.push("the dashboard binds the pod's address");
  for (const object of objects) {
    if (object.kind !== "NetworkPolicy" || object.metadata.namespace !== tools) continue;
    const workload = (object.spec as Loose).podSelector.matchLabels?.["app.kubernetes.io/name"];
    for (const rule of (object.spec as Loose).ingress ?? []) {
      for (const peer of rule.from ?? []) {
        const name = peerName(peer);
        if (name === "dashboard" && portsOf(rule).join() !== String(feeds[workload])) found.push(`${workload} admits the dashboard on ${portsOf(rule).join(",")}`);
        if (name === "hermes-gateway" && portsOf(rule).some((port) => !agentPorts.includes(port))) found.push(`${workload} admits the agent on ${portsOf(rule).join(",")}`);
        if (peer.namespaceSelector === undefined && peer.podSelector === undefined) found.push(`${workload} admits any source`);
      }
    }
  }
  return found;
}

function kubernetes(example: string) {
  const config = exampleConfig(example);
  const objects = manifestObjects(renderedFiles(config, "kubernetes"));
  const tools = `${config.name}-tools`;
  const llmPort = Number(/:(\d+)$/.exec(config.llm.listen)?.[1]);
  const feeds = feedPorts(llmPort, config.sandbox.network !== "none");
  const agentPorts = [Number(/:(\d+)$/.exec(config.mcp.listen)?.[1]), llmPort, Number(/:(\d+)$/.exec(config.egress.listen)?.[1])];
  return { config, objects, tools, feeds, agentPorts, check: (list: readonly AnyObject[]) => exposures(list, tools, feeds, agentPorts) };
}

const clone = (objects: readonly AnyObject[]): AnyObject[] => structuredClone(objects) as AnyObject[];

for (const example of ["k3s-telegram-minimax", "kubernetes-full", "compose-vps"]) {
  test(`${example} (kubernetes): the dashboard runs, reads every feed, and nothing exposes it or a feed port`, () => {
    const { config, objects, tools, feeds, check } = kubernetes(example);
    assert.deepEqual(check(objects), []);
    find(objects, "Deployment", "dashboard", tools);
    const runtime = yamlOf((find(objects, "ConfigMap", "perimeter-config", tools).data as Record<string, string>)["perimeter.yaml"] as string);
    assert.equal(runtime.dashboard.listen, "127.0.0.1:8720", "loopback in the pod: port-forward dials 127.0.0.1 there");
    assert.equal(runtime.dashboard.adminUrl, `http://mcp-guard.${tools}.svc.cluster.local:${ADMIN_PORT}`);
    const urls = Object.fromEntries((runtime.dashboard.sources as Loose[]).filter((source) => source.url !== undefined).map((source) => [source.name, source.url]));
    assert.deepEqual(urls, Object.fromEntries(Object.entries(feeds).map(([name, port]) => [name, `http://${name}.${tools}.svc.cluster.local:${port}`])));
    assert.equal(runtime.audit.feedTokenSecret, config.audit.feedTokenSecret ?? "PERIMETER_AUDIT_FEED_TOKEN");
    // Both tokens by secretKeyRef, from the dashboard's own Secret; the pod gets no ServiceAccount token.
    const pod = (find(objects, "Deployment", "dashboard", tools).spec as Loose).template.spec;
    assert.equal(pod.automountServiceAccountToken, false);
    assert.deepEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
    const container = pod.containers[0];
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(container.securityContext.capabilities, { drop: ["ALL"] });
    const env = Object.fromEntries((container.env as Loose[]).filter((entry) => entry.valueFrom !== undefined).map((entry) => [entry.name, entry.valueFrom.secretKeyRef.name]));
    assert.deepEqual(env, { [config.mcp.admin.tokenSecret]: "dashboard", [runtime.audit.feedTokenSecret]: "dashboard" });
    // Every service that serves a feed holds the feed token, from its own Secret.
    for (const workload of Object.keys(feeds)) {
      const served = ((find(objects, "Deployment", workload, tools).spec as Loose).template.spec.containers[0].env as Loose[]).find((entry) => entry.name === runtime.audit.feedTokenSecret);
      assert.equal(served?.valueFrom.secretKeyRef.name, workload, workload);
    }
  });
}

test("attack: a dashboard Service made NodePort or LoadBalancer, or an Ingress in front of it, is caught", () => {
  const { objects, check } = kubernetes("k3s-telegram-minimax");
  for (const type of ["NodePort", "LoadBalancer"]) {
    const mutated = clone(objects);
    (find(mutated, "Service", "dashboard").spec as Loose).type = type;
    assert.match(check(mutated).join("\n"), new RegExp(`Service dashboard is ${type}`));
  }
  const withIngress = [...clone(objects), { apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name: "dashboard", namespace: "hermes-tools" } } as AnyObject];
  assert.match(check(withIngress).join("\n"), /Ingress dashboard/);
});

test("attack: the dashboard's NetworkPolicy missing or admitting ingress, or its egress widened, is caught", () => {
  const { objects, check } = kubernetes("k3s-telegram-minimax");
  assert.match(check(objects.filter((object) => !(object.kind === "NetworkPolicy" && object.metadata.name === "dashboard"))).join("\n"), /no NetworkPolicy selects the dashboard/);
  const open = clone(objects);
  (find(open, "NetworkPolicy", "dashboard").spec as Loose).ingress = [{ from: [{ namespaceSelector: {} }] }];
  assert.match(check(open).join("\n"), /admits ingress/);
  const wide = clone(objects);
  (find(wide, "NetworkPolicy", "dashboard").spec as Loose).egress.push({ to: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [{ protocol: "TCP", port: 443 }] });
  assert.match(check(wide).join("\n"), /may reach 0\.0\.0\.0\/0/);
});

test("attack: the agent admitted to mcp-guard's admin port or a feed port, or the dashboard to a non-feed port, is caught", () => {
  const { objects, check } = kubernetes("k3s-telegram-minimax");
  const agentToAdmin = clone(objects);
  const guard = (find(agentToAdmin, "NetworkPolicy", "mcp-guard").spec as Loose).ingress as Loose[];
  guard[0].ports.push({ protocol: "TCP", port: ADMIN_PORT });
  assert.match(check(agentToAdmin).join("\n"), /mcp-guard admits the agent on .*8710/);
  const agentToMetrics = clone(objects);
  ((find(agentToMetrics, "NetworkPolicy", "egress-proxy").spec as Loose).ingress as Loose[])[0].ports.push({ protocol: "TCP", port: EGRESS_METRICS });
  assert.match(check(agentToMetrics).join("\n"), /egress-proxy admits the agent on .*9090/);
  const dashboardToTasks = clone(objects);
  const runner = (find(dashboardToTasks, "NetworkPolicy", "sandbox-runner").spec as Loose).ingress as Loose[];
  runner.find((rule) => peerName(rule.from[0]) === "dashboard").ports.push({ protocol: "TCP", port: 8701 });
  assert.match(check(dashboardToTasks).join("\n"), /sandbox-runner admits the dashboard on 8701,9464/);
});

test("attack: a dashboard that binds the pod's address is caught", () => {
  const { objects, check } = kubernetes("k3s-telegram-minimax");
  const mutated = clone(objects);
  ((find(mutated, "Deployment", "dashboard").spec as Loose).template.spec.containers[0].command as string[]).push("--listen", "0.0.0.0:8720");
  assert.match(check(mutated).join("\n"), /binds the pod's address/);
});

test("kubernetes: the next steps and the runbook give the port-forward that opens the dashboard", () => {
  const output = renderTarget(exampleConfig("k3s-telegram-minimax"), "kubernetes");
  const command = "kubectl -n hermes-tools port-forward deployment/dashboard 8720:8720";
  assert.ok(output.instructions("out/k3s").includes(command));
  assert.ok((output.files.find((file) => file.path === "RUNBOOK.md")?.content ?? "").includes(command));
  const script = output.files.find((file) => file.path === "create-secrets.sh")?.content ?? "";
  assert.match(script, /dashboard\) echo "PERIMETER_ADMIN_TOKEN PERIMETER_AUDIT_FEED_TOKEN"/);
});

/** Compose: what would expose the dashboard; empty when nothing does. */
function composeExposures(document: Loose): string[] {
  const found: string[] = [];
  const networks = document.networks as Record<string, Loose>;
  for (const [name, service] of Object.entries(document.services as Record<string, Loose>)) {
    for (const port of service.ports ?? []) if (!String(port).startsWith("127.0.0.1:")) found.push(`${name} publishes ${port}`);
    if ((service.ports ?? []).length > 0 && name !== "dashboard") found.push(`${name} publishes a port`);
  }
  const dashboard = document.services.dashboard;
  if (dashboard === undefined) return [...found, "no dashboard service"];
  const agentNetworks: string[] = document.services["hermes-gateway"].networks;
  for (const network of dashboard.networks as string[]) {
    if (agentNetworks.includes(network)) found.push(`the dashboard shares ${network} with the agent`);
    const options = networks[network];
    if (options.internal !== true && options.driver_opts?.["com.docker.network.bridge.enable_ip_masquerade"] !== "false") found.push(`the dashboard's ${network} network routes out`);
  }
  return found;
}

for (const example of ["k3s-telegram-minimax", "kubernetes-full", "compose-vps"]) {
  test(`${example} (compose): the dashboard is published on 127.0.0.1 only, on networks the agent is not on`, () => {
    const files = renderedFiles(exampleConfig(example), "compose");
    const document = yamlOf(files.get("compose.yaml") as string);
    assert.deepEqual(composeExposures(document), []);
    assert.deepEqual(document.services.dashboard.ports, ["127.0.0.1:8720:8720"]);
    const runtime = yamlOf(files.get("config/perimeter.yaml") as string);
    assert.deepEqual(
      (runtime.dashboard.sources as Loose[]).map((source) => source.url ?? source.path),
      ["/var/lib/perimeter/audit.db", "http://egress-proxy-audit:9090", `http://llm-proxy-audit:${/:(\d+)$/.exec(runtime.llm.listen)?.[1]}`, "http://mcp-guard-audit:8710", "http://sandbox-runner-audit:9464"],
    );
    // Every service the dashboard reads is on its network.
    for (const service of ["egress-proxy", "llm-proxy", "mcp-guard", "sandbox-runner"]) assert.ok(composeNetworks(document.services[service]).includes("audit"), service);
    assert.match(files.get("env/dashboard.env.example") as string, /PERIMETER_ADMIN_TOKEN=\nPERIMETER_AUDIT_FEED_TOKEN=/);
  });
}

test("attack (compose): the dashboard published on every interface, joined to the agent's network, or given a route out, is caught", () => {
  const document = yamlOf(renderedFiles(exampleConfig("compose-vps"), "compose").get("compose.yaml") as string);
  const everywhere = structuredClone(document);
  everywhere.services.dashboard.ports = ["8720:8720"];
  assert.match(composeExposures(everywhere).join("\n"), /dashboard publishes 8720:8720/);
  const withAgent = structuredClone(document);
  withAgent.services.dashboard.networks.push("agent");
  assert.match(composeExposures(withAgent).join("\n"), /shares agent with the agent/);
  const routed = structuredClone(document);
  delete routed.networks.dashboard.driver_opts;
  assert.match(composeExposures(routed).join("\n"), /dashboard network routes out/);
});

test("vps: the dashboard runs as its own loopback-only unit, reading every unit's feed over loopback", () => {
  const render = renderVps(exampleConfig("vps"));
  const unit = render.units.find((entry) => entry.name === "perimeter-dashboard.service");
  assert.ok(unit !== undefined);
  const value = (key: string) => unit.service.filter(([name]) => name === key).map(([, entry]) => entry);
  assert.deepEqual(value("ExecStart"), ["/usr/local/bin/perimeter serve dashboard -c /etc/perimeter/perimeter.yaml --listen 127.0.0.1:8720"]);
  assert.deepEqual(value("IPAddressDeny"), ["any"]);
  assert.deepEqual(value("IPAddressAllow"), ["localhost"]);
  assert.deepEqual(value("EnvironmentFile"), ["/etc/perimeter/env/dashboard.env"]);
  const runtime = yamlOf(render.files.find((file) => file.path === "files/etc/perimeter/perimeter.yaml")?.content ?? "");
  for (const source of runtime.dashboard.sources as Loose[]) if (source.url !== undefined) assert.match(source.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  // The sandbox runner has no network of its own: its feed comes in through a socket on the host's loopback.
  assert.ok(render.units.some((entry) => entry.name === "perimeter-sandbox-metrics-proxy.socket"));
  // The agent cannot read the dashboard's state (its mirrors of every log, its sessions).
  const agent = render.units.find((entry) => entry.name === "hermes-gateway.service");
  assert.match(agent?.service.find(([key]) => key === "InaccessiblePaths")?.[1] ?? "", /-\/var\/lib\/perimeter-dashboard/);
});

const TELEGRAM_APPROVER = "approvals:\n  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [123456789] }\n";

test("telegram approver: its bot goes through the egress proxy as its own client, allowed only the Bot API's host", () => {
  const config = configFrom(`${exampleText("k3s-telegram-minimax").replace("approvals: { timeoutSeconds: 600 }", "")}${TELEGRAM_APPROVER}`);
  const objects = manifestObjects(renderedFiles(config, "kubernetes"));
  const runtime = yamlOf((find(objects, "ConfigMap", "perimeter-config").data as Record<string, string>)["perimeter.yaml"] as string);
  assert.equal(runtime.approvals.telegram.proxy, "http://egress-proxy.hermes-tools.svc.cluster.local:3128");
  assert.equal(runtime.approvals.telegram.proxyTokenSecret, "PERIMETER_APPROVER_EGRESS_TOKEN");
  assert.deepEqual(runtime.egress.clients, [{ name: "approvals-telegram", tokenSecret: "PERIMETER_APPROVER_EGRESS_TOKEN", sources: [], allow: ["api.telegram.org"] }]);
  // The agent, an unidentified caller, keeps the global list it had before the bot's client existed.
  assert.equal(runtime.egress.unknownClients, "global");
  // mcp-guard reaches egress-proxy, and egress-proxy admits it on the proxy port; mcp-guard itself gets no internet.
  const guardEgress = (find(objects, "NetworkPolicy", "mcp-guard").spec as Loose).egress as Loose[];
  assert.ok(guardEgress.some((rule) => peerName(rule.to[0]) === "egress-proxy" && portsOf(rule).join() === "3128"));
  assert.ok(!guardEgress.some((rule) => rule.to.some((peer: Loose) => peer.ipBlock !== undefined)), "no direct internet for mcp-guard");
  const proxyIngress = (find(objects, "NetworkPolicy", "egress-proxy").spec as Loose).ingress as Loose[];
  assert.ok(proxyIngress.some((rule) => peerName(rule.from[0]) === "mcp-guard" && portsOf(rule).join() === "3128"));
  // The proxy token is in both Secrets that hold one end of it, typed once.
  const script = renderedFiles(config, "kubernetes").get("create-secrets.sh") as string;
  assert.match(script, /mcp-guard-telegram-approver\) echo "APPROVER_BOT_TOKEN PERIMETER_APPROVER_EGRESS_TOKEN"/);
  assert.match(script, /egress-proxy\) echo "PERIMETER_APPROVER_EGRESS_TOKEN PERIMETER_AUDIT_FEED_TOKEN"/);
  // Compose and the VPS point the bot at their own egress proxy.
  assert.equal(yamlOf(renderedFiles(config, "compose").get("config/perimeter.yaml") as string).approvals.telegram.proxy, "http://egress-proxy:3128");
});

test("telegram approver: without approvals.telegram, or with a proxy of the operator's own, render adds no client", () => {
  const plain = yamlOf(renderedFiles(exampleConfig("k3s-telegram-minimax"), "compose").get("config/perimeter.yaml") as string);
  assert.deepEqual(plain.egress.clients, []);
  assert.equal(plain.egress.unknownClients, "deny");
  assert.equal(plain.approvals.telegram, undefined);
  const own = configFrom(`${exampleText("k3s-telegram-minimax").replace("approvals: { timeoutSeconds: 600 }", "")}approvals:\n  telegram: { tokenSecret: APPROVER_BOT_TOKEN, approvers: [123456789], proxy: "http://proxy.example:3128" }\n`);
  const runtime = yamlOf(renderedFiles(own, "compose").get("config/perimeter.yaml") as string);
  assert.equal(runtime.approvals.telegram.proxy, "http://proxy.example:3128");
  assert.deepEqual(runtime.egress.clients, []);
});
