// Public API of mcp-guard/: other folders import only from here (the guard factory, its setup errors, and the pure
// policy pieces perimeter replay reuses).
export { createMcpGuard, GUARD_VERSION } from "./guard.ts";
export type { McpGuard, McpGuardDependencies, McpGuardOptions } from "./guard.ts";
export { GuardSetupError, dialAddress } from "./setup.ts";
export { checkArguments, compileConstraints, parseArgumentPath } from "./arguments.ts";
export type { CompiledConstraint } from "./arguments.ts";
export { decideCall, toolPolicy } from "./decide-call.ts";
export type { CallDecision, CallDecisionContext, CallRequest, DefinitionState, DenyStage, ToolPolicy } from "./decide-call.ts";
export { createRedactor, REDACTED } from "./redact.ts";
export type { Redactor } from "./redact.ts";
export { definitionHash, definitionOf, diffDefinitions, scanForHiddenInstructions } from "./definitions.ts";
export type { Finding, ToolDefinition } from "./definitions.ts";
export { annotationsFor, approvalRequired, namespacedName, splitToolName, toolAllowed } from "./policy.ts";
export { serveMcpGuard, openGuardDatabase } from "./cli.ts";
