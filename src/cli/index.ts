// Public API of cli/: the contract between the entry point (main.ts) and each capability's command module — exit
// codes, the command's io, usage errors and argument parsing. Other folders import only from here.
export { EXIT_FINDINGS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "./command.ts";
export type { Command, CommandIo } from "./command.ts";
