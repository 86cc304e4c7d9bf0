// Replaying recorded tool calls through mcp-guard's own decision (decideCall, the function the live guard runs for
// every tools/call): per call allowed, held for approval or denied with the reason, per session the worst of them.
// What the replay cannot know is said, not guessed: a call whose arguments were not recorded is "undecided" when a
// constraint or an approval would have read them.
import { PerimeterError } from "../shared/index.ts";
import { globMatches } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { REDACTED, compileConstraints, createRedactor, decideCall, splitToolName } from "../mcp-guard/index.ts";
import type { CallDecisionContext, CompiledConstraint, DenyStage } from "../mcp-guard/index.ts";
import type { Expectation, TraceCall, TraceSession } from "./trace.ts";

export type CallOutcome = "allow" | "hold" | "deny" | "undecided";
export type SessionOutcome = "allowed" | "held" | "refused" | "undecided";

export interface CallVerdict {
  readonly index: number;
  readonly name: string;
  readonly decision: CallOutcome;
  readonly stage?: DenyStage;
  /** Why it was denied or left undecided (the operator's text: it may quote the call). */
  readonly reason?: string;
  /** Distinct people who must approve a held call. */
  readonly approvers?: number;
  readonly notes: readonly string[];
  /** The verdict when the call was recorded (audit log replays) and whether the policy now decides differently. */
  readonly recorded?: { readonly decision: string; readonly reason?: string; readonly seq?: number };
  readonly changed?: boolean;
}

export interface SessionVerdict {
  readonly id: string;
  readonly source: string;
  readonly agent?: string;
  readonly description?: string;
  readonly expect?: Expectation;
  readonly outcome: SessionOutcome;
  /** Whether the outcome is the expected one; absent without an expectation. */
  readonly met?: boolean;
  readonly calls: readonly CallVerdict[];
}

export interface ReplayReport {
  readonly assumptions: readonly string[];
  readonly sessions: readonly SessionVerdict[];
  readonly totals: {
    readonly sessions: Record<SessionOutcome, number>;
    readonly calls: Record<CallOutcome, number>;
    readonly expectations: { readonly met: number; readonly unmet: number };
    /** Recorded calls the policy now decides differently (audit log replays). */
    readonly changed: number;
  };
}

export interface ReplayOptions {
  /**
   * The tools each upstream lists (its tools/list): a call to a tool its server does not list is denied, as the
   * guard denies it. Without it, every tool the policy allows is taken as listed.
   */
  readonly listing?: ReadonlyMap<string, ReadonlySet<string>>;
}

export class ReplaySetupError extends PerimeterError {
  constructor(message: string) {
    super("setup", message);
  }
}

/** The replay does not judge definitions: it asks what the policy does once a tool's definition is trusted. */
const UNCHECKED_DEFINITION = "not-checked-by-replay";

export interface Replayer {
  replaySession(session: TraceSession): SessionVerdict;
  readonly assumptions: readonly string[];
}

