// The Kubernetes backend against a stand-in Kubernetes API server (no cluster can run here): the stand-in speaks the
// real REST and watch paths and runs each Job's container in a bubblewrap sandbox, so the Job the backend creates,
// the watch, the log framing and the cleanup are all exercised over real HTTP with @kubernetes/client-node.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import { parseConfig } from "../config/index.ts";
import { sandboxJobTemplate } from "../render/index.ts";
import { createKubernetesBackend, DEFAULT_MAX_RETURN_BYTES, loadJobTemplate, RUNNER_LABEL, TASK_CONTAINER } from "./kubernetes.ts";
import { decodeLog } from "./framing.ts";
import { expandKubernetesReferences, startStandInApiServer, standInKubeConfig } from "./kubernetes-stand-in.ts";
import type { StandInApiServer } from "./kubernetes-stand-in.ts";
import { limitsFromConfig, SandboxTaskError, SandboxUnavailableError } from "./task.ts";
import type { SandboxBackend } from "./task.ts";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";

const config = parseConfig("version: 1\nname: hermes\nsandbox:\n  backend: kubernetes\n  image: python:3.12-slim\n  limits: { cpu: '1', memory: 512Mi, pids: 128, disk: 256Mi, timeoutSeconds: 60 }\n");
const template = sandboxJobTemplate(config);
const defaults = { ...limitsFromConfig(config.sandbox.limits), timeoutMs: 20_000 };

let standIn: StandInApiServer;
let backend: SandboxBackend;

before(async () => {
  standIn = await startStandInApiServer();
  backend = createKubernetesBackend({ kubeConfig: await standInKubeConfig(standIn), template, defaults });
});

after(async () => {
  await backend.close();
  await standIn.close();
});

const text = (buffer: Buffer) => buffer.toString("utf8");

