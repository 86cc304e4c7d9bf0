// Hermes Agent: exactly what render seeds into its data volume (config.yaml) and puts in its environment.
import type { PerimeterConfig } from "../config/index.ts";
import { agentEnvironment, hermesConfigSeed } from "../render/index.ts";
import type { AgentFacts } from "./facts.ts";
import type { AgentConfiguration } from "./types.ts";

export function hermesConfiguration(config: PerimeterConfig, facts: AgentFacts): AgentConfiguration {
  return {
    agent: "hermes",
    files: [{ name: "config", path: "$HERMES_HOME/config.yaml", content: hermesConfigSeed(config, facts.endpoints) }],
    environment: agentEnvironment(config, facts.endpoints),
    usage: ["hermes gateway run   (HERMES_HOME holds config.yaml; the environment below, e.g. from a read-only .env)"],
  };
}
