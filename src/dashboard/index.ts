// What other capabilities may use from dashboard/: the serve command and the factory (for tests and perimeter up).
export { serveDashboard, healthUrls } from "./cli.ts";
export { createDashboard } from "./server.ts";
export type { Dashboard, DashboardOptions } from "./server.ts";
export { createAuditIndex } from "./audit-index.ts";
export type { AuditIndex, AuditFilter } from "./audit-index.ts";
export { createChainMonitor } from "./chain.ts";
