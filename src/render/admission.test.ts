// Issue 12, item 10 (render side): the sandbox Job template was enforced only by the runner's code, so whoever holds
// the runner's token (or a bug in it) could create any Job in the sandbox namespace. Required behaviours:
//   A1  a ValidatingAdmissionPolicy per kind (Jobs, Pods) with its Binding, scoped to the sandbox namespace, Deny,
//       failurePolicy Fail, valid against the Kubernetes schemas;
//   A2  the Job the runner really submits (src/sandbox's taskJob on the rendered template), and the Pod the Job
//       controller makes from it, pass every rule;
//   A3  a tampered Job or Pod (another image, a hostPath or Secret volume, node placement, host namespaces,
//       privilege, another identity, a token) is refused;
//   A4  the namespace's object counts are bounded (count/jobs.batch, count/configmaps, count/pods) from
//       sandbox.concurrency, and its `default` ServiceAccount mounts no token.
// There is no API server here, so the CEL is evaluated for real with @bufbuild/cel (a CEL implementation checked
// against the CEL specification's conformance tests), binding `object`, `request` and `variables` as Kubernetes does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { run, isCelError } from "@bufbuild/cel";
import { ValidatingAdmissionPolicy } from "kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy";
import { ValidatingAdmissionPolicyBinding } from "kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import { taskJob } from "../sandbox/index.ts";
import { renderKubernetes } from "./index.ts";
import { EXAMPLES, configFrom, exampleConfig, find, manifestObjects, yamlOf } from "./testing.ts";
import type { AnyObject, Loose } from "./testing.ts";

/** Kubernetes objects are JSON: maps, lists, strings, booleans and integers (CEL int, not double). */
function celValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(celValue);
  if (value !== null && typeof value === "object") return new Map(Object.entries(value).map(([key, entry]) => [key, celValue(entry)]));
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  return value;
}

type Operation = "CREATE" | "UPDATE";

/** What a ValidatingAdmissionPolicy decides for one request: the messages of the validations that are not true. */
function evaluate(policy: AnyObject, object: unknown, operation: Operation): string[] {
  const spec = policy.spec as Loose;
  const variables = new Map<string, unknown>();
  const bindings = () => ({ object: celValue(object), oldObject: null, request: celValue({ operation }), variables }) as Loose;
  for (const variable of spec.variables ?? []) {
    const value = run(variable.expression, bindings());
    // Kubernetes evaluates variables lazily; an error in one fails every validation that reads it.
    if (isCelError(value)) return (spec.validations as Loose[]).map((validation) => `${validation.message} (variable ${variable.name}: ${value.message})`);
    variables.set(variable.name, value);
  }
  const failures: string[] = [];
  for (const validation of spec.validations as Loose[]) {
    const result = run(validation.expression, bindings());
    if (result !== true) failures.push(isCelError(result) ? `${validation.message} (${result.message})` : validation.message);
  }
  return failures;
}

function renderObjects(config: ReturnType<typeof exampleConfig>): AnyObject[] {
  return manifestObjects(new Map(renderKubernetes(config).files.map((file) => [file.path, file.content])));
}

/** The policy whose rules match this kind and operation (and its binding), as the API server would select it. */
function policyFor(objects: readonly AnyObject[], resource: "jobs" | "pods", operation: Operation): AnyObject {
  const matching = objects.filter(
    (object) =>
      object.kind === "ValidatingAdmissionPolicy" &&
      ((object.spec as Loose).matchConstraints.resourceRules as Loose[]).some((rule) => rule.resources.includes(resource) && rule.operations.includes(operation)),
  );
  assert.equal(matching.length, 1, `exactly one policy for ${operation} ${resource}`);
  return matching[0] as AnyObject;
}

function renderedTemplate(objects: readonly AnyObject[], tools: string): IJob {
  return yamlOf((find(objects, "ConfigMap", "sandbox-job-template", tools).data as Record<string, string>)["job.yaml"] as string) as IJob;
}

/** The Job the runner submits for one task: src/sandbox's own taskJob on the rendered template. */
function runnerJob(template: IJob): Loose {
  return taskJob(template, { name: "perimeter-task-0123456789", namespace: template.metadata?.namespace as string, argv: ["python3", "-c", "print(1)"], env: { MODE: "test" }, configMapName: "perimeter-task-0123456789-inputs" });
}

