// Config variants the examples do not cover, each asserting the rule it exercises on the rendered objects.
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderKubernetes, renderCompose } from "./index.ts";
import { multiplyQuantity } from "./kubernetes/objects.ts";
import { configFrom, find, manifestObjects, podSpec, yamlOf } from "./testing.ts";
import type { Loose } from "./testing.ts";

const BASE = `version: 1
name: lab
agent:
  platforms:
    telegram: { allowedUsers: ["1"], tokenSecret: TELEGRAM_BOT_TOKEN }
llm:
  providers:
    openai: { baseUrl: https://api.openai.com/v1, apiKeySecret: OPENAI_API_KEY, models: [gpt-5-mini] }
kubernetes:
  apiServerCidr: 10.0.0.1/32
  serviceIPs: { mcp-guard: 10.43.0.240, llm-proxy: 10.43.0.241, egress-proxy: 10.43.0.242 }
`;

function objectsOf(text: string) {
  const render = renderKubernetes(configFrom(text));
  return { objects: manifestObjects(new Map(render.files.map((file) => [file.path, file.content]))), warnings: render.warnings };
}

test("an MCP upstream addressed by Service name is reached by namespace selector on its port, not through the internet rule (seed 003's colony)", () => {
  const { objects } = objectsOf(`${BASE}mcp:\n  servers:\n    colony:\n      url: http://colony-mcp.colony-app.svc.cluster.local:8002/mcp\n      headers: { Authorization: "Bearer \${COLONY_PAT}" }\n      tools: { allow: ["*"] }\n`);
  const egress = (find(objects, "NetworkPolicy", "mcp-guard", "lab-tools").spec as Loose).egress as Loose[];
  const colony = egress.find((rule) => rule.to[0].namespaceSelector?.matchLabels["kubernetes.io/metadata.name"] === "colony-app");
  assert.deepEqual(colony?.ports, [{ protocol: "TCP", port: 8002 }]);
  assert.ok(!egress.some((rule) => rule.to.some((peer: Loose) => peer.ipBlock?.cidr === "0.0.0.0/0")), "no internet rule: the only upstream is in-cluster");
  // Its token went to mcp-guard's upstream Secret, not to the agent.
  const guard = podSpec(find(objects, "Deployment", "mcp-guard", "lab-tools")).containers[0].env as Loose[];
  assert.equal(guard.find((entry) => entry.name === "COLONY_PAT")?.valueFrom.secretKeyRef.name, "mcp-guard-upstream-colony");
});

test("an LLM provider given by private IP literal is allowed by a /32 ipBlock, annotated, and warned about", () => {
  const { objects, warnings } = objectsOf(BASE.replace("    openai:", "    lan: { baseUrl: \"http://10.1.2.3:8000/v1\", models: [m], allowPrivateAddress: true }\n    openai:"));
  const policy = find(objects, "NetworkPolicy", "llm-proxy", "lab-tools");
  assert.ok(((policy.spec as Loose).egress as Loose[]).some((rule) => rule.to[0].ipBlock?.cidr === "10.1.2.3/32"));
  assert.match(policy.metadata.annotations?.["perimeter.dev/ignore"] ?? "", /^K8S-NETPOL-IPBLOCK-IN-CLUSTER=/);
  assert.ok(warnings.some((warning) => warning.includes("10.1.2.3")));
});

test("cni: cilium turns wildcard rules into matchPattern and keeps the exact names as matchName, per port set", () => {
  const { objects } = objectsOf(`${BASE.replace("  apiServerCidr", "  cni: cilium\n  apiServerCidr")}egress:\n  allow: [api.telegram.org, "*.example.com", ".example.org", { host: plain.example.net, ports: [80] }]\n`);
  const egress = (find(objects, "CiliumNetworkPolicy", "egress-proxy-fqdn", "lab-tools").spec as Loose).egress as Loose[];
  const byPorts = Object.fromEntries(egress.filter((rule) => rule.toFQDNs).map((rule) => [rule.toPorts[0].ports.map((port: Loose) => port.port).join(","), rule.toFQDNs]));
  assert.deepEqual(byPorts["443"], [{ matchName: "api.telegram.org" }, { matchName: "example.org" }, { matchPattern: "*.example.com" }, { matchPattern: "*.example.org" }]);
  assert.deepEqual(byPorts["80"], [{ matchName: "plain.example.net" }]);
  const kubernetesPolicy = find(objects, "NetworkPolicy", "egress-proxy", "lab-tools").spec as Loose;
  assert.ok(!JSON.stringify(kubernetesPolicy.egress).includes("0.0.0.0/0"), "with Cilium the FQDN policy is the only way out");
});

