// What an RBAC role actually grants. Every K8S-RBAC-* rule asks this one model instead of reading names: a rule
// grants a verb on a group/resource[/subresource] exactly when Kubernetes' own matcher would say so (wildcards,
// "*/subresource", resourceNames, and nothing else: "pods/*" is not a wildcard, "pods" does not cover "pods/exec").
// Bindings are judged through the role they reference — a Role or ClusterRole among the inputs (aggregation
// included) or a built-in ClusterRole whose rules are known here — so the finding names who receives the power.
import type { Path } from "./yaml-source.ts";
import { asArray, asRecord, asString } from "./yaml-source.ts";

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
  readonly resourceNames: readonly string[];
  readonly nonResourceURLs: readonly string[];
}

export function policyRuleOf(value: unknown): PolicyRule {
  const record = asRecord(value) ?? {};
  const strings = (field: string) => asArray(record[field]).map(String);
  return { apiGroups: strings("apiGroups"), resources: strings("resources"), verbs: strings("verbs"), resourceNames: strings("resourceNames"), nonResourceURLs: strings("nonResourceURLs") };
}

/** One request the API server authorizes: `create` on `pods/exec` in group "" (named: the request names an object). */
export interface ResourceRequest {
  readonly verb: string;
  readonly group: string;
  /** `pods` or `pods/exec`. */
  readonly resource: string;
  /** Whether the request carries an object name; a top-level create or a deletecollection does not. */
  readonly named: boolean;
}

function resourceMatches(ruleResource: string, requested: string): boolean {
  if (ruleResource === "*" || ruleResource === requested) return true;
  const slash = requested.indexOf("/");
  // Kubernetes (rbac/v1 helpers ResourceMatches) accepts "*/subresource" and nothing else as a partial wildcard.
  return slash > 0 && ruleResource === `*/${requested.slice(slash + 1)}`;
}

/** Kubernetes' own decision for one rule and one resource request. */
export function ruleAllows(rule: PolicyRule, request: ResourceRequest): boolean {
  if (!rule.verbs.some((verb) => verb === "*" || verb === request.verb)) return false;
  if (!rule.apiGroups.some((group) => group === "*" || group === request.group)) return false;
  if (!rule.resources.some((resource) => resourceMatches(resource, request.resource))) return false;
  // A rule with resourceNames can only match a request that names an object: it never authorizes a create.
  return rule.resourceNames.length === 0 || request.named;
}

// --- the powers each rule is about ------------------------------------------------------------------------------

interface Power {
  readonly ruleId: string;
  readonly groups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
  /** Objects outside any namespace: a Role or a RoleBinding cannot grant them. */
  readonly clusterScoped?: boolean;
  /** Verbs matched by prefix (constrained impersonation: `impersonate:user-info`, ...). */
  readonly verbPrefix?: string;
}

const WRITES = ["create", "update", "patch"];

/**
 * Exec, attach and port-forward are `create` (SPDY, a POST) and `get`: a WebSocket upgrade is a GET, and the API
 * server authorizes it as `get` (kubernetes/kubernetes#78741); kubectl uses WebSockets by default since 1.30
 * (KEP-4006). Only from 1.35, with the beta feature gate AuthorizePodWebsocketUpgradeCreatePermission on, does the
 * upgrade also need `create` (kubernetes/kubernetes#134577) — older clusters, or the gate off, exec on `get` alone.
 * Port-forward is judged as exec: it reaches every port of the pod, localhost-bound admin ports included, past every
 * NetworkPolicy. Patching pods/ephemeralcontainers adds a debug container to a running pod (kubectl debug).
 */
