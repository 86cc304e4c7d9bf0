// Placeholder until this capability's issue lands: the command exists and says it is not built yet.
import { EXIT_INTERNAL, writeLine } from "../cli/command.ts";
import type { Command } from "../cli/command.ts";
export const serveEgressProxy: Command = async (_args, io) => {
  writeLine(io.stderr, "perimeter: egress-proxy is not built yet");
  return EXIT_INTERNAL;
};
