// sandbox and egress: the sandbox runner (backend, limits, its network) and the egress proxy (allowlists per client,
// limits, when a decision is committed to the audit log).
import { z } from "zod";
import { cidr, componentName, hostPort, hostRule, imageReference, quantity, secretName } from "./scalars.ts";

export const sandbox = z.strictObject({
  backend: z.enum(["kubernetes", "bubblewrap"]).default("bubblewrap"),
  listen: hostPort.default("127.0.0.1:8701"),
  tokenSecret: secretName.default("PERIMETER_SANDBOX_TOKEN").describe("Bearer token mcp-guard uses to call the sandbox runner."),
  image: imageReference
    .optional()
    .describe("The image every sandbox task runs in, on the kubernetes backend (a Job per task). The bubblewrap backend (Compose, vps, perimeter up) runs tasks on the runner's own /usr, so render refuses it there. Unset on kubernetes: python:3.12-slim."),
  runtimeClassName: z.string().optional(),
  limits: z
    .strictObject({
      cpu: quantity.default("1"),
      memory: quantity.default("1Gi"),
      pids: z.number().int().min(8).max(32768).default(256),
      disk: quantity.default("1Gi"),
      timeoutSeconds: z.number().int().min(1).max(86400).default(300),
    })
    .prefault({}),
  network: z
    .union([z.literal("none"), z.strictObject({ allow: z.array(hostRule).min(1) })])
    .default("none")
    .describe("none (default): no network at all. { allow: [...] }: only the egress proxy, with this allowlist."),
  concurrency: z.number().int().min(1).max(256).default(4),
});

const egressClient = z.strictObject({
  name: componentName,
  tokenSecret: secretName.optional().describe("Proxy-Authorization Basic/Bearer token of this client."),
  sources: z.array(cidr).default([]).describe("Source addresses identifying this client."),
  allow: z.array(hostRule).default([]),
});

export const egress = z.strictObject({
  listen: hostPort.default("127.0.0.1:3128"),
  metrics: hostPort.optional(),
  allow: z.array(hostRule).default([]).describe("Rules for every client."),
  clients: z.array(egressClient).default([]),
  unknownClients: z.enum(["deny", "global"]).default("deny").describe("Policy for clients no entry identifies. @default deny"),
  limits: z
    .strictObject({
      tunnelsPerClient: z.number().int().min(1).default(256),
      tunnelsTotal: z.number().int().min(1).default(4096),
      requestsPerSecondPerClient: z.number().min(0.1).default(50),
      idleTimeoutSeconds: z.number().min(1).default(300),
      headerTimeoutSeconds: z.number().min(1).default(10),
      maxHeaderBytes: z.number().int().min(1024).max(1048576).default(16384),
      tunnelLifetimeSeconds: z.number().min(1).default(3600),
      connectTimeoutSeconds: z.number().min(1).default(10).describe("Give up dialling an upstream after this long (504). @default 10"),
    })
    .prefault({}),
  auditPath: z.string().optional(),
  auditBeforeForwarding: z
    .boolean()
    .default(false)
    .describe(
      "true: nothing reaches an origin before its decision is committed to the audit log (one commit, about 0.1 ms on a quiet machine, added to every request). false (default): the request goes out while its record commits, and the answer is held until the commit; after a failed commit the proxy works as with true until the log accepts writes again. @default false",
    ),
});
