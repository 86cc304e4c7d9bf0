// The cluster backend: each task is a Job made from the hardened template `perimeter render` writes (no token, no
// secrets, no data volume, emptyDir workspace and tmp, non-root, read-only root, drop ALL, RuntimeDefault seccomp,
// resources, deadline, TTL, labels the deny-all NetworkPolicy selects). The runner changes only what is per task:
// the name, the container's command, arguments and environment, and an `inputs` ConfigMap (owned by the Job, so it
// goes when the Job goes) mounted read-only at /inputs. It watches the Job to completion, reads the pod log, decodes
// the framed results (framing.ts) and deletes what it created - on success, failure, timeout, and when the caller
// goes away (AbortSignal) - with propagationPolicy Background so the pods and the ConfigMap follow.
//
// A task's way through the modules: checkTask (task.ts) → the Job and its inputs ConfigMap (kubernetes-job.ts) →
// created, watched to the end and its log decoded (kubernetes-cluster.ts) → the result (kubernetes-result.ts) →
// both deleted. The backend's state (KubernetesState) is built once here.
import { randomBytes } from "node:crypto";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { V1ConfigMap, V1Job } from "@kubernetes/client-node";
import type { Logger } from "../shared/index.ts";
import { silentLogger } from "../shared/index.ts";
import { createLogDecoder } from "./framing.ts";
import { deleteQuietly, lazyApi, readResults, removeLeftovers, statusOf, waitForJob } from "./kubernetes-cluster.ts";
import type { KubernetesClients, KubernetesState } from "./kubernetes-cluster.ts";
import { checkTemplate, CONFIG_MAP_BUDGET, DEFAULT_MAX_RETURN_BYTES, inputsConfigMap, LABEL_VALUE, RUNNER_LABEL, TASK_CONTAINER, taskJob } from "./kubernetes-job.ts";
import { emptyResult, finishedResult } from "./kubernetes-result.ts";
import { checkTask, SandboxTaskError, SandboxUnavailableError } from "./task.ts";
import type { CheckedTask, RunOptions, SandboxBackend, SandboxEndReason, SandboxLimits, SandboxResult, SandboxTask } from "./task.ts";

export { DEFAULT_MAX_RETURN_BYTES, escapeKubernetesReferences, loadJobTemplate, RUNNER_LABEL, TASK_CONTAINER, taskJob } from "./kubernetes-job.ts";
export type { KubernetesClients } from "./kubernetes-cluster.ts";

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

export interface KubernetesBackend extends SandboxBackend {
  /** Settles once what an earlier run of this runner left behind is deleted (tasks wait for it); the count deleted. */
  readonly leftoversRemoved: Promise<number>;
}

/** Checks the options and builds the backend's state; throws SandboxUnavailableError saying what to fix. */
function createState(options: KubernetesBackendOptions): KubernetesState {
  checkTemplate(options.template, "the sandbox Job template");
  const maxReturnBytes = options.maxReturnBytes ?? DEFAULT_MAX_RETURN_BYTES;
  if (!Number.isSafeInteger(maxReturnBytes) || maxReturnBytes < 0) throw new SandboxUnavailableError(`maxReturnBytes must be a whole number of bytes (not ${maxReturnBytes})`);
  const runnerName = options.runnerName ?? options.template.metadata?.labels?.["app.kubernetes.io/instance"] ?? "perimeter";
  if (!LABEL_VALUE.test(runnerName)) throw new SandboxUnavailableError(`the runner name "${runnerName}" is not a Kubernetes label value (letters, digits, . _ -, at most 63, alphanumeric at both ends)`);
  const namespace = options.namespace ?? options.template.metadata?.namespace;
  if (namespace === undefined || namespace === "") throw new SandboxUnavailableError("the sandbox Job template names no namespace; pass one");
  // In a cluster the network is the rendered NetworkPolicies' business, the same for every task: none, or (when the
  // sandbox has an allowlist) the sandbox egress proxy, whose address the template's environment carries.
  const taskContainer = options.template.spec?.template?.spec?.containers.find((candidate) => candidate.name === TASK_CONTAINER);
  const clusterNetwork: "none" | "proxy" = (taskContainer?.env ?? []).some((variable) => /^https?_proxy$/i.test(variable.name)) ? "proxy" : "none";
  return {
    kubeConfig: options.kubeConfig,
    template: options.template,
    namespace,
    logger: options.logger ?? silentLogger(),
    maxReturnBytes,
    runnerName,
    runnerSelector: `${RUNNER_LABEL}=${runnerName}`,
    clusterNetwork,
    policy: {
      defaults: options.defaults,
      ceiling: options.ceiling ?? options.defaults,
      maxFiles: options.maxFiles ?? 200,
      networkModes: clusterNetwork === "proxy" ? ["none", "proxy"] : ["none"],
    },
    api: lazyApi(options.kubeConfig),
    running: new Set(),
    inFlight: new Set(),
    closed: false,
  };
}

/** One task's names and objects. */
interface TaskObjects {
  readonly name: string;
  readonly configMapName: string;
  readonly nonce: string;
  readonly job: IJob;
  readonly configMap: ReturnType<typeof inputsConfigMap>;
}

function taskObjects(state: KubernetesState, task: CheckedTask): TaskObjects {
  const name = `perimeter-task-${randomBytes(5).toString("hex")}`;
  const configMapName = `${name}-inputs`;
  const nonce = randomBytes(16).toString("hex");
  const labels = { ...(state.template.metadata?.labels ?? {}), [RUNNER_LABEL]: state.runnerName } as Record<string, string>;
  const configMap = inputsConfigMap(task, { name: configMapName, namespace: state.namespace, labels, nonce, returnBytes: state.maxReturnBytes });
  const configMapSize = JSON.stringify(configMap).length;
  if (configMapSize > CONFIG_MAP_BUDGET) throw new SandboxTaskError(`the task's files and stdin come to ${configMapSize} bytes encoded; a Kubernetes task takes at most ${CONFIG_MAP_BUDGET} (a ConfigMap's limit): send less`);
  const job = taskJob(state.template, { name, namespace: state.namespace, argv: task.argv, env: task.env, configMapName, runnerName: state.runnerName });
  return { name, configMapName, nonce, job, configMap };
}

