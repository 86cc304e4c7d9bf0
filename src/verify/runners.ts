// Where the probe program runs: the agent's own vantage point on each target. Building the command is a pure
// function per target (tested for Compose and Kubernetes without their engines); running it is one spawn with a
// deadline. A vantage never sees a secret the agent does not already hold: it runs as the agent, with the agent's
// environment, and the probe reports names and outcomes only.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import { PROBE_PROGRAM, parseProbeOutput } from "./probe.ts";
import type { ProbeAnswers, ProbeSpec } from "./probe.ts";

export interface CommandLine {
  readonly file: string;
  readonly args: readonly string[];
  /** The environment of the command; undefined: the operator's own. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface Vantage {
  /** Said in the report's first line, e.g. "inside pod hermes-system/deploy/hermes-gateway (kubectl exec)". */
  readonly description: string;
  /** What this vantage cannot show (e.g. systemd not running): printed as notes. */
  readonly notes: readonly string[];
  probeCommand(spec: ProbeSpec): CommandLine;
}

/**
 * The probe as one short `python3 -c` argument: compressed, so that `kubectl exec` (whose command travels in the
 * exec request's URL) and `docker compose exec` carry about 4 KiB instead of 11.
 */
export const PROBE_LOADER = `import base64,zlib;exec(compile(zlib.decompress(base64.b64decode("${deflateSync(PROBE_PROGRAM, { level: 9 }).toString("base64")}")),"perimeter-probe","exec"))`;

function pythonArgs(python: string, spec: ProbeSpec): string[] {
  return [python, "-c", PROBE_LOADER, JSON.stringify(spec)];
}

export interface KubernetesVantageOptions {
  /** kubectl's own flags the operator passed (e.g. --kubeconfig, --context), before the subcommand. */
  readonly kubectlFlags: readonly string[];
  readonly namespace: string;
  /** deploy/hermes-gateway */
  readonly workload: string;
  readonly container: string;
}

/** `kubectl exec` into the agent's pod with python3, as seed 003's Step 9 does by hand. */
export function kubernetesVantage(options: KubernetesVantageOptions): Vantage {
  return {
    description: `inside ${options.namespace}/${options.workload} container ${options.container} (kubectl exec, python3)`,
    notes: [],
    probeCommand: (spec) => ({
      file: "kubectl",
      args: [...options.kubectlFlags, "--namespace", options.namespace, "exec", options.workload, "--container", options.container, "--", ...pythonArgs("python3", spec)],
    }),
  };
}

export interface ComposeVantageOptions {
  readonly composeFile: string;
  readonly project?: string;
  readonly service: string;
}

/** `docker compose exec -T` in the agent's container (no TTY: the output is parsed). */
export function composeVantage(options: ComposeVantageOptions): Vantage {
  return {
    description: `inside compose service ${options.service} (docker compose exec, python3)`,
    notes: [],
    probeCommand: (spec) => ({
      file: "docker",
      args: ["compose", "--file", options.composeFile, ...(options.project === undefined ? [] : ["--project-name", options.project]), "exec", "-T", options.service, ...pythonArgs("python3", spec)],
    }),
  };
}

export interface ProcessIdentity {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  readonly environment: Readonly<Record<string, string>>;
}

