// SSH and its neighbours on the VPS target (seed 004, "SSH hardening", "Updates"): the sshd drop-in, the fail2ban
// jail, unattended-upgrades and journald limits.
import type { HostConfig } from "../../config/index.ts";

/** Named 00- so it sorts before distribution drop-ins (50-cloud-init.conf): sshd keeps the first value it reads. */
export const SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-perimeter.conf";

export function sshdDropIn(host: HostConfig): string {
  return [
    "# perimeter: SSH hardening (seed 004), rendered by perimeter render -t vps.",
    "# sshd uses the first value it reads for most keywords, and Debian/Ubuntu include sshd_config.d/*.conf at the top",
    "# of sshd_config: this file (00-) wins over 50-cloud-init.conf and over sshd_config itself.",
    "# UsePAM stays as the distribution sets it (account and session handling rely on it).",
    `Port ${host.ssh.port}`,
    "PermitRootLogin no",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitEmptyPasswords no",
    "AuthenticationMethods publickey",
    "AuthorizedKeysFile .ssh/authorized_keys",
    `AllowUsers ${host.ssh.adminUsers.join(" ")}`,
    "MaxAuthTries 3",
    "LoginGraceTime 30",
    "MaxStartups 10:30:60",
    "X11Forwarding no",
    "AllowAgentForwarding no",
    "PermitUserEnvironment no",
    "",
  ].join("\n");
}

export const FAIL2BAN_JAIL = "/etc/fail2ban/jail.d/perimeter.local";

export function fail2banJail(host: HostConfig): string {
  return [
    "# perimeter: fail2ban sshd jail (seed 004), rendered by perimeter render -t vps.",
    "# backend = systemd reads sshd's journal, so it works on images without /var/log/auth.log (Debian 12+).",
    "[sshd]",
    `enabled = ${host.fail2ban.enabled ? "true" : "false"}`,
    "backend = systemd",
    `port = ${host.ssh.port}`,
    `maxretry = ${host.fail2ban.maxRetry}`,
    `findtime = ${host.fail2ban.findTime}`,
    `bantime = ${host.fail2ban.banTime}`,
    // nftables-multiport would add chains to a table of fail2ban's own; it coexists with ours.
    "banaction = nftables-multiport",
    "",
  ].join("\n");
}

export const UNATTENDED_UPGRADES = "/etc/apt/apt.conf.d/52perimeter-unattended-upgrades";
export const AUTO_UPGRADES = "/etc/apt/apt.conf.d/20auto-upgrades";

/** Daily package lists and security upgrades (seed 004: "daily package list updates and unattended security upgrades"). */
export function autoUpgrades(): string {
  return ['// perimeter: refresh package lists and run unattended-upgrades every day (seed 004).', 'APT::Periodic::Update-Package-Lists "1";', 'APT::Periodic::Unattended-Upgrade "1";', 'APT::Periodic::AutocleanInterval "7";', ""].join("\n");
}

export function unattendedUpgrades(host: HostConfig): string {
  return [
    "// perimeter: unattended-upgrades settings layered over the distribution's 50unattended-upgrades, which already",
    "// selects the security origins (Debian-Security / ${distro_codename}-security).",
    `Unattended-Upgrade::Automatic-Reboot "${host.updates.automaticReboot ? "true" : "false"}";`,
    `Unattended-Upgrade::Automatic-Reboot-Time "${host.updates.rebootTime}";`,
    'Unattended-Upgrade::Remove-Unused-Kernel-Packages "true";',
    'Unattended-Upgrade::MinimalSteps "true";',
    "",
  ].join("\n");
}

export const JOURNALD_DROP_IN = "/etc/systemd/journald.conf.d/50-perimeter.conf";

/** Bounded logs: the agent's logs hold message text and tool arguments (seed 004), and must not fill the disk. */
export function journaldLimits(host: HostConfig): string {
  return ["# perimeter: journald limits (seed 004: rotate logs so they cannot fill the disk).", "[Journal]", "Storage=persistent", `SystemMaxUse=${host.journal.maxUse}`, "SystemMaxFileSize=100M", `MaxRetentionSec=${host.journal.retention}`, ""].join("\n");
}
