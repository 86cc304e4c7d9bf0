// Suppressions: every one carries a reason and may carry an expiry. Three ways to write one:
//   annotation  perimeter.dev/ignore: "K8S-READONLY-ROOTFS=pip caches in /usr/local until=2026-12-31; K8S-...=..."
//   comment     # perimeter:ignore K8S-HOSTPATH node logs are read-only until=2026-12-31
//   baseline    --baseline FILE (YAML or JSON, see parseBaseline)
// A suppressed finding still appears in every output; an expired suppression no longer hides its finding.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Collector, RawFinding, Subject } from "./collector.ts";
import type { CheckError, CheckFinding, SourceLocation, Suppression } from "./model.ts";
import { ruleById } from "./rules.ts";
import { asArray, asRecord, asString, dottedPath, parseYamlFile } from "./yaml-source.ts";

/** A `# perimeter:ignore` comment in a line-oriented file (Dockerfile, .env) and the line it covers. */
export interface LineDirective {
  readonly text: string;
  readonly line: number;
  readonly column: number;
  readonly covers: number;
}

/** A line directive of `file` as the comment range suppressions are matched against. */
export function lineDirectiveRange(file: string, directive: LineDirective): CommentRange {
  return { file, text: directive.text, location: { file, line: directive.line, column: directive.column }, fromLine: directive.covers, toLine: directive.covers };
}

export interface CommentRange {
  readonly file: string;
  readonly text: string;
  readonly location: SourceLocation;
  readonly fromLine: number;
  readonly toLine: number;
}

export interface BaselineEntry {
  readonly rule: string;
  readonly fingerprint?: string;
  readonly file?: string;
  readonly subject?: string;
  readonly reason: string;
  readonly until?: string;
  readonly location: SourceLocation;
}

interface ParsedDirective {
  readonly rule: string;
  readonly reason: string;
  readonly until?: string;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function validDate(text: string): boolean {
  if (!DATE.test(text)) return false;
  const date = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(text);
}

/** `RULE reason words until=YYYY-MM-DD` (comment form) or `RULE=reason until=...` (annotation form). */
function parseDirective(text: string, separator: " " | "="): ParsedDirective | { problem: string } {
  const trimmed = text.trim();
  const cut = separator === "=" ? trimmed.indexOf("=") : trimmed.search(/\s/);
  const rule = (cut < 0 ? trimmed : trimmed.slice(0, cut)).trim();
  let rest = cut < 0 ? "" : trimmed.slice(cut + 1).trim();
  let until: string | undefined;
  const untilMatch = /(?:^|\s)until=(\S+)/.exec(rest);
  if (untilMatch !== null) {
    until = untilMatch[1] as string;
    rest = (rest.slice(0, untilMatch.index) + rest.slice(untilMatch.index + untilMatch[0].length)).trim();
  }
  if (rule === "") return { problem: "names no rule" };
  if (ruleById(rule) === undefined) return { problem: `names unknown rule "${rule}" (perimeter check --list-rules)` };
  if (rest === "") return { problem: `for ${rule} gives no reason; write why the finding is accepted` };
  if (until !== undefined && !validDate(until)) return { problem: `for ${rule} has until=${until}; write a date as YYYY-MM-DD` };
  return { rule, reason: rest, until };
}

function expired(until: string | undefined, today: string): boolean {
  return until !== undefined && until < today;
}

export function fingerprintOf(ruleId: string, file: string, subject: string, path: string): string {
  return createHash("sha256").update(`${ruleId}\u0000${file}\u0000${subject}\u0000${path}`).digest("hex").slice(0, 32);
}

export function parseBaseline(file: string, display: string): { entries: BaselineEntry[]; errors: CheckError[] } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    return { entries: [], errors: [{ location: { file: display, line: 1, column: 1 }, message: `cannot read the baseline: ${(error as Error).message}` }] };
  }
  const parsed = parseYamlFile(display, text);
  const errors: CheckError[] = [...parsed.errors];
  const entries: BaselineEntry[] = [];
  const document = parsed.documents[0];
  const root = asRecord(document?.value);
  if (document === undefined || root === undefined || root.version !== 1 || !Array.isArray(root.suppressions)) {
    if (errors.length === 0) errors.push({ location: { file: display, line: 1, column: 1 }, message: "a baseline is { version: 1, suppressions: [{ rule, fingerprint | file/subject, reason, until? }] }" });
    return { entries, errors };
  }
  asArray(root.suppressions).forEach((item, index) => {
    const entry = asRecord(item) ?? {};
    const location = document.locate(["suppressions", index]);
    const rule = asString(entry.rule) ?? "";
    const reason = asString(entry.reason)?.trim() ?? "";
    const until = asString(entry.until);
    const problem =
      ruleById(rule) === undefined ? `unknown rule "${rule}"`
      : reason === "" ? `the suppression of ${rule} gives no reason`
      : until !== undefined && !validDate(until) ? `until=${until} is not a YYYY-MM-DD date`
      : entry.fingerprint === undefined && entry.file === undefined && entry.subject === undefined ? `the suppression of ${rule} names no fingerprint, file or subject (a rule-wide suppression hides future findings too)`
      : undefined;
    if (problem !== undefined) {
      errors.push({ location, message: `baseline: ${problem}` });
      return;
    }
    entries.push({ rule, reason, until, fingerprint: asString(entry.fingerprint), file: asString(entry.file), subject: asString(entry.subject), location });
  });
  return { entries, errors };
}

export interface SuppressionSources {
  readonly comments: readonly CommentRange[];
  readonly baseline: readonly BaselineEntry[];
  /** Subjects that may carry `perimeter.dev/ignore` annotations (every Kubernetes object read). */
  readonly annotated: readonly Subject[];
  /** YYYY-MM-DD in UTC. */
  readonly today: string;
}