/** The Pod the Job controller creates from it, after the API server's defaulting and admission plugins. */
function controllerPod(job: Loose): Loose {
  const template = structuredClone(job.spec.template);
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { ...template.metadata, name: `${job.metadata.name}-x7k2p`, namespace: job.metadata.namespace },
    spec: {
      ...template.spec,
      dnsPolicy: template.spec.dnsPolicy ?? "ClusterFirst",
      schedulerName: "default-scheduler",
      terminationGracePeriodSeconds: 30,
      // DefaultTolerationSeconds adds these to every pod; placement is judged on the Job's template instead.
      tolerations: [
        { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 },
        { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 },
      ],
    },
  };
}

type Tamper = (pod: Loose) => void;
const task = (pod: Loose) => pod.containers[0];

/** Each way a Job could escape the template, applied to the pod spec (of the Job's template or of a Pod). */
const TAMPERINGS: Record<string, Tamper> = {
  "a hostPath volume": (pod) => pod.volumes.push({ name: "host", hostPath: { path: "/" } }),
  "a Secret volume": (pod) => pod.volumes.push({ name: "keys", secret: { secretName: "llm-proxy" } }),
  "a PVC volume": (pod) => pod.volumes.push({ name: "data", persistentVolumeClaim: { claimName: "hermes-data" } }),
  "a projected service-account token": (pod) => pod.volumes.push({ name: "token", projected: { sources: [{ serviceAccountToken: { path: "token" } }] } }),
  "another image": (pod) => (task(pod).image = "attacker.example/tools:1"),
  "a second container with another image": (pod) => pod.containers.push({ name: "side", image: "attacker.example/tools:1" }),
  "an init container": (pod) => (pod.initContainers = [{ name: "init", image: task(pod).image }]),
  "nodeName": (pod) => (pod.nodeName = "control-plane-1"),
  "hostNetwork": (pod) => (pod.hostNetwork = true),
  "hostPID": (pod) => (pod.hostPID = true),
  "hostIPC": (pod) => (pod.hostIPC = true),
  "a privileged container": (pod) => (task(pod).securityContext = { ...task(pod).securityContext, privileged: true }),
  "another service account": (pod) => (pod.serviceAccountName = "default"),
  "no service account named": (pod) => delete pod.serviceAccountName,
  "a mounted token": (pod) => (pod.automountServiceAccountToken = true),
  "the token left to the ServiceAccount's default": (pod) => delete pod.automountServiceAccountToken,
};

/** Placement only a Job's template is judged on (admission plugins add tolerations and RuntimeClass selectors to pods). */
const PLACEMENT: Record<string, Tamper> = {
  "a nodeSelector": (pod) => (pod.nodeSelector = { "kubernetes.io/hostname": "control-plane-1" }),
  "an affinity": (pod) => (pod.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "node-role.kubernetes.io/control-plane", operator: "Exists" }] }] } } }),
  "tolerations": (pod) => (pod.tolerations = [{ operator: "Exists" }]),
};

