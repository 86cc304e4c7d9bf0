// `perimeter render -t vps`: seed 004 on one Debian/Ubuntu host, with Perimeter in front of the agent. Every service
// listens on loopback only and runs under a hardened systemd unit; the agent's unit can reach nothing but loopback,
// so its only ways out are the proxies. The render is a directory: `files/` mirrors the host's paths, and
// `manifest.json` tells `perimeter host apply` what to install, with which owner and mode, and how to check it first.
import type { HostConfig, PerimeterConfig } from "../../config/index.ts";
import type { Endpoints } from "../endpoints.ts";
import { hermesAgentFiles } from "../hermes.ts";
import type { EnvironmentEntry, HermesAgentFiles } from "../hermes.ts";
import { dashboardPort } from "../dashboard.ts";
import {
  AGENT_WORKLOAD,
  DASHBOARD,
  EGRESS_PROXY,
  LLM_PATH,
  LLM_PROXY,
  MCP_GUARD,
  MCP_PATH,
  RenderError,
  refuseSandboxImage,
  RUNTIME_CONFIG_PATH,
  SANDBOX_METRICS_PORT,
  SANDBOX_RUNNER,
  DEFAULT_SIGNING_KEY,
  STATE_DIRECTORY,
  builtinServer,
  deployedMcpServers,
  egressMetricsPort,
  mcpGuardNeedsInternet,
  portOf,
  sandboxAllowlist,
  sandboxServerName,
  secretPlan,
  servedModels,
} from "../plan.ts";
import type { PerimeterService, SecretSpec } from "../plan.ts";
import { runtimeConfig } from "../runtime-config.ts";
import { toYaml } from "../yaml.ts";
import { FIREWALL_TABLE, agentLoopbackPorts, nftablesRuleset } from "./firewall.ts";
import { AUTO_UPGRADES, FAIL2BAN_JAIL, JOURNALD_DROP_IN, SSHD_DROP_IN, UNATTENDED_UPGRADES, autoUpgrades, fail2banJail, journaldLimits, sshdDropIn, unattendedUpgrades } from "./ssh.ts";
import { hardening, unitText } from "./units.ts";
import type { Unit, UnitEntry } from "./units.ts";

export const UNIT_DIRECTORY = "/etc/systemd/system";
export const ENV_DIRECTORY = "/etc/perimeter/env";
export const NFTABLES_PATH = "/etc/perimeter/nftables.nft";
/** The .env Hermes sees, bind-mounted read-only over <data>/.env in its unit (see agentUnits). */
export const HERMES_ENV_SOURCE = "/etc/perimeter/hermes.env";
export const HERMES_CONFIG_NAME = "config.yaml";
export const AGENT_UNIT = `${AGENT_WORKLOAD}.service`;
export const FIREWALL_UNIT = "perimeter-firewall.service";

/** How apply checks a file before installing it. */
export type Validator = "sshd" | "nft" | "fail2ban" | "systemd-unit" | "sysusers";

export interface ManifestFile {
  /** Absolute path on the host. */
  readonly path: string;
  /** Path inside the render directory. */
  readonly source: string;
  readonly mode: string;
  readonly owner: string;
  readonly group: string;
  readonly validate?: Validator;
  /** Installed only when absent: the operator's later edits (secrets, the agent's own config) are kept. */
  readonly seed?: boolean;
}

export interface Manifest {
  readonly version: 1;
  readonly perimeter: string;
  readonly files: readonly ManifestFile[];
  /** systemd-sysusers / systemd-tmpfiles snippets apply runs after installing the files. */
  readonly sysusers: string;
  readonly tmpfiles: string;
  /** Units to enable and (re)start, in order. */
  readonly units: readonly string[];
  readonly agent: { readonly user: string; readonly uid: number };
  readonly ssh: { readonly port: number; readonly adminUsers: readonly string[]; readonly adminCidrs: readonly string[]; readonly tailscale: boolean; readonly allowPublic: boolean };
  /** Variables each env file must hold before the services can start. */
  readonly envFiles: ReadonlyArray<{ readonly path: string; readonly keys: readonly string[]; readonly purpose: string }>;
}

export interface VpsFile {
  readonly path: string;
  readonly content: string;
  readonly mode?: number;
}

export interface VpsRender {
  readonly files: readonly VpsFile[];
  readonly manifest: Manifest;
  readonly units: readonly Unit[];
  readonly warnings: readonly string[];
}

const SERVICE_UNITS: Record<PerimeterService, string> = {
  "egress-proxy": `perimeter-${EGRESS_PROXY}`,
  "llm-proxy": `perimeter-${LLM_PROXY}`,
  "mcp-guard": `perimeter-${MCP_GUARD}`,
  sandbox: "perimeter-sandbox",
  dashboard: "perimeter-dashboard",
};

