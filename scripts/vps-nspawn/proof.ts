// The judgement half of scripts/vps-nspawn-proof.sh: the shell script builds, boots and enters the container; this
// file reads the render it installs, fills its env files as an operator would, and decides whether what the agent's
// unit observed (the stand-in's PERIMETER-PROOF line) proves the unit's confinement. Pure functions, so
// test/vps/nspawn-proof.test.ts can show each verdict fails on the observation it must refuse.
//   node scripts/vps-nspawn/proof.ts facts RENDER_DIR
//   node scripts/vps-nspawn/proof.ts fill-env RENDER_DIR ROOT
//   node scripts/vps-nspawn/proof.ts protected-ports RENDER_DIR   (JSON the stand-in reads: what it must not dial)
//   node scripts/vps-nspawn/proof.ts ip-filter PASS|FAIL < perimeter verify host --format json
//   node scripts/vps-nspawn/proof.ts judge firewall|unit-filter|control AGENT_UID < journal text
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";

export const AGENT_UNIT = "hermes-gateway.service";
export const PROOF_PREFIX = "PERIMETER-PROOF ";

interface Manifest {
  readonly units: readonly string[];
  readonly agent: { readonly user: string; readonly uid: number };
  readonly ssh: { readonly adminUsers: readonly string[] };
  readonly envFiles: ReadonlyArray<{ readonly path: string; readonly keys: readonly string[] }>;
}

export interface RenderFacts {
  readonly units: readonly string[];
  readonly agentUser: string;
  readonly agentUid: number;
  readonly adminUsers: readonly string[];
  /** host.perimeterExecutable, as the units run it. */
  readonly perimeterExecutable: string;
  /** <installDir>/venv/bin/python, as the agent's unit runs it. */
  readonly agentPython: string;
}

function firstWordOf(unitText: string, key: string, unit: string): string {
  const word = new RegExp(`^${key}=(\\S+)`, "m").exec(unitText)?.[1];
  if (word === undefined) throw new Error(`${unit} has no ${key}=: is this a native-mode render of perimeter render -t vps?`);
  return word;
}

export function renderFacts(renderDirectory: string): RenderFacts {
  const manifest = JSON.parse(readFileSync(join(renderDirectory, "manifest.json"), "utf8")) as Manifest;
  const unit = (name: string) => readFileSync(join(renderDirectory, "files/etc/systemd/system", name), "utf8");
  return {
    units: manifest.units,
    agentUser: manifest.agent.user,
    agentUid: manifest.agent.uid,
    adminUsers: manifest.ssh.adminUsers,
    perimeterExecutable: firstWordOf(unit("perimeter-egress-proxy.service"), "ExecStart", "perimeter-egress-proxy.service"),
    agentPython: firstWordOf(unit(AGENT_UNIT), "ExecStart", AGENT_UNIT),
  };
}

/** Loopback listeners the agent must not dial (the firewall's loopback wall): the ones every render has. */
export const PROTECTED_LOOPBACK = ["dashboard", "mcp-guard admin", "egress-proxy metrics"] as const;

/**
 * What the stand-in tries to dial on loopback and must be refused: the dashboard, mcp-guard's admin listener, the
 * audit feeds' metrics listeners (from the render's perimeter.yaml and its socket units), as name → HOST:PORT.
 */
export function protectedLoopback(renderDirectory: string): Record<string, string> {
  const runtime = parseYaml(readFileSync(join(renderDirectory, "files/etc/perimeter/perimeter.yaml"), "utf8")) as {
    dashboard: { listen: string };
    mcp: { admin: { listen: string } };
    egress: { metrics: string };
  };
  const found: Record<string, string> = { dashboard: runtime.dashboard.listen, "mcp-guard admin": runtime.mcp.admin.listen, "egress-proxy metrics": runtime.egress.metrics };
  const metricsSocket = join(renderDirectory, "files/etc/systemd/system/perimeter-sandbox-metrics-proxy.socket");
  try {
    const listen = /^ListenStream=(\S+)$/m.exec(readFileSync(metricsSocket, "utf8"))?.[1];
    if (listen !== undefined) found["sandbox metrics (socket proxy)"] = listen;
  } catch {
    // No network-less sandbox runner in this render: no socket proxy for its feed.
  }
  return found;
}

