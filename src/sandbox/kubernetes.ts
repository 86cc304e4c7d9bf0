// The cluster backend: each task is a Job made from the hardened template `perimeter render` writes (no token, no
// secrets, no data volume, emptyDir workspace and tmp, non-root, read-only root, drop ALL, RuntimeDefault seccomp,
// resources, deadline, TTL, labels the deny-all NetworkPolicy selects). The runner changes only what is per task:
// the name, the container's command, arguments and environment, and an `inputs` ConfigMap (owned by the Job, so it
// goes when the Job goes) mounted read-only at /inputs. It watches the Job to completion, reads the pod log, decodes
// the framed results (framing.ts) and deletes what it created - on success, failure, timeout, and when the caller
// goes away (AbortSignal) - with propagationPolicy Background so the pods and the ConfigMap follow.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import { request as httpsRequest } from "node:https";
import type { RequestOptions as HttpsRequestOptions } from "node:https";
import type { IncomingMessage } from "node:http";
import type { BatchV1Api, CoreV1Api, KubeConfig, V1ConfigMap, V1Job, Watch } from "@kubernetes/client-node";
import type { Logger } from "../shared/index.ts";
import { silentLogger } from "../shared/index.ts";
import { INPUTS_DIRECTORY, createLogDecoder, wrapperScript } from "./framing.ts";
import type { DecodedLog } from "./framing.ts";
import { readTar } from "./tar.ts";
import { checkTask, SandboxTaskError, SandboxUnavailableError, signalOfStatus } from "./task.ts";
import type { CheckedTask, ReturnedFile, RunOptions, SandboxBackend, SandboxEndReason, SandboxLimits, SandboxResult, SandboxTask, TaskPolicy } from "./task.ts";

/** The container the template names; everything the runner sets goes into it. */
export const TASK_CONTAINER = "task";
/** ConfigMaps hold at most 1 MiB; leave room for keys and metadata. */
const CONFIG_MAP_BUDGET = 900 * 1024;
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

export interface KubernetesClients {
  /** `@kubernetes/client-node`'s KubeConfig: in-cluster credentials in production, a stand-in server in tests. */
  readonly kubeConfig: KubeConfig;
}

export interface KubernetesBackendOptions extends KubernetesClients {
  /** The hardened Job template (render's sandboxJobTemplate, or /etc/perimeter/sandbox/job.yaml). */
  readonly template: IJob;
  /** Namespace for the Jobs; defaults to the template's. */
  readonly namespace?: string;
  readonly defaults: SandboxLimits;
  readonly ceiling?: SandboxLimits;
  readonly maxFiles?: number;
  /** The most a task returns in files (see DEFAULT_MAX_RETURN_BYTES). @default 3 MiB */
  readonly maxReturnBytes?: number;
  /**
   * Names this runner in the RUNNER_LABEL of what it creates; the Jobs and ConfigMaps carrying it are deleted at
   * start. One runner per name and namespace (render deploys one replica, Recreate).
   * @default the template's app.kubernetes.io/instance label, else "perimeter"
   */
  readonly runnerName?: string;
  readonly logger?: Logger;
}

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

function checkTemplate(template: IJob, where: string): void {
  const containers = template.spec?.template?.spec?.containers ?? [];
  if (template.kind !== "Job" || template.apiVersion !== "batch/v1") throw new SandboxUnavailableError(`${where}: not a batch/v1 Job`);
  if (!containers.some((container) => container.name === TASK_CONTAINER)) throw new SandboxUnavailableError(`${where}: the template has no container named "${TASK_CONTAINER}"`);
  const volumes = (template.spec?.template?.spec?.volumes ?? []).map((volume) => volume.name);
  for (const name of ["workspace", "tmp"]) if (!volumes.includes(name)) throw new SandboxUnavailableError(`${where}: the template has no "${name}" volume`);
}

interface ApiError {
  code?: number;
  body?: unknown;
  message?: string;
}

function statusOf(error: unknown): number | undefined {
  return typeof (error as ApiError)?.code === "number" ? (error as ApiError).code : undefined;
}

type JobOutcome = { kind: "complete" } | { kind: "failed"; reason: string } | { kind: "gone" };

