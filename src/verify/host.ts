// `verify host`: seed 004's monthly review of one host (vps and local), done by the machine. Facts come from the
// programs that own them — `sshd -T` for the effective SSH settings, `nft` for the loaded firewall, `ss` for the
// listening sockets, `fail2ban-client`, the audit log's own verification — and from files under --root (an image
// directory in tests, / on a host). Each check says where to fix what it finds.
import { execFile } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { PerimeterConfig } from "../config/index.ts";
import { splitHostPort } from "../config/index.ts";
import { IP_FILTER_CHECK, agentIpFilterCheck, agentUidProblems, firewallHoldsAgent } from "./ip-filter.ts";
import { fail, pass, skip, warn } from "./model.ts";
import type { CheckResult, VerifyTarget } from "./model.ts";

export interface CommandOutput {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the program could not start (not installed). */
  readonly missing?: boolean;
}

export type Exec = (file: string, args: readonly string[]) => Promise<CommandOutput>;

/** Runs a program with a deadline; never throws. */
export const execProgram: Exec = (file, args) =>
  new Promise((resolve) => {
    execFile(file, [...args], { timeout: 8000, maxBuffer: 4 * 1024 * 1024, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === "number" ? ((error as { code: number }).code) : null;
      resolve({ code, stdout, stderr, ...((error as NodeJS.ErrnoException | null)?.code === "ENOENT" ? { missing: true } : {}) });
    });
  });

export interface HostOptions {
  readonly config: PerimeterConfig;
  readonly target: VerifyTarget;
  /** Where the host's files are: / on a host, an image directory in tests. */
  readonly root: string;
  /** The agent's data directory (Hermes' ~/.hermes). */
  readonly dataDirectory: string | undefined;
  /** The agent's uid, when known (vps: host.agent.uid; local: --agent-pid's). */
  readonly agentUid: number | undefined;
  /** sshd's main config file; undefined: <root>/etc/ssh/sshd_config. */
  readonly sshdConfig?: string;
  /** Listen addresses the deployment declares (HOST:PORT), allowed on non-loopback addresses. */
  readonly declaredListens: readonly string[];
  /** Audit databases to verify. */
  readonly auditPaths: readonly string[];
  /** The agent's environment when known (local --agent-pid), for allow-all switches set there. */
  readonly agentEnvironment?: Readonly<Record<string, string>>;
  /** Ports verify itself listens on (its canary), never reported as the host's. */
  readonly ownPorts?: readonly number[];
  readonly exec?: Exec;
  readonly now?: Date;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function modeText(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}

/** A VPS is what seed 004 reviews; on local, host checks about the machine apply only with a host: section. */
function machineScope(options: HostOptions): boolean {
  return options.target === "vps" || options.config.host !== undefined;
}

async function sshdCheck(options: HostOptions, exec: Exec): Promise<CheckResult> {
  const id = "host.sshd";
  if (!machineScope(options)) return skip(id, "host", "no host: section: this machine's SSH is not managed by the perimeter (add host: to review it)");
  const file = options.sshdConfig ?? join(options.root, "etc/ssh/sshd_config");
  if (readText(file) === undefined) {
    return machineScope(options) ? fail(id, "host", `no sshd configuration at ${file}`, "install openssh-server and apply the render (perimeter host apply DIR)") : skip(id, "host", `no sshd configuration at ${file}`);
  }
  const result = await exec("sshd", ["-T", "-f", file, "-C", "user=perimeter-verify,host=verify.invalid,addr=192.0.2.1"]);
  if (result.missing === true) return skip(id, "host", "sshd is not installed here");
  if (result.code !== 0) return fail(id, "host", `sshd -T refused ${file}: ${result.stderr.trim().slice(0, 300)}`, "fix the file sshd names (sshd -t), then reload ssh");
  const settings = new Map(result.stdout.split("\n").map((line) => line.trim().split(/\s+/, 2) as [string, string]).filter((entry) => entry.length === 2));
  const wrong: string[] = [];
  if (settings.get("permitrootlogin") !== "no") wrong.push(`permitrootlogin ${settings.get("permitrootlogin") ?? "unset"}`);
  if (settings.get("passwordauthentication") !== "no") wrong.push(`passwordauthentication ${settings.get("passwordauthentication") ?? "unset"}`);
  const keyboard = settings.get("kbdinteractiveauthentication") ?? settings.get("challengeresponseauthentication");
  if (keyboard !== "no") wrong.push(`kbdinteractiveauthentication ${keyboard ?? "unset"}`);
  if (wrong.length > 0) {
    return fail(id, "host", `effective sshd settings (sshd -T): ${wrong.join(", ")}`, "the render's /etc/ssh/sshd_config.d/00-perimeter.conf must sort first and be included by sshd_config; remove the lines that turn these on, then sshd -t && systemctl reload ssh");
  }
  return pass(id, "host", "sshd -T: permitrootlogin no, passwordauthentication no, kbdinteractiveauthentication no");
}

export interface Listener {
  readonly address: string;
  readonly port: number;
  readonly process: string;
}

/** `ss -ltnH -p` lines: State Recv-Q Send-Q Local:Port Peer:Port [users:(...)]. */
export function parseListeners(text: string): Listener[] {
  const listeners: Listener[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5) continue;
    const local = fields[3] as string;
    const split = local.lastIndexOf(":");
    if (split < 0) continue;
    const address = local.slice(0, split).replace(/^\[|\]$/g, "").replace(/%.*$/, "");
    const port = Number(local.slice(split + 1));
    if (!Number.isInteger(port)) continue;
    const users = /users:\(\("([^"]+)"/.exec(line);
    listeners.push({ address: address === "*" ? "0.0.0.0" : address, port, process: users?.[1] ?? "" });
  }
  return listeners;
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "::1" || address === "::ffff:127.0.0.1";
}

