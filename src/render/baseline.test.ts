// The seeds' production baseline, asserted item by item on what render writes for every example:
// seed 000 §11 "必做" (1-10), seed 003's security checklist, and each bullet of issue 2 items 3 and 4.
import { test } from "node:test";
import assert from "node:assert/strict";
import { placeholdersIn, secretShapeIn } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { sandboxJobTemplate } from "./index.ts";
import { PRIVATE_IPV4, PRIVATE_IPV6 } from "./kubernetes/network.ts";
import { KUBERNETES_MCP_TOOLS } from "./kubernetes/tool-servers.ts";
import { SANDBOX_DISABLED_TOOLSETS } from "./hermes.ts";
import { EXAMPLES, composeNetworks, containersOf, exampleConfig, find, manifestObjects, podSpec, renderedFiles, yamlOf } from "./testing.ts";
import type { AnyObject, Loose } from "./testing.ts";
import { toYaml } from "./yaml.ts";

const SERVICES = ["egress-proxy", "mcp-guard", "sandbox-runner", "llm-proxy"] as const;
const SERVICE_ARGUMENT: Record<string, string> = { "egress-proxy": "egress-proxy", "mcp-guard": "mcp-guard", "sandbox-runner": "sandbox", "llm-proxy": "llm-proxy" };
const WITH_TOKEN = new Set(["sandbox-runner", "kubernetes-mcp-server"]);

function kube(config: PerimeterConfig) {
  const files = renderedFiles(config, "kubernetes");
  return { files, objects: manifestObjects(files) };
}

function agentDeployment(objects: AnyObject[]): AnyObject {
  return find(objects, "Deployment", "hermes-gateway", "hermes-system");
}

function hermesSeed(objects: AnyObject[]): Loose {
  const configMap = find(objects, "ConfigMap", "hermes-config-seed");
  return yamlOf((configMap.data as Record<string, string>)["config.yaml"] as string);
}

/** Keys of every secretKeyRef in a pod, by Secret name. */
function secretRefs(object: AnyObject): Array<{ env: string; secret: string; key: string }> {
  return containersOf(object).flatMap((container: Loose) =>
    ((container.env ?? []) as Loose[]).filter((entry) => entry.valueFrom?.secretKeyRef !== undefined).map((entry) => ({ env: entry.name, secret: entry.valueFrom.secretKeyRef.name, key: entry.valueFrom.secretKeyRef.key })),
  );
}

function providerKeys(config: PerimeterConfig): string[] {
  return Object.values(config.llm.providers).flatMap((provider) => (provider.apiKeySecret === undefined ? [] : [provider.apiKeySecret]));
}

function upstreamTokens(config: PerimeterConfig): string[] {
  return Object.values(config.mcp.servers).flatMap((server) => [...Object.values(server.headers).flatMap(placeholdersIn), ...Object.values(server.env).flatMap(placeholdersIn), ...server.secrets]);
}

function policies(objects: AnyObject[], namespace?: string): AnyObject[] {
  return objects.filter((object) => object.kind === "NetworkPolicy" && (namespace === undefined || object.metadata.namespace === namespace));
}

function workloads(objects: AnyObject[]): AnyObject[] {
  return objects.filter((object) => object.kind === "Deployment");
}

