// `host.agent-ip-filter`: whether systemd really enforces the agent unit's IPAddressDeny=. systemd loads that filter
// as a cgroup BPF program; where it cannot (a container-based VPS, systemd-nspawn without CAP_BPF and the bpf()
// call, a kernel without cgroup BPF) it starts the unit anyway and says so only at debug level, so the unit file and
// `systemctl show` look right while nothing is filtered. Two facts decide:
//   1. a live probe: a transient unit with the agent's IPAddressDeny=any + IPAddressAllow=localhost sends one UDP
//      datagram to 192.0.2.1:9 (TEST-NET-1, routed nowhere on the internet). An enforced filter makes sendto() fail
//      with EPERM at once; "sent" means no filter. It runs as a dynamic user, not the agent's: the firewall's uid rule
//      meets the agent's packets first (netfilter's output hook runs before the cgroup egress program) and would
//      answer EPERM itself. A second transient unit without the filter is the control: when it is refused too (the
//      firewall's outbound allowlist, no route), the live probe proves nothing.
//   2. the running agent unit's IP accounting (IPAccounting=yes in the render, the same BPF mechanism): a number in
//      IPIngressBytes means its programs are attached, "[no data]" that they are not.
import { fail, pass, skip, warn } from "./model.ts";
import type { CheckResult } from "./model.ts";
import type { Exec } from "./host.ts";

export const IP_FILTER_CHECK = "host.agent-ip-filter";
/** TEST-NET-1 (RFC 5737) and the discard port: documentation space, never routed to a host on the internet. */
export const PROBE_TARGET = { host: "192.0.2.1", port: 9 } as const;

const PROBE = [
  "import errno, socket",
  "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
  "try:",
  `    s.sendto(b"perimeter-verify", ("${PROBE_TARGET.host}", ${PROBE_TARGET.port}))`,
  '    print("sent")',
  "except OSError as error:",
  "    print(errno.errorcode.get(error.errno, str(error.errno)))",
].join("\n");

export interface IpFilterOptions {
  readonly agentUnit: string;
  /** native: Hermes in the unit's cgroup; container: in Docker's, where the unit's filter never applies. */
  readonly mode: "native" | "container";
  /** Whether the loaded firewall holds the agent's uid to loopback (host.firewall); undefined when unknown. */
  readonly firewallHoldsAgent: boolean | undefined;
  readonly exec: Exec;
  readonly python?: string;
}

/** The transient unit's command line: the agent's address filter, a dynamic user, one datagram. */
export function probeCommand(filtered: boolean, python = "/usr/bin/python3"): string[] {
  const filter = filtered ? ["-p", "IPAddressDeny=any", "-p", "IPAddressAllow=localhost"] : [];
  return ["--quiet", "--wait", "--pipe", "--collect", "-p", "DynamicUser=yes", ...filter, python, "-c", PROBE];
}

export function parseShow(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split("\n")) {
    const equals = line.indexOf("=");
    if (equals > 0) values.set(line.slice(0, equals), line.slice(equals + 1).trim());
  }
  return values;
}

/** Whether the running unit's BPF programs are attached, read from its IP accounting; undefined: cannot tell. */
export function accountingAttached(show: Map<string, string>): boolean | undefined {
  if (show.get("IPAccounting") !== "yes" || show.get("ActiveState") !== "active") return undefined;
  const bytes = show.get("IPIngressBytes") ?? "";
  if (/^\d+$/.test(bytes) && bytes !== "18446744073709551615") return true;
  return false;
}

/**
 * The agent's two walls in the loaded output chain: a reject/drop for its uid off loopback, and — before the blanket
 * `oifname "lo" accept`, which would otherwise hand it every loopback port (the dashboard, mcp-guard's admin
 * listener, the audit feeds) — a reject/drop for its uid on lo after the accepts for the ports it is given.
 */
export function agentUidProblems(ruleset: string, uid: number): string[] {
  const lines = ruleset.split("\n");
  const start = lines.findIndex((line) => /hook output\b/.test(line));
  const next = lines.findIndex((line, index) => index > start && /^\s*chain /.test(line));
  const output = start < 0 ? [] : lines.slice(start, next < 0 ? undefined : next);
  const refuses = (line: string) => new RegExp(`\\bskuid ${uid} .*\\b(reject|drop)\\b`).test(line);
  const onLoopback = (line: string) => /oifname "lo"/.test(line);
  const problems: string[] = [];
  if (!output.some((line) => refuses(line) && !onLoopback(line))) problems.push(`no rule holds the agent's uid ${uid} to loopback`);
  const blanket = output.findIndex((line) => /^\s*oifname "lo" accept/.test(line));
  const wall = output.findIndex((line) => refuses(line) && onLoopback(line));
  if (wall < 0 || (blanket >= 0 && blanket < wall)) problems.push(`nothing holds the agent's uid ${uid} to its own ports on loopback (it reaches the dashboard, mcp-guard's admin listener and the audit feeds)`);
  return problems;
}

/** Whether a loaded ruleset (undefined: none loaded) refuses the agent's uid everything off loopback. */
export function firewallHoldsAgent(ruleset: string | undefined, uid: number): boolean {
  return ruleset !== undefined && !agentUidProblems(ruleset, uid).some((problem) => problem.startsWith("no rule holds"));
}

type Outcome = { readonly ran: true; readonly seen: string } | { readonly ran: false; readonly error: string };

