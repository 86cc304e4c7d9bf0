// The one-host targets: `local` (perimeter up) and `vps` (the render installed with perimeter host apply). The
// agent's vantage on local is its own process (--agent-pid: its network and mount namespaces, uid and environment);
// on vps it is the agent's unit (systemd-run with its properties, or its uid when systemd is not PID 1).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { PerimeterConfig } from "../config/index.ts";
import { splitHostPort } from "../config/index.ts";
import { planUp } from "../up/index.ts";
import type { Exec } from "./host.ts";
import { execProgram } from "./host.ts";
import { directFromAllowed, firstAllowedHost, serviceCredentialNames, valueDigests } from "./isolation.ts";
import type { Address } from "./isolation.ts";
import { authErrorsFromRecords, guardedServers } from "./mcp.ts";
import type { McpFacts } from "./mcp.ts";
import { fail, pass } from "./model.ts";
import type { CheckResult } from "./model.ts";
import { agentProcessVantage, operatorVantage, processIdentity, unitVantage } from "./runners.ts";
import type { ProcessIdentity } from "./runners.ts";
import { openCanary } from "./verify.ts";
import type { TargetSetup } from "./verify.ts";

export const DOCKER_SOCKETS = ["/var/run/docker.sock", "/run/docker.sock"];
/** A name no allowlist can hold (.invalid never resolves, RFC 6761): the proxy must refuse it by policy. */
export const DENIED_PROBE = { host: "perimeter-verify-denied.invalid", port: 443 } as const;

export interface OneHostOptions {
  readonly config: PerimeterConfig;
  readonly configFile: string;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly lan: readonly Address[];
  readonly direct: readonly Address[];
  readonly allowed: Address | undefined;
  readonly dockerSockets: readonly string[];
  readonly dataDirectory: string | undefined;
  readonly python: string;
  readonly exec?: Exec;
}

