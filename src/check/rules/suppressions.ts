// Rules on the suppressions themselves.
import type { RuleDefinition } from "../model.ts";
import { rule } from "./define.ts";

export const SUPPRESSION_RULES: readonly RuleDefinition[] = [
  rule(
    "CHECK-SUPPRESSION-INVALID", "medium",
    "A suppression has no reason, a bad date, or names an unknown rule",
    "A suppression without a reason cannot be reviewed, and one with a typo in the rule id hides nothing while looking like it does.",
    "Write `perimeter.dev/ignore: RULE=reason` or `# perimeter:ignore RULE reason until=YYYY-MM-DD` with a known rule id.",
    `
metadata:
  annotations:
    perimeter.dev/ignore: "K8S-READONLY-ROOTFS=writes pip caches to /usr/local until=2026-12-31"
`,
  ),
];
