// A stand-in Kubernetes API server for the sandbox's Kubernetes backend tests: no API server can be installed here,
// so this speaks the real REST paths and watch semantics the backend uses (batch/v1 Jobs with ?watch=true streaming
// newline-delimited JSON events over a chunked response, core/v1 ConfigMaps, Pods by labelSelector, pods/{name}/log)
// and plays the kubelet: when a Job's ConfigMap volumes exist it "runs" the pod by executing the container's command
// in a real bubblewrap sandbox with the ConfigMap mounted read-only at its mountPath, serves the combined output as
// the pod log, and honours activeDeadlineSeconds. Like the kubelet it expands `$(VAR)` references in env values,
// command and args (expandKubernetesReferences). Deleting a Job with propagationPolicy Background removes its pods
// and the objects it owns, as the garbage collector would. Test support only; never part of the product.
import { createServer } from "node:https";
import type { Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, constants, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IPod } from "kubernetes-models/v1/Pod";
import { descendantsOf } from "./bubblewrap-process.ts";

export const STAND_IN_TOKEN = "stand-in-token";

export interface StandInRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly body: unknown;
}

interface Watcher {
  readonly kind: "jobs";
  readonly namespace: string;
  readonly name: string | undefined;
  readonly response: ServerResponse;
}

interface RunningPod {
  readonly process: ChildProcess;
  readonly directory: string;
  killedForDeadline: boolean;
}

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

const key = (namespace: string, name: string) => `${namespace}/${name}`;

/**
 * What a kubelet does to a deleted pod's cgroup: every process goes. The sandboxed command runs in a session of its
 * own (bwrap --new-session), out of reach of a kill of bwrap's process group, and a pod deleted right after it
 * started may not have armed --die-with-parent yet; so the descendants are collected first (once bwrap is dead they
 * are no longer its descendants) and each is killed, then the group and bwrap itself.
 */
function killPod(pod: RunningPod): void {
  const pid = pod.process.pid;
  if (pid === undefined) return;
  for (const target of [...descendantsOf(pid), -pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {
      // Already gone, or no such group yet.
    }
  }
}

/**
 * The kubelet's `$(VAR)` expansion of a container's env values, command and args, rule for rule as Kubernetes'
 * third_party/forked/golang/expansion/expand.go (Expand, tryReadVariableName, MappingFuncFor): `$$` is one `$`;
 * `$(NAME)` up to the first `)` becomes NAME's value when NAME is defined and stays as written when not; `$(`
 * without a `)` and a `$` before any other character or at the end stay as they are. The stand-in applies it where
 * the kubelet does (makeEnvironmentVariables, ExpandContainerCommandAndArgs), so a runner that forgets to escape
 * is caught here.
 */
export function expandKubernetesReferences(input: string, defined: ReadonlyMap<string, string>): string {
  let output = "";
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== "$" || cursor + 1 >= input.length) continue;
    output += input.slice(checkpoint, cursor);
    const next = input[cursor + 1];
    if (next === "$") {
      output += "$";
      cursor += 1;
    } else if (next === "(") {
      const close = input.indexOf(")", cursor + 2);
      if (close < 0) {
        output += "$(";
        cursor += 1;
      } else {
        const name = input.slice(cursor + 2, close);
        output += defined.get(name) ?? `$(${name})`;
        cursor = close;
      }
    } else {
      // The operator and the code point after it pass through (a surrogate pair is one code point, as Go's rune).
      const codePoint = String.fromCodePoint(input.codePointAt(cursor + 1) as number);
      output += `$${codePoint}`;
      cursor += codePoint.length;
    }
    checkpoint = cursor + 1;
  }
  return output + input.slice(checkpoint);
}

