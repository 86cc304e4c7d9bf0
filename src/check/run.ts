// The state of one `perimeter check` run, shared by the stages that read inputs (check.ts walks and dispatches,
// embedded.ts reads files held in ConfigMaps): what was found, what it suppresses, and what is already handled.
import { isAbsolute, relative } from "node:path";
import type { Collector, Subject } from "./collector.ts";
import type { KubeObject } from "./kubernetes.ts";
import type { KustomizeMode } from "./kustomize.ts";
import type { CheckError, InputKind } from "./model.ts";
import type { CommentRange } from "./suppress.ts";
import type { YamlFile } from "./yaml-source.ts";

export interface CheckOptions {
  readonly cwd: string;
  /** The text of standard input, when `-` is among the paths. */
  readonly stdinText?: string;
  readonly kustomize?: KustomizeMode;
  readonly baselineFile?: string;
  /** Today as YYYY-MM-DD (UTC); suppressions with an earlier `until` have lapsed. */
  readonly today?: string;
  /**
   * Validates a Perimeter declaration (perimeter.yaml) met among the inputs, returning its problems. Injected by the
   * CLI (it loads the config schema only when one is met); without it a declaration is reported as not checked.
   */
  readonly validateDeclaration?: (text: string, file: string) => readonly CheckError[];
}

export interface Run {
  readonly options: CheckOptions;
  readonly collector: Collector;
  readonly errors: CheckError[];
  readonly inputs: Array<{ file: string; kind: InputKind }>;
  readonly skipped: Array<{ file: string; reason: string }>;
  readonly objects: KubeObject[];
  readonly comments: CommentRange[];
  readonly annotated: Subject[];
  /** Files already taken care of (inside a kustomize build or a data directory). */
  readonly handled: Set<string>;
  /** kustomization directories found; only those no other one includes are built (an overlay builds its base). */
  readonly kustomizations: string[];
}

export function displayPath(path: string, cwd: string): string {
  if (!isAbsolute(path)) return path;
  const relativePath = relative(cwd, path);
  return relativePath === "" ? "." : relativePath.startsWith("..") ? path : relativePath;
}

/** A parsed YAML file's errors and suppression comments, into the run. */
export function collectYaml(run: Run, parsed: YamlFile): void {
  run.errors.push(...parsed.errors);
  for (const directive of parsed.directives) run.comments.push({ file: parsed.file, text: directive.text, location: directive.location, fromLine: directive.fromLine, toLine: directive.toLine });
}
