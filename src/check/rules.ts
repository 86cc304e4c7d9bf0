// The rule registry. Ids are stable: baselines, suppressions and SARIF history refer to them. Wording of rationales
// follows the seeds (../shared/seeds) where they say it best. Fix snippets are YAML fragments in the shape
// `perimeter render` writes. Each family's rules live in rules/<family>.ts; the order here is the order of
// --list-rules and docs/check.md.
import type { RuleDefinition } from "./model.ts";
import { COMPOSE_RULES } from "./rules/compose.ts";
import { DOCKERFILE_RULES } from "./rules/dockerfile.ts";
import { FILE_RULES } from "./rules/files.ts";
import { HERMES_RULES } from "./rules/hermes.ts";
import { KUBERNETES_CLUSTER_RULES } from "./rules/kubernetes-cluster.ts";
import { KUBERNETES_POD_RULES } from "./rules/kubernetes-pod.ts";
import { SUPPRESSION_RULES } from "./rules/suppressions.ts";

export const RULES: readonly RuleDefinition[] = [
  ...KUBERNETES_POD_RULES,
  ...KUBERNETES_CLUSTER_RULES,
  ...COMPOSE_RULES,
  ...HERMES_RULES,
  ...FILE_RULES,
  ...DOCKERFILE_RULES,
  ...SUPPRESSION_RULES,
];

const BY_ID = new Map(RULES.map((definition) => [definition.id, definition]));

export function ruleById(id: string): RuleDefinition | undefined {
  return BY_ID.get(id);
}

export function ruleIds(): string[] {
  return RULES.map((definition) => definition.id);
}
