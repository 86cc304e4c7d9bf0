// The engine: the seeds' own manifests as fixtures with expected findings, the false positives other scanners are
// known for (each a test that must stay quiet), line and column numbers in multi-document files, kustomize
// directories, suppressions with reasons and expiry, and parse errors that stop the run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCheck } from "./check.ts";
import type { CheckOptions } from "./check.ts";
import type { CheckReport } from "./model.ts";

const FIXTURES = join(import.meta.dirname, "fixtures");
const TODAY = "2026-06-01";

function check(paths: string[], options: Partial<CheckOptions> = {}): CheckReport {
  return runCheck(paths, { cwd: FIXTURES, today: TODAY, ...options });
}

function active(result: CheckReport): string[] {
  return result.findings.filter((finding) => finding.suppression === undefined).map((finding) => `${finding.ruleId} ${finding.location.file}:${finding.location.line}:${finding.location.column}`);
}

function scratch(files: Record<string, string>): { directory: string; dispose: () => void } {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-check-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(directory, name, ".."), { recursive: true });
    writeFileSync(join(directory, name), text);
  }
  return { directory, dispose: () => rmSync(directory, { recursive: true, force: true }) };
}

function checkText(files: Record<string, string>, paths?: string[], options: Partial<CheckOptions> = {}): CheckReport {
  const { directory, dispose } = scratch(files);
  try {
    return runCheck(paths ?? ["."], { cwd: directory, today: TODAY, ...options });
  } finally {
    dispose();
  }
}

// --- the seeds --------------------------------------------------------------------------------------------------

test("seed 003's k3s manifests: exactly the expected findings, and the agent container is not flagged for runAsNonRoot, drop ALL or readOnlyRootFilesystem", () => {
  const result = check(["seed-003"]);
  assert.deepEqual(result.errors, []);
  assert.deepEqual(active(result).sort(), [
    "HERMES-LOCAL-TERMINAL-PUBLIC-CHAT seed-003/hermes-config.yaml:13:7",
    "K8S-CAPABILITIES-NOT-DROPPED seed-003/hermes-deployment.yaml:28:11",
    "K8S-IMAGE-TAG seed-003/hermes-deployment.yaml:45:11",
    "K8S-NETPOL-DNS-UNSCOPED seed-003/hermes-networkpolicy.yaml:18:7",
    "K8S-NETPOL-METADATA-REACHABLE seed-003/hermes-networkpolicy.yaml:25:13",
    "K8S-NETPOL-NO-DEFAULT-DENY seed-003/hermes-namespace-storage.yaml:5:3",
    "K8S-PRIV-ESCALATION seed-003/hermes-deployment.yaml:28:11",
    "K8S-READONLY-ROOTFS seed-003/hermes-deployment.yaml:28:11",
    "K8S-RESOURCES seed-003/hermes-deployment.yaml:28:11",
    "K8S-RUN-AS-ROOT seed-003/hermes-deployment.yaml:28:11",
  ]);
  // Every finding on line 28 is about the busybox init container, none about the agent container.
  for (const finding of result.findings.filter((candidate) => candidate.location.file.endsWith("hermes-deployment.yaml") && candidate.ruleId !== "K8S-IMAGE-TAG")) {
    assert.match(finding.message, /init container "seed-config"/);
  }
});

test("seed 003: the ipBlock aimed at the colony ingress IP (the DNAT trap) is reported when written the tempting way", () => {
  const result = checkText({
    "policy.yaml": `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: hermes-colony, namespace: hermes }
spec:
  podSelector: { matchLabels: { app: hermes } }
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock: { cidr: 192.168.1.206/32 }
      ports: [{ protocol: TCP, port: 80 }]
`,
  });
  assert.deepEqual(active(result), ["K8S-NETPOL-IPBLOCK-IN-CLUSTER policy.yaml:9:22"]);
});

test("seed 000's examples: exactly the expected findings (the :latest image, RollingUpdate on the agent's volume, no default deny in the sandbox namespace)", () => {
  const result = check(["seed-000"]);
  assert.deepEqual(result.errors, []);
  assert.deepEqual(active(result).sort(), [
    "K8S-AGENT-STRATEGY seed-000/hermes-system.yaml:23:1",
    "K8S-IMAGE-TAG seed-000/hermes-system.yaml:40:11",
    "K8S-NETPOL-NO-DEFAULT-DENY seed-000/hermes-sandbox.yaml:6:3",
  ]);
});

