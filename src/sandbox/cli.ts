// Placeholder until this capability's issue lands: the command exists and says it is not built yet.
import { EXIT_INTERNAL, writeLine } from "../cli/command.ts";
import type { Command } from "../cli/command.ts";
export const serveSandbox: Command = async (_args, io) => {
  writeLine(io.stderr, "perimeter: sandbox is not built yet");
  return EXIT_INTERNAL;
};
export const sandboxCommand: Command = async (_args, io) => {
  writeLine(io.stderr, "perimeter: sandbox is not built yet");
  return EXIT_INTERNAL;
};
