// Issue 12, item 10 (render side): DNS is not a way out. A prompt-injected agent or a sandbox task can leak data as
// `<secret>.attacker.example` lookups through kube-dns to CoreDNS's upstream even when every TCP connection goes
// through the proxy. Required behaviours, each proven below on what render writes:
//   R1  no NetworkPolicy lets the agent's namespace or the sandbox namespace reach port 53 (plain NetworkPolicy
//       cannot filter names, so any port-53 allow is an allow for every name);
//   R2  without Cilium the agent reaches mcp-guard, llm-proxy and egress-proxy (and tasks their proxy) at fixed
//       ClusterIPs named in the pod's /etc/hosts, and its resolver points at its own loopback;
//   R3  with Cilium, DNS is allowed per workload for exactly the in-cluster names it needs;
//   R4  a config that would need DNS without a way to filter it is refused with the fix.
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderKubernetes, RenderError } from "./index.ts";
import { EXAMPLES, composeNetworks, configFrom, exampleConfig, find, manifestObjects, podSpec, renderedFiles, yamlOf } from "./testing.ts";
import type { AnyObject, Loose } from "./testing.ts";

const ADDRESSES = "  serviceIPs: { mcp-guard: 10.43.0.240, llm-proxy: 10.43.0.241, egress-proxy: 10.43.0.242, egress-proxy-sandbox: 10.43.0.243 }\n";

const BASE = `version: 1
name: lab
agent:
  platforms:
    telegram: { allowedUsers: ["1"], tokenSecret: TELEGRAM_BOT_TOKEN }
llm:
  providers:
    openai: { baseUrl: https://api.openai.com/v1, apiKeySecret: OPENAI_API_KEY, models: [gpt-5-mini] }
sandbox:
  network: { allow: [pypi.org] }
kubernetes:
  apiServerCidr: 10.0.0.1/32
`;

function objectsOf(text: string): AnyObject[] {
  const render = renderKubernetes(configFrom(text));
  return manifestObjects(new Map(render.files.map((file) => [file.path, file.content])));
}

function exampleObjects(example: string): AnyObject[] {
  const render = renderKubernetes(exampleConfig(example));
  return manifestObjects(new Map(render.files.map((file) => [file.path, file.content])));
}

/** Every egress rule of a plain NetworkPolicy that opens port 53 (or every port), with the namespace it applies in. */
function dnsOpenings(objects: readonly AnyObject[]): Array<{ policy: string; namespace: string }> {
  const found: Array<{ policy: string; namespace: string }> = [];
  for (const policy of objects.filter((object) => object.kind === "NetworkPolicy")) {
    for (const rule of ((policy.spec as Loose).egress ?? []) as Loose[]) {
      const ports = (rule.ports ?? []) as Loose[];
      if (ports.length === 0 || ports.some((port) => port.port === 53 || port.port === "53" || port.port === "dns")) {
        found.push({ policy: policy.metadata.name, namespace: policy.metadata.namespace as string });
      }
    }
  }
  return found;
}

function jobTemplate(objects: readonly AnyObject[], tools: string): Loose {
  return yamlOf((find(objects, "ConfigMap", "sandbox-job-template", tools).data as Record<string, string>)["job.yaml"] as string);
}

function dnsNamesOf(policy: AnyObject): string[] {
  return ((policy.spec as Loose).egress as Loose[]).flatMap((rule) => (rule.toPorts ?? []).flatMap((toPort: Loose) => (toPort.rules?.dns ?? []).map((entry: Loose) => entry.matchName ?? `pattern:${entry.matchPattern}`)));
}