// --- known false positives of other scanners: each stays quiet ---------------------------------------------------

const HARDENED_CONTAINER = `        - name: app
          image: registry.example/app:1.2.3
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: { drop: [ALL] }
          resources:
            requests: { cpu: 100m, memory: 64Mi }
            limits: { cpu: 500m, memory: 128Mi }
`;

test("false positive: runAsNonRoot and seccomp set at the pod level are inherited by every container (init and ephemeral included)", () => {
  const result = checkText({
    "job.yaml": `apiVersion: batch/v1
kind: CronJob
metadata: { name: report, namespace: apps }
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          automountServiceAccountToken: false
          restartPolicy: Never
          securityContext:
            runAsNonRoot: true
            runAsUser: 1000
            seccompProfile: { type: RuntimeDefault }
          initContainers:
${HARDENED_CONTAINER.replace(/^ {8}/gm, "            ")}          containers:
${HARDENED_CONTAINER.replace(/^ {8}/gm, "            ")}`,
  });
  const rules = active(result).map((entry) => entry.split(" ")[0]);
  assert.deepEqual(result.errors, []);
  assert.ok(!rules.includes("K8S-RUN-AS-ROOT"), rules.join(", "));
  assert.ok(!rules.includes("K8S-SECCOMP"), rules.join(", "));
});

test("a container-level setting overrides the pod's: runAsUser 0 and seccomp Unconfined in one container are reported for it alone", () => {
  const result = checkText({
    "pod.yaml": `apiVersion: v1
kind: Pod
metadata: { name: mixed, namespace: apps }
spec:
  automountServiceAccountToken: false
  securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: RuntimeDefault } }
  containers:
${HARDENED_CONTAINER.replace(/^ {8}/gm, "    ")}    - name: rooty
      image: registry.example/rooty:1.0
      securityContext:
        runAsUser: 0
        runAsNonRoot: false
        seccompProfile: { type: Unconfined }
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: { drop: [ALL] }
      resources: { requests: { cpu: 1m, memory: 1Mi }, limits: { cpu: 1m, memory: 1Mi } }
`,
  });
  const messages = result.findings.map((finding) => `${finding.ruleId}: ${finding.message}`);
  assert.equal(messages.filter((message) => message.startsWith("K8S-RUN-AS-ROOT")).length, 1);
  assert.match(messages.find((message) => message.startsWith("K8S-RUN-AS-ROOT")) ?? "", /"rooty"/);
  assert.match(messages.find((message) => message.startsWith("K8S-SECCOMP")) ?? "", /"rooty" runs with seccomp Unconfined/);
});

test("false positive: pod checks never run on kinds without a pod template (Service, ConfigMap, CRDs with `containers`)", () => {
  const result = checkText({
    "other.yaml": `apiVersion: v1
kind: Service
metadata: { name: web, namespace: apps }
spec:
  selector: { app: web }
  ports: [{ port: 80 }]
---
apiVersion: v1
kind: ConfigMap
metadata: { name: template, namespace: apps }
data:
  containers: "privileged: true"
---
apiVersion: example.dev/v1
kind: Workflow
metadata: { name: build, namespace: apps }
spec:
  template:
    spec:
      hostNetwork: true
      containers:
        - { name: build, image: busybox, securityContext: { privileged: true } }
`,
  });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(active(result), []);
});

test("false positive: a NetworkPolicy with an empty podSelector ({} or null) is recognised as the namespace's default deny", () => {
  for (const selector of ["{}", "", "null"]) {
    const result = checkText({
      "deny.yaml": `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: default-deny, namespace: apps }
spec:
  podSelector: ${selector}
  policyTypes: [Ingress, Egress]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: apps }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      automountServiceAccountToken: false
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: RuntimeDefault } }
      containers:
${HARDENED_CONTAINER}`,
    });
    assert.deepEqual(result.errors, [], `selector "${selector}"`);
    assert.deepEqual(active(result), [], `selector "${selector}"`);
  }
});

