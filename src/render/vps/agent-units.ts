// The agent's units on the VPS: Hermes natively (a venv under installDir, confined by systemd) or the official image
// in a container on the host's network (confined by the firewall's uid rule), and the optional Hermes dashboard.
import type { HostConfig, PerimeterConfig } from "../../config/index.ts";
import type { EnvironmentEntry, HermesAgentFiles } from "../hermes.ts";
import { AGENT_WORKLOAD, DASHBOARD, EGRESS_PROXY, LLM_PROXY, MCP_GUARD } from "../plan.ts";
import type { SecretSpec } from "../plan.ts";
import { AGENT_UNIT, ENV_DIRECTORY, HERMES_ENV_SOURCE, SERVICE_UNITS, cpuQuota, envPath, environmentLine, memoryMax } from "./common.ts";
import { hardening } from "./units.ts";
import type { Unit, UnitEntry } from "./units.ts";

/** What both kinds of agent unit share: the environment (API server on loopback), the units to start after, limits. */
interface AgentUnitFacts {
  readonly config: PerimeterConfig;
  readonly agent: HostConfig["agent"];
  readonly dataDirectory: string;
  readonly values: ReadonlyArray<{ name: string; value: string }>;
  readonly after: readonly string[];
  readonly limits: readonly UnitEntry[];
  readonly envFile: readonly UnitEntry[];
  readonly agentSecret: SecretSpec | undefined;
}

export function agentUnits(config: PerimeterConfig, host: HostConfig, hermes: HermesAgentFiles, agentSecret: SecretSpec | undefined): Unit[] {
  const agent = host.agent;
  const dataDirectory = `${agent.home}/.hermes`;
  // Loopback only for the API server; the dashboard gets its own unit bound to loopback below.
  const entries: EnvironmentEntry[] = hermes.environment.map((entry) => (entry.name === "API_SERVER_HOST" ? { name: entry.name, value: "127.0.0.1" } : entry));
  const values = entries.flatMap((entry) => ("value" in entry ? [entry] : []));
  const after = [`${SERVICE_UNITS["egress-proxy"]}.service`, `${SERVICE_UNITS["llm-proxy"]}.service`, `${SERVICE_UNITS["mcp-guard"]}.service`];
  const limits: UnitEntry[] = [
    ["MemoryMax", memoryMax(config.agent.resources.limits.memory)],
    ["CPUQuota", cpuQuota(config.agent.resources.limits.cpu)],
    ["TasksMax", "1024"],
  ];
  const envFile: UnitEntry[] = agentSecret === undefined ? [] : [["EnvironmentFile", envPath(agentSecret)]];
  const facts: AgentUnitFacts = { config, agent, dataDirectory, values, after, limits, envFile, agentSecret };
  return agent.mode === "native" ? nativeUnits(facts) : containerUnits(facts);
}

/** Hermes from its venv, confined by systemd: loopback only, its home writable, the perimeter's files out of sight. */
function nativeUnits(facts: AgentUnitFacts): Unit[] {
  const { config, agent, dataDirectory, values, after, limits, envFile } = facts;
  const units: Unit[] = [];
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

/** The official image on the host's network as uid 10000; the firewall's uid rule is its network wall. */
function containerUnits(facts: AgentUnitFacts): Unit[] {
  const { config, dataDirectory, values, after, agentSecret } = facts;
  const units: Unit[] = [];
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