function hostOf(config: PerimeterConfig): HostConfig {
  if (config.host === undefined) {
    throw new RenderError(
      "the vps target needs a host: section: at least host.ssh.adminUsers and an admin access path (host.ssh.adminCidrs or host.ssh.tailscale: true), e.g. host: { ssh: { adminUsers: [admin], adminCidrs: [203.0.113.7/32] } } (see examples/vps.yaml)",
    );
  }
  return config.host;
}

function local(port: number): string {
  return `127.0.0.1:${port}`;
}

/** Every component on this host's loopback; components the VPS target does not deploy are refused by name. */
export function vpsEndpoints(config: PerimeterConfig): Endpoints {
  const unsupported = (what: string): never => {
    throw new RenderError(`internal: ${what} is not deployed on the vps target`);
  };
  return {
    target: "vps",
    mcpGuardHost: "127.0.0.1",
    mcpGuardUrl: `http://${local(portOf(config.mcp.listen))}${MCP_PATH}`,
    llmProxyHost: "127.0.0.1",
    llmProxyUrl: `http://${local(portOf(config.llm.listen))}${LLM_PATH}`,
    egressProxyUrl: `http://${local(portOf(config.egress.listen))}`,
    // The bubblewrap backend runs the sandbox's egress proxy inside the runner (one per task), so there is no second one.
    sandboxEgressProxyUrl: `http://${local(portOf(config.egress.listen))}`,
    sandboxRunnerUrl: `http://${local(portOf(config.sandbox.listen))}${MCP_PATH}`,
    kubernetesMcpUrl: "",
    mcpServerOrigin: () => unsupported("an MCP server image"),
    servedModelUrl: () => unsupported("a served model"),
    serviceOrigin: (_component, port) => `http://${local(port)}`,
  };
}

function refuseUnsupported(config: PerimeterConfig): void {
  refuseSandboxImage(config, "vps");
  if (builtinServer(config, "kubernetes-readonly") !== undefined) {
    throw new RenderError("the builtin kubernetes-readonly server runs from its image, which the vps target does not deploy: render for kubernetes or compose, or run kubernetes-mcp-server yourself on 127.0.0.1 and declare it with url");
  }
  for (const server of deployedMcpServers(config)) {
    throw new RenderError(`mcp.servers.${server.server}: the vps target does not run MCP servers from images: run it yourself on 127.0.0.1 (e.g. a systemd unit) and remove image, keeping url`);
  }
  for (const model of servedModels(config)) {
    throw new RenderError(`llm.providers.${model.provider}.serve: the vps target does not run model servers: run ${model.engine} yourself on 127.0.0.1 and point baseUrl at it (allowPrivateAddress: true)`);
  }
  const ports = new Map<number, string>();
  const claim = (port: number, owner: string) => {
    const other = ports.get(port);
    if (other !== undefined) throw new RenderError(`${owner} and ${other} both use port ${port} on this host's loopback: give one of them another port`);
    ports.set(port, owner);
  };
  claim(portOf(config.egress.listen), "egress.listen");
  claim(portOf(config.llm.listen), "llm.listen");
  claim(portOf(config.mcp.listen), "mcp.listen");
  claim(portOf(config.mcp.admin.listen), "mcp.admin.listen");
  if (sandboxServerName(config) !== undefined) {
    claim(portOf(config.sandbox.listen), "sandbox.listen");
    claim(SANDBOX_METRICS_PORT, "the sandbox runner's metrics listener (its audit feed)");
  }
  claim(egressMetricsPort(config), config.egress.metrics === undefined ? "egress-proxy's metrics listener (its audit feed; set egress.metrics to move it)" : "egress.metrics");
  claim(dashboardPort(config), "dashboard.listen");
  if (config.agent.apiServer.enabled) claim(config.agent.apiServer.port, "agent.apiServer.port");
  if (config.agent.dashboard.enabled) claim(config.agent.dashboard.port, "agent.dashboard.port");
}

