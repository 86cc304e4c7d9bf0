// Requirements (issue 17 follow-up): `host.agent-ip-filter` tells an operator whether systemd enforces the agent
// unit's IPAddressDeny=, which a systemd that cannot load cgroup BPF programs skips in silence. Each verdict is fed
// what the real tools printed on Debian 12 (systemd 252) inside scripts/vps-nspawn-proof.sh's container, with
// CAP_BPF and bpf() granted (enforced) and withheld (PERIMETER_NSPAWN_BPF=0: not enforced); the booted proof runs
// the same check against the live systemd both ways.
import { test } from "node:test";
import assert from "node:assert/strict";
import { IP_FILTER_CHECK, accountingAttached, agentIpFilterCheck, parseShow, probeCommand } from "./ip-filter.ts";
import type { CommandOutput, Exec } from "./host.ts";

// systemctl show hermes-gateway.service -p LoadState -p ActiveState -p IPAddressDeny -p IPAccounting -p IPIngressBytes
// (3082: the running agent unit after its start-up probes, with CAP_BPF; [no data]: the same without)
const SHOW_252_ACCOUNTING = "IPIngressBytes=3082\nIPAccounting=yes\nIPAddressDeny=::/0 0.0.0.0/0\nLoadState=loaded\nActiveState=active\n";
const SHOW_252_NO_BPF = "IPIngressBytes=[no data]\nIPAccounting=yes\nIPAddressDeny=::/0 0.0.0.0/0\nLoadState=loaded\nActiveState=active\n";
const SHOW_252_NO_ACCOUNTING = "IPIngressBytes=[no data]\nIPAccounting=no\nIPAddressDeny=::/0 0.0.0.0/0\nLoadState=loaded\nActiveState=active\n";
const SHOW_NOT_FOUND = "IPIngressBytes=[no data]\nIPAccounting=no\nIPAddressDeny=\nLoadState=not-found\nActiveState=inactive\n";
const NOT_BOOTED = "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n";

interface Script {
  readonly show: CommandOutput;
  /** What the transient unit printed with the agent's filter, and without it (the control). */
  readonly filtered?: CommandOutput;
  readonly control?: CommandOutput;
}

const out = (stdout: string, code = 0, stderr = ""): CommandOutput => ({ code, stdout, stderr });

function fakeExec(script: Script): { exec: Exec; calls: string[][] } {
  const calls: string[][] = [];
  const exec: Exec = async (file, args) => {
    calls.push([file, ...args]);
    if (file === "systemctl") return script.show;
    if (file === "systemd-run") {
      const answer = args.includes("IPAddressDeny=any") ? script.filtered : script.control;
      if (answer === undefined) throw new Error(`unexpected systemd-run ${args.join(" ")}`);
      return answer;
    }
    throw new Error(`unexpected ${file}`);
  };
  return { exec, calls };
}

async function verdict(script: Script, firewallHoldsAgent: boolean | undefined = true) {
  const { exec, calls } = fakeExec(script);
  const result = await agentIpFilterCheck({ agentUnit: "hermes-gateway.service", mode: "native", firewallHoldsAgent, exec });
  assert.equal(result.id, IP_FILTER_CHECK);
  return { result, calls };
}

test("enforced (systemd 252 with cgroup BPF): EPERM with the agent's filter, sent without it → PASS", async () => {
  const { result, calls } = await verdict({ show: out(SHOW_252_ACCOUNTING), filtered: out("EPERM\n"), control: out("sent\n") });
  assert.equal(result.status, "PASS", result.evidence);
  assert.match(result.evidence, /IPIngressBytes=3082/);
  // The probe runs as a dynamic user, never the agent's uid (the firewall's uid rule would answer EPERM itself).
  const probes = calls.filter(([file]) => file === "systemd-run");
  assert.equal(probes.length, 2);
  for (const probe of probes) {
    assert.ok(probe.includes("DynamicUser=yes") && !probe.some((argument) => argument.startsWith("User=")), probe.join(" "));
    assert.ok(probe.some((argument) => argument.includes('("192.0.2.1", 9)')), "TEST-NET-1 only");
  }
  assert.ok(probes[0]?.includes("IPAddressDeny=any") && probes[0].includes("IPAddressAllow=localhost"), "the agent's own filter");
});

