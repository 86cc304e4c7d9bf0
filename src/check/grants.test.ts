// What an RBAC rule and a pod actually grant (issue 12, item 8). A table of small manifests, each expected to fire
// the named rules and to leave others quiet, in the shape peer suites test (Polaris, kube-linter, kube-score,
// Checkov): verbs that grant nothing, wildcards that grant exec, subresource spellings, API groups that do not hold the
// resource, resourceNames, bindings to local and built-in roles, aggregation, and root group ids.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runCheck } from "./check.ts";
import type { CheckReport, CheckFinding } from "./model.ts";

const TODAY = "2026-06-01";

function checkYaml(text: string): CheckReport {
  return runCheck(["-"], { cwd: import.meta.dirname, stdinText: text, today: TODAY, kustomize: "builtin" });
}

function activeFindings(result: CheckReport): CheckFinding[] {
  return result.findings.filter((finding) => finding.suppression === undefined);
}

function role(rules: string, kind: "Role" | "ClusterRole" = "Role", extraMetadata = ""): string {
  return `apiVersion: rbac.authorization.k8s.io/v1
kind: ${kind}
metadata:
  name: tool${kind === "Role" ? "\n  namespace: apps" : ""}${extraMetadata}
rules:
${rules}
`;
}

function binding(kind: "RoleBinding" | "ClusterRoleBinding", roleKind: "Role" | "ClusterRole", roleName: string, name = "tool"): string {
  return `apiVersion: rbac.authorization.k8s.io/v1
kind: ${kind}
metadata:
  name: ${name}${kind === "RoleBinding" ? "\n  namespace: apps" : ""}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ${roleKind}
  name: ${roleName}
subjects:
- kind: ServiceAccount
  name: tool
  namespace: apps
`;
}

interface Case {
  readonly name: string;
  readonly yaml: string;
  /** Rules that must be reported (on any subject). */
  readonly fires: readonly string[];
  /** Rules that must not be reported. */
  readonly quiet: readonly string[];
  /** Rule -> subject the finding must be reported on (e.g. the binding). */
  readonly on?: Readonly<Record<string, string>>;
}

const EXEC = "K8S-RBAC-EXEC";
const SECRETS = "K8S-RBAC-SECRETS";
const TOKEN = "K8S-RBAC-TOKEN";
const CREATE_PODS = "K8S-RBAC-CREATE-PODS";
const NODES_PROXY = "K8S-RBAC-NODES-PROXY";
const ESCALATE = "K8S-RBAC-ESCALATE";
const CLUSTER_ADMIN = "K8S-RBAC-CLUSTER-ADMIN";
const WILDCARD = "K8S-RBAC-WILDCARD";
const ROOT_GROUP = "K8S-ROOT-GROUP";