/** The services' perimeter.yaml: the shared runtime config with every listener on loopback and state under one directory. */
function vpsRuntimeConfig(config: PerimeterConfig, endpoints: Endpoints, warnings: string[]): Record<string, unknown> {
  const runtime = runtimeConfig(config, endpoints) as unknown as PerimeterConfig;
  runtime.llm.listen = local(portOf(config.llm.listen));
  runtime.mcp.listen = local(portOf(config.mcp.listen));
  runtime.mcp.admin.listen = local(portOf(config.mcp.admin.listen));
  runtime.sandbox.listen = local(portOf(config.sandbox.listen));
  runtime.egress.listen = local(portOf(config.egress.listen));
  runtime.egress.metrics = local(egressMetricsPort(config));
  // Each unit sees its own state directory at /var/lib/perimeter (BindPaths), and nothing else is writable there.
  const inState = (path: string, field: string): string => {
    const placed = `${STATE_DIRECTORY}/${path.slice(path.lastIndexOf("/") + 1)}`;
    if (placed !== path) warnings.push(`${field} ${path} is written as ${placed}: on the vps target each service writes only its own state directory, mounted at ${STATE_DIRECTORY}`);
    return placed;
  };
  runtime.audit.path = inState(config.audit.path, "audit.path");
  // Every unit signs its checkpoints, with a key created on first start in its own state directory.
  runtime.audit.signingKeyFile = inState(config.audit.signingKeyFile ?? DEFAULT_SIGNING_KEY, "audit.signingKeyFile");
  if (config.llm.keysPath !== undefined) runtime.llm.keysPath = inState(config.llm.keysPath, "llm.keysPath");
  if (config.egress.auditPath !== undefined) runtime.egress.auditPath = inState(config.egress.auditPath, "egress.auditPath");
  // The dashboard's own log is in its own state directory like every other unit's; the rest it reads from the feeds.
  runtime.dashboard.sources = runtime.dashboard.sources.map((source) => (source.name === DASHBOARD ? { ...source, path: runtime.audit.path } : source));
  return runtime as unknown as Record<string, unknown>;
}

/** A systemd Environment= assignment, quoted; `%` would start a specifier and `\` / `"` an escape. */
function environmentLine(name: string, value: string): UnitEntry {
  return ["Environment", `"${`${name}=${value}`.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%")}"`];
}

function envPath(secret: SecretSpec): string {
  return `${ENV_DIRECTORY}/${secret.name}.env`;
}

function memoryMax(quantity: string): string {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (match === null) return quantity;
  const factor = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1000, M: 1000 ** 2, G: 1000 ** 3, T: 1000 ** 4, "": 1 }[match[2] ?? ""] ?? 1;
  return String(Math.round(Number(match[1]) * factor));
}

function cpuQuota(quantity: string): string {
  const cores = quantity.endsWith("m") ? Number(quantity.slice(0, -1)) / 1000 : Number(quantity);
  return `${Math.round(cores * 100)}%`;
}

const NODE_NOTE =
  "MemoryDenyWriteExecute stays off: V8 (Node's JIT) and the WebAssembly RE2 the config loader uses must make memory executable; Node's --jitless would turn WebAssembly off altogether.";

function perimeterUnit(config: PerimeterConfig, host: HostConfig, service: PerimeterService, port: number, internet: boolean, secrets: readonly SecretSpec[]): Unit {
  const name = SERVICE_UNITS[service];
  const sandbox = service === "sandbox";
  const notes = [NODE_NOTE];
  if (internet) notes.push(`${service} reaches the internet itself, so no IPAddressDeny; every other perimeter unit and the agent get loopback only.`);
  else notes.push(`${service} needs only loopback: IPAddressDeny=any with IPAddressAllow=localhost.`);
  if (sandbox) notes.push("Delegate=yes hands the runner its cgroup subtree so each task gets its own memory/pids/cpu limits (docs/sandbox.md).");
  // The runner executes the agent's commands: when its tasks have no network, it has none either. It then listens in
  // a network namespace of its own and perimeter-sandbox-proxy carries mcp-guard's connections in (socket unit on the
  // host's loopback, proxy joined to the runner's namespace: the pattern of systemd-socket-proxyd(8)).
  const isolated = sandbox && !internet;
  if (isolated) notes.push("PrivateNetwork=yes: reached only through perimeter-sandbox-proxy.socket on the host's loopback.");
  return {
    name: `${name}.service`,
    description: `perimeter ${service} (${config.name})`,
    unit: [
      ["After", "network-online.target"],
      ["Wants", "network-online.target"],
      ["StartLimitIntervalSec", "300"],
      ["StartLimitBurst", "10"],
    ],
    notes,
    service: [
      ["Type", "simple"],
      ["User", name],
      ["Group", name],
      ["ExecStart", `${host.perimeterExecutable} serve ${service} -c ${RUNTIME_CONFIG_PATH} --listen ${local(port)}${sandbox ? ` --metrics-listen ${local(SANDBOX_METRICS_PORT)}` : ""}`],
      ["Environment", '"NODE_ENV=production"'],
      ["Environment", '"HOME=/tmp"'],
      ...secrets.map((secret): UnitEntry => ["EnvironmentFile", envPath(secret)]),
      // One state directory per service, seen by the process at the path perimeter.yaml names.
      ["StateDirectory", name],
      ["StateDirectoryMode", "0700"],
      ["BindPaths", `/var/lib/${name}:${STATE_DIRECTORY}`],
      ["ReadOnlyPaths", "/etc/perimeter"],
      ["InaccessiblePaths", `-${ENV_DIRECTORY} -/run/docker.sock -/var/run/docker.sock`],
      ["Restart", "on-failure"],
      ["RestartSec", "2"],
      ["TasksMax", sandbox ? String(config.sandbox.limits.pids * config.sandbox.concurrency + 64) : "256"],
      ...(sandbox ? ([["Delegate", "yes"]] as UnitEntry[]) : []),
      ...hardening({ internet, sandbox }),
      ...(isolated ? ([["PrivateNetwork", "yes"]] as UnitEntry[]) : []),
      ["PrivateMounts", "yes"],
      ["MemoryDenyWriteExecute", "no"],
    ],
    install: [["WantedBy", "multi-user.target"]],
  };
}