/**
 * Fills every empty variable of the render's env files under ROOT with a fresh random value, one value per name, so
 * the pairs the render says must match (the agent's token in mcp-guard and the agent, its virtual key in llm-proxy
 * and the agent, ...) do. Returns the names filled; values are never printed.
 */
export function fillEnvFiles(renderDirectory: string, root: string): string[] {
  const manifest = JSON.parse(readFileSync(join(renderDirectory, "manifest.json"), "utf8")) as Manifest;
  const values = new Map<string, string>();
  const filled: string[] = [];
  for (const envFile of manifest.envFiles) {
    const path = join(root, envFile.path);
    let text = readFileSync(path, "utf8");
    for (const key of envFile.keys) {
      if (!values.has(key)) values.set(key, randomBytes(32).toString("hex"));
      const before = text;
      text = text.replace(new RegExp(`^${key}=[ \\t]*$`, "m"), `${key}=${values.get(key)}`);
      if (text !== before) filled.push(`${envFile.path}: ${key}`);
    }
    // In place: the file keeps the owner and 0600 mode apply gave it.
    writeFileSync(path, text);
  }
  return filled;
}

export type Phase = "firewall" | "unit-filter" | "control";

export interface Check {
  readonly name: string;
  readonly pass: boolean;
  readonly saw: string;
  readonly want: string;
}

interface Outcome {
  readonly outcome?: string;
  readonly ms?: number;
  readonly status?: number | string;
}

/** The last PERIMETER-PROOF line of a journal (the newest probe), parsed; undefined when there is none. */
export function lastObservation(journal: string): Record<string, unknown> | undefined {
  const line = journal
    .split("\n")
    .filter((entry) => entry.includes(PROOF_PREFIX))
    .at(-1);
  if (line === undefined) return undefined;
  return JSON.parse(line.slice(line.indexOf(PROOF_PREFIX) + PROOF_PREFIX.length)) as Record<string, unknown>;
}

const OUTSIDE = ["192.0.2.1:443", "2001:db8::1:443"];
/** A refusal that happens at once, not after a timeout or a failed neighbour lookup. */
const REFUSED_AT_ONCE_MS = 1000;

function describe(value: Outcome | undefined): string {
  if (value === undefined) return "nothing";
  return [value.outcome ?? "?", value.status === undefined ? "" : ` ${value.status}`, value.ms === undefined ? "" : ` in ${value.ms} ms`].join("");
}

/**
 * What the agent's unit (phases firewall and unit-filter) or a process outside it (control) must have seen, for a
 * UDP datagram and a TCP connect to each TEST-NET address (reachable only over the container's dead-end link).
 * firewall: the firewall's uid rule comes first on the way out (netfilter's output hook runs before the cgroup
 * egress filter) and rejects at once. unit-filter: the firewall's table is gone, so only the unit's IPAddressDeny
 * BPF program is left: sendto() returns its EPERM at once, and the TCP connect never completes (TCP ignores the
 * dropped SYN's error and retries until it times out). control: without the filter the datagram is sent and nothing
 * says EPERM, so the EPERM above is the unit's.
 */
