// The supervisor of `perimeter up`: starts every service (inside up's process, or each as its own child process),
// waits until each is ready, restarts one that dies (with a growing delay, every restart recorded), and stops them all
// on request, leaving no process behind. The mechanism (spawning, probing, recording) is injected, so the policy here
// is tested on its own.
import { PerimeterError } from "../shared/index.ts";
import type { ServiceName, ServicePlan } from "./plan.ts";

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Why, when the code and signal do not say it (a service in up's own process that threw). */
  readonly reason?: string;
}

export interface Child {
  readonly pid: number;
  readonly exited: Promise<ChildExit>;
  /** Signals the child's whole process group (it and whatever it started that stayed in its group). */
  readonly signal: (signal: NodeJS.Signals) => void;
  /** Asks it to reload its configuration (SIGHUP for a process). */
  readonly reload: () => void;
}

export interface ServiceState {
  readonly name: ServiceName;
  pid: number;
  startedAt: string;
  restarts: number;
  lastRestart?: { time: string; previousPid: number; exitCode: number | null; signal: string | null; seq?: number };
  ready: boolean;
}

/** What the supervisor asks to be written to the audit log; returns the record's seq, or throws. */
export type Recorder = (event: { type: "service-exit" | "service-restart"; [field: string]: unknown }) => number;

export interface SupervisorDependencies {
  readonly spawn: (service: ServicePlan) => Child;
  /** One readiness probe; resolves true when the service answers healthy. Must not throw. */
  readonly probe: (service: ServicePlan) => Promise<boolean>;
  readonly record: Recorder;
  readonly log: (level: "info" | "warn" | "error", fields: Record<string, unknown>, message: string) => void;
  /** Called after every change of a service's state (for the state file `perimeter status` reads). */
  readonly onChange?: (services: readonly ServiceState[]) => void;
  readonly now?: () => Date;
  /** Delay before the first restart, doubling per crash up to maxMs; reset after a child ran resetAfterMs. */
  readonly backoff?: { initialMs: number; maxMs: number; resetAfterMs: number };
  readonly readyTimeoutMs?: number;
  readonly probeIntervalMs?: number;
  /** How long a child may take to stop after SIGTERM before its group is killed. */
  readonly stopGraceMs?: number;
}

export class ServiceStartError extends PerimeterError {
  readonly service: ServiceName;
  readonly exit: ChildExit | undefined;
  constructor(service: ServiceName, exit: ChildExit | undefined, message: string) {
    // A service that exits 2 found a problem in the config or the host; anything else is ours.
    super(exit?.code === 2 ? "setup" : "internal", message);
    this.service = service;
    this.exit = exit;
  }
}

export interface Supervisor {
  /** Starts every service; resolves when all are ready, rejects (after stopping them all) with ServiceStartError. */
  start(signal?: AbortSignal): Promise<void>;
  /** Stops every service: SIGTERM, then SIGKILL to the process group after the grace period. Idempotent. */
  stop(): Promise<void>;
  states(): readonly ServiceState[];
  /** Passes a reload on to every running service. */
  reload(): void;
}

interface Slot {
  readonly plan: ServicePlan;
  state: ServiceState;
  child: Child;
  crashes: number;
  restartTimer?: NodeJS.Timeout;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function describeExit(exit: ChildExit): string {
  if (exit.reason !== undefined) return `crashed: ${exit.reason}`;
  return exit.signal !== null ? `killed by ${exit.signal}` : `exited with ${exit.code}`;
}

/** Stops a child: SIGTERM, SIGKILL to its group after the grace period, and SIGKILL again for what it left behind. */
async function stopChild(child: Child, stopGraceMs: number): Promise<void> {
  let done = false;
  void child.exited.then(() => {
    done = true;
  });
  child.signal("SIGTERM");
  const timer = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), stopGraceMs).unref());
  if ((await Promise.race([child.exited, timer])) === "timeout" && !done) {
    child.signal("SIGKILL");
    await child.exited;
  }
  child.signal("SIGKILL");
}

interface SupervisorSettings {
  now: () => Date;
  backoff: { initialMs: number; maxMs: number; resetAfterMs: number };
  readyTimeoutMs: number;
  probeIntervalMs: number;
  stopGraceMs: number;
}

