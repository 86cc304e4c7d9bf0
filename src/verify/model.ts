// What `perimeter verify` reports: one result per named check. Deciding is pure (answers in, results out); running
// probes and commands is the runners' job.

export type Suite = "isolation" | "mcp" | "host";
export type VerifyTarget = "kubernetes" | "compose" | "vps" | "local";
/** SKIP: the check does not apply to this target or could not be reached (the reason says which). */
export type Status = "PASS" | "WARN" | "FAIL" | "SKIP";

export interface CheckResult {
  /** Stable name, e.g. isolation.decisive-probe or mcp.github.tools: what docs/verify.md's table and JUnit use. */
  readonly id: string;
  readonly suite: Suite;
  readonly status: Status;
  /** What was seen, in one line (never a secret's value). */
  readonly evidence: string;
  /** For FAIL and WARN: what to change (which Secret, NetworkPolicy, unit or config line). */
  readonly fix?: string;
  readonly seconds?: number;
}

export function pass(id: string, suite: Suite, evidence: string): CheckResult {
  return { id, suite, status: "PASS", evidence };
}

export function fail(id: string, suite: Suite, evidence: string, fix: string): CheckResult {
  return { id, suite, status: "FAIL", evidence, fix };
}

export function warn(id: string, suite: Suite, evidence: string, fix: string): CheckResult {
  return { id, suite, status: "WARN", evidence, fix };
}

export function skip(id: string, suite: Suite, reason: string): CheckResult {
  return { id, suite, status: "SKIP", evidence: reason };
}

/** Exit code of a verification: 1 when anything FAILs (seed 003's scripts double as a post-deploy gate). */
export function verificationExit(results: readonly CheckResult[]): 0 | 1 {
  return results.some((result) => result.status === "FAIL") ? 1 : 0;
}

/** A refused connection and a timeout both mean blocked; only CONNECTED is a leak (seed 003). */
export function isBlocked(outcome: unknown): boolean {
  return outcome !== "connected";
}