/** The identity and environment of a running process, from /proc (root reads any process's). */
export function processIdentity(pid: number, procRoot = "/proc"): ProcessIdentity {
  const status = readFileSync(`${procRoot}/${pid}/status`, "utf8");
  const uid = Number(/^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1]);
  const gid = Number(/^Gid:\s+\d+\s+(\d+)/m.exec(status)?.[1]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`cannot read the uid and gid of process ${pid}`);
  const environment: Record<string, string> = {};
  for (const entry of readFileSync(`${procRoot}/${pid}/environ`).toString("utf8").split("\0")) {
    const equals = entry.indexOf("=");
    if (equals > 0) environment[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  return { pid, uid, gid, environment };
}

/**
 * The agent's own process on this host (`--agent-pid`): the probe joins its network and mount namespaces and runs
 * with its effective uid and gid and its environment — what a command the agent ran would see.
 */
export function agentProcessVantage(agent: ProcessIdentity, python = "python3"): Vantage {
  return {
    description: `in the network and mount namespaces of the agent's process ${agent.pid} as uid ${agent.uid} with its environment (nsenter)`,
    notes: [],
    probeCommand: (spec) => ({
      file: "nsenter",
      args: [`--target=${agent.pid}`, "--net", "--mount", "--", "setpriv", `--reuid=${agent.uid}`, `--regid=${agent.gid}`, "--clear-groups", "--", ...pythonArgs(python, spec)],
      env: agent.environment,
    }),
  };
}

export interface UnitVantageOptions {
  readonly unit: string;
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  /** [key, value] of the unit's [Service] section. */
  readonly properties: ReadonlyArray<readonly [string, string]>;
  /** The environment the unit gives its process (Environment= and EnvironmentFile=). */
  readonly environment: Readonly<Record<string, string>>;
  /** Whether systemd is PID 1 here (then systemd-run can apply the unit's own properties). */
  readonly systemd: boolean;
}

/** Properties of the agent's unit that shape what its processes can reach or see; systemd-run applies each. */
const CONFINING_PROPERTIES = new Set([
  "User",
  "Group",
  "IPAddressDeny",
  "IPAddressAllow",
  "RestrictAddressFamilies",
  "PrivateNetwork",
  "PrivateTmp",
  "PrivateDevices",
  "ProtectSystem",
  "ProtectHome",
  "NoNewPrivileges",
  "CapabilityBoundingSet",
  "ReadWritePaths",
  "BindReadOnlyPaths",
  "BindPaths",
  "EnvironmentFile",
  "Environment",
  "SupplementaryGroups",
]);

/**
 * The VPS agent's unit. With systemd as PID 1: `systemd-run` with the unit's confining properties (IPAddressDeny,
 * User, ProtectSystem...), so the probe meets the same kernel filters as Hermes. Without it (a container, this
 * build machine): the probe runs as the agent's uid in the host's network namespace, which exercises the firewall's
 * uid wall but not IPAddressDeny — said in a note, and IPAddressDeny is then read from the unit file.
 */
export function unitVantage(options: UnitVantageOptions, python = "python3"): Vantage {
  if (options.systemd) {
    const properties = options.properties.filter(([key]) => CONFINING_PROPERTIES.has(key)).flatMap(([key, value]) => ["--property", `${key}=${value}`]);
    return {
      description: `in a transient unit with the confining properties of ${options.unit} (systemd-run)`,
      notes: [],
      probeCommand: (spec) => ({ file: "systemd-run", args: ["--wait", "--pipe", "--quiet", "--collect", ...properties, "--", ...pythonArgs(python, spec)] }),
    };
  }
  return {
    description: `as the agent's user ${options.user} (uid ${options.uid}) on this host's network, with its unit's environment (setpriv)`,
    notes: [`systemd is not PID 1 here: ${options.unit}'s IPAddressDeny/IPAddressAllow were read from its unit file, not exercised; the probe meets the firewall's uid rule only`],
    probeCommand: (spec) => ({
      file: "setpriv",
      args: [`--reuid=${options.uid}`, `--regid=${options.gid}`, "--clear-groups", "--", ...pythonArgs(python, spec)],
      env: { PATH: "/usr/local/bin:/usr/bin:/bin", ...options.environment },
    }),
  };
}

/** The operator's own side (no agent process given): used only for the MCP checks, with the agent's token. */
export function operatorVantage(environment: Readonly<Record<string, string>>, python = "python3"): Vantage {
  return {
    description: "on this host as the operator, with the agent's token (no --agent-pid)",
    notes: [],
    probeCommand: (spec) => ({ file: python, args: pythonArgs(python, spec).slice(1), env: environment }),
  };
}

export type ProbeRun = { readonly ok: true; readonly answers: ProbeAnswers; readonly uid: number } | { readonly ok: false; readonly error: string };

/** Runs the probe program through a vantage; never throws (a failed run is an answer the checks report). */
export function runProbe(vantage: Vantage, spec: ProbeSpec, deadlineMs: number): Promise<ProbeRun> {
  const command = vantage.probeCommand(spec);
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(command.file, command.args, { env: command.env === undefined ? process.env : { ...command.env }, stdio: ["ignore", "pipe", "pipe"] });
    } catch (error) {
      resolve({ ok: false, error: `${command.file} could not start: ${(error as Error).message}` });
      return;
    }
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), deadlineMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ ok: false, error: `${command.file} could not start: ${error.message}` });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      try {
        const parsed = parseProbeOutput(stdout);
        resolve({ ok: true, answers: parsed.answers, uid: parsed.uid });
      } catch (error) {
        const why = signal === "SIGKILL" ? `no answer within ${deadlineMs} ms` : `exit ${code ?? signal}: ${(error as Error).message}`;
        resolve({ ok: false, error: `${command.file} ${why}${stderr.trim() === "" ? "" : ` (${stderr.trim().slice(0, 300)})`}` });
      }
    });
  });
}
