// The AgentDojo v1.2 benign data (tool schemas, user tasks and their ground-truth calls), read in place from
// ../shared/benchmarks/agentdojo (MIT licence, NOTICE beside it): never copied into this repository. Turned into
// perimeter replay sessions, one per user task, so the same harness takes any further trace in that format.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { TraceSession } from "../../src/replay/index.ts";

export const SUITES = ["workspace", "travel", "banking", "slack"] as const;
export type Suite = (typeof SUITES)[number];

export interface SuiteTool {
  name: string;
  description: string;
  input_schema: Record<string, unknown>;
}

interface SuiteData {
  tools: SuiteTool[];
  user_tasks: Array<{ id: string; prompt: string; ground_truth: Array<{ function: string; args: Record<string, unknown> }> }>;
}

/** Where the data lives: $AGENTDOJO_DATA, else ../shared/benchmarks/agentdojo beside the repository. */
export function dataFile(): string {
  const directory = process.env.AGENTDOJO_DATA ?? resolve(import.meta.dirname, "../../../shared/benchmarks/agentdojo");
  return join(directory, "agentdojo-v1.2-benign.json");
}

export function dataAvailable(): boolean {
  return existsSync(dataFile());
}

let cached: Record<Suite, SuiteData> | undefined;

function load(): Record<Suite, SuiteData> {
  if (cached === undefined) {
    const parsed = JSON.parse(readFileSync(dataFile(), "utf8")) as { suites: Record<Suite, SuiteData> };
    for (const suite of SUITES) {
      if (!Array.isArray(parsed.suites?.[suite]?.tools) || !Array.isArray(parsed.suites[suite].user_tasks)) throw new Error(`${dataFile()}: suite ${suite} has no tools or user_tasks`);
    }
    cached = parsed.suites;
  }
  return cached;
}

export function suiteTools(suite: Suite): SuiteTool[] {
  return load()[suite].tools;
}

/** One session per user task: its ground-truth calls in order, on the server named after the suite. */
export function benignSessions(suite: Suite): TraceSession[] {
  return load()[suite].user_tasks.map((task) => ({
    id: `${suite}/${task.id}`,
    description: task.prompt,
    source: `agentdojo-v1.2/${suite}`,
    calls: task.ground_truth.map((call) => ({ name: `${suite}__${call.function}`, arguments: call.args })),
  }));
}
