// systemd units of the VPS target. Every unit starts from one hardened base and says, per service, only what it
// must give back (the network for the two proxies, namespaces for the sandbox runner); `systemd-analyze security
// --offline=yes` scores each in src/render/vps/tools.test.ts.

export type UnitEntry = readonly [key: string, value: string];

export interface Unit {
  /** e.g. perimeter-egress-proxy.service */
  readonly name: string;
  readonly description: string;
  readonly unit: readonly UnitEntry[];
  readonly service: readonly UnitEntry[];
  /** The name of the `service` section: Service, or Socket for a .socket unit. @default Service */
  readonly kind?: "Service" | "Socket" | "Timer";
  readonly install?: readonly UnitEntry[];
  /** Extra sections (a timer's [Timer]). */
  readonly extra?: ReadonlyArray<{ section: string; entries: readonly UnitEntry[] }>;
  /** Why-comments written above the [Service] section. */
  readonly notes?: readonly string[];
}

export function unitText(unit: Unit): string {
  const lines = [`# ${unit.name}, rendered by perimeter render -t vps. Edit perimeter.yaml and re-render instead of this file.`];
  const section = (name: string, entries: readonly UnitEntry[]) => {
    lines.push("", `[${name}]`);
    for (const [key, value] of entries) lines.push(`${key}=${value}`);
  };
  section("Unit", [["Description", unit.description], ...unit.unit]);
  if (unit.notes !== undefined && unit.notes.length > 0) lines.push("", ...unit.notes.map((note) => `# ${note}`));
  section(unit.kind ?? "Service", unit.service);
  for (const extra of unit.extra ?? []) section(extra.section, extra.entries);
  if (unit.install !== undefined) section("Install", unit.install);
  return `${lines.join("\n")}\n`;
}

/**
 * The base every long-running unit gets: nothing to gain (no capabilities, no setuid, no new privileges), a
 * read-only system with private /tmp and devices, the kernel and other processes out of sight, and a system-call
 * allowlist. Services loosen it only through `loosen` below, so each exception is named where it is made.
 */
export function hardening(options: { readonly internet: boolean; readonly sandbox?: boolean }): UnitEntry[] {
  const sandbox = options.sandbox === true;
  const entries: UnitEntry[] = [
    ["NoNewPrivileges", "yes"],
    ["CapabilityBoundingSet", ""],
    ["AmbientCapabilities", ""],
    ["ProtectSystem", "strict"],
    ["ProtectHome", "yes"],
    ["PrivateTmp", "yes"],
    ["PrivateDevices", "yes"],
    ["DevicePolicy", "closed"],
    ["PrivateIPC", "yes"],
    ["ProtectClock", "yes"],
    // bwrap names each task's own UTS namespace (sethostname), which ProtectHostname's seccomp filter refuses; with no
    // capability the runner cannot rename the host anyway.
    ["ProtectHostname", sandbox ? "no" : "yes"],
    ["ProtectControlGroups", sandbox ? "no" : "yes"],
    ["ProtectKernelModules", "yes"],
    ["RestrictSUIDSGID", "yes"],
    ["RestrictRealtime", "yes"],
    ["LockPersonality", "yes"],
    ["RemoveIPC", "yes"],
    ["KeyringMode", "private"],
    ["UMask", "0077"],
    ["SystemCallArchitectures", "native"],
    ["SystemCallErrorNumber", "EPERM"],
    // bwrap brings up each task's loopback over rtnetlink (sandbox-unit.test.ts); the filter covers its tasks too,
    // whose netlink reaches only their own empty network namespace.
    ["RestrictAddressFamilies", sandbox ? "AF_UNIX AF_INET AF_INET6 AF_NETLINK" : "AF_UNIX AF_INET AF_INET6"],
  ];
  if (sandbox) {
    // bubblewrap builds every task from new user, mount, pid, net, ipc, uts and cgroup namespaces and mounts a fresh
    // /proc inside them; the kernel allows that only while the runner's own /proc is fully visible, with nothing
    // mounted over a part of it. ProtectKernelTunables and ProtectKernelLogs bind over /proc/sys and /proc/kmsg, and
    // ProcSubset=pid hides the rest, so they stay off here (bwrap then fails with "Can't mount proc"); hidepid
    // (ProtectProc) and a private user namespace (PrivateUsers, which bwrap nests in) keep it working.
    // ProtectControlGroups would make /sys/fs/cgroup read-only and cost each task its own cgroup limits (Delegate).
    entries.push(
      ["ProtectKernelTunables", "no"],
      ["ProtectKernelLogs", "no"],
      ["ProtectProc", "invisible"],
      ["RestrictNamespaces", "user mnt pid net ipc uts cgroup"],
      ["PrivateUsers", "yes"],
      // @mount and @privileged (pivot_root, capset, sethostname, setgroups) are how bwrap builds and drops into the
      // sandbox. @resources stays out: prlimit(1) and glibc set limits through prlimit64, which @system-service keeps.
      ["SystemCallFilter", "@system-service @mount @privileged"],
      ["SystemCallFilter", "~@clock @cpu-emulation @debug @module @obsolete @raw-io @reboot @swap @resources"],
    );
  } else {
    entries.push(
      ["ProtectKernelTunables", "yes"],
      ["ProtectKernelLogs", "yes"],
      ["ProtectProc", "invisible"],
      ["ProcSubset", "pid"],
      ["RestrictNamespaces", "yes"],
      ["PrivateUsers", "yes"],
      ["SystemCallFilter", "@system-service"],
      ["SystemCallFilter", "~@privileged @resources @mount @debug @cpu-emulation @obsolete @raw-io @reboot @swap @clock @module"],
    );
  }
  if (!options.internet) {
    // The kernel's cgroup filter refuses every socket to or from anything but 127.0.0.0/8 and ::1 for every process
    // of the unit: no route out even if the process ignores HTTPS_PROXY.
    // IPAccounting rides on the same cgroup BPF mechanism: its counters (IPIngressBytes a number, not "[no data]")
    // show that the filter is attached, where systemd that cannot load it starts the unit silently without
    // (perimeter verify host: host.agent-ip-filter).
    entries.push(["IPAddressDeny", "any"], ["IPAddressAllow", "localhost"], ["IPAccounting", "yes"]);
  }
  return entries;
}
