// The stand-in Kubernetes API server's cluster side (test support only; see kubernetes-stand-in.ts): its one typed
// state (StandInState: the objects, pod logs, watchers, running pods), watch notifications, the garbage collector's
// cascading delete, and the kubelet — a pod "runs" its container's command in a real bubblewrap sandbox with its
// ConfigMap volumes mounted read-only, its stdout and stderr one FIFO served as the pod log, activeDeadlineSeconds
// honoured, and `$(VAR)` references expanded as the kubelet expands them.
import type { ServerResponse } from "node:http";
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, constants, lstatSync, mkdirSync, mkdtempSync, openSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPod } from "kubernetes-models/v1/Pod";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import { descendantsOf } from "./bubblewrap-process.ts";

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

/** Everything the stand-in holds, keyed by `namespace/name`. */
export interface StandInState {
  readonly requests: StandInRequest[];
  readonly jobs: Map<string, IJob>;
  readonly configMaps: Map<string, IConfigMap>;
  readonly pods: Map<string, IPod>;
  readonly logs: Map<string, Buffer[]>;
  readonly running: Map<string, RunningPod>;
  readonly watchers: Set<Watcher>;
  readonly createdJobs: IJob[];
  readonly failures: { method: string; pattern: RegExp; status: number }[];
  readonly deadlines: Map<string, NodeJS.Timeout>;
  version: number;
}

export function createStandInState(): StandInState {
  return { requests: [], jobs: new Map(), configMaps: new Map(), pods: new Map(), logs: new Map(), running: new Map(), watchers: new Set(), createdJobs: [], failures: [], deadlines: new Map(), version: 1000 };
}

export const key = (namespace: string, name: string) => `${namespace}/${name}`;

export function nextVersion(state: StandInState): string {
  state.version += 1;
  return String(state.version);
}

/**
 * What a kubelet does to a deleted pod's cgroup: every process goes. The sandboxed command runs in a session of its
 * own (bwrap --new-session), out of reach of a kill of bwrap's process group, and a pod deleted right after it
 * started may not have armed --die-with-parent yet; so the descendants are collected first (once bwrap is dead they
 * are no longer its descendants) and each is killed, then the group and bwrap itself.
 */
export function killPod(pod: RunningPod): void {
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

export function notify(state: StandInState, type: "ADDED" | "MODIFIED" | "DELETED", job: IJob): void {
  for (const watcher of state.watchers) {
    if (watcher.namespace !== job.metadata?.namespace) continue;
    if (watcher.name !== undefined && watcher.name !== job.metadata?.name) continue;
    watcher.response.write(`${JSON.stringify({ type, object: job })}\n`);
  }
}

function updateJob(state: StandInState, job: IJob, change: (job: IJob) => void): void {
  change(job);
  (job.metadata as { resourceVersion?: string }).resourceVersion = nextVersion(state);
  notify(state, "MODIFIED", job);
}

function finishJob(state: StandInState, job: IJob, podKey: string, exitCode: number, deadline: boolean): void {
  const pod = state.pods.get(podKey);
  if (pod !== undefined) {
    pod.status = {
      phase: exitCode === 0 && !deadline ? "Succeeded" : "Failed",
      containerStatuses: [{ name: "task", image: "stand-in", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode, reason: deadline ? "DeadlineExceeded" : exitCode === 0 ? "Completed" : "Error" } } }],
    };
  }
  if (!state.jobs.has(key(job.metadata?.namespace as string, job.metadata?.name as string))) return;
  updateJob(state, job, (current) => {
    const now = new Date().toISOString();
    current.status = deadline
      ? { failed: 1, conditions: [{ type: "Failed", status: "True", reason: "DeadlineExceeded", lastTransitionTime: now, lastProbeTime: now }] }
      : exitCode === 0
        ? { succeeded: 1, conditions: [{ type: "Complete", status: "True", lastTransitionTime: now, lastProbeTime: now }] }
        : { failed: 1, conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", lastTransitionTime: now, lastProbeTime: now }] };
  });
}