function jobOutcome(job: IJob | undefined): JobOutcome | undefined {
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
function inputsConfigMap(task: CheckedTask, options: { name: string; namespace: string; labels: Record<string, string>; nonce: string; returnBytes: number }): IConfigMap {
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
const LABEL_VALUE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

export interface KubernetesBackend extends SandboxBackend {
  /** Settles once what an earlier run of this runner left behind is deleted (tasks wait for it); the count deleted. */
  readonly leftoversRemoved: Promise<number>;
}

export function createKubernetesBackend(options: KubernetesBackendOptions): KubernetesBackend {
  checkTemplate(options.template, "the sandbox Job template");
  const logger = options.logger ?? silentLogger();
  const maxReturnBytes = options.maxReturnBytes ?? DEFAULT_MAX_RETURN_BYTES;
  if (!Number.isSafeInteger(maxReturnBytes) || maxReturnBytes < 0) throw new SandboxUnavailableError(`maxReturnBytes must be a whole number of bytes (not ${maxReturnBytes})`);
  const runnerName = options.runnerName ?? options.template.metadata?.labels?.["app.kubernetes.io/instance"] ?? "perimeter";
  if (!LABEL_VALUE.test(runnerName)) throw new SandboxUnavailableError(`the runner name "${runnerName}" is not a Kubernetes label value (letters, digits, . _ -, at most 63, alphanumeric at both ends)`);
  const runnerSelector = `${RUNNER_LABEL}=${runnerName}`;
  const namespace = options.namespace ?? options.template.metadata?.namespace;
  if (namespace === undefined || namespace === "") throw new SandboxUnavailableError("the sandbox Job template names no namespace; pass one");
  // In a cluster the network is the rendered NetworkPolicies' business, the same for every task: none, or (when the
  // sandbox has an allowlist) the sandbox egress proxy, whose address the template's environment carries.
  const taskContainer = options.template.spec?.template?.spec?.containers.find((candidate) => candidate.name === TASK_CONTAINER);
  const clusterNetwork: "none" | "proxy" = (taskContainer?.env ?? []).some((variable) => /^https?_proxy$/i.test(variable.name)) ? "proxy" : "none";
  const policy: TaskPolicy = {
    defaults: options.defaults,
    ceiling: options.ceiling ?? options.defaults,
    maxFiles: options.maxFiles ?? 200,
    networkModes: clusterNetwork === "proxy" ? ["none", "proxy"] : ["none"],
  };
  const running = new Set<(why: SandboxEndReason) => void>();
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;
  let clients: Promise<{ batch: BatchV1Api; core: CoreV1Api; watch: Watch }> | undefined;
  const api = () => {
    // Loaded on first use: the client library is large and the bubblewrap-only CLI never needs it.
    clients ??= import("@kubernetes/client-node").then((k8s) => ({
      batch: options.kubeConfig.makeApiClient(k8s.BatchV1Api),
      core: options.kubeConfig.makeApiClient(k8s.CoreV1Api),
      watch: new k8s.Watch(options.kubeConfig),
    }));
    return clients;
  };

  async function deleteQuietly(what: string, remove: () => Promise<unknown>): Promise<void> {
    try {
      await remove();
    } catch (error) {
      if (statusOf(error) !== 404) logger.error({ event: "sandbox-cleanup-failed", what, status: statusOf(error), error: (error as Error).message }, "could not delete a sandbox object; its TTL will remove it");
    }
  }

  /** Resolves when the Job finishes (or is gone); re-watches when the stream ends early (the client's 30 s idle timeout). */
  async function waitForJob(name: string, resourceVersion: string | undefined, signal: AbortSignal): Promise<JobOutcome> {
    const { batch, watch } = await api();
    let version = resourceVersion;
    for (let attempt = 0; !signal.aborted; attempt++) {
      const outcome = await new Promise<JobOutcome | undefined>((resolve) => {
        let settled = false;
        let controller: AbortController | undefined;
        const finish = (value: JobOutcome | undefined) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener("abort", onAbort);
          controller?.abort();
          resolve(value);
        };
        const onAbort = () => finish(undefined);
        signal.addEventListener("abort", onAbort, { once: true });
        watch
          .watch(
            `/apis/batch/v1/namespaces/${namespace}/jobs`,
            { fieldSelector: `metadata.name=${name}`, ...(version !== undefined ? { resourceVersion: version } : {}), allowWatchBookmarks: true },
            (type: string, object: IJob) => {
              if (object?.metadata?.resourceVersion !== undefined) version = object.metadata.resourceVersion;
              if (type === "DELETED") finish({ kind: "gone" });
              else if (type === "ADDED" || type === "MODIFIED") {
                const done = jobOutcome(object);
                if (done !== undefined) finish(done);
              }
            },
            () => finish(undefined),
          )
          .then((created) => {
            controller = created;
            if (settled) created.abort();
          })
          .catch(() => finish(undefined));
      });
      if (outcome !== undefined) return outcome;
      if (signal.aborted) break;
      // The stream ended without an answer: look at the Job itself, then watch again from where we were.
      try {
        const job = (await batch.readNamespacedJob({ name, namespace: namespace as string })) as IJob;
        const done = jobOutcome(job);
        if (done !== undefined) return done;
        version = job.metadata?.resourceVersion;
      } catch (error) {
        if (statusOf(error) === 404) return { kind: "gone" };
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** Math.min(attempt, 5))));
    }
    return { kind: "gone" };
  }

  /**
   * Streams the task container's log through the frame decoder: the runner holds the decoded bounds (outputs and
   * maxReturnBytes), never the log. `limitBytes` stops the API server after what honest frames of that size take
   * (about 2 bytes of log per byte); a program that writes frames of its own cannot make the runner read more.
   */
  async function readResults(podName: string, nonce: string, task: CheckedTask, signal: AbortSignal): Promise<DecodedLog> {
    const decoder = createLogDecoder(nonce, { outputBytes: task.limits.outputBytes, returnBytes: maxReturnBytes });
    const limitBytes = 2 * (2 * task.limits.outputBytes + maxReturnBytes) + 64 * 1024;
    const server = options.kubeConfig.getCurrentCluster()?.server;
    if (server === undefined) throw new SandboxUnavailableError("the Kubernetes configuration names no cluster");
    const url = new URL(`${server.replace(/\/+$/, "")}/api/v1/namespaces/${encodeURIComponent(namespace as string)}/pods/${encodeURIComponent(podName)}/log`);
    url.searchParams.set("container", TASK_CONTAINER);
    url.searchParams.set("limitBytes", String(limitBytes));
    const requestOptions: HttpsRequestOptions = { method: "GET", headers: { accept: "text/plain" }, signal };
    // The client library's credentials and TLS settings (in a cluster: the ServiceAccount token and CA).
    await options.kubeConfig.applyToHTTPSOptions(requestOptions);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const request = httpsRequest(url, requestOptions, resolve);
      request.on("error", reject);
      request.end();
    });
    if (response.statusCode !== 200) {
      response.resume();
      throw Object.assign(new Error(`reading the log of pod ${podName} failed`), { code: response.statusCode });
    }
    for await (const chunk of response) decoder.write(chunk as Buffer);
    return decoder.end();
  }

  /** What an earlier run of this runner left (a crash or a kill mid-task): its own Jobs and ConfigMaps, by label. */
  async function removeLeftovers(): Promise<number> {
    let removed = 0;
    try {
      const { batch, core } = await api();
      const jobs = await batch.listNamespacedJob({ namespace: namespace as string, labelSelector: runnerSelector });
      for (const job of jobs.items) {
        const name = job.metadata?.name;
        if (name === undefined) continue;
        await deleteQuietly(`job/${name}`, () => batch.deleteNamespacedJob({ name, namespace: namespace as string, propagationPolicy: "Background" }));
        logger.warn({ event: "sandbox-leftover-deleted", kind: "Job", name }, "deleted a sandbox Job an earlier run of this runner left");
        removed += 1;
      }
      // Each ConfigMap is owned by its Job and goes with it; this catches those the garbage collector has not reached.
      try {
        const configMaps = await core.listNamespacedConfigMap({ namespace: namespace as string, labelSelector: runnerSelector });
        for (const configMap of configMaps.items) {
          const name = configMap.metadata?.name;
          if (name === undefined) continue;
          await deleteQuietly(`configmap/${name}`, () => core.deleteNamespacedConfigMap({ name, namespace: namespace as string }));
          logger.warn({ event: "sandbox-leftover-deleted", kind: "ConfigMap", name }, "deleted a sandbox ConfigMap an earlier run of this runner left");
          removed += 1;
        }
      } catch (error) {
        logger.warn({ event: "sandbox-leftover-check-failed", kind: "ConfigMap", status: statusOf(error), error: (error as Error).message }, "cannot list sandbox ConfigMaps (the runner's Role needs list on configmaps); leftover ones go with their Jobs");
      }
    } catch (error) {
      logger.error({ event: "sandbox-leftover-check-failed", kind: "Job", status: statusOf(error), error: (error as Error).message }, "cannot list the sandbox Jobs an earlier run left; their TTL and deadline remove them");
    }
    return removed;
  }
  const leftoversRemoved = removeLeftovers();

  async function runChecked(task: CheckedTask, runOptions: RunOptions): Promise<SandboxResult> {
    const started = performance.now();
    const { batch, core } = await api();
    const id = randomBytes(5).toString("hex");
    const name = `perimeter-task-${id}`;
    const configMapName = `${name}-inputs`;
    const nonce = randomBytes(16).toString("hex");
    const labels = { ...(options.template.metadata?.labels ?? {}), [RUNNER_LABEL]: runnerName } as Record<string, string>;
    const configMap = inputsConfigMap(task, { name: configMapName, namespace: namespace as string, labels, nonce, returnBytes: maxReturnBytes });
    const configMapSize = JSON.stringify(configMap).length;
    if (configMapSize > CONFIG_MAP_BUDGET) throw new SandboxTaskError(`the task's files and stdin come to ${configMapSize} bytes encoded; a Kubernetes task takes at most ${CONFIG_MAP_BUDGET} (a ConfigMap's limit): send less`);
    const job = taskJob(options.template, { name, namespace: namespace as string, argv: task.argv, env: task.env, configMapName, runnerName });

    const controller = new AbortController();
    let reason: SandboxEndReason | undefined;
    const stop = (why: SandboxEndReason) => {
      reason ??= why;
      controller.abort();
    };
    running.add(stop);
    const timer = setTimeout(() => stop("timeout"), task.limits.timeoutMs);
    const onAbort = () => stop("aborted");
    runOptions.signal?.addEventListener("abort", onAbort, { once: true });
    if (runOptions.signal?.aborted === true) onAbort();

    let jobCreated = false;
    let configMapCreated = false;
    try {
      // The Job first, so the ConfigMap can name it as owner: if we die between the two calls, the Job's deadline
      // and TTL still clean up, and nothing is left without an owner. The pod waits for its ConfigMap volume.
      const created = (await batch.createNamespacedJob({ namespace: namespace as string, body: job as unknown as V1Job })) as IJob;
      jobCreated = true;
      configMap.metadata = {
        ...configMap.metadata,
        ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name, uid: created.metadata?.uid as string, controller: false, blockOwnerDeletion: false }],
      };
      await core.createNamespacedConfigMap({ namespace: namespace as string, body: configMap as unknown as V1ConfigMap });
      configMapCreated = true;
      if (controller.signal.aborted) throw new Error("stopped");
      const outcome = await waitForJob(name, created.metadata?.resourceVersion, controller.signal);
      if (reason !== undefined) return emptyResult(task, reason, started);
      if (outcome.kind === "gone") throw new SandboxUnavailableError(`the sandbox Job ${name} disappeared before it finished`);

      const pods = await core.listNamespacedPod({ namespace: namespace as string, labelSelector: `batch.kubernetes.io/job-name=${name}` });
      const pod = pods.items[0];
      const status = pod?.status?.containerStatuses?.find((candidate) => candidate.name === TASK_CONTAINER)?.state?.terminated;
      const decoded = pod?.metadata?.name === undefined ? createLogDecoder(nonce, { outputBytes: 0, returnBytes: 0 }).end() : await readResults(pod.metadata.name, nonce, task, controller.signal);
      if (outcome.kind === "failed" && outcome.reason === "DeadlineExceeded") return emptyResult(task, "timeout", started, decoded);
      const exitCode = decoded.exitCode ?? status?.exitCode ?? null;
      const signal = signalOfStatus(exitCode);
      const oom = status?.reason === "OOMKilled";
      const files: ReturnedFile[] = [];
      const filesMissing: string[] = [];
      if (task.collect.length > 0) {
        const archive = readTar(decoded.files, { maxFiles: policy.maxFiles, maxBytes: task.limits.diskBytes });
        files.push(...archive.files);
        filesMissing.push(...archive.skipped);
        if (decoded.filesCut) {
          const why = `the returned files came to more than ${maxReturnBytes} bytes, the most a task returns here; collect fewer or smaller files`;
          filesMissing.push(archive.cutOff !== undefined ? `${archive.cutOff} (cut off: ${why})` : `(files after the first ${files.length} cut off: ${why})`);
        }
        for (const path of task.collect) {
          const listed = filesMissing.some((entry) => entry.startsWith(`${path} (`));
          if (path !== "." && !listed && !files.some((file) => file.path === path || file.path.startsWith(`${path}/`))) filesMissing.push(path);
        }
      }
      if (!decoded.complete) filesMissing.push("(the task's log ended before its results were complete)");
      const stdoutTruncated = decoded.stdoutBytes > decoded.stdout.length;
      const stderrTruncated = decoded.stderrBytes > decoded.stderr.length;
      return {
        exitCode,
        signal,
        reason: oom ? "memory" : signal !== null ? (signal === "SIGXCPU" ? "cpu-limit" : "signal") : "exit",
        stdout: { data: decoded.stdout, bytes: decoded.stdoutBytes, truncated: stdoutTruncated },
        stderr: { data: decoded.stderr, bytes: decoded.stderrBytes, truncated: stderrTruncated },
        durationMs: performance.now() - started,
        files,
        filesMissing,
        limits: appliedLimits(task),
        limitsHit: [...(oom ? ["memory"] : []), ...(stdoutTruncated || stderrTruncated ? ["output"] : []), ...(decoded.filesCut ? ["returned-files"] : [])],
      };
    } catch (error) {
      if (reason !== undefined) return emptyResult(task, reason, started);
      if (error instanceof SandboxTaskError || error instanceof SandboxUnavailableError) throw error;
      const status = statusOf(error);
      throw new SandboxUnavailableError(`the Kubernetes API refused the sandbox task${status !== undefined ? ` (HTTP ${status})` : ""}: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
      runOptions.signal?.removeEventListener("abort", onAbort);
      running.delete(stop);
      controller.abort();
      // Background propagation: the API server answers at once and the garbage collector removes the pods and the
      // owned ConfigMap. The explicit ConfigMap delete covers clusters where the GC lags, and a Job that never got made.
      if (jobCreated) await deleteQuietly(`job/${name}`, () => batch.deleteNamespacedJob({ name, namespace: namespace as string, propagationPolicy: "Background" }));
      if (configMapCreated) await deleteQuietly(`configmap/${configMapName}`, () => core.deleteNamespacedConfigMap({ name: configMapName, namespace: namespace as string }));
    }
  }

  function appliedLimits(task: CheckedTask) {
    const container = options.template.spec?.template?.spec?.containers.find((candidate) => candidate.name === TASK_CONTAINER);
    return {
      backend: "kubernetes" as const,
      limits: task.limits,
      cgroup: container?.resources?.limits !== undefined ? { version: 2 as const, controllers: Object.keys(container.resources.limits) } : null,
      network: clusterNetwork,
      seccomp: options.template.spec?.template?.spec?.securityContext?.seccompProfile?.type === "RuntimeDefault",
      missing: [
        "per-task memory/pids/cpu limits: the Job template's resources apply to every task",
        ...(clusterNetwork === "proxy" && task.network.mode === "none" ? ["network none: in this cluster every sandbox task can reach the sandbox egress proxy (sandbox.network.allow)"] : []),
        ...(task.network.mode === "proxy" ? ["a per-task allowlist: the cluster's sandbox egress proxy applies sandbox.network.allow to every task"] : []),
        ...task.capped.map((entry) => `requested ${entry}`),
      ],
    };
  }

  function emptyResult(task: CheckedTask, reason: SandboxEndReason, started: number, decoded?: DecodedLog): SandboxResult {
    return {
      exitCode: null,
      signal: null,
      reason,
      stdout: { data: decoded?.stdout ?? Buffer.alloc(0), bytes: decoded?.stdoutBytes ?? 0, truncated: false },
      stderr: { data: decoded?.stderr ?? Buffer.alloc(0), bytes: decoded?.stderrBytes ?? 0, truncated: false },
      durationMs: performance.now() - started,
      files: [],
      filesMissing: [...task.collect],
      limits: appliedLimits(task),
      limitsHit: [],
    };
  }

  return {
    name: "kubernetes",
    leftoversRemoved,
    async run(task: SandboxTask, runOptions: RunOptions = {}) {
      if (closed) throw new SandboxUnavailableError("the sandbox backend is closed");
      const checked = checkTask(task, policy);
      if (!checked.ok) throw new SandboxTaskError(checked.reason);
      // A task's own Job must not be made before the sweep of leftovers has listed them.
      const pending = leftoversRemoved.then(() => {
        if (closed) throw new SandboxUnavailableError("the sandbox backend is closed");
        return runChecked(checked.task, runOptions);
      });
      inFlight.add(pending);
      try {
        return await pending;
      } finally {
        inFlight.delete(pending);
      }
    },
    async close() {
      closed = true;
      await leftoversRemoved;
      for (const stop of running) stop("aborted");
      // Their finally blocks delete what they created; wait for that before reporting closed.
      await Promise.allSettled([...inFlight]);
    },
  };
}
