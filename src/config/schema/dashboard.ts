// dashboard: approvals, reviews, the audit log and health in a browser (src/dashboard).
import { z } from "zod";
import { componentName, hostPort } from "./scalars.ts";

const dashboardSource = z
  .strictObject({
    name: componentName,
    path: z.string().optional().describe("An audit database this dashboard can read (a file, opened read-only)."),
    url: z
      .string()
      .regex(/^https?:\/\/[^/?#]+$/, "url is a service's admin origin, e.g. http://mcp-guard:8710 (no path)")
      .optional()
      .describe("A service's admin listener serving its audit records read-only (GET /v1/audit/records, /v1/audit/head) with the admin token."),
  })
  .refine((source) => (source.path === undefined) !== (source.url === undefined), { message: "a dashboard source has either path (a local audit database) or url (a service's admin listener), not both or neither" });

export const dashboardSection = z.strictObject({
  listen: hostPort.default("127.0.0.1:8720").describe("Where the dashboard serves. Keep it on loopback (reach it over SSH or kubectl port-forward). @default 127.0.0.1:8720"),
  sessionMinutes: z.number().int().min(5).max(1440).default(480).describe("How long a session cookie lasts after logging in with the admin token. @default 480"),
  statePath: z.string().optional().describe("The dashboard's own search index of the audit records (rebuilt from the logs when deleted). @default dashboard.db beside audit.path"),
  sources: z
    .array(dashboardSource)
    .default([])
    .describe("Audit logs to show. @default audit.path alone (perimeter up: every service shares it); a rendered deployment lists each component's own log."),
  health: z.record(z.string(), z.string().regex(/^https?:\/\/\S+$/, "a health URL is http(s)://HOST:PORT/healthz")).default({}).describe("Service name to its /healthz URL. @default derived from the config's listen addresses"),
  adminUrl: z.string().regex(/^https?:\/\/[^/?#]+$/, "adminUrl is the mcp-guard admin origin, e.g. http://127.0.0.1:8710").optional().describe("The mcp-guard admin API the dashboard decides through. @default http://mcp.admin.listen"),
  allowedHosts: z.array(z.string()).default([]).describe("Host names besides loopback and the listen address the browser may use (DNS-rebinding protection)."),
  tls: z.strictObject({ certFile: z.string(), keyFile: z.string() }).optional().describe("Serve HTTPS with this certificate (the session cookie is then Secure and __Host- prefixed)."),
});
