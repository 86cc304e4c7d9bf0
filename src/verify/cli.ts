// `perimeter verify isolation|mcp|host|all`: proof that what runs is what was declared, from the agent's side and
// the operator's. Exit 0 when nothing FAILs, 1 when something does, 2 on usage errors.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { EXIT_OK, UsageError, parseCommandArgs } from "../cli/index.ts";
import type { Command } from "../cli/index.ts";
import { loadConfig } from "../config/index.ts";
import { composeSetup, kubernetesSetup } from "./cluster.ts";
import { formatReport } from "./format.ts";
import type { Format } from "./format.ts";
import { parseAddress } from "./isolation.ts";
import type { Address } from "./isolation.ts";
import { DOCKER_SOCKETS, localSetup, vpsSetup } from "./local.ts";
import { verificationExit } from "./model.ts";
import type { Suite, VerifyTarget } from "./model.ts";
import { runVerification } from "./verify.ts";
import type { TargetSetup } from "./verify.ts";

const HELP = `perimeter verify — prove a live deployment is isolated (seed 003's verify scripts, seed 004's review)

Usage:
  perimeter verify isolation|mcp|host|all -c perimeter.yaml -t kubernetes|compose|vps|local
                   [--format text|json|junit] [--lan HOST:PORT]... [--direct HOST:PORT]... [--allowed HOST:PORT]

One line per check, PASS/WARN/FAIL/SKIP with its evidence, and for each FAIL the fix. Exit 0 when nothing FAILs,
1 when something does, 2 on a usage error. The agent-side probes are one python3 program run where the agent runs.

  isolation   no service-account token or RoleBinding, no host access or Docker socket, the network boundary in
              place, DNS, an allowlisted host through the egress proxy, a host off it refused (403 +
              X-Perimeter-Denied), no direct way out, the decisive probe (the Kubernetes API ClusterIP, or verify's
              own listener on this host), --lan targets, no service credential in the agent's environment
  mcp         per MCP server through mcp-guard with the agent's token: variables, upstream, tools, reviews, auth
              errors in the audit log, one harmless call
  host        (vps, local) sshd -T, SSH exposure, the firewall, listening sockets, automatic updates, the data
              directory and .env modes, approvals, allow-all users, the Docker socket, fail2ban, backups, audit chain

Targets:
  -t local        perimeter up on this host; --agent-pid PID (the agent's process: its network and mount
                  namespaces, uid and environment) [--secrets-file FILE] [--data-dir DIR]
  -t vps          the render installed here (perimeter host apply) [--root DIR] [--data-dir DIR]
  -t kubernetes   kubectl exec into deployment/hermes-gateway [--namespace NS] [--kubeconfig FILE] [--context NAME]
  -t compose      docker compose exec into hermes-gateway [--compose-file FILE] [--project NAME]

  --lan HOST:PORT      a host you know listens (seed 003's TEST_LAN_TARGET); must NOT be reachable
  --direct HOST:PORT   an address to try without the proxy (default: the first allowlisted host)
  --allowed HOST:PORT  the allowlisted host to fetch through the proxy (default: the first exact egress.allow host)
  --docker-socket PATH a socket path to look for in the agent (default: /var/run/docker.sock, /run/docker.sock)
  --python PATH        the python3 the probe runs with (default: python3 on the agent's PATH)
`;

const SUITES: Record<string, readonly Suite[]> = { isolation: ["isolation"], mcp: ["mcp"], host: ["host"], all: ["isolation", "mcp", "host"] };
const TARGETS: readonly VerifyTarget[] = ["kubernetes", "compose", "vps", "local"];
const FORMATS: readonly Format[] = ["text", "json", "junit"];

function addresses(flag: string, values: readonly string[] | undefined): Address[] {
  return (values ?? []).map((value) => {
    const parsed = parseAddress(value);
    if (parsed === undefined) throw new UsageError(`verify: ${flag} "${value}" must be HOST:PORT (e.g. 192.168.1.206:30002, [fd00::1]:443)`);
    return parsed;
  });
}

