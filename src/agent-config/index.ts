// What other capabilities may use from agent-config/: one agent's configuration wired to the perimeter.
import type { PerimeterConfig } from "../config/index.ts";
import { claudeCodeConfiguration } from "./claude-code.ts";
import { codexConfiguration } from "./codex.ts";
import { agentFacts } from "./facts.ts";
import type { Placement } from "./facts.ts";
import { hermesConfiguration } from "./hermes.ts";
import { qwenCodeConfiguration } from "./qwen-code.ts";
import type { AgentConfiguration, AgentName } from "./types.ts";

export { AGENT_NAMES } from "./types.ts";
export type { AgentConfiguration, AgentFile, AgentName } from "./types.ts";
export { PLACEMENTS } from "./facts.ts";
export type { Placement } from "./facts.ts";

export function agentConfiguration(config: PerimeterConfig, agent: AgentName, placement: Placement = "local"): AgentConfiguration {
  const facts = agentFacts(config, placement);
  switch (agent) {
    case "hermes":
      return hermesConfiguration(config, facts);
    case "qwen-code":
      return qwenCodeConfiguration(facts);
    case "codex":
      return codexConfiguration(facts);
    case "claude-code":
      return claudeCodeConfiguration(facts);
  }
}