for (const example of EXAMPLES) {
  test(`${example}: R1 — no NetworkPolicy opens port 53 to the agent's or the sandbox's namespace`, () => {
    const config = exampleConfig(example);
    const objects = exampleObjects(example);
    const guarded = new Set([`${config.name}-system`, `${config.name}-sandbox`]);
    const open = dnsOpenings(objects).filter((opening) => guarded.has(opening.namespace));
    assert.deepEqual(open, [], `DNS (every name, to CoreDNS's upstream) is open: ${JSON.stringify(open)}`);
  });

  test(`${example}: R2/R3 — the agent resolves only its three perimeter services, by /etc/hosts or by a Cilium name rule`, () => {
    const config = exampleConfig(example);
    const objects = exampleObjects(example);
    const tools = `${config.name}-tools`;
    const names = ["egress-proxy", "llm-proxy", "mcp-guard"].map((service) => `${service}.${tools}.svc.cluster.local`);
    const pod = podSpec(find(objects, "Deployment", "hermes-gateway", `${config.name}-system`));
    if (config.kubernetes.cni === "cilium" && config.kubernetes.serviceIPs === undefined) {
      const policy = find(objects, "CiliumNetworkPolicy", "hermes-gateway-dns", `${config.name}-system`);
      assert.deepEqual(dnsNamesOf(policy).sort(), names);
      assert.deepEqual((policy.spec as Loose).endpointSelector.matchLabels, { "app.kubernetes.io/instance": config.name, "app.kubernetes.io/name": "hermes-gateway" });
    } else {
      assert.equal(pod.dnsPolicy, "None");
      assert.deepEqual(pod.dnsConfig, { nameservers: ["127.0.0.1"] });
      const aliases = new Map((pod.hostAliases as Loose[]).flatMap((alias) => alias.hostnames.map((hostname: string) => [hostname, alias.ip])));
      assert.deepEqual([...aliases.keys()].sort(), names);
      for (const service of ["egress-proxy", "llm-proxy", "mcp-guard"]) {
        const clusterIP = (find(objects, "Service", service, tools).spec as Loose).clusterIP;
        assert.equal(clusterIP, config.kubernetes.serviceIPs?.[service as "mcp-guard"], `${service}: its Service must carry the pinned address`);
        assert.equal(aliases.get(`${service}.${tools}.svc.cluster.local`), clusterIP);
      }
    }
  });

  test(`${example}: R2/R3 — sandbox tasks resolve nothing, or only their own proxy's name`, () => {
    const config = exampleConfig(example);
    const objects = exampleObjects(example);
    const tools = `${config.name}-tools`;
    const pod = jobTemplate(objects, tools).spec.template.spec;
    const proxyName = `egress-proxy-sandbox.${tools}.svc.cluster.local`;
    if (config.sandbox.network === "none") {
      assert.equal(pod.dnsPolicy, "None", "a task without network has no resolver either: lookups fail at once, none leaves the pod");
      assert.deepEqual(pod.dnsConfig, { nameservers: ["127.0.0.1"] });
      assert.equal(pod.hostAliases, undefined);
      assert.ok(!objects.some((object) => object.kind === "CiliumNetworkPolicy" && object.metadata.namespace === `${config.name}-sandbox`));
    } else if (config.kubernetes.cni === "cilium" && config.kubernetes.serviceIPs === undefined) {
      assert.deepEqual(dnsNamesOf(find(objects, "CiliumNetworkPolicy", "sandbox-task-dns", `${config.name}-sandbox`)), [proxyName]);
    } else {
      assert.equal(pod.dnsPolicy, "None");
      assert.deepEqual(pod.hostAliases, [{ ip: config.kubernetes.serviceIPs?.["egress-proxy-sandbox"], hostnames: [proxyName] }]);
      assert.equal((find(objects, "Service", "egress-proxy-sandbox", tools).spec as Loose).clusterIP, config.kubernetes.serviceIPs?.["egress-proxy-sandbox"]);
    }
  });
}

test("R1/R2 — without Cilium, an allowlisted sandbox reaches its proxy by /etc/hosts and the pinned ClusterIP, with no DNS rule", () => {
  const objects = objectsOf(BASE + ADDRESSES);
  assert.deepEqual(dnsOpenings(objects).filter((opening) => opening.namespace !== "lab-tools"), []);
  const pod = jobTemplate(objects, "lab-tools").spec.template.spec;
  assert.equal(pod.dnsPolicy, "None");
  assert.deepEqual(pod.hostAliases, [{ ip: "10.43.0.243", hostnames: ["egress-proxy-sandbox.lab-tools.svc.cluster.local"] }]);
  assert.equal((find(objects, "Service", "egress-proxy-sandbox", "lab-tools").spec as Loose).clusterIP, "10.43.0.243");
  // The proxy URL the tasks use still names the Service: only its resolution moved from DNS to /etc/hosts.
  const env = pod.containers[0].env as Loose[];
  assert.equal(env.find((entry) => entry.name === "HTTPS_PROXY").value, "http://egress-proxy-sandbox.lab-tools.svc.cluster.local:3128");
});