const RBAC_CASES: readonly Case[] = [
  // --- exec, attach, port-forward: the verb decides
  { name: "list on pods/exec grants no exec", yaml: role(`- apiGroups: [""]\n  resources: [pods/exec]\n  verbs: [list, watch]`), fires: [], quiet: [EXEC] },
  { name: "create on pods/exec is exec (SPDY)", yaml: role(`- apiGroups: [""]\n  resources: [pods/exec]\n  verbs: [create]`), fires: [EXEC], quiet: [] },
  { name: "get on pods/exec is exec (the WebSocket upgrade is a GET)", yaml: role(`- apiGroups: [""]\n  resources: [pods/exec]\n  verbs: [get]`), fires: [EXEC], quiet: [] },
  { name: "create on pods/attach is attach", yaml: role(`- apiGroups: [""]\n  resources: [pods/attach]\n  verbs: [create]`), fires: [EXEC], quiet: [] },
  { name: "watch on pods/attach grants nothing", yaml: role(`- apiGroups: [""]\n  resources: [pods/attach]\n  verbs: [watch]`), fires: [], quiet: [EXEC] },
  { name: "create on pods/portforward reaches every port of the pod", yaml: role(`- apiGroups: [""]\n  resources: [pods/portforward]\n  verbs: [create]`), fires: [EXEC], quiet: [] },
  { name: "patch on pods/ephemeralcontainers adds a debug container (kubectl debug)", yaml: role(`- apiGroups: [""]\n  resources: [pods/ephemeralcontainers]\n  verbs: [patch]`), fires: [EXEC], quiet: [] },
  { name: "'*' verbs on pods/exec", yaml: role(`- apiGroups: [""]\n  resources: [pods/exec]\n  verbs: ["*"]`), fires: [EXEC, WILDCARD], quiet: [] },
  { name: "resourceNames narrow exec to named pods but it is still exec", yaml: role(`- apiGroups: [""]\n  resources: [pods/exec]\n  resourceNames: [web-0]\n  verbs: [create]`), fires: [EXEC], quiet: [] },
  { name: "pods/exec in the apps group does not exist", yaml: role(`- apiGroups: [apps]\n  resources: [pods/exec]\n  verbs: [create]`), fires: [], quiet: [EXEC] },
  { name: "get on every core resource is exec too (and Secrets)", yaml: role(`- apiGroups: [""]\n  resources: ["*"]\n  verbs: [get]`), fires: [EXEC, SECRETS, WILDCARD], quiet: [CREATE_PODS, TOKEN] },
  { name: "'*/exec' matches the exec subresource of any resource", yaml: role(`- apiGroups: [""]\n  resources: ["*/exec"]\n  verbs: [create]`), fires: [EXEC], quiet: [] },
  { name: "'pods/*' is not a wildcard in Kubernetes RBAC", yaml: role(`- apiGroups: [""]\n  resources: ["pods/*"]\n  verbs: [create]`), fires: [], quiet: [EXEC, CREATE_PODS] },
  { name: "apiGroups '*' with create on pods/exec", yaml: role(`- apiGroups: ["*"]\n  resources: [pods/exec]\n  verbs: [create]`), fires: [EXEC, WILDCARD], quiet: [] },
  { name: "pods without the subresource grants no exec", yaml: role(`- apiGroups: [""]\n  resources: [pods]\n  verbs: [get, list, watch]`), fires: [], quiet: [EXEC, CREATE_PODS, SECRETS] },
  // --- Secrets
  { name: "watch on secrets streams their contents", yaml: role(`- apiGroups: [""]\n  resources: [secrets]\n  verbs: [watch]`), fires: [SECRETS], quiet: [] },
  { name: "patch on secrets answers with the whole Secret", yaml: role(`- apiGroups: [""]\n  resources: [secrets]\n  verbs: [patch]`), fires: [SECRETS], quiet: [] },
  { name: "delete on secrets reveals nothing", yaml: role(`- apiGroups: [""]\n  resources: [secrets]\n  verbs: [delete]`), fires: [], quiet: [SECRETS, TOKEN] },
  { name: "create on secrets mints a token through a service-account-token Secret", yaml: role(`- apiGroups: [""]\n  resources: [secrets]\n  verbs: [create]`), fires: [TOKEN], quiet: [SECRETS] },
  { name: "secrets in another API group are not Secrets", yaml: role(`- apiGroups: [example.com]\n  resources: [secrets]\n  verbs: [get, list]`), fires: [], quiet: [SECRETS] },
  { name: "'*' resources in every group with list", yaml: role(`- apiGroups: ["*"]\n  resources: ["*"]\n  verbs: [list]`), fires: [SECRETS, WILDCARD], quiet: [EXEC, CREATE_PODS] },
  // --- tokens
  { name: "create on serviceaccounts/token", yaml: role(`- apiGroups: [""]\n  resources: [serviceaccounts/token]\n  verbs: [create]`), fires: [TOKEN], quiet: [] },
  { name: "get on serviceaccounts/token mints nothing", yaml: role(`- apiGroups: [""]\n  resources: [serviceaccounts/token]\n  verbs: [get]`), fires: [], quiet: [TOKEN] },
  // --- workloads
  { name: "create on pods with resourceNames never authorizes a create", yaml: role(`- apiGroups: [""]\n  resources: [pods]\n  resourceNames: [web]\n  verbs: [create]`), fires: [], quiet: [CREATE_PODS] },
  { name: "patch on pods swaps a running container's image", yaml: role(`- apiGroups: [""]\n  resources: [pods]\n  verbs: [patch]`), fires: [CREATE_PODS], quiet: [] },
  { name: "create on apps deployments", yaml: role(`- apiGroups: [apps]\n  resources: [deployments]\n  verbs: [create]`), fires: [CREATE_PODS], quiet: [] },
  { name: "deployments in the core group do not exist", yaml: role(`- apiGroups: [""]\n  resources: [deployments]\n  verbs: [create]`), fires: [], quiet: [CREATE_PODS] },
  { name: "create on batch cronjobs", yaml: role(`- apiGroups: [batch]\n  resources: [cronjobs]\n  verbs: [create]`), fires: [CREATE_PODS], quiet: [] },
  { name: "patch on deployments/scale changes only the replica count", yaml: role(`- apiGroups: [apps]\n  resources: [deployments/scale]\n  verbs: [patch]`), fires: [], quiet: [CREATE_PODS] },
  // --- nodes/proxy
  { name: "get on nodes/proxy reaches the kubelet (exec over its WebSocket)", yaml: role(`- apiGroups: [""]\n  resources: [nodes/proxy]\n  verbs: [get]`, "ClusterRole"), fires: [NODES_PROXY], quiet: [] },
  { name: "list on nodes/proxy grants nothing", yaml: role(`- apiGroups: [""]\n  resources: [nodes/proxy]\n  verbs: [list, watch]`, "ClusterRole"), fires: [], quiet: [NODES_PROXY] },
  { name: "a namespaced Role cannot grant nodes/proxy (nodes are cluster-scoped)", yaml: role(`- apiGroups: [""]\n  resources: [nodes/proxy]\n  verbs: [get]`), fires: [], quiet: [NODES_PROXY] },
  // --- escalation
  { name: "bind on clusterroles", yaml: role(`- apiGroups: [rbac.authorization.k8s.io]\n  resources: [clusterroles]\n  verbs: [bind]`, "ClusterRole"), fires: [ESCALATE], quiet: [] },
  { name: "'*' verbs on roles include escalate and bind", yaml: role(`- apiGroups: [rbac.authorization.k8s.io]\n  resources: [roles]\n  verbs: ["*"]`), fires: [ESCALATE, WILDCARD], quiet: [] },
  { name: "impersonate on serviceaccounts", yaml: role(`- apiGroups: [""]\n  resources: [serviceaccounts]\n  verbs: [impersonate]`), fires: [ESCALATE], quiet: [] },
  { name: "constrained impersonation verbs are impersonation", yaml: role(`- apiGroups: [authentication.k8s.io]\n  resources: [users]\n  verbs: ["impersonate:user-info"]`, "ClusterRole"), fires: [ESCALATE], quiet: [] },
  { name: "bind on pods means nothing", yaml: role(`- apiGroups: [""]\n  resources: [pods]\n  verbs: [bind]`), fires: [], quiet: [ESCALATE] },
  { name: "create/update on rolebindings alone is held back by escalation prevention", yaml: role(`- apiGroups: [rbac.authorization.k8s.io]\n  resources: [rolebindings]\n  verbs: [create, update]`), fires: [], quiet: [ESCALATE] },
  // --- bindings: who gets it, through which role
  {
    name: "a ClusterRoleBinding to a local ClusterRole with '*' everywhere is cluster-admin on the binding",
    yaml: `${role(`- apiGroups: ["*"]\n  resources: ["*"]\n  verbs: ["*"]`, "ClusterRole")}---\n${binding("ClusterRoleBinding", "ClusterRole", "tool")}`,
    fires: [CLUSTER_ADMIN, WILDCARD, EXEC, SECRETS],
    quiet: [],
    on: { [CLUSTER_ADMIN]: "ClusterRoleBinding/tool" },
  },
  {
    name: "a RoleBinding to a local Role with create on pods/exec is reported on the binding too",
    yaml: `${role(`- apiGroups: [""]\n  resources: [pods/exec]\n  verbs: [create]`)}---\n${binding("RoleBinding", "Role", "tool")}`,
    fires: [EXEC],
    quiet: [CLUSTER_ADMIN],
    on: { [EXEC]: "RoleBinding/apps/tool" },
  },
  {
    name: "a RoleBinding to the built-in edit: Secrets, exec, workloads, tokens, impersonation",
    yaml: binding("RoleBinding", "ClusterRole", "edit"),
    fires: [SECRETS, EXEC, CREATE_PODS, TOKEN, ESCALATE],
    quiet: [CLUSTER_ADMIN, NODES_PROXY],
    on: { [EXEC]: "RoleBinding/apps/tool", [SECRETS]: "RoleBinding/apps/tool" },
  },
  { name: "a RoleBinding to the built-in admin", yaml: binding("RoleBinding", "ClusterRole", "admin"), fires: [SECRETS, EXEC, CREATE_PODS, ESCALATE], quiet: [CLUSTER_ADMIN], on: { [EXEC]: "RoleBinding/apps/tool" } },
  { name: "a RoleBinding to the built-in view grants nothing dangerous", yaml: binding("RoleBinding", "ClusterRole", "view"), fires: [], quiet: [SECRETS, EXEC, CREATE_PODS, TOKEN, ESCALATE, CLUSTER_ADMIN] },
  { name: "a ClusterRoleBinding to cluster-admin", yaml: binding("ClusterRoleBinding", "ClusterRole", "cluster-admin"), fires: [CLUSTER_ADMIN], quiet: [], on: { [CLUSTER_ADMIN]: "ClusterRoleBinding/tool" } },
  {
    name: "a ClusterRole aggregated into view widens every binding of view",
    yaml: `${role(`- apiGroups: [""]\n  resources: [secrets]\n  verbs: [get]`, "ClusterRole", "\n  labels:\n    rbac.authorization.k8s.io/aggregate-to-view: \"true\"")}---\n${binding("ClusterRoleBinding", "ClusterRole", "view", "readers")}`,
    fires: [SECRETS],
    quiet: [],
    on: { [SECRETS]: "ClusterRoleBinding/readers" },
  },
  {
    name: "a local aggregated ClusterRole grants what the ClusterRoles it selects grant",
    yaml: `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: team
aggregationRule:
  clusterRoleSelectors:
  - matchLabels:
      example.com/aggregate-to-team: "true"
rules: []
---
${role(`- apiGroups: [""]\n  resources: [pods/attach]\n  verbs: [create]`, "ClusterRole", "\n  labels:\n    example.com/aggregate-to-team: \"true\"")}---
${binding("ClusterRoleBinding", "ClusterRole", "team", "team")}`,
    fires: [EXEC],
    quiet: [],
    on: { [EXEC]: "ClusterRoleBinding/team" },
  },
  {
    name: "a RoleBinding to a local ClusterRole with attach is reported on the RoleBinding",
    yaml: `${role(`- apiGroups: [""]\n  resources: [pods/attach]\n  verbs: [get]`, "ClusterRole")}---\n${binding("RoleBinding", "ClusterRole", "tool")}`,
    fires: [EXEC],
    quiet: [],
    on: { [EXEC]: "RoleBinding/apps/tool" },
  },
  {
    name: "an input redefining the built-in edit gets its permissions back at the API server's start (auto-reconciliation)",
    yaml: `apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: edit\nrules:\n- apiGroups: [""]\n  resources: [pods]\n  verbs: [get]\n---\n${binding("RoleBinding", "ClusterRole", "edit")}`,
    fires: [SECRETS, EXEC],
    quiet: [],
    on: { [SECRETS]: "RoleBinding/apps/tool" },
  },
  {
    name: "a redefined edit with autoupdate: \"false\" is what it says",
    yaml: `apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: edit\n  annotations:\n    rbac.authorization.kubernetes.io/autoupdate: "false"\nrules:\n- apiGroups: [""]\n  resources: [pods]\n  verbs: [get]\n---\n${binding("RoleBinding", "ClusterRole", "edit")}`,
    fires: [],
    quiet: [SECRETS, EXEC, CREATE_PODS, TOKEN, ESCALATE],
  },
  {
    name: "a RoleBinding to a ClusterRole with nodes/proxy grants nothing on nodes (namespaced); a ClusterRoleBinding does",
    yaml: `${role(`- apiGroups: [""]\n  resources: [nodes/proxy]\n  verbs: [get]`, "ClusterRole")}---\n${binding("RoleBinding", "ClusterRole", "tool", "scoped")}---\n${binding("ClusterRoleBinding", "ClusterRole", "tool", "everywhere")}`,
    fires: [NODES_PROXY],
    quiet: [],
    on: { [NODES_PROXY]: "ClusterRoleBinding/everywhere" },
  },
];

