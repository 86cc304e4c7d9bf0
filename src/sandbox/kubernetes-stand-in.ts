// A stand-in Kubernetes API server for the sandbox's Kubernetes backend tests: no API server can be installed here,
// so this speaks the real REST paths and watch semantics the backend uses (batch/v1 Jobs with ?watch=true streaming
// newline-delimited JSON events over a chunked response, core/v1 ConfigMaps, Pods by labelSelector, pods/{name}/log)
// and plays the kubelet: when a Job's ConfigMap volumes exist it "runs" the pod by executing the container's command
// in a real bubblewrap sandbox with the ConfigMap mounted read-only at its mountPath, serves the combined output as
// the pod log, and honours activeDeadlineSeconds. Like the kubelet it expands `$(VAR)` references in env values,
// command and args (expandKubernetesReferences). Deleting a Job with propagationPolicy Background removes its pods
// and the objects it owns, as the garbage collector would. Test support only; never part of the product.
//
// This file is the HTTP side (routes for Jobs, ConfigMaps and Pods); the objects, watches, garbage collection and
// the kubelet are kubernetes-stand-in-kubelet.ts.
import { createServer } from "node:https";
import type { Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IPod } from "kubernetes-models/v1/Pod";
import { createStandInState, deleteJob, key, killPod, nextVersion, notify, schedule } from "./kubernetes-stand-in-kubelet.ts";
import type { StandInRequest, StandInState } from "./kubernetes-stand-in-kubelet.ts";

export { expandKubernetesReferences } from "./kubernetes-stand-in-kubelet.ts";
export type { StandInRequest } from "./kubernetes-stand-in-kubelet.ts";

export const STAND_IN_TOKEN = "stand-in-token";

export interface StandInApiServer {
  readonly url: string;
  /** PEM of the server's self-signed certificate, for the client's certificate-authority-data. */
  readonly certificate: string;
  readonly requests: StandInRequest[];
  readonly jobs: Map<string, IJob>;
  readonly configMaps: Map<string, IConfigMap>;
  readonly pods: Map<string, IPod>;
  /** Every Job body as the client sent it (before the server added uid, status...). */
  readonly createdJobs: IJob[];
  /** Fail the next request whose method and path match, with this status. */
  failNext(method: string, pathPattern: RegExp, status: number): void;
  /** Live pod processes (to prove nothing is left running). */
  runningPods(): number;
  close(): Promise<void>;
}

function status(response: ServerResponse, code: number, reason: string, message: string): void {
  response.writeHead(code, { "content-type": "application/json" });
  response.end(JSON.stringify({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code }));
}