export const verifyCommand: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(
    "verify",
    args,
    {
      config: { type: "string", short: "c" },
      target: { type: "string", short: "t" },
      format: { type: "string", default: "text" },
      lan: { type: "string", multiple: true },
      direct: { type: "string", multiple: true },
      allowed: { type: "string" },
      "agent-pid": { type: "string" },
      "secrets-file": { type: "string" },
      "data-dir": { type: "string" },
      "docker-socket": { type: "string", multiple: true },
      root: { type: "string" },
      namespace: { type: "string" },
      kubeconfig: { type: "string" },
      context: { type: "string" },
      "compose-file": { type: "string" },
      project: { type: "string" },
      python: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  if (values.help === true) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const [what, ...extra] = positionals;
  const suites = what === undefined ? undefined : SUITES[what];
  if (suites === undefined || extra.length > 0) throw new UsageError(`verify: say what to verify: isolation, mcp, host or all${what === undefined ? "" : ` (not "${[what, ...extra].join(" ")}")`} (see perimeter verify --help)`);
  const target = values.target as VerifyTarget | undefined;
  if (target === undefined || !TARGETS.includes(target)) throw new UsageError(`verify: pass the target with -t ${TARGETS.join("|")}${target === undefined ? "" : ` (not "${target}")`}`);
  const format = values.format as Format;
  if (!FORMATS.includes(format)) throw new UsageError(`verify: --format must be ${FORMATS.join(", ")} (not "${format}")`);
  if (values.config === undefined) throw new UsageError("verify: pass the configuration the deployment was made from with -c perimeter.yaml");
  const lan = addresses("--lan", values.lan);
  const direct = addresses("--direct", values.direct);
  const allowed = values.allowed === undefined ? undefined : addresses("--allowed", [values.allowed])[0];
  let agentPid: number | undefined;
  if (values["agent-pid"] !== undefined) {
    agentPid = Number(values["agent-pid"]);
    if (!Number.isInteger(agentPid) || agentPid <= 1) throw new UsageError(`verify: --agent-pid "${values["agent-pid"]}" must be the process id of the agent (e.g. $(pgrep -f 'hermes gateway'))`);
    if (!existsSync(`/proc/${agentPid}/environ`)) throw new UsageError(`verify: no process ${agentPid} on this host: pass the pid of the running agent (e.g. $(pgrep -f 'hermes gateway'))`);
  }
  for (const [flag, targets] of [["agent-pid", ["local"]], ["secrets-file", ["local"]], ["root", ["vps"]], ["namespace", ["kubernetes"]], ["kubeconfig", ["kubernetes"]], ["context", ["kubernetes"]], ["compose-file", ["compose"]], ["project", ["compose"]]] as const) {
    if (values[flag] !== undefined && !(targets as readonly string[]).includes(target)) throw new UsageError(`verify: --${flag} is for -t ${targets.join("|")}, not -t ${target}`);
  }
  const configFile = resolve(io.cwd, values.config);
  const config = loadConfig(configFile);
  if (target === "vps" && config.host === undefined) throw new UsageError("verify -t vps: the config has no host: section; pass the config the vps render was made from");
  if (target === "local" && suites.includes("isolation") && agentPid === undefined) {
    throw new UsageError("verify isolation -t local: pass --agent-pid PID of the agent's process, so the probes run where it runs (docs/verify.md: Running the agent for -t local)");
  }
  const common = {
    config,
    lan,
    direct,
    allowed,
    dockerSockets: values["docker-socket"] ?? DOCKER_SOCKETS,
    dataDirectory: values["data-dir"] === undefined ? undefined : resolve(io.cwd, values["data-dir"]),
    python: values.python ?? "python3",
  };
  const started = performance.now();
  let setup: TargetSetup;
  if (target === "local") {
    setup = await localSetup({ ...common, configFile, cwd: io.cwd, env: io.env, agentPid, secretsFile: values["secrets-file"] === undefined ? undefined : resolve(io.cwd, values["secrets-file"]) });
  } else if (target === "vps") {
    setup = await vpsSetup({ ...common, configFile, cwd: io.cwd, env: io.env, root: resolve(io.cwd, values.root ?? "/") });
  } else if (target === "kubernetes") {
    const kubectlFlags = [...(values.kubeconfig === undefined ? [] : ["--kubeconfig", resolve(io.cwd, values.kubeconfig)]), ...(values.context === undefined ? [] : ["--context", values.context])];
    setup = await kubernetesSetup({ ...common, namespace: values.namespace, kubectlFlags });
  } else {
    setup = await composeSetup({ ...common, composeFile: resolve(io.cwd, values["compose-file"] ?? "compose.yaml"), project: values.project });
  }
  try {
    const results = await runVerification(setup, new Set(suites));
    const seconds = (performance.now() - started) / 1000;
    io.stdout.write(formatReport({ target, vantage: setup.vantage?.description ?? `(none: ${setup.noVantage ?? "unknown"})`, notes: setup.notes, results, seconds }, format));
    return verificationExit(results);
  } finally {
    await setup.close();
  }
};