test("attack: not enforced (systemd 252 in nspawn without CAP_BPF): the filtered datagram is sent → FAIL, saying which wall is left", async () => {
  const withFirewall = await verdict({ show: out(SHOW_252_NO_BPF), filtered: out("sent\n") }, true);
  assert.equal(withFirewall.result.status, "FAIL");
  assert.match(withFirewall.result.evidence, /does not enforce IPAddressDeny=/);
  assert.match(withFirewall.result.evidence, /firewall's uid rule .* is the agent's only network wall/);
  assert.match(withFirewall.result.fix ?? "", /cgroup BPF/);
  const withoutFirewall = await verdict({ show: out(SHOW_252_NO_BPF), filtered: out("sent\n") }, false);
  assert.equal(withoutFirewall.result.status, "FAIL");
  assert.match(withoutFirewall.result.evidence, /NO network wall/);
});

test("attack: the probe inconclusive (the firewall's outbound allowlist refuses the control too) and the running unit unaccounted → FAIL from its counters", async () => {
  const { result } = await verdict({ show: out(SHOW_252_NO_BPF), filtered: out("EPERM\n"), control: out("EPERM\n") });
  assert.equal(result.status, "FAIL");
  assert.match(result.evidence, /runs without its IP programs \(IPIngressBytes=\[no data\]\)/);
  assert.match(result.evidence, /control without the filter was refused too/);
});

test("the probe inconclusive but the running unit's counters move → PASS from its accounting", async () => {
  const { result } = await verdict({ show: out(SHOW_252_ACCOUNTING), filtered: out("ENETUNREACH\n") });
  assert.equal(result.status, "PASS");
  assert.match(result.evidence, /attached .*IPIngressBytes=3082.*inconclusive: the probe saw ENETUNREACH/);
});

test("enforced for new units but the running agent unit started without its programs → FAIL: restart it", async () => {
  const { result } = await verdict({ show: out(SHOW_252_NO_BPF), filtered: out("EPERM\n"), control: out("sent\n") });
  assert.equal(result.status, "FAIL");
  assert.match(result.fix ?? "", /systemctl restart hermes-gateway\.service/);
});

test("no way to tell (systemd-run refused, an old render without IPAccounting) → WARN that says how to make it tell", async () => {
  const { result } = await verdict({ show: out(SHOW_252_NO_ACCOUNTING), filtered: out("", 1, "Failed to start transient service unit: Access denied\n") });
  assert.equal(result.status, "WARN");
  assert.match(result.evidence, /Access denied/);
  assert.match(result.fix ?? "", /as root/);
});

test("the unit missing or without IPAddressDeny → FAIL; systemd not PID 1 or container mode → SKIP with the reason", async () => {
  assert.equal((await verdict({ show: out(SHOW_NOT_FOUND) })).result.status, "FAIL");
  const noDeny = await verdict({ show: out(SHOW_252_ACCOUNTING.replace("IPAddressDeny=::/0 0.0.0.0/0", "IPAddressDeny=")) });
  assert.equal(noDeny.result.status, "FAIL");
  assert.match(noDeny.result.evidence, /sets no IPAddressDeny=/);
  const notBooted = await verdict({ show: out("", 1, NOT_BOOTED) });
  assert.equal(notBooted.result.status, "SKIP");
  assert.match(notBooted.result.evidence, /not PID 1/);
  assert.equal(notBooted.calls.length, 1, "no probe without systemd");
  const { exec, calls } = fakeExec({ show: out(SHOW_252_ACCOUNTING) });
  const container = await agentIpFilterCheck({ agentUnit: "hermes-gateway.service", mode: "container", firewallHoldsAgent: true, exec });
  assert.equal(container.status, "SKIP");
  assert.match(container.evidence, /Docker's cgroup/);
  assert.equal(calls.length, 0);
});

test("parsing: counters attached only for a number while active with IPAccounting=yes; UINT64_MAX is no data", () => {
  assert.equal(accountingAttached(parseShow(SHOW_252_ACCOUNTING)), true);
  assert.equal(accountingAttached(parseShow(SHOW_252_NO_BPF)), false);
  assert.equal(accountingAttached(parseShow(SHOW_252_NO_BPF.replace("[no data]", "18446744073709551615"))), false);
  assert.equal(accountingAttached(parseShow(SHOW_252_NO_ACCOUNTING)), undefined);
  assert.equal(accountingAttached(parseShow(SHOW_252_ACCOUNTING.replace("ActiveState=active", "ActiveState=inactive"))), undefined);
  assert.deepEqual(probeCommand(false).filter((argument) => argument.startsWith("IPAddress")), []);
});