const POWERS: readonly Power[] = [
  { ruleId: "K8S-RBAC-EXEC", groups: [""], resources: ["pods/exec", "pods/attach", "pods/portforward"], verbs: ["create", "get"] },
  { ruleId: "K8S-RBAC-EXEC", groups: [""], resources: ["pods/ephemeralcontainers"], verbs: ["update", "patch"] },
  // patch answers with the whole object, so an empty patch reads a Secret; update and delete reveal nothing.
  { ruleId: "K8S-RBAC-SECRETS", groups: [""], resources: ["secrets"], verbs: ["get", "list", "watch", "patch"] },
  { ruleId: "K8S-RBAC-TOKEN", groups: [""], resources: ["serviceaccounts/token"], verbs: ["create"] },
  // A Secret of type kubernetes.io/service-account-token is filled with a token for the ServiceAccount it names.
  { ruleId: "K8S-RBAC-TOKEN", groups: [""], resources: ["secrets"], verbs: ["create"] },
  // Any HTTP method through nodes/proxy reaches the kubelet API; GET alone opens its WebSocket exec.
  { ruleId: "K8S-RBAC-NODES-PROXY", groups: [""], resources: ["nodes/proxy"], verbs: ["get", "create", "update", "patch", "delete"], clusterScoped: true },
  // update/patch on a pod replaces a container's image in place; on a controller, its pod template.
  { ruleId: "K8S-RBAC-CREATE-PODS", groups: [""], resources: ["pods", "replicationcontrollers"], verbs: WRITES },
  { ruleId: "K8S-RBAC-CREATE-PODS", groups: ["apps", "extensions"], resources: ["deployments", "replicasets", "statefulsets", "daemonsets"], verbs: WRITES },
  { ruleId: "K8S-RBAC-CREATE-PODS", groups: ["batch"], resources: ["jobs", "cronjobs"], verbs: WRITES },
  { ruleId: "K8S-RBAC-ESCALATE", groups: ["rbac.authorization.k8s.io"], resources: ["roles", "clusterroles"], verbs: ["escalate", "bind"] },
  { ruleId: "K8S-RBAC-ESCALATE", groups: [""], resources: ["serviceaccounts"], verbs: ["impersonate"], verbPrefix: "impersonate:" },
  { ruleId: "K8S-RBAC-ESCALATE", groups: ["", "authentication.k8s.io"], resources: ["users", "groups", "uids", "userextras"], verbs: ["impersonate"], verbPrefix: "impersonate:", clusterScoped: true },
  // Constrained impersonation (1.35, alpha): `impersonate:serviceaccount`, `impersonate:arbitrary-node`, ...
  { ruleId: "K8S-RBAC-ESCALATE", groups: ["authentication.k8s.io"], resources: ["serviceaccounts"], verbs: [], verbPrefix: "impersonate:" },
  { ruleId: "K8S-RBAC-ESCALATE", groups: ["authentication.k8s.io"], resources: ["nodes"], verbs: [], verbPrefix: "impersonate:", clusterScoped: true },
];

/** Where a rule grant is written, so a finding can point there and a suppression there can carry to a binding. */
export interface RuleSource {
  readonly rule: PolicyRule;
  /** The role object and the rule's path in it; absent for a built-in ClusterRole. */
  readonly origin?: { readonly objectKey: string; readonly path: Path };
  /** "Role apps/tool", "ClusterRole edit (built-in)". */
  readonly roleName: string;
}

export interface Grant {
  readonly ruleId: string;
  /** `create, get on pods/exec`. */
  readonly what: string;
  /** The rules that grant it. */
  readonly sources: readonly RuleSource[];
}

/** The field a finding about `ruleId` points at inside a rule. */
export function grantField(ruleId: string): "resources" | "verbs" {
  return ruleId === "K8S-RBAC-CREATE-PODS" || ruleId === "K8S-RBAC-ESCALATE" ? "verbs" : "resources";
}

/** Verbs per resource a rule gives, per rule id (resourceNames-limited grants carry the names in the key). */
type Powers = Map<string, Map<string, Set<string>>>;

function collectPowers(rule: PolicyRule, clusterScope: boolean, into: Powers): void {
  const names = rule.resourceNames.length > 0 ? ` (only ${rule.resourceNames.join(", ")})` : "";
  for (const power of POWERS) {
    if (power.clusterScoped === true && !clusterScope) continue;
    const verbs = [...power.verbs];
    if (power.verbPrefix !== undefined) verbs.push(...rule.verbs.filter((verb) => verb.startsWith(power.verbPrefix as string)));
    for (const group of power.groups) {
      for (const resource of power.resources) {
        // A rule naming a resource like "userextras/scopes" impersonates that extra.
        const requested = resource === "userextras" ? (rule.resources.find((candidate) => candidate.startsWith("userextras/")) ?? resource) : resource;
        for (const verb of verbs) {
          const named = !(verb === "create" && !requested.includes("/"));
          if (!ruleAllows(rule, { verb, group, resource: requested, named })) continue;
          const byResource = into.get(power.ruleId) ?? new Map<string, Set<string>>();
          const set = byResource.get(`${requested}${names}`) ?? new Set<string>();
          set.add(verb);
          byResource.set(`${requested}${names}`, set);
          into.set(power.ruleId, byResource);
        }
      }
    }
  }
}

