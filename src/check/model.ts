// The vocabulary of `perimeter check`: severities, rules, findings, suppressions and the result of one run.

export const SEVERITIES = ["low", "medium", "high", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

export function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

export function isSeverity(value: string): value is Severity {
  return (SEVERITIES as readonly string[]).includes(value);
}

/** What a rule looks at; also the prefix of its id. */
export type RuleFamily = "K8S" | "COMPOSE" | "HERMES" | "FILE" | "DOCKER" | "CHECK";

export interface RuleDefinition {
  /** Stable id, e.g. K8S-PRIVILEGED. Never renamed: baselines and suppressions refer to it. */
  readonly id: string;
  readonly family: RuleFamily;
  readonly severity: Severity;
  /** One line: what is wrong. */
  readonly title: string;
  /** Why it matters, tied to the threat (a prompt-injected agent, a stolen token, a hostile chat user). */
  readonly rationale: string;
  /** What to change. */
  readonly remediation: string;
  /** The corrected fragment, in the shape `perimeter render` writes it. */
  readonly fix: string;
}

export interface SourceLocation {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
}

export interface Suppression {
  readonly kind: "annotation" | "comment" | "baseline";
  readonly reason: string;
  /** YYYY-MM-DD; the suppression lapses at the end of that day (UTC). */
  readonly until?: string;
  /** Where the suppression is written. */
  readonly location?: SourceLocation;
}

export interface CheckFinding {
  readonly ruleId: string;
  readonly severity: Severity;
  readonly message: string;
  readonly location: SourceLocation;
  /** The object the finding is about: `Deployment/hermes/hermes`, `service gateway`, `config.yaml`. */
  readonly subject: string;
  /** Dotted path inside the subject, e.g. `spec.template.spec.containers[0].securityContext`. */
  readonly path: string;
  /** Stable across line moves: rule, file, subject and path. */
  readonly fingerprint: string;
  /** Present when the finding is accepted; it still appears in every output. */
  readonly suppression?: Suppression;
  /** Present when a suppression existed but has lapsed: the finding counts again. */
  readonly expiredSuppression?: Suppression;
}

/** An input that could not be read or understood. Any error makes the run exit 2. */
export interface CheckError {
  readonly location: SourceLocation;
  readonly message: string;
}

export interface CheckReport {
  readonly findings: readonly CheckFinding[];
  readonly errors: readonly CheckError[];
  /** Every file that was read, with what it was taken for. */
  readonly inputs: ReadonlyArray<{ readonly file: string; readonly kind: InputKind }>;
  /** Files seen while walking a directory that are none of the kinds we check; listed so nothing is skipped silently. */
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>;
}

export type InputKind = "kubernetes" | "kustomization" | "compose" | "hermes-config" | "env" | "dockerfile" | "data-directory" | "perimeter-config";
