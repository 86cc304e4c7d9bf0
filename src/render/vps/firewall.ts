// The host firewall of the VPS target (seed 004, "Firewall and network exposure"), as one nftables table of our
// own: inbound closed except SSH from the admin paths, loopback and replies; the agent's uid may send only over
// loopback (a second wall behind its unit's IPAddressDeny), and on loopback only the ports it is given; optionally the whole host's new outbound connections
// limited to an allowlist. A separate table leaves the distribution's and the operator's own tables alone: a packet
// must be accepted by every base chain on a hook, so our drop policy holds whatever another table accepts.
import { isIP } from "node:net";
import type { HostConfig, PerimeterConfig } from "../../config/index.ts";
import { RenderError, portOf } from "../plan.ts";

export const FIREWALL_TABLE = "perimeter";

function familyOf(cidr: string): "ip" | "ip6" {
  return isIP(cidr.split("/")[0] ?? "") === 6 ? "ip6" : "ip";
}

function set(values: readonly (string | number)[]): string {
  return values.length === 1 ? String(values[0]) : `{ ${values.join(", ")} }`;
}

/**
 * The loopback ports the agent's uid may dial: the egress proxy, llm-proxy and mcp-guard's agent listener (the ways
 * out its config names), and its own listeners (the API server and dashboard Hermes serves: its own processes may call them). Everything else on this
 * host's loopback — the dashboard, mcp-guard's admin listener, the audit feeds, the sandbox runner (mcp-guard's to
 * call), MCP servers declared by url, the operator's own services, the local DNS resolver — is refused to that uid.
 */
export function agentLoopbackPorts(config: PerimeterConfig): number[] {
  const ports = [portOf(config.egress.listen), portOf(config.llm.listen), portOf(config.mcp.listen)];
  if (config.agent.apiServer.enabled) ports.push(config.agent.apiServer.port);
  if (config.agent.dashboard.enabled) ports.push(config.agent.dashboard.port);
  return [...new Set(ports)].sort((a, b) => a - b);
}

export function nftablesRuleset(host: HostConfig, agentPorts: readonly number[]): string {
  const ssh = host.ssh;
  const agent = host.agent.uid;
  if (agentPorts.length === 0) throw new RenderError("internal: the agent must be given at least one loopback port");
  const lines = [
    "#!/usr/sbin/nft -f",
    "# perimeter host firewall, rendered by perimeter render -t vps (seed 004). Loaded by perimeter-firewall.service;",
    "# checked before install with nft -c. Only the table below is replaced: other tables are left as they are.",
    `table inet ${FIREWALL_TABLE} {}`,
    `delete table inet ${FIREWALL_TABLE}`,
    `table inet ${FIREWALL_TABLE} {`,
    "  chain input {",
    "    type filter hook input priority filter; policy drop;",
    '    iifname "lo" accept',
    "    ct state invalid drop",
    "    ct state established,related accept",
    "    # ICMP errors and neighbour discovery keep IPv6 and path-MTU discovery working; pings are rate-limited.",
    "    ip protocol icmp icmp type { destination-unreachable, time-exceeded, parameter-problem } accept",
    "    ip protocol icmp icmp type echo-request limit rate 5/second accept",
    "    ip6 nexthdr icmpv6 icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept",
    "    ip6 nexthdr icmpv6 icmpv6 type echo-request limit rate 5/second accept",
  ];
  if (ssh.tailscale) {
    lines.push('    # SSH over Tailscale: only what arrives on the tailnet interface.', `    iifname "tailscale0" tcp dport ${ssh.port} accept`);
  }
  for (const family of ["ip", "ip6"] as const) {
    const ranges = ssh.adminCidrs.filter((range) => familyOf(range) === family);
    if (ranges.length > 0) lines.push(`    ${family} saddr ${set(ranges)} tcp dport ${ssh.port} accept`);
  }
  lines.push(
    "  }",
    "",
    "  chain forward {",
    "    type filter hook forward priority filter; policy drop;",
    "    # This host routes nothing (the container mode uses the host's network, no bridge).",
    "  }",
    "",
    "  chain output {",
    `    type filter hook output priority filter; policy ${host.firewall.outboundAllow === undefined ? "accept" : "drop"};`,
    // Before the blanket loopback accept: the unit's IPAddressAllow=localhost opens every loopback port, so this is
    // the only per-port wall between the agent and the dashboard (its lockout), approvals and the feeds.
    "    # The agent's uid on loopback: only the ports it is given; replies from its own listeners pass. Anything else is",
    "    # refused at once (a reset for TCP), so the agent fails fast instead of waiting on a dropped packet.",
    `    meta skuid ${agent} oifname "lo" ct state established,related accept`,
    `    meta skuid ${agent} oifname "lo" ip daddr 127.0.0.1 tcp dport ${set(agentPorts)} accept`,
    `    meta skuid ${agent} oifname "lo" ip6 daddr ::1 tcp dport ${set(agentPorts)} accept`,
    `    meta skuid ${agent} oifname "lo" meta l4proto tcp counter reject with tcp reset`,
    `    meta skuid ${agent} oifname "lo" counter reject with icmpx type admin-prohibited`,
    '    oifname "lo" accept',
    "    # Second wall for the agent (the first is IPAddressDeny in its unit): its uid sends nothing but loopback.",
    `    meta skuid ${agent} counter reject with icmpx type admin-prohibited`,
    "    ct state established,related accept",
  );
  if (host.firewall.outboundAllow !== undefined) {
    lines.push("    # Outbound allowlist for the whole host (host.firewall.outboundAllow); everything else is dropped.");
    for (const entry of host.firewall.outboundAllow) {
      lines.push(`    ${familyOf(entry.cidr)} daddr ${entry.cidr} ${entry.protocol} dport ${set(entry.ports)} accept`);
    }
    lines.push(
      "    ip6 nexthdr icmpv6 icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept",
      "    counter log prefix \"perimeter-outbound-denied \" level info",
    );
  }
  lines.push("  }", "}");
  return `${lines.join("\n")}\n`;
}
