// Checks `perimeter up` makes before it starts anything: every port free, the host able to run each service, no
// other `up` of the same perimeter running. Each problem says how to fix it; all are reported at once.
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { ListenNeed, ServicePlan } from "./plan.ts";
import { findExecutable } from "../shared/index.ts";

/** Binds each address for a moment: EADDRINUSE now is the error a child would die of after the others started. */
export async function portProblems(services: readonly ServicePlan[]): Promise<string[]> {
  const problems: string[] = [];
  for (const service of services) {
    for (const need of service.listens) {
      const problem = await bindProblem(need);
      if (problem !== undefined) problems.push(`${service.name}: ${problem}`);
    }
  }
  return problems;
}

function bindProblem(need: ListenNeed): Promise<string | undefined> {
  const shown = need.host.includes(":") ? `[${need.host}]:${need.port}` : `${need.host}:${need.port}`;
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") {
        resolve(`${shown} (${need.key}) is in use by another process: stop it (ss -ltnp 'sport = :${need.port}' shows which) or choose another port in ${need.key}`);
      } else if (error.code === "EADDRNOTAVAIL") {
        resolve(`${shown} (${need.key}): ${need.host} is not an address of this host; use 127.0.0.1 (or an address ip -brief address lists)`);
      } else if (error.code === "EACCES") {
        resolve(`${shown} (${need.key}): not allowed to listen on port ${need.port} (ports below 1024 need privileges); choose a port above 1024`);
      } else {
        resolve(`${shown} (${need.key}): cannot listen (${error.code ?? error.message})`);
      }
    });
    // exclusive: a port another process shares through cluster would otherwise look free.
    server.listen({ host: need.host, port: need.port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

export interface HostFacts {
  /** PATH to search for bwrap and prlimit. */
  readonly searchPath: string;
  /** Where /proc is; tests point it at a copy. @default "/proc" */
  readonly procRoot?: string;
  readonly uid: number;
}


function readNumber(path: string): number | undefined {
  try {
    const value = Number(readFileSync(path, "utf8").trim());
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What this host lacks to run the sandbox runner with bubblewrap. The runner's own start-up self-test is the final
 * word (it runs /bin/true in a sandbox); these checks only name the usual causes before anything starts.
 */
export function sandboxHostProblems(facts: HostFacts): string[] {
  const proc = facts.procRoot ?? "/proc";
  const problems: string[] = [];
  if (findExecutable("bwrap", facts.searchPath) === undefined) {
    problems.push("sandbox: bubblewrap (bwrap) is not installed or not on PATH: apt-get install bubblewrap (0.8.0 or newer)");
  }
  if (findExecutable("prlimit", facts.searchPath) === undefined) {
    problems.push("sandbox: prlimit is not installed (it sets the sandbox's resource limits): apt-get install util-linux");
  }
  const maxNamespaces = readNumber(join(proc, "sys/user/max_user_namespaces"));
  if (maxNamespaces === 0) {
    problems.push("sandbox: user namespaces are disabled (user.max_user_namespaces = 0): sysctl -w user.max_user_namespaces=15000 (and set it in /etc/sysctl.d/ to keep it)");
  }
  if (facts.uid !== 0) {
    if (readNumber(join(proc, "sys/kernel/unprivileged_userns_clone")) === 0) {
      problems.push("sandbox: unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0): sysctl -w kernel.unprivileged_userns_clone=1, or run perimeter up as root");
    }
    if (readNumber(join(proc, "sys/kernel/apparmor_restrict_unprivileged_userns")) === 1) {
      problems.push("sandbox: AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1, Ubuntu 24.04): allow bwrap with an AppArmor profile (see docs/sandbox.md), or run perimeter up as root");
    }
  }
  return problems;
}

/** Whether a process with this id exists (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
