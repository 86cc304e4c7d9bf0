// Public API of dashboard/: other folders import only from here (the serve command, the factory, the index).
export { serveDashboard, healthUrls } from "./cli.ts";
export { createDashboard } from "./server.ts";
export type { Dashboard, DashboardOptions } from "./server.ts";
export { createAuditIndex } from "./audit-index.ts";
export type { AuditIndex, AuditFilter } from "./audit-index.ts";
export { createChainMonitor } from "./chain.ts";