async function assertNothingLeft(): Promise<void> {
  assert.deepEqual([...standIn.jobs.keys()], [], "Jobs left behind");
  assert.deepEqual([...standIn.configMaps.keys()], [], "ConfigMaps left behind");
  assert.deepEqual([...standIn.pods.keys()], [], "pods left behind");
  // The stand-in's kubelet kills a deleted pod's process asynchronously, as a real one does: give it 2 s.
  for (let attempt = 0; attempt < 100 && standIn.runningPods() > 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(standIn.runningPods(), 0, "a pod process is still running");
}

test("stand-in Kubernetes API server: the Job created is the hardened template, field by field, plus only the per-task fields", async () => {
  const before = standIn.createdJobs.length;
  const result = await backend.run({ argv: ["python3", "-c", "print('hi')"], env: { MODE: "test" } });
  assert.equal(result.exitCode, 0, text(result.stderr.data));
  const created = standIn.createdJobs[before] as IJob;
  assert.ok(created !== undefined);

  // What the runner may set: the name, the task container's command/args/env, and the inputs ConfigMap volume.
  const podSpec = created.spec?.template?.spec;
  const container = podSpec?.containers.find((candidate) => candidate.name === TASK_CONTAINER);
  assert.match(created.metadata?.name ?? "", /^perimeter-task-[0-9a-f]{10}$/);
  assert.deepEqual(container?.command, ["/bin/sh", "/inputs/run.sh"]);
  assert.deepEqual(container?.args, ["python3", "-c", "print('hi')"]);
  assert.deepEqual(container?.env?.find((variable) => variable.name === "MODE"), { name: "MODE", value: "test" });
  const inputsVolume = podSpec?.volumes?.find((volume) => volume.name === "inputs");
  assert.deepEqual(inputsVolume, { name: "inputs", configMap: { name: `${created.metadata?.name}-inputs`, defaultMode: 0o444 } });
  assert.deepEqual(container?.volumeMounts?.find((mount) => mount.name === "inputs"), { name: "inputs", mountPath: "/inputs", readOnly: true });

  // The runner's label, naming it, is on the Job (not on the pod: the NetworkPolicies select pods by the template's).
  assert.equal(created.metadata?.labels?.[RUNNER_LABEL], "hermes");
  assert.equal(created.spec?.template?.metadata?.labels?.[RUNNER_LABEL], undefined);

  // Everything else is exactly the template.
  const stripped = structuredClone(created);
  delete stripped.metadata?.name;
  delete stripped.metadata?.labels?.[RUNNER_LABEL];
  const strippedPod = stripped.spec?.template?.spec;
  const strippedContainer = strippedPod?.containers.find((candidate) => candidate.name === TASK_CONTAINER);
  if (strippedContainer !== undefined) {
    delete strippedContainer.command;
    delete strippedContainer.args;
    delete strippedContainer.env;
    strippedContainer.volumeMounts = strippedContainer.volumeMounts?.filter((mount) => mount.name !== "inputs");
  }
  if (strippedPod !== undefined) strippedPod.volumes = strippedPod.volumes?.filter((volume) => volume.name !== "inputs");
  assert.deepEqual(stripped, JSON.parse(JSON.stringify(template)));

  // And the template's hardening is in the object the API server received.
  assert.equal(podSpec?.automountServiceAccountToken, false);
  assert.equal(podSpec?.securityContext?.runAsNonRoot, true);
  assert.equal(podSpec?.securityContext?.seccompProfile?.type, "RuntimeDefault");
  assert.equal(container?.securityContext?.readOnlyRootFilesystem, true);
  assert.equal(container?.securityContext?.allowPrivilegeEscalation, false);
  assert.deepEqual(container?.securityContext?.capabilities?.drop, ["ALL"]);
  assert.ok((podSpec?.volumes ?? []).every((volume) => volume.emptyDir !== undefined || volume.configMap !== undefined), "only emptyDir and the inputs ConfigMap");
  assert.equal(created.spec?.template?.metadata?.labels?.["perimeter.dev/role"], "sandbox-task");
  assert.equal(created.spec?.activeDeadlineSeconds, 60);
  assert.ok((created.spec?.ttlSecondsAfterFinished ?? 0) > 0);
});

test("stand-in Kubernetes API server: with a sandbox allowlist the template's proxy environment is kept first, and a task cannot override it", async () => {
  const withProxy = sandboxJobTemplate(parseConfig("version: 1\nname: hermes\nsandbox:\n  network: { allow: [pypi.org] }\n"));
  const templateEnv = withProxy.spec?.template?.spec?.containers[0]?.env ?? [];
  assert.ok(templateEnv.some((variable) => variable.name === "HTTPS_PROXY"), "render's template carries the proxy variables");
  const proxyBackend = createKubernetesBackend({ kubeConfig: await standInKubeConfig(standIn), template: withProxy, defaults });
  const before = standIn.createdJobs.length;
  const result = await proxyBackend.run({ script: "echo $HTTPS_PROXY", env: { HTTPS_PROXY: "http://attacker.example:1", MINE: "1" } });
  await proxyBackend.close();
  const env = standIn.createdJobs[before]?.spec?.template?.spec?.containers[0]?.env ?? [];
  assert.deepEqual(env.slice(0, templateEnv.length), templateEnv);
  assert.equal(env.filter((variable) => variable.name === "HTTPS_PROXY").length, 1);
  assert.ok(env.some((variable) => variable.name === "MINE"));
  assert.equal(result.stdout.data.toString().trim(), templateEnv.find((variable) => variable.name === "HTTPS_PROXY")?.value);
  assert.equal(result.limits.network, "proxy");
  await assertNothingLeft();
});

test("stand-in Kubernetes API server: the inputs ConfigMap is owned by the Job (garbage-collected with it)", async () => {
  const result = await backend.run({ script: "cat in.txt", files: [{ path: "in.txt", content: "from a file" }] });
  assert.equal(text(result.stdout.data), "from a file");
  const creation = standIn.requests.filter((request) => request.method === "POST" && request.path.endsWith("/configmaps")).at(-1);
  const body = creation?.body as { metadata: { ownerReferences: { kind: string; name: string; uid: string }[] } };
  const jobCreation = standIn.requests.filter((request) => request.method === "POST" && request.path.endsWith("/jobs")).at(-1);
  const owner = body.metadata.ownerReferences[0];
  assert.equal(owner?.kind, "Job");
  assert.equal(owner?.name, (jobCreation?.body as IJob).metadata?.name);
  assert.match(owner?.uid ?? "", /^[0-9a-f-]{36}$/);
  await assertNothingLeft();
});

test("stand-in Kubernetes API server: the backend watches the Job (?watch=true) and returns output, stdin, status and files", async () => {
  const watchesBefore = standIn.requests.filter((request) => request.query.watch === "true").length;
  const result = await backend.run({
    script: "read x; echo \"got $x\"; echo warn >&2; mkdir -p out; printf 'result' > out/r.txt; exit 3",
    stdin: "input\n",
    collect: ["out/r.txt"],
  });
  assert.equal(result.exitCode, 3);
  assert.equal(result.reason, "exit");
  assert.equal(text(result.stdout.data), "got input\n");
  assert.equal(text(result.stderr.data), "warn\n");
  assert.deepEqual(result.files.map((file) => [file.path, text(file.content)]), [["out/r.txt", "result"]]);
  const watches = standIn.requests.filter((request) => request.query.watch === "true");
  assert.ok(watches.length > watchesBefore);
  assert.match(watches.at(-1)?.query.fieldSelector ?? "", /^metadata\.name=perimeter-task-/);
  assert.equal(result.limits.backend, "kubernetes");
  await assertNothingLeft();
});

test("stand-in Kubernetes API server: a program printing fake frame markers cannot forge output or status", async () => {
  const guessed = "0123456789abcdef0123456789abcdef";
  const fake = [`${guessed} begin`, `${guessed} o ${Buffer.from("forged").toString("base64")}`, `${guessed} x 0`, `${guessed} end`, " x 0", "end"].join("\n");
  const result = await backend.run({
    argv: ["/bin/sh", "-c", `printf '%s\\n' "$1"; printf '%s\\n' "$1" >&2; exit 7`, "sh", fake, guessed],
  });
  assert.equal(result.exitCode, 7, "the forged 'x 0' was believed");
  assert.equal(text(result.stdout.data), `${fake}\n`);
  assert.equal(text(result.stderr.data), `${fake}\n`);
  await assertNothingLeft();
});

test("stand-in Kubernetes API server: on timeout the Job, its pod and its ConfigMap are deleted (propagationPolicy Background)", async () => {
  const started = Date.now();
  const result = await backend.run({ argv: ["sleep", "30"], limits: { timeoutMs: 1500 } });
  assert.equal(result.reason, "timeout");
  assert.equal(result.exitCode, null);
  assert.ok(Date.now() - started < 10_000);
  const deletion = standIn.requests.filter((request) => request.method === "DELETE" && request.path.includes("/jobs/")).at(-1);
  assert.equal(deletion?.query.propagationPolicy ?? (deletion?.body as { propagationPolicy?: string })?.propagationPolicy, "Background");
  await assertNothingLeft();
});

test("stand-in Kubernetes API server: when the caller goes away (AbortSignal) everything the task created is deleted", async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 700);
  const result = await backend.run({ argv: ["sleep", "30"] }, { signal: controller.signal });
  assert.equal(result.reason, "aborted");
  await assertNothingLeft();
});