/** The kubelet part: start the pod once every ConfigMap volume exists (it polls, as the kubelet retries mounts). */
export function schedule(state: StandInState, job: IJob): void {
  const namespace = job.metadata?.namespace as string;
  const jobName = job.metadata?.name as string;
  const podSpec = job.spec?.template?.spec;
  if (podSpec === undefined) return;
  const attempt = (tries: number) => {
    if (!state.jobs.has(key(namespace, jobName))) return;
    const missing = (podSpec.volumes ?? []).some((volume) => volume.configMap !== undefined && !state.configMaps.has(key(namespace, volume.configMap.name as string)));
    if (missing) {
      if (tries < 500) setTimeout(() => attempt(tries + 1), 10);
      return;
    }
    startPod(state, job);
  };
  attempt(0);
  const deadlineSeconds = job.spec?.activeDeadlineSeconds;
  if (deadlineSeconds !== undefined) {
    state.deadlines.set(
      key(namespace, jobName),
      setTimeout(() => {
        for (const [podKey, pod] of state.running) {
          if (podKey.startsWith(`${namespace}/${jobName}-`)) {
            pod.killedForDeadline = true;
            killPod(pod);
          }
        }
      }, deadlineSeconds * 1000),
    );
  }
}

function podFor(job: IJob, podName: string, podSpec: IPodSpec): IPod {
  const jobName = job.metadata?.name as string;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: podName,
      namespace: job.metadata?.namespace as string,
      uid: randomUUID(),
      labels: { ...(job.spec?.template?.metadata?.labels ?? {}), "batch.kubernetes.io/job-name": jobName, "job-name": jobName, "batch.kubernetes.io/controller-uid": job.metadata?.uid as string },
      ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: jobName, uid: job.metadata?.uid as string, controller: true, blockOwnerDeletion: true }],
    },
    spec: podSpec,
    status: { phase: "Running" },
  };
}

/** bwrap's arguments for the container: the pod's user, a read-only /usr, ConfigMap volumes read-only, emptyDirs as tmpfs. */
function containerSandbox(state: StandInState, namespace: string, podSpec: IPodSpec, container: IContainer, directory: string): string[] {
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
      const configMap = state.configMaps.get(key(namespace, volume.configMap.name as string)) as IConfigMap;
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
  return args;
}

function startPod(state: StandInState, job: IJob): void {
  const namespace = job.metadata?.namespace as string;
  const jobName = job.metadata?.name as string;
  const podSpec = structuredClone(job.spec?.template?.spec);
  if (podSpec === undefined) return;
  const podName = `${jobName}-${randomBytes(3).toString("hex").slice(0, 5)}`;
  const podKey = key(namespace, podName);
  state.pods.set(podKey, podFor(job, podName, podSpec));
  state.logs.set(podKey, []);
  const container = podSpec.containers.find((candidate) => candidate.name === "task");
  if (container === undefined) return;
  const directory = mkdtempSync(join(tmpdir(), "stand-in-pod-"));
  const args = containerSandbox(state, namespace, podSpec, container, directory);
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
  state.running.set(podKey, entry);
  reader.on("data", (chunk: Buffer) => state.logs.get(podKey)?.push(chunk));
  reader.on("error", () => undefined);
  // The pod is done when its process has exited and every writer of its log is gone.
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let logClosed = false;
  const done = () => {
    if (exit === undefined || !logClosed) return;
    state.running.delete(podKey);
    rmSync(directory, { recursive: true, force: true });
    const current = state.jobs.get(key(namespace, jobName));
    if (current !== undefined) finishJob(state, current, podKey, exit.code ?? (exit.signal !== null ? 137 : 1), entry.killedForDeadline);
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

/** Deletes a Job; with Background or Foreground propagation its pods and owned ConfigMaps go too, as the garbage collector does. */
export function deleteJob(state: StandInState, namespace: string, name: string, propagation: string | undefined): IJob | undefined {
  const job = state.jobs.get(key(namespace, name));
  if (job === undefined) return undefined;
  state.jobs.delete(key(namespace, name));
  clearTimeout(state.deadlines.get(key(namespace, name)));
  state.deadlines.delete(key(namespace, name));
  notify(state, "DELETED", job);
  if (propagation === "Background" || propagation === "Foreground") {
    const uid = job.metadata?.uid;
    for (const [podKey, pod] of state.pods) {
      if (pod.metadata?.ownerReferences?.some((owner) => owner.uid === uid)) {
        const running = state.running.get(podKey);
        if (running !== undefined) killPod(running);
        state.pods.delete(podKey);
        state.logs.delete(podKey);
      }
    }
    for (const [configMapKey, configMap] of state.configMaps) {
      if (configMap.metadata?.ownerReferences?.some((owner) => owner.uid === uid)) state.configMaps.delete(configMapKey);
    }
  }
  return job;
}