/** `create, get on pods/exec, pods/attach; patch on pods/ephemeralcontainers`: resources with the same verbs together. */
function describe(byResource: ReadonlyMap<string, ReadonlySet<string>>): string {
  const byVerbs = new Map<string, string[]>();
  for (const [resource, verbs] of byResource) {
    const key = [...verbs].join(", ");
    byVerbs.set(key, [...(byVerbs.get(key) ?? []), resource]);
  }
  return [...byVerbs].map(([verbs, resources]) => `${verbs} on ${resources.join(", ")}`).join("; ");
}

/** Every dangerous power one rule gives, per rule id, described (empty when it gives none). */
export function powersOfRule(rule: PolicyRule, clusterScope: boolean): Map<string, string> {
  const powers: Powers = new Map();
  collectPowers(rule, clusterScope, powers);
  return new Map([...powers].map(([ruleId, byResource]) => [ruleId, describe(byResource)]));
}

/** Every verb on every resource in every group, by one rule: what cluster-admin is. */
export function grantsEverything(rule: PolicyRule): boolean {
  return rule.verbs.includes("*") && rule.apiGroups.includes("*") && rule.resources.includes("*") && rule.resourceNames.length === 0;
}

/** The first field of a rule holding a literal "*", if any. */
export function wildcardField(rule: PolicyRule): "verbs" | "resources" | "apiGroups" | "nonResourceURLs" | undefined {
  return (["verbs", "resources", "apiGroups", "nonResourceURLs"] as const).find((field) => rule[field].includes("*"));
}

/** The grants of a set of rules, merged per rule id. */
export function grantsOf(sources: readonly RuleSource[], clusterScope: boolean): Grant[] {
  const byRule = new Map<string, { powers: Map<string, Set<string>>; sources: RuleSource[] }>();
  for (const source of sources) {
    const powers: Powers = new Map();
    collectPowers(source.rule, clusterScope, powers);
    for (const [ruleId, byResource] of powers) {
      const entry = byRule.get(ruleId) ?? { powers: new Map<string, Set<string>>(), sources: [] };
      for (const [resource, verbs] of byResource) entry.powers.set(resource, new Set([...(entry.powers.get(resource) ?? []), ...verbs]));
      entry.sources.push(source);
      byRule.set(ruleId, entry);
    }
  }
  return [...byRule].map(([ruleId, entry]) => ({ ruleId, what: describe(entry.powers), sources: entry.sources }));
}

// --- built-in ClusterRoles ----------------------------------------------------------------------------------------

interface BuiltInRole {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** matchLabels of the aggregationRule's one selector. */
  readonly aggregates?: Readonly<Record<string, string>>;
  readonly rules: readonly PolicyRule[];
}

function rule(verbs: string[], apiGroups: string[], resources: string[]): PolicyRule {
  return { verbs, apiGroups, resources, resourceNames: [], nonResourceURLs: [] };
}

const READ = ["get", "list", "watch"];
const WRITE = ["create", "delete", "deletecollection", "patch", "update"];
const TO_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view";

/**
 * The user-facing default ClusterRoles as the API server bootstraps them (plugin/pkg/auth/authorizer/rbac/
 * bootstrappolicy/policy.go): admin, edit and view are empty shells that aggregate the system:aggregate-to-* roles
 * (and any ClusterRole carrying the same labels), edit is itself aggregated into admin and view into edit.
 */
