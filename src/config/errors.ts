// Config errors, kept apart from the schema so the CLI can recognise them without loading zod and yaml.
// errors.ts directly, not shared/index.ts: the CLI fast path (--version, help) must load no package (pino).
import { PerimeterError } from "../shared/errors.ts";

export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Dotted path into the document, e.g. `mcp.servers.github.tools`. */
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends PerimeterError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super("config", problems.map(formatProblem).join("\n"));
    this.problems = problems;
  }
}

export function formatProblem(problem: ConfigProblem): string {
  const where = problem.path === "" ? "" : `${problem.path}: `;
  return `${problem.file}:${problem.line}:${problem.column}: ${where}${problem.message}`;
}