/**
 * Reports malformed suppressions as findings (so they cannot pass unnoticed), then resolves every raw finding into
 * a located, fingerprinted finding with its suppression, if any.
 */
export function resolveFindings(collector: Collector, sources: SuppressionSources): CheckFinding[] {
  const annotationDirectives = new Map<Subject, Array<{ directive: ParsedDirective; location: SourceLocation }>>();
  const invalidSubject = (file: string): Subject => ({ file, name: "suppression", locate: () => ({ file, line: 1, column: 1 }) });
  for (const subject of new Set(sources.annotated)) {
    for (const annotation of subject.ignoreAnnotations ?? []) {
      const list = annotationDirectives.get(subject) ?? [];
      // Entries are separated by newlines, or by ";" when the next entry starts with a rule id (reasons may hold ";").
      for (const part of annotation.text.split(/\n|;\s*(?=[A-Z][A-Z0-9]*-[A-Z0-9-]+\s*=)/).map((piece) => piece.trim()).filter((piece) => piece !== "")) {
        const parsed = parseDirective(part, "=");
        if ("problem" in parsed) {
          const location = annotation.location;
          collector.add("CHECK-SUPPRESSION-INVALID", { ...invalidSubject(location.file), locate: () => location, name: `${subject.name} annotation` }, [part], `perimeter.dev/ignore on ${subject.name} ${parsed.problem}`);
        } else {
          list.push({ directive: parsed, location: annotation.location });
        }
      }
      annotationDirectives.set(subject, list);
    }
  }
  const comments: Array<{ range: CommentRange; directive: ParsedDirective }> = [];
  for (const range of sources.comments) {
    const parsed = parseDirective(range.text, " ");
    if ("problem" in parsed) {
      collector.add("CHECK-SUPPRESSION-INVALID", { ...invalidSubject(range.file), locate: () => range.location, name: `comment at line ${range.location.line}` }, [], `# perimeter:ignore ${parsed.problem}`);
    } else {
      comments.push({ range, directive: parsed });
    }
  }
  return collector.findings.map((raw) => resolveOne(raw, annotationDirectives, comments, sources));
}

/** Every suppression of `ruleId` written for this spot: on the subject, in a comment covering the line, in the baseline. */
function suppressionsAt(
  ruleId: string,
  subject: Subject,
  location: SourceLocation,
  fingerprint: string,
  annotations: ReadonlyMap<Subject, Array<{ directive: ParsedDirective; location: SourceLocation }>>,
  comments: ReadonlyArray<{ range: CommentRange; directive: ParsedDirective }>,
  sources: SuppressionSources,
): Suppression[] {
  const candidates: Suppression[] = [];
  for (const { directive, location: where } of annotations.get(subject) ?? []) {
    if (directive.rule === ruleId) candidates.push({ kind: "annotation", reason: directive.reason, until: directive.until, location: where });
  }
  for (const { range, directive } of comments) {
    if (directive.rule === ruleId && range.file === location.file && location.line >= range.fromLine && location.line <= range.toLine) {
      candidates.push({ kind: "comment", reason: directive.reason, until: directive.until, location: range.location });
    }
  }
  for (const entry of sources.baseline) {
    if (entry.rule !== ruleId) continue;
    const matches = entry.fingerprint !== undefined ? entry.fingerprint === fingerprint : (entry.file === undefined || entry.file === location.file || entry.file === subject.file) && (entry.subject === undefined || entry.subject === subject.name);
    if (matches) candidates.push({ kind: "baseline", reason: entry.reason, until: entry.until, location: entry.location });
  }
  return candidates;
}

function resolveOne(
  raw: RawFinding,
  annotations: ReadonlyMap<Subject, Array<{ directive: ParsedDirective; location: SourceLocation }>>,
  comments: ReadonlyArray<{ range: CommentRange; directive: ParsedDirective }>,
  sources: SuppressionSources,
): CheckFinding {
  const definition = ruleById(raw.ruleId);
  if (definition === undefined) throw new Error(`rule ${raw.ruleId} is not registered`);
  const location = raw.subject.locate(raw.path);
  const path = dottedPath(raw.path);
  const fingerprint = fingerprintOf(raw.ruleId, raw.subject.file, raw.subject.name, path);
  let candidates = raw.ruleId === "CHECK-SUPPRESSION-INVALID" ? [] : suppressionsAt(raw.ruleId, raw.subject, location, fingerprint, annotations, comments, sources);
  if (!candidates.some((candidate) => !expired(candidate.until, sources.today)) && raw.origins !== undefined && raw.origins.length > 0) {
    // Derived findings are accepted only when every spot they come from is accepted (fail closed).
    const perOrigin = raw.origins.map((origin) => {
      const originLocation = origin.subject.locate(origin.path);
      const originFingerprint = fingerprintOf(raw.ruleId, origin.subject.file, origin.subject.name, dottedPath(origin.path));
      return suppressionsAt(raw.ruleId, origin.subject, originLocation, originFingerprint, annotations, comments, sources).filter((candidate) => !expired(candidate.until, sources.today));
    });
    if (perOrigin.every((list) => list.length > 0)) candidates = [...candidates, ...(perOrigin[0] as Suppression[])];
  }
  const active = candidates.find((candidate) => !expired(candidate.until, sources.today));
  const lapsed = active === undefined ? candidates.find((candidate) => expired(candidate.until, sources.today)) : undefined;
  return {
    ruleId: raw.ruleId,
    severity: definition.severity,
    message: raw.message,
    location,
    subject: raw.subject.name,
    path,
    fingerprint,
    ...(active !== undefined ? { suppression: active } : {}),
    ...(lapsed !== undefined ? { expiredSuppression: lapsed } : {}),
  };
}
