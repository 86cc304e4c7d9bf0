// Would installing this render lock the operator out? Seed 004: "deleting the public SSH rule first can lock you
// out". A pure decision over the SSH session apply runs in ($SSH_CLIENT), the login user and the render's SSH
// settings; apply refuses to touch SSH or the firewall when it says no.
import { cidrContains, embeddedIpv4, parseIpLiteral } from "../../net/index.ts";

export interface SshAccess {
  readonly port: number;
  readonly adminUsers: readonly string[];
  readonly adminCidrs: readonly string[];
  readonly tailscale: boolean;
}

export interface Session {
  /** $SSH_CLIENT: "ADDRESS CLIENT_PORT SERVER_PORT", unset on a console. */
  readonly sshClient: string | undefined;
  /** The account the operator logged in as ($SUDO_USER, else $USER). */
  readonly loginUser: string | undefined;
  /** The interface the kernel would use to answer the client (`ip route get ADDRESS`), when known. */
  readonly routeInterface: (address: string) => string | undefined;
  /** Admin users without a usable authorized_keys file. */
  readonly usersWithoutKeys: readonly string[];
}

export type LockoutDecision = { allow: true; notes: string[] } | { allow: false; reason: string };

export function checkLockout(access: SshAccess, session: Session): LockoutDecision {
  const notes: string[] = [];
  if (session.usersWithoutKeys.length === access.adminUsers.length) {
    return {
      allow: false,
      reason: `no admin user has an authorized key (${session.usersWithoutKeys.map((user) => `~${user}/.ssh/authorized_keys`).join(", ")}), and the render turns password login off: install your public key first (ssh-copy-id ${access.adminUsers[0]}@HOST), check ssh -o PasswordAuthentication=no works, then apply`,
    };
  }
  if (session.usersWithoutKeys.length > 0) notes.push(`admin users without an authorized key will not be able to log in: ${session.usersWithoutKeys.join(", ")}`);
  if (session.sshClient === undefined || session.sshClient.trim() === "") {
    notes.push("not in an SSH session ($SSH_CLIENT unset): keep the provider's console at hand");
    return { allow: true, notes };
  }
  const [rawAddress, , serverPort] = session.sshClient.trim().split(/\s+/);
  const literal = parseIpLiteral(rawAddress ?? "");
  if (literal === undefined) return { allow: false, reason: `$SSH_CLIENT "${session.sshClient}" does not start with an IP address: run apply from a plain SSH session or the provider's console` };
  const address = embeddedIpv4(literal.address) ?? literal.address;
  if (session.loginUser !== undefined && session.loginUser !== "root" && !access.adminUsers.includes(session.loginUser)) {
    return {
      allow: false,
      reason: `you are logged in as ${session.loginUser}, which is not in host.ssh.adminUsers (${access.adminUsers.join(", ")}): AllowUsers would refuse your next login. Add ${session.loginUser} to host.ssh.adminUsers, re-render and apply again`,
    };
  }
  if (session.loginUser === "root") notes.push("you are logged in as root, which PermitRootLogin no refuses from now on: log in as an admin user and use sudo");
  const byRange = access.adminCidrs.find((range) => cidrContains(range, address));
  const viaTailscale = access.tailscale && session.routeInterface(address) === "tailscale0";
  if (byRange === undefined && !viaTailscale) {
    const paths = [access.adminCidrs.length > 0 ? `host.ssh.adminCidrs (${access.adminCidrs.join(", ")})` : undefined, access.tailscale ? "Tailscale (tailscale0)" : undefined].filter((path) => path !== undefined);
    return {
      allow: false,
      reason: `your SSH session comes from ${address}, which the new firewall would not admit (it allows SSH only from ${paths.join(" or ")}). Keep this session open and either add ${address.includes(":") ? `${address}/128` : `${address}/32`} (or your VPN range) to host.ssh.adminCidrs, re-render and apply; or connect over the admin path first (e.g. ssh over the Tailscale address), check that a new login works there, and apply from that session`,
    };
  }
  if (serverPort !== undefined && Number(serverPort) !== access.port) {
    notes.push(`sshd moves from port ${serverPort} to ${access.port}: this session stays open, new logins use -p ${access.port}`);
  }
  notes.push(`your session (${address}) is admitted by ${byRange !== undefined ? `host.ssh.adminCidrs ${byRange}` : "tailscale0"}`);
  return { allow: true, notes };
}
