// `perimeter host apply DIR [--dry-run] [--root DIR]`: installs a `render -t vps` directory on this host.
// Idempotent (unchanged files are not touched and nothing restarts for them), it prints every change before making
// it, checks every file with the tool that will read it (nft -c, sshd -t, fail2ban-client -t, systemd-analyze
// verify) and refuses, before changing anything, when the SSH session it runs in would be locked out.
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { EXIT_FINDINGS, EXIT_OK, UsageError, parseCommandArgs, writeLine } from "../../cli/index.ts";
import type { Command, CommandIo } from "../../cli/index.ts";
import { checkLockout } from "./lockout.ts";
import type { Manifest, ManifestFile, Validator } from "./render.ts";
import { AGENT_UNIT, FIREWALL_UNIT, UNIT_DIRECTORY } from "./render.ts";
import { FIREWALL_TABLE } from "./firewall.ts";
import { agentIpFilterCheck, firewallHoldsAgent } from "../../verify/index.ts";

const HELP = `Usage: perimeter host apply DIR [--dry-run] [--root DIR]

Installs a directory written by perimeter render -t vps on this host (run as root):
  1. refuses when your SSH session ($SSH_CLIENT, your login user) would be locked out by the new firewall or sshd
     settings, or when no admin user has an authorized key;
  2. prints what it will change (new, changed, kept files; owners and modes);
  3. checks each file with the tool that reads it: nft -c, sshd -t (on a full sshd_config that includes it),
     fail2ban-client -t, systemd-analyze verify; nothing is installed when one fails;
  4. installs changed files atomically, creates users (systemd-sysusers) and directories (systemd-tmpfiles),
     reloads systemd, loads the firewall, reloads sshd, restarts what changed and enables every unit.
Files marked seed (env files, the agent's config.yaml) are written only when absent. Running it twice changes nothing.
  --dry-run   steps 1-3 only
  --root DIR  install under DIR instead of / (an image being prepared); no systemctl, no live firewall
`;

interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly error?: Error;
}

function run(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): RunResult {
  const result = spawnSync(command, args, { encoding: "utf8", env: env ?? { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, timeout: 60_000 });
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "", ...(result.error === undefined ? {} : { error: result.error }) };
}

type Change = "new" | "changed" | "unchanged" | "kept" | "mode";

interface PlannedFile {
  readonly file: ManifestFile;
  readonly target: string;
  readonly content: Buffer;
  readonly change: Change;
}

function runSucceeded(result: RunResult): string | undefined {
  return result.status === 0 ? result.stdout : undefined;
}

function readManifest(directory: string): Manifest {
  const path = join(directory, "manifest.json");
  if (!existsSync(path)) throw new UsageError(`host apply: ${directory} has no manifest.json: give a directory written by perimeter render -t vps`);
  const manifest = JSON.parse(readFileSync(path, "utf8")) as Manifest;
  if (manifest.version !== 1 || !Array.isArray(manifest.files)) throw new UsageError(`host apply: ${path} is not a vps render manifest (version 1): re-render with this perimeter`);
  for (const file of manifest.files) {
    // The manifest names absolute host paths; refuse anything that could climb out of --root.
    if (!file.path.startsWith("/") || file.path.split("/").includes("..") || file.source.split("/").includes("..")) throw new UsageError(`host apply: ${path} names an unsafe path ${file.path}`);
  }
  return manifest;
}

function passwd(root: string): Map<string, { uid: number; gid: number; home: string }> {
  const users = new Map<string, { uid: number; gid: number; home: string }>();
  const path = join(root, "etc/passwd");
  if (!existsSync(path)) return users;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const [name, , uid, gid, , home] = line.split(":");
    if (name !== undefined && name !== "" && uid !== undefined && gid !== undefined) users.set(name, { uid: Number(uid), gid: Number(gid), home: home ?? "" });
  }
  return users;
}

function plan(manifest: Manifest, directory: string, root: string): PlannedFile[] {
  return manifest.files.map((file) => {
    const content = readFileSync(join(directory, file.source));
    const target = join(root, file.path);
    if (!existsSync(target)) return { file, target, content, change: "new" };
    if (file.seed === true) return { file, target, content, change: "kept" };
    const same = readFileSync(target).equals(content);
    const modeSame = (statSync(target).mode & 0o7777) === Number.parseInt(file.mode, 8);
    return { file, target, content, change: same ? (modeSame ? "unchanged" : "mode") : "changed" };
  });
}

function diffOf(target: string, source: string): string {
  const result = run("diff", ["-u", "--label", `${target} (installed)`, "--label", `${target} (render)`, target, source]);
  return result.stdout;
}