test("separate deny-ingress and deny-egress policies together count as a default deny; one alone does not", () => {
  const deployment = `apiVersion: v1
kind: Pod
metadata: { name: web, namespace: apps }
spec:
  automountServiceAccountToken: false
  securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: RuntimeDefault } }
  containers:
${HARDENED_CONTAINER.replace(/^ {8}/gm, "    ")}`;
  const ingress = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: deny-ingress, namespace: apps }\nspec: { podSelector: {} }\n";
  const egress = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: deny-egress, namespace: apps }\nspec: { podSelector: {}, policyTypes: [Egress] }\n";
  assert.deepEqual(active(checkText({ "a.yaml": `${deployment}---\n${ingress}---\n${egress}` })), []);
  const onlyIngress = checkText({ "a.yaml": `${deployment}---\n${ingress}` });
  assert.match(onlyIngress.findings.find((finding) => finding.ruleId === "K8S-NETPOL-NO-DEFAULT-DENY")?.message ?? "", /denies Egress by default/);
});

test("multi-document files: every document is checked and findings carry the line and column of their own document", () => {
  const documents = ["a", "b", "c"].map(
    (name) => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: apps }
spec:
  automountServiceAccountToken: false
  securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: RuntimeDefault } }
  containers:
    - name: ${name}
      image: registry.example/${name}:1
      securityContext:
        privileged: true
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: { drop: [ALL] }
      resources: { requests: { cpu: 1m, memory: 1Mi }, limits: { cpu: 1m, memory: 1Mi } }
`,
  );
  const result = checkText({ "multi.yaml": `# three pods\n${documents.join("---\n")}` });
  const privileged = result.findings.filter((finding) => finding.ruleId === "K8S-PRIVILEGED").map((finding) => `${finding.subject} ${finding.location.line}:${finding.location.column}`);
  // Document k starts at line 2 + 16k; `privileged` is its 11th line, indented 8.
  assert.deepEqual(privileged, ["Pod/apps/a 12:9", "Pod/apps/b 28:9", "Pod/apps/c 44:9"]);
});

test("kind: List items are checked with their own positions", () => {
  const result = checkText({
    "list.yaml": `apiVersion: v1
kind: List
items:
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: { name: everyone-admin }
    roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin }
    subjects: [{ kind: Group, name: system:authenticated }]
`,
  });
  assert.deepEqual(active(result), ["K8S-RBAC-CLUSTER-ADMIN list.yaml:7:72"]);
});

test("did you mean: misspelled security keys are reported with the key they were meant to be", () => {
  const result = checkText({
    "pod.yaml": `apiVersion: v1
kind: Pod
metadata: { name: typo, namespace: apps }
spec:
  automountServiceAcountToken: false
  containers:
    - name: app
      image: registry.example/app:1
      securityContex:
        allowPrivilegeEscalation: false
`,
  });
  const unknown = result.findings.filter((finding) => finding.ruleId === "K8S-UNKNOWN-KEY").map((finding) => `${finding.location.line}:${finding.location.column} ${finding.message.replace(/;.*$/, "")}`);
  assert.deepEqual(unknown, [
    '5:3 unknown key "automountServiceAcountToken" in the pod spec — did you mean "automountServiceAccountToken"?',
    '9:7 unknown key "securityContex" in a container — did you mean "securityContext"?',
  ]);
  // The typo'd settings are not taken as written: the token is still mounted and escalation still allowed.
  assert.ok(result.findings.some((finding) => finding.ruleId === "K8S-SA-TOKEN-AUTOMOUNT"));
  assert.ok(result.findings.some((finding) => finding.ruleId === "K8S-PRIV-ESCALATION"));
});

test("the agent is recognised by image, by `gateway run`, or by label; the s6 exemption applies to the agent container only", () => {
  const pod = (name: string, labels: string, image: string, args: string) => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: hermes, labels: ${labels} }
spec:
  automountServiceAccountToken: false
  securityContext: { seccompProfile: { type: RuntimeDefault } }
  containers:
    - name: main
      image: ${image}
      args: ${args}
      securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: [NET_RAW] } }
      resources: { requests: { cpu: 1m, memory: 1Mi }, limits: { cpu: 1m, memory: 1Mi } }
