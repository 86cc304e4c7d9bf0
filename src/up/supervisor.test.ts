// Requirements (issue 17, item 1): the supervisor's policy on its own, with children it controls — a crash loop is
// restarted with a doubling delay (capped), each exit and restart recorded; a record that cannot be written is loud
// but does not leave the service down; a service that never gets healthy is not counted as started; a child that
// ignores SIGTERM is killed after the grace period; and the host checks name user namespaces when they are off.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createSupervisor, ServiceStartError } from "./supervisor.ts";
import type { Child, ChildExit, SupervisorDependencies } from "./supervisor.ts";
import type { ServicePlan } from "./plan.ts";
import { sandboxHostProblems } from "./preflight.ts";
import { temporaryDirectory } from "./test-support.ts";

function service(name: ServicePlan["name"]): ServicePlan {
  return { name, args: [], endpoint: `http://127.0.0.1/${name}`, healthUrl: `http://127.0.0.1/${name}/healthz`, listens: [], secrets: [], localUpstreams: [] };
}

interface FakeChild extends Child {
  readonly signals: NodeJS.Signals[];
  exit(exit: ChildExit): void;
  healthy: boolean;
}

function fakes(options: { ignoreTerm?: boolean; healthy?: (spawn: number) => boolean } = {}) {
  let nextPid = 1000;
  const children: FakeChild[] = [];
  const records: Array<Record<string, unknown>> = [];
  const logs: string[] = [];
  const spawnedAt: number[] = [];
  const latest = new Map<string, FakeChild>();
  const dependencies: SupervisorDependencies = {
    spawn: (plan) => {
      let resolveExit: (exit: ChildExit) => void = () => undefined;
      const exited = new Promise<ChildExit>((resolve) => (resolveExit = resolve));
      const signals: NodeJS.Signals[] = [];
      let done = false;
      const child: FakeChild = {
        pid: nextPid++,
        exited,
        signals,
        reload: () => signals.push("SIGHUP"),
        healthy: options.healthy?.(children.length) ?? true,
        signal(signal) {
          signals.push(signal);
          if (done) return;
          if (signal === "SIGKILL" || (signal === "SIGTERM" && options.ignoreTerm !== true)) child.exit({ code: null, signal });
        },
        exit(exit) {
          if (done) return;
          done = true;
          resolveExit(exit);
        },
      };
      children.push(child);
      latest.set(plan.name, child);
      spawnedAt.push(Date.now());
      return child;
    },
    probe: async (plan) => latest.get(plan.name)?.healthy === true,
    record: (event) => {
      records.push(event);
      return records.length;
    },
    log: (_level, _fields, message) => logs.push(message),
    backoff: { initialMs: 20, maxMs: 80, resetAfterMs: 60_000 },
    probeIntervalMs: 5,
    readyTimeoutMs: 2000,
    stopGraceMs: 100,
  };
  return { children, records, logs, spawnedAt, dependencies };
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test("a crash loop is restarted with a doubling, capped delay; every exit and restart is recorded", async () => {
  const { children, records, spawnedAt, dependencies } = fakes();
  const supervisor = createSupervisor([service("llm-proxy")], dependencies);
  await supervisor.start();
  for (let crash = 1; crash <= 5; crash++) {
    children.at(-1)?.exit({ code: 1, signal: null });
    await until(() => records.filter((record) => record.type === "service-restart").length === crash, `restart ${crash}`);
  }
  const delays = records.filter((record) => record.type === "service-exit").map((record) => record.restartInMs);
  assert.deepEqual(delays, [20, 40, 80, 80, 80]);
  const gaps = spawnedAt.slice(1).map((time, index) => time - (spawnedAt[index] as number));
  for (const [index, gap] of gaps.entries()) assert.ok(gap >= (delays[index] as number) - 2, `restart ${index + 1} waited its delay (${gap} ms)`);
  const last = records.at(-1);
  assert.equal(last?.type, "service-restart");
  assert.equal(last?.restarts, 5);
  assert.equal(last?.previousPid, children.at(-2)?.pid);
  assert.equal(supervisor.states()[0]?.restarts, 5);
  assert.equal(supervisor.states()[0]?.lastRestart?.seq, records.length);
  await supervisor.stop();
});

test("a restart whose record cannot be written still happens, and says so in the log", async () => {
  const { children, logs, dependencies } = fakes();
  const supervisor = createSupervisor([service("egress-proxy")], {
    ...dependencies,
    record: () => {
      throw new Error("disk full");
    },
  });
  await supervisor.start();
  children[0]?.exit({ code: null, signal: "SIGKILL" });
  await until(() => supervisor.states()[0]?.restarts === 1, "the restart");
  assert.ok(logs.some((line) => /could not record the service's exit/.test(line)));
  assert.ok(logs.some((line) => /could not record the restart/.test(line)));
  await supervisor.stop();
});

test("a service that never answers healthy fails the start, and every started service is stopped", async () => {
  const { children, dependencies } = fakes();
  const supervisor = createSupervisor([service("egress-proxy"), service("mcp-guard")], {
    ...dependencies,
    probe: async (plan) => plan.name !== "mcp-guard",
    readyTimeoutMs: 200,
  });
  await assert.rejects(supervisor.start(), (error: unknown) => error instanceof ServiceStartError && error.service === "mcp-guard" && /not ready within 0\.2 s/.test(error.message));
  assert.equal(children.length, 2);
  for (const child of children) assert.ok(child.signals.includes("SIGTERM"));
});

test("a restarted child that never gets healthy is killed and tried again later, not counted as restarted", async () => {
  // Spawn 0 starts fine, spawn 1 (the first restart) hangs unhealthy, spawn 2 is fine again.
  const { children, records, dependencies } = fakes({ healthy: (spawn) => spawn !== 1 });
  const supervisor = createSupervisor([service("mcp-guard")], { ...dependencies, readyTimeoutMs: 100 });
  await supervisor.start();
  children[0]?.exit({ code: 3, signal: null });
  await until(() => supervisor.states()[0]?.restarts === 1, "the restart after the hung one");
  assert.equal(children.length, 3);
  assert.ok(children[1]?.signals.includes("SIGKILL"), "the hung child was killed");
  assert.deepEqual(records.map((record) => record.type), ["service-exit", "service-exit", "service-restart"]);
  assert.equal(records[2]?.previousPid, children[1]?.pid);
  await supervisor.stop();
});

test("a child that ignores SIGTERM is killed with SIGKILL after the grace period", async () => {
  const { children, dependencies } = fakes({ ignoreTerm: true });
  const supervisor = createSupervisor([service("sandbox")], dependencies);
  await supervisor.start();
  const started = Date.now();
  await supervisor.stop();
  assert.deepEqual(children[0]?.signals.slice(0, 2), ["SIGTERM", "SIGKILL"]);
  assert.ok(Date.now() - started >= 90, "SIGKILL came after the grace period");
});

test("the host checks name disabled user namespaces and AppArmor's restriction, with the fix", () => {
  const proc = temporaryDirectory("perimeter-up-proc-");
  try {
    mkdirSync(join(proc, "sys/user"), { recursive: true });
    mkdirSync(join(proc, "sys/kernel"), { recursive: true });
    writeFileSync(join(proc, "sys/user/max_user_namespaces"), "0\n");
    writeFileSync(join(proc, "sys/kernel/unprivileged_userns_clone"), "0\n");
    writeFileSync(join(proc, "sys/kernel/apparmor_restrict_unprivileged_userns"), "1\n");
    const asUser = sandboxHostProblems({ searchPath: process.env.PATH ?? "", procRoot: proc, uid: 1000 });
    assert.equal(asUser.length, 3, asUser.join("\n"));
    assert.match(asUser[0] ?? "", /user namespaces are disabled \(user\.max_user_namespaces = 0\): sysctl -w user\.max_user_namespaces=15000/);
    assert.match(asUser[1] ?? "", /kernel\.unprivileged_userns_clone = 0/);
    assert.match(asUser[2] ?? "", /AppArmor restricts unprivileged user namespaces/);
    const asRoot = sandboxHostProblems({ searchPath: process.env.PATH ?? "", procRoot: proc, uid: 0 });
    assert.equal(asRoot.length, 1, "root needs only max_user_namespaces");
    writeFileSync(join(proc, "sys/user/max_user_namespaces"), "15000\n");
    assert.deepEqual(sandboxHostProblems({ searchPath: process.env.PATH ?? "", procRoot: proc, uid: 0 }), []);
  } finally {
    rmSync(proc, { recursive: true, force: true });
  }
});