async function listenersCheck(options: HostOptions, exec: Exec, sshPort: number): Promise<{ result: CheckResult; listeners: Listener[] | undefined }> {
  const id = "host.listeners";
  const result = await exec("ss", ["-ltnH", "-p"]);
  if (result.missing === true || result.code !== 0) return { result: fail(id, "host", `ss could not list sockets: ${result.stderr.trim() || "not installed"}`, "install iproute2"), listeners: undefined };
  const listeners = parseListeners(result.stdout).filter((entry) => !(options.ownPorts ?? []).includes(entry.port));
  const declared = new Set(
    options.declaredListens.flatMap((value) => {
      const parsed = splitHostPort(value);
      return parsed === undefined ? [] : [`${parsed.host.replace(/^\[|\]$/g, "")}:${parsed.port}`];
    }),
  );
  const agent = options.config.agent;
  const agentPorts = [agent.apiServer.enabled ? agent.apiServer.port : undefined, agent.dashboard.enabled ? agent.dashboard.port : undefined].filter((port) => port !== undefined);
  const exposed = listeners.filter((entry) => !isLoopback(entry.address) && entry.port !== sshPort && !declared.has(`${entry.address}:${entry.port}`));
  const agentExposed = listeners.filter((entry) => !isLoopback(entry.address) && agentPorts.includes(entry.port));
  const describe = (entries: readonly Listener[]) => entries.map((entry) => `${entry.address.includes(":") ? `[${entry.address}]` : entry.address}:${entry.port}${entry.process === "" ? "" : ` (${entry.process})`}`).join(", ");
  if (agentExposed.length > 0) {
    return { result: fail(id, "host", `the agent's API server or dashboard listens beyond loopback: ${describe(agentExposed)}`, "bind API_SERVER_HOST / the dashboard to 127.0.0.1 (the render does) and reach them over an SSH tunnel or Tailscale"), listeners };
  }
  if (exposed.length > 0) {
    return { result: fail(id, "host", `listening beyond loopback and not declared: ${describe(exposed)}`, "bind these services to 127.0.0.1, or stop them; only SSH and the perimeter's declared listeners may face a network"), listeners };
  }
  const outside = listeners.filter((entry) => !isLoopback(entry.address));
  return { result: pass(id, "host", `${listeners.length} listening sockets; beyond loopback only ${outside.length === 0 ? "nothing" : describe(outside)}`), listeners };
}