export function createReplayer(config: PerimeterConfig, options: ReplayOptions = {}): Replayer {
  const constraints = new Map<string, CompiledConstraint[]>();
  for (const [name, server] of Object.entries(config.mcp.servers)) {
    try {
      constraints.set(name, compileConstraints(server.arguments));
    } catch (error) {
      throw new ReplaySetupError(`mcp.servers.${name}.arguments: ${(error as Error).message}`);
    }
  }
  // No secret values: the replay holds none. Shapes and mcp.redact still apply to what it shows.
  const redactor = createRedactor({ secrets: [], patterns: config.mcp.redact });
  const { listing } = options;
  const context: CallDecisionContext = {
    config,
    constraints,
    redactor,
    definition: (exposedName) => {
      const split = splitToolName(exposedName);
      if (split === undefined) return undefined;
      const listed = listing?.get(split.server);
      if (listing !== undefined && listed?.has(split.tool) !== true) return undefined;
      return { hash: UNCHECKED_DEFINITION, status: "trusted" };
    },
  };
  const assumptions = [
    listing === undefined
      ? "every tool the policy allows is taken as listed by its upstream, with a trusted definition (pinning and quarantine are the upstreams' state, not the policy's)"
      : "tools are listed as the given tool lists say, each with a trusted definition (pinning and quarantine are the upstreams' state, not the policy's)",
    "what depends on the moment is not replayed: calls in flight per agent (mcp.limits.concurrentCallsPerAgent), held calls already waiting (mcp.limits.pendingApprovalsPerAgent), and the human's decision on a held call",
  ];

  const constrained = (name: string) => {
    const split = splitToolName(name);
    return split === undefined ? 0 : (constraints.get(split.server) ?? []).filter((entry) => globMatches(entry.toolGlob, split.tool)).length;
  };

  const replayCall = (call: TraceCall, index: number): CallVerdict => {
    const notes: string[] = [];
    const recorded = call.recorded === undefined ? {} : { recorded: call.recorded };
    const decided = decideCall(context, { name: call.name, arguments: call.arguments });
    const omitted = call.argumentsNote?.omitted;
    let verdict: CallVerdict;
    // Whether the verdict came from, or still depends on, the arguments: constraints on the tool, or a human's review.
    const readsArguments = decided.decision === "deny" ? decided.stage === "arguments" || decided.stage === "review" : decided.decision === "hold" || constrained(call.name) > 0;
    if (omitted !== undefined && readsArguments) {
      // The tool-level steps passed; what is left reads the arguments, which the log does not have.
      const reading = constrained(call.name) > 0 ? `${constrained(call.name)} argument constraint(s) on this tool` : "whether a human could review them (approvals.maxReviewBytes)";
      verdict = { index, name: call.name, decision: "undecided", reason: `the arguments were not recorded (${omitted}), and ${reading} cannot be checked without them`, notes, ...recorded };
    } else if (decided.decision === "deny" && decided.stage === "arguments" && call.argumentsNote?.redacted === true) {
      verdict = {
        index,
        name: call.name,
        decision: "undecided",
        stage: decided.stage,
        reason: `${decided.reason}; but the audit log holds some of these arguments redacted (${REDACTED}), so the constraint may have read the placeholder, not the value`,
        notes,
        ...recorded,
      };
    } else {
      if (omitted !== undefined) notes.push(`arguments not recorded (${omitted}); the verdict does not depend on them`);
      else if (call.argumentsNote?.redacted === true) notes.push(`some argument values are redacted in the audit log (${REDACTED}); constraints were checked against what was recorded`);
      verdict =
        decided.decision === "deny"
          ? { index, name: call.name, decision: "deny", stage: decided.stage, reason: decided.reason, notes, ...recorded }
          : decided.decision === "hold"
            ? { index, name: call.name, decision: "hold", approvers: decided.approvers, notes, ...recorded }
            : { index, name: call.name, decision: "allow", notes, ...recorded };
    }
    if (call.recorded !== undefined && verdict.decision !== "undecided") return { ...verdict, changed: call.recorded.decision !== verdict.decision };
    return verdict;
  };

  return {
    assumptions,
    replaySession(session) {
      const calls = session.calls.map(replayCall);
      const outcome = sessionOutcome(calls);
      return {
        id: session.id,
        source: session.source,
        ...(session.agent === undefined ? {} : { agent: session.agent }),
        ...(session.description === undefined ? {} : { description: session.description }),
        ...(session.expect === undefined ? {} : { expect: session.expect, met: outcome === session.expect }),
        outcome,
        calls,
      };
    },
  };
}

/** The worst call decides: one denial refuses the session; otherwise an unknown, then a hold, keeps it from "allowed". */
export function sessionOutcome(calls: readonly CallVerdict[]): SessionOutcome {
  if (calls.some((call) => call.decision === "deny")) return "refused";
  if (calls.some((call) => call.decision === "undecided")) return "undecided";
  if (calls.some((call) => call.decision === "hold")) return "held";
  return "allowed";
}

export function replaySessions(config: PerimeterConfig, sessions: readonly TraceSession[], options: ReplayOptions = {}): ReplayReport {
  const replayer = createReplayer(config, options);
  const verdicts = sessions.map((session) => replayer.replaySession(session));
  const sessionTotals: Record<SessionOutcome, number> = { allowed: 0, held: 0, refused: 0, undecided: 0 };
  const callTotals: Record<CallOutcome, number> = { allow: 0, hold: 0, deny: 0, undecided: 0 };
  let met = 0;
  let unmet = 0;
  let changed = 0;
  for (const verdict of verdicts) {
    sessionTotals[verdict.outcome] += 1;
    if (verdict.met === true) met += 1;
    if (verdict.met === false) unmet += 1;
    for (const call of verdict.calls) {
      callTotals[call.decision] += 1;
      if (call.changed === true) changed += 1;
    }
  }
  return { assumptions: replayer.assumptions, sessions: verdicts, totals: { sessions: sessionTotals, calls: callTotals, expectations: { met, unmet }, changed } };
}