/** The environment and argv the kubelet would give the container: env values in order, each seeing those before it. */
function kubeletExpansion(container: { env?: readonly { name: string; value?: string }[]; command?: readonly string[]; args?: readonly string[] }): { env: [string, string][]; argv: string[] } {
  const defined = new Map<string, string>();
  const env: [string, string][] = [];
  for (const variable of container.env ?? []) {
    const value = variable.value === undefined || variable.value === "" ? "" : expandKubernetesReferences(variable.value, defined);
    defined.set(variable.name, value);
    env.push([variable.name, value]);
  }
  const argv = [...(container.command ?? []), ...(container.args ?? [])].map((argument) => expandKubernetesReferences(argument, defined));
  return { env, argv };
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

export async function startStandInApiServer(): Promise<StandInApiServer> {
  const requests: StandInRequest[] = [];
  const jobs = new Map<string, IJob>();
  const configMaps = new Map<string, IConfigMap>();
  const pods = new Map<string, IPod>();
  const logs = new Map<string, Buffer[]>();
  const running = new Map<string, RunningPod>();
  const watchers = new Set<Watcher>();
  const createdJobs: IJob[] = [];
  const failures: { method: string; pattern: RegExp; status: number }[] = [];
  const deadlines = new Map<string, NodeJS.Timeout>();
  let version = 1000;
  const nextVersion = () => String(++version);

  function notify(type: "ADDED" | "MODIFIED" | "DELETED", job: IJob): void {
    for (const watcher of watchers) {
      if (watcher.namespace !== job.metadata?.namespace) continue;
      if (watcher.name !== undefined && watcher.name !== job.metadata?.name) continue;
      watcher.response.write(`${JSON.stringify({ type, object: job })}\n`);
    }
  }

  function updateJob(job: IJob, change: (job: IJob) => void): void {
    change(job);
    (job.metadata as { resourceVersion?: string }).resourceVersion = nextVersion();
    notify("MODIFIED", job);
  }

  function finishJob(job: IJob, podKey: string, exitCode: number, deadline: boolean): void {
    const pod = pods.get(podKey);
    if (pod !== undefined) {
      pod.status = {
        phase: exitCode === 0 && !deadline ? "Succeeded" : "Failed",
        containerStatuses: [{ name: "task", image: "stand-in", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode, reason: deadline ? "DeadlineExceeded" : exitCode === 0 ? "Completed" : "Error" } } }],
      };
    }
    if (!jobs.has(key(job.metadata?.namespace as string, job.metadata?.name as string))) return;
    updateJob(job, (current) => {
      const now = new Date().toISOString();
      current.status = deadline
        ? { failed: 1, conditions: [{ type: "Failed", status: "True", reason: "DeadlineExceeded", lastTransitionTime: now, lastProbeTime: now }] }
        : exitCode === 0
          ? { succeeded: 1, conditions: [{ type: "Complete", status: "True", lastTransitionTime: now, lastProbeTime: now }] }
          : { failed: 1, conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", lastTransitionTime: now, lastProbeTime: now }] };
    });
  }

  /** The kubelet part: start the pod once every ConfigMap volume exists (it polls, as the kubelet retries mounts). */
  function schedule(job: IJob): void {
    const namespace = job.metadata?.namespace as string;
    const jobName = job.metadata?.name as string;
    const podSpec = job.spec?.template?.spec;
    if (podSpec === undefined) return;
    const attempt = (tries: number) => {
      if (!jobs.has(key(namespace, jobName))) return;
      const missing = (podSpec.volumes ?? []).some((volume) => volume.configMap !== undefined && !configMaps.has(key(namespace, volume.configMap.name as string)));
      if (missing) {
        if (tries < 500) setTimeout(() => attempt(tries + 1), 10);
        return;
      }
      startPod(job);
    };
    attempt(0);
    const deadlineSeconds = job.spec?.activeDeadlineSeconds;
    if (deadlineSeconds !== undefined) {
      deadlines.set(
        key(namespace, jobName),
        setTimeout(() => {
          for (const [podKey, pod] of running) {
            if (podKey.startsWith(`${namespace}/${jobName}-`)) {
              pod.killedForDeadline = true;
              killPod(pod);
            }
          }
        }, deadlineSeconds * 1000),
      );
    }
  }

  function startPod(job: IJob): void {
    const namespace = job.metadata?.namespace as string;
    const jobName = job.metadata?.name as string;
    const podSpec = structuredClone(job.spec?.template?.spec);
    if (podSpec === undefined) return;
    const podName = `${jobName}-${randomBytes(3).toString("hex").slice(0, 5)}`;
    const podKey = key(namespace, podName);
    const pod: IPod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: podName,
        namespace,
        uid: randomUUID(),
        labels: { ...(job.spec?.template?.metadata?.labels ?? {}), "batch.kubernetes.io/job-name": jobName, "job-name": jobName, "batch.kubernetes.io/controller-uid": job.metadata?.uid as string },
        ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: jobName, uid: job.metadata?.uid as string, controller: true, blockOwnerDeletion: true }],
      },
      spec: podSpec,
      status: { phase: "Running" },
    };
    pods.set(podKey, pod);
    logs.set(podKey, []);
    const container = podSpec.containers.find((candidate) => candidate.name === "task");
    if (container === undefined) return;
    const directory = mkdtempSync(join(tmpdir(), "stand-in-pod-"));
    const args = ["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL"];
    const uid = podSpec.securityContext?.runAsUser ?? 65532;
    args.push("--uid", String(uid), "--gid", String(podSpec.securityContext?.runAsGroup ?? uid));
    args.push("--ro-bind", "/usr", "/usr");
    for (const path of ["/bin", "/sbin", "/lib", "/lib64"]) {
      try {
        const stats = lstatSync(path);
        if (stats.isSymbolicLink()) args.push("--symlink", readlinkSync(path), path);
        else args.push("--ro-bind", path, path);
      } catch {
        // Not on this host.
      }
    }
    args.push("--proc", "/proc", "--dev", "/dev");
    for (const mount of container.volumeMounts ?? []) {
      const volume = (podSpec.volumes ?? []).find((candidate) => candidate.name === mount.name);
      if (volume?.configMap !== undefined) {
        const configMap = configMaps.get(key(namespace, volume.configMap.name as string)) as IConfigMap;
        const target = join(directory, mount.name);
        mkdirSync(target, { recursive: true });
        for (const [name, value] of Object.entries(configMap.data ?? {})) writeFileSync(join(target, name), value);
        for (const [name, value] of Object.entries(configMap.binaryData ?? {})) writeFileSync(join(target, name), Buffer.from(value, "base64"));
        args.push("--ro-bind", target, mount.mountPath);
      } else if (volume?.emptyDir !== undefined) {
        args.push("--perms", "1777", "--tmpfs", mount.mountPath);
      }
    }
    const expanded = kubeletExpansion(container);
    for (const [name, value] of expanded.env) args.push("--setenv", name, value);
    args.push("--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin");
    if (container.workingDir !== undefined) args.push("--chdir", container.workingDir);
    args.push("--", ...expanded.argv);
    // Its own process group: killing a pod kills bwrap and, should bwrap die mid-setup, its not-yet-orphan-proof child.
    // The container's stdout and stderr are one FIFO, as a container runtime's are (containerd's shim reads FIFOs):
    // the log interleaves both streams, and a process in the pod that can open /proc/1/fd/1 can write into it,
    // which is what a hostile task does in a real cluster. (Node's own stdio pipes are sockets, which cannot be
    // reopened through /proc.)
    const fifo = join(directory, "log.fifo");
    const made = spawnSync("mkfifo", ["-m", "600", fifo]);
    if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr.toString()}`);
    const reader = new Socket({ fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
    const writer = openSync(fifo, constants.O_WRONLY);
    let child: ChildProcess;
    try {
      child = spawn("bwrap", args, { stdio: ["ignore", writer, writer], detached: true });
    } finally {
      closeSync(writer);
    }
    const entry: RunningPod = { process: child, directory, killedForDeadline: false };
    running.set(podKey, entry);
    reader.on("data", (chunk: Buffer) => logs.get(podKey)?.push(chunk));
    reader.on("error", () => undefined);
    // The pod is done when its process has exited and every writer of its log is gone.
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let logClosed = false;
    const done = () => {
      if (exit === undefined || !logClosed) return;
      running.delete(podKey);
      rmSync(directory, { recursive: true, force: true });
      const current = jobs.get(key(namespace, jobName));
      if (current !== undefined) finishJob(current, podKey, exit.code ?? (exit.signal !== null ? 137 : 1), entry.killedForDeadline);
    };
    reader.on("close", () => {
      logClosed = true;
      done();
    });
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      done();
    });
  }

  function deleteJob(namespace: string, name: string, propagation: string | undefined): IJob | undefined {
    const job = jobs.get(key(namespace, name));
    if (job === undefined) return undefined;
    jobs.delete(key(namespace, name));
    clearTimeout(deadlines.get(key(namespace, name)));
    deadlines.delete(key(namespace, name));
    notify("DELETED", job);
    if (propagation === "Background" || propagation === "Foreground") {
      // What the garbage collector does: dependents (pods, owned ConfigMaps) go with their owner.
      const uid = job.metadata?.uid;
      for (const [podKey, pod] of pods) {
        if (pod.metadata?.ownerReferences?.some((owner) => owner.uid === uid)) {
          const pod = running.get(podKey);
          if (pod !== undefined) killPod(pod);
          pods.delete(podKey);
          logs.delete(podKey);
        }
      }
      for (const [configMapKey, configMap] of configMaps) {
        if (configMap.metadata?.ownerReferences?.some((owner) => owner.uid === uid)) configMaps.delete(configMapKey);
      }
    }
    return job;
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://stand-in");
    const query = Object.fromEntries(url.searchParams.entries());
    const body = request.method === "POST" || request.method === "PUT" || request.method === "PATCH" || request.method === "DELETE" ? await readBody(request) : undefined;
    requests.push({ method: request.method ?? "GET", path: url.pathname, query, body });
    if (request.headers.authorization !== `Bearer ${STAND_IN_TOKEN}`) return status(response, 401, "Unauthorized", "Unauthorized");
    const failure = failures.findIndex((candidate) => candidate.method === request.method && candidate.pattern.test(url.pathname));
    if (failure >= 0) {
      const code = failures.splice(failure, 1)[0]?.status ?? 500;
      return status(response, code, "InternalError", "injected failure");
    }

    let match = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+))?$/.exec(url.pathname);
    if (match !== null) {
      const namespace = match[1] as string;
      const name = match[2];
      if (request.method === "POST" && name === undefined) {
        const job = body as IJob;
        createdJobs.push(structuredClone(job));
        const jobName = job.metadata?.name as string;
        if (jobs.has(key(namespace, jobName))) return status(response, 409, "AlreadyExists", `jobs.batch "${jobName}" already exists`);
        job.metadata = { ...job.metadata, namespace, uid: randomUUID(), resourceVersion: nextVersion(), creationTimestamp: new Date().toISOString() };
        job.status = {};
        jobs.set(key(namespace, jobName), job);
        notify("ADDED", job);
        schedule(job);
        return json(response, 201, job);
      }
      if (request.method === "GET" && name === undefined && query.watch === "true") {
        const fieldName = /^metadata\.name=(.+)$/.exec(query.fieldSelector ?? "")?.[1];
        response.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
        const watcher: Watcher = { kind: "jobs", namespace, name: fieldName, response };
        watchers.add(watcher);
        request.on("close", () => watchers.delete(watcher));
        const since = Number(query.resourceVersion ?? 0);
        for (const job of jobs.values()) {
          if (job.metadata?.namespace !== namespace || (fieldName !== undefined && job.metadata?.name !== fieldName)) continue;
          if (Number(job.metadata?.resourceVersion) > since) response.write(`${JSON.stringify({ type: since === 0 ? "ADDED" : "MODIFIED", object: job })}\n`);
        }
        return;
      }
      if (request.method === "GET" && name === undefined) {
        const items = [...jobs.values()].filter((job) => job.metadata?.namespace === namespace && matchesLabels(job.metadata?.labels, query.labelSelector));
        return json(response, 200, { apiVersion: "batch/v1", kind: "JobList", metadata: { resourceVersion: String(version) }, items });
      }
      if (request.method === "GET" && name !== undefined) {
        const job = jobs.get(key(namespace, name));
        return job === undefined ? status(response, 404, "NotFound", `jobs.batch "${name}" not found`) : json(response, 200, job);
      }
      if (request.method === "DELETE" && name !== undefined) {
        const propagation = query.propagationPolicy ?? (body as { propagationPolicy?: string } | undefined)?.propagationPolicy;
        const job = deleteJob(namespace, name, propagation);
        return job === undefined ? status(response, 404, "NotFound", `jobs.batch "${name}" not found`) : json(response, 200, job);
      }
    }

    match = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps(?:\/([^/]+))?$/.exec(url.pathname);
    if (match !== null) {
      const namespace = match[1] as string;
      const name = match[2];
      if (request.method === "POST" && name === undefined) {
        const configMap = body as IConfigMap;
        const configMapName = configMap.metadata?.name as string;
        if (configMaps.has(key(namespace, configMapName))) return status(response, 409, "AlreadyExists", `configmaps "${configMapName}" already exists`);
        configMap.metadata = { ...configMap.metadata, namespace, uid: randomUUID(), resourceVersion: nextVersion() };
        configMaps.set(key(namespace, configMapName), configMap);
        return json(response, 201, configMap);
      }
      if (request.method === "GET" && name === undefined) {
        const items = [...configMaps.values()].filter((configMap) => configMap.metadata?.namespace === namespace && matchesLabels(configMap.metadata?.labels, query.labelSelector));
        return json(response, 200, { apiVersion: "v1", kind: "ConfigMapList", metadata: { resourceVersion: String(version) }, items });
      }
      if (request.method === "DELETE" && name !== undefined) {
        const configMap = configMaps.get(key(namespace, name));
        if (configMap === undefined) return status(response, 404, "NotFound", `configmaps "${name}" not found`);
        configMaps.delete(key(namespace, name));
        return json(response, 200, configMap);
      }
    }

    match = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+)(\/log)?)?$/.exec(url.pathname);
    if (match !== null) {
      const namespace = match[1] as string;
      const name = match[2];
      if (request.method === "GET" && name === undefined) {
        const items = [...pods.values()].filter((pod) => pod.metadata?.namespace === namespace && matchesLabels(pod.metadata?.labels, query.labelSelector));
        return json(response, 200, { apiVersion: "v1", kind: "PodList", metadata: { resourceVersion: String(version) }, items });
      }
      if (request.method === "GET" && name !== undefined && match[3] === "/log") {
        const chunks = logs.get(key(namespace, name));
        if (chunks === undefined) return status(response, 404, "NotFound", `pods "${name}" not found`);
        let log = Buffer.concat(chunks);
        const limit = Number(query.limitBytes ?? NaN);
        if (Number.isFinite(limit)) log = log.subarray(0, limit);
        response.writeHead(200, { "content-type": "text/plain" });
        response.end(log);
        return;
      }
    }
    status(response, 404, "NotFound", `the stand-in does not serve ${request.method} ${url.pathname}`);
  }

  const { certificate, key: privateKey } = selfSignedCertificate();
  const server: Server = createServer({ cert: certificate, key: privateKey }, (request, response) => {
    handle(request, response).catch((error: unknown) => status(response, 500, "InternalError", (error as Error).message));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}`,
    certificate,
    requests,
    jobs,
    configMaps,
    pods,
    createdJobs,
    failNext(method, pathPattern, code) {
      failures.push({ method, pattern: pathPattern, status: code });
    },
    runningPods: () => running.size,
    async close() {
      for (const timer of deadlines.values()) clearTimeout(timer);
      for (const watcher of watchers) watcher.response.end();
      for (const pod of running.values()) killPod(pod);
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