for (const example of EXAMPLES) {
  const config = exampleConfig(example);
  const objects = renderObjects(config);
  const sandbox = `${config.name}-sandbox`;
  const tools = `${config.name}-tools`;
  const template = renderedTemplate(objects, tools);

  test(`${example}: A1 — one policy for Jobs and one for Pods, each bound to the sandbox namespace only, Deny, failing closed, schema-valid`, () => {
    for (const [resource, operations] of [["jobs", ["CREATE", "UPDATE"]], ["pods", ["CREATE", "UPDATE"]]] as const) {
      for (const operation of operations) {
        const policy = policyFor(objects, resource, operation);
        const spec = policy.spec as Loose;
        assert.equal(spec.failurePolicy, "Fail");
        assert.deepEqual(spec.matchConstraints.namespaceSelector, { matchLabels: { "kubernetes.io/metadata.name": sandbox } });
        assert.doesNotThrow(() => new ValidatingAdmissionPolicy(policy as Loose).validate(), policy.metadata.name);
        const bindings = objects.filter((object) => object.kind === "ValidatingAdmissionPolicyBinding" && (object.spec as Loose).policyName === policy.metadata.name);
        assert.equal(bindings.length, 1, `${policy.metadata.name} has one binding`);
        const binding = bindings[0] as AnyObject;
        assert.deepEqual((binding.spec as Loose).validationActions, ["Deny"]);
        assert.deepEqual((binding.spec as Loose).matchResources.namespaceSelector, { matchLabels: { "kubernetes.io/metadata.name": sandbox } });
        assert.doesNotThrow(() => new ValidatingAdmissionPolicyBinding(binding as Loose).validate(), binding.metadata.name);
      }
    }
  });

  test(`${example}: A2 — the runner's real Job for a task, and the Pod made from it, pass every rule`, () => {
    const job = runnerJob(template);
    assert.deepEqual(evaluate(policyFor(objects, "jobs", "CREATE"), job, "CREATE"), []);
    assert.deepEqual(evaluate(policyFor(objects, "jobs", "UPDATE"), job, "UPDATE"), []);
    const pod = controllerPod(job);
    assert.deepEqual(evaluate(policyFor(objects, "pods", "CREATE"), pod, "CREATE"), []);
    // Once scheduled (nodeName set by the binding), the Job controller still updates the pod (finalizers).
    assert.deepEqual(evaluate(policyFor(objects, "pods", "UPDATE"), { ...pod, spec: { ...pod.spec, nodeName: "worker-1" } }, "UPDATE"), []);
  });

  for (const [what, tamper] of Object.entries({ ...TAMPERINGS, ...PLACEMENT })) {
    test(`${example}: A3 — a Job with ${what} is refused`, () => {
      const job = runnerJob(template);
      tamper(job.spec.template.spec);
      const failures = evaluate(policyFor(objects, "jobs", "CREATE"), job, "CREATE");
      assert.ok(failures.length > 0, `a Job with ${what} was admitted`);
      for (const message of failures) assert.match(message, /sandbox/, "the message names what the sandbox allows");
    });
  }

  for (const [what, tamper] of Object.entries(TAMPERINGS)) {
    test(`${example}: A3 — a Pod created directly with ${what} is refused`, () => {
      const pod = controllerPod(runnerJob(template));
      tamper(pod.spec);
      assert.ok(evaluate(policyFor(objects, "pods", "CREATE"), pod, "CREATE").length > 0, `a Pod with ${what} was admitted`);
    });
  }

  if (config.kubernetes.sandboxRuntimeClass !== null || config.sandbox.runtimeClassName !== undefined) {
    test(`${example}: A3 — a Job without the configured runtimeClass, or with another, is refused`, () => {
      for (const tamper of [(pod: Loose) => delete pod.runtimeClassName, (pod: Loose) => (pod.runtimeClassName = "runc")]) {
        const job = runnerJob(template);
        tamper(job.spec.template.spec);
        assert.ok(evaluate(policyFor(objects, "jobs", "CREATE"), job, "CREATE").length > 0);
        const pod = controllerPod(runnerJob(template));
        tamper(pod.spec);
        assert.ok(evaluate(policyFor(objects, "pods", "CREATE"), pod, "CREATE").length > 0);
      }
    });
  }

  test(`${example}: A4 — object counts in the sandbox namespace are bounded from sandbox.concurrency; its default ServiceAccount mounts no token`, () => {
    const concurrency = config.sandbox.concurrency;
    const hard = ((find(objects, "ResourceQuota", "sandbox-tasks", sandbox).spec as Loose).hard) as Record<string, string>;
    assert.equal(hard.pods, String(concurrency));
    // Twice the concurrency: a finished task's Job, pod and inputs ConfigMap linger until garbage-collected.
    assert.equal(hard["count/jobs.batch"], String(2 * concurrency));
    assert.equal(hard["count/pods"], String(2 * concurrency));
    // One more ConfigMap: kube-root-ca.crt, which Kubernetes publishes into every namespace.
    assert.equal(hard["count/configmaps"], String(2 * concurrency + 1));
    for (const resource of ["count/secrets", "count/services", "count/persistentvolumeclaims"]) assert.equal(hard[resource], "0", resource);
    assert.equal(find(objects, "ServiceAccount", "default", sandbox).automountServiceAccountToken, false);
  });
}

test("A3 — the image rule is exact: a tag or digest other than the configured one is refused", () => {
  const config = configFrom("version: 1\nname: lab\nllm:\n  providers:\n    openai: { baseUrl: https://api.openai.com/v1, apiKeySecret: OPENAI_API_KEY, models: [gpt-5-mini] }\nsandbox:\n  image: registry.example.com/py@sha256:" + "a".repeat(64) + "\nkubernetes:\n  apiServerCidr: 10.0.0.1/32\n  serviceIPs: { mcp-guard: 10.43.0.240, llm-proxy: 10.43.0.241, egress-proxy: 10.43.0.242 }\n");
  const objects = renderObjects(config);
  const policy = policyFor(objects, "jobs", "CREATE");
  const job = runnerJob(renderedTemplate(objects, "lab-tools"));
  assert.deepEqual(evaluate(policy, job, "CREATE"), []);
  for (const image of [`registry.example.com/py@sha256:${"b".repeat(64)}`, "registry.example.com/py:3.12", "registry.example.com/py", `registry.example.com/py@sha256:${"a".repeat(64)} `]) {
    const tampered = structuredClone(job);
    tampered.spec.template.spec.containers[0].image = image;
    assert.ok(evaluate(policy, tampered, "CREATE").length > 0, `${image} was admitted`);
  }
});
