// The sandbox Job template is a contract with the sandbox runner: these tests pin every field it relies on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Job } from "kubernetes-models/batch/v1/Job";
import { parseConfig } from "../config/index.ts";
import { sandboxJobTemplate } from "./index.ts";

const base = `version: 1
name: hermes
sandbox:
  backend: kubernetes
  image: python:3.12-slim
  limits: { cpu: "2", memory: 2Gi, disk: 3Gi, timeoutSeconds: 120 }
`;

test("sandbox Job template: namespace, labels, no retries, deadline and TTL come from the config", () => {
  const job = sandboxJobTemplate(parseConfig(base));
  assert.equal(job.metadata?.namespace, "hermes-sandbox");
  for (const labels of [job.metadata?.labels, job.spec?.template.metadata?.labels]) {
    assert.equal(labels?.["app.kubernetes.io/name"], "perimeter-sandbox-task");
    assert.equal(labels?.["app.kubernetes.io/part-of"], "perimeter");
    assert.equal(labels?.["perimeter.dev/role"], "sandbox-task");
  }
  assert.equal(job.spec?.backoffLimit, 0);
  assert.equal(job.spec?.activeDeadlineSeconds, 120);
  assert.equal(job.spec?.ttlSecondsAfterFinished, 300);
});

test("sandbox Job template: pod has no token, no service links, non-root RuntimeDefault seccomp", () => {
  const pod = sandboxJobTemplate(parseConfig(base)).spec?.template.spec;
  assert.equal(pod?.restartPolicy, "Never");
  assert.equal(pod?.automountServiceAccountToken, false);
  assert.equal(pod?.serviceAccountName, "sandbox-task");
  assert.equal(pod?.enableServiceLinks, false);
  assert.deepEqual(pod?.securityContext, { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } });
  assert.equal(pod?.runtimeClassName, undefined);
});

test("sandbox Job template: one `task` container, locked down, limits from config, only emptyDir volumes with sizeLimit", () => {
  const pod = sandboxJobTemplate(parseConfig(base)).spec?.template.spec;
  assert.equal(pod?.containers.length, 1);
  const container = pod?.containers[0];
  assert.equal(container?.name, "task");
  assert.equal(container?.image, "python:3.12-slim");
  assert.equal(container?.workingDir, "/workspace");
  assert.equal(container?.command, undefined);
  assert.deepEqual(container?.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } });
  const expected = { cpu: "2", memory: "2Gi", "ephemeral-storage": "3Gi" };
  assert.deepEqual(container?.resources, { requests: expected, limits: expected });
  assert.deepEqual(container?.volumeMounts, [{ name: "workspace", mountPath: "/workspace" }, { name: "tmp", mountPath: "/tmp" }]);
  assert.deepEqual(pod?.volumes, [{ name: "workspace", emptyDir: { sizeLimit: "3Gi" } }, { name: "tmp", emptyDir: { sizeLimit: "256Mi" } }]);
});

test("sandbox Job template: runtimeClassName from kubernetes.sandboxRuntimeClass, else sandbox.runtimeClassName", () => {
  assert.equal(sandboxJobTemplate(parseConfig(`${base}kubernetes: { sandboxRuntimeClass: gvisor }\n`)).spec?.template.spec?.runtimeClassName, "gvisor");
  assert.equal(sandboxJobTemplate(parseConfig(base.replace("backend: kubernetes", "backend: kubernetes\n  runtimeClassName: kata"))).spec?.template.spec?.runtimeClassName, "kata");
});

test("sandbox Job template validates against the Kubernetes batch/v1 Job schema", () => {
  const template = sandboxJobTemplate(parseConfig(base));
  // The runner adds a name and a command; validate the object it will submit.
  const submitted = structuredClone(template);
  submitted.metadata = { ...submitted.metadata, name: "task-1" };
  assert.doesNotThrow(() => new Job(submitted).validate());
});

test("sandbox Job template: no network means no proxy variables; an allowlist points every HTTP client at the sandbox's own proxy", () => {
  const none = sandboxJobTemplate(parseConfig(base)).spec?.template.spec?.containers[0];
  assert.equal(none?.env, undefined);
  const allowed = sandboxJobTemplate(parseConfig(base.replace("  image: python:3.12-slim\n", "  image: python:3.12-slim\n  network: { allow: [pypi.org] }\n")));
  const env = allowed.spec?.template.spec?.containers[0]?.env ?? [];
  for (const name of ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"]) {
    assert.equal(env.find((entry) => entry.name === name)?.value, "http://egress-proxy-sandbox.hermes-tools.svc.cluster.local:3128");
  }
  assert.equal(env.find((entry) => entry.name === "NO_PROXY")?.value, "localhost,127.0.0.1,::1");
});
