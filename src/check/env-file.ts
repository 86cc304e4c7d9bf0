// .env files as Hermes, Docker Compose and dotenv read them: KEY=VALUE lines, optional `export `, quotes, comments.
// A line that is none of these is an error with its location, never skipped.
import type { LineDirective } from "./suppress.ts";
import type { Collector, Subject } from "./collector.ts";
import { checkHermesEnvironment } from "./hermes-facts.ts";
import type { EnvEntry } from "./hermes-facts.ts";
import type { CheckError } from "./model.ts";

export interface EnvVariable {
  readonly name: string;
  readonly value: string;
  readonly line: number;
}

export interface EnvFile {
  readonly file: string;
  readonly variables: readonly EnvVariable[];
  readonly errors: readonly CheckError[];
  /** Lines carrying `# perimeter:ignore`, with the line they cover. */
  readonly directives: readonly LineDirective[];
}

const LINE = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/;

export function parseEnvText(file: string, text: string): EnvFile {
  const variables: EnvVariable[] = [];
  const errors: CheckError[] = [];
  const directives: LineDirective[] = [];
  const lines = text.split(/\r?\n/);
  let pendingDirective: { text: string; line: number; column: number } | undefined;
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index] ?? "";
    const lineNumber = index + 1;
    const directive = /#\s*perimeter:ignore\b(.*)$/.exec(raw);
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) {
      if (directive !== null) pendingDirective = { text: (directive[1] ?? "").trim(), line: lineNumber, column: raw.indexOf("#") + 1 };
      continue;
    }
    const match = LINE.exec(raw);
    if (match === null) {
      errors.push({ location: { file, line: lineNumber, column: 1 }, message: "not a KEY=VALUE line (names start with a letter or _; values with spaces need quotes)" });
      continue;
    }
    let value = (match[2] ?? "").trim();
    const quote = value[0];
    if (quote === '"' || quote === "'") {
      let closing = value.indexOf(quote, 1);
      // A quoted value may span lines (dotenv and Compose allow it).
      while (closing < 0 && index + 1 < lines.length) {
        index += 1;
        value += `\n${lines[index] ?? ""}`;
        closing = value.indexOf(quote, 1);
      }
      if (closing < 0) {
        errors.push({ location: { file, line: lineNumber, column: raw.indexOf(quote) + 1 }, message: `unterminated ${quote === '"' ? "double" : "single"}-quoted value` });
        continue;
      }
      value = value.slice(1, closing);
    } else {
      value = value.replace(/\s+#.*$/, "");
    }
    variables.push({ name: match[1] as string, value, line: lineNumber });
    if (directive !== null) directives.push({ text: (directive[1] ?? "").trim(), line: lineNumber, column: raw.indexOf("#", raw.indexOf("=")) + 1, covers: lineNumber });
    if (pendingDirective !== undefined) {
      directives.push({ ...pendingDirective, covers: lineNumber });
      pendingDirective = undefined;
    }
  }
  return { file, variables, errors, directives };
}

/** Hermes' environment rules on one .env file; `agentEnv` when it is the agent's own (in its data directory). */
export function checkEnvFile(envFile: EnvFile, agentEnv: boolean, collector: Collector): void {
  const lineOf = new Map(envFile.variables.map((variable) => [variable.name, variable.line]));
  const subject: Subject = {
    file: envFile.file,
    name: envFile.file.slice(envFile.file.lastIndexOf("/") + 1),
    locate: (path) => ({ file: envFile.file, line: typeof path[0] === "string" ? (lineOf.get(path[0]) ?? 1) : 1, column: 1 }),
  };
  const entries: EnvEntry[] = envFile.variables.map((variable) => ({ name: variable.name, value: variable.value, subject, path: [variable.name] }));
  checkHermesEnvironment(entries, { complete: true, providerKeyRule: agentEnv ? "HERMES-PROVIDER-KEY-IN-ENV" : undefined }, collector);
}
