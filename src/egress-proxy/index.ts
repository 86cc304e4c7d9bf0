// Public API of the egress proxy: other folders import only from here. The sandbox runner and `perimeter up` build
// proxies with createEgressProxy; mcp-guard reloads on the same file events (watchConfigFile).
export { createEgressProxy } from "./server.ts";
export type { EgressProxy, EgressProxyDependencies, AuditSink, Dialer, ListenTarget, RuntimeClient, ReloadResult } from "./server.ts";
export { decide, identifyClient, credentialsToken } from "./decide.ts";
export type { EgressDecision, EgressDenyReason, EgressRequest, ClientIdentity } from "./decide.ts";
export { compilePolicy, policyFromConfig, PolicyError, DEFAULT_LIMITS } from "./policy.ts";
export type { EgressPolicy, EgressPolicyInput, EgressLimits, ClientInput, RuleInput, PolicyRule, PolicyClient } from "./policy.ts";
export { createClientHelloReader } from "./client-hello.ts";
export type { ClientHelloResult, ClientHelloReader } from "./client-hello.ts";
export { watchConfigFile } from "./watch.ts";
export type { FileWatcher } from "./watch.ts";