for (const entry of RBAC_CASES) {
  test(`RBAC grants: ${entry.name}`, () => {
    const result = checkYaml(entry.yaml);
    assert.deepEqual(result.errors, []);
    const found = activeFindings(result);
    const rules = new Set(found.map((finding) => finding.ruleId));
    for (const rule of entry.fires) assert.ok(rules.has(rule), `${rule} expected in ${[...rules].join(", ") || "(none)"}`);
    for (const rule of entry.quiet) assert.ok(!rules.has(rule), `${rule} not expected: ${found.filter((finding) => finding.ruleId === rule).map((finding) => `${finding.subject}: ${finding.message}`).join("; ")}`);
    for (const [rule, subject] of Object.entries(entry.on ?? {})) {
      assert.ok(found.some((finding) => finding.ruleId === rule && finding.subject === subject), `${rule} on ${subject}; found on ${found.filter((finding) => finding.ruleId === rule).map((finding) => finding.subject).join(", ")}`);
    }
  });
}

test("RBAC grants: a binding names the subject and the role the grant comes through", () => {
  const result = checkYaml(`${role(`- apiGroups: [""]\n  resources: [pods/exec]\n  verbs: [get]`)}---\n${binding("RoleBinding", "Role", "tool")}`);
  const onBinding = activeFindings(result).find((finding) => finding.ruleId === EXEC && finding.subject === "RoleBinding/apps/tool");
  assert.ok(onBinding !== undefined);
  assert.match(onBinding.message, /ServiceAccount apps\/tool/);
  assert.match(onBinding.message, /Role apps\/tool/);
  assert.match(onBinding.message, /get on pods\/exec/);
  assert.equal(onBinding.path, "roleRef.name");
});

