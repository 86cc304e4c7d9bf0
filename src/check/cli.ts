// `perimeter check PATH... [-] [--format text|json|sarif|junit] [--fail-on SEVERITY] [--baseline FILE]
//                  [--list-rules] [--explain RULE] [--kustomize auto|kubectl|builtin]`
// Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 an input could not be read or parsed, or
// the command was called wrongly.
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command } from "../cli/index.ts";
import { ConfigError, closest, declarationWarnings, parseConfig } from "../config/index.ts";
import { runCheck } from "./check.ts";
import { counts, formatExplanation, formatJson, formatJunit, formatRuleList, formatSarif, formatText } from "./format.ts";
import type { KustomizeMode } from "./kustomize.ts";
import { SEVERITIES, isSeverity } from "./model.ts";
import type { CheckError, Severity } from "./model.ts";
import { ruleById, ruleIds } from "./rules.ts";

const HELP = `perimeter check PATH... [-] [options]

Static audit of an agent deployment: Kubernetes manifests (multi-document, kustomize directories), Docker Compose
files, Hermes config.yaml and .env files, Hermes data directories (modes and owners) and Dockerfiles. Directories
are read recursively (.git and node_modules are not entered); "-" reads YAML from standard input.

Options:
  --format text|json|sarif|junit   output format (default text; colour only on a terminal)
  --fail-on low|medium|high|critical
                                   exit 1 when an unsuppressed finding is at or above this severity (default low)
  --baseline FILE                  accepted findings: { version: 1, suppressions: [{ rule, fingerprint | file/subject,
                                   reason, until? }] }
  --kustomize auto|kubectl|builtin how to build kustomization directories (default auto: kubectl when installed)
  --list-rules                     print every rule
  --explain RULE                   print a rule's rationale, remediation and fix

Exit codes: 0 clean; 1 findings at or above --fail-on; 2 an input could not be parsed, or usage error.
`;

const FORMATS = ["text", "json", "sarif", "junit"] as const;
type Format = (typeof FORMATS)[number];

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

export const checkCommand: Command = async (args, io) => {
  const { values, positionals } = parseCommandArgs(
    "check",
    args,
    {
      format: { type: "string", default: "text" },
      "fail-on": { type: "string", default: "low" },
      baseline: { type: "string" },
      kustomize: { type: "string", default: "auto" },
      "list-rules": { type: "boolean", default: false },
      explain: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    true,
  );
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values["list-rules"]) {
    io.stdout.write(formatRuleList());
    return EXIT_OK;
  }
  if (values.explain !== undefined) {
    const definition = ruleById(values.explain.toUpperCase());
    if (definition === undefined) {
      const suggestion = closest(values.explain.toUpperCase(), ruleIds());
      throw new UsageError(`check: unknown rule "${values.explain}"${suggestion === undefined ? "" : ` — did you mean ${suggestion}?`} (perimeter check --list-rules)`);
    }
    io.stdout.write(formatExplanation(definition));
    return EXIT_OK;
  }
  const format = values.format as Format;
  if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`check: --format must be one of ${FORMATS.join(", ")}, not "${values.format}"`);
  const failOn = values["fail-on"];
  if (!isSeverity(failOn)) throw new UsageError(`check: --fail-on must be one of ${SEVERITIES.join(", ")}, not "${failOn}"`);
  const kustomize = values.kustomize as KustomizeMode;
  if (!["auto", "kubectl", "builtin"].includes(kustomize)) throw new UsageError(`check: --kustomize must be auto, kubectl or builtin, not "${values.kustomize}"`);
  if (positionals.length === 0) throw new UsageError("check: name at least one file or directory to check (or - for standard input)");

  const stdinText = (positionals as string[]).includes("-") ? await readAll(io.stdin) : undefined;
  // A perimeter.yaml among the inputs is validated as render would, and gets render's warnings on what loads but is
  // risky: on stderr, so a JSON or SARIF report stays parseable, and without failing the run.
  const warnings: string[] = [];
  const validateDeclaration = (text: string, file: string): CheckError[] => {
    try {
      for (const warning of declarationWarnings(parseConfig(text, file))) warnings.push(`${file}: ${warning}`);
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return error.problems.map((problem) => ({ location: { file, line: problem.line, column: problem.column }, message: `${problem.path === "" ? "" : `${problem.path}: `}${problem.message}` }));
    }
  };
  const result = runCheck(positionals, { cwd: io.cwd, stdinText, kustomize, baselineFile: values.baseline, validateDeclaration });
  for (const warning of warnings) writeLine(io.stderr, `perimeter check: warning: ${warning}`);
  const severity: Severity = failOn;
  const colour = format === "text" && (io.stdout as NodeJS.WriteStream).isTTY === true && io.env.NO_COLOR === undefined;
  switch (format) {
    case "text":
      io.stdout.write(formatText(result, { colour, failOn: severity }));
      break;
    case "json":
      io.stdout.write(formatJson(result, severity));
      break;
    case "sarif":
      io.stdout.write(formatSarif(result));
      break;
    case "junit":
      io.stdout.write(formatJunit(result, severity));
      break;
  }
  if (result.errors.length > 0) {
    if (format !== "text") for (const error of result.errors) writeLine(io.stderr, `${error.location.file}:${error.location.line}:${error.location.column}: error: ${error.message}`);
    return EXIT_USAGE;
  }
  return counts(result, severity).failing > 0 ? EXIT_FINDINGS : EXIT_OK;
};
