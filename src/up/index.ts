// What other capabilities may use from up/: the commands, and the plan (which services a config runs, where).
export { upCommand, statusCommand } from "./cli.ts";
export { planUp, UpPlanError } from "./plan.ts";
export type { ServiceName, ServicePlan, UpPlan } from "./plan.ts";
