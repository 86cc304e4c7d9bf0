// Scalars every section uses: secret names (never values), Kubernetes names, pinned images, listen addresses, CIDRs and
// egress host rules. Each refinement says why the rule exists and how to write it instead.
import { z } from "zod";
import { isIP } from "node:net";
import { SECRET_NAME, secretShapeIn } from "../secrets.ts";
import { parseHostRule } from "../hosts.ts";
import { formatHostPort, parseTcp } from "../../shared/index.ts";

/** A variable name to suggest for a pasted secret of a recognised shape (the suggestion should fit what was pasted). */
const SUGGESTED_SECRET_NAME: Readonly<Record<string, string>> = {
  "OpenAI-style API key": "OPENAI_API_KEY",
  "Anthropic API key": "ANTHROPIC_API_KEY",
  "GitHub token": "GITHUB_TOKEN",
  "Slack token": "SLACK_BOT_TOKEN",
  "Telegram bot token": "TELEGRAM_BOT_TOKEN",
  "AWS access key id": "AWS_ACCESS_KEY_ID",
  "Google API key": "GOOGLE_API_KEY",
  "Discord bot token": "DISCORD_BOT_TOKEN",
};

/** The Hermes image tag Perimeter was verified against (src/render/hermes-sources.ts), suggested for a ':latest'. */
export const VERIFIED_HERMES_TAG = "v2026.7.1";

export const secretName = z
  .string()
  .superRefine((value, context) => {
    if (SECRET_NAME.test(value)) return;
    const shape = secretShapeIn(value);
    context.addIssue({
      code: "custom",
      message:
        shape !== undefined || value.length > 24
          ? `this looks like a literal secret${shape !== undefined ? ` (${shape})` : ""}: write the NAME of an environment variable (e.g. ${SUGGESTED_SECRET_NAME[shape ?? ""] ?? "MY_SERVICE_TOKEN"}) and put the value in that variable or Secret key`
          : `"${value}" is not an environment variable name: use upper case letters, digits and underscores (e.g. TELEGRAM_BOT_TOKEN)`,
    });
  })
  .describe("Name of an environment variable / Secret key holding the value. Never the value itself.");

/** A DNS-1123 label; `<name>-sandbox` must still fit in 63 characters. */
export const resourceName = z
  .string()
  .regex(/^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/, "use 1-40 lower-case letters, digits and '-', starting with a letter (a Kubernetes name)");

/** A key of `mcp.servers` / `llm.providers`: becomes part of tool names (`<server>__<tool>`) and resource names. */
export const componentName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,30}$/, "use 1-31 lower-case letters, digits and '-', starting with a letter");

export const imageReference = z
  .string()
  .superRefine((value, context) => {
    // Pinning matters: Hermes' defaults move between releases, and ':latest' makes a rollout silently change them.
    const digest = /@sha256:[a-f0-9]{64}$/.test(value);
    const lastSegment = value.slice(value.lastIndexOf("/") + 1);
    const tag = lastSegment.includes(":") ? lastSegment.slice(lastSegment.indexOf(":") + 1).replace(/@.*$/, "") : undefined;
    if (!/^[a-z0-9][a-z0-9._\-/:@]*$/.test(value)) {
      context.addIssue({ code: "custom", message: `"${value}" is not an image reference (registry/name:tag or name@sha256:...)` });
    } else if (tag === "latest") {
      const name = value.replace(/:latest$/, "");
      const example = name.endsWith("hermes-agent") ? `${name}:${VERIFIED_HERMES_TAG}, the release Perimeter was verified against` : `${name}:<the version you run>`;
      context.addIssue({ code: "custom", message: `":latest" is refused: pin a version tag (e.g. ${example}) or a digest so upgrades are deliberate` });
    } else if (!digest && (tag === undefined || tag === "")) {
      context.addIssue({ code: "custom", message: `"${value}" has no tag: pin a version tag or an @sha256 digest so upgrades are deliberate` });
    }
  })
  .describe("Container image with a version tag or digest; ':latest' and untagged images are refused.");

export const hostPort = z
  .string()
  .superRefine((value, context) => {
    // The services parse their listen address with parseTcp too, so what loads here also binds.
    const address = parseTcp(value);
    if (address === undefined) {
      context.addIssue({ code: "custom", message: `"${value}" is not HOST:PORT (write 127.0.0.1:8700, or [::1]:8700 for IPv6)` });
    } else if (address.port === 0) {
      // Another component (the agent, mcp-guard, the approvals CLI, Prometheus) is configured to reach this address,
      // so a port the kernel picks at each start could never be found. Tests pass --listen HOST:0 instead.
      context.addIssue({ code: "custom", message: `"${value}": port 0 (a free port picked at each start) cannot be reached by the components configured to call this service; choose a fixed port, or pass --listen ${formatHostPort(address.host, 0)} on the command line for a test` });
    }
  })
  .describe("Listen address HOST:PORT with a fixed port (not 0); IPv6 in brackets.");

export const cidr = z.string().superRefine((value, context) => {
  const [address, bits, extra] = value.split("/");
  const family = isIP(address ?? "");
  const max = family === 4 ? 32 : 128;
  if (family === 0 || extra !== undefined || bits === undefined || !/^\d{1,3}$/.test(bits) || Number(bits) > max) {
    context.addIssue({ code: "custom", message: `"${value}" is not a CIDR block (write 10.43.0.0/16 or fd00::/8)` });
  }
});

/** A Service's ClusterIP, written as a plain address: a name would need the very DNS these addresses replace. */
export const serviceIP = z.string().refine((value) => isIP(value) !== 0, {
  error: (issue) => `"${String(issue.input)}" is not an IP address: write a free address of the cluster's Service CIDR, e.g. 10.43.0.240 (k3s) or 10.96.0.240 (kubeadm)`,
});

export const quantity = z.string().regex(/^\d+(\.\d+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/, "use a Kubernetes quantity such as 500m, 512Mi or 5Gi");

export const hostRule = z
  .union([
    z.string(),
    z.strictObject({
      host: z.string(),
      ports: z.array(z.number().int().min(1).max(65535)).min(1).optional().describe("@default [443]"),
      allowCidr: z.array(cidr).optional().describe("Addresses this rule may reach despite the SSRF deny set (e.g. an in-cluster range)."),
      requireSni: z.boolean().default(true).describe("Refuse CONNECT to 443 whose TLS SNI is missing or differs. @default true"),
    }),
  ])
  .superRefine((value, context) => {
    const parsed = typeof value === "string" ? parseHostRule(value) : parseHostRule(value.host, value.ports);
    if (!parsed.ok) context.addIssue({ code: "custom", message: parsed.reason });
  });
export type HostRuleInput = z.infer<typeof hostRule>;
