// What the API server itself enforces in the sandbox namespace. The runner builds every task's Job from the
// hardened template, but that was enforced only by the runner's code: its token (Role: create Jobs there) or a bug
// in it could create any pod spec. These ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1, GA since
// Kubernetes 1.30) hold every Job and Pod in that namespace to the template's security-relevant fields, whoever
// submits it. Two policies rather than one: CEL is type-checked per kind, and a Job's pod spec and a Pod's are at
// different paths. Placement (nodeSelector, affinity, tolerations) is judged on the Job's template only: admission
// plugins add tolerations (DefaultTolerationSeconds) and RuntimeClass node selectors to every Pod before validation.
import type { PerimeterConfig } from "../../config/index.ts";
import { namespaces, standardLabels } from "./names.ts";
import { DEFAULT_SANDBOX_IMAGE } from "../plan.ts";
import { SANDBOX_TASK_SERVICE_ACCOUNT } from "./sandbox-job.ts";

interface Validation {
  readonly expression: string;
  readonly message: string;
  readonly reason: "Forbidden";
}

/** A CEL string literal. */
function celString(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

const FIX = "sandbox tasks are created only from the rendered sandbox-job-template (perimeter render -t kubernetes)";

/** The rules on a pod spec bound to `variables.pod`; `kind` says where it sits and what can be judged there. */
export function podSpecValidations(config: PerimeterConfig, kind: "Job" | "Pod"): Validation[] {
  const pod = "variables.pod";
  const runtimeClass = config.kubernetes.sandboxRuntimeClass ?? config.sandbox.runtimeClassName;
  const rule = (expression: string, message: string): Validation => ({ expression, message: `${message}: ${FIX}`, reason: "Forbidden" });
  const unset = (field: string) => `(!has(${pod}.${field}) || !${pod}.${field})`;
  const empty = (field: string) => `(!has(${pod}.${field}) || size(${pod}.${field}) == 0)`;
  const rules: Validation[] = [
    rule(`${pod}.containers.all(c, c.image == ${celString(config.sandbox.image ?? DEFAULT_SANDBOX_IMAGE)})`, `sandbox containers run only the image ${config.sandbox.image ?? DEFAULT_SANDBOX_IMAGE} (sandbox.image)`),
    rule(`${empty("initContainers")} && ${empty("ephemeralContainers")}`, "sandbox pods have no init or ephemeral containers"),
    rule(
      `has(${pod}.serviceAccountName) && ${pod}.serviceAccountName == ${celString(SANDBOX_TASK_SERVICE_ACCOUNT)} && (!has(${pod}.serviceAccount) || ${pod}.serviceAccount == ${celString(SANDBOX_TASK_SERVICE_ACCOUNT)})`,
      `sandbox pods run as the ServiceAccount ${SANDBOX_TASK_SERVICE_ACCOUNT}`,
    ),
    rule(`has(${pod}.automountServiceAccountToken) && ${pod}.automountServiceAccountToken == false`, "sandbox pods set automountServiceAccountToken: false"),
    // One source per volume is already enforced by schema validation, which runs before this policy.
    rule(`!has(${pod}.volumes) || ${pod}.volumes.all(v, has(v.emptyDir) || has(v.configMap))`, "sandbox volumes are emptyDir or configMap only (no hostPath, Secret, PVC or projected token)"),
    rule(`${unset("hostNetwork")} && ${unset("hostPID")} && ${unset("hostIPC")}`, "sandbox pods share no host namespace (hostNetwork, hostPID, hostIPC)"),
    rule(`${pod}.containers.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged)`, "sandbox containers are never privileged"),
    // A Pod is bound to its node by the scheduler after creation; only a Pod created with nodeName skips it.
    rule(kind === "Job" ? `!has(${pod}.nodeName)` : `request.operation != 'CREATE' || !has(${pod}.nodeName)`, "sandbox pods are placed by the scheduler (no nodeName)"),
  ];
  if (runtimeClass !== undefined && runtimeClass !== null) {
    rules.push(rule(`has(${pod}.runtimeClassName) && ${pod}.runtimeClassName == ${celString(runtimeClass)}`, `sandbox pods run under the RuntimeClass ${runtimeClass}`));
  }
  if (kind === "Job") {
    rules.push(rule(`!has(${pod}.nodeSelector) && !has(${pod}.affinity) && !has(${pod}.tolerations)`, "sandbox Jobs choose no nodes (no nodeSelector, affinity or tolerations)"));
  }
  return rules;
}

/** The two policies (Jobs, Pods) and their bindings, scoped to the sandbox namespace by its name label. */
export function sandboxAdmissionObjects(config: PerimeterConfig): object[] {
  const sandbox = namespaces(config).sandbox;
  const inSandbox = { matchLabels: { "kubernetes.io/metadata.name": sandbox } };
  const kinds = [
    { kind: "Job" as const, name: `${sandbox}-jobs`, group: "batch", resource: "jobs", podPath: "object.spec.template.spec" },
    { kind: "Pod" as const, name: `${sandbox}-pods`, group: "", resource: "pods", podPath: "object.spec" },
  ];
  return kinds.flatMap(({ kind, name, group, resource, podPath }) => [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: { name, labels: standardLabels(config, name, "sandbox") },
      spec: {
        // An error evaluating a rule (or the API server failing to run it) refuses the object.
        failurePolicy: "Fail",
        matchConstraints: {
          namespaceSelector: inSandbox,
          resourceRules: [{ apiGroups: [group], apiVersions: ["v1"], operations: ["CREATE", "UPDATE"], resources: [resource] }],
        },
        variables: [{ name: "pod", expression: podPath }],
        validations: podSpecValidations(config, kind),
      },
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata: { name, labels: standardLabels(config, name, "sandbox") },
      spec: { policyName: name, validationActions: ["Deny"], matchResources: { namespaceSelector: inSandbox } },
    },
  ]);
}
