// host: the VPS target (render -t vps) — SSH, firewall and the agent's system user on one Linux host (seed 004).
import { z } from "zod";
import { isIP } from "node:net";
import { cidr } from "./scalars.ts";

const linuxUserName = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "use a Linux user name: lower-case letters, digits, '_' and '-', starting with a letter or '_'");
const absolutePath = z.string().regex(/^\/[A-Za-z0-9._\/-]*$/, "use an absolute path of letters, digits, '.', '_', '-' and '/' (it is written into systemd units)");
const systemdSpan = z.string().regex(/^\d+(us|ms|s|m|min|h|d|w|month|y)$/, "use a systemd time span such as 10m, 1h or 1month");

/** The widest source range SSH may be opened to without `allowPublic`: shorter prefixes are most of the internet. */
export const HOST_PUBLIC_PREFIX = { 4: 8, 6: 16 } as const;

/** True when a CIDR admits most of the internet (e.g. 0.0.0.0/0, ::/0, 0.0.0.0/1). */
export function isInternetWideCidr(value: string): boolean {
  const [address, bits] = value.split("/");
  const family = isIP(address ?? "");
  if (family === 0 || bits === undefined) return false;
  return Number(bits) < HOST_PUBLIC_PREFIX[family === 4 ? 4 : 6];
}

export const hostSection = z
  .strictObject({
    ssh: z.strictObject({
      port: z.number().int().min(1).max(65535).default(22),
      adminUsers: z
        .array(linuxUserName)
        .min(1, "name the admin account(s) that log in over SSH (sshd AllowUsers): without one every account could, or nobody could")
        .refine((users) => !users.includes("root"), { message: "root is refused: log in as an admin user and use sudo (PermitRootLogin no)" })
        .describe("Accounts allowed to log in over SSH (AllowUsers), keys only."),
      adminCidrs: z.array(cidr).default([]).describe("Source ranges allowed to reach SSH (static admin IP, VPN or bastion)."),
      tailscale: z.boolean().default(false).describe("Allow SSH arriving on the tailscale0 interface. @default false"),
      allowPublic: z
        .boolean()
        .default(false)
        .describe("Accept an internet-wide SSH range (e.g. 0.0.0.0/0); fail2ban must then stay enabled. @default false"),
    }),
    agent: z
      .strictObject({
        mode: z
          .enum(["native", "container"])
          .default("native")
          .describe("native: Hermes from a virtualenv as the agent user under a hardened unit. container: the official image with host networking, ports bound to loopback. @default native"),
        user: linuxUserName.default("hermes").describe("The agent's dedicated system user: no SSH key, no sudo, no login shell. @default hermes"),
        uid: z
          .number()
          .int()
          .min(1000)
          .max(59999)
          .default(10000)
          .describe("Fixed uid of the agent user: the firewall's second wall matches it (and the official image runs as 10000). @default 10000"),
        home: absolutePath.default("/var/lib/hermes").describe("The agent user's home; Hermes' data directory is <home>/.hermes (0700). @default /var/lib/hermes"),
        installDir: absolutePath
          .default("/opt/hermes-agent")
          .describe("native: Hermes' checkout with its virtualenv in venv/, owned by root so the agent cannot rewrite its own code. @default /opt/hermes-agent"),
      })
      .prefault({}),
    perimeterExecutable: absolutePath.default("/usr/local/bin/perimeter").describe("The perimeter command the units run (Node 24). @default /usr/local/bin/perimeter"),
    firewall: z
      .strictObject({
        outboundAllow: z
          .array(
            z.strictObject({
              cidr,
              ports: z.array(z.number().int().min(1).max(65535)).min(1).default([443]),
              protocol: z.enum(["tcp", "udp"]).default("tcp"),
            }),
          )
          .optional()
          .describe("When set, the whole host may open new outbound connections only to these (list DNS resolvers, NTP, package mirrors and providers too). @default unset: outbound open except for the agent"),
      })
      .prefault({}),
    fail2ban: z
      .strictObject({
        enabled: z.boolean().default(true),
        maxRetry: z.number().int().min(1).max(100).default(5),
        findTime: systemdSpan.default("10m"),
        banTime: systemdSpan.default("1h"),
      })
      .prefault({}),
    updates: z
      .strictObject({
        automaticReboot: z.boolean().default(false).describe("Reboot after an update that needs it (at rebootTime). @default false"),
        rebootTime: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "use HH:MM").default("04:00"),
      })
      .prefault({}),
    journal: z
      .strictObject({
        maxUse: z.string().regex(/^\d+[KMG]$/, "use a size such as 500M or 1G").default("1G"),
        retention: systemdSpan.default("1month"),
      })
      .prefault({}),
  })
  .superRefine((value, context) => {
    const ssh = value.ssh;
    if (ssh.adminCidrs.length === 0 && !ssh.tailscale) {
      context.addIssue({
        code: "custom",
        path: ["ssh"],
        message: "no admin access path: SSH would be closed to everyone. List your static IP, VPN or bastion range in host.ssh.adminCidrs (e.g. 203.0.113.7/32), or set host.ssh.tailscale: true and reach SSH over Tailscale",
      });
    }
    ssh.adminCidrs.forEach((range, index) => {
      if (isInternetWideCidr(range) && !ssh.allowPublic) {
        context.addIssue({
          code: "custom",
          path: ["ssh", "adminCidrs", index],
          message: `${range} opens SSH to most of the internet: use your static IP/VPN range or Tailscale, or set host.ssh.allowPublic: true to accept public SSH (fail2ban then stays on)`,
        });
      }
    });
    if (ssh.adminCidrs.some(isInternetWideCidr) && ssh.allowPublic && !value.fail2ban.enabled) {
      context.addIssue({ code: "custom", path: ["fail2ban", "enabled"], message: "public SSH (allowPublic) needs fail2ban against brute force: set host.fail2ban.enabled: true" });
    }
    if (value.agent.mode === "container" && value.agent.uid !== 10000) {
      context.addIssue({ code: "custom", path: ["agent", "uid"], message: "the official Hermes image runs the gateway as uid 10000, which the firewall's agent rule matches: leave host.agent.uid at 10000 in container mode" });
    }
    if (value.agent.uid === 65532) {
      context.addIssue({ code: "custom", path: ["agent", "uid"], message: "65532 is the perimeter services' uid in the image: give the agent its own uid" });
    }
  });
