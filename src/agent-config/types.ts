import type { EnvironmentEntry } from "../render/index.ts";

export type AgentName = "hermes" | "qwen-code" | "codex" | "claude-code";
export const AGENT_NAMES: readonly AgentName[] = ["hermes", "qwen-code", "codex", "claude-code"];

export interface AgentFile {
  /** What --file selects (the first file is the default). */
  readonly name: string;
  /** Where the agent reads it: ~ is the agent's home. */
  readonly path: string;
  readonly content: string;
}

export interface AgentConfiguration {
  readonly agent: AgentName;
  readonly files: readonly AgentFile[];
  /** The agent's whole environment besides PATH and HOME: values, and secrets named (never their values). */
  readonly environment: readonly EnvironmentEntry[];
  /** How to start it headless with these files, one line each. */
  readonly usage: readonly string[];
}
