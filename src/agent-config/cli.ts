// `perimeter agent-config --agent hermes|qwen-code|codex|claude-code -c FILE [--target local|compose|kubernetes]
// [--file NAME | --env | --json] [-o FILE [--force]]`.
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { EXIT_OK, EXIT_USAGE, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command } from "../cli/index.ts";
import { loadConfig } from "../config/index.ts";
import { RenderError } from "../render/index.ts";
import type { EnvironmentEntry } from "../render/index.ts";
import { AGENT_NAMES, PLACEMENTS, agentConfiguration } from "./index.ts";
import type { AgentConfiguration, AgentName, Placement } from "./index.ts";

const HELP = `Usage: perimeter agent-config --agent ${AGENT_NAMES.join("|")} -c FILE [--target ${PLACEMENTS.join("|")}]
                              [--file NAME | --env | --json] [-o FILE [--force]]

Prints the agent's own configuration wired to the perimeter declared in FILE: its model through llm-proxy with the
virtual key, its one MCP server mcp-guard with the agent token, timeouts that outlast a call held for a human, the
egress proxy for everything else, and its telemetry, update checks and own shell/file tools off.
  --target local        the agent runs on the services' host (perimeter up / serve): the listen addresses (default)
  --target compose      the agent is the rendered Compose deployment's agent container
  --target kubernetes   the agent runs in the rendered cluster
  --file NAME           which file, for agents with several (claude-code: settings, mcp); default the first
  --env                 the environment the agent needs instead: values, and each secret by name (never its value)
  --json                everything: files, environment and how to start the agent headless
  -o FILE               write to FILE instead of stdout (an existing FILE is refused unless --force)
`;

function environmentText(configuration: AgentConfiguration, perimeterName: string): string {
  const values = configuration.environment.filter((entry): entry is { name: string; value: string } => "value" in entry);
  const secrets = configuration.environment.filter((entry): entry is { name: string; secretKey: string } => "secretKey" in entry);
  return [
    `# Environment of ${configuration.agent} behind perimeter ${perimeterName} (perimeter agent-config --env).`,
    "# Values are written; secrets are named only: set each from your secret store, the same value the perimeter's",
    "# service holds (llm-proxy for the virtual key, mcp-guard for the agent token). Nothing else belongs here.",
    ...values.map((entry) => `${entry.name}=${entry.value}`),
    ...secrets.map((entry) => `# secret ${entry.name}: the value of ${entry.secretKey}`),
    "",
  ].join("\n");
}

function environmentJson(environment: readonly EnvironmentEntry[]) {
  return environment.map((entry) => ("value" in entry ? { name: entry.name, value: entry.value } : { name: entry.name, secret: entry.secretKey }));
}

/** Written whole or not at all: a half-written config would start the agent with defaults (and their way out). */
function writeWhole(path: string, content: string, force: boolean): void {
  if (existsSync(path) && !force) throw new UsageError(`agent-config: ${path} exists; pass --force to replace it`);
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(temporary, content, { mode: 0o644 });
  renameSync(temporary, path);
}

export const agentConfigCommand: Command = async (args, io) => {
  const { values } = parseCommandArgs("agent-config", args, {
    agent: { type: "string", short: "a" },
    config: { type: "string", short: "c" },
    target: { type: "string", short: "t", default: "local" },
    file: { type: "string" },
    env: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    output: { type: "string", short: "o" },
    force: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const agent = values.agent as AgentName | undefined;
  if (agent === undefined || !AGENT_NAMES.includes(agent)) {
    throw new UsageError(`agent-config: name the agent with --agent ${AGENT_NAMES.join("|")}${values.agent === undefined ? "" : ` (not "${values.agent}")`}`);
  }
  if (values.config === undefined) throw new UsageError("agent-config: give the perimeter's config with -c FILE (e.g. -c perimeter.yaml)");
  const placement = values.target as Placement;
  if (!PLACEMENTS.includes(placement)) throw new UsageError(`agent-config: --target is ${PLACEMENTS.join(", ")} (not "${values.target}")`);
  if ([values.env, values.json, values.file !== undefined].filter(Boolean).length > 1) throw new UsageError("agent-config: choose one of --file NAME, --env and --json");
  const at = (path: string) => (isAbsolute(path) ? path : resolve(io.cwd, path));
  const config = loadConfig(at(values.config));
  let configuration: AgentConfiguration;
  try {
    configuration = agentConfiguration(config, agent, placement);
  } catch (error) {
    if (error instanceof RenderError) {
      writeLine(io.stderr, `perimeter agent-config: ${values.config}: ${error.message}`);
      return EXIT_USAGE;
    }
    throw error;
  }
  let text: string;
  if (values.env) {
    text = environmentText(configuration, config.name);
  } else if (values.json) {
    text = `${JSON.stringify({ agent, target: placement, files: configuration.files, environment: environmentJson(configuration.environment), usage: configuration.usage }, null, 2)}\n`;
  } else {
    const file = values.file === undefined ? configuration.files[0] : configuration.files.find((candidate) => candidate.name === values.file);
    if (file === undefined) {
      throw new UsageError(`agent-config: ${agent} has no file "${values.file ?? ""}"; its files are ${configuration.files.map((candidate) => candidate.name).join(", ")}`);
    }
    text = file.content;
  }
  if (values.output === undefined) {
    io.stdout.write(text);
  } else {
    writeWhole(at(values.output), text, values.force === true);
  }
  return EXIT_OK;
};
