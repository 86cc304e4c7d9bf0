// The Kubernetes backend's objects alone: how a Job's status reads, what the inputs ConfigMap carries, which
// templates are refused. No API server involved.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import { checkTemplate, inputsConfigMap, jobOutcome } from "./kubernetes-job.ts";
import { SandboxUnavailableError } from "./task.ts";
import { TEST_LIMITS } from "./test-support.ts";

test("a Job's outcome: its True condition first, then its counters; a running Job has none", () => {
  assert.equal(jobOutcome(undefined), undefined);
  assert.equal(jobOutcome({ apiVersion: "batch/v1", kind: "Job", status: { active: 1 } }), undefined);
  assert.deepEqual(jobOutcome({ apiVersion: "batch/v1", kind: "Job", status: { conditions: [{ type: "Failed", status: "True", reason: "DeadlineExceeded" }] } }), { kind: "failed", reason: "DeadlineExceeded" });
  assert.deepEqual(jobOutcome({ apiVersion: "batch/v1", kind: "Job", status: { conditions: [{ type: "Complete", status: "False" }], succeeded: 1 } }), { kind: "complete" });
  assert.deepEqual(jobOutcome({ apiVersion: "batch/v1", kind: "Job", status: { failed: 1 } }), { kind: "failed", reason: "Failed" });
});

test("the inputs ConfigMap carries the wrapper, each file (base64) with its mode and path in the manifest, and stdin", () => {
  const task = { argv: ["sh", "x.sh"], stdin: Buffer.from("in"), files: [{ path: "bin/x.sh", content: Buffer.from("echo"), mode: 0o755 }], env: {}, limits: TEST_LIMITS, network: { mode: "none" as const }, collect: [], caller: "default", capped: [] };
  const configMap = inputsConfigMap(task, { name: "t-inputs", namespace: "sandbox", labels: { a: "b" }, nonce: "0123456789abcdef0123456789abcdef", returnBytes: 1024 });
  assert.equal(configMap.data?.manifest, "file-0\t755\tbin/x.sh\n");
  assert.equal(configMap.binaryData?.["file-0"], Buffer.from("echo").toString("base64"));
  assert.equal(configMap.binaryData?.stdin, Buffer.from("in").toString("base64"));
  assert.match(configMap.data?.["run.sh"] ?? "", /0123456789abcdef0123456789abcdef/);
  assert.deepEqual(configMap.metadata, { name: "t-inputs", namespace: "sandbox", labels: { a: "b" } });
});

test("a template that is not a batch/v1 Job with a task container and workspace and tmp volumes is refused, saying what is missing", () => {
  const template: IJob = { apiVersion: "batch/v1", kind: "Job", spec: { template: { spec: { containers: [{ name: "task" }], volumes: [{ name: "workspace" }] } } } };
  assert.throws(() => checkTemplate(template, "job.yaml"), (error: unknown) => error instanceof SandboxUnavailableError && error.message === 'job.yaml: the template has no "tmp" volume');
  assert.throws(() => checkTemplate({ ...template, kind: "Pod" } as unknown as IJob, "job.yaml"), /not a batch\/v1 Job/);
});