/** Creates the Job and its inputs, waits for the Job's end and reads the result from the pod's log. */
async function runJob(state: KubernetesState, task: CheckedTask, objects: TaskObjects, created: { job: boolean; configMap: boolean }, control: { signal: AbortSignal; reason(): SandboxEndReason | undefined }, started: number): Promise<SandboxResult> {
  const { batch, core } = await state.api();
  const { name, configMap, nonce } = objects;
  // The Job first, so the ConfigMap can name it as owner: if we die between the two calls, the Job's deadline
  // and TTL still clean up, and nothing is left without an owner. The pod waits for its ConfigMap volume.
  const job = (await batch.createNamespacedJob({ namespace: state.namespace, body: objects.job as unknown as V1Job })) as IJob;
  created.job = true;
  configMap.metadata = {
    ...configMap.metadata,
    ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name, uid: job.metadata?.uid as string, controller: false, blockOwnerDeletion: false }],
  };
  await core.createNamespacedConfigMap({ namespace: state.namespace, body: configMap as unknown as V1ConfigMap });
  created.configMap = true;
  if (control.signal.aborted) throw new Error("stopped");
  const outcome = await waitForJob(state, name, job.metadata?.resourceVersion, control.signal);
  const stoppedFor = control.reason();
  if (stoppedFor !== undefined) return emptyResult(state, task, stoppedFor, started);
  if (outcome.kind === "gone") throw new SandboxUnavailableError(`the sandbox Job ${name} disappeared before it finished`);

  const pods = await core.listNamespacedPod({ namespace: state.namespace, labelSelector: `batch.kubernetes.io/job-name=${name}` });
  const pod = pods.items[0];
  const terminated = pod?.status?.containerStatuses?.find((candidate) => candidate.name === TASK_CONTAINER)?.state?.terminated;
  const decoded = pod?.metadata?.name === undefined ? createLogDecoder(nonce, { outputBytes: 0, returnBytes: 0 }).end() : await readResults(state, pod.metadata.name, nonce, task, control.signal);
  if (outcome.kind === "failed" && outcome.reason === "DeadlineExceeded") return emptyResult(state, task, "timeout", started, decoded);
  return finishedResult(state, task, decoded, terminated, started);
}

async function runChecked(state: KubernetesState, task: CheckedTask, runOptions: RunOptions): Promise<SandboxResult> {
  const started = performance.now();
  const { batch, core } = await state.api();
  const objects = taskObjects(state, task);
  const controller = new AbortController();
  let reason: SandboxEndReason | undefined;
  const stop = (why: SandboxEndReason) => {
    reason ??= why;
    controller.abort();
  };
  state.running.add(stop);
  const timer = setTimeout(() => stop("timeout"), task.limits.timeoutMs);
  const onAbort = () => stop("aborted");
  runOptions.signal?.addEventListener("abort", onAbort, { once: true });
  if (runOptions.signal?.aborted === true) onAbort();
  const created = { job: false, configMap: false };
  try {
    return await runJob(state, task, objects, created, { signal: controller.signal, reason: () => reason }, started);
  } catch (error) {
    if (reason !== undefined) return emptyResult(state, task, reason, started);
    if (error instanceof SandboxTaskError || error instanceof SandboxUnavailableError) throw error;
    const status = statusOf(error);
    throw new SandboxUnavailableError(`the Kubernetes API refused the sandbox task${status !== undefined ? ` (HTTP ${status})` : ""}: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
    runOptions.signal?.removeEventListener("abort", onAbort);
    state.running.delete(stop);
    controller.abort();
    // Background propagation: the API server answers at once and the garbage collector removes the pods and the
    // owned ConfigMap. The explicit ConfigMap delete covers clusters where the GC lags, and a Job that never got made.
    const { name, configMapName } = objects;
    if (created.job) await deleteQuietly(state, `job/${name}`, () => batch.deleteNamespacedJob({ name, namespace: state.namespace, propagationPolicy: "Background" }));
    if (created.configMap) await deleteQuietly(state, `configmap/${configMapName}`, () => core.deleteNamespacedConfigMap({ name: configMapName, namespace: state.namespace }));
  }
}

export function createKubernetesBackend(options: KubernetesBackendOptions): KubernetesBackend {
  const state = createState(options);
  const leftoversRemoved = removeLeftovers(state);
  return {
    name: "kubernetes",
    leftoversRemoved,
    async run(task: SandboxTask, runOptions: RunOptions = {}) {
      if (state.closed) throw new SandboxUnavailableError("the sandbox backend is closed");
      const checked = checkTask(task, state.policy);
      if (!checked.ok) throw new SandboxTaskError(checked.reason);
      // A task's own Job must not be made before the sweep of leftovers has listed them.
      const pending = leftoversRemoved.then(() => {
        if (state.closed) throw new SandboxUnavailableError("the sandbox backend is closed");
        return runChecked(state, checked.task, runOptions);
      });
      state.inFlight.add(pending);
      try {
        return await pending;
      } finally {
        state.inFlight.delete(pending);
      }
    },
    async close() {
      state.closed = true;
      await leftoversRemoved;
      for (const stop of state.running) stop("aborted");
      // Their finally blocks delete what they created; wait for that before reporting closed.
      await Promise.allSettled([...state.inFlight]);
    },
  };
}
