// Rules report raw findings against a subject (a Kubernetes object, a compose service, a config file); the engine
// later turns them into located, fingerprinted, possibly suppressed findings.
import type { SourceLocation } from "./model.ts";
import type { Path } from "./yaml-source.ts";

export interface IgnoreAnnotation {
  readonly text: string;
  readonly location: SourceLocation;
}

export interface Subject {
  readonly file: string;
  /** Human name, also part of the fingerprint: `Deployment/hermes/hermes`, `service gateway`, `config.yaml`. */
  readonly name: string;
  locate(path: Path): SourceLocation;
  /** `perimeter.dev/ignore` annotations written on this subject (Kubernetes objects and pod templates). */
  readonly ignoreAnnotations?: readonly IgnoreAnnotation[];
}

/** A spot a finding was derived from (the role rule behind a binding's grant). */
export interface Origin {
  readonly subject: Subject;
  readonly path: Path;
}

export interface RawFinding {
  readonly ruleId: string;
  readonly subject: Subject;
  readonly path: Path;
  readonly message: string;
  /**
   * Where the finding comes from, when that is elsewhere: a suppression of the same rule at every one of these spots
   * accepts this finding too, so accepting a Role's grant once also accepts it on each binding that hands it out.
   */
  readonly origins?: readonly Origin[];
}

export interface Collector {
  add(ruleId: string, subject: Subject, path: Path, message: string, origins?: readonly Origin[]): void;
  readonly findings: RawFinding[];
}

export function createCollector(): Collector {
  const findings: RawFinding[] = [];
  const seen = new Set<string>();
  return {
    findings,
    add(ruleId, subject, path, message, origins) {
      // The same rule on the same spot is reported once, however many routes lead to it.
      const key = `${ruleId}\u0000${subject.file}\u0000${subject.name}\u0000${path.join(".")}\u0000${message}`;
      if (seen.has(key)) return;
      seen.add(key);
      findings.push(origins === undefined || origins.length === 0 ? { ruleId, subject, path, message } : { ruleId, subject, path, message, origins });
    },
  };
}

/** A subject for a whole file (an .env, a Dockerfile line) located by line numbers the rule already knows. */
export function lineSubject(file: string, name: string, lineOf: (path: Path) => SourceLocation): Subject {
  return { file, name, locate: lineOf };
}
