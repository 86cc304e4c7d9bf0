// `perimeter render -t vps`: seed 004 on one Debian/Ubuntu host, with Perimeter in front of the agent. Every service
// listens on loopback only and runs under a hardened systemd unit; the agent's unit can reach nothing but loopback,
// so its only ways out are the proxies. The render is a directory: `files/` mirrors the host's paths, and
// `manifest.json` tells `perimeter host apply` what to install, with which owner and mode, and how to check it first.
import type { HostConfig, PerimeterConfig } from "../../config/index.ts";
import type { Endpoints } from "../endpoints.ts";
import { hermesAgentFiles } from "../hermes.ts";
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
import { agentLoopbackPorts, nftablesRuleset } from "./firewall.ts";
import { AUTO_UPGRADES, FAIL2BAN_JAIL, JOURNALD_DROP_IN, SSHD_DROP_IN, UNATTENDED_UPGRADES, autoUpgrades, fail2banJail, journaldLimits, sshdDropIn, unattendedUpgrades } from "./ssh.ts";
import { unitText } from "./units.ts";
import type { Unit, UnitEntry } from "./units.ts";
import { agentUnits } from "./agent-units.ts";
import { ENV_DIRECTORY, HERMES_CONFIG_NAME, HERMES_ENV_SOURCE, NFTABLES_PATH, SERVICE_UNITS, UNIT_DIRECTORY, envPath, local } from "./common.ts";
import { backupUnits, firewallUnit, sandboxProxyUnits } from "./system-units.ts";
import { hardening } from "./units.ts";

export { AGENT_UNIT, ENV_DIRECTORY, FIREWALL_UNIT, HERMES_CONFIG_NAME, HERMES_ENV_SOURCE, NFTABLES_PATH, SOCKET_PROXYD, UNIT_DIRECTORY } from "./common.ts";

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

function hostOf(config: PerimeterConfig): HostConfig {
  if (config.host === undefined) {
    throw new RenderError(
      "the vps target needs a host: section: at least host.ssh.adminUsers and an admin access path (host.ssh.adminCidrs or host.ssh.tailscale: true), e.g. host: { ssh: { adminUsers: [admin], adminCidrs: [203.0.113.7/32] } } (see examples/vps.yaml)",
    );
  }
  return config.host;
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