`;
  const documents = [
    pod("by-image", "{}", "ghcr.io/mirror/nousresearch/hermes-agent:v2026.11.1", "[]"),
    pod("by-args", "{}", "registry.example/hermes-fork:1.0", "[gateway, run]"),
    pod("by-label", "{ app.kubernetes.io/name: hermes }", "registry.example/hermes-fork:1.0", "[]"),
    pod("not-agent", "{ app: web }", "registry.example/web:1.0", "[]"),
  ];
  const result = checkText({ "pods.yaml": documents.join("---\n") });
  const rootFindings = result.findings.filter((finding) => finding.ruleId === "K8S-RUN-AS-ROOT" || finding.ruleId === "K8S-CAPABILITIES-NOT-DROPPED" || finding.ruleId === "K8S-READONLY-ROOTFS");
  assert.deepEqual([...new Set(rootFindings.map((finding) => finding.subject))], ["Pod/hermes/not-agent"]);
  // The agents are agents: no egress policy selects them.
  assert.deepEqual(result.findings.filter((finding) => finding.ruleId === "K8S-NETPOL-AGENT-UNSELECTED").map((finding) => finding.subject).sort(), ["Pod/hermes/by-args", "Pod/hermes/by-image", "Pod/hermes/by-label"]);
});

test("an agent container that does not drop NET_RAW is reported even though it may keep the s6 capabilities", () => {
  const result = checkText({
    "pod.yaml": `apiVersion: v1
kind: Pod
metadata: { name: hermes, namespace: hermes }
spec:
  automountServiceAccountToken: false
  securityContext: { seccompProfile: { type: RuntimeDefault } }
  containers:
    - name: hermes
      image: nousresearch/hermes-agent:v2026.11.1
      securityContext: { allowPrivilegeEscalation: false }
      resources: { requests: { cpu: 1m, memory: 1Mi }, limits: { cpu: 1m, memory: 1Mi } }
`,
  });
  assert.match(result.findings.find((finding) => finding.ruleId === "K8S-CAPABILITIES-NOT-DROPPED")?.message ?? "", /does not drop NET_RAW/);
});

// --- inputs -----------------------------------------------------------------------------------------------------

test("unparseable YAML is an error with its location, and the file's other documents are not silently dropped", () => {
  const result = checkText({ "broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\nkey: [unclosed\n" });
  assert.equal(result.errors.length, 1);
  assert.equal(result.errors[0]?.location.file, "broken.yaml");
  assert.equal(result.errors[0]?.location.line, 6);
});

test("a document without kind in a manifest file, duplicate keys, and a named file of unknown shape are errors", () => {
  assert.match(checkText({ "m.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\n---\nfoo: bar\n" }).errors[0]?.message ?? "", /no apiVersion/);
  assert.match(checkText({ "m.yaml": "apiVersion: v1\nkind: ConfigMap\nkind: Secret\n" }).errors[0]?.message ?? "", /YAML: Map keys must be unique/);
  const unknown = checkText({ "values.yaml": "replicaCount: 2\n" }, ["values.yaml"]);
  assert.match(unknown.errors[0]?.message ?? "", /not a Kubernetes manifest/);
  // Found while walking a directory, the same file is listed as not checked rather than an error.
  const walked = checkText({ "values.yaml": "replicaCount: 2\n" });
  assert.deepEqual(walked.errors, []);
  assert.deepEqual(walked.skipped.map((entry) => entry.file), ["values.yaml"]);
});

test("a Dockerfile with an unknown instruction and an .env with a malformed line are errors with their line", () => {
  const result = checkText({ Dockerfile: "FROM node:24\nRUNN echo\n", "app.env": "GOOD=1\nthis is not an assignment\n" });
  assert.deepEqual(result.errors.map((error) => `${error.location.file}:${error.location.line}`).sort(), ["Dockerfile:2", "app.env:2"]);
});

test("standard input: a manifest piped to `-` is checked under the name <stdin>", () => {
  const result = runCheck(["-"], { cwd: FIXTURES, today: TODAY, stdinText: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: open\n" });
  assert.deepEqual(active(result), ["K8S-PSA-LABELS <stdin>:3:1"]);
});

test("compose: Hermes' default network_mode host, published ports and socket mounts are reported at their lines", () => {
  const result = checkText({
    "docker-compose.yml": `services:
  gateway:
    image: nousresearch/hermes-agent:v2026.11.1
    command: gateway run
    network_mode: host
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - ./data:/opt/data
    ports:
      - "8642:8642"
      - "127.0.0.1:9119:9119"
      - "[::1]:9120:9120"