for (const example of EXAMPLES) {
  const config = exampleConfig(example);
  const { files, objects } = kube(config);
  const name = config.name;
  const system = `${name}-system`;
  const tools = `${name}-tools`;
  const sandbox = `${name}-sandbox`;

  // ---- seed 000 §11 必做
  test(`${example}: 必做 1 — the Hermes gateway runs one replica, Recreate`, () => {
    const spec = agentDeployment(objects).spec as Loose;
    assert.equal(spec.replicas, 1);
    assert.equal(spec.strategy.type, "Recreate");
  });

  test(`${example}: 必做 2 — /opt/data is a PVC mounted by the agent alone`, () => {
    const pod = podSpec(agentDeployment(objects));
    const data = pod.volumes.find((volume: Loose) => volume.name === "data");
    assert.equal(data.persistentVolumeClaim.claimName, "hermes-data");
    assert.ok(pod.containers[0].volumeMounts.some((mount: Loose) => mount.name === "data" && mount.mountPath === "/opt/data"));
    find(objects, "PersistentVolumeClaim", "hermes-data", system);
    const others = workloads(objects).filter((object) => object.metadata.name !== "hermes-gateway");
    for (const other of others) assert.ok(!JSON.stringify(podSpec(other).volumes).includes("hermes-data"), `${other.metadata.name} mounts the agent's data`);
  });

  test(`${example}: 必做 3 — Pod Security: restricted enforced everywhere but the agent's namespace (baseline, restricted warn/audit, reason given)`, () => {
    const namespaces = objects.filter((object) => object.kind === "Namespace");
    assert.ok(namespaces.length >= 2);
    for (const namespace of namespaces) {
      const labels = namespace.metadata.labels ?? {};
      assert.equal(labels["pod-security.kubernetes.io/warn"], "restricted");
      assert.equal(labels["pod-security.kubernetes.io/audit"], "restricted");
      if (namespace.metadata.name === system) {
        assert.equal(labels["pod-security.kubernetes.io/enforce"], "baseline");
        assert.match(namespace.metadata.annotations?.["perimeter.dev/pod-security-reason"] ?? "", /s6/);
      } else {
        assert.equal(labels["pod-security.kubernetes.io/enforce"], "restricted", namespace.metadata.name);
      }
    }
  });

  test(`${example}: 必做 4 — every namespace has a default-deny NetworkPolicy for ingress and egress`, () => {
    for (const namespace of objects.filter((object) => object.kind === "Namespace")) {
      const deny = policies(objects, namespace.metadata.name).find((policy) => policy.metadata.name === "default-deny-all");
      assert.ok(deny !== undefined, `${namespace.metadata.name} has no default deny`);
      const spec = deny.spec as Loose;
      assert.deepEqual(spec.podSelector, {});
      assert.deepEqual(spec.policyTypes, ["Ingress", "Egress"]);
      assert.deepEqual(spec.ingress, []);
      assert.deepEqual(spec.egress, []);
    }
  });

  test(`${example}: 必做 5 — no service-account token for the gateway (nor any workload but the runner and the Kubernetes MCP)`, () => {
    for (const workload of workloads(objects)) {
      const pod = podSpec(workload);
      const account = find(objects, "ServiceAccount", pod.serviceAccountName, workload.metadata.namespace);
      const expected = WITH_TOKEN.has(workload.metadata.name);
      assert.equal(pod.automountServiceAccountToken, expected, workload.metadata.name);
      assert.equal(account.automountServiceAccountToken, expected, `ServiceAccount ${account.metadata.name}`);
    }
    const bindings = objects.filter((object) => object.kind === "RoleBinding" || object.kind === "ClusterRoleBinding");
    for (const binding of bindings) {
      for (const subject of binding.subjects as Loose[]) assert.ok(WITH_TOKEN.has(subject.name) || subject.name.endsWith("kubernetes-mcp-server"), `${subject.name} is bound to a role`);
    }
    assert.equal(objects.filter((object) => object.kind === "ClusterRoleBinding" || object.kind === "ClusterRole").length, 0);
  });

  test(`${example}: 必做 6/7 — no Docker socket, no hostPath, no host namespaces, nothing privileged`, () => {
    const text = [...files.values()].join("\n");
    assert.ok(!/docker\.sock|containerd\.sock|crio\.sock/.test(text));
    for (const workload of workloads(objects)) {
      const pod = podSpec(workload);
      assert.ok(!JSON.stringify(pod.volumes ?? []).includes("hostPath"), workload.metadata.name);
      assert.ok(!pod.hostNetwork && !pod.hostPID && !pod.hostIPC, workload.metadata.name);
      for (const container of containersOf(workload)) {
        assert.notEqual(container.securityContext?.privileged, true);
        assert.equal(container.securityContext?.allowPrivilegeEscalation, false, `${workload.metadata.name}/${container.name}`);
        assert.equal(container.securityContext?.capabilities?.add, undefined);
        assert.ok(!(container.ports ?? []).some((port: Loose) => port.hostPort !== undefined));
      }
    }
  });

  test(`${example}: 必做 8 — nothing is exposed: no Ingress, NodePort, LoadBalancer or hostPort`, () => {
    assert.equal(objects.filter((object) => object.kind === "Ingress").length, 0);
    for (const service of objects.filter((object) => object.kind === "Service")) assert.equal((service.spec as Loose).type, "ClusterIP", service.metadata.name);
  });

  test(`${example}: 必做 9 — one Secret per component, no token shared: each Secret is read by one workload`, () => {
    assert.equal(objects.filter((object) => object.kind === "Secret").length, 0, "render never writes a Secret (values)");
    const readers = new Map<string, Set<string>>();
    for (const workload of workloads(objects)) {
      for (const reference of secretRefs(workload)) {
        const key = `${workload.metadata.namespace}/${reference.secret}`;
        readers.set(key, (readers.get(key) ?? new Set()).add(workload.metadata.name));
      }
    }
    for (const [secret, set] of readers) assert.equal(set.size, 1, `${secret} is read by ${[...set].join(", ")}`);
    // Every upstream credential lives in a Secret mcp-guard or the server itself reads, never in the agent's.
    const agentKeys = new Set(secretRefs(agentDeployment(objects)).map((reference) => reference.key));
    for (const token of upstreamTokens(config)) assert.ok(!agentKeys.has(token), `${token} reaches the agent`);
  });

  test(`${example}: 必做 10 — the sandbox Job template mounts no PVC, no Secret, no token`, () => {
    const configMap = objects.find((object) => object.kind === "ConfigMap" && object.metadata.name === "sandbox-job-template");
    assert.ok(configMap !== undefined);
    const job = yamlOf((configMap.data as Record<string, string>)["job.yaml"] as string);
    const pod = job.spec.template.spec;
    for (const volume of pod.volumes) assert.deepEqual(Object.keys(volume).sort(), ["emptyDir", "name"], volume.name);
    for (const volume of pod.volumes) assert.ok(volume.emptyDir.sizeLimit !== undefined);
    assert.equal(pod.automountServiceAccountToken, false);
    assert.ok(!JSON.stringify(pod).includes("secretKeyRef"));
  });

  // ---- seed 003's security checklist
  test(`${example}: seed 003 — the chat allowlist is set, never empty or "*"`, () => {
    const env = podSpec(agentDeployment(objects)).containers[0].env as Loose[];
    for (const platform of Object.keys(config.agent.platforms)) {
      const entry = env.find((item) => item.name === `${platform.toUpperCase()}_ALLOWED_USERS`);
      assert.ok(entry !== undefined && /^[0-9,]+$/.test(entry.value), `${platform} allowlist`);
    }
    assert.ok(!env.some((item) => /ALLOW_ALL_USERS|YOLO/.test(item.name)));
  });

  test(`${example}: seed 003 — the agent's NetworkPolicy lets it reach only mcp-guard, llm-proxy and egress-proxy, by namespace+pod selectors`, () => {
    const policy = find(objects, "NetworkPolicy", "hermes-gateway", system).spec as Loose;
    assert.deepEqual(policy.policyTypes, ["Ingress", "Egress"]);
    const targets = (policy.egress as Loose[]).map((rule) => {
      assert.equal(rule.to.length, 1);
      const peer = rule.to[0];
      assert.equal(peer.ipBlock, undefined, "no ipBlock for in-cluster services");
      assert.equal(peer.namespaceSelector.matchLabels["kubernetes.io/metadata.name"], tools);
      return peer.podSelector.matchLabels["app.kubernetes.io/name"];
    });
    assert.deepEqual(targets.sort(), ["egress-proxy", "llm-proxy", "mcp-guard"]);
    assert.deepEqual(policy.ingress, [], "no inbound connection: Telegram long-polling");
  });

  test(`${example}: seed 003 — secrets are Secret references or \${VAR}, never values in files`, () => {
    for (const [path, content] of files) assert.equal(secretShapeIn(content), undefined, `${path} contains a credential`);
    const seed = hermesSeed(objects);
    const authorization = seed.mcp_servers.perimeter.headers.Authorization;
    assert.equal(authorization, `Bearer \${${config.mcp.agents[0]?.tokenSecret}}`);
    assert.match(seed.model.api_key, /^\$\{[A-Z_]+\}$/);
  });

  // ---- issue 2, item 3: bullet by bullet
  test(`${example}: namespaces <name>-system, -tools, -sandbox${Object.values(config.llm.providers).some((provider) => provider.serve) ? ", -llm" : ""}`, () => {
    const names = objects.filter((object) => object.kind === "Namespace").map((object) => object.metadata.name).sort();
    const expected = [system, tools, sandbox, ...(Object.values(config.llm.providers).some((provider) => provider.serve) ? [`${name}-llm`] : [])].sort();
    assert.deepEqual(names, expected);
  });

  test(`${example}: the sandbox runner's Role: Jobs, ConfigMaps, pods and pods/log in the sandbox namespace only`, () => {
    const role = find(objects, "Role", "sandbox-runner", sandbox);
    assert.deepEqual(role.rules, [
      { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "delete", "get", "list", "watch"] },
      { apiGroups: [""], resources: ["configmaps"], verbs: ["create", "delete", "get", "list"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
    ]);
    const roles = objects.filter((object) => object.kind === "Role" && object.metadata.name === "sandbox-runner");
    assert.equal(roles.length, 1);
  });

  test(`${example}: no RBAC rule grants secrets, pods/exec, pods/attach, nodes/proxy, serviceaccounts/token, escalation or wildcards`, () => {
    for (const role of objects.filter((object) => object.kind === "Role" || object.kind === "ClusterRole")) {
      for (const rule of role.rules as Loose[]) {
        for (const field of ["apiGroups", "resources", "verbs"]) assert.ok(!rule[field].includes("*"), `${role.metadata.name}: wildcard in ${field}`);
        for (const resource of ["secrets", "pods/exec", "pods/attach", "pods/portforward", "nodes/proxy", "serviceaccounts/token"]) {
          assert.ok(!rule.resources.includes(resource), `${role.metadata.name} grants ${resource}`);
        }
        for (const verb of ["escalate", "bind", "impersonate"]) assert.ok(!rule.verbs.includes(verb));
        if (role.metadata.name.includes("kubernetes-mcp-server")) assert.deepEqual(rule.verbs, ["get", "list", "watch"]);
      }
    }
  });

  test(`${example}: the Hermes Deployment — init container seeds config.yaml only if absent, readiness on this process's gateway_state.json, resources, seccomp, NET_RAW dropped`, () => {
    const deployment = agentDeployment(objects);
    const pod = podSpec(deployment);
    const init = pod.initContainers[0];
    assert.match(init.command.join(" "), /if \[ ! -f \/opt\/data\/config\.yaml \]; then cp \/seed\/config\.yaml \/opt\/data\/config\.yaml/);
    const container = pod.containers[0];
    assert.deepEqual(container.args, ["gateway", "run"]);
    assert.deepEqual(container.readinessProbe.exec.command.slice(0, 2), ["/opt/hermes/.venv/bin/python", "-c"]);
    assert.equal(container.readinessProbe.exec.command[3], "/opt/data/gateway_state.json");
    assert.deepEqual(container.resources, { requests: config.agent.resources.requests, limits: config.agent.resources.limits });
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.deepEqual(container.securityContext, { allowPrivilegeEscalation: false, capabilities: { drop: ["NET_RAW"] } });
    assert.match(deployment.metadata.annotations?.["perimeter.dev/security-notes"] ?? "", /s6-overlay/);
    assert.equal(container.image, config.agent.image);
  });

  test(`${example}: the agent's environment holds its platform token, allowlist, mcp-guard token, virtual key and proxy settings — never a provider key or MCP upstream token`, () => {
    const env = podSpec(agentDeployment(objects)).containers[0].env as Loose[];
    const names = env.map((entry) => entry.name);
    for (const forbidden of [...providerKeys(config), ...upstreamTokens(config), config.mcp.admin.tokenSecret, config.sandbox.tokenSecret]) {
      assert.ok(!names.includes(forbidden), `${forbidden} in the agent's env`);
      assert.ok(!secretRefs(agentDeployment(objects)).some((reference) => reference.key === forbidden), `${forbidden} referenced by the agent`);
    }
    assert.ok(names.includes(config.mcp.agents[0]?.tokenSecret as string));
    for (const proxy of ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"]) assert.ok(names.includes(proxy));
    assert.equal(env.find((entry) => entry.name === "HTTPS_PROXY").value, `http://egress-proxy.${tools}.svc.cluster.local:3128`);
    const noProxy = env.find((entry) => entry.name === "NO_PROXY").value as string;
    assert.ok(noProxy.includes(`mcp-guard.${tools}.svc.cluster.local`) && noProxy.includes(`llm-proxy.${tools}.svc.cluster.local`));
    assert.deepEqual(new Set(secretRefs(agentDeployment(objects)).map((reference) => reference.secret)), new Set(["hermes-gateway"]));
  });

  test(`${example}: the Hermes config seed wires Hermes to the perimeter (model, fallbacks and auxiliary via llm-proxy; one MCP server, mcp-guard; approvals; security)`, () => {
    const seed = hermesSeed(objects);
    const llmProxy = `http://llm-proxy.${tools}.svc.cluster.local:8702/v1`;
    assert.equal(seed.model.provider, "custom");
    assert.equal(seed.model.base_url, llmProxy);
    assert.ok(seed.fallback_providers.length >= 1);
    for (const fallback of seed.fallback_providers) assert.equal(fallback.base_url, llmProxy);
    for (const task of Object.values(seed.auxiliary) as Loose[]) assert.equal(task.base_url, llmProxy);
    assert.deepEqual(Object.keys(seed.mcp_servers), ["perimeter"]);
    assert.equal(seed.mcp_servers.perimeter.url, `http://mcp-guard.${tools}.svc.cluster.local:8700/mcp`);
    assert.equal(seed.approvals.mode, config.agent.approvals);
    assert.notEqual(seed.approvals.mode, "off");
    assert.equal(seed.approvals.cron_mode, config.agent.cronApprovals);
    assert.equal(seed.security.redact_secrets, true);
    assert.equal(seed.security.allow_private_urls, false);
    assert.deepEqual(seed.security.website_blocklist.domains, config.agent.websiteBlocklist);
    if (config.agent.terminal === "sandbox") {
      for (const toolset of SANDBOX_DISABLED_TOOLSETS) assert.ok(seed.agent.disabled_toolsets.includes(toolset), toolset);
      for (const toolset of ["terminal", "code_execution"]) assert.ok(seed.agent.disabled_toolsets.includes(toolset));
      const text = (find(objects, "ConfigMap", "hermes-config-seed").data as Record<string, string>)["config.yaml"] as string;
      assert.match(text, /hermes_cli\/tools_config\.py/, "the config cites where the key comes from");
    }
  });

  test(`${example}: egress-proxy, mcp-guard, sandbox runner and llm-proxy run the perimeter image with \`perimeter serve\`, restricted-compliant`, () => {
    for (const service of SERVICES) {
      const deployment = find(objects, "Deployment", service, tools);
      const pod = podSpec(deployment);
      const container = pod.containers[0];
      assert.equal(container.image, config.kubernetes.perimeterImage);
      const port = (deployment.spec as Loose).template.spec.containers[0].ports[0].containerPort;
      // The sandbox runner's metrics listener (its health and audit feed for the dashboard, /metrics for Prometheus).
      const metrics = service === "sandbox-runner" ? ["--metrics-listen", "0.0.0.0:9464"] : [];
      assert.deepEqual(container.command, ["perimeter", "serve", SERVICE_ARGUMENT[service], "-c", "/etc/perimeter/perimeter.yaml", "--listen", `0.0.0.0:${port}`, ...metrics]);
      assert.deepEqual(pod.securityContext, { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } });
      assert.deepEqual(container.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } });
      assert.ok(container.resources.requests.cpu && container.resources.limits.memory);
      assert.equal((deployment.spec as Loose).replicas, 1);
      find(objects, "Service", service, tools);
    }
    for (const workload of workloads(objects)) {
      for (const container of containersOf(workload)) {
        assert.ok(container.resources?.limits?.cpu !== undefined && container.resources?.limits?.memory !== undefined, `${workload.metadata.name}/${container.name} limits`);
      }
      if (workload.metadata.name !== "hermes-gateway") {
        assert.equal(podSpec(workload).securityContext.runAsNonRoot, true, workload.metadata.name);
        assert.equal(podSpec(workload).securityContext.seccompProfile.type, "RuntimeDefault", workload.metadata.name);
      }
    }
  });

  test(`${example}: the runtime config gives builtin MCP servers their in-cluster url`, () => {
    const runtime = yamlOf((find(objects, "ConfigMap", "perimeter-config").data as Record<string, string>)["perimeter.yaml"] as string);
    const servers = runtime.mcp.servers as Record<string, Loose>;
    const sandboxEntry = Object.values(servers).find((server) => server.builtin === "sandbox");
    assert.equal(sandboxEntry.url, `http://sandbox-runner.${tools}.svc.cluster.local:8701/mcp`);
    assert.equal(sandboxEntry.headers.Authorization, `Bearer \${${config.sandbox.tokenSecret}}`);
    for (const server of Object.values(servers).filter((entry) => entry.builtin === "kubernetes-readonly")) {
      assert.equal(server.url, `http://kubernetes-mcp-server.${tools}.svc.cluster.local:8080/mcp`);
    }
    assert.ok(runtime.mcp.allowedHosts.includes(`mcp-guard.${tools}.svc.cluster.local`));
    assert.equal(runtime.sandbox.backend, "kubernetes");
  });

  test(`${example}: DNS is allowed only to kube-dns in kube-system`, () => {
    for (const policy of policies(objects)) {
      for (const rule of ((policy.spec as Loose).egress ?? []) as Loose[]) {
        const dns = (rule.ports ?? []).some((port: Loose) => port.port === 53);
        if (!dns) continue;
        assert.equal(rule.to.length, 1, policy.metadata.name);
        assert.equal(rule.to[0].namespaceSelector.matchLabels["kubernetes.io/metadata.name"], "kube-system");
        assert.equal(rule.to[0].podSelector.matchLabels["k8s-app"], "kube-dns");
      }
    }
  });

  test(`${example}: ipBlocks only for the public internet (private ranges excepted) and the API server, never for in-cluster services`, () => {
    for (const policy of policies(objects)) {
      for (const rule of ((policy.spec as Loose).egress ?? []) as Loose[]) {
        for (const peer of (rule.to ?? []) as Loose[]) {
          if (peer.ipBlock === undefined) {
            assert.ok(peer.namespaceSelector !== undefined, `${policy.metadata.name}: a peer without a namespace selector`);
            continue;
          }
          if (peer.ipBlock.cidr === "0.0.0.0/0") {
            for (const range of ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8"]) assert.ok(peer.ipBlock.except.includes(range), `${policy.metadata.name} lacks ${range}`);
            assert.deepEqual(peer.ipBlock.except, PRIVATE_IPV4);
          } else if (peer.ipBlock.cidr === "::/0") {
            assert.deepEqual(peer.ipBlock.except, PRIVATE_IPV6);
          } else {
            assert.equal(peer.ipBlock.cidr, config.kubernetes.apiServerCidr, `${policy.metadata.name}: unexpected ipBlock ${peer.ipBlock.cidr}`);
            assert.deepEqual(rule.ports, [{ protocol: "TCP", port: 443 }, { protocol: "TCP", port: 6443 }]);
            assert.ok(["sandbox-runner", "kubernetes-mcp-server"].includes(policy.metadata.name));
            assert.match(policy.metadata.annotations?.["perimeter.dev/ignore"] ?? "", /^K8S-NETPOL-IPBLOCK-IN-CLUSTER=/);
          }
        }
      }
    }
  });

  test(`${example}: egress-proxy and llm-proxy reach the internet on 443 only, or through toFQDNs with cni: cilium`, () => {
    for (const service of ["egress-proxy", "llm-proxy"]) {
      const policy = find(objects, "NetworkPolicy", service, tools).spec as Loose;
      const internet = (policy.egress as Loose[]).filter((rule) => rule.to.some((peer: Loose) => peer.ipBlock?.cidr === "0.0.0.0/0"));
      if (config.kubernetes.cni === "cilium") {
        assert.equal(internet.length, 0, `${service}: with cilium the internet is reached only through toFQDNs`);
        const cilium = find(objects, "CiliumNetworkPolicy", `${service}-fqdn`, tools).spec as Loose;
        assert.ok(cilium.egress.some((rule: Loose) => rule.toFQDNs !== undefined));
      } else {
        assert.equal(internet.length, 1, service);
        assert.deepEqual(internet[0].ports, [{ protocol: "TCP", port: 443 }]);
      }
      // Ingress only from the agent, the dashboard pod (its audit feed) and Prometheus when enabled.
      const sources = (policy.ingress as Loose[]).flatMap((rule) => rule.from.map((peer: Loose) => `${peer.namespaceSelector.matchLabels["kubernetes.io/metadata.name"]}/${peer.podSelector?.matchLabels["app.kubernetes.io/name"] ?? "*"}`));
      assert.ok(sources.every((source: string) => source.startsWith(`${system}/`) || source === `${tools}/dashboard` || source === `${config.kubernetes.observability.namespace}/*`), sources.join(", "));
    }
    if (config.kubernetes.cni === "cilium") {
      const fqdns = (find(objects, "CiliumNetworkPolicy", "egress-proxy-fqdn", tools).spec as Loose).egress.flatMap((rule: Loose) => rule.toFQDNs ?? []).map((entry: Loose) => entry.matchName ?? entry.matchPattern);
      for (const host of config.egress.allow) assert.ok(fqdns.includes(typeof host === "string" ? host : host.host), `${JSON.stringify(host)} not in toFQDNs`);
    }
  });

  test(`${example}: sandbox pods reach nothing, or only their own egress proxy when the sandbox has an allowlist`, () => {
    const sandboxPolicies = policies(objects, sandbox).filter((policy) => policy.metadata.name !== "default-deny-all");
    if (config.sandbox.network === "none") {
      assert.deepEqual(sandboxPolicies, [], "no allow rule at all, not even DNS");
    } else {
      const egress = sandboxPolicies.flatMap((policy) => (policy.spec as Loose).egress as Loose[]);
      for (const rule of egress) {
        const peer = rule.to[0];
        const target = peer.podSelector.matchLabels["app.kubernetes.io/name"] ?? peer.podSelector.matchLabels["k8s-app"];
        assert.ok(["egress-proxy-sandbox", "kube-dns"].includes(target), target);
      }
      const proxyConfig = yamlOf((find(objects, "ConfigMap", "perimeter-config").data as Record<string, string>)["sandbox-egress.yaml"] as string);
      assert.deepEqual(proxyConfig.egress.allow, config.sandbox.network.allow);
    }
  });

  test(`${example}: ingress to each service only from its callers`, () => {
    const callers: Record<string, string> = { "mcp-guard": "hermes-gateway", "llm-proxy": "hermes-gateway", "egress-proxy": "hermes-gateway", "sandbox-runner": "mcp-guard", "kubernetes-mcp-server": "mcp-guard" };
    for (const [service, caller] of Object.entries(callers)) {
      const policy = objects.find((object) => object.kind === "NetworkPolicy" && object.metadata.name === service);
      if (policy === undefined) continue;
      const fromPods = ((policy.spec as Loose).ingress as Loose[]).flatMap((rule) => rule.from).filter((peer: Loose) => peer.podSelector !== undefined).map((peer: Loose) => peer.podSelector.matchLabels["app.kubernetes.io/name"]);
      // The dashboard reads each service's audit feed; its own rule (dashboard.test.ts) names exactly that port.
      assert.deepEqual([...new Set(fromPods)].filter((name) => name !== "dashboard"), [caller], service);
    }
  });

  test(`${example}: the sandbox Job template ConfigMap carries the hardened template`, () => {
    const job = yamlOf((find(objects, "ConfigMap", "sandbox-job-template", tools).data as Record<string, string>)["job.yaml"] as string);
    const expected = yamlOf(toYaml(sandboxJobTemplate(config)));
    assert.deepEqual(job, expected);
    const env = job.spec.template.spec.containers[0].env;
    if (config.sandbox.network === "none") assert.equal(env, undefined, "no proxy, no variables");
    else assert.equal(env.find((entry: Loose) => entry.name === "HTTPS_PROXY").value, `http://egress-proxy-sandbox.${tools}.svc.cluster.local:3128`);
    const runner = podSpec(find(objects, "Deployment", "sandbox-runner", tools));
    const sources = runner.volumes.find((volume: Loose) => volume.name === "config").projected.sources;
    assert.ok(sources.some((source: Loose) => source.configMap.name === "sandbox-job-template" && source.configMap.items[0].path === "sandbox/job.yaml"));
    assert.ok(runner.containers[0].volumeMounts.some((mount: Loose) => mount.mountPath === "/etc/perimeter"));
  });

  test(`${example}: kubernetes-mcp-server is read-only with the core toolset, a tool list and Secrets denied`, () => {
    const server = Object.values(config.mcp.servers).find((entry) => entry.builtin === "kubernetes-readonly");
    if (server === undefined) {
      assert.ok(!objects.some((object) => object.metadata.name === "kubernetes-mcp-server"));
      return;
    }
    const toml = (find(objects, "ConfigMap", "kubernetes-mcp-server-config", tools).data as Record<string, string>)["config.toml"] as string;
    assert.match(toml, /^read_only = true$/m);
    assert.match(toml, /^toolsets = \["core"\]$/m);
    assert.ok(!/toolsets = .*"config"/.test(toml));
    assert.match(toml, new RegExp(`^enabled_tools = \\[${KUBERNETES_MCP_TOOLS.map((tool) => `"${tool}"`).join(", ")}\\]$`, "m"));
    assert.match(toml, /kind = "Secret"/);
    for (const namespace of server.namespaces) find(objects, "Role", `${name}-kubernetes-mcp-server-read`, namespace);
  });

  test(`${example}: every object carries the app.kubernetes.io labels`, () => {
    for (const object of objects) {
      for (const label of ["name", "instance", "part-of", "managed-by", "component"]) {
        assert.ok(object.metadata.labels?.[`app.kubernetes.io/${label}`] !== undefined, `${object.kind} ${object.metadata.name} lacks app.kubernetes.io/${label}`);
      }
    }
  });

  test(`${example}: local models are served in <name>-llm and reachable from llm-proxy only`, () => {
    const served = Object.entries(config.llm.providers).filter(([, provider]) => provider.serve !== undefined);
    for (const [provider] of served) {
      const deployment = find(objects, "Deployment", provider, `${name}-llm`);
      assert.equal(podSpec(deployment).automountServiceAccountToken, false);
      const policy = find(objects, "NetworkPolicy", provider, `${name}-llm`).spec as Loose;
      assert.deepEqual(policy.egress, [], "a model server has no egress");
      assert.equal(policy.ingress[0].from[0].podSelector.matchLabels["app.kubernetes.io/name"], "llm-proxy");
    }
  });

  test(`${example}: Secrets are printed as kubectl commands, or written as ExternalSecrets when configured`, () => {
    const externals = objects.filter((object) => object.kind === "ExternalSecret");
    if (config.kubernetes.externalSecrets === undefined) {
      assert.equal(externals.length, 0);
      const script = files.get("create-secrets.sh") ?? "";
      assert.match(script, /hermes-gateway\) echo "hermes-system" ;;/);
      assert.match(script, /hermes-gateway\) echo "[A-Z_ ]*PERIMETER_AGENT_TOKEN[A-Z_ ]*" ;;/);
      // Values reach kubectl in private files (argv is visible to every user); runbook.test.ts runs the script.
      assert.match(script, /--from-file="\$key=\$work\/\$key"/);
      assert.doesNotMatch(script, /--from-literal/);
    } else {
      assert.ok(externals.length >= 3);
      assert.ok(!files.has("create-secrets.sh"));
    }
  });

  // ---- issue 2, item 4: compose
  test(`${example} (compose): the agent is on an internal network only, with the proxy set; only egress services reach out`, () => {
    const compose = renderedFiles(config, "compose");
    const document = yamlOf(compose.get("compose.yaml") as string);
    const networks = document.networks as Record<string, Loose>;
    const agent = document.services["hermes-gateway"];
    for (const network of composeNetworks(agent)) assert.equal(networks[network].internal, true, `agent on non-internal ${network}`);
    assert.equal(agent.environment.HTTPS_PROXY, "http://egress-proxy:3128");
    assert.equal(agent.environment.HTTP_PROXY, "http://egress-proxy:3128");
    assert.match(agent.environment.NO_PROXY, /mcp-guard/);
    // A network without masquerading (the dashboard's, which exists only so Docker publishes its port) has no route out.
    const routed = (network: string) => networks[network].internal !== true && networks[network].driver_opts?.["com.docker.network.bridge.enable_ip_masquerade"] !== "false";
    const outside = Object.entries(document.services as Record<string, Loose>).filter(([, service]) => composeNetworks(service).some(routed)).map(([service]) => service);
    const allowed = new Set(["egress-proxy", "llm-proxy", "mcp-guard", "kubernetes-mcp-server", ...Object.keys(config.mcp.servers).map((server) => `mcp-${server}`)]);
    // With a sandbox allowlist the runner's in-process egress proxy dials out itself (one client per task).
    if (config.sandbox.network !== "none") allowed.add("sandbox-runner");
    else assert.ok(!outside.includes("sandbox-runner"), "a sandbox without an allowlist has no way out");
    for (const service of outside) assert.ok(allowed.has(service), `${service} can reach the internet`);
    assert.ok(outside.includes("egress-proxy") && outside.includes("llm-proxy"));
  });

  test(`${example} (compose): no host network, no Docker socket, every published port on 127.0.0.1`, () => {
    const compose = renderedFiles(config, "compose");
    const document = yamlOf(compose.get("compose.yaml") as string);
    for (const [service, definition] of Object.entries(document.services as Record<string, Loose>)) {
      assert.notEqual(definition.network_mode, "host", service);
      assert.ok(!["host"].includes(definition.pid) && !["host"].includes(definition.ipc), service);
      assert.notEqual(definition.privileged, true, service);
      assert.equal(definition.cap_add, undefined, service);
      for (const volume of definition.volumes ?? []) assert.ok(!String(volume).includes("docker.sock"), service);
      for (const port of definition.ports ?? []) assert.match(String(port), /^127\.0\.0\.1:/, `${service} publishes ${port}`);
      assert.ok(!(definition.security_opt ?? []).some((option: string) => option === "seccomp=unconfined" || option === "seccomp:unconfined"), `${service} turns seccomp off`);
    }
  });

  test(`${example} (compose): our services drop ALL capabilities, cannot gain privileges, run read-only with a tmpfs`, () => {
    const document = yamlOf(renderedFiles(config, "compose").get("compose.yaml") as string);
    for (const service of ["egress-proxy", "mcp-guard", "llm-proxy", "sandbox-runner"]) {
      const definition = document.services[service];
      assert.deepEqual(definition.cap_drop, ["ALL"], service);
      assert.ok(definition.security_opt.includes("no-new-privileges:true"), service);
      assert.equal(definition.read_only, true, service);
      assert.ok(definition.tmpfs.some((entry: string) => entry.startsWith("/tmp:")), service);
      assert.match(definition.user, /^65532:65532$/);
      assert.equal(definition.image, config.kubernetes.perimeterImage);
    }
    assert.deepEqual(document.services["hermes-gateway"].cap_drop, ["NET_RAW"]);
    assert.ok(document.services["hermes-gateway"].security_opt.includes("no-new-privileges:true"));
  });

  test(`${example} (compose): one env file per service, none shared, and .env.example lists every secret per service`, () => {
    const compose = renderedFiles(config, "compose");
    const document = yamlOf(compose.get("compose.yaml") as string);
    const owners = new Map<string, string>();
    for (const [service, definition] of Object.entries(document.services as Record<string, Loose>)) {
      for (const file of definition.env_file ?? []) {
        assert.equal(owners.get(file), undefined, `${file} is read by ${owners.get(file)} and ${service}`);
        owners.set(file, service);
      }
    }
    const example = compose.get(".env.example") as string;
    for (const file of owners.keys()) {
      const template = compose.get(`${file}.example`);
      assert.ok(template !== undefined, `${file}.example missing`);
      for (const line of template.split("\n").filter((entry) => /^[A-Z_]+=$/.test(entry))) assert.ok(example.includes(line), `${line} missing from .env.example`);
    }
    const agentFile = compose.get("env/hermes-gateway.env.example") as string;
    for (const forbidden of [...providerKeys(config), ...upstreamTokens(config)]) assert.ok(!agentFile.includes(`${forbidden}=`), `${forbidden} in the agent's env file`);
  });

  test(`${example} (compose): the same Hermes config seed, pointed at the Compose service names`, () => {
    const compose = renderedFiles(config, "compose");
    const seed = yamlOf(compose.get("config/hermes-config.yaml") as string);
    assert.equal(seed.model.base_url, "http://llm-proxy:8702/v1");
    assert.equal(seed.mcp_servers.perimeter.url, "http://mcp-guard:8700/mcp");
    assert.equal(seed.security.redact_secrets, true);
    const kubernetesSeed = hermesSeed(objects);
    assert.deepEqual(Object.keys(seed), Object.keys(kubernetesSeed));
    assert.deepEqual(seed.approvals, kubernetesSeed.approvals);
  });
}

test("terminal: in-pod keeps Hermes' local terminal, file and code tools (the network toolsets stay off, hermes.test.ts)", () => {
  const config = exampleConfig("k3s-telegram-minimax");
  const inPod = { ...config, agent: { ...config.agent, terminal: "in-pod" as const } };
  const seed = hermesSeed(manifestObjects(renderedFiles(inPod, "kubernetes")));
  assert.equal(seed.terminal.backend, "local");
  for (const toolset of SANDBOX_DISABLED_TOOLSETS) assert.ok(!seed.agent.disabled_toolsets.includes(toolset), toolset);
});