async function runProbe(exec: Exec, filtered: boolean, python: string | undefined): Promise<Outcome> {
  const result = await exec("systemd-run", probeCommand(filtered, python));
  if (result.missing === true) return { ran: false, error: "systemd-run is not installed" };
  const seen = result.stdout.trim().split("\n").at(-1)?.trim() ?? "";
  if (result.code !== 0 || seen === "") return { ran: false, error: (result.stderr.trim() || `exit ${String(result.code)}`).slice(0, 200) };
  return { ran: true, seen };
}

function wallsLeft(firewallHoldsAgent: boolean | undefined): string {
  if (firewallHoldsAgent === true) return "the firewall's uid rule (table inet perimeter) is the agent's only network wall: keep perimeter-firewall.service enabled";
  if (firewallHoldsAgent === false) return "and the firewall's uid rule is not loaded either: the agent has NO network wall until you systemctl enable --now perimeter-firewall";
  return "check that the firewall's uid rule holds the agent (perimeter verify host: host.firewall); it is then the only wall";
}

const NOT_ENFORCED_FIX =
  "run the agent on a host whose kernel and systemd load cgroup BPF programs (a KVM/Xen VPS or bare metal with cgroup v2, not a container-based VPS; in systemd-nspawn grant --capability=CAP_BPF --system-call-filter=bpf), then systemctl restart the agent's unit";

export async function agentIpFilterCheck(options: IpFilterOptions): Promise<CheckResult> {
  const id = IP_FILTER_CHECK;
  if (options.mode === "container") {
    return skip(id, "host", "container mode: the agent runs in Docker's cgroup, not its unit's, so no IPAddressDeny applies; the firewall's uid rule is its wall (host.firewall)");
  }
  const shown = await options.exec("systemctl", ["show", options.agentUnit, "-p", "LoadState", "-p", "ActiveState", "-p", "IPAddressDeny", "-p", "IPAccounting", "-p", "IPIngressBytes"]);
  if (shown.missing === true || (shown.code !== 0 && /not been booted with systemd|Failed to connect to bus|Host is down/i.test(shown.stderr))) {
    return skip(id, "host", `systemd is not PID 1 here (${(shown.stderr.trim() || "systemctl missing").slice(0, 120)}): no unit filter to probe`);
  }
  const show = parseShow(shown.stdout);
  if (show.get("LoadState") !== "loaded") {
    return fail(id, "host", `${options.agentUnit} is not installed (LoadState=${show.get("LoadState") ?? "?"})`, "perimeter host apply DIR installs it");
  }
  if ((show.get("IPAddressDeny") ?? "") === "") {
    return fail(id, "host", `${options.agentUnit} sets no IPAddressDeny=`, "re-render with perimeter render -t vps and perimeter host apply: the agent's unit needs IPAddressDeny=any and IPAddressAllow=localhost");
  }
  const attached = accountingAttached(show);
  const accounting = attached === undefined ? `IPAccounting=${show.get("IPAccounting") ?? "?"}, ${show.get("ActiveState") ?? "?"}` : `IPIngressBytes=${show.get("IPIngressBytes") ?? "?"}`;
  const probe = await runProbe(options.exec, true, options.python);
  if (probe.ran && probe.seen === "sent") {
    return fail(
      id,
      "host",
      `systemd does not enforce IPAddressDeny= here: a transient unit with the agent's IPAddressDeny=any sent a datagram to ${PROBE_TARGET.host}:${PROBE_TARGET.port} (no cgroup BPF program; ${accounting}); ${wallsLeft(options.firewallHoldsAgent)}`,
      NOT_ENFORCED_FIX,
    );
  }
  let live: string;
  if (probe.ran && probe.seen === "EPERM") {
    const control = await runProbe(options.exec, false, options.python);
    if (control.ran && control.seen === "sent") {
      if (attached === false) {
        return fail(id, "host", `systemd enforces IPAddressDeny= for new units, but the running ${options.agentUnit} has no IP programs attached (${accounting})`, `systemctl restart ${options.agentUnit}, then run this check again`);
      }
      return pass(id, "host", `IPAddressDeny= enforced: a transient unit with the agent's filter got EPERM for a datagram to ${PROBE_TARGET.host}:${PROBE_TARGET.port}, the same without the filter was sent; ${options.agentUnit}: ${accounting}`);
    }
    live = `the control without the filter was refused too (${control.ran ? control.seen : control.error}): something else (the firewall's outbound allowlist, no route) stops the datagram`;
  } else {
    live = probe.ran ? `the probe saw ${probe.seen}, neither EPERM nor sent` : `the probe did not run: ${probe.error}`;
  }
  // The live probe could not tell: the running unit's own accounting decides.
  if (attached === true) return pass(id, "host", `${options.agentUnit}'s IP programs are attached (${accounting}); live probe inconclusive: ${live}`);
  if (attached === false) {
    return fail(id, "host", `${options.agentUnit} runs without its IP programs (${accounting}): its IPAddressDeny= is not enforced; ${wallsLeft(options.firewallHoldsAgent)} (live probe inconclusive: ${live})`, NOT_ENFORCED_FIX);
  }
  return warn(id, "host", `cannot tell whether ${options.agentUnit}'s IPAddressDeny= is enforced: ${live}; ${accounting}`, "run perimeter verify host as root on the host (systemd-run needs it), with the agent's unit running and IPAccounting=yes in it (the current render sets it)");
}
