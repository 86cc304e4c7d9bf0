// The contract between the CLI entry point and each capability's command module. Commands return an exit code;
// only main.ts ends the process. Exit codes (DESIGN.md): 0 ok; 1 findings, denial or failed verification;
// 2 usage or config error; 3 internal error.
import { parseArgs } from "node:util";
import type { ParseArgsConfig } from "node:util";
import type { Environment } from "../config/index.ts";
// errors.ts directly, not shared/index.ts: the CLI fast path (--version, help) must load no package (pino).
import { PerimeterError } from "../shared/errors.ts";

export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 3;

export interface CommandIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly stdin: NodeJS.ReadableStream;
  readonly env: Environment;
  readonly cwd: string;
  /** Aborted on SIGINT/SIGTERM; long-running commands (serve, --follow) shut down cleanly when it fires. */
  readonly signal: AbortSignal;
  /** Fires on SIGHUP for services that reload their policy. */
  readonly onReload: (listener: () => void) => void;
}

export type Command = (args: string[], io: CommandIo) => Promise<number>;

/** A mistake in how the command was called; main prints the message and exits 2. */
export class UsageError extends PerimeterError {
  constructor(message: string) {
    super("usage", message);
  }
}

/** node:util parseArgs, strict, with errors turned into UsageError messages that name the command. */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig["options"]>>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message} (see perimeter ${command} --help)`);
  }
}

export function writeLine(stream: NodeJS.WritableStream, text = ""): void {
  stream.write(`${text}\n`);
}