`,
  });
  assert.deepEqual(active(result).sort(), ["COMPOSE-DOCKER-SOCKET docker-compose.yml:7:9", "COMPOSE-HOST-NETWORK docker-compose.yml:5:5", "COMPOSE-PORT-ALL-INTERFACES docker-compose.yml:10:9"]);
});

test("compose: seed 002's egress-proxy override still leaves the gateway on a routable network", () => {
  const result = checkText({
    "docker-compose.override.yml": `networks:
  internal:
    driver: bridge
    internal: true
  egress:
    driver: bridge
services:
  gateway:
    network_mode: ""
    networks:
      - internal
      - egress
    environment:
      - HTTP_PROXY=http://egress-proxy:3128
      - HTTPS_PROXY=http://egress-proxy:3128
      - NO_PROXY=hermes,hermes-dashboard,localhost
  dashboard:
    network_mode: ""
    networks:
      - internal
  egress-proxy:
    image: ubuntu/squid:6.10-24.04_edge
    networks:
      - egress
    restart: unless-stopped
`,
  });
  assert.deepEqual(active(result), ["COMPOSE-AGENT-NETWORK-NOT-INTERNAL docker-compose.override.yml:12:9"]);
});

test("compose: env_file contents of the agent are read; a provider key there is reported", () => {
  const result = checkText({
    "compose.yaml": "services:\n  hermes:\n    image: nousresearch/hermes-agent:v2026.11.1\n    env_file: [hermes.env]\n    networks: [inside]\nnetworks:\n  inside: { internal: true }\n",
    "hermes.env": "HTTPS_PROXY=http://egress-proxy:3128\nANTHROPIC_API_KEY=\n",
  });
  assert.ok(active(result).some((entry) => entry.startsWith("COMPOSE-PROVIDER-KEY-IN-AGENT compose.yaml:4")), active(result).join("\n"));
});

// --- kustomize --------------------------------------------------------------------------------------------------

const KUSTOMIZE_FILES = {
  "base/kustomization.yaml": "resources:\n  - deployment.yaml\nconfigMapGenerator:\n  - name: hermes-config\n    files: [config.yaml]\n",
  "base/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: hermes
spec:
  replicas: 1
  strategy: { type: Recreate }
  selector: { matchLabels: { app: hermes } }
  template:
    metadata: { labels: { app: hermes } }
    spec:
      automountServiceAccountToken: false
      securityContext: { seccompProfile: { type: RuntimeDefault } }
      containers:
        - name: hermes
          image: nousresearch/hermes-agent:v2026.11.1
          args: [gateway, run]
          securityContext:
            privileged: true
            allowPrivilegeEscalation: false
            capabilities: { drop: [NET_RAW] }
          resources: { requests: { cpu: 1m, memory: 1Mi }, limits: { cpu: 1m, memory: 1Mi } }
      volumes:
        - name: config
          configMap: { name: hermes-config }
`,
  "base/config.yaml": "model:\n  provider: custom\nterminal:\n  backend: docker\napprovals:\n  mode: off\n",
  "overlay/kustomization.yaml": "namespace: agents\nnamePrefix: prod-\nresources:\n  - ../base\n  - namespace.yaml\n",
  "overlay/namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: agents\n  labels:\n    pod-security.kubernetes.io/enforce: baseline\n    pod-security.kubernetes.io/warn: restricted\n",
};