function agentUnits(config: PerimeterConfig, host: HostConfig, hermes: HermesAgentFiles, agentSecret: SecretSpec | undefined): Unit[] {
  const agent = host.agent;
  const dataDirectory = `${agent.home}/.hermes`;
  // Loopback only for the API server; the dashboard gets its own unit bound to loopback below.
  const entries: EnvironmentEntry[] = hermes.environment.map((entry) => (entry.name === "API_SERVER_HOST" ? { name: entry.name, value: "127.0.0.1" } : entry));
  const values = entries.flatMap((entry) => ("value" in entry ? [entry] : []));
  const after = [`${SERVICE_UNITS["egress-proxy"]}.service`, `${SERVICE_UNITS["llm-proxy"]}.service`, `${SERVICE_UNITS["mcp-guard"]}.service`];
  const units: Unit[] = [];
  const limits: UnitEntry[] = [
    ["MemoryMax", memoryMax(config.agent.resources.limits.memory)],
    ["CPUQuota", cpuQuota(config.agent.resources.limits.cpu)],
    ["TasksMax", "1024"],
  ];
  const envFile: UnitEntry[] = agentSecret === undefined ? [] : [["EnvironmentFile", envPath(agentSecret)]];
  if (agent.mode === "native") {
    const python = `${agent.installDir}/venv/bin/python`;
    const common: UnitEntry[] = [
      ["Type", "simple"],
      ["User", agent.user],
      ["Group", agent.user],
      ["WorkingDirectory", agent.home],
      environmentLine("HOME", agent.home),
      environmentLine("HERMES_HOME", dataDirectory),
      environmentLine("VIRTUAL_ENV", `${agent.installDir}/venv`),
      environmentLine("PATH", `${agent.installDir}/venv/bin:/usr/local/bin:/usr/bin:/bin`),
    ];
    const confinement: UnitEntry[] = [
      ["ReadWritePaths", agent.home],
      // The perimeter's config and every service's secrets stay out of the agent's sight; so does the Docker socket.
      // Hermes loads <data>/.env over its environment (override), so the perimeter's values sit in a read-only bind
      // mount there: the agent owns its data directory but can neither rewrite nor rename over a mount point.
      ["BindReadOnlyPaths", `${HERMES_ENV_SOURCE}:${dataDirectory}/.env`],
      // The services' secrets and state stay out of the agent's sight; so does the Docker socket.
      ["InaccessiblePaths", `-${ENV_DIRECTORY} -/run/docker.sock -/var/run/docker.sock -/var/lib/perimeter-${MCP_GUARD} -/var/lib/perimeter-${LLM_PROXY} -/var/lib/perimeter-${EGRESS_PROXY} -/var/lib/perimeter-sandbox -/var/lib/perimeter-${DASHBOARD}`],
      ...hardening({ internet: false }),
      ["PrivateMounts", "yes"],
      // Hermes starts Node (npx MCP helpers) and may start Chromium for browser tools; both JIT.
      ["MemoryDenyWriteExecute", "no"],
    ];
    units.push({
      name: AGENT_UNIT,
      description: `Hermes Agent gateway behind perimeter ${config.name}`,
      unit: [["After", ["network-online.target", ...after].join(" ")], ["Wants", ["network-online.target", ...after].join(" ")], ["StartLimitIntervalSec", "600"], ["StartLimitBurst", "5"]],
      notes: [
        "The agent can reach only loopback (IPAddressDeny=any, IPAddressAllow=localhost): llm-proxy, mcp-guard and the",
        "egress proxy (HTTPS_PROXY) are its only ways out. The firewall's output chain refuses its uid everything but lo.",
        "Its code (installDir) is root's and read-only to it; it writes only its home. Hermes' own unit (hermes gateway",
        "install) runs the same command: python -m hermes_cli.main gateway run --replace.",
      ],
      service: [
        ...common,
        ...values.map((entry) => environmentLine(entry.name, entry.value)),
        ...envFile,
        ["ExecStart", `${python} -m hermes_cli.main gateway run --replace`],
        ["Restart", "on-failure"],
        ["RestartSec", "10"],
        ["KillMode", "mixed"],
        ["TimeoutStopSec", "60"],
        ...limits,
        ...confinement,
      ],
      install: [["WantedBy", "multi-user.target"]],
    });
    if (config.agent.dashboard.enabled) {
      units.push({
        name: "hermes-dashboard.service",
        description: `Hermes dashboard on 127.0.0.1:${config.agent.dashboard.port} (perimeter ${config.name})`,
        unit: [["After", AGENT_UNIT]],
        notes: ["Bound to loopback only: reach it with an SSH tunnel or Tailscale (seed 004), never publicly."],
        service: [
          ...common,
          ["ExecStart", `${python} -m hermes_cli.main dashboard --host 127.0.0.1 --port ${config.agent.dashboard.port} --no-open`],
          ["Restart", "on-failure"],
          ["RestartSec", "10"],
          ...limits,
          ...confinement,
        ],
        install: [["WantedBy", "multi-user.target"]],
      });
    }
    return units;
  }
  // container: the official image on the host's network (so it reaches the perimeter on 127.0.0.1), as uid 10000.
  const image = config.agent.image;
  const dockerRun = (name: string, command: string) =>
    [
      "/usr/bin/docker run --rm",
      `--name ${name}`,
      "--network host",
      "--cap-drop NET_RAW --security-opt no-new-privileges",
      `--memory ${memoryMax(config.agent.resources.limits.memory)} --cpus ${config.agent.resources.limits.cpu.endsWith("m") ? Number(config.agent.resources.limits.cpu.slice(0, -1)) / 1000 : config.agent.resources.limits.cpu} --pids-limit 1024`,
      "--log-driver journald",
      ...(agentSecret === undefined ? [] : [`--env-file ${envPath(agentSecret)}`]),
      ...values.map((entry) => `-e ${entry.name}=${entry.value}`),
      `-v ${dataDirectory}:/opt/data`,
      `-v ${HERMES_ENV_SOURCE}:/opt/data/.env:ro`,
      image,
      command,
    ].join(" ");
  // The unit itself only talks to dockerd over its socket; the container's own limits are Docker's and the firewall's.
  const clientConfinement: UnitEntry[] = [
    ...hardening({ internet: false }).filter(([key]) => key !== "RestrictAddressFamilies" && key !== "PrivateUsers"),
    ["RestrictAddressFamilies", "AF_UNIX"],
    ["PrivateUsers", "no"],
    ["PrivateMounts", "yes"],
    ["MemoryDenyWriteExecute", "yes"],
  ];
  const containerUnit = (unitName: string, container: string, command: string, description: string): Unit => ({
    name: unitName,
    description,
    unit: [["After", ["docker.service", ...after].join(" ")], ["Requires", "docker.service"], ["Wants", after.join(" ")]],
    notes: [
      "Container mode: the official image with the host's network, so Hermes binds 127.0.0.1 only and reaches the",
      "perimeter on loopback. The gateway runs as uid 10000, which the firewall's output chain confines to lo.",
      "Docker's container is not in this unit's cgroup: the firewall rule is the network wall in this mode.",
    ],
    service: [
      ["Type", "simple"],
      ["ExecStartPre", `-/usr/bin/docker rm -f ${container}`],
      ["ExecStart", dockerRun(container, command)],
      ["ExecStop", `/usr/bin/docker stop ${container}`],
      ["Restart", "on-failure"],
      ["RestartSec", "10"],
      ["User", "root"],
      ...clientConfinement,
    ],
    install: [["WantedBy", "multi-user.target"]],
  });
  units.push(containerUnit(AGENT_UNIT, AGENT_WORKLOAD, "gateway run", `Hermes Agent gateway (container) behind perimeter ${config.name}`));
  if (config.agent.dashboard.enabled) {
    units.push(containerUnit("hermes-dashboard.service", "hermes-dashboard", `dashboard --host 127.0.0.1 --port ${config.agent.dashboard.port} --no-open`, `Hermes dashboard (container) on 127.0.0.1:${config.agent.dashboard.port}`));
  }
  return units;
}

