// The Kubernetes backend's objects, as pure functions of the hardened Job template: the template's checks, the Job
// for one task (only the per-task fields changed), the inputs ConfigMap (wrapper, files, stdin, manifest), and how a
// Job's status reads as an outcome. Exported for render's admission test and tested alone.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import { INPUTS_DIRECTORY, wrapperScript } from "./framing.ts";
import { SandboxUnavailableError } from "./task.ts";
import type { CheckedTask } from "./task.ts";

/** The container the template names; everything the runner sets goes into it. */
export const TASK_CONTAINER = "task";
/** ConfigMaps hold at most 1 MiB; leave room for keys and metadata. */
export const CONFIG_MAP_BUDGET = 900 * 1024;
/**
 * The label on every Job and ConfigMap a runner makes, naming the runner: at start it deletes what a previous run of
 * itself left (a crash or a kill mid-task), selected by this label, and nothing else in the namespace.
 */
export const RUNNER_LABEL = "perimeter.dev/sandbox-runner";
/**
 * The most a task returns in files (the tar stream, headers included), unless configured. Results travel through
 * the pod log, base64 in framed lines (about 2 bytes of log per byte), and the kubelet rotates a container log past
 * containerLogMaxSize (10 MiB by default) and serves only the newest part: 1 MiB each of stdout and stderr plus
 * 3 MiB of files come to about 9.8 MiB of log. It also bounds what the runner holds per task.
 * @default 3 MiB
 */
export const DEFAULT_MAX_RETURN_BYTES = 3 * 1024 * 1024;

/** Reads the template the runner is deployed with (render writes it into a ConfigMap mounted at this path). */
export function loadJobTemplate(path: string): IJob {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new SandboxUnavailableError(`cannot read the sandbox Job template ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); it is rendered by perimeter render -t kubernetes and mounted from the sandbox-job-template ConfigMap`);
  }
  const template = parseYaml(text) as IJob;
  checkTemplate(template, path);
  return template;
}

export function checkTemplate(template: IJob, where: string): void {
  const containers = template.spec?.template?.spec?.containers ?? [];
  if (template.kind !== "Job" || template.apiVersion !== "batch/v1") throw new SandboxUnavailableError(`${where}: not a batch/v1 Job`);
  if (!containers.some((container) => container.name === TASK_CONTAINER)) throw new SandboxUnavailableError(`${where}: the template has no container named "${TASK_CONTAINER}"`);
  const volumes = (template.spec?.template?.spec?.volumes ?? []).map((volume) => volume.name);
  for (const name of ["workspace", "tmp"]) if (!volumes.includes(name)) throw new SandboxUnavailableError(`${where}: the template has no "${name}" volume`);
}

export type JobOutcome = { kind: "complete" } | { kind: "failed"; reason: string } | { kind: "gone" };

export function jobOutcome(job: IJob | undefined): JobOutcome | undefined {
  if (job === undefined) return undefined;
  for (const condition of job.status?.conditions ?? []) {
    if (condition.status !== "True") continue;
    if (condition.type === "Complete") return { kind: "complete" };
    if (condition.type === "Failed") return { kind: "failed", reason: condition.reason ?? "Failed" };
  }
  if ((job.status?.succeeded ?? 0) > 0) return { kind: "complete" };
  if ((job.status?.failed ?? 0) > 0) return { kind: "failed", reason: "Failed" };
  return undefined;
}

/**
 * The kubelet expands `$(NAME)` in a container's command, args and env values and turns `$$` into `$`
 * (Kubernetes' third_party/forked/golang/expansion). Doubling every `$` makes its expansion the identity, so what
 * runs is byte for byte the argv and environment the audit log records.
 */
export function escapeKubernetesReferences(value: string): string {
  return value.replaceAll("$", "$$$$");
}

/** The Job for one task: the template with only the per-task fields set. Exported so tests can show exactly that. */
export function taskJob(template: IJob, options: { name: string; namespace: string; argv: readonly string[]; env: Readonly<Record<string, string>>; configMapName: string; runnerName?: string }): IJob {
  const job = structuredClone(template);
  job.metadata = {
    ...job.metadata,
    name: options.name,
    namespace: options.namespace,
    ...(options.runnerName === undefined ? {} : { labels: { ...job.metadata?.labels, [RUNNER_LABEL]: options.runnerName } }),
  };
  const podSpec = job.spec?.template?.spec;
  if (podSpec === undefined) throw new SandboxUnavailableError("the Job template has no pod spec");
  const container = podSpec.containers.find((candidate) => candidate.name === TASK_CONTAINER) as IContainer;
  container.command = ["/bin/sh", `${INPUTS_DIRECTORY}/run.sh`];
  container.args = options.argv.map(escapeKubernetesReferences);
  // The template's own entries (the proxy settings, when the sandbox has an allowlist) come first and cannot be
  // overridden by a task; ours and the task's are appended.
  const templateEnvironment = container.env ?? [];
  const fixed = new Set(templateEnvironment.map((variable) => variable.name));
  container.env = [
    ...templateEnvironment,
    ...[
      { name: "HOME", value: "/workspace" },
      { name: "TMPDIR", value: "/tmp" },
      { name: "LANG", value: "C.UTF-8" },
      ...Object.entries(options.env).map(([name, value]) => ({ name, value })),
    ]
      .filter((variable) => !fixed.has(variable.name))
      .map((variable) => ({ name: variable.name, value: escapeKubernetesReferences(variable.value) })),
  ];
  container.volumeMounts = [...(container.volumeMounts ?? []), { name: "inputs", mountPath: INPUTS_DIRECTORY, readOnly: true }];
  podSpec.volumes = [...(podSpec.volumes ?? []), { name: "inputs", configMap: { name: options.configMapName, defaultMode: 0o444 } }];
  return job;
}

/** The inputs ConfigMap: the wrapper, the input files, stdin and the manifest that says where each file goes. */
export function inputsConfigMap(task: CheckedTask, options: { name: string; namespace: string; labels: Record<string, string>; nonce: string; returnBytes: number }): IConfigMap {
  const binaryData: Record<string, string> = {};
  const manifest: string[] = [];
  task.files.forEach((file, index) => {
    binaryData[`file-${index}`] = file.content.toString("base64");
    manifest.push(`file-${index}\t${(file.mode & 0o777).toString(8)}\t${file.path}`);
  });
  if (task.stdin !== undefined) binaryData.stdin = task.stdin.toString("base64");
  const data: Record<string, string> = {
    "run.sh": wrapperScript({ nonce: options.nonce, outputBytes: task.limits.outputBytes, returnBytes: options.returnBytes, collect: task.collect, hasStdin: task.stdin !== undefined }),
    manifest: manifest.length === 0 ? "" : `${manifest.join("\n")}\n`,
  };
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name: options.name, namespace: options.namespace, labels: options.labels }, data, binaryData };
}

/** A label value (63 characters at most, alphanumeric at both ends). */
export const LABEL_VALUE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