for (const builder of ["kubectl", "builtin"] as const) {
  const available = builder === "builtin" || spawnSync("kubectl", ["version", "--client"], { stdio: "ignore" }).status === 0;
  test(`kustomize (${builder}): the overlay is built and findings map back to the base files, generator files included`, { skip: available ? false : "kubectl is not installed (Debian: kubernetes-client)" }, () => {
    const result = checkText(KUSTOMIZE_FILES, ["overlay"], { kustomize: builder });
    assert.deepEqual(result.errors, []);
    const findings = active(result);
    assert.ok(findings.includes("K8S-PRIVILEGED base/deployment.yaml:19:13"), findings.join("\n"));
    assert.ok(findings.includes("HERMES-APPROVALS-OFF base/config.yaml:6:3"), findings.join("\n"));
    const privileged = result.findings.find((finding) => finding.ruleId === "K8S-PRIVILEGED");
    assert.equal(privileged?.subject, "Deployment/agents/prod-hermes");
    // The namespace is the overlay's, so its default-deny finding names it.
    assert.ok(result.findings.some((finding) => finding.ruleId === "K8S-NETPOL-NO-DEFAULT-DENY" && finding.message.includes('"agents"')));
  });
}

test("kustomize (builtin): a patch it cannot apply is an error asking for kubectl, not a silently different result", () => {
  const result = checkText({ ...KUSTOMIZE_FILES, "overlay/kustomization.yaml": "resources: [../base]\npatches:\n  - path: patch.yaml\n" }, ["overlay"], { kustomize: "builtin" });
  assert.match(result.errors[0]?.message ?? "", /"patches" needs kubectl kustomize/);
  assert.equal(result.errors[0]?.location.line, 2);
});

// --- suppressions -----------------------------------------------------------------------------------------------

const PRIVILEGED_POD = (annotations: string, comment = "") => `apiVersion: v1
kind: Pod
metadata:
  name: tool
  namespace: apps
  annotations:
${annotations}
spec:
  automountServiceAccountToken: false
  securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: RuntimeDefault } }
  containers:
    - name: tool
      image: registry.example/tool:1
      securityContext:
${comment}        privileged: true
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: { drop: [ALL] }
      resources: { requests: { cpu: 1m, memory: 1Mi }, limits: { cpu: 1m, memory: 1Mi } }
`;

test("an annotation with a reason suppresses its rule on that object; the finding is still reported as suppressed", () => {
  const result = checkText({ "pod.yaml": PRIVILEGED_POD('    perimeter.dev/ignore: "K8S-PRIVILEGED=loads a kernel module for the VPN until=2026-12-31"') });
  const finding = result.findings.find((candidate) => candidate.ruleId === "K8S-PRIVILEGED");
  assert.equal(finding?.suppression?.kind, "annotation");
  assert.equal(finding?.suppression?.reason, "loads a kernel module for the VPN");
  assert.equal(finding?.suppression?.until, "2026-12-31");
  assert.deepEqual(active(result).filter((entry) => !entry.startsWith("K8S-NETPOL")), []);
});

test("an expired suppression comes back: the finding counts again and says when the suppression lapsed", () => {
  const result = checkText({ "pod.yaml": PRIVILEGED_POD('    perimeter.dev/ignore: "K8S-PRIVILEGED=temporary until=2026-05-31"') });
  const finding = result.findings.find((candidate) => candidate.ruleId === "K8S-PRIVILEGED");
  assert.equal(finding?.suppression, undefined);
  assert.equal(finding?.expiredSuppression?.until, "2026-05-31");
});

test("a suppression without a reason, with a bad date or naming an unknown rule hides nothing and is itself reported", () => {
  for (const annotation of ['"K8S-PRIVILEGED="', '"K8S-PRIVILEGED=because until=31/12/2026"', '"K8S-PRIVILEDGED=typo in the id"']) {
    const result = checkText({ "pod.yaml": PRIVILEGED_POD(`    perimeter.dev/ignore: ${annotation}`) });
    const rules = active(result);
    assert.ok(rules.some((entry) => entry.startsWith("K8S-PRIVILEGED")), annotation);
    assert.ok(rules.some((entry) => entry.startsWith("CHECK-SUPPRESSION-INVALID pod.yaml:7:5")), `${annotation}: ${rules.join(", ")}`);
  }
});