/**
 * Hermes reads its .env over the unit's environment (override), so the file must say loopback too: the shared
 * .env (hermes.ts) binds the API server to every address for a container's network. Fails closed if a wildcard
 * bind survives (a new variable in that file).
 */
function loopbackEnvFile(text: string): string {
  const local = text.replace(/^API_SERVER_HOST=.*$/m, "API_SERVER_HOST=127.0.0.1");
  if (/^[A-Z_]*HOST=(0\.0\.0\.0|::|\[::\])$/m.test(local)) throw new RenderError("internal: the Hermes .env binds a wildcard address; the vps target allows loopback only");
  return local;
}

export const SOCKET_PROXYD = "/usr/lib/systemd/systemd-socket-proxyd";

/**
 * The way into the network-less sandbox runner: a loopback socket and a proxy inside the runner's namespace, for
 * mcp-guard's calls (perimeter-sandbox-proxy) and for the dashboard's reads of its health and audit feed
 * (perimeter-sandbox-metrics-proxy).
 */
function sandboxProxyUnits(name: string, port: number, carries: string): Unit[] {
  const runner = `${SERVICE_UNITS.sandbox}.service`;
  return [
    {
      name: `${name}.socket`,
      description: `perimeter sandbox runner's listener on 127.0.0.1:${port}`,
      unit: [["PartOf", `${name}.service`]],
      kind: "Socket",
      service: [["ListenStream", local(port)], ["FreeBind", "no"]],
      install: [["WantedBy", "sockets.target"]],
    },
    {
      name: `${name}.service`,
      description: `perimeter: carries ${carries} into the sandbox runner's network namespace`,
      unit: [["Requires", `${runner} ${name}.socket`], ["After", `${runner} ${name}.socket`], ["JoinsNamespaceOf", runner]],
      notes: [`Joins the runner's private network namespace; the listening socket comes from ${name}.socket.`],
      service: [
        // Not notify: systemd-socket-proxyd sends no READY=1 (systemd 252/255), so the unit would stay activating
        // and be killed at TimeoutStartSec (socket-proxy.test.ts; seen on a booted host by vps-nspawn-proof.sh).
        ["Type", "exec"],
        ["ExecStart", `${SOCKET_PROXYD} ${local(port)}`],
        ["DynamicUser", "yes"],
        ["PrivateNetwork", "yes"],
        ...hardening({ internet: false }).filter(([key]) => key !== "RestrictAddressFamilies"),
        ["RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"],
        ["PrivateMounts", "yes"],
        ["MemoryDenyWriteExecute", "yes"],
      ],
    },
  ];
}