async function firewallCheck(options: HostOptions, exec: Exec): Promise<{ result: CheckResult; ruleset: string | undefined }> {
  const id = "host.firewall";
  if (!machineScope(options)) return { result: skip(id, "host", "no host: section: the local target does not manage this machine's firewall"), ruleset: undefined };
  const result = await exec("nft", ["list", "table", "inet", "perimeter"]);
  if (result.missing === true) return { result: fail(id, "host", "nft is not installed: no firewall can be loaded", "apt-get install nftables, then systemctl restart perimeter-firewall"), ruleset: undefined };
  if (result.code !== 0) return { result: fail(id, "host", `the perimeter firewall table is not loaded (nft: ${result.stderr.trim().slice(0, 200)})`, "systemctl enable --now perimeter-firewall (it loads /etc/perimeter/nftables.nft)"), ruleset: undefined };
  const ruleset = result.stdout;
  const problems: string[] = [];
  if (!/hook input priority [^;]*; policy drop;/.test(ruleset)) problems.push("input policy is not drop");
  const uid = options.config.host?.agent.uid;
  if (uid !== undefined) problems.push(...agentUidProblems(ruleset, uid));
  if (problems.length > 0) return { result: fail(id, "host", `table inet perimeter is loaded but ${problems.join("; ")}`, "re-apply the render (perimeter host apply DIR) and restart perimeter-firewall; do not edit the table by hand"), ruleset };
  return { result: pass(id, "host", `table inet perimeter loaded: input policy drop${uid === undefined ? "" : `, agent uid ${uid} held to loopback and to its own ports there`}`), ruleset };
}

/** Whether the loaded ruleset accepts SSH from any address (no saddr and no interface on the rule). */
export function sshOpenToWorld(ruleset: string, port: number): boolean {
  return ruleset.split("\n").some((line) => new RegExp(`tcp dport (${port}|\\{[^}]*\\b${port}\\b[^}]*\\}) .*accept`).test(line) && !/saddr|iifname/.test(line));
}

async function sshExposureAndFail2ban(options: HostOptions, exec: Exec, ruleset: string | undefined, listeners: Listener[] | undefined, sshPort: number): Promise<CheckResult[]> {
  if (!machineScope(options)) return [skip("host.ssh-exposure", "host", "no host: section"), skip("host.fail2ban", "host", "no host: section")];
  const ssh = options.config.host?.ssh;
  const declaredPublic = ssh?.allowPublic === true;
  const listening = (listeners ?? []).some((entry) => entry.port === sshPort && !isLoopback(entry.address));
  const open = ruleset !== undefined && sshOpenToWorld(ruleset, sshPort);
  const results: CheckResult[] = [];
  if (open && !declaredPublic) {
    results.push(fail("host.ssh-exposure", "host", `the firewall accepts SSH (port ${sshPort}) from any address and host.ssh.allowPublic is not set`, "restrict SSH to host.ssh.adminCidrs or tailscale0 (re-apply the render), or declare host.ssh.allowPublic: true with fail2ban"));
  } else {
    results.push(pass("host.ssh-exposure", "host", open ? `SSH open to the world, as declared (host.ssh.allowPublic)` : `SSH ${listening ? "listening" : "not listening"} beyond loopback; the firewall accepts it only from ${ssh === undefined ? "nowhere declared" : [...ssh.adminCidrs, ...(ssh.tailscale ? ["tailscale0"] : [])].join(", ") || "nowhere"}`));
  }
  if (!(open || declaredPublic)) {
    results.push(pass("host.fail2ban", "host", "SSH is not public: fail2ban is optional"));
  } else {
    const status = await exec("fail2ban-client", ["status", "sshd"]);
    results.push(
      status.code === 0 && /Currently banned/.test(status.stdout)
        ? pass("host.fail2ban", "host", `SSH is public and the sshd jail is active (${/Currently banned:\s*(\d+)/.exec(status.stdout)?.[1] ?? "?"} banned)`)
        : fail("host.fail2ban", "host", `SSH is public and the fail2ban sshd jail is not active (${(status.stderr || status.stdout).trim().slice(0, 200) || "fail2ban-client missing"})`, "systemctl enable --now fail2ban (the render's jail is /etc/fail2ban/jail.d/perimeter.local)"),
    );
  }
  return results;
}

