// The shape of perimeter.yaml. Every object is strict (an unknown key is an error with a suggestion), secrets are
// names of environment variables, and each refinement says why the rule exists. Defaults are the secure choice and
// carry the reason in a comment, so `perimeter schema` and the README show them. Each section lives in
// schema/<section>.ts; this file joins them and runs the rules that span sections (schema/cross-section.ts).
import { z } from "zod";
import { agent } from "./schema/agent.ts";
import type { telegramApprover } from "./schema/approvals.ts";
import { approvalsSection } from "./schema/approvals.ts";
import { auditSection, kubernetesSection } from "./schema/audit-kubernetes.ts";
import { backupSection } from "./schema/backup.ts";
import { checkAcrossSections } from "./schema/cross-section.ts";
import { dashboardSection } from "./schema/dashboard.ts";
import { hostSection } from "./schema/host.ts";
import type { provider } from "./schema/llm.ts";
import { llm } from "./schema/llm.ts";
import type { argumentConstraint, mcpServer } from "./schema/mcp.ts";
import { mcp } from "./schema/mcp.ts";
import { resourceName } from "./schema/scalars.ts";
import { egress, sandbox } from "./schema/sandbox-egress.ts";

export { globMatches } from "./glob.ts";
export { isInternetWideCidr } from "./schema/host.ts";
export { imageReference } from "./schema/scalars.ts";
export type { HostRuleInput } from "./schema/scalars.ts";

const declaration = z.strictObject({
  version: z.literal(1, { error: "version must be 1" }),
  name: resourceName,
  agent: agent.prefault({}),
  llm: llm.prefault({}),
  mcp: mcp.prefault({}),
  sandbox: sandbox.prefault({}),
  egress: egress.prefault({}),
  approvals: approvalsSection.prefault({}),
  audit: auditSection.prefault({}),
  backup: backupSection.optional().describe("Encrypted backups of the agent's data directory and the audit log (perimeter backup)."),
  dashboard: dashboardSection.prefault({}).describe("The operator's web dashboard (perimeter serve dashboard; started by perimeter up)."),
  kubernetes: kubernetesSection.prefault({}),
  host: hostSection.optional().describe("The VPS target (render -t vps): SSH access, firewall, updates and the agent's system user."),
});

export const perimeterConfigSchema = declaration.superRefine(checkAcrossSections);
export type PerimeterConfig = z.output<typeof declaration>;
export type PerimeterConfigInput = z.input<typeof declaration>;
export type McpServerConfig = z.output<typeof mcpServer>;
export type LlmProviderConfig = z.output<typeof provider>;
export type EgressConfig = z.output<typeof egress>;
export type SandboxConfig = z.output<typeof sandbox>;
export type ArgumentConstraint = z.output<typeof argumentConstraint>;
export type HostConfig = z.output<typeof hostSection>;
export type TelegramApproverConfig = z.output<typeof telegramApprover>;
export type DashboardConfig = z.output<typeof dashboardSection>;
