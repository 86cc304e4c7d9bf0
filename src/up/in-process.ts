// Services inside the supervisor's own process (the default of `perimeter up`): each runs the same command
// `perimeter serve NAME` runs, with its own environment, abort signal and reload listeners, inside an async context
// that names it. An exception nobody caught, or a rejection nobody handled, is charged to the service whose code
// raised it (AsyncLocalStorage follows every callback, timer and socket event back to the service that set it up):
// that service alone is stopped and reported as exited, and the supervisor restarts it with backoff as it would a
// crashed process, while the others keep serving. An exception no service owns (up's own code) is handed to
// onFatal: up then stops everything, as Node itself would end the process.
import { AsyncLocalStorage } from "node:async_hooks";
import type { Command, CommandIo } from "../cli/index.ts";
import type { SpawnOptions } from "./children.ts";
import type { ServicePlan } from "./plan.ts";
import type { Child, ChildExit } from "./supervisor.ts";

interface Instance {
  readonly service: ServicePlan["name"];
  /** Charges an uncaught error to this instance. */
  crash(error: unknown, kind: string): void;
}

export interface InProcessHost {
  /** Starts one service's command in this process; "killing" it aborts it (SIGTERM) or also abandons it (SIGKILL). */
  spawn(plan: ServicePlan, command: Command, options: SpawnOptions): Child;
  /** Removes the process-wide handlers (after every service has stopped). */
  close(): void;
}

export interface InProcessHostDependencies {
  readonly log: (level: "warn" | "error", fields: Record<string, unknown>, message: string) => void;
  /** An uncaught error that no service owns: perimeter up has to stop. Called at most once. */
  readonly onFatal: (error: unknown, reason: string) => void;
  /** How long a crashed service may take to close its listeners before it is reported gone anyway. */
  readonly crashGraceMs?: number;
}

/** A short description for the audit log and status: the kind and the class, never the message (it may quote input). */
export function describeCrash(error: unknown, kind: string): string {
  const name = error instanceof Error ? error.name : typeof error;
  return `${kind} (${name})`;
}

export function createInProcessHost(dependencies: InProcessHostDependencies): InProcessHost {
  const storage = new AsyncLocalStorage<Instance>();
  const crashGraceMs = dependencies.crashGraceMs ?? 5000;
  let fatal = false;

  const route = (error: unknown, kind: string) => {
    const owner = storage.getStore();
    if (owner !== undefined) {
      owner.crash(error, kind);
      return;
    }
    if (fatal) return;
    fatal = true;
    dependencies.log("error", { event: "perimeter-crash", kind, stack: error instanceof Error ? error.stack : String(error) }, `${kind} outside every service; stopping every service`);
    dependencies.onFatal(error, describeCrash(error, `${kind} outside every service`));
  };
  const onException = (error: Error) => route(error, "uncaught exception");
  const onRejection = (reason: unknown) => route(reason, "unhandled rejection");
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);

  return {
    spawn(plan, command, options) {
      const controller = new AbortController();
      const reloadListeners: Array<() => void> = [];
      let resolveExit: (exit: ChildExit) => void = () => undefined;
      let ended = false;
      const exited = new Promise<ChildExit>((resolve) => (resolveExit = resolve));
      const end = (exit: ChildExit) => {
        if (ended) return;
        ended = true;
        resolveExit(exit);
      };
      let crashed: ChildExit | undefined;
      const instance: Instance = {
        service: plan.name,
        crash(error, kind) {
          if (ended || crashed !== undefined) {
            // Late errors from an instance that is already going away: nothing more to stop.
            dependencies.log("warn", { event: "service-crash-after-stop", service: plan.name, kind, stack: error instanceof Error ? error.stack : String(error) }, `${plan.name}: ${kind} while it was stopping`);
            return;
          }
          crashed = { code: 1, signal: null, reason: describeCrash(error, kind) };
          dependencies.log("error", { event: "service-crash", service: plan.name, kind, stack: error instanceof Error ? error.stack : String(error) }, `${plan.name}: ${kind}; stopping it`);
          controller.abort(new Error(`${plan.name} crashed`));
          // It closes its listeners and its audit log on abort; one that cannot is abandoned (its port may stay
          // taken, and the restart then fails and is retried with a longer delay).
          setTimeout(() => end(crashed as ChildExit), crashGraceMs).unref();
        },
      };
      const io: CommandIo = {
        stdout: process.stderr,
        stderr: process.stderr,
        stdin: process.stdin,
        env: options.environment(plan),
        cwd: options.cwd,
        signal: controller.signal,
        onReload: (listener) => reloadListeners.push(listener),
      };
      void storage.run(instance, async () => {
        try {
          const code = await command([...plan.args], io);
          end(crashed ?? { code, signal: null });
        } catch (error) {
          // As src/cli/main.ts maps them: a problem with the config or the host is 2, anything else 3.
          const expected = ["UsageError", "ConfigError", "MissingSecretError"].includes((error as Error).name);
          process.stderr.write(`perimeter: serve ${plan.name}: ${expected ? (error as Error).message : ((error as Error).stack ?? String(error))}\n`);
          end(crashed ?? { code: expected ? 2 : 3, signal: null });
        }
      });
      return {
        pid: process.pid,
        exited,
        signal(signal) {
          controller.abort(new Error(`${plan.name} stopped by perimeter up`));
          // SIGKILL cannot stop code in this process: the instance is abandoned and counts as gone.
          if (signal === "SIGKILL") end(crashed ?? { code: null, signal });
        },
        reload() {
          if (ended || controller.signal.aborted) return;
          // In the service's context, so that a reload that throws is charged to it.
          storage.run(instance, () => {
            for (const listener of reloadListeners) listener();
          });
        },
      };
    },
    close() {
      process.off("uncaughtException", onException);
      process.off("unhandledRejection", onRejection);
    },
  };
}