function json(response: ServerResponse, code: number, body: unknown): void {
  response.writeHead(code, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  return text === "" ? undefined : JSON.parse(text);
}

function matchesLabels(labels: Record<string, string> | undefined, selector: string | undefined): boolean {
  if (selector === undefined || selector === "") return true;
  return selector.split(",").every((term) => {
    const [name, value] = term.split("=");
    return (labels ?? {})[name as string] === value;
  });
}

/** A route answered the request (`send` has written the answer). */
const answered = (_send: void): true => true;

type Route = (state: StandInState, request: IncomingMessage, response: ServerResponse, url: URL, query: Record<string, string>, body: unknown) => boolean;

const jobsRoute: Route = (state, request, response, url, query, body) => {
  const match = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+))?$/.exec(url.pathname);
  if (match === null) return false;
  const namespace = match[1] as string;
  const name = match[2];
  if (request.method === "POST" && name === undefined) {
    const job = body as IJob;
    state.createdJobs.push(structuredClone(job));
    const jobName = job.metadata?.name as string;
    if (state.jobs.has(key(namespace, jobName))) return answered(status(response, 409, "AlreadyExists", `jobs.batch "${jobName}" already exists`));
    job.metadata = { ...job.metadata, namespace, uid: randomUUID(), resourceVersion: nextVersion(state), creationTimestamp: new Date().toISOString() };
    job.status = {};
    state.jobs.set(key(namespace, jobName), job);
    notify(state, "ADDED", job);
    schedule(state, job);
    return answered(json(response, 201, job));
  }
  if (request.method === "GET" && name === undefined && query.watch === "true") {
    const fieldName = /^metadata\.name=(.+)$/.exec(query.fieldSelector ?? "")?.[1];
    response.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    const watcher = { kind: "jobs" as const, namespace, name: fieldName, response };
    state.watchers.add(watcher);
    request.on("close", () => state.watchers.delete(watcher));
    const since = Number(query.resourceVersion ?? 0);
    for (const job of state.jobs.values()) {
      if (job.metadata?.namespace !== namespace || (fieldName !== undefined && job.metadata?.name !== fieldName)) continue;
      if (Number(job.metadata?.resourceVersion) > since) response.write(`${JSON.stringify({ type: since === 0 ? "ADDED" : "MODIFIED", object: job })}\n`);
    }
    return true;
  }
  if (request.method === "GET" && name === undefined) {
    const items = [...state.jobs.values()].filter((job) => job.metadata?.namespace === namespace && matchesLabels(job.metadata?.labels, query.labelSelector));
    return answered(json(response, 200, { apiVersion: "batch/v1", kind: "JobList", metadata: { resourceVersion: String(state.version) }, items }));
  }
  if (request.method === "GET" && name !== undefined) {
    const job = state.jobs.get(key(namespace, name));
    return answered(job === undefined ? status(response, 404, "NotFound", `jobs.batch "${name}" not found`) : json(response, 200, job));
  }
  if (request.method === "DELETE" && name !== undefined) {
    const propagation = query.propagationPolicy ?? (body as { propagationPolicy?: string } | undefined)?.propagationPolicy;
    const job = deleteJob(state, namespace, name, propagation);
    return answered(job === undefined ? status(response, 404, "NotFound", `jobs.batch "${name}" not found`) : json(response, 200, job));
  }
  return false;
};

const configMapsRoute: Route = (state, request, response, url, query, body) => {
  const match = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps(?:\/([^/]+))?$/.exec(url.pathname);
  if (match === null) return false;
  const namespace = match[1] as string;
  const name = match[2];
  if (request.method === "POST" && name === undefined) {
    const configMap = body as IConfigMap;
    const configMapName = configMap.metadata?.name as string;
    if (state.configMaps.has(key(namespace, configMapName))) return answered(status(response, 409, "AlreadyExists", `configmaps "${configMapName}" already exists`));
    configMap.metadata = { ...configMap.metadata, namespace, uid: randomUUID(), resourceVersion: nextVersion(state) };
    state.configMaps.set(key(namespace, configMapName), configMap);
    return answered(json(response, 201, configMap));
  }
  if (request.method === "GET" && name === undefined) {
    const items = [...state.configMaps.values()].filter((configMap) => configMap.metadata?.namespace === namespace && matchesLabels(configMap.metadata?.labels, query.labelSelector));
    return answered(json(response, 200, { apiVersion: "v1", kind: "ConfigMapList", metadata: { resourceVersion: String(state.version) }, items }));
  }
  if (request.method === "DELETE" && name !== undefined) {
    const configMap = state.configMaps.get(key(namespace, name));
    if (configMap === undefined) return answered(status(response, 404, "NotFound", `configmaps "${name}" not found`));
    state.configMaps.delete(key(namespace, name));
    return answered(json(response, 200, configMap));
  }
  return false;
};