/** NAME=value lines (an env file or perimeter up's secrets.env); comments and blanks skipped, quotes removed. */
export function readEnvFile(path: string): Map<string, string> {
  const values = new Map<string, string>();
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return values;
  }
  for (const line of text.split("\n")) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (match === null) continue;
    values.set(match[1] as string, (match[2] as string).replace(/^(["'])(.*)\1$/, "$2"));
  }
  return values;
}

async function guardFacts(adminUrl: string | undefined, adminToken: string | undefined, auditPaths: readonly string[], guardVariables: ReadonlySet<string> | undefined, config: PerimeterConfig): Promise<McpFacts> {
  let upstreamStates: Record<string, string> | undefined;
  let pendingReviews: Map<string, string[]> | undefined;
  const reasons: string[] = [];
  if (adminUrl !== undefined) {
    try {
      const health = await fetch(`${adminUrl}/healthz`, { signal: AbortSignal.timeout(3000) });
      upstreamStates = ((await health.json()) as { upstreams?: Record<string, string> }).upstreams ?? {};
    } catch (error) {
      reasons.push(`mcp-guard's admin listener ${adminUrl} did not answer: ${(error as Error).message}`);
    }
    if (adminToken === undefined) reasons.push(`${config.mcp.admin.tokenSecret} is not set here`);
    else {
      try {
        const listed = await fetch(`${adminUrl}/v1/approvals?status=pending&kind=tool-definition`, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(3000) });
        if (listed.ok) {
          pendingReviews = new Map();
          for (const approval of ((await listed.json()) as { approvals?: Array<{ server?: string; tool?: string }> }).approvals ?? []) {
            const server = approval.server ?? "?";
            pendingReviews.set(server, [...(pendingReviews.get(server) ?? []), approval.tool ?? "?"]);
          }
        } else reasons.push(`the approvals API answered ${listed.status}`);
      } catch (error) {
        reasons.push(`the approvals API did not answer: ${(error as Error).message}`);
      }
    }
  }
  let authErrors: Map<string, string[]> | undefined;
  const existing = auditPaths.filter((path) => {
    try {
      return statSync(path).isFile();
    } catch {
      return false;
    }
  });
  if (existing.length > 0) {
    const { readAuditRecords } = await import("../audit-log/index.ts");
    authErrors = new Map();
    for (const path of existing) {
      for (const [server, errors] of authErrorsFromRecords(readAuditRecords(path, { last: 5000 }))) authErrors.set(server, [...(authErrors.get(server) ?? []), ...errors]);
    }
  } else reasons.push("no audit database found");
  return { guardVariables, upstreamStates, pendingReviews, authErrors, unknownBecause: reasons.join("; ") || "not reachable" };
}

function sameNetworkNamespace(pid: number): boolean {
  return statSync(`/proc/${pid}/ns/net`).ino === statSync("/proc/self/ns/net").ino;
}

/** The agent's routes, read inside its namespace: a default route is a way out that does not go through the proxy. */
async function agentNetworkCheck(agent: ProcessIdentity, exec: Exec): Promise<CheckResult> {
  const id = "isolation.network-policy";
  if (sameNetworkNamespace(agent.pid)) {
    return fail(id, "isolation", `the agent (pid ${agent.pid}) runs in this host's network namespace: nothing but its goodwill keeps it on the proxy`, "run the agent in a network namespace whose only route is the perimeter's addresses (docs/verify.md: Running the agent for -t local)");
  }
  const routes = await exec("nsenter", [`--target=${agent.pid}`, "--net", "--", "ip", "-json", "route", "show", "table", "all"]);
  if (routes.code !== 0) return fail(id, "isolation", `cannot read the agent's routes: ${routes.stderr.trim().slice(0, 200)}`, "run verify as root on the agent's host");
  const parsed = JSON.parse(routes.stdout || "[]") as Array<{ dst?: string; gateway?: string; dev?: string; type?: string; table?: string }>;
  const ways = parsed.filter((route) => route.type !== "local" && route.type !== "broadcast" && route.table !== "local" && route.dev !== "lo");
  const defaults = ways.filter((route) => route.dst === "default" || route.dst === "0.0.0.0/0" || route.dst === "::/0");
  if (defaults.length > 0) {
    return fail(id, "isolation", `the agent's namespace has a default route (${defaults.map((route) => `via ${route.gateway ?? "?"} dev ${route.dev ?? "?"}`).join(", ")})`, "remove it (ip -n NS route del default): the agent needs only the link to the perimeter's addresses");
  }
  return pass(id, "isolation", `own network namespace; routes: ${ways.map((route) => `${route.dst ?? "?"}${route.gateway === undefined ? "" : ` via ${route.gateway}`} dev ${route.dev ?? "?"}`).join(", ") || "none but loopback"}`);
}

export async function localSetup(options: OneHostOptions & { readonly agentPid: number | undefined; readonly secretsFile: string | undefined }): Promise<TargetSetup> {
  const { config } = options;
  const exec = options.exec ?? execProgram;
  // The egress proxy's health port is chosen by up when egress.metrics is unset: read it from up's runtime copy.
  const stateDirectory = dirname(resolve(options.cwd, config.audit.path));
  let metricsPort = 1;
  try {
    const runtime = JSON.parse(readFileSync(join(stateDirectory, "up-runtime.json"), "utf8")) as { egress?: { metrics?: string } };
    metricsPort = splitHostPort(runtime.egress?.metrics ?? "")?.port ?? 1;
  } catch {
    // up has not run here: the config's own listeners are all that is declared.
  }
  const plan = planUp(config, options.configFile, { cwd: options.cwd, egressMetricsPort: metricsPort });
  const secrets = readEnvFile(options.secretsFile ?? join(plan.stateDirectory, "secrets.env"));
  const known = (name: string) => options.env[name] ?? secrets.get(name);
  const credentialNames = serviceCredentialNames(config);
  const agent = options.agentPid === undefined ? undefined : processIdentity(options.agentPid);
  const canary = await openCanary();
  const mcpGuard = plan.services.find((service) => service.name === "mcp-guard");
  const tokenVariable = config.mcp.agents[0]?.tokenSecret ?? "PERIMETER_AGENT_TOKEN";
  const agentToken = known(tokenVariable);
  const vantage = agent === undefined ? undefined : agentProcessVantage(agent, options.python);
  // What up hands mcp-guard: its own secrets from this environment or the secrets file (as childEnvironment does).
  const guardNames = new Set([...Object.keys(options.env).filter((name) => options.env[name] !== undefined && options.env[name] !== ""), ...secrets.keys()]);
  const adminUrl = mcpGuard?.healthUrl.replace(/\/healthz$/, "");
  return {
    config,
    vantage,
    noVantage: "no --agent-pid: pass the pid of the agent's process so the probes run where it runs",
    mcpVantage: vantage ?? (agentToken === undefined ? undefined : operatorVantage({ PATH: options.env.PATH ?? "/usr/bin:/bin", [tokenVariable]: agentToken }, options.python)),
    isolation: {
      target: "local",
      allowed: options.allowed ?? firstAllowedHost(config),
      denied: DENIED_PROBE,
      direct: directFromAllowed(options.allowed ?? firstAllowedHost(config), options.direct),
      decisive: canary.addresses,
      decisiveWhat: `verify's own listener on this host's addresses (port ${canary.port})`,
      lan: options.lan,
      dnsNames: [],
      forbiddenNames: credentialNames,
      forbiddenDigests: valueDigests(credentialNames.map(known).filter((value) => value !== undefined)),
      dockerSockets: options.dockerSockets,
    },
    operatorIsolation: async () => (agent === undefined ? [fail("isolation.network-policy", "isolation", "no --agent-pid: the agent's network namespace is not known", "pass --agent-pid PID of the agent's process")] : [await agentNetworkCheck(agent, exec)]),
    mcpUrl: plan.mcpUrl ?? `http://127.0.0.1:${splitHostPort(config.mcp.listen)?.port ?? 8700}/mcp`,
    tokenVariable,
    mcpFacts: () => guardFacts(adminUrl, known(config.mcp.admin.tokenSecret), [plan.auditPath], guardNames, config),
    host: {
      config,
      target: "local",
      root: "/",
      dataDirectory: options.dataDirectory ?? config.backup?.dataDirectory ?? (config.host === undefined ? undefined : `${config.host.agent.home}/.hermes`),
      agentUid: agent?.uid ?? config.host?.agent.uid,
      declaredListens: [...plan.services.flatMap((service) => service.listens.map((listen) => `${listen.host}:${listen.port}`))],
      auditPaths: [plan.auditPath],
      ...(agent === undefined ? {} : { agentEnvironment: agent.environment }),
      ownPorts: [canary.port],
      exec,
    },
    notes: [
      ...(agent === undefined ? [] : [`agent process ${agent.pid} (uid ${agent.uid})`]),
      ...(guardedServers(config).length > 0 && vantage === undefined ? ["MCP checks run from this host with the agent's token (no --agent-pid)"] : []),
    ],
    close: () => canary.close(),
  };
}

/** [Service] entries of a unit file, in order (a key may repeat). */
export function unitEntries(text: string): Array<[string, string]> {
  const entries: Array<[string, string]> = [];
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || line === "") continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      section = header[1] as string;
      continue;
    }
    const equals = line.indexOf("=");
    if (section === "Service" && equals > 0) entries.push([line.slice(0, equals), line.slice(equals + 1)]);
  }
  return entries;
}

