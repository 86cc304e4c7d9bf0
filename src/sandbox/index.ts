// Public API of sandbox/: other folders import only from here. (The commands, `perimeter sandbox exec` and
// `perimeter serve sandbox`, are loaded from cli.ts on demand, as every capability's are, so a short command does
// not load what this file does.) One task/result interface, two backends (bubblewrap locally, Kubernetes Jobs in a
// cluster), the in-process egress proxy for bubblewrap's network "proxy", and the MCP server that puts a backend
// behind tools.
export { createBubblewrapBackend, SANDBOX_UID } from "./bubblewrap.ts";
export type { BubblewrapBackend, BubblewrapDescription, BubblewrapOptions, EgressProxyAttachment } from "./bubblewrap.ts";
export { createKubernetesBackend, loadJobTemplate, taskJob } from "./kubernetes.ts";
export type { KubernetesBackend, KubernetesBackendOptions } from "./kubernetes.ts";
export { createSandboxEgress } from "./egress.ts";
export type { SandboxEgress, SandboxEgressOptions } from "./egress.ts";
export { createSandboxServer } from "./server.ts";
export type { CallerQuotas, SandboxAuditSink, SandboxServer, SandboxServerOptions } from "./server.ts";
export type { WorkspaceLimits } from "./workspaces.ts";
export { limitsFromConfig, SandboxTaskError, SandboxUnavailableError } from "./task.ts";
export type {
  AppliedLimits,
  ReturnedFile,
  RunOptions,
  SandboxBackend,
  SandboxEndReason,
  SandboxFile,
  SandboxHostRule,
  SandboxLimits,
  SandboxLimitsConfig,
  SandboxNetwork,
  SandboxOutput,
  SandboxResult,
  SandboxTask,
} from "./task.ts";