const BUILT_IN_ROLES: readonly BuiltInRole[] = [
  { name: "cluster-admin", labels: {}, rules: [rule(["*"], ["*"], ["*"]), { verbs: ["*"], apiGroups: [], resources: [], resourceNames: [], nonResourceURLs: ["*"] }] },
  { name: "admin", labels: {}, aggregates: { [TO_ADMIN]: "true" }, rules: [] },
  { name: "edit", labels: { [TO_ADMIN]: "true" }, aggregates: { [TO_EDIT]: "true" }, rules: [] },
  { name: "view", labels: { [TO_EDIT]: "true" }, aggregates: { [TO_VIEW]: "true" }, rules: [] },
  {
    name: "system:aggregate-to-admin",
    labels: { [TO_ADMIN]: "true" },
    rules: [rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]), rule([...READ, ...WRITE], ["rbac.authorization.k8s.io"], ["roles", "rolebindings"])],
  },
  {
    name: "system:aggregate-to-edit",
    labels: { [TO_EDIT]: "true" },
    rules: [
      rule(READ, [""], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"]),
      rule(["impersonate"], [""], ["serviceaccounts"]),
      rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
      rule(["create"], [""], ["pods/eviction"]),
      rule(WRITE, [""], ["replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets"]),
      rule(["create"], [""], ["serviceaccounts/token"]),
      rule(WRITE, ["apps"], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale"]),
      rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
      rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
      rule(WRITE, ["extensions"], ["daemonsets", "deployments", "deployments/scale", "deployments/rollback", "ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies"]),
      rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
      rule(WRITE, ["networking.k8s.io"], ["networkpolicies", "ingresses"]),
    ],
  },
  {
    name: "system:aggregate-to-view",
    labels: { [TO_VIEW]: "true" },
    rules: [
      rule(READ, [""], ["pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"]),
      rule(READ, [""], ["limitranges", "resourcequotas", "bindings", "events", "pods/status", "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log", "namespaces"]),
      rule(READ, ["apps"], ["controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale", "daemonsets", "daemonsets/status", "deployments", "deployments/status", "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale"]),
      rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
      rule(READ, ["batch"], ["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
      rule(READ, ["extensions", "networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
      rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    ],
  },
];

/** A ClusterRole as the resolver sees it: from the inputs or built in. */
export interface ClusterRoleView {
  readonly name: string;
  readonly labels: Readonly<Record<string, unknown>>;
  /** aggregationRule.clusterRoleSelectors, when the role aggregates. */
  readonly selectors?: readonly unknown[];
  readonly sources: readonly RuleSource[];
}

export function builtInClusterRoles(): ClusterRoleView[] {
  return BUILT_IN_ROLES.map((role) => ({
    name: role.name,
    labels: role.labels,
    selectors: role.aggregates === undefined ? undefined : [{ matchLabels: role.aggregates }],
    sources: role.rules.map((policy) => ({ rule: policy, roleName: `ClusterRole ${role.name} (built-in)` })),
  }));
}

export function clusterRoleView(name: string, value: Record<string, unknown>, objectKey: string): ClusterRoleView {
  const metadata = asRecord(value.metadata);
  const aggregation = asRecord(value.aggregationRule);
  return {
    name,
    labels: asRecord(metadata?.labels) ?? {},
    selectors: aggregation === undefined ? undefined : asArray(aggregation.clusterRoleSelectors),
    sources: asArray(value.rules).map((item, index) => ({ rule: policyRuleOf(item), origin: { objectKey, path: ["rules", index] }, roleName: `ClusterRole ${name}` })),
  };
}

/**
 * The rules a ClusterRole holds once the aggregation controller has run: its own, plus those of every ClusterRole its
 * selectors match, transitively (edit into admin, view into edit), each once.
 */
export function effectiveClusterRoleSources(name: string, roles: ReadonlyMap<string, ClusterRoleView>, matches: (selector: unknown, labels: Readonly<Record<string, unknown>>) => boolean, visiting: Set<string> = new Set()): RuleSource[] {
  const role = roles.get(name);
  if (role === undefined || visiting.has(name)) return [];
  visiting.add(name);
  const sources = [...role.sources];
  if (role.selectors !== undefined && role.selectors.length > 0) {
    for (const candidate of roles.values()) {
      if (candidate.name === name) continue;
      // An aggregationRule's selectors never select everything: an empty selector list aggregates nothing.
      if (role.selectors.some((selector) => asRecord(selector) !== undefined && matches(selector, candidate.labels))) {
        sources.push(...effectiveClusterRoleSources(candidate.name, roles, matches, visiting));
      }
    }
  }
  return sources;
}

/** `ServiceAccount apps/tool, Group system:authenticated` from a binding's subjects. */
export function subjectsOf(value: Record<string, unknown>, bindingNamespace: string): string {
  const subjects = asArray(value.subjects).map((item) => {
    const subject = asRecord(item) ?? {};
    const kind = asString(subject.kind) ?? "subject";
    const name = asString(subject.name) ?? "(unnamed)";
    if (kind === "ServiceAccount") return `ServiceAccount ${asString(subject.namespace) ?? (bindingNamespace || "default")}/${name}`;
    return `${kind} ${name}`;
  });
  return subjects.length === 0 ? "no subject" : subjects.join(", ");
}