/**
 * Daily encrypted backup (seed 004: "back up ~/.hermes, but encrypt it"), with the command line docs/backup.md
 * keeps stable. It runs as root only to read the agent's 0700 data directory (CAP_DAC_READ_SEARCH, nothing else),
 * with no network, and sees mcp-guard's state (tool calls and approvals) as the audit log to snapshot.
 */
function backupUnits(config: PerimeterConfig, host: HostConfig): Unit[] {
  const backup = config.backup;
  if (backup === undefined) return [];
  return [
    {
      name: "perimeter-backup.service",
      description: `perimeter encrypted backup (${config.name})`,
      unit: [["After", `${SERVICE_UNITS["mcp-guard"]}.service`]],
      notes: ["One shot, no network, read-only everywhere but the backup directory."],
      service: [
        ["Type", "oneshot"],
        ["ExecStart", `${host.perimeterExecutable} backup create -c ${RUNTIME_CONFIG_PATH}`],
        ["Environment", '"HOME=/tmp"'],
        ["User", "root"],
        ["ReadWritePaths", backup.directory],
        ["BindReadOnlyPaths", `/var/lib/${SERVICE_UNITS["mcp-guard"]}:${STATE_DIRECTORY}`],
        ...hardening({ internet: false }).filter(([key]) => !["CapabilityBoundingSet", "RestrictAddressFamilies", "PrivateUsers"].includes(key)),
        ["CapabilityBoundingSet", "CAP_DAC_READ_SEARCH"],
        ["RestrictAddressFamilies", "AF_UNIX"],
        ["PrivateNetwork", "yes"],
        ["PrivateMounts", "yes"],
        ["MemoryDenyWriteExecute", "no"],
      ],
    },
    {
      name: "perimeter-backup.timer",
      description: `daily perimeter backup (${config.name})`,
      unit: [],
      kind: "Timer",
      service: [["OnCalendar", "daily"], ["RandomizedDelaySec", "1h"], ["Persistent", "true"]],
      install: [["WantedBy", "timers.target"]],
    },
  ];
}

