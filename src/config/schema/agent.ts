// agent: the Hermes deployment itself — image, chat platforms and who may talk to it, terminal placement, Hermes' own
// approvals and the switches that must stay off.
import { z } from "zod";
import { VERIFIED_HERMES_TAG, imageReference, quantity, secretName } from "./scalars.ts";

const platform = z.strictObject({
  allowedUsers: z
    .array(z.union([z.string(), z.number()]).transform(String))
    .min(1, "an empty allowlist lets anyone who finds the bot drive the agent: list the user ids allowed to talk to it")
    .superRefine((users, context) => {
      for (const user of users) {
        if (user === "*" || user.toLowerCase() === "all") {
          context.addIssue({ code: "custom", message: `"${user}" allows every user: a bot token is effectively public, so list the user ids explicitly` });
        }
      }
    }),
  tokenSecret: secretName.describe("Environment variable holding the platform's bot token."),
  extraSecrets: z.array(secretName).default([]).describe("Further variables this platform needs (e.g. SLACK_APP_TOKEN)."),
});

export const agent = z.strictObject({
  image: imageReference.default(`nousresearch/hermes-agent:${VERIFIED_HERMES_TAG}`),
  platforms: z.partialRecord(z.enum(["telegram", "discord", "slack", "whatsapp", "signal", "matrix", "mattermost", "email"]), platform).default({}),
  data: z
    .strictObject({
      size: quantity.default("5Gi"),
      storageClass: z.string().optional().describe("Prefer an encrypted storage class: /opt/data holds keys, memories and sessions."),
    })
    .prefault({}),
  terminal: z
    .enum(["sandbox", "in-pod"])
    .default("sandbox")
    .describe("sandbox: shell runs in disposable sandboxes behind mcp-guard (Hermes' own terminal tools are off). in-pod: Hermes' local backend inside its pod. @default sandbox"),
  approvals: z
    .string()
    .default("manual")
    .superRefine((value, context) => {
      if (value === "off" || value === "yolo") {
        context.addIssue({ code: "custom", message: `approvals "${value}" lets a prompt-injected agent run anything unasked: use manual (or smart)` });
      } else if (value !== "manual" && value !== "smart") {
        context.addIssue({ code: "custom", message: `approvals must be manual or smart, not "${value}"` });
      }
    })
    .transform((value) => value as "manual" | "smart")
    .describe("Hermes' own approvals.mode; 'off' is refused. @default manual"),
  cronApprovals: z.enum(["deny", "approve"]).default("deny").describe("Hermes approvals.cron_mode. @default deny"),
  allowPrivateUrls: z
    .literal(false, { error: "allow_private_urls: true lets prompt-injected URLs reach private services; leave it false and reach internal services through mcp-guard" })
    .default(false),
  websiteBlocklist: z.array(z.string()).default([]),
  apiServer: z
    .strictObject({
      enabled: z.boolean().default(false),
      port: z.number().int().min(1).max(65535).default(8642),
      keySecret: secretName.optional().describe("API_SERVER_KEY; required when enabled (an empty key accepts every request)."),
    })
    .prefault({})
    .superRefine((value, context) => {
      if (value.enabled && value.keySecret === undefined) {
        context.addIssue({ code: "custom", path: ["keySecret"], message: "an enabled API server without a key accepts every request: set keySecret (e.g. HERMES_API_SERVER_KEY)" });
      }
    }),
  dashboard: z
    .strictObject({
      enabled: z.boolean().default(false),
      port: z.number().int().min(1).max(65535).default(9119),
    })
    .prefault({}),
  resources: z
    .strictObject({
      requests: z.strictObject({ cpu: quantity, memory: quantity }).default({ cpu: "250m", memory: "512Mi" }),
      limits: z.strictObject({ cpu: quantity, memory: quantity }).default({ cpu: "2", memory: "2Gi" }),
    })
    .prefault({}),
});
