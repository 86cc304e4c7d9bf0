// Who may do what in the cluster: Pod Security admission labels on namespaces, and RBAC judged on what each role
// grants and each binding hands out.
import type { Collector, Origin } from "../collector.ts";
import { builtInClusterRoles, clusterRoleView, effectiveClusterRoleSources, grantField, grantsEverything, grantsOf, policyRuleOf, powersOfRule, subjectsOf, wildcardField } from "../rbac.ts";
import type { ClusterRoleView, PolicyRule, RuleSource } from "../rbac.ts";
import { asArray, asRecord, asString } from "../yaml-source.ts";
import type { Path } from "../yaml-source.ts";
import type { KubeObject } from "./objects.ts";
import { selectorMatches } from "./network-policy.ts";

export function checkPodSecurityLabels(objects: readonly KubeObject[], collector: Collector): void {
  for (const object of objects) {
    if (object.kind !== "Namespace") continue;
    const labels = asRecord(asRecord(object.value.metadata)?.labels) ?? {};
    const enforce = asString(labels["pod-security.kubernetes.io/enforce"]);
    const warn = asString(labels["pod-security.kubernetes.io/warn"]);
    const audit = asString(labels["pod-security.kubernetes.io/audit"]);
    const labelsPath = object.value.metadata !== undefined && asRecord(object.value.metadata)?.labels !== undefined ? ["metadata", "labels"] : ["metadata"];
    if (enforce === undefined) {
      collector.add("K8S-PSA-LABELS", object, labelsPath, `namespace "${object.objectName}" has no pod-security.kubernetes.io/enforce label: nothing stops a privileged pod`);
    } else if (enforce !== "baseline" && enforce !== "restricted") {
      collector.add("K8S-PSA-LABELS", object, [...labelsPath, "pod-security.kubernetes.io/enforce"], `namespace "${object.objectName}" enforces "${enforce}": use restricted (baseline for the agent's namespace)`);
    } else if (enforce === "baseline" && warn !== "restricted" && audit !== "restricted") {
      collector.add("K8S-PSA-LABELS", object, [...labelsPath, "pod-security.kubernetes.io/enforce"], `namespace "${object.objectName}" enforces baseline without warn/audit: restricted, so violations of the restricted profile go unseen`);
    }
  }
}

// --- RBAC ---------------------------------------------------------------------------------------------------------

/**
 * Each Role and ClusterRole is judged rule by rule on what it grants (rbac.ts), where the fix goes; each binding is
 * judged on what the role it references grants — local, aggregated or built-in — and names who receives it. A binding's
 * finding carries the suppressions of the role rules it comes from.
 */