test("an enabled API server gets a ClusterIP Service and ingress only from the configured ingress namespace", () => {
  const { objects } = objectsOf(BASE.replace("agent:\n", "agent:\n  apiServer: { enabled: true, keySecret: HERMES_API_SERVER_KEY }\n").replace("kubernetes:\n", "kubernetes:\n  ingressNamespace: ingress-nginx\n"));
  const service = find(objects, "Service", "hermes-gateway", "lab-system");
  assert.equal((service.spec as Loose).type, "ClusterIP");
  const ingress = (find(objects, "NetworkPolicy", "hermes-gateway", "lab-system").spec as Loose).ingress as Loose[];
  assert.deepEqual(ingress, [{ from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } }], ports: [{ protocol: "TCP", port: 8642 }] }]);
  const env = podSpec(find(objects, "Deployment", "hermes-gateway", "lab-system")).containers[0].env as Loose[];
  assert.equal(env.find((entry) => entry.name === "API_SERVER_KEY")?.valueFrom.secretKeyRef.key, "HERMES_API_SERVER_KEY");
});

test("without a sandbox (terminal: in-pod) render deploys no runner, no sandbox namespace, and needs no API server address", () => {
  const { objects } = objectsOf(BASE.replace("  apiServerCidr: 10.0.0.1/32\n", "").replace("agent:\n", "agent:\n  terminal: in-pod\n"));
  assert.ok(!objects.some((object) => object.metadata.name === "sandbox-runner" || object.metadata.name === "lab-sandbox"));
  assert.ok(!JSON.stringify(objects).includes("ipBlock\":{\"cidr\":\"10."));
});

test("Compose: an MCP server image gets its own env file and the egress network; the agent's env file has none of its keys", () => {
  const render = renderCompose(configFrom(`${BASE}mcp:\n  servers:\n    calendar:\n      image: registry.example.com/mcp/calendar:1.0.0\n      url: http://calendar:8080/mcp\n      secrets: [GOOGLE_OAUTH_CREDENTIALS]\n      tools: { allow: [list_events] }\n`));
  const compose = yamlOf(render.files.find((file) => file.path === "compose.yaml")?.content ?? "");
  assert.deepEqual(compose.services["mcp-calendar"].env_file, ["env/mcp-calendar.env"]);
  assert.ok(compose.services["mcp-calendar"].networks.includes("egress"));
  const agentFile = render.files.find((file) => file.path === "env/hermes-gateway.env.example")?.content ?? "";
  assert.ok(!agentFile.includes("GOOGLE_OAUTH_CREDENTIALS"));
  const runtime = yamlOf(render.files.find((file) => file.path === "config/perimeter.yaml")?.content ?? "");
  assert.equal(runtime.mcp.servers.calendar.url, "http://mcp-calendar:8080/mcp");
});

test("quantities multiply for the sandbox quota without losing their unit", () => {
  assert.equal(multiplyQuantity("1", 4), "4");
  assert.equal(multiplyQuantity("500m", 4), "2000m");
  assert.equal(multiplyQuantity("1.5Gi", 3), "4.5Gi");
  assert.equal(multiplyQuantity("256Mi", 2), "512Mi");
});

test("observability: Prometheus scrapes the sandbox runner on its own token-free metrics listener, never on the MCP port that runs tasks", () => {
  const { objects } = objectsOf(BASE.replace("kubernetes:\n", "kubernetes:\n  observability: { enabled: true, namespace: monitoring }\n"));
  const deployment = find(objects, "Deployment", "sandbox-runner", "lab-tools");
  const container = podSpec(deployment).containers[0];
  assert.deepEqual(container.command.slice(-2), ["--metrics-listen", "0.0.0.0:9464"]);
  assert.ok(container.ports.some((port: Loose) => port.name === "metrics" && port.containerPort === 9464));
  assert.equal((deployment.spec as Loose).template.metadata.annotations["prometheus.io/port"], "9464");
  const ingress = (find(objects, "NetworkPolicy", "sandbox-runner", "lab-tools").spec as Loose).ingress as Loose[];
  const fromMonitoring = ingress.filter((rule) => rule.from.some((peer: Loose) => peer.namespaceSelector?.matchLabels["kubernetes.io/metadata.name"] === "monitoring"));
  assert.deepEqual(fromMonitoring.flatMap((rule) => rule.ports), [{ protocol: "TCP", port: 9464 }]);
  // Without observability the listener stays (the dashboard reads the runner's health and audit feed there), but
  // nothing from the monitoring namespace is admitted and no scrape annotation is written.
  const quietObjects = objectsOf(BASE).objects;
  const quiet = find(quietObjects, "Deployment", "sandbox-runner", "lab-tools");
  assert.deepEqual(podSpec(quiet).containers[0].command.slice(-2), ["--metrics-listen", "0.0.0.0:9464"]);
  assert.equal((quiet.spec as Loose).template.metadata.annotations["prometheus.io/port"], undefined);
  const quietIngress = (find(quietObjects, "NetworkPolicy", "sandbox-runner", "lab-tools").spec as Loose).ingress as Loose[];
  assert.ok(!quietIngress.some((rule) => rule.from.some((peer: Loose) => peer.namespaceSelector?.matchLabels["kubernetes.io/metadata.name"] === "monitoring")));
});
