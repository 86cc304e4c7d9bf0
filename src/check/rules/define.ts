// The shape every rule family writes its rules in; the registry (../rules.ts) joins the families in a fixed order.
import type { RuleDefinition, RuleFamily, Severity } from "../model.ts";

/** A rule; its family is its id's prefix, and a fix written as a template literal loses its leading newline. */
export function rule(id: string, severity: Severity, title: string, rationale: string, remediation: string, fix: string): RuleDefinition {
  return { id, family: id.slice(0, id.indexOf("-")) as RuleFamily, severity, title, rationale, remediation, fix: fix.replace(/^\n/, "") };
}