function updatesCheck(options: HostOptions): CheckResult {
  const id = "host.updates";
  if (!machineScope(options)) return skip(id, "host", "no host: section");
  const directory = join(options.root, "etc/apt/apt.conf.d");
  let text = "";
  try {
    for (const name of readdirSync(directory)) text += `${readText(join(directory, name)) ?? ""}\n`;
  } catch {
    return fail(id, "host", `${directory} does not exist: not a Debian/Ubuntu host, or APT is not configured`, "apply the render (it writes 20auto-upgrades) and apt-get install unattended-upgrades");
  }
  const periodic = (key: string) => new RegExp(`APT::Periodic::${key}\\s+"([^"]*)"`).exec(text)?.[1];
  const unattended = periodic("Unattended-Upgrade");
  const lists = periodic("Update-Package-Lists");
  if (unattended === undefined || unattended === "0" || lists === undefined || lists === "0") {
    return fail(id, "host", `automatic security updates are off (APT::Periodic::Unattended-Upgrade "${unattended ?? "unset"}", Update-Package-Lists "${lists ?? "unset"}")`, 'set both to "1" in /etc/apt/apt.conf.d/20auto-upgrades (the render does) and install unattended-upgrades');
  }
  return pass(id, "host", `APT::Periodic::Update-Package-Lists "${lists}", Unattended-Upgrade "${unattended}"`);
}

function permissionsCheck(options: HostOptions): CheckResult {
  const id = "host.data-permissions";
  if (options.dataDirectory === undefined) return skip(id, "host", "the agent's data directory is not known (pass --data-dir, or set host: or backup.dataDirectory)");
  const directory = join(options.root, options.dataDirectory);
  let status;
  try {
    status = statSync(directory);
  } catch {
    return fail(id, "host", `the agent's data directory ${directory} does not exist`, "create it 0700 owned by the agent's user (the render's tmpfiles.d does at boot)");
  }
  const problems: string[] = [];
  if ((status.mode & 0o077) !== 0) problems.push(`${directory} is ${modeText(status.mode)} (want 0700)`);
  if (options.agentUid !== undefined && status.uid !== options.agentUid) problems.push(`${directory} is owned by uid ${status.uid}, not the agent's ${options.agentUid}`);
  try {
    const env = statSync(join(directory, ".env"));
    if ((env.mode & 0o077) !== 0) problems.push(`.env is ${modeText(env.mode)} (want 0600: it holds the agent's tokens)`);
    if (options.agentUid !== undefined && env.uid !== options.agentUid && env.uid !== 0) problems.push(`.env is owned by uid ${env.uid}`);
  } catch {
    // No .env is not a leak.
  }
  if (problems.length > 0) return fail(id, "host", problems.join("; "), `chmod 700 ${options.dataDirectory}; chmod 600 ${options.dataDirectory}/.env; chown the agent's user (systemd-tmpfiles --create re-applies the render's modes)`);
  return pass(id, "host", `${directory} ${modeText(status.mode)}${options.agentUid === undefined ? "" : ` owned by uid ${status.uid}`}, .env not readable by others`);
}