class ServiceSupervisor implements Supervisor {
  readonly #services: readonly ServicePlan[];
  readonly #dependencies: SupervisorDependencies;
  readonly #settings: SupervisorSettings;
  readonly #slots = new Map<ServiceName, Slot>();
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(services: readonly ServicePlan[], dependencies: SupervisorDependencies) {
    this.#services = services;
    this.#dependencies = dependencies;
    this.#settings = {
      now: dependencies.now ?? (() => new Date()),
      backoff: dependencies.backoff ?? { initialMs: 250, maxMs: 30_000, resetAfterMs: 60_000 },
      readyTimeoutMs: dependencies.readyTimeoutMs ?? 30_000,
      probeIntervalMs: dependencies.probeIntervalMs ?? 10,
      stopGraceMs: dependencies.stopGraceMs ?? 10_000,
    };
    // It was a closure before it was a class: its methods may be passed around detached.
    this.start = this.start.bind(this);
    this.stop = this.stop.bind(this);
    this.states = this.states.bind(this);
    this.reload = this.reload.bind(this);
  }

  #changed(): void {
    this.#dependencies.onChange?.([...this.#slots.values()].map((slot) => slot.state));
  }

  /** Polls the probe until it answers, the child exits, the deadline passes or the signal fires. */
  async #waitReady(slot: Slot, child: Child, signal?: AbortSignal): Promise<{ ready: true } | { ready: false; exit?: ChildExit; reason: string }> {
    let exit: ChildExit | undefined;
    void child.exited.then((value) => {
      exit = value;
    });
    const { readyTimeoutMs, probeIntervalMs } = this.#settings;
    const deadline = Date.now() + readyTimeoutMs;
    // Probes start fast and slow down (x1.5 up to 10x the first interval): a service that takes seconds to load on a
    // busy machine is not asked hundreds of times, which cost the supervisor more CPU than its own start.
    let interval = probeIntervalMs;
    // Bounded: by the deadline (plus one probe's own timeout).
    while (Date.now() < deadline) {
      if (exit !== undefined) return { ready: false, exit, reason: describeExit(exit) };
      if (this.#stopping || signal?.aborted === true) return { ready: false, reason: "stopped" };
      if (await this.#dependencies.probe(slot.plan)) return exit === undefined ? { ready: true } : { ready: false, exit, reason: describeExit(exit) };
      await sleep(interval);
      interval = Math.min(interval * 1.5, probeIntervalMs * 10);
    }
    return { ready: false, reason: `not ready within ${readyTimeoutMs / 1000} s` };
  }

  #launch(plan: ServicePlan): Child {
    const child = this.#dependencies.spawn(plan);
    this.#dependencies.log("info", { event: "service-spawn", service: plan.name, pid: child.pid }, `${plan.name} started (pid ${child.pid})`);
    return child;
  }

  #watch(slot: Slot, child: Child): void {
    void child.exited.then((exit) => {
      // Whatever the child left in its group goes with it (a wedged helper would hold ports or files).
      child.signal("SIGKILL");
      if (this.#stopping || slot.child !== child || !slot.state.ready) return;
      this.#onCrash(slot, child, exit);
    });
  }

  #onCrash(slot: Slot, child: Child, exit: ChildExit): void {
    const { backoff, now } = this.#settings;
    const ranMs = now().getTime() - Date.parse(slot.state.startedAt);
    if (ranMs >= backoff.resetAfterMs) slot.crashes = 0;
    const delayMs = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(slot.crashes, 16));
    slot.crashes += 1;
    slot.state.ready = false;
    this.#changed();
    const { log, record } = this.#dependencies;
    log("error", { event: "service-exit", service: slot.plan.name, pid: child.pid, code: exit.code, signal: exit.signal, reason: exit.reason, restartInMs: delayMs }, `${slot.plan.name} (pid ${child.pid}) ${describeExit(exit)}; restarting in ${delayMs} ms`);
    try {
      record({ type: "service-exit", service: slot.plan.name, pid: child.pid, exitCode: exit.code, signal: exit.signal, ...(exit.reason === undefined ? {} : { reason: exit.reason }), restartInMs: delayMs });
    } catch (error) {
      // The restart goes ahead: a perimeter service refuses whatever it cannot record itself, so availability here
      // does not open anything; the failure is loud in the log.
      log("error", { event: "audit-write-failed", service: slot.plan.name, error: (error as Error).message }, "could not record the service's exit in the audit log");
    }
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      void this.#restart(slot, child, exit);
    }, delayMs);
  }

  async #restart(slot: Slot, previous: Child, exit: ChildExit): Promise<void> {
    if (this.#stopping) return;
    const child = this.#launch(slot.plan);
    slot.child = child;
    slot.state.pid = child.pid;
    slot.state.startedAt = this.#settings.now().toISOString();
    this.#changed();
    this.#watch(slot, child);
    const outcome = await this.#waitReady(slot, child);
    if (this.#stopping || slot.child !== child) return;
    if (!outcome.ready) {
      this.#dependencies.log("error", { event: "service-restart-failed", service: slot.plan.name, pid: child.pid, reason: outcome.reason }, `${slot.plan.name} did not come back: ${outcome.reason}`);
      slot.state.ready = true;
      // Alive but never healthy: stop it, and its exit schedules the next attempt with a longer delay.
      if (outcome.exit === undefined) child.signal("SIGKILL");
      else this.#onCrash(slot, child, outcome.exit);
      return;
    }
    this.#recordRestart(slot, child, previous, exit);
  }

  #recordRestart(slot: Slot, child: Child, previous: Child, exit: ChildExit): void {
    slot.state.ready = true;
    slot.state.restarts += 1;
    const time = this.#settings.now().toISOString();
    let seq: number | undefined;
    try {
      seq = this.#dependencies.record({ type: "service-restart", service: slot.plan.name, pid: child.pid, previousPid: previous.pid, exitCode: exit.code, signal: exit.signal, restarts: slot.state.restarts });
    } catch (error) {
      this.#dependencies.log("error", { event: "audit-write-failed", service: slot.plan.name, error: (error as Error).message }, "could not record the restart in the audit log");
    }
    slot.state.lastRestart = { time, previousPid: previous.pid, exitCode: exit.code, signal: exit.signal, ...(seq === undefined ? {} : { seq }) };
    this.#changed();
    this.#dependencies.log("info", { event: "service-restart", service: slot.plan.name, pid: child.pid, restarts: slot.state.restarts }, `${slot.plan.name} restarted (pid ${child.pid})`);
  }

  async start(signal?: AbortSignal): Promise<void> {
    const startedAt = this.#settings.now().toISOString();
    for (const plan of this.#services) {
      const child = this.#launch(plan);
      const slot: Slot = { plan, child, crashes: 0, state: { name: plan.name, pid: child.pid, startedAt, restarts: 0, ready: false } };
      this.#slots.set(plan.name, slot);
      this.#watch(slot, child);
    }
    this.#changed();
    const outcomes = await Promise.all([...this.#slots.values()].map(async (slot) => ({ slot, outcome: await this.#waitReady(slot, slot.child, signal) })));
    const failed = outcomes.find(({ outcome }) => !outcome.ready);
    if (failed !== undefined && !failed.outcome.ready) {
      await this.stop();
      const { slot, outcome } = failed;
      throw new ServiceStartError(slot.plan.name, outcome.exit, `${slot.plan.name} did not start: ${outcome.reason}`);
    }
    for (const { slot } of outcomes) slot.state.ready = true;
    this.#changed();
  }

  stop(): Promise<void> {
    this.#stopping = true;
    this.#stopped ??= (async () => {
      for (const slot of this.#slots.values()) if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
      await Promise.all([...this.#slots.values()].map((slot) => stopChild(slot.child, this.#settings.stopGraceMs)));
      for (const slot of this.#slots.values()) slot.state.ready = false;
      this.#changed();
    })();
    return this.#stopped;
  }

  states(): readonly ServiceState[] {
    return [...this.#slots.values()].map((slot) => slot.state);
  }

  reload(): void {
    for (const slot of this.#slots.values()) slot.child.reload();
  }
}

export function createSupervisor(services: readonly ServicePlan[], dependencies: SupervisorDependencies): Supervisor {
  return new ServiceSupervisor(services, dependencies);
}
