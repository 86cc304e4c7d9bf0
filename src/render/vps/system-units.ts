// The VPS's units around the services: the socket proxies into the network-less sandbox runner, the daily encrypted
// backup, and the firewall loader.
import type { HostConfig, PerimeterConfig } from "../../config/index.ts";
import { RUNTIME_CONFIG_PATH, STATE_DIRECTORY } from "../plan.ts";
import { FIREWALL_TABLE } from "./firewall.ts";
import { FIREWALL_UNIT, NFTABLES_PATH, SERVICE_UNITS, SOCKET_PROXYD, local } from "./common.ts";
import { hardening } from "./units.ts";
import type { Unit } from "./units.ts";

/**
 * The way into the network-less sandbox runner: a loopback socket and a proxy inside the runner's namespace, for
 * mcp-guard's calls (perimeter-sandbox-proxy) and for the dashboard's reads of its health and audit feed
 * (perimeter-sandbox-metrics-proxy).
 */
export function sandboxProxyUnits(name: string, port: number, carries: string): Unit[] {
  const runner = `${SERVICE_UNITS.sandbox}.service`;
  return [
    {
      name: `${name}.socket`,
      description: `perimeter sandbox runner's listener on 127.0.0.1:${port}`,
      unit: [["PartOf", `${name}.service`]],
      kind: "Socket",
      service: [["ListenStream", local(port)], ["FreeBind", "no"]],
      install: [["WantedBy", "sockets.target"]],
    },
    {
      name: `${name}.service`,
      description: `perimeter: carries ${carries} into the sandbox runner's network namespace`,
      unit: [["Requires", `${runner} ${name}.socket`], ["After", `${runner} ${name}.socket`], ["JoinsNamespaceOf", runner]],
      notes: [`Joins the runner's private network namespace; the listening socket comes from ${name}.socket.`],
      service: [
        // Not notify: systemd-socket-proxyd sends no READY=1 (systemd 252/255), so the unit would stay activating
        // and be killed at TimeoutStartSec (socket-proxy.test.ts; seen on a booted host by vps-nspawn-proof.sh).
        ["Type", "exec"],
        ["ExecStart", `${SOCKET_PROXYD} ${local(port)}`],
        ["DynamicUser", "yes"],
        ["PrivateNetwork", "yes"],
        ...hardening({ internet: false }).filter(([key]) => key !== "RestrictAddressFamilies"),
        ["RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"],
        ["PrivateMounts", "yes"],
        ["MemoryDenyWriteExecute", "yes"],
      ],
    },
  ];
}

/**
 * Daily encrypted backup (seed 004: "back up ~/.hermes, but encrypt it"), with the command line docs/backup.md
 * keeps stable. It runs as root only to read the agent's 0700 data directory (CAP_DAC_READ_SEARCH, nothing else),
 * with no network, and sees mcp-guard's state (tool calls and approvals) as the audit log to snapshot.
 */
export function backupUnits(config: PerimeterConfig, host: HostConfig): Unit[] {
  const backup = config.backup;
  if (backup === undefined) return [];
  return [
    {
      name: "perimeter-backup.service",
      description: `perimeter encrypted backup (${config.name})`,
      unit: [["After", `${SERVICE_UNITS["mcp-guard"]}.service`]],
      notes: ["One shot, no network, read-only everywhere but the backup directory."],
      service: [
        ["Type", "oneshot"],
        ["ExecStart", `${host.perimeterExecutable} backup create -c ${RUNTIME_CONFIG_PATH}`],
        ["Environment", '"HOME=/tmp"'],
        ["User", "root"],
        ["ReadWritePaths", backup.directory],
        ["BindReadOnlyPaths", `/var/lib/${SERVICE_UNITS["mcp-guard"]}:${STATE_DIRECTORY}`],
        ...hardening({ internet: false }).filter(([key]) => !["CapabilityBoundingSet", "RestrictAddressFamilies", "PrivateUsers"].includes(key)),
        ["CapabilityBoundingSet", "CAP_DAC_READ_SEARCH"],
        ["RestrictAddressFamilies", "AF_UNIX"],
        ["PrivateNetwork", "yes"],
        ["PrivateMounts", "yes"],
        ["MemoryDenyWriteExecute", "no"],
      ],
    },
    {
      name: "perimeter-backup.timer",
      description: `daily perimeter backup (${config.name})`,
      unit: [],
      kind: "Timer",
      service: [["OnCalendar", "daily"], ["RandomizedDelaySec", "1h"], ["Persistent", "true"]],
      install: [["WantedBy", "timers.target"]],
    },
  ];
}

export function firewallUnit(): Unit {
  return {
    name: FIREWALL_UNIT,
    description: `perimeter host firewall (nftables table inet ${FIREWALL_TABLE})`,
    unit: [
      ["DefaultDependencies", "no"],
      ["Before", "network-pre.target shutdown.target"],
      ["Wants", "network-pre.target"],
      // After Debian's nftables.service, whose /etc/nftables.conf starts with "flush ruleset".
      ["After", "nftables.service local-fs.target"],
      ["Conflicts", "shutdown.target"],
    ],
    notes: ["Loads only the perimeter table (the file deletes and recreates it), so reloading is atomic and idempotent."],
    service: [
      ["Type", "oneshot"],
      ["RemainAfterExit", "yes"],
      ["ExecStart", `/usr/sbin/nft -f ${NFTABLES_PATH}`],
      ["ExecReload", `/usr/sbin/nft -f ${NFTABLES_PATH}`],
      ["ExecStop", `/usr/sbin/nft delete table inet ${FIREWALL_TABLE}`],
      ["CapabilityBoundingSet", "CAP_NET_ADMIN"],
      ["NoNewPrivileges", "yes"],
      ["ProtectSystem", "strict"],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
      ["PrivateDevices", "yes"],
      ["DevicePolicy", "closed"],
      ["ProtectClock", "yes"],
      ["ProtectHostname", "yes"],
      ["ProtectControlGroups", "yes"],
      ["ProtectKernelModules", "yes"],
      ["ProtectKernelLogs", "yes"],
      ["ProtectKernelTunables", "yes"],
      ["ProtectProc", "invisible"],
      ["ProcSubset", "pid"],
      ["RestrictNamespaces", "yes"],
      ["RestrictSUIDSGID", "yes"],
      ["RestrictRealtime", "yes"],
      ["LockPersonality", "yes"],
      ["MemoryDenyWriteExecute", "yes"],
      ["RemoveIPC", "yes"],
      ["PrivateMounts", "yes"],
      ["UMask", "0077"],
      ["RestrictAddressFamilies", "AF_NETLINK AF_UNIX"],
      ["IPAddressDeny", "any"],
      ["SystemCallArchitectures", "native"],
      ["SystemCallFilter", "@system-service"],
      ["SystemCallFilter", "~@privileged @resources @mount @debug @cpu-emulation @obsolete @raw-io @reboot @swap @clock @module"],
      ["SystemCallErrorNumber", "EPERM"],
    ],
    install: [["WantedBy", "sysinit.target"]],
  };
}