function firewallUnit(): Unit {
  return {
    name: FIREWALL_UNIT,
    description: `perimeter host firewall (nftables table inet ${FIREWALL_TABLE})`,
    unit: [
      ["DefaultDependencies", "no"],
      ["Before", "network-pre.target shutdown.target"],
      ["Wants", "network-pre.target"],
      // After Debian's nftables.service, whose /etc/nftables.conf starts with "flush ruleset".
      ["After", "nftables.service local-fs.target"],
      ["Conflicts", "shutdown.target"],
    ],
    notes: ["Loads only the perimeter table (the file deletes and recreates it), so reloading is atomic and idempotent."],
    service: [
      ["Type", "oneshot"],
      ["RemainAfterExit", "yes"],
      ["ExecStart", `/usr/sbin/nft -f ${NFTABLES_PATH}`],
      ["ExecReload", `/usr/sbin/nft -f ${NFTABLES_PATH}`],
      ["ExecStop", `/usr/sbin/nft delete table inet ${FIREWALL_TABLE}`],
      ["CapabilityBoundingSet", "CAP_NET_ADMIN"],
      ["NoNewPrivileges", "yes"],
      ["ProtectSystem", "strict"],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
      ["PrivateDevices", "yes"],
      ["DevicePolicy", "closed"],
      ["ProtectClock", "yes"],
      ["ProtectHostname", "yes"],
      ["ProtectControlGroups", "yes"],
      ["ProtectKernelModules", "yes"],
      ["ProtectKernelLogs", "yes"],
      ["ProtectKernelTunables", "yes"],
      ["ProtectProc", "invisible"],
      ["ProcSubset", "pid"],
      ["RestrictNamespaces", "yes"],
      ["RestrictSUIDSGID", "yes"],
      ["RestrictRealtime", "yes"],
      ["LockPersonality", "yes"],
      ["MemoryDenyWriteExecute", "yes"],
      ["RemoveIPC", "yes"],
      ["PrivateMounts", "yes"],
      ["UMask", "0077"],
      ["RestrictAddressFamilies", "AF_NETLINK AF_UNIX"],
      ["IPAddressDeny", "any"],
      ["SystemCallArchitectures", "native"],
      ["SystemCallFilter", "@system-service"],
      ["SystemCallFilter", "~@privileged @resources @mount @debug @cpu-emulation @obsolete @raw-io @reboot @swap @clock @module"],
      ["SystemCallErrorNumber", "EPERM"],
    ],
    install: [["WantedBy", "sysinit.target"]],
  };
}