test("RBAC grants: a suppression on the role also accepts what its bindings receive through it; an unsuppressed role's binding is still reported", () => {
  const suppressed = role(`- apiGroups: [batch]\n  resources: [jobs]\n  verbs: [create]`, "Role", "\n  annotations:\n    perimeter.dev/ignore: K8S-RBAC-CREATE-PODS=the runner creates Jobs in a namespace with no Secret");
  const accepted = checkYaml(`${suppressed}---\n${binding("RoleBinding", "Role", "tool")}`);
  const onBinding = accepted.findings.filter((finding) => finding.ruleId === CREATE_PODS && finding.subject === "RoleBinding/apps/tool");
  assert.equal(onBinding.length, 1);
  assert.equal(onBinding[0]?.suppression?.reason, "the runner creates Jobs in a namespace with no Secret");
  assert.deepEqual(activeFindings(accepted).map((finding) => finding.ruleId), []);

  const open = checkYaml(`${role(`- apiGroups: [batch]\n  resources: [jobs]\n  verbs: [create]`)}---\n${binding("RoleBinding", "Role", "tool")}`);
  assert.deepEqual(activeFindings(open).map((finding) => `${finding.ruleId} ${finding.subject}`).sort(), [`${CREATE_PODS} Role/apps/tool`, `${CREATE_PODS} RoleBinding/apps/tool`]);
});