test("a `# perimeter:ignore` comment covers the node on the next line (and only it)", () => {
  const result = checkText({ "pod.yaml": PRIVILEGED_POD("    note: none", "        # perimeter:ignore K8S-PRIVILEGED the VPN sidecar needs /dev/net/tun until=2027-01-01\n") });
  const finding = result.findings.find((candidate) => candidate.ruleId === "K8S-PRIVILEGED");
  assert.equal(finding?.suppression?.kind, "comment");
  assert.equal(finding?.suppression?.location?.line, 15);
  // A comment for one rule does not hide another rule on the same node.
  const other = checkText({ "pod.yaml": PRIVILEGED_POD("    note: none", "        # perimeter:ignore K8S-HOSTPATH not this one\n") });
  assert.equal(other.findings.find((candidate) => candidate.ruleId === "K8S-PRIVILEGED")?.suppression, undefined);
});

test("a `# perimeter:ignore` comment above a document's first key covers the whole document", () => {
  const result = checkText({ "ns.yaml": "# perimeter:ignore K8S-PSA-LABELS labels are set by the platform team's admission webhook\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shared\n" });
  assert.equal(result.findings.find((candidate) => candidate.ruleId === "K8S-PSA-LABELS")?.suppression?.kind, "comment");
});

test("a baseline file suppresses by fingerprint or by file and subject, with a reason; an entry without one is an error", () => {
  const pod = PRIVILEGED_POD("    note: none");
  const first = checkText({ "pod.yaml": pod });
  const fingerprint = first.findings.find((candidate) => candidate.ruleId === "K8S-PRIVILEGED")?.fingerprint ?? "";
  const byFingerprint = checkText({ "pod.yaml": pod, "baseline.yaml": `version: 1\nsuppressions:\n  - rule: K8S-PRIVILEGED\n    fingerprint: ${fingerprint}\n    reason: accepted in review 42\n` }, ["pod.yaml"], { baselineFile: "baseline.yaml" });
  assert.equal(byFingerprint.findings.find((candidate) => candidate.ruleId === "K8S-PRIVILEGED")?.suppression?.kind, "baseline");
  const bySubject = checkText({ "pod.yaml": pod, "baseline.json": JSON.stringify({ version: 1, suppressions: [{ rule: "K8S-PRIVILEGED", file: "pod.yaml", subject: "Pod/apps/tool", reason: "accepted", until: "2026-01-01" }] }) }, ["pod.yaml"], { baselineFile: "baseline.json" });
  assert.ok(bySubject.findings.find((candidate) => candidate.ruleId === "K8S-PRIVILEGED")?.expiredSuppression !== undefined, "expired baseline entries come back");
  const noReason = checkText({ "pod.yaml": pod, "baseline.yaml": "version: 1\nsuppressions:\n  - rule: K8S-PRIVILEGED\n    file: pod.yaml\n" }, ["pod.yaml"], { baselineFile: "baseline.yaml" });
  assert.match(noReason.errors[0]?.message ?? "", /gives no reason/);
});

test("fingerprints do not change when lines move", () => {
  const pod = PRIVILEGED_POD("    note: none");
  const before = checkText({ "pod.yaml": pod }).findings.find((candidate) => candidate.ruleId === "K8S-PRIVILEGED");
  const after = checkText({ "pod.yaml": `# a comment\n# another\n${pod}` }).findings.find((candidate) => candidate.ruleId === "K8S-PRIVILEGED");
  assert.notEqual(before?.location.line, after?.location.line);
  assert.equal(before?.fingerprint, after?.fingerprint);
});

