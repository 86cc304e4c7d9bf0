// The pure part of a tools/call decision: everything that depends only on the policy, the tool's pinned definition
// and the call itself, not on time or on what else is in flight. The live pipeline (calls.ts) runs it for every call
// and `perimeter replay` runs it for recorded ones, so a replayed verdict is the verdict the guard would give.
//   namespace → allowlist → listed and synced → pinned definition → argument constraints → approval (reviewable?)
// What stays in calls.ts depends on the moment: calls in flight, approvals already waiting, a human's decision.
import type { McpServerConfig, PerimeterConfig } from "../config/index.ts";
import { checkArguments } from "./arguments.ts";
import type { CompiledConstraint, PolicyVerdict } from "./arguments.ts";
import { measureArguments, reviewableArguments } from "./call-arguments.ts";
import type { MeasuredArguments } from "./call-arguments.ts";
import type { PinStatus } from "./pins.ts";
import { approvalsRequired, splitToolName, toolAllowed } from "./policy.ts";
import type { Redactor } from "./redact.ts";

/** A tool's policy: whether the allowlist exposes it, and how many distinct people must approve a call (0: none). */
export interface ToolPolicy {
  readonly allowed: PolicyVerdict;
  readonly approvers: number;
}

export function toolPolicy(config: PerimeterConfig, serverConfig: McpServerConfig, server: string, tool: string): ToolPolicy {
  return { allowed: toolAllowed(serverConfig, tool), approvers: approvalsRequired(config, server, tool) };
}

/** What the catalog knows of a listed tool: the hash of its current definition and whether that hash is trusted. */
export interface DefinitionState {
  readonly hash: string;
  readonly status: PinStatus;
  readonly reviewId?: string | undefined;
}

export interface CallDecisionContext {
  readonly config: PerimeterConfig;
  /** Each server's compiled `arguments` table. */
  readonly constraints: ReadonlyMap<string, readonly CompiledConstraint[]>;
  readonly redactor: Redactor;
  /** The listed tool under its exposed name (`<server>__<tool>`), or undefined when the upstream does not list it. */
  readonly definition: (exposedName: string) => DefinitionState | undefined;
  /** Why a server's tool list is not known yet (before its first sync), or undefined once it is. */
  readonly unsynced?: (server: string) => string | undefined;
  /** The tool's policy; the live guard passes a cached one. @default toolPolicy */
  readonly policyFor?: (serverConfig: McpServerConfig, server: string, tool: string) => ToolPolicy;
}

export interface CallRequest {
  /** The exposed name the agent called. */
  readonly name: string;
  readonly arguments: Record<string, unknown>;
  /** The arguments' wire form, when the caller has already measured it (the live guard shares it with its records). */
  readonly measure?: () => MeasuredArguments;
}

/** Which step refused a call: replay reports group by it. */
export type DenyStage = "name" | "allowlist" | "unavailable" | "unlisted" | "definition" | "arguments" | "review";

export type CallDecision =
  | { readonly decision: "allow"; readonly server: string; readonly tool: string; readonly serverConfig: McpServerConfig; readonly definitionHash: string }
  | {
      readonly decision: "hold";
      readonly server: string;
      readonly tool: string;
      readonly serverConfig: McpServerConfig;
      readonly definitionHash: string;
      /** Distinct people who must approve (the two-person rule asks for 2). */
      readonly approvers: number;
      /** sha256 of the exact bytes the upstream will receive: the approval binds it. */
      readonly argumentsSha256: string;
    }
  | {
      readonly decision: "deny";
      readonly stage: DenyStage;
      /** For the audit record and the operator (may quote the agent's input; the recorder redacts and bounds it). */
      readonly reason: string;
      /** For the agent: what was refused and, where it can, what to do instead. */
      readonly message: string;
      readonly definitionHash?: string;
    };

export function decideCall(context: CallDecisionContext, request: CallRequest): CallDecision {
  const { config, redactor } = context;
  const split = splitToolName(request.name);
  const serverConfig = split === undefined ? undefined : config.mcp.servers[split.server];
  // One answer for a name that does not exist and one the policy hides: the agent must not learn which it was.
  const unavailable = `tool "${request.name}" is not available: it does not exist or policy does not allow it`;
  if (split === undefined || serverConfig === undefined) return { decision: "deny", stage: "name", reason: "unknown tool name (expected <server>__<tool>)", message: unavailable };
  const policy = (context.policyFor ?? ((server, name, tool) => toolPolicy(config, server, name, tool)))(serverConfig, split.server, split.tool);
  if (!policy.allowed.allow) return { decision: "deny", stage: "allowlist", reason: `not allowed: ${policy.allowed.reason}`, message: unavailable };

  const entry = context.definition(request.name);
  if (entry === undefined) {
    const unsynced = context.unsynced?.(split.server);
    if (unsynced !== undefined) {
      return { decision: "deny", stage: "unavailable", reason: `upstream unavailable before its first sync (${unsynced})`, message: `upstream "${split.server}" is unavailable (${unsynced}); try again later` };
    }
    return { decision: "deny", stage: "unlisted", reason: "the upstream does not list this tool", message: unavailable };
  }
  const definitionHash = entry.hash;
  if (entry.status === "pending") {
    return {
      decision: "deny",
      stage: "definition",
      reason: `tool definition quarantined pending review ${entry.reviewId ?? ""}`.trim(),
      message: `tool "${request.name}" is quarantined: its definition is new or changed and waits for a human review (${entry.reviewId ?? "pending"})`,
      definitionHash,
    };
  }
  if (entry.status === "denied") {
    return { decision: "deny", stage: "definition", reason: "tool definition rejected by a reviewer", message: `tool "${request.name}" is blocked: a reviewer rejected its current definition`, definitionHash };
  }

  const argumentCheck = checkArguments(context.constraints.get(split.server) ?? [], split.tool, request.arguments);
  if (!argumentCheck.allow) return { decision: "deny", stage: "arguments", reason: argumentCheck.reason, message: `denied: ${redactor.text(argumentCheck.reason)}`, definitionHash };

  const target = { server: split.server, tool: split.tool, serverConfig, definitionHash };
  if (policy.approvers === 0) return { decision: "allow", ...target };
  // A human approves what they are shown: arguments that cannot be shown whole are denied rather than held.
  const wire = request.measure?.() ?? measureArguments(request.arguments);
  const review = reviewableArguments(request.arguments, wire, redactor, config.approvals.maxReviewBytes);
  if (!review.reviewable || wire.sha256 === null) {
    const reason = review.reviewable ? "the arguments are not JSON" : review.reason;
    return { decision: "deny", stage: "review", reason, message: review.reviewable ? reason : review.message, definitionHash };
  }
  return { decision: "hold", ...target, approvers: policy.approvers, argumentsSha256: wire.sha256 };
}