export function checkRbac(objects: readonly KubeObject[], collector: Collector): void {
  const byKey = new Map<string, KubeObject>();
  const clusterRoles = new Map<string, ClusterRoleView>(builtInClusterRoles().map((role) => [role.name, role]));
  const roles = new Map<string, RuleSource[]>();
  for (const object of objects) {
    if (object.kind !== "Role" && object.kind !== "ClusterRole") continue;
    const key = `${object.kind}/${object.namespace}/${object.objectName}`;
    byKey.set(key, object);
    asArray(object.value.rules).forEach((item, index) => checkRbacRule(object, policyRuleOf(item), ["rules", index], object.kind === "ClusterRole", collector));
    if (object.kind === "ClusterRole") {
      const local = clusterRoleView(object.objectName, object.value, key);
      const builtIn = clusterRoles.get(object.objectName);
      const autoupdate = asString(asRecord(asRecord(object.value.metadata)?.annotations)?.["rbac.authorization.kubernetes.io/autoupdate"]);
      // The API server adds a default role's missing permissions back at every start unless autoupdate is "false".
      clusterRoles.set(object.objectName, builtIn === undefined || autoupdate === "false" ? local : { ...local, labels: { ...builtIn.labels, ...local.labels }, selectors: [...(builtIn.selectors ?? []), ...(local.selectors ?? [])], sources: [...local.sources, ...builtIn.sources] });
    }
    else roles.set(`${object.namespace}/${object.objectName}`, asArray(object.value.rules).map((item, index) => ({ rule: policyRuleOf(item), origin: { objectKey: key, path: ["rules", index] }, roleName: `Role ${object.namespace}/${object.objectName}` })));
  }
  // Aggregation resolved once per ClusterRole, however many bindings reference it.
  const effective = new Map<string, RuleSource[]>();
  for (const object of objects) {
    if (object.kind !== "RoleBinding" && object.kind !== "ClusterRoleBinding") continue;
    const roleRef = asRecord(object.value.roleRef);
    const kind = asString(roleRef?.kind);
    const name = asString(roleRef?.name);
    if (name === undefined) continue;
    let sources: RuleSource[] | undefined;
    let boundName: string;
    if (kind === "Role" && object.kind === "RoleBinding") {
      sources = roles.get(`${object.namespace}/${name}`);
      boundName = `Role ${object.namespace}/${name}`;
    } else if (kind === "ClusterRole") {
      if (clusterRoles.has(name) && !effective.has(name)) effective.set(name, effectiveClusterRoleSources(name, clusterRoles, selectorMatches));
      sources = effective.get(name);
      boundName = `ClusterRole ${name}${byKey.has(`ClusterRole//${name}`) ? "" : " (built-in)"}`;
    } else {
      continue;
    }
    // A role that is neither among the inputs nor built in cannot be judged here.
    if (sources === undefined) continue;
    checkBinding(object, sources, boundName, byKey, collector);
  }
}

function checkBinding(binding: KubeObject, sources: readonly RuleSource[], boundName: string, roleObjects: ReadonlyMap<string, KubeObject>, collector: Collector): void {
  const subjects = subjectsOf(binding.value, binding.namespace);
  const clusterScope = binding.kind === "ClusterRoleBinding";
  const through = (granting: readonly RuleSource[]) => {
    // Name the roles among the inputs a grant was aggregated from; the built-in aggregation is the built-in role itself.
    const others = [...new Set(granting.filter((source) => source.origin !== undefined).map((source) => source.roleName))].filter((roleName) => roleName !== boundName);
    return `through ${boundName}${others.length > 0 ? ` (aggregated from ${others.join(", ")})` : ""}`;
  };
  // Suppressions carry only when every granting rule is among the inputs; a built-in grant has nowhere to accept it.
  const originsOf = (granting: readonly RuleSource[], field: string): Origin[] | undefined => {
    const origins = granting.map((source) => {
      const subject = source.origin === undefined ? undefined : roleObjects.get(source.origin.objectKey);
      return subject === undefined || source.origin === undefined ? undefined : { subject, path: [...source.origin.path, field] };
    });
    return origins.every((origin) => origin !== undefined) ? (origins as Origin[]) : undefined;
  };
  const everything = sources.filter((source) => grantsEverything(source.rule));
  if (everything.length > 0) {
    const scope = clusterScope ? "in every namespace and on the cluster" : `in namespace "${binding.namespace}"`;
    collector.add("K8S-RBAC-CLUSTER-ADMIN", binding, ["roleRef", "name"], `gives ${subjects} every verb on every resource ${scope} ${through(everything)}: cluster-admin`, originsOf(everything, "verbs"));
    return;
  }
  for (const grant of grantsOf(sources, clusterScope)) {
    collector.add(grant.ruleId, binding, ["roleRef", "name"], `gives ${subjects} ${grant.what} ${through(grant.sources)}`, originsOf(grant.sources, grantField(grant.ruleId)));
  }
}

function checkRbacRule(object: KubeObject, rule: PolicyRule, path: Path, clusterScope: boolean, collector: Collector): void {
  const wildcard = wildcardField(rule);
  if (wildcard !== undefined) collector.add("K8S-RBAC-WILDCARD", object, [...path, wildcard], `"*" in ${wildcard} grants everything it covers now and whatever is added later`);
  for (const [ruleId, what] of powersOfRule(rule, clusterScope)) collector.add(ruleId, object, [...path, grantField(ruleId)], `grants ${what}`);
}