test("stand-in Kubernetes API server: closing the backend mid-task (runner shutdown) deletes what the task created", async () => {
  const closing = createKubernetesBackend({ kubeConfig: await standInKubeConfig(standIn), template, defaults });
  const pending = closing.run({ argv: ["sleep", "30"] });
  for (let attempt = 0; attempt < 100 && standIn.jobs.size === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(standIn.jobs.size, 1);
  await closing.close();
  assert.equal((await pending).reason, "aborted");
  await assertNothingLeft();
});

test("stand-in Kubernetes API server: the template's activeDeadlineSeconds ends a task as 'timeout'", async () => {
  const short = sandboxJobTemplate(parseConfig("version: 1\nname: hermes\nsandbox:\n  limits: { timeoutSeconds: 1 }\n"));
  const deadlineBackend = createKubernetesBackend({ kubeConfig: await standInKubeConfig(standIn), template: short, defaults });
  const result = await deadlineBackend.run({ argv: ["sleep", "30"] });
  await deadlineBackend.close();
  assert.equal(result.reason, "timeout");
  await assertNothingLeft();
});

test("stand-in Kubernetes API server: if the ConfigMap cannot be created, the Job already made is deleted and the error says so", async () => {
  standIn.failNext("POST", /\/configmaps$/, 500);
  await assert.rejects(backend.run({ argv: ["true"] }), (error: Error) => error instanceof SandboxUnavailableError && /HTTP 500/.test(error.message));
  await assertNothingLeft();
});

test("stand-in Kubernetes API server: inputs too large for a ConfigMap are refused before anything is created", async () => {
  const requestsBefore = standIn.requests.length;
  await assert.rejects(backend.run({ argv: ["true"], files: [{ path: "big.bin", content: Buffer.alloc(800 * 1024) }] }), SandboxTaskError);
  assert.equal(standIn.requests.length, requestsBefore);
});

test("stand-in Kubernetes API server: concurrent tasks get separate Jobs and their own results", async () => {
  const results = await Promise.all([1, 2, 3].map((index) => backend.run({ script: `echo task-${index}` })));
  assert.deepEqual(results.map((result) => text(result.stdout.data)), ["task-1\n", "task-2\n", "task-3\n"]);
  await assertNothingLeft();
});

test("the runner reads the template from the mounted file, and refuses one without the contract (container 'task', volumes)", () => {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-template-"));
  try {
    const path = join(directory, "job.yaml");
    writeFileSync(path, stringify(template));
    assert.deepEqual(loadJobTemplate(path), JSON.parse(JSON.stringify(template)));
    const broken = structuredClone(template);
    (broken.spec?.template?.spec?.containers[0] as { name: string }).name = "runner";
    writeFileSync(path, stringify(broken));
    assert.throws(() => loadJobTemplate(path), /no container named "task"/);
    assert.throws(() => loadJobTemplate(join(directory, "missing.yaml")), /cannot read the sandbox Job template/);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("log framing: lines without the task's nonce, before 'begin' or after 'end', and malformed frames are ignored", () => {
  const nonce = "a".repeat(32);
  const other = "b".repeat(32);
  const log = [
    `${nonce} o ${Buffer.from("too early").toString("base64")}`,
    `${nonce} begin`,
    `${other} o ${Buffer.from("other task").toString("base64")}`,
    "raw line written straight into the container log",
    `${nonce} o ${Buffer.from("real ").toString("base64")}`,
    `${nonce} o not*base64`,
    `${nonce} o ${Buffer.from("output").toString("base64")}`,
    `${nonce} n 11 0`,
    `${nonce} x 5`,
    `${nonce} x 0`,
    `${nonce} end`,
    `${nonce} o ${Buffer.from(" after the end").toString("base64")}`,
  ].join("\n");
  const decoded = decodeLog(log, nonce);
  assert.equal(decoded.stdout.toString(), "real output");
  assert.equal(decoded.exitCode, 5);
  assert.equal(decoded.complete, true);
  assert.equal(decodeLog(log.split("\n").slice(0, 8).join("\n"), nonce).complete, false);
});

test("stand-in kubelet: $(VAR) expansion follows Kubernetes' rules (expansion/expand.go)", () => {
  const defined = new Map([["A", "alpha"], ["EMPTY", ""], ["REF", "$(A)"]]);
  const cases: [string, string][] = [
    ["$(A)", "alpha"],
    ["x$(A)y$(A)z", "xalphayalphaz"],
    ["$(EMPTY)|", "|"],
    ["$(UNDEFINED)", "$(UNDEFINED)"],
    ["$(REF)", "$(A)"], // a value is not expanded twice
    ["$$(A)", "$(A)"],
    ["$$", "$"],
    ["$$$", "$$"],
    ["a$$b", "a$b"],
    ["$$$$(A)", "$$(A)"],
    ["$$$(A)", "$alpha"],
    ["$A ${A} $? $", "$A ${A} $? $"],
    ["$(A", "$(A"],
    ["$($(A)", "$($(A)"], // the name runs to the first ")": "$(A" is not defined
    ["\\$(A)", "\\alpha"], // no backslash escape
    ["$\u00e9$\u{1F600}", "$\u00e9$\u{1F600}"],
  ];
  for (const [input, expected] of cases) assert.equal(expandKubernetesReferences(input, defined), expected, JSON.stringify(input));
});

test("attack: a command containing $(HOME) and $$ runs byte for byte as the audit log records it, not as the kubelet would expand it", async () => {
  const argv = ["/bin/sh", "-c", 'printf "%s|" "$@"; printf "%s|" "$V" "$W"', "sh", "$(HOME)", "$$", "$$(HOME)", "$(UNDEFINED)", "a$b", "$"];
  const env = { V: "$(HOME)-$$", W: "$(V)" };
  const before = standIn.createdJobs.length;
  const result = await backend.run({ argv, env });
  assert.equal(result.exitCode, 0, text(result.stderr.data));
  assert.equal(text(result.stdout.data), "$(HOME)|$$|$$(HOME)|$(UNDEFINED)|a$b|$|$(HOME)-$$|$(V)|");
  // What the API server stores, expanded as the kubelet expands it, is exactly the task's argv and env.
  const container = standIn.createdJobs[before]?.spec?.template?.spec?.containers.find((candidate) => candidate.name === TASK_CONTAINER);
  const defined = new Map<string, string>();
  for (const variable of container?.env ?? []) defined.set(variable.name, expandKubernetesReferences(variable.value ?? "", defined));
  assert.deepEqual(container?.args?.map((argument) => expandKubernetesReferences(argument, defined)), argv);
  assert.equal(defined.get("V"), env.V);
  assert.equal(defined.get("W"), env.W);
  await assertNothingLeft();
});

test("the wrapper's own shell variables never replace the task's environment (nor hand it the nonce)", async () => {
  const names = ["N", "I", "W", "O", "E", "s", "tab", "key", "mode", "path"];
  const env = Object.fromEntries(names.map((name) => [name, `task-${name}`]));
  const result = await backend.run({ argv: ["/bin/sh", "-c", `printf '%s\\n' ${names.map((name) => `"$${name}"`).join(" ")}`], env, files: [{ path: "in.txt", content: "x" }] });
  assert.equal(result.exitCode, 0, text(result.stderr.data));
  assert.equal(text(result.stdout.data), names.map((name) => `task-${name}\n`).join(""));
  await assertNothingLeft();
});

/** Runs one task through the backend in a process of its own and returns its report (kubernetes-memory-probe.ts). */
async function probeMemory(task: Record<string, unknown>, limits = defaults): Promise<{ baseline: number; peak: number; exitCode: number | null; reason: string; stdoutBytes: number; stdoutKept: number; files: { path: string; bytes: number }[]; filesMissing: string[]; limitsHit: string[] }> {
  const probe = new URL("./kubernetes-memory-probe.ts", import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(process.execPath, [probe, JSON.stringify(template), JSON.stringify(limits), JSON.stringify(task)], {
    env: { ...process.env, STAND_IN_URL: standIn.url, STAND_IN_CERTIFICATE: standIn.certificate },
    maxBuffer: 1024 * 1024,
    timeout: 240_000,
  });
  return JSON.parse(stdout);
}

const MiB = 1024 ** 2;

test("attack: a task that collects 64 MiB keeps the runner's memory bounded, and what it returns is capped with a clear marker", async () => {
  const report = await probeMemory({ script: "head -c 67108864 /dev/zero | tr '\\0' 'a' > big.bin; printf small > small.txt", collect: ["small.txt", "big.bin"], limits: { timeoutMs: 120_000 } });
  const grew = report.peak - report.baseline;
  process.stderr.write(`# 64 MiB collected: runner peak RSS ${(report.peak / MiB).toFixed(0)} MiB (baseline ${(report.baseline / MiB).toFixed(0)} MiB, +${(grew / MiB).toFixed(0)} MiB)\n`);
  assert.equal(report.exitCode, 0);
  assert.ok(grew < 48 * MiB, `the runner grew by ${(grew / MiB).toFixed(0)} MiB reading one task's results`);
  // The runner's memory limit as render deploys it.
  assert.ok(report.peak < 256 * MiB, `the runner's peak RSS was ${(report.peak / MiB).toFixed(0)} MiB`);
  assert.deepEqual(report.files, [{ path: "small.txt", bytes: 5 }]);
  assert.ok(report.filesMissing.some((entry) => /^big\.bin \(cut off: .*more than \d+ bytes/.test(entry)), report.filesMissing.join("; "));
  assert.ok(report.limitsHit.includes("returned-files"), report.limitsHit.join(", "));
  await assertNothingLeft();
});

test("attack: a program that learned the nonce and floods the log with frames cannot grow the runner past its caps", async () => {
  // The nonce is in the wrapper the program can read (same uid); it writes frames straight to the container log.
  const script = [
    'N=$(sed -n "s/^echo \\"\\([0-9a-f]\\{32\\}\\) begin\\"$/\\1/p" /inputs/run.sh)',
    '[ -n "$N" ] || exit 9',
    "exec 3>/proc/1/fd/1 || exit 8",
    'echo "$N begin" >&3',
    'head -c 50331648 /dev/zero | base64 | sed "s/^/$N o /" >&3',
    'head -c 50331648 /dev/zero | base64 | sed "s/^/$N f /" >&3',
  ].join("\n");
  const report = await probeMemory({ script, limits: { timeoutMs: 120_000 } });
  const grew = report.peak - report.baseline;
  process.stderr.write(`# 2 x 48 MiB of forged frames: runner peak RSS ${(report.peak / MiB).toFixed(0)} MiB (+${(grew / MiB).toFixed(0)} MiB)\n`);
  assert.ok(grew < 48 * MiB, `the runner grew by ${(grew / MiB).toFixed(0)} MiB`);
  assert.equal(report.exitCode, 0, `the program could not write to the container log: ${JSON.stringify(report)}`);
  assert.ok(report.stdoutKept <= defaults.outputBytes, `kept ${report.stdoutKept} bytes of stdout`);
  await assertNothingLeft();
});

test("a runner restarted with leftover Jobs and ConfigMaps of its own deletes them at start, and only its own", async () => {
  const kubeConfig = await standInKubeConfig(standIn);
  // Two runners' tasks in flight; the first runner then "dies" (it is never closed before its successor starts).
  const crashed = createKubernetesBackend({ kubeConfig, template, defaults, runnerName: "runner-a" });
  const other = createKubernetesBackend({ kubeConfig, template, defaults, runnerName: "runner-b" });
  const orphan = crashed.run({ argv: ["sleep", "30"] }).then(
    (result) => result,
    (error: unknown) => error as Error,
  );
  const foreign = other.run({ argv: ["sleep", "30"] });
  const ownedBy = (runner: string) => [...standIn.jobs.values()].filter((job) => job.metadata?.labels?.[RUNNER_LABEL] === runner).length;
  for (let attempt = 0; attempt < 200 && (ownedBy("runner-a") === 0 || ownedBy("runner-b") === 0 || standIn.configMaps.size < 2); attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(ownedBy("runner-a"), 1);
  assert.equal(ownedBy("runner-b"), 1);
  // An object of the same kind without the label, which no runner made.
  const namespace = template.metadata?.namespace as string;
  standIn.configMaps.set(`${namespace}/unrelated`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "unrelated", namespace, labels: { "app.kubernetes.io/instance": "hermes" } }, data: {} });
  // And a ConfigMap of runner-a whose Job is already gone (the garbage collector has not reached it yet).
  standIn.configMaps.set(`${namespace}/perimeter-task-0000000000-inputs`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "perimeter-task-0000000000-inputs", namespace, labels: { [RUNNER_LABEL]: "runner-a" } }, data: {} });

  const restarted = createKubernetesBackend({ kubeConfig, template, defaults, runnerName: "runner-a" });
  // The Job (its owned ConfigMap goes with it, Background propagation) and the lone ConfigMap.
  assert.equal(await restarted.leftoversRemoved, 2);
  assert.equal(ownedBy("runner-a"), 0);
  assert.ok(![...standIn.configMaps.values()].some((configMap) => configMap.metadata?.labels?.[RUNNER_LABEL] === "runner-a"), "runner-a's ConfigMap left");
  assert.equal(ownedBy("runner-b"), 1, "another runner's task was touched");
  assert.ok(standIn.configMaps.has(`${namespace}/unrelated`), "an object without the runner's label was deleted");
  const listed = standIn.requests.filter((request) => request.method === "GET" && /\/(jobs|configmaps)$/.test(request.path) && request.query.watch !== "true").slice(-2);
  assert.deepEqual(listed.map((request) => request.query.labelSelector), [`${RUNNER_LABEL}=runner-a`, `${RUNNER_LABEL}=runner-a`]);
  // The restarted runner serves; the dead one's caller learns its Job went away.
  assert.equal(text((await restarted.run({ script: "echo after-restart" })).stdout.data), "after-restart\n");
  assert.match(String(await orphan), /disappeared before it finished/);
  await Promise.all([other.close(), crashed.close(), restarted.close()]);
  assert.equal((await foreign).reason, "aborted");
  standIn.configMaps.delete(`${namespace}/unrelated`);
  await assertNothingLeft();
});

test("the returned files are capped at maxReturnBytes with a marker naming the file cut, and under the cap nothing is lost", async () => {
  const small = createKubernetesBackend({ kubeConfig: await standInKubeConfig(standIn), template, defaults, maxReturnBytes: 64 * 1024 });
  const over = await small.run({ script: "head -c 20000 /dev/zero > a.bin; head -c 100000 /dev/zero > b.bin; head -c 10 /dev/zero > c.bin", collect: ["a.bin", "b.bin", "c.bin"] });
  assert.deepEqual(over.files.map((file) => [file.path, file.content.length]), [["a.bin", 20000]]);
  assert.match(over.filesMissing.join("; "), /^b\.bin \(cut off: the returned files came to more than 65536 bytes, the most a task returns here; collect fewer or smaller files\); c\.bin$/);
  assert.ok(over.limitsHit.includes("returned-files"));
  const under = await small.run({ script: "head -c 50000 /dev/urandom > a.bin; cp a.bin b.bin; sha256sum a.bin", collect: ["a.bin"] });
  assert.deepEqual(under.filesMissing, []);
  assert.deepEqual(under.limitsHit, []);
  assert.equal(createHash("sha256").update(under.files[0]?.content ?? Buffer.alloc(0)).digest("hex"), text(under.stdout.data).split(" ")[0]);
  await small.close();
  assert.equal(DEFAULT_MAX_RETURN_BYTES, 3 * 1024 * 1024);
  await assertNothingLeft();
});
