// The Kubernetes backend's one typed state (KubernetesState) and its conversations with the API server: the lazily
// loaded clients, watching a Job to its end (re-watching when the stream ends early), streaming a pod's log through
// the frame decoder, deleting quietly, and sweeping what an earlier run of this runner left.
import { request as httpsRequest } from "node:https";
import type { RequestOptions as HttpsRequestOptions } from "node:https";
import type { IncomingMessage } from "node:http";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { BatchV1Api, CoreV1Api, KubeConfig, Watch } from "@kubernetes/client-node";
import type { Logger } from "../shared/index.ts";
import { createLogDecoder } from "./framing.ts";
import type { DecodedLog } from "./framing.ts";
import { jobOutcome, TASK_CONTAINER } from "./kubernetes-job.ts";
import type { JobOutcome } from "./kubernetes-job.ts";
import { SandboxUnavailableError } from "./task.ts";
import type { CheckedTask, SandboxEndReason, TaskPolicy } from "./task.ts";

export interface KubernetesClients {
  /** `@kubernetes/client-node`'s KubeConfig: in-cluster credentials in production, a stand-in server in tests. */
  readonly kubeConfig: KubeConfig;
}

export interface KubernetesApi {
  readonly batch: BatchV1Api;
  readonly core: CoreV1Api;
  readonly watch: Watch;
}

/** Everything a Kubernetes backend holds: fixed at creation except the tasks in progress and the closed flag. */
export interface KubernetesState {
  readonly kubeConfig: KubeConfig;
  readonly template: IJob;
  readonly namespace: string;
  readonly logger: Logger;
  readonly maxReturnBytes: number;
  readonly runnerName: string;
  /** RUNNER_LABEL=runnerName: selects what this runner made. */
  readonly runnerSelector: string;
  /** What the rendered NetworkPolicies give every task: nothing, or the sandbox egress proxy. */
  readonly clusterNetwork: "none" | "proxy";
  readonly policy: TaskPolicy;
  /** Loads the client library on first use (it is large and the bubblewrap-only CLI never needs it). */
  readonly api: () => Promise<KubernetesApi>;
  /** Stops of the tasks in progress. */
  readonly running: Set<(why: SandboxEndReason) => void>;
  /** Runs in progress, awaited by close() (their cleanup included). */
  readonly inFlight: Set<Promise<unknown>>;
  closed: boolean;
}

interface ApiError {
  code?: number;
  body?: unknown;
  message?: string;
}

export function statusOf(error: unknown): number | undefined {
  return typeof (error as ApiError)?.code === "number" ? (error as ApiError).code : undefined;
}

/** Client library clients for this configuration, made once on first call. */
export function lazyApi(kubeConfig: KubeConfig): () => Promise<KubernetesApi> {
  let clients: Promise<KubernetesApi> | undefined;
  return () => {
    clients ??= import("@kubernetes/client-node").then((k8s) => ({
      batch: kubeConfig.makeApiClient(k8s.BatchV1Api),
      core: kubeConfig.makeApiClient(k8s.CoreV1Api),
      watch: new k8s.Watch(kubeConfig),
    }));
    return clients;
  };
}

export async function deleteQuietly(state: KubernetesState, what: string, remove: () => Promise<unknown>): Promise<void> {
  try {
    await remove();
  } catch (error) {
    if (statusOf(error) !== 404) state.logger.error({ event: "sandbox-cleanup-failed", what, status: statusOf(error), error: (error as Error).message }, "could not delete a sandbox object; its TTL will remove it");
  }
}

/** One watch stream of the Job: its outcome, or undefined when the stream ended (or `signal` aborted) first. */
function watchOnce(state: KubernetesState, watch: Watch, name: string, position: { version: string | undefined }, signal: AbortSignal): Promise<JobOutcome | undefined> {
  return new Promise<JobOutcome | undefined>((resolve) => {
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
        `/apis/batch/v1/namespaces/${state.namespace}/jobs`,
        { fieldSelector: `metadata.name=${name}`, ...(position.version !== undefined ? { resourceVersion: position.version } : {}), allowWatchBookmarks: true },
        (type: string, object: IJob) => {
          if (object?.metadata?.resourceVersion !== undefined) position.version = object.metadata.resourceVersion;
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
}

/** Resolves when the Job finishes (or is gone); re-watches when the stream ends early (the client's 30 s idle timeout). */
export async function waitForJob(state: KubernetesState, name: string, resourceVersion: string | undefined, signal: AbortSignal): Promise<JobOutcome> {
  const { batch, watch } = await state.api();
  const position = { version: resourceVersion };
  for (let attempt = 0; !signal.aborted; attempt++) {
    const outcome = await watchOnce(state, watch, name, position, signal);
    if (outcome !== undefined) return outcome;
    if (signal.aborted) break;
    // The stream ended without an answer: look at the Job itself, then watch again from where we were.
    try {
      const job = (await batch.readNamespacedJob({ name, namespace: state.namespace })) as IJob;
      const done = jobOutcome(job);
      if (done !== undefined) return done;
      position.version = job.metadata?.resourceVersion;
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
export async function readResults(state: KubernetesState, podName: string, nonce: string, task: CheckedTask, signal: AbortSignal): Promise<DecodedLog> {
  const decoder = createLogDecoder(nonce, { outputBytes: task.limits.outputBytes, returnBytes: state.maxReturnBytes });
  const limitBytes = 2 * (2 * task.limits.outputBytes + state.maxReturnBytes) + 64 * 1024;
  const server = state.kubeConfig.getCurrentCluster()?.server;
  if (server === undefined) throw new SandboxUnavailableError("the Kubernetes configuration names no cluster");
  const url = new URL(`${server.replace(/\/+$/, "")}/api/v1/namespaces/${encodeURIComponent(state.namespace)}/pods/${encodeURIComponent(podName)}/log`);
  url.searchParams.set("container", TASK_CONTAINER);
  url.searchParams.set("limitBytes", String(limitBytes));
  const requestOptions: HttpsRequestOptions = { method: "GET", headers: { accept: "text/plain" }, signal };
  // The client library's credentials and TLS settings (in a cluster: the ServiceAccount token and CA).
  await state.kubeConfig.applyToHTTPSOptions(requestOptions);
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
export async function removeLeftovers(state: KubernetesState): Promise<number> {
  const { logger, namespace, runnerSelector } = state;
  let removed = 0;
  try {
    const { batch, core } = await state.api();
    const jobs = await batch.listNamespacedJob({ namespace, labelSelector: runnerSelector });
    for (const job of jobs.items) {
      const name = job.metadata?.name;
      if (name === undefined) continue;
      await deleteQuietly(state, `job/${name}`, () => batch.deleteNamespacedJob({ name, namespace, propagationPolicy: "Background" }));
      logger.warn({ event: "sandbox-leftover-deleted", kind: "Job", name }, "deleted a sandbox Job an earlier run of this runner left");
      removed += 1;
    }
    // Each ConfigMap is owned by its Job and goes with it; this catches those the garbage collector has not reached.
    try {
      const configMaps = await core.listNamespacedConfigMap({ namespace, labelSelector: runnerSelector });
      for (const configMap of configMaps.items) {
        const name = configMap.metadata?.name;
        if (name === undefined) continue;
        await deleteQuietly(state, `configmap/${name}`, () => core.deleteNamespacedConfigMap({ name, namespace }));
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