/** IPAddressDeny/Allow of the agent's unit: deny any, allow loopback only (the kernel's first wall). */
export function unitNetworkCheck(unit: string, entries: ReadonlyArray<readonly [string, string]>): CheckResult {
  const id = "isolation.network-policy";
  const values = (key: string) => entries.filter(([name]) => name === key).flatMap(([, value]) => (value === "" ? ["<reset>"] : value.split(/\s+/)));
  const deny = values("IPAddressDeny");
  const allow = values("IPAddressAllow");
  const lastReset = (list: string[]) => list.slice(list.lastIndexOf("<reset>") + 1);
  const effectiveDeny = lastReset(deny);
  const effectiveAllow = lastReset(allow);
  const loopbackOnly = effectiveAllow.every((value) => ["localhost", "127.0.0.0/8", "127.0.0.1", "::1", "::1/128", "link-local"].includes(value) && value !== "link-local");
  if (!effectiveDeny.includes("any")) {
    return fail(id, "isolation", `${unit} has no IPAddressDeny=any: its processes may open sockets to any address`, `restore IPAddressDeny=any and IPAddressAllow=localhost in ${unit} (re-render and perimeter host apply), then systemctl daemon-reload && systemctl restart ${unit}`);
  }
  if (!loopbackOnly) {
    return fail(id, "isolation", `${unit} allows more than loopback: IPAddressAllow=${effectiveAllow.join(" ")}`, `keep IPAddressAllow=localhost only in ${unit}; reach anything else through the perimeter`);
  }
  return pass(id, "isolation", `${unit}: IPAddressDeny=any, IPAddressAllow=${effectiveAllow.join(" ") || "(nothing)"}`);
}

function systemdRunning(): boolean {
  try {
    return readFileSync("/proc/1/comm", "utf8").trim() === "systemd";
  } catch {
    return false;
  }
}

export const AGENT_UNIT = "hermes-gateway.service";

