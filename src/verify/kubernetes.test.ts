// Requirements (issue 18): `perimeter verify isolation -t kubernetes` runs the real kubectl — `kubectl get` for the
// operator's checks and `kubectl exec` with python3 for the agent's — against a stand-in API server (no API server can
// be installed here: src/verify/kubernetes-stand-in.ts speaks the REST paths, discovery and the exec WebSocket
// protocol) serving examples/k3s-telegram-minimax.yaml's real render. The "pod" is a network namespace of ours
// with the agent's uid and environment; the egress proxy is the real `perimeter serve egress-proxy`; the API
// ClusterIP, the allowlisted origin and a LAN service are listeners we put in a "cluster" namespace. A correct
// deployment passes; each broken variant makes exactly its checks FAIL.
// Not exercised here: a real API server's authentication and admission, a CNI enforcing the NetworkPolicies (the
// pod's routes stand for it), SPDY, mcp-guard inside a cluster (verify mcp's probe is proven on -t local).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../config/index.ts";
import { renderKubernetes } from "../render/index.ts";
import { startKubernetesStandIn } from "./kubernetes-stand-in.ts";
import type { KubernetesStandIn } from "./kubernetes-stand-in.ts";
import { explainChecks as explain, failedChecks as failed, runVerification, NAMED_LISTENER, startInNamespace } from "./testing.ts";
import type { Verification } from "./testing.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "perimeter.js");
const EXAMPLE = join(ROOT, "examples", "k3s-telegram-minimax.yaml");
const isRoot = process.getuid?.() === 0;
const haveKubectl = spawnSync("kubectl", ["version", "--client"], { stdio: "ignore" }).status === 0;
const SKIP = !isRoot ? "needs root: network namespaces" : !haveKubectl ? "needs kubectl on PATH" : false;
const suffix = Math.random().toString(16).slice(2, 7);
const N = 1 + Math.floor(Math.random() * 250);
const NS = { pod: `kp-${suffix}`, cluster: `kc-${suffix}` };
const CLUSTER_IP = `10.243.${N}.1`;
const POD_IP = `10.243.${N}.2`;
const API_IP = `10.245.${N}.1`;
const ORIGIN_IP = `10.244.${N}.2`;
const LAN_IP = `10.246.${N}.2`;

const children: ChildProcess[] = [];
let directory = "";
let standIn: KubernetesStandIn;
let kubeconfig = "";
const config = loadConfig(EXAMPLE);
const rendered = renderKubernetes(config).files.flatMap((file) => file.objects ?? []) as Array<Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } }>;
const deployment = rendered.find((object) => object.kind === "Deployment" && object.metadata.name === "hermes-gateway");
const systemNamespace = `${config.name}-system`;
const toolsNamespace = `${config.name}-tools`;

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

function cleanup(): void {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  for (const name of Object.values(NS)) {
    spawnSync("ip", ["netns", "del", name], { stdio: "ignore" });
    rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  }
  if (directory !== "") rmSync(directory, { recursive: true, force: true });
}

function startIn(namespace: string, command: string[], pattern: RegExp): Promise<ChildProcess> {
  return startInNamespace(namespace, command, pattern, directory, children);
}

const LISTENER = NAMED_LISTENER;

const POD_ENVIRONMENT: Record<string, string> = {
  PATH: "/usr/bin:/bin",
  HTTPS_PROXY: `http://${CLUSTER_IP}:3128`,
  HTTP_PROXY: `http://${CLUSTER_IP}:3128`,
  NO_PROXY: `.svc.cluster.local,${CLUSTER_IP}`,
  TELEGRAM_BOT_TOKEN: "123456:telegram-token-the-agent-may-hold",
  PERIMETER_AGENT_TOKEN: "agent-token-0123456789abcdef",
  KUBERNETES_SERVICE_HOST: API_IP,
  KUBERNETES_SERVICE_PORT: "443",
};

