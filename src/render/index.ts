// Public API of render/: other folders import only from here.
export {
  sandboxJobTemplate,
  sandboxProxyEnvironment,
  sandboxTaskLabels,
  SANDBOX_JOB_TEMPLATE_KEY,
  SANDBOX_JOB_TEMPLATE_PATH,
  SANDBOX_TASK_CONTAINER,
  SANDBOX_TASK_SERVICE_ACCOUNT,
  SANDBOX_TTL_SECONDS_AFTER_FINISHED,
} from "./kubernetes/sandbox-job.ts";
export { renderKubernetes } from "./kubernetes/render.ts";
export type { KubernetesRender, RenderedFile } from "./kubernetes/render.ts";
export { renderCompose } from "./compose/render.ts";
export type { ComposeRender, ComposeFile } from "./compose/render.ts";
export { renderTarget } from "./render.ts";
export type { RenderOutput } from "./render.ts";
export { RenderError } from "./plan.ts";
export type { Target } from "./plan.ts";
export { writeDirectory } from "./write.ts";
// The facts every agent is told (agent-config writes them in each agent's own format; Hermes' seed is render's).
export { agentEnvironment, agentNoProxy, hermesConfigSeed, hermesTimeouts, HERMES_MCP_SERVER } from "./hermes.ts";
export type { EnvironmentEntry } from "./hermes.ts";
export { endpoints } from "./endpoints.ts";
export type { Endpoints } from "./endpoints.ts";
export { agentEntry, agentLlmKeySecret, defaultModel, portOf, secretPlan } from "./plan.ts";
export type { SecretSpec } from "./plan.ts";
// The toolsets Hermes loses when its network is the perimeter's (check compares a Hermes config against them).
export { NETWORK_DISABLED_TOOLSETS } from "./hermes.ts";
