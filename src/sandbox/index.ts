// What other capabilities may use from sandbox/: one task/result interface, two backends (bubblewrap locally,
// Kubernetes Jobs in a cluster), and the MCP server that puts them behind tools.
export { createBubblewrapBackend, explainBwrapFailure, SANDBOX_UID } from "./bubblewrap.ts";
export type { BubblewrapBackend, BubblewrapDescription, BubblewrapOptions, EgressProxyAttachment } from "./bubblewrap.ts";
export {
  checkTask,
  limitsFromConfig,
  parseByteQuantity,
  parseCpuQuantity,
  parseSeconds,
  signalOfStatus,
  workspacePathProblem,
  SandboxTaskError,
  SandboxUnavailableError,
} from "./task.ts";
export type {
  AppliedLimits,
  CheckedTask,
  ReturnedFile,
  RunOptions,
  SandboxBackend,
  SandboxEndReason,
  SandboxFile,
  SandboxHostRule,
  SandboxLimits,
  SandboxNetwork,
  SandboxOutput,
  SandboxResult,
  SandboxTask,
  TaskPolicy,
} from "./task.ts";
export { buildSeccompProgram, seccompProgramBytes, DENIED_SYSCALLS } from "./seccomp.ts";
export { createKubernetesBackend, DEFAULT_MAX_RETURN_BYTES, loadJobTemplate, RUNNER_LABEL, taskJob, TASK_CONTAINER } from "./kubernetes.ts";
export type { KubernetesBackend, KubernetesBackendOptions } from "./kubernetes.ts";
export { createSandboxEgress } from "./egress.ts";
export type { SandboxEgress, SandboxEgressOptions } from "./egress.ts";
export { createSandboxServer, bearerMatches } from "./server.ts";
export type { SandboxServer, SandboxServerOptions, SandboxAuditSink, CallerQuotas } from "./server.ts";
export { createWorkspaceStore, workspaceNameProblem } from "./workspaces.ts";
export type { WorkspaceStore, WorkspaceLimits, WorkspaceFile } from "./workspaces.ts";