export async function vpsSetup(options: OneHostOptions & { readonly root: string }): Promise<TargetSetup> {
  const { config, root } = options;
  const host = config.host;
  if (host === undefined) throw new Error("verify -t vps needs the host: section of the config the render was made from");
  const exec = options.exec ?? execProgram;
  const unitFile = join(root, "etc/systemd/system", AGENT_UNIT);
  let entries: Array<[string, string]> = [];
  let unitError: string | undefined;
  try {
    entries = unitEntries(readFileSync(unitFile, "utf8"));
  } catch (error) {
    unitError = `${unitFile}: ${(error as Error).message}`;
  }
  const environment: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (key === "EnvironmentFile") for (const [name, entry] of readEnvFile(join(root, value.replace(/^-/, "")))) environment[name] = entry;
    if (key === "Environment") for (const match of value.matchAll(/"?([A-Za-z_][A-Za-z0-9_]*)=([^"\s]*)"?/g)) environment[match[1] as string] = match[2] as string;
  }
  // The .env Hermes loads over its environment (bind-mounted read-only from /etc/perimeter/hermes.env).
  for (const [name, value] of readEnvFile(join(root, "etc/perimeter/hermes.env"))) environment[name] = value;
  const serviceEnvironments = new Map<string, string>();
  const envDirectory = join(root, "etc/perimeter/env");
  let envFiles: string[] = [];
  try {
    envFiles = readdirSync(envDirectory).filter((name) => name.endsWith(".env"));
  } catch {
    // no env files: nothing known
  }
  for (const name of envFiles) for (const [key, value] of readEnvFile(join(envDirectory, name))) if (value !== "") serviceEnvironments.set(key, value);
  const guardVariables = new Set(
    [...readEnvFile(join(envDirectory, "mcp-guard.env"))].filter(([, value]) => value !== "").map(([key]) => key),
  );
  const credentialNames = serviceCredentialNames(config);
  const canary = await openCanary();
  const port = (value: string, fallback: number) => splitHostPort(value)?.port ?? fallback;
  const systemd = systemdRunning();
  const vantage = unitVantage({ unit: AGENT_UNIT, user: host.agent.user, uid: host.agent.uid, gid: host.agent.uid, properties: entries, environment, systemd }, options.python);
  const auditPaths: string[] = [];
  try {
    for (const name of readdirSync(join(root, "var/lib"))) {
      const path = join(root, "var/lib", name, "audit.db");
      if (name.startsWith("perimeter") && statSync(path, { throwIfNoEntry: false }) !== undefined) auditPaths.push(path);
    }
  } catch {
    // none yet
  }
  const adminUrl = `http://127.0.0.1:${port(config.mcp.admin.listen, 8710)}`;
  return {
    config,
    vantage,
    mcpVantage: vantage,
    isolation: {
      target: "vps",
      allowed: options.allowed ?? firstAllowedHost(config),
      denied: DENIED_PROBE,
      direct: directFromAllowed(options.allowed ?? firstAllowedHost(config), options.direct),
      // The agent shares the host's network: what keeps it off this host's own addresses is IPAddressDeny, which
      // only systemd applies. Without systemd the probe would prove nothing about the unit, so it is not run.
      decisive: systemd ? canary.addresses : [],
      decisiveWhat: systemd ? `verify's own listener on this host's addresses (port ${canary.port})` : "verify's own listener (not probed: systemd is not PID 1, so IPAddressDeny cannot be exercised; see isolation.network-policy)",
      lan: options.lan,
      dnsNames: [],
      forbiddenNames: credentialNames,
      forbiddenDigests: valueDigests(credentialNames.map((name) => serviceEnvironments.get(name)).filter((value) => value !== undefined)),
      dockerSockets: options.dockerSockets,
    },
    operatorIsolation: async () => [unitError === undefined ? unitNetworkCheck(AGENT_UNIT, entries) : fail("isolation.network-policy", "isolation", `the agent's unit cannot be read: ${unitError}`, "install the render with perimeter host apply DIR")],
    mcpUrl: `http://127.0.0.1:${port(config.mcp.listen, 8700)}/mcp`,
    tokenVariable: config.mcp.agents[0]?.tokenSecret ?? "PERIMETER_AGENT_TOKEN",
    mcpFacts: () => guardFacts(adminUrl, serviceEnvironments.get(config.mcp.admin.tokenSecret), auditPaths, guardVariables, config),
    host: {
      config,
      target: "vps",
      root,
      dataDirectory: options.dataDirectory ?? `${host.agent.home}/.hermes`,
      agentUid: host.agent.uid,
      declaredListens: [],
      auditPaths,
      ownPorts: [canary.port],
      exec,
    },
    notes: vantage.notes,
    close: () => canary.close(),
  };
}