export function judge(observation: Record<string, unknown> | undefined, phase: Phase, agentUid: number): Check[] {
  if (observation === undefined) return [{ name: "probe line", pass: false, saw: "no PERIMETER-PROOF line in the journal", want: "the stand-in's report" }];
  const checks: Check[] = [];
  const check = (name: string, pass: boolean, saw: string, want: string) => checks.push({ name, pass, saw, want });
  check("stand-in reported", observation.stand_in === true, String(observation.stand_in), "true");
  const outside = (observation.outside ?? {}) as Record<string, Outcome | undefined>;
  for (const address of OUTSIDE) {
    const udp = outside[`udp ${address}`];
    const tcp = outside[`tcp ${address}`];
    const fast = (seen: Outcome | undefined) => (seen?.ms ?? Number.POSITIVE_INFINITY) < REFUSED_AT_ONCE_MS;
    const refusedAtOnce = (seen: Outcome | undefined) => fast(seen) && ["EHOSTUNREACH", "EPERM", "EACCES"].includes(seen?.outcome ?? "");
    const neverConnected = (seen: Outcome | undefined) => seen?.outcome !== undefined && seen.outcome !== "connected" && !seen.outcome.startsWith("error");
    if (phase === "firewall") {
      check(`udp ${address}`, refusedAtOnce(udp), describe(udp), "refused at once (EPERM, EACCES or EHOSTUNREACH)");
      // The reject answers a TCP SYN with an ICMP error, which the kernel rate-limits (1 s for ICMPv6): refused, not
      // necessarily at once.
      check(`tcp ${address}`, ["EHOSTUNREACH", "EPERM", "EACCES"].includes(tcp?.outcome ?? ""), describe(tcp), "refused (EHOSTUNREACH, EPERM or EACCES)");
    } else if (phase === "unit-filter") {
      check(`udp ${address}`, fast(udp) && udp?.outcome === "EPERM", describe(udp), `EPERM in < ${REFUSED_AT_ONCE_MS} ms (the unit's IPAddressDeny)`);
      check(`tcp ${address}`, neverConnected(tcp), describe(tcp), "never connected");
    } else {
      check(`udp ${address} (control)`, udp?.outcome === "sent", describe(udp), "sent (no filter outside the unit)");
      check(`tcp ${address} (control)`, neverConnected(tcp) && tcp?.outcome !== "EPERM", describe(tcp), "not EPERM, not connected (dead-end link)");
    }
  }
  // The loopback wall (the firewall's uid rules before its lo accept): the agent is reset at once on each protected
  // port, while a process outside the unit reaches the same ports (so they were listening). Without the firewall the
  // unit's IPAddressAllow=localhost lets the agent through: unit-filter does not judge them.
  const loopback = (observation.loopback_protected ?? {}) as Record<string, Outcome | undefined>;
  const names = new Set([...PROTECTED_LOOPBACK, ...Object.keys(loopback)]);
  for (const name of [...names].sort()) {
    const seen = loopback[name];
    if (phase === "firewall") check(`loopback refused: ${name}`, seen?.outcome === "ECONNREFUSED" && (seen.ms ?? Number.POSITIVE_INFINITY) < REFUSED_AT_ONCE_MS, describe(seen), "ECONNREFUSED at once (the firewall's reset)");
    if (phase === "control") check(`loopback ${name} (control)`, seen?.outcome === "connected", describe(seen), "connected (it listens; the refusal above is the agent's)");
  }
  if (phase === "control") return checks;
  check("runs as the agent's uid", observation.uid === agentUid, String(observation.uid), String(agentUid));
  check("perimeter services listening", observation.perimeter_ready === true, String(observation.perimeter_ready), "true");
  const get = (key: string) => observation[key] as Outcome | undefined;
  check("loopback: egress proxy", get("egress_proxy_tcp")?.outcome === "connected", describe(get("egress_proxy_tcp")), "connected");
  check("egress proxy refuses example.com", / 403 /.test(String(get("egress_proxy_refused_host")?.status ?? "")), describe(get("egress_proxy_refused_host")), "HTTP/1.1 403");
  check("loopback: llm-proxy /models", get("llm_proxy_models")?.status === 200, describe(get("llm_proxy_models")), "200");
  check("loopback: mcp-guard initialize", get("mcp_guard_initialize")?.status === 200, describe(get("mcp_guard_initialize")), "200");
  check("agent's .env not writable", ["EACCES", "EROFS"].includes(get("env_file_write")?.outcome ?? ""), describe(get("env_file_write")), "EACCES or EROFS");
  check("agent's .env not replaceable", get("env_file_replace")?.outcome === "EBUSY", describe(get("env_file_replace")), "EBUSY (a mount point)");
  check("services' secrets hidden", ["EACCES", "ENOENT", "EPERM"].includes(get("service_secrets_read")?.outcome ?? ""), describe(get("service_secrets_read")), "EACCES");
  return checks;
}