const podsRoute: Route = (state, request, response, url, query) => {
  const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+)(\/log)?)?$/.exec(url.pathname);
  if (match === null) return false;
  const namespace = match[1] as string;
  const name = match[2];
  if (request.method === "GET" && name === undefined) {
    const items = [...state.pods.values()].filter((pod) => pod.metadata?.namespace === namespace && matchesLabels(pod.metadata?.labels, query.labelSelector));
    return answered(json(response, 200, { apiVersion: "v1", kind: "PodList", metadata: { resourceVersion: String(state.version) }, items }));
  }
  if (request.method === "GET" && name !== undefined && match[3] === "/log") {
    const chunks = state.logs.get(key(namespace, name));
    if (chunks === undefined) return answered(status(response, 404, "NotFound", `pods "${name}" not found`));
    let log = Buffer.concat(chunks);
    const limit = Number(query.limitBytes ?? NaN);
    if (Number.isFinite(limit)) log = log.subarray(0, limit);
    response.writeHead(200, { "content-type": "text/plain" });
    response.end(log);
    return true;
  }
  return false;
};

async function handle(state: StandInState, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? "/", "http://stand-in");
  const query = Object.fromEntries(url.searchParams.entries());
  const body = request.method === "POST" || request.method === "PUT" || request.method === "PATCH" || request.method === "DELETE" ? await readBody(request) : undefined;
  state.requests.push({ method: request.method ?? "GET", path: url.pathname, query, body });
  if (request.headers.authorization !== `Bearer ${STAND_IN_TOKEN}`) return status(response, 401, "Unauthorized", "Unauthorized");
  const failure = state.failures.findIndex((candidate) => candidate.method === request.method && candidate.pattern.test(url.pathname));
  if (failure >= 0) {
    const code = state.failures.splice(failure, 1)[0]?.status ?? 500;
    return status(response, code, "InternalError", "injected failure");
  }
  for (const route of [jobsRoute, configMapsRoute, podsRoute]) if (route(state, request, response, url, query, body)) return;
  status(response, 404, "NotFound", `the stand-in does not serve ${request.method} ${url.pathname}`);
}

export async function startStandInApiServer(): Promise<StandInApiServer> {
  const state = createStandInState();
  const { certificate, key: privateKey } = selfSignedCertificate();
  const server: Server = createServer({ cert: certificate, key: privateKey }, (request, response) => {
    handle(state, request, response).catch((error: unknown) => status(response, 500, "InternalError", (error as Error).message));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}`,
    certificate,
    requests: state.requests,
    jobs: state.jobs,
    configMaps: state.configMaps,
    pods: state.pods,
    createdJobs: state.createdJobs,
    failNext(method, pathPattern, code) {
      state.failures.push({ method, pattern: pathPattern, status: code });
    },
    runningPods: () => state.running.size,
    async close() {
      for (const timer of state.deadlines.values()) clearTimeout(timer);
      for (const watcher of state.watchers) watcher.response.end();
      for (const pod of state.running.values()) killPod(pod);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A certificate for 127.0.0.1, made with openssl for this run (a real API server is HTTPS only, and so is its client). */
function selfSignedCertificate(): { certificate: string; key: string } {
  const directory = mkdtempSync(join(tmpdir(), "stand-in-tls-"));
  try {
    const made = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(directory, "key.pem"), "-out", join(directory, "cert.pem"), "-days", "1", "-subj", "/CN=stand-in-kubernetes", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "pipe", timeout: 20000 });
    if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
    return { certificate: readFileSync(join(directory, "cert.pem"), "utf8"), key: readFileSync(join(directory, "key.pem"), "utf8") };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** A KubeConfig pointing at the stand-in, built as the client library builds any other (TLS verified against its certificate). */
export async function standInKubeConfig(server: { url: string; certificate: string }) {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "stand-in", server: server.url, caData: Buffer.from(server.certificate).toString("base64"), skipTLSVerify: false }],
    users: [{ name: "runner", token: STAND_IN_TOKEN }],
    contexts: [{ name: "stand-in", cluster: "stand-in", user: "runner" }],
    currentContext: "stand-in",
  });
  return kubeConfig;
}
