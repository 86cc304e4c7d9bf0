// The mechanism under the supervisor: a service as a child process (`perimeter serve NAME`) in a process group of
// its own (--process-per-service), the serve commands for services in up's own process (in-process.ts), and the
// readiness probe against a service's /healthz.
import { spawn } from "node:child_process";
import http from "node:http";
import { fileURLToPath } from "node:url";
import type { Command } from "../cli/index.ts";
import type { Child, ChildExit } from "./supervisor.ts";
import type { ServicePlan } from "./plan.ts";

const BIN = fileURLToPath(new URL("../../bin/perimeter.js", import.meta.url));
const PARENT_WATCH = new URL("./parent-watch.ts", import.meta.url).href;

export interface SpawnOptions {
  readonly cwd: string;
  /** The environment of this service's child: the caller has already removed other services' secrets. */
  readonly environment: (service: ServicePlan) => Record<string, string>;
}

export function spawnService(plan: ServicePlan, options: SpawnOptions): Child {
  const child = spawn(process.execPath, ["--import", PARENT_WATCH, BIN, "serve", plan.name, ...plan.args], {
    cwd: options.cwd,
    env: options.environment(plan),
    // Its own process group (and session), so that stopping it reaches whatever it started, and a Ctrl-C at the
    // terminal reaches only the supervisor, which then stops the services in order. Its stdout ("listening ...")
    // joins the logs on stderr: up's stdout is the endpoints table.
    detached: true,
    stdio: ["pipe", 2, 2],
  });
  const exited = new Promise<ChildExit>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", () => resolve({ code: 127, signal: null }));
  });
  // A write end the child waits on (parent-watch.ts); errors here mean the child is gone, which `exited` reports.
  child.stdin?.on("error", () => undefined);
  const pid = child.pid ?? -1;
  return {
    pid,
    exited,
    signal(signal) {
      if (pid <= 0) return;
      try {
        process.kill(-pid, signal);
      } catch {
        // ESRCH: the group is empty already.
      }
    },
    reload() {
      if (pid <= 0) return;
      try {
        process.kill(pid, "SIGHUP");
      } catch {
        // gone: the supervisor restarts it, reading the new file
      }
    },
  };
}

type Loader = () => Promise<Command>;

// The same commands `perimeter serve NAME` runs (src/cli/main.ts dispatches to them the same way).
const SERVE_COMMANDS: Record<ServicePlan["name"], Loader> = {
  "egress-proxy": async () => (await import("../egress-proxy/cli.ts")).serveEgressProxy,
  "llm-proxy": async () => (await import("../llm-proxy/index.ts")).serveLlmProxy,
  sandbox: async () => (await import("../sandbox/cli.ts")).serveSandbox,
  "mcp-guard": async () => (await import("../mcp-guard/cli.ts")).serveMcpGuard,
  dashboard: async () => (await import("../dashboard/cli.ts")).serveDashboard,
};

/** Loads every service's command, so that starting them in one process does not wait for imports one by one. */
export async function loadServeCommands(names: readonly ServicePlan["name"][]): Promise<Map<ServicePlan["name"], Command>> {
  return new Map(await Promise.all(names.map(async (name) => [name, await SERVE_COMMANDS[name]()] as const)));
}

/** GET url with a short timeout; the status code and body, or undefined when nothing answered. */
export function fetchHealth(url: string, timeoutMs = 1000): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const request = http.get(url, { timeout: timeoutMs, agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        if (body.length < 65_536) body += chunk;
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      response.on("error", () => resolve(undefined));
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(undefined));
  });
}

/**
 * Ready: /healthz answers 200, and for mcp-guard every upstream this `up` started itself (the sandbox runner) is
 * connected, so an agent's first tools/list already sees its tools. External upstreams are not waited for.
 */
export async function probeService(plan: ServicePlan): Promise<boolean> {
  const answer = await fetchHealth(plan.healthUrl);
  if (answer?.status !== 200) return false;
  if (plan.localUpstreams.length === 0) return true;
  try {
    const upstreams = (JSON.parse(answer.body) as { upstreams?: Record<string, string> }).upstreams ?? {};
    return plan.localUpstreams.every((name) => upstreams[name] === "ready");
  } catch {
    return false;
  }
}
