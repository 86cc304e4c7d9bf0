// `perimeter render -c FILE -t kubernetes|compose|vps -o DIR [--force]`.
import { declarationWarnings, loadConfig } from "../config/index.ts";
import { EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command } from "../cli/index.ts";
import { isAbsolute, resolve } from "node:path";
import { RenderError } from "./plan.ts";
import type { Target } from "./plan.ts";
import { renderTarget } from "./render.ts";
import { writeDirectory } from "./write.ts";

const HELP = `Usage: perimeter render -c FILE -t kubernetes|compose|vps -o DIR [--force]

Writes a ready-to-apply deployment of the perimeter declared in FILE:
  -t kubernetes   a kustomize directory (kubectl apply -k DIR)
  -t compose      compose.yaml with its config and env file templates
  -t vps          one Debian/Ubuntu host: hardened systemd units, nftables, sshd, fail2ban, updates
                  (install with perimeter host apply DIR; needs a host: section)
The directory appears whole or not at all. An existing non-empty DIR is refused unless --force.
Secrets are never written: render prints the Secrets to create.
`;

export const renderCommand: Command = async (args, io) => {
  const { values } = parseCommandArgs("render", args, {
    config: { type: "string", short: "c" },
    target: { type: "string", short: "t" },
    output: { type: "string", short: "o" },
    force: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values.config === undefined) throw new UsageError("render: give the config file with -c FILE (e.g. -c examples/k3s-telegram-minimax.yaml)");
  if (values.target !== "kubernetes" && values.target !== "compose" && values.target !== "vps") {
    throw new UsageError(`render: give the target with -t kubernetes, -t compose or -t vps${values.target === undefined ? "" : ` (not "${values.target}")`}`);
  }
  if (values.output === undefined) throw new UsageError("render: give the output directory with -o DIR");
  const target: Target = values.target;
  const at = (path: string) => (isAbsolute(path) ? path : resolve(io.cwd, path));
  const config = loadConfig(at(values.config));
  let output;
  try {
    output = renderTarget(config, target);
  } catch (error) {
    if (error instanceof RenderError) {
      writeLine(io.stderr, `perimeter render: ${values.config}: ${error.message}`);
      return EXIT_USAGE;
    }
    throw error;
  }
  const written = writeDirectory(at(values.output), output.files, { force: values.force === true });
  if (!written.ok) {
    writeLine(io.stderr, `perimeter render: ${written.reason}`);
    return EXIT_USAGE;
  }
  for (const warning of [...declarationWarnings(config), ...output.warnings]) writeLine(io.stderr, `perimeter render: warning: ${warning}`);
  io.stdout.write(output.instructions(values.output));
  return EXIT_OK;
};