/** Hermes' config.yaml and the .env it loads: approvals mode and allow-all switches. */
function agentSettingsChecks(options: HostOptions): CheckResult[] {
  if (options.dataDirectory === undefined) {
    return [skip("host.approvals", "host", "the agent's data directory is not known (pass --data-dir)"), skip("host.allow-all-users", "host", "the agent's data directory is not known (pass --data-dir)")];
  }
  const directory = join(options.root, options.dataDirectory);
  const results: CheckResult[] = [];
  const configText = readText(join(directory, "config.yaml"));
  let mode: unknown;
  try {
    mode = configText === undefined ? undefined : (parseYaml(configText) as { approvals?: { mode?: unknown } } | null)?.approvals?.mode;
  } catch {
    mode = "unreadable";
  }
  if (configText === undefined) results.push(warn("host.approvals", "host", `no ${join(directory, "config.yaml")}: Hermes' default approvals apply`, "seed the render's config.yaml (approvals.mode: manual)"));
  else if (mode === "off" || mode === "yolo" || mode === false) results.push(fail("host.approvals", "host", `Hermes' approvals.mode is ${String(mode)} in config.yaml: the agent runs anything unasked`, `set approvals.mode: ${options.config.agent.approvals} in ${join(options.dataDirectory, "config.yaml")} and restart the gateway`));
  else if (mode === "unreadable") results.push(fail("host.approvals", "host", "config.yaml is not valid YAML", "fix the file; Hermes may be running on defaults"));
  else results.push(pass("host.approvals", "host", `approvals.mode is ${String(mode ?? "unset (Hermes' default: manual)")}`));

  const sources: Array<{ where: string; text: string }> = [];
  for (const file of [join(directory, ".env"), join(options.root, "etc/perimeter/hermes.env")]) {
    const text = readText(file);
    if (text !== undefined) sources.push({ where: file, text });
  }
  if (options.agentEnvironment !== undefined) sources.push({ where: "the agent's environment", text: Object.entries(options.agentEnvironment).map(([name, value]) => `${name}=${value}`).join("\n") });
  const open: string[] = [];
  for (const source of sources) {
    for (const match of source.text.matchAll(/^\s*(?:export\s+)?([A-Z_]*ALLOW_ALL_USERS)\s*=\s*["']?(true|1|yes)["']?\s*$/gim)) open.push(`${match[1]}=${match[2]} in ${source.where}`);
  }
  results.push(
    open.length > 0
      ? fail("host.allow-all-users", "host", `the gateway answers everyone: ${open.join("; ")}`, "remove it and list the users in <PLATFORM>_ALLOWED_USERS (agent.platforms.*.allowedUsers)")
      : pass("host.allow-all-users", "host", `no *_ALLOW_ALL_USERS switch on in ${sources.map((source) => source.where).join(", ") || "any file found"}`),
  );
  return results;
}

function dockerSocketCheck(options: HostOptions): CheckResult {
  const id = "host.docker-socket";
  const uid = options.agentUid;
  const present = ["var/run/docker.sock", "run/docker.sock"].map((path) => join(options.root, path)).filter((path) => {
    try {
      return statSync(path) !== undefined;
    } catch {
      return false;
    }
  });
  if (present.length === 0) return pass(id, "host", "no Docker socket on this host");
  if (uid === undefined) return warn(id, "host", `${present.join(", ")} present and the agent's user is not known`, "pass --agent-pid, or set host: so the agent's uid is known");
  const groups = readText(join(options.root, "etc/group")) ?? "";
  const user = readText(join(options.root, "etc/passwd"))?.split("\n").find((line) => line.split(":")[2] === String(uid))?.split(":")[0];
  const reachable = present.filter((path) => {
    const status = statSync(path);
    if (uid === 0 || status.uid === uid || (status.mode & 0o006) === 0o006) return true;
    const group = groups.split("\n").find((line) => line.split(":")[2] === String(status.gid));
    return (status.mode & 0o060) === 0o060 && user !== undefined && (group?.split(":")[3] ?? "").split(",").includes(user);
  });
  return reachable.length > 0
    ? fail(id, "host", `the agent's uid ${uid} can use ${reachable.join(", ")} (root on the host)`, "take the agent's user out of the docker group (gpasswd -d USER docker); never chmod the socket")
    : pass(id, "host", `${present.join(", ")} not usable by the agent's uid ${uid}`);
}

function backupCheck(options: HostOptions): CheckResult {
  const id = "host.backup";
  const backup = options.config.backup;
  if (backup === undefined) return machineScope(options) ? warn(id, "host", "no backup: section: the agent's data directory is not backed up", "add backup: (age recipients) and re-render; the vps render adds a daily timer") : skip(id, "host", "no backup: section");
  const directory = join(options.root, backup.directory);
  const pattern = new RegExp(`^${options.config.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-(\\d{8})T(\\d{6})Z\\.tar\\.age$`);
  let newest: Date | undefined;
  try {
    for (const name of readdirSync(directory)) {
      const match = pattern.exec(name);
      if (match === null) continue;
      const [date, time] = [match[1] as string, match[2] as string];
      const at = new Date(`${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6)}T${time.slice(0, 2)}:${time.slice(2, 4)}:${time.slice(4)}Z`);
      if (newest === undefined || at > newest) newest = at;
    }
  } catch {
    // handled below
  }
  if (newest === undefined) return fail(id, "host", `no backup archive in ${directory}`, "perimeter backup create -c FILE (the vps render's perimeter-backup.timer runs it daily)");
  const hours = ((options.now ?? new Date()).getTime() - newest.getTime()) / 3_600_000;
  // The timer is daily; a day and two hours leaves room for its randomised delay.
  if (hours > 26) return fail(id, "host", `the newest backup is ${hours.toFixed(1)} h old (${newest.toISOString()}); the schedule is daily`, "systemctl status perimeter-backup.timer perimeter-backup.service; run perimeter backup create");
  return warn(id, "host", `newest backup ${hours.toFixed(1)} h old (${newest.toISOString()}); whether its last verify passed is not recorded`, "run perimeter backup verify on it (with the identity kept off this host) and keep its output");
}

async function auditCheck(options: HostOptions): Promise<CheckResult> {
  const id = "host.audit-chain";
  const { verifyAuditLog } = await import("../audit-log/index.ts");
  const verified: string[] = [];
  for (const path of options.auditPaths) {
    let result;
    try {
      statSync(path);
      result = verifyAuditLog(path);
    } catch (error) {
      return fail(id, "host", `${path}: ${(error as Error).message}`, "check the audit path in the config and the file's owner");
    }
    if (!result.ok) {
      return fail(id, "host", `${path}: the hash chain is broken at record ${String((result as { firstBrokenSeq?: number }).firstBrokenSeq)}: ${String((result as { reason?: string }).reason)}`, "keep the file for investigation (perimeter audit-log verify shows where); restore the audit log from the last verified backup");
    }
    verified.push(`${path} (${String((result as { records?: number }).records ?? "?")} records)`);
  }
  return verified.length === 0 ? skip(id, "host", "no audit database found") : pass(id, "host", `hash chain verifies: ${verified.join(", ")}`);
}

/** The agent unit's IPAddressDeny, asked of this host's running systemd (vps only; see ip-filter.ts). */
function ipFilterCheck(options: HostOptions, exec: Exec, ruleset: string | undefined): Promise<CheckResult> {
  const host = options.config.host;
  if (options.target !== "vps" || host === undefined) return Promise.resolve(skip(IP_FILTER_CHECK, "host", "not the vps target: no agent unit to probe"));
  if (options.root !== "/") return Promise.resolve(skip(IP_FILTER_CHECK, "host", `--root ${options.root} is not this running host: the check asks its systemd`));
  return agentIpFilterCheck({ agentUnit: "hermes-gateway.service", mode: host.agent.mode, firewallHoldsAgent: firewallHoldsAgent(ruleset, host.agent.uid), exec });
}

export async function hostResults(options: HostOptions): Promise<CheckResult[]> {
  const exec = options.exec ?? execProgram;
  const sshPort = options.config.host?.ssh.port ?? 22;
  const [sshd, listening, firewall, audit] = await Promise.all([sshdCheck(options, exec), listenersCheck(options, exec, sshPort), firewallCheck(options, exec), auditCheck(options)]);
  const exposure = await sshExposureAndFail2ban(options, exec, firewall.ruleset, listening.listeners, sshPort);
  return [
    sshd,
    ...exposure.slice(0, 1),
    firewall.result,
    await ipFilterCheck(options, exec, firewall.ruleset),
    listening.result,
    updatesCheck(options),
    permissionsCheck(options),
    ...agentSettingsChecks(options),
    dockerSocketCheck(options),
    ...exposure.slice(1),
    backupCheck(options),
    audit,
  ];
}


