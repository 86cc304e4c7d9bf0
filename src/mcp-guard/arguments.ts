// Argument constraints (mcp.servers.<name>.arguments: tool glob -> argument path -> constraint). A pure decision:
// given the tool's upstream name and the agent's arguments, allow or name the first violated constraint. Paths are
// dotted (`options.depth`), with `[*]` for every element of an array (`files[*].path`) and `[N]` for one element.
import { globMatches } from "../config/index.ts";
import type { ArgumentConstraint } from "../config/index.ts";

export type Decision = { allow: true } | { allow: false; reason: string };

type Step = { key: string } | { index: number } | { every: true };

export class ArgumentPathError extends Error {
  constructor(path: string, reason: string) {
    super(`argument path "${path}": ${reason} (write dotted names, [*] for every array element, e.g. files[*].path)`);
    this.name = "ArgumentPathError";
  }
}

/** Parses `a.b[*].c[0]` into steps; throws ArgumentPathError for anything else. */
export function parseArgumentPath(path: string): Step[] {
  const steps: Step[] = [];
  const token = /([^.[\]]+)|\[(\*|\d+)\]|(\.)/gy;
  let expectName = true;
  let match: RegExpExecArray | null;
  let consumed = 0;
  while ((match = token.exec(path)) !== null) {
    consumed = token.lastIndex;
    if (match[1] !== undefined) {
      if (!expectName) throw new ArgumentPathError(path, `unexpected "${match[1]}"`);
      steps.push({ key: match[1] });
      expectName = false;
    } else if (match[2] !== undefined) {
      if (expectName) throw new ArgumentPathError(path, "an index must follow a name");
      steps.push(match[2] === "*" ? { every: true } : { index: Number(match[2]) });
    } else {
      if (expectName) throw new ArgumentPathError(path, "empty name");
      expectName = true;
    }
  }
  if (consumed !== path.length || steps.length === 0 || expectName) throw new ArgumentPathError(path, "cannot parse it");
  return steps;
}

interface Found {
  path: string;
  value: unknown;
}

/** Every value at the path (several with [*]); a missing step yields nothing. */
function valuesAt(root: unknown, steps: readonly Step[]): Found[] {
  let current: Found[] = [{ path: "", value: root }];
  for (const step of steps) {
    const next: Found[] = [];
    for (const { path, value } of current) {
      if ("key" in step) {
        if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.hasOwn(value, step.key)) {
          next.push({ path: path === "" ? step.key : `${path}.${step.key}`, value: (value as Record<string, unknown>)[step.key] });
        }
      } else if (Array.isArray(value)) {
        const indexes = "index" in step ? [step.index] : value.map((_, index) => index);
        for (const index of indexes) if (index < value.length) next.push({ path: `${path}[${index}]`, value: value[index] });
      }
    }
    current = next;
  }
  return current;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Checks one value against one constraint; a reason names the constraint that failed. */
function violation(found: Found, constraint: ArgumentConstraint, compiledPattern: RegExp | undefined): string | undefined {
  const { value, path } = found;
  if (value === undefined || value === null) return constraint.required ? `argument ${path} is required (required)` : undefined;
  if (constraint.enum !== undefined && !constraint.enum.some((allowed) => allowed === value)) {
    return `argument ${path} = ${describe(value)} is not one of ${describe(constraint.enum)} (enum)`;
  }
  if (constraint.pattern !== undefined) {
    if (typeof value !== "string") return `argument ${path} must be a string to match ${constraint.pattern} (pattern)`;
    if (compiledPattern !== undefined && !compiledPattern.test(value)) return `argument ${path} = ${describe(value)} does not match ${constraint.pattern} (pattern)`;
  }
  if (constraint.glob !== undefined) {
    if (typeof value !== "string") return `argument ${path} must be a string to match ${describe(constraint.glob)} (glob)`;
    if (!constraint.glob.some((pattern) => globMatches(pattern, value))) return `argument ${path} = ${describe(value)} matches none of ${describe(constraint.glob)} (glob)`;
  }
  if (constraint.min !== undefined || constraint.max !== undefined) {
    if (typeof value !== "number" || !Number.isFinite(value)) return `argument ${path} must be a number (${constraint.min !== undefined ? "min" : "max"})`;
    if (constraint.min !== undefined && value < constraint.min) return `argument ${path} = ${value} is below ${constraint.min} (min)`;
    if (constraint.max !== undefined && value > constraint.max) return `argument ${path} = ${value} is above ${constraint.max} (max)`;
  }
  if (constraint.maxLength !== undefined) {
    const length = typeof value === "string" ? [...value].length : Array.isArray(value) ? value.length : undefined;
    if (length === undefined) return `argument ${path} must be a string or an array to check its length (maxLength)`;
    if (length > constraint.maxLength) return `argument ${path} is ${length} long, more than ${constraint.maxLength} (maxLength)`;
  }
  return undefined;
}

export interface CompiledConstraint {
  toolGlob: string;
  path: string;
  steps: Step[];
  constraint: ArgumentConstraint;
  pattern: RegExp | undefined;
}

/** Compiles a server's `arguments` table once, at start: a bad path or pattern is a startup error, not a 500 later. */
export function compileConstraints(table: Record<string, Record<string, ArgumentConstraint>>): CompiledConstraint[] {
  const compiled: CompiledConstraint[] = [];
  for (const [toolGlob, paths] of Object.entries(table)) {
    for (const [path, constraint] of Object.entries(paths)) {
      compiled.push({
        toolGlob,
        path,
        steps: parseArgumentPath(path),
        constraint,
        // Anchored: "my-org" must not accept "evil-my-org-x".
        pattern: constraint.pattern === undefined ? undefined : new RegExp(`^(?:${constraint.pattern})$`, "u"),
      });
    }
  }
  return compiled;
}

/** The decision for one call: every constraint whose tool glob matches the upstream tool name must hold. */
export function checkArguments(constraints: readonly CompiledConstraint[], tool: string, args: unknown): Decision {
  for (const entry of constraints) {
    if (!globMatches(entry.toolGlob, tool)) continue;
    const found = valuesAt(args ?? {}, entry.steps);
    if (found.length === 0) {
      if (entry.constraint.required) return { allow: false, reason: `argument ${entry.path} is required (required)` };
      continue;
    }
    for (const item of found) {
      const reason = violation(item, entry.constraint, entry.pattern);
      if (reason !== undefined) return { allow: false, reason };
    }
  }
  return { allow: true };
}