test("RBAC grants: a comment suppression on the role's rule carries to the binding, but only for the rule it names", () => {
  const yaml = `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: tool
  namespace: apps
rules:
# perimeter:ignore K8S-RBAC-EXEC the debugger attaches to its own pods only
- apiGroups: [""]
  resources: [pods/attach, secrets]
  verbs: [create, get]
---
${binding("RoleBinding", "Role", "tool")}`;
  const result = checkYaml(yaml);
  const exec = result.findings.filter((finding) => finding.ruleId === EXEC);
  assert.equal(exec.length, 2);
  assert.ok(exec.every((finding) => finding.suppression !== undefined), JSON.stringify(exec));
  const secrets = result.findings.filter((finding) => finding.ruleId === SECRETS);
  assert.equal(secrets.length, 2);
  assert.ok(secrets.every((finding) => finding.suppression === undefined));
});

// --- group 0 -------------------------------------------------------------------------------------------------------

function pod(podSecurity: string, containerSecurity = "", labels = "app: web"): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: apps
  labels: { ${labels} }
spec:
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    seccompProfile: { type: RuntimeDefault }
${podSecurity}
  containers:
  - name: web
    image: registry.example/web:1.0
    resources: { requests: { cpu: 10m, memory: 16Mi }, limits: { cpu: 100m, memory: 64Mi } }
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: { drop: [ALL] }
${containerSecurity}
`;
}

const GROUP_CASES: readonly Case[] = [
  { name: "runAsGroup: 0 on the pod", yaml: pod("    runAsGroup: 0"), fires: [ROOT_GROUP], quiet: [] },
  { name: "runAsGroup: 0 on the container", yaml: pod("    runAsGroup: 1000", "      runAsGroup: 0"), fires: [ROOT_GROUP], quiet: [] },
  { name: "fsGroup: 0 makes every volume root-group owned", yaml: pod("    runAsGroup: 1000\n    fsGroup: 0"), fires: [ROOT_GROUP], quiet: [] },
  { name: "supplementalGroups holding 0", yaml: pod("    runAsGroup: 1000\n    supplementalGroups: [1000, 0]"), fires: [ROOT_GROUP], quiet: [] },
  { name: "the container's own runAsGroup overrides the pod's 0", yaml: pod("    runAsGroup: 0", "      runAsGroup: 1000"), fires: [], quiet: [ROOT_GROUP] },
  { name: "non-zero groups everywhere", yaml: pod("    runAsGroup: 1000\n    fsGroup: 1000\n    supplementalGroups: [2000]"), fires: [], quiet: [ROOT_GROUP, "K8S-RUN-AS-ROOT"] },
  { name: "no group set at all is the image's choice, not a finding", yaml: pod(""), fires: [], quiet: [ROOT_GROUP] },
  { name: "the agent is not exempt from group 0", yaml: pod("    fsGroup: 0", "", "app.kubernetes.io/name: hermes"), fires: [ROOT_GROUP], quiet: [] },
];

for (const entry of GROUP_CASES) {
  test(`group 0: ${entry.name}`, () => {
    const result = checkYaml(entry.yaml);
    assert.deepEqual(result.errors, []);
    const rules = new Set(activeFindings(result).map((finding) => finding.ruleId));
    for (const rule of entry.fires) assert.ok(rules.has(rule), `${rule} expected in ${[...rules].join(", ") || "(none)"}`);
    for (const rule of entry.quiet) assert.ok(!rules.has(rule), `${rule} not expected`);
  });
}

test("group 0: the finding points at the field that sets it", () => {
  const result = checkYaml(pod("    runAsGroup: 1000\n    supplementalGroups: [1000, 0]"));
  const finding = activeFindings(result).find((candidate) => candidate.ruleId === ROOT_GROUP);
  assert.equal(finding?.path, "spec.securityContext.supplementalGroups");
  assert.match(finding?.message ?? "", /supplementalGroups/);
});