test("R3 — with Cilium and no fixed addresses, the agent and the tasks get per-workload DNS name rules, and no plain port-53 allow", () => {
  const objects = objectsOf(BASE.replace("kubernetes:\n", "kubernetes:\n  cni: cilium\n"));
  assert.deepEqual(dnsOpenings(objects).filter((opening) => opening.namespace !== "lab-tools"), []);
  assert.deepEqual(dnsNamesOf(find(objects, "CiliumNetworkPolicy", "hermes-gateway-dns", "lab-system")).sort(), [
    "egress-proxy.lab-tools.svc.cluster.local",
    "llm-proxy.lab-tools.svc.cluster.local",
    "mcp-guard.lab-tools.svc.cluster.local",
  ]);
  const taskPolicy = find(objects, "CiliumNetworkPolicy", "sandbox-task-dns", "lab-sandbox");
  assert.deepEqual(dnsNamesOf(taskPolicy), ["egress-proxy-sandbox.lab-tools.svc.cluster.local"]);
  assert.equal((taskPolicy.spec as Loose).endpointSelector.matchLabels["app.kubernetes.io/name"], "perimeter-sandbox-task");
  // Never a wildcard: a matchPattern would let a label carry data again.
  for (const policy of [find(objects, "CiliumNetworkPolicy", "hermes-gateway-dns", "lab-system"), taskPolicy]) {
    assert.ok(!dnsNamesOf(policy).some((name) => name.startsWith("pattern:")), policy.metadata.name);
    const rule = ((policy.spec as Loose).egress as Loose[])[0];
    assert.deepEqual(rule.toEndpoints, [{ matchLabels: { "k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns" } }]);
  }
  // Names mode keeps the cluster resolver for the tasks (the name rule filters it) and no /etc/hosts entries.
  const pod = jobTemplate(objects, "lab-tools").spec.template.spec;
  assert.equal(pod.dnsPolicy, undefined);
  assert.equal(pod.hostAliases, undefined);
});

test("R2 — with Cilium and fixed addresses, the agent needs no DNS at all: no DNS name rule, /etc/hosts instead", () => {
  const objects = objectsOf(BASE.replace("kubernetes:\n", "kubernetes:\n  cni: cilium\n") + ADDRESSES);
  assert.ok(!objects.some((object) => object.kind === "CiliumNetworkPolicy" && object.metadata.name.endsWith("-dns")));
  assert.equal(podSpec(find(objects, "Deployment", "hermes-gateway", "lab-system")).dnsPolicy, "None");
});

test("R4 — without Cilium, render refuses a config without kubernetes.serviceIPs and says how to choose them", () => {
  assert.throws(
    () => renderKubernetes(configFrom(BASE)),
    (error: unknown) =>
      error instanceof RenderError &&
      /kubernetes\.serviceIPs/.test(error.message) &&
      /cni: cilium/.test(error.message) &&
      /egress-proxy-sandbox/.test(error.message) &&
      /kubectl get service kubernetes/.test(error.message),
  );
});

test("R4 — an allowlisted sandbox without an address for its proxy is refused; a sandbox without network needs none", () => {
  const threeAddresses = ADDRESSES.replace(", egress-proxy-sandbox: 10.43.0.243", "");
  assert.throws(() => renderKubernetes(configFrom(BASE + threeAddresses)), (error: unknown) => error instanceof RenderError && /egress-proxy-sandbox/.test(error.message));
  assert.doesNotThrow(() => renderKubernetes(configFrom(BASE.replace("  network: { allow: [pypi.org] }\n", "  network: none\n") + threeAddresses)));
});

test("R4 — two Services pinned to one address are refused (the second apply would fail half-way)", () => {
  assert.throws(
    () => renderKubernetes(configFrom(BASE + ADDRESSES.replace("llm-proxy: 10.43.0.241", "llm-proxy: 10.43.0.240"))),
    (error: unknown) => error instanceof RenderError && /10\.43\.0\.240/.test(error.message) && /mcp-guard/.test(error.message) && /llm-proxy/.test(error.message),
  );
});

test("R4 — kubernetes.serviceIPs accepts addresses only, with a message that says what to write", () => {
  assert.throws(() => configFrom(BASE + ADDRESSES.replace("10.43.0.240", "mcp-guard.local")), /not an IP address/);
  assert.throws(() => configFrom(BASE + ADDRESSES.replace("mcp-guard:", "mcp-gaurd:")), /mcp-gaurd/);
});

for (const example of EXAMPLES) {
  test(`${example} (compose): the agent, and a sandbox runner without an allowlist, sit only on internal networks, and compose.yaml names the Docker versions whose resolver honours that`, () => {
    const config = exampleConfig(example);
    const files = renderedFiles(config, "compose");
    const text = files.get("compose.yaml") as string;
    const document = yamlOf(text);
    const internalOnly = (service: string) => composeNetworks(document.services[service]).every((network) => document.networks[network].internal === true);
    assert.ok(internalOnly("hermes-gateway"), "the agent reaches a network with a route out, so it resolves any name");
    if (config.sandbox.network === "none") assert.ok(internalOnly("sandbox-runner"));
    // Older engines forward an internal-only container's queries from the host's namespace (CVE-2024-29018).
    assert.match(text, /^# Needs Docker Engine 26\.0\.0\+.*$/m);
    assert.match(text, /CVE-2024-29018/);
    assert.match(text, /getent hosts example\.com must print nothing/);
  });
}