function setPod(environment: Record<string, string> = POD_ENVIRONMENT): void {
  const labels = (deployment as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels;
  standIn.setPod({ name: "hermes-gateway-7d9f-abcde", namespace: systemNamespace, labels, container: "hermes", networkNamespace: NS.pod, uid: 10000, environment });
}

function hostsFile(names: boolean): void {
  mkdirSync(`/etc/netns/${NS.pod}`, { recursive: true });
  writeFileSync(`/etc/netns/${NS.pod}/hosts`, `127.0.0.1 localhost\n${names ? `${CLUSTER_IP} mcp-guard.${toolsNamespace}.svc.cluster.local\n${ORIGIN_IP} api.telegram.org\n` : ""}`);
}

function loadRender(objects = rendered): void {
  for (const object of objects) if (["Deployment", "NetworkPolicy", "RoleBinding", "ClusterRoleBinding"].includes(object.kind)) standIn.put(structuredClone(object));
  standIn.put({ apiVersion: "v1", kind: "Service", metadata: { name: "kubernetes", namespace: "default" }, spec: { clusterIP: API_IP, ports: [{ name: "https", port: 443 }] } });
}

function verify(): Promise<Verification> {
  return runVerification(process.execPath, [BIN, "verify", "isolation", "-t", "kubernetes", "-c", EXAMPLE, "--kubeconfig", kubeconfig, "--lan", `${LAN_IP}:30002`, "--format", "json"], { cwd: directory, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory } });
}