/** Checks one file with the program that will read it. Returns the problem, or undefined. */
function validate(validator: Validator, source: string, file: ManifestFile, root: string, scratch: string, units: string): string | undefined {
  if (validator === "nft") {
    const result = run("nft", ["-c", "-f", source]);
    return result.status === 0 ? undefined : `nft -c rejected ${file.path}: ${(result.error?.message ?? result.stderr).trim()}`;
  }
  if (validator === "sshd") {
    // The effective configuration is what matters: the drop-in first, then the host's own sshd_config (whose
    // Include of sshd_config.d follows), exactly as sshd reads them once the file is installed.
    const main = existsSync(join(root, "etc/ssh/sshd_config")) ? join(root, "etc/ssh/sshd_config") : "/etc/ssh/sshd_config";
    const wrapper = join(scratch, "sshd_config");
    writeFileSync(wrapper, `Include ${source}\nInclude ${main}\n`);
    // ssh.service creates its privilege-separation directory at start; sshd -t insists on it even when stopped.
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    const result = run("sshd", ["-t", "-f", wrapper]);
    return result.status === 0 ? undefined : `sshd -t rejected ${file.path}: ${(result.error?.message ?? result.stderr).trim()}`;
  }
  if (validator === "fail2ban") {
    const base = existsSync(join(root, "etc/fail2ban/jail.conf")) ? join(root, "etc/fail2ban") : "/etc/fail2ban";
    if (!existsSync(join(base, "jail.conf"))) return `fail2ban is not installed (no ${base}/jail.conf): apt install fail2ban, then apply again`;
    const copy = join(scratch, "fail2ban");
    cpSync(base, copy, { recursive: true });
    mkdirSync(join(copy, "jail.d"), { recursive: true });
    copyFileSync(source, join(copy, "jail.d", basename(file.path)));
    const result = run("fail2ban-client", ["-c", copy, "-t"]);
    return result.status === 0 ? undefined : `fail2ban-client -t rejected ${file.path}: ${(result.error?.message ?? `${result.stdout}${result.stderr}`).trim()}`;
  }
  if (validator === "sysusers") {
    const result = run("systemd-sysusers", ["--dry-run", `--root=${root}`, source]);
    return result.status === 0 ? undefined : `systemd-sysusers rejected ${file.path}: ${(result.error?.message ?? result.stderr).trim()}`;
  }
  // systemd-unit: verify the unit under its own name (systemd derives the type from it), with the render's other
  // units on the unit path so that Requires=/JoinsNamespaceOf= between them resolve.
  const named = join(units, basename(file.path));
  const result = run("systemd-analyze", ["verify", "--man=no", named], { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", SYSTEMD_UNIT_PATH: `${units}:` });
  const problems = `${result.stdout}${result.stderr}`
    .split("\n")
    .filter((line) => line.trim() !== "")
    // Under --root the programs live in the image, not on this machine.
    .filter((line) => !(root !== "/" && / is not executable: No such file or directory$/.test(line)));
  return problems.length === 0 ? undefined : `systemd-analyze verify: ${problems.join("; ")}`;
}

function installFile(planned: PlannedFile, users: Map<string, { uid: number; gid: number }>): void {
  const { target, file, content } = planned;
  mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
  const owner = users.get(file.owner);
  const group = users.get(file.group);
  if (owner === undefined || group === undefined) throw new Error(`user ${file.owner} does not exist after systemd-sysusers`);
  // Same directory, so the rename is atomic: a reader sees the old file or the new one, never half of it.
  const temporary = join(dirname(target), `.${basename(target)}.perimeter-${process.pid}`);
  try {
    writeFileSync(temporary, content, { mode: 0o600, flag: "wx" });
    chownSync(temporary, owner.uid, group.gid);
    chmodSync(temporary, Number.parseInt(file.mode, 8));
    renameSync(temporary, target);
  } finally {
    rmSync(temporary, { force: true });
  }
}

function emptyKeys(root: string, manifest: Manifest): string[] {
  const empty: string[] = [];
  for (const envFile of manifest.envFiles) {
    const path = join(root, envFile.path);
    const text = existsSync(path) ? readFileSync(path, "utf8") : "";
    for (const key of envFile.keys) {
      const match = new RegExp(`^${key}=(.*)$`, "m").exec(text);
      if (match === null || (match[1] ?? "").trim() === "") empty.push(`${envFile.path}: ${key}`);
    }
  }
  return empty;
}

function routeInterface(address: string): string | undefined {
  const result = run("ip", ["-o", "route", "get", address]);
  return /\bdev (\S+)/.exec(result.stdout)?.[1];
}

function usersWithoutKeys(root: string, adminUsers: readonly string[]): string[] {
  const users = passwd(root);
  return adminUsers.filter((user) => {
    const home = users.get(user)?.home;
    if (home === undefined || home === "") return true;
    const keys = join(root, home, ".ssh/authorized_keys");
    try {
      return !lstatSync(keys).isFile() || !/^(ssh-|ecdsa-|sk-)/m.test(readFileSync(keys, "utf8"));
    } catch {
      return true;
    }
  });
}

export async function applyVps(directory: string, options: { dryRun: boolean; root: string }, io: CommandIo): Promise<number> {
  const root = resolve(options.root);
  const manifest = readManifest(directory);
  const out = (text = "") => writeLine(io.stdout, text);

  // 1. Lockout, before anything else.
  const decision = checkLockout(manifest.ssh, {
    sshClient: io.env.SSH_CLIENT,
    loginUser: io.env.SUDO_USER ?? io.env.USER ?? io.env.LOGNAME,
    routeInterface,
    usersWithoutKeys: usersWithoutKeys(root, manifest.ssh.adminUsers),
  });
  if (!decision.allow) {
    writeLine(io.stderr, `perimeter host apply: refused, nothing was changed: ${decision.reason}`);
    return EXIT_FINDINGS;
  }
  const users = passwd(root);
  const agentNow = users.get(manifest.agent.user);
  const uidOwner = [...users].find(([, entry]) => entry.uid === manifest.agent.uid)?.[0];
  if ((agentNow !== undefined && agentNow.uid !== manifest.agent.uid) || (uidOwner !== undefined && uidOwner !== manifest.agent.user)) {
    writeLine(
      io.stderr,
      `perimeter host apply: refused, nothing was changed: the firewall's agent rule matches uid ${manifest.agent.uid}, but ${agentNow !== undefined && agentNow.uid !== manifest.agent.uid ? `user ${manifest.agent.user} has uid ${agentNow.uid}` : `uid ${manifest.agent.uid} belongs to ${uidOwner}`}: set host.agent.uid (and user) to a free pair, re-render and apply`,
    );
    return EXIT_FINDINGS;
  }

  // 2. What would change.
  const planned = plan(manifest, directory, root);
  out(`perimeter host apply: ${directory} -> ${root} (perimeter "${manifest.perimeter}")${options.dryRun ? " [dry run]" : ""}`);
  for (const note of decision.notes) out(`  note: ${note}`);
  for (const entry of planned) {
    out(`  ${entry.change.padEnd(9)} ${entry.file.path} (${entry.file.owner} ${entry.file.mode}${entry.file.seed === true ? ", seed" : ""})`);
    // Seeds may hold secrets once filled in: never show their content.
    if (entry.change === "changed" && entry.file.seed !== true) io.stdout.write(diffOf(entry.target, join(directory, entry.file.source)).replace(/^/gm, "      "));
  }

  // 3. Check every file that will be installed, with the program that reads it.
  const scratch = mkdtempSync(join(tmpdir(), "perimeter-host-apply-"));
  const problems: string[] = [];
  try {
    const units = join(scratch, "units");
    mkdirSync(units);
    for (const entry of planned) if (entry.file.validate === "systemd-unit") copyFileSync(join(directory, entry.file.source), join(units, basename(entry.file.path)));
    for (const entry of planned) {
      if (entry.file.validate === undefined) continue;
      const problem = validate(entry.file.validate, join(directory, entry.file.source), entry.file, root, mkdtempSync(join(scratch, "check-")), units);
      out(`  check     ${entry.file.path}: ${problem === undefined ? `ok (${entry.file.validate})` : "FAILED"}`);
      if (problem !== undefined) problems.push(problem);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (problems.length > 0) {
    for (const problem of problems) writeLine(io.stderr, `perimeter host apply: ${problem}`);
    writeLine(io.stderr, "perimeter host apply: refused, nothing was changed: fix the render (or install the missing tool) and apply again");
    return EXIT_FINDINGS;
  }
  const changed = planned.filter((entry) => entry.change === "new" || entry.change === "changed" || entry.change === "mode");
  if (options.dryRun) {
    out(`dry run: ${changed.length} file(s) would be written, nothing was changed`);
    return EXIT_OK;
  }
  if (process.getuid?.() !== 0) throw new UsageError("host apply: run as root (sudo perimeter host apply DIR), or use --dry-run");

  // 4. Users first (owners of the files below), then files, then directories and modes.
  const sysusers = planned.find((entry) => entry.file.path === manifest.sysusers);
  if (sysusers !== undefined && sysusers.change !== "unchanged") installFile(sysusers, passwd(root));
  const sysusersResult = run("systemd-sysusers", [`--root=${root}`, join(root, manifest.sysusers)]);
  if (sysusersResult.status !== 0) throw new Error(`systemd-sysusers failed: ${sysusersResult.stderr.trim()}`);
  const owners = passwd(root);
  owners.set("root", { uid: 0, gid: 0, home: "/root" });
  for (const entry of changed) if (entry !== sysusers) installFile(entry, owners);
  const tmpfilesResult = run("systemd-tmpfiles", [`--root=${root}`, "--create", join(root, manifest.tmpfiles)]);
  if (tmpfilesResult.status !== 0) throw new Error(`systemd-tmpfiles failed: ${tmpfilesResult.stderr.trim()}`);
  out(`installed ${changed.length} file(s)`);

  const touched = (prefix: string) => changed.some((entry) => entry.file.path.startsWith(prefix));
  const changedUnits = manifest.units.filter((unit) => changed.some((entry) => entry.file.path.endsWith(`/${unit}`)));
  const missing = emptyKeys(root, manifest);
  const actions: Array<[string, string[]]> = [["systemctl", ["daemon-reload"]], ["systemctl", ["enable", ...manifest.units]]];
  if (touched("/etc/perimeter/nftables.nft") || changedUnits.includes(FIREWALL_UNIT)) actions.push(["systemctl", ["restart", FIREWALL_UNIT]]);
  if (touched("/etc/ssh/")) actions.push(["sshd", ["-t"]], ["systemctl", ["reload", "ssh"]]);
  if (touched("/etc/fail2ban/")) actions.push(["systemctl", ["restart", "fail2ban"]]);
  if (touched("/etc/systemd/journald.conf.d/")) actions.push(["systemctl", ["restart", "systemd-journald"]]);
  const services = manifest.units.filter((unit) => unit !== FIREWALL_UNIT);
  if (missing.length > 0) {
    out("services not started: fill in these variables first (then systemctl restart the perimeter units):");
    for (const entry of missing) out(`  ${entry}`);
  } else {
    const restart = changed.some((entry) => entry.file.path.startsWith("/etc/perimeter/")) ? services : changedUnits.filter((unit) => unit !== FIREWALL_UNIT);
    if (restart.length > 0) actions.push(["systemctl", ["restart", ...restart]]);
  }
  for (const [command, args] of actions) {
    if (root !== "/") {
      out(`  skipped (--root): ${command} ${args.join(" ")}`);
      continue;
    }
    out(`  run: ${command} ${args.join(" ")}`);
    const result = run(command, args);
    if (result.status !== 0) {
      writeLine(io.stderr, `perimeter host apply: ${command} ${args.join(" ")} failed: ${(result.error?.message ?? result.stderr).trim()}`);
      return EXIT_FINDINGS;
    }
  }
  if (root !== "/") {
    out("done (--root: the agent unit's IP filter is checked on the running host, with perimeter verify host -t vps).");
    return EXIT_OK;
  }
  // systemd starts the agent's unit even where it cannot load its IPAddressDeny filter (cgroup BPF), saying so
  // only at debug level: ask it now, while the operator is watching.
  const filter = await agentIpFilterCheck({
    agentUnit: AGENT_UNIT,
    mode: readFileSync(join(directory, "files", UNIT_DIRECTORY, AGENT_UNIT), "utf8").includes("docker run") ? "container" : "native",
    firewallHoldsAgent: firewallHoldsAgent(runSucceeded(run("nft", ["list", "table", "inet", FIREWALL_TABLE])), manifest.agent.uid),
    exec: async (command, args) => {
      const result = run(command, args);
      return { code: result.status, stdout: result.stdout, stderr: result.stderr, ...((result.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT" ? { missing: true } : {}) };
    },
  });
  out(`${filter.id}: ${filter.status}: ${filter.evidence}`);
  if (filter.status === "FAIL") {
    writeLine(io.stderr, `perimeter host apply: installed, but ${filter.evidence}. Fix: ${filter.fix ?? ""}`);
    return EXIT_FINDINGS;
  }
  out("done. Keep this session open and check a new SSH login from a second terminal before closing it.");
  return EXIT_OK;
}

export const hostCommand: Command = async (args, io) => {
  const [subcommand, ...rest] = args;
  if (subcommand === undefined || subcommand === "--help" || subcommand === "-h") {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (subcommand !== "apply") throw new UsageError(`host: unknown subcommand "${subcommand}": use perimeter host apply DIR [--dry-run]`);
  const { values, positionals } = parseCommandArgs(
    "host apply",
    rest,
    { "dry-run": { type: "boolean", default: false }, root: { type: "string" }, help: { type: "boolean", short: "h", default: false } },
    true,
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const [directory] = positionals;
  if (directory === undefined || positionals.length > 1) throw new UsageError("host apply: give one render directory: perimeter host apply DIR [--dry-run]");
  return applyVps(resolve(io.cwd, directory), { dryRun: values["dry-run"] === true, root: values.root === undefined ? "/" : resolve(io.cwd, values.root) }, io);
};