/** `perimeter verify host --format json`: whether its host.agent-ip-filter result has the status the mode expects. */
export function ipFilterVerdict(reportJson: string, want: "PASS" | "FAIL"): Check {
  let results: ReadonlyArray<{ id?: string; status?: string; evidence?: string }> = [];
  try {
    results = (JSON.parse(reportJson) as { results?: typeof results }).results ?? [];
  } catch {
    return { name: "host.agent-ip-filter", pass: false, saw: `no JSON report (${reportJson.slice(0, 120)})`, want };
  }
  const result = results.find((entry) => entry.id === "host.agent-ip-filter");
  return { name: "host.agent-ip-filter", pass: result?.status === want, saw: result === undefined ? "no such check in the report" : `${result.status ?? "?"}: ${result.evidence ?? ""}`, want };
}

export function formatChecks(title: string, checks: readonly Check[]): string {
  const width = Math.max(...checks.map((entry) => entry.name.length));
  return [title, ...checks.map((entry) => `  ${entry.pass ? "ok  " : "FAIL"} ${entry.name.padEnd(width)}  saw: ${entry.saw}${entry.pass ? "" : `  (want ${entry.want})`}`)].join("\n");
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function cli(args: readonly string[]): Promise<number> {
  const [command, first, second] = args;
  if (command === "facts" && first !== undefined) {
    const facts = renderFacts(first);
    // KEY=VALUE lines the shell script reads one by one (never evaluates).
    process.stdout.write(
      [
        `units=${facts.units.join(" ")}`,
        `agent_user=${facts.agentUser}`,
        `agent_uid=${facts.agentUid}`,
        `admin_users=${facts.adminUsers.join(" ")}`,
        `perimeter_executable=${facts.perimeterExecutable}`,
        `agent_python=${facts.agentPython}`,
        "",
      ].join("\n"),
    );
    return 0;
  }
  if (command === "ip-filter" && (first === "PASS" || first === "FAIL")) {
    const check = ipFilterVerdict(await readStdin(), first);
    process.stdout.write(`${formatChecks("  verify host:", [check])}\n`);
    return check.pass ? 0 : 1;
  }
  if (command === "protected-ports" && first !== undefined) {
    process.stdout.write(`${JSON.stringify(protectedLoopback(first))}\n`);
    return 0;
  }
  if (command === "fill-env" && first !== undefined && second !== undefined) {
    for (const entry of fillEnvFiles(first, second)) process.stdout.write(`  filled ${entry}\n`);
    return 0;
  }
  if (command === "judge" && (first === "firewall" || first === "unit-filter" || first === "control") && second !== undefined) {
    const checks = judge(lastObservation(await readStdin()), first, Number(second));
    process.stdout.write(`${formatChecks(`  probe (${first}):`, checks)}\n`);
    return checks.every((entry) => entry.pass) ? 0 : 1;
  }
  process.stderr.write("usage: proof.ts facts RENDER_DIR | fill-env RENDER_DIR ROOT | protected-ports RENDER_DIR | ip-filter PASS|FAIL < report | judge firewall|unit-filter|control AGENT_UID < journal\n");
  return 2;
}

if (import.meta.main) process.exitCode = await cli(process.argv.slice(2));