export function renderVps(config: PerimeterConfig): VpsRender {
  const host = hostOf(config);
  refuseUnsupported(config);
  const warnings: string[] = [];
  const endpoints = vpsEndpoints(config);
  const secrets = secretPlan(config);
  const sandboxServer = sandboxServerName(config);
  const sandboxInternet = sandboxAllowlist(config) !== undefined;

  const secretsOf = (workload: string) => secrets.filter((secret) => secret.workload === workload);
  const units: Unit[] = [
    firewallUnit(),
    perimeterUnit(config, host, "egress-proxy", portOf(config.egress.listen), true, secretsOf(EGRESS_PROXY)),
    perimeterUnit(config, host, "llm-proxy", portOf(config.llm.listen), true, secretsOf(LLM_PROXY)),
    perimeterUnit(config, host, "mcp-guard", portOf(config.mcp.listen), mcpGuardNeedsInternet(config), secretsOf(MCP_GUARD)),
  ];
  if (mcpGuardNeedsInternet(config)) {
    warnings.push("mcp-guard calls external MCP servers (or runs stdio servers) itself, so its unit may reach the internet; without them it would get loopback only");
  }
  if (sandboxServer !== undefined) {
    units.push(perimeterUnit(config, host, "sandbox", portOf(config.sandbox.listen), sandboxInternet, secretsOf(SANDBOX_RUNNER)));
    if (!sandboxInternet) {
      units.push(...sandboxProxyUnits("perimeter-sandbox-proxy", portOf(config.sandbox.listen), "mcp-guard's connections"));
      units.push(...sandboxProxyUnits("perimeter-sandbox-metrics-proxy", SANDBOX_METRICS_PORT, "the dashboard's reads of its health and audit feed"));
    }
  }
  // The dashboard on loopback (an SSH tunnel reaches it): it reads every unit's feed over loopback and nothing else.
  units.push(perimeterUnit(config, host, "dashboard", dashboardPort(config), false, secretsOf(DASHBOARD)));
  const agentSecret = secrets.find((secret) => secret.name === AGENT_WORKLOAD);
  // The agent's env file holds each variable under the name Hermes reads (as on Compose).
  const hermes = hermesAgentFiles(config, endpoints);
  const agentKeys = hermes.environment
    .flatMap((entry) => ("secretKey" in entry ? [entry.name] : []))
    .sort();
  units.push(...agentUnits(config, host, hermes, agentSecret));
  if (config.backup !== undefined) {
    units.push(...backupUnits(config, host));
    if (config.backup.dataDirectory !== `${host.agent.home}/.hermes`) warnings.push(`backup.dataDirectory is ${config.backup.dataDirectory}, but the agent's data directory on this host is ${host.agent.home}/.hermes`);
  }

  const files: VpsFile[] = [];
  const manifestFiles: ManifestFile[] = [];
  const add = (path: string, content: string, options: { mode?: string; owner?: string; validate?: Validator; seed?: boolean } = {}) => {
    const source = `files${path}`;
    files.push({ path: source, content, mode: 0o644 });
    manifestFiles.push({
      path,
      source,
      mode: options.mode ?? "0644",
      owner: options.owner ?? "root",
      group: options.owner ?? "root",
      ...(options.validate === undefined ? {} : { validate: options.validate }),
      ...(options.seed === true ? { seed: true } : {}),
    });
  };

  add(RUNTIME_CONFIG_PATH, toYaml(vpsRuntimeConfig(config, endpoints, warnings)));
  add(NFTABLES_PATH, nftablesRuleset(host, agentLoopbackPorts(config)), { validate: "nft", mode: "0600" });
  for (const unit of units) add(`${UNIT_DIRECTORY}/${unit.name}`, unitText(unit), { validate: "systemd-unit" });
  add(SSHD_DROP_IN, sshdDropIn(host), { validate: "sshd" });
  add(FAIL2BAN_JAIL, fail2banJail(host), { validate: "fail2ban" });
  add(AUTO_UPGRADES, autoUpgrades());
  add(UNATTENDED_UPGRADES, unattendedUpgrades(host));
  add(JOURNALD_DROP_IN, journaldLimits(host));
  // Seeded once: Hermes rewrites config.yaml itself (/model), and the operator fills the env files.
  const dataDirectory = `${host.agent.home}/.hermes`;
  add(`${dataDirectory}/${HERMES_CONFIG_NAME}`, hermes.configYaml, { mode: "0600", owner: host.agent.user, seed: true });
  add(HERMES_ENV_SOURCE, loopbackEnvFile(hermes.envFile));

  const envFiles: Array<{ path: string; keys: string[]; purpose: string }> = [];
  for (const secret of secrets) {
    if (secret.workload !== AGENT_WORKLOAD && ![EGRESS_PROXY, LLM_PROXY, MCP_GUARD, SANDBOX_RUNNER, DASHBOARD].includes(secret.workload)) continue;
    const keys = secret.workload === AGENT_WORKLOAD ? agentKeys : [...secret.keys];
    const path = envPath(secret);
    envFiles.push({ path, keys, purpose: secret.purpose });
    add(path, [`# ${secret.purpose}`, `# Read by systemd for ${secret.workload} only (root, 0600). Tokens: openssl rand -hex 32`, ...keys.map((key) => `${key}=`), ""].join("\n"), { mode: "0600", seed: true });
  }

  // One user per perimeter service that runs (the names the units give in User=).
  const serviceUsers = units.flatMap((unit) => unit.service.filter(([key, value]) => key === "User" && value.startsWith("perimeter-")).map(([, value]) => value));
  const sysusers = [
    "# perimeter: the agent's dedicated user (fixed uid: the firewall's agent rule matches it) and one user per service.",
    `u ${host.agent.user} ${host.agent.uid} "Hermes agent (perimeter)" ${host.agent.home} /usr/sbin/nologin`,
    ...serviceUsers.map((user) => `u ${user} - "perimeter ${user.replace(/^perimeter-/, "")}" /nonexistent /usr/sbin/nologin`),
    "",
  ].join("\n");
  const tmpfiles = [
    "# perimeter: the agent's data directory 0700 and its .env 0600 (seed 004), re-checked at every boot.",
    `d ${host.agent.home} 0700 ${host.agent.user} ${host.agent.user} -`,
    `d ${dataDirectory} 0700 ${host.agent.user} ${host.agent.user} -`,
    // An empty placeholder: the agent's unit mounts the perimeter's .env (no secrets) read-only over it.
    `f ${dataDirectory}/.env 0600 ${host.agent.user} ${host.agent.user} -`,
    `z ${dataDirectory}/${HERMES_CONFIG_NAME} 0600 ${host.agent.user} ${host.agent.user} -`,
    `d ${STATE_DIRECTORY} 0755 root root -`,
    `d ${ENV_DIRECTORY} 0700 root root -`,
    "",
  ].join("\n");
  add("/etc/sysusers.d/perimeter.conf", sysusers, { validate: "sysusers" });
  add("/etc/tmpfiles.d/perimeter.conf", tmpfiles);

  const manifest: Manifest = {
    version: 1,
    perimeter: config.name,
    files: manifestFiles,
    sysusers: "/etc/sysusers.d/perimeter.conf",
    tmpfiles: "/etc/tmpfiles.d/perimeter.conf",
    // Units with an [Install] section; the socket-activated proxy and the timer's one-shot start through those.
    units: units.filter((unit) => unit.install !== undefined).map((unit) => unit.name),
    agent: { user: host.agent.user, uid: host.agent.uid },
    ssh: { port: host.ssh.port, adminUsers: host.ssh.adminUsers, adminCidrs: host.ssh.adminCidrs, tailscale: host.ssh.tailscale, allowPublic: host.ssh.allowPublic },
    envFiles,
  };
  files.push({ path: "manifest.json", content: `${JSON.stringify(manifest, null, 2)}\n`, mode: 0o644 });
  files.sort((a, b) => (a.path < b.path ? -1 : 1));
  return { files, manifest, units, warnings };
}