test("Hermes config embedded in a ConfigMap: a pasted MCP token is reported at its line inside the block scalar", () => {
  const result = checkText({
    "cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata: { name: hermes-config, namespace: hermes }
data:
  config.yaml: |
    model:
      provider: minimax
    mcp_servers:
      colony:
        url: "http://colony-mcp.colony-app.svc.cluster.local:8002/mcp"
        headers:
          Authorization: "Bearer colony_pat_not_a_placeholder"
`,
  });
  assert.deepEqual(active(result), ["HERMES-MCP-LITERAL-TOKEN cm.yaml:12:11"]);
});

test("the agent's environment in a pod spec: allow-all users and an API server bound to 0.0.0.0 are reported; a key from a Secret is not judged", () => {
  const result = checkText({
    "pod.yaml": `apiVersion: v1
kind: Pod
metadata: { name: hermes, namespace: hermes }
spec:
  containers:
    - name: hermes
      image: nousresearch/hermes-agent:v2026.11.1
      env:
        - { name: GATEWAY_ALLOW_ALL_USERS, value: "true" }
        - { name: API_SERVER_ENABLED, value: "true" }
        - { name: API_SERVER_KEY, valueFrom: { secretKeyRef: { name: hermes-agent, key: API_SERVER_KEY } } }
        - { name: API_SERVER_HOST, value: 0.0.0.0 }
`,
  });
  const hermes = active(result).filter((entry) => entry.startsWith("HERMES-"));
  assert.deepEqual(hermes.sort(), ["HERMES-ALLOW-ALL-USERS pod.yaml:9:11", "HERMES-API-SERVER-EXPOSED pod.yaml:12:11"]);
});

test("a file larger than the bound is an error, not read into memory", () => {
  const result = checkText({ "huge.yaml": `# ${"x".repeat(17 * 1024 * 1024)}\n` });
  assert.match(result.errors[0]?.message ?? "", /larger than 16 MiB/);
});

test("an init container using the agent's image gets no s6 exemption: it runs a command, not the image's init", () => {
  const result = checkText({
    "pod.yaml": `apiVersion: v1
kind: Pod
metadata: { name: hermes, namespace: hermes }
spec:
  automountServiceAccountToken: false
  securityContext: { seccompProfile: { type: RuntimeDefault } }
  initContainers:
    - name: seed-config
      image: nousresearch/hermes-agent:v2026.11.1
      command: [sh, -c, "cp /seed/config.yaml /opt/data/"]
      securityContext: { allowPrivilegeEscalation: false }
      resources: { requests: { cpu: 1m, memory: 1Mi }, limits: { cpu: 1m, memory: 1Mi } }
  containers:
    - name: hermes
      image: nousresearch/hermes-agent:v2026.11.1
      securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: [NET_RAW] } }
      resources: { requests: { cpu: 1m, memory: 1Mi }, limits: { cpu: 1m, memory: 1Mi } }
`,
  });
  const restricted = result.findings.filter((finding) => ["K8S-RUN-AS-ROOT", "K8S-CAPABILITIES-NOT-DROPPED", "K8S-READONLY-ROOTFS"].includes(finding.ruleId));
  assert.equal(restricted.length, 3);
  for (const finding of restricted) assert.match(finding.message, /init container "seed-config"/);
});

test("kustomize: walking a tree with a base and its overlay builds the overlay only, so the base's findings are not doubled", () => {
  const result = checkText(KUSTOMIZE_FILES, ["."], { kustomize: "builtin" });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(result.inputs.filter((input) => input.kind === "kustomization").map((input) => input.file), ["overlay"]);
  assert.equal(result.findings.filter((finding) => finding.ruleId === "K8S-PRIVILEGED").length, 1);
});

test("the local terminal backend is not reported when Hermes' terminal and code_execution toolsets are disabled (render's shape), and is when only one is", () => {
  const config = (disabled: string) => `model:\n  provider: custom\nterminal:\n  backend: local\nagent:\n  disabled_toolsets: [${disabled}]\n`;
  const env = "TELEGRAM_BOT_TOKEN=${TELEGRAM_BOT_TOKEN}\nTELEGRAM_ALLOWED_USERS=987654321\n";
  assert.deepEqual(active(checkText({ "config.yaml": config("code_execution, file, terminal"), ".env": env })).filter((entry) => entry.startsWith("HERMES-LOCAL")), []);
  assert.deepEqual(active(checkText({ "config.yaml": config("terminal"), ".env": env })).filter((entry) => entry.startsWith("HERMES-LOCAL")), ["HERMES-LOCAL-TERMINAL-PUBLIC-CHAT config.yaml:4:3"]);
});

test("an alias bomb (billion laughs) neither hangs nor exhausts memory: aliases stay shared references", () => {
  const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let level = 1; level < 9; level++) {
    const previous = String.fromCharCode(96 + level);
    const name = String.fromCharCode(97 + level);
    levels.push(`${name}: &${name} [${Array.from({ length: 9 }, () => `*${previous}`).join(",")}]`);
  }
  const text = `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: lol, namespace: apps }\ndata:\n${levels.map((line) => `  ${line}`).join("\n")}\n`;
  const result = checkText({ "lol.yaml": text });
  assert.ok(result.errors.length > 0 || result.findings.length === 0);
});