before(async () => {
  if (SKIP !== false) return;
  process.on("exit", cleanup);
  directory = mkdtempSync(join(tmpdir(), "perimeter-verify-k8s-"));
  for (const name of Object.values(NS)) {
    ip("netns", "add", name);
    ip("-n", name, "link", "set", "lo", "up");
  }
  ip("link", "add", `kc-${suffix}`, "netns", NS.cluster, "type", "veth", "peer", "name", `kp-${suffix}`, "netns", NS.pod);
  ip("-n", NS.cluster, "addr", "add", `${CLUSTER_IP}/24`, "dev", `kc-${suffix}`);
  ip("-n", NS.pod, "addr", "add", `${POD_IP}/24`, "dev", `kp-${suffix}`);
  ip("-n", NS.cluster, "link", "set", `kc-${suffix}`, "up");
  ip("-n", NS.pod, "link", "set", `kp-${suffix}`, "up");
  for (const address of [API_IP, ORIGIN_IP, LAN_IP]) ip("-n", NS.cluster, "addr", "add", `${address}/32`, "dev", "lo");
  await startIn(NS.cluster, [process.execPath, "-e", LISTENER, API_IP, "443", "kube-apiserver"], /kube-apiserver listening/);
  await startIn(NS.cluster, [process.execPath, "-e", LISTENER, ORIGIN_IP, "443", "telegram"], /telegram listening/);
  await startIn(NS.cluster, [process.execPath, "-e", LISTENER, LAN_IP, "30002", "lan"], /lan listening/);
  await startIn(NS.cluster, [process.execPath, BIN, "serve", "egress-proxy", "--listen", `${CLUSTER_IP}:3128`, "--allow", "api.telegram.org", "--allow-cidr", `${ORIGIN_IP}/32`, "--resolve", `api.telegram.org=${ORIGIN_IP}`, "--metrics", "127.0.0.1:9810"], /listening|ready/);
  hostsFile(true);
  standIn = await startKubernetesStandIn();
  kubeconfig = join(directory, "kubeconfig");
  writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters: [{name: stand-in, cluster: {server: "${standIn.url}"}}]\nusers: [{name: verify, user: {token: stand-in}}]\ncontexts: [{name: stand-in, context: {cluster: stand-in, user: verify}}]\ncurrent-context: stand-in\n`);
  loadRender();
  setPod();
});

after(async () => {
  await standIn?.close();
  cleanup();
});

test("a correct deployment passes every isolation check, through kubectl get and kubectl exec", { skip: SKIP }, async () => {
  const verification = await verify();
  assert.deepEqual(failed(verification), [], explain(verification));
  assert.equal(verification.code, 0);
  const byId = new Map(verification.report.results.map((result) => [result.id, result]));
  for (const id of ["isolation.host-access", "isolation.rolebindings", "isolation.network-policy", "isolation.service-account-token", "isolation.dns", "isolation.proxy-allows", "isolation.proxy-refuses", "isolation.direct", "isolation.decisive-probe", "isolation.lan", "isolation.agent-env"]) {
    assert.equal(byId.get(id)?.status, "PASS", `${id}: ${JSON.stringify(byId.get(id))}`);
  }
  assert.match(byId.get("isolation.decisive-probe")?.evidence ?? "", new RegExp(`Kubernetes API ClusterIP ${API_IP.replace(/\./g, "\\.")}`));
  assert.ok(standIn.execs.some((exec) => exec.container === "hermes" && exec.command[0] === "python3" && exec.command[1] === "-c"), "the probe ran through kubectl exec with python3");
  assert.ok(standIn.requests.some((request) => request.path === `/apis/networking.k8s.io/v1/namespaces/${systemNamespace}/networkpolicies`), "NetworkPolicies listed through the API");
});

interface Variant {
  readonly name: string;
  readonly expected: readonly string[];
  readonly breakIt: () => void;
  readonly repair: () => void;
}

const withDeployment = (edit: (spec: Record<string, unknown>) => void) => () => {
  const changed = structuredClone(deployment) as unknown as Record<string, unknown> & { spec: { template: { spec: Record<string, unknown> } } };
  edit(changed.spec.template.spec);
  standIn.put(changed);
};

const VARIANTS: Variant[] = [
  {
    name: "the service-account token mounted into the agent's pod",
    expected: ["isolation.host-access"],
    breakIt: withDeployment((spec) => (spec.automountServiceAccountToken = true)),
    repair: () => loadRender(),
  },
  {
    name: "a hostPath volume and a privileged container",
    expected: ["isolation.host-access"],
    breakIt: withDeployment((spec) => {
      spec.volumes = [...((spec.volumes as unknown[]) ?? []), { name: "host", hostPath: { path: "/" } }];
      (spec.containers as Array<Record<string, unknown>>)[0]!.securityContext = { privileged: true };
    }),
    repair: () => loadRender(),
  },
  {
    name: "a RoleBinding granting the agent's ServiceAccount a role",
    expected: ["isolation.rolebindings"],
    breakIt: () => standIn.put({ apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", metadata: { name: "agent-can-read", namespace: systemNamespace }, roleRef: { kind: "ClusterRole", name: "view" }, subjects: [{ kind: "ServiceAccount", name: "hermes-gateway", namespace: systemNamespace }] }),
    repair: () => standIn.remove("RoleBinding", systemNamespace, "agent-can-read"),
  },
  {
    name: "the agent's NetworkPolicies deleted",
    expected: ["isolation.network-policy"],
    breakIt: () => {
      for (const object of rendered) if (object.kind === "NetworkPolicy" && object.metadata.namespace === systemNamespace) standIn.remove("NetworkPolicy", systemNamespace, object.metadata.name);
    },
    repair: () => loadRender(),
  },
  {
    name: "the pod reaches the Kubernetes API ClusterIP (the decisive probe)",
    expected: ["isolation.decisive-probe"],
    breakIt: () => ip("-n", NS.pod, "route", "add", `${API_IP}/32`, "via", CLUSTER_IP),
    repair: () => ip("-n", NS.pod, "route", "del", `${API_IP}/32`),
  },
  {
    name: "the pod reaches the LAN service",
    expected: ["isolation.lan"],
    breakIt: () => ip("-n", NS.pod, "route", "add", `${LAN_IP}/32`, "via", CLUSTER_IP),
    repair: () => ip("-n", NS.pod, "route", "del", `${LAN_IP}/32`),
  },
  {
    name: "the pod reaches the allowlisted host without the proxy",
    expected: ["isolation.direct"],
    breakIt: () => ip("-n", NS.pod, "route", "add", `${ORIGIN_IP}/32`, "via", CLUSTER_IP),
    repair: () => ip("-n", NS.pod, "route", "del", `${ORIGIN_IP}/32`),
  },
  {
    name: "the provider key in the agent's Secret",
    expected: ["isolation.agent-env"],
    breakIt: () => setPod({ ...POD_ENVIRONMENT, MINIMAX_API_KEY: "minimax-key-that-belongs-to-llm-proxy" }),
    repair: () => setPod(),
  },
  {
    name: "no HTTPS_PROXY in the agent's environment",
    expected: ["isolation.proxy-allows", "isolation.proxy-refuses"],
    breakIt: () => {
      const { HTTPS_PROXY: _https, HTTP_PROXY: _http, ...rest } = POD_ENVIRONMENT;
      setPod(rest);
    },
    repair: () => setPod(),
  },
  {
    name: "cluster DNS does not answer the pod",
    expected: ["isolation.dns"],
    breakIt: () => hostsFile(false),
    repair: () => hostsFile(true),
  },
];

for (const variant of VARIANTS) {
  test(`broken: ${variant.name} → FAIL ${variant.expected.join(", ")} and nothing else`, { skip: SKIP }, async () => {
    variant.breakIt();
    try {
      const verification = await verify();
      assert.deepEqual(failed(verification), [...variant.expected].sort(), explain(verification));
      assert.equal(verification.code, 1);
    } finally {
      variant.repair();
    }
  });
}
