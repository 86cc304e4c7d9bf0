// Argument constraints (mcp.servers.<name>.arguments: tool glob -> argument path -> constraint). A pure decision:
// given the tool's upstream name and the agent's arguments, allow or name the first violated constraint. Paths are
// dotted (`options.depth`), with `[*]` for every element of an array (`files[*].path`) and `[N]` for one element.
//
// Every constraint fails closed: the agent chooses the input and the upstream, not the guard, interprets it. So a
// value of the wrong shape is a violation (never a reason to skip), null is checked like any other value, and a
// string checked by glob, pattern or path must read the same to the guard, to the upstream and to the human who
// reviews the call: no control or invisible characters, and it must also pass in its NFKC form, since upstreams
// that fold compatibility characters turn a fullwidth "／．．" into "/..".
import type { RE2 } from "re2-wasm";
import { compileRe2, globMatches } from "../config/index.ts";
import type { ArgumentConstraint } from "../config/index.ts";
// errors.ts directly: this module is loaded where the rest of shared/ (pino) need not be.
import { PerimeterError } from "../shared/errors.ts";

export type PolicyVerdict = { allow: true } | { allow: false; reason: string };

type Step = { key: string } | { index: number } | { every: true };

export class ArgumentPathError extends PerimeterError {
  constructor(path: string, reason: string) {
    super("config", `argument path "${path}": ${reason} (write dotted names, [*] for every array element, e.g. files[*].path)`);
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

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * The most values one constraint checks in a call. The check runs on the guard's event loop, where ~10 µs per value
 * over the ~150,000 values a 1 MiB request can hold would stall every agent's calls for seconds.
 */
export const MAX_CHECKED_VALUES = 1000;

/**
 * Every value at the path (several with [*]); a missing name or index yields nothing. A value that is there but has
 * the wrong shape for the next step (a string where the path goes into an object, an object where it expects an
 * array, null for either) is a violation: skipping it would let the agent switch a constraint off by changing a type.
 */
function valuesAt(root: unknown, steps: readonly Step[], fullPath: string): { found: Found[] } | { violation: string } {
  let current: Found[] = [{ path: "", value: root }];
  for (const step of steps) {
    const next: Found[] = [];
    for (const { path, value } of current) {
      const name = path === "" ? "arguments" : path;
      if ("key" in step) {
        if (!isRecord(value)) return { violation: `argument ${name} = ${describe(value)} is not an object, so ${fullPath} cannot be checked (shape)` };
        // Own keys only: "constructor" or "toString" must not be found on Object.prototype.
        if (Object.hasOwn(value, step.key)) next.push({ path: path === "" ? step.key : `${path}.${step.key}`, value: value[step.key] });
      } else {
        if (!Array.isArray(value)) return { violation: `argument ${name} = ${describe(value)} is not an array, so ${fullPath} cannot be checked (shape)` };
        const indexes = "index" in step ? [step.index] : value.map((_, index) => index);
        for (const index of indexes) if (index < value.length) next.push({ path: `${path}[${index}]`, value: value[index] });
      }
    }
    if (next.length > MAX_CHECKED_VALUES) {
      return { violation: `argument ${fullPath} names more than ${MAX_CHECKED_VALUES} values; the guard checks at most ${MAX_CHECKED_VALUES} per constraint, so send fewer elements per call (shape)` };
    }
    current = next;
  }
  return { found: current };
}

/** Characters that display as nothing or as something else (or break lines), so a human reviewer cannot see them. */
const HIDDEN_CHARACTER = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

function hiddenCharacterIn(text: string): string | undefined {
  if (!text.isWellFormed()) return "contains an unpaired surrogate";
  const hidden = HIDDEN_CHARACTER.exec(text)?.[0];
  if (hidden === undefined) return undefined;
  return `contains the control or invisible character U+${(hidden.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/** The strings a check must hold for: the value, and its NFKC form when that differs. */
function formsOf(text: string): Array<{ text: string; note: string }> {
  const folded = text.normalize("NFKC");
  return folded === text ? [{ text, note: "" }] : [{ text, note: "" }, { text: folded, note: ` once normalized (NFKC: ${describe(folded)})` }];
}

const PERCENT_ENCODED = /%[0-9A-Fa-f]{2}/;
const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * Why a path-like string could name something other than what it spells, or undefined. Dot segments are refused even
 * where they would stay under the root: symlinks make ".." mean different things to the guard and the upstream.
 */
function pathProblem(text: string, allowUrlScheme: boolean): string | undefined {
  if (text.includes("\\")) return "has a backslash (a Windows separator or an escape)";
  if (PERCENT_ENCODED.test(text)) return "has a percent-encoded character (an upstream may decode it into / or ..)";
  const scheme = allowUrlScheme ? (URL_SCHEME.exec(text)?.[0] ?? "") : "";
  const segments = text.slice(scheme.length).split("/");
  for (const [index, segment] of segments.entries()) {
    if (segment === "." || segment === "..") return `has a "${segment}" segment`;
    if (segment === "" && index > 0 && index < segments.length - 1) return "has an empty segment (//)";
  }
  return undefined;
}

// Glob wildcards match within one path segment and never a backslash or "%" (separators and escapes an upstream
// may decode); control and invisible characters are refused before any glob is tried.
const SEGMENT_CHARACTER = "[^/\\\\%]";
const REGEX_SPECIAL = /[.*+?^${}()|[\]\\/-]/g;

export class ArgumentGlobError extends PerimeterError {
  constructor(pattern: string, reason: string) {
    super("config", `glob "${pattern}": ${reason}`);
  }
}

interface CompiledGlob {
  source: string;
  literal: boolean;
  matcher: RE2;
}

/**
 * `*` is any run of characters within a segment (at least one when it is the whole segment, so `area/*` does not
 * accept `area/`), `?` one such character, `**` as a whole segment zero or more segments; the rest is literal.
 */
export function compileArgumentGlob(pattern: string): CompiledGlob {
  const segments = pattern.split("/");
  let expression = "";
  let needSlash = false;
  for (const [index, segment] of segments.entries()) {
    const first = index === 0;
    const last = index === segments.length - 1;
    if (segment === "**") {
      // Right after the root of an absolute glob ("/**", "/**/x") the root's own "/" must stay: "/**" is not "".
      const afterRoot = index === 1 && segments[0] === "";
      if (first && last) expression += `${SEGMENT_CHARACTER}+(?:/${SEGMENT_CHARACTER}+)*`;
      else if (first) expression += `(?:${SEGMENT_CHARACTER}+/)*`;
      else if (afterRoot && last) expression += `/(?:${SEGMENT_CHARACTER}+(?:/${SEGMENT_CHARACTER}+)*)?`;
      else if (afterRoot) expression += `/(?:${SEGMENT_CHARACTER}+/)*`;
      else expression += `(?:/${SEGMENT_CHARACTER}+)*`;
      needSlash = !first && !afterRoot;
      continue;
    }
    if (segment.includes("**")) throw new ArgumentGlobError(pattern, `"**" must be a whole path segment (write "a/**/b" or "a/*b")`);
    if (needSlash) expression += "/";
    needSlash = true;
    if (/^\*+$/.test(segment)) {
      expression += `${SEGMENT_CHARACTER}+`;
      continue;
    }
    for (const character of segment) {
      if (character === "*") expression += `${SEGMENT_CHARACTER}*`;
      else if (character === "?") expression += SEGMENT_CHARACTER;
      else expression += character.replace(REGEX_SPECIAL, "\\$&");
    }
  }
  return { source: pattern, literal: !/[*?]/.test(pattern), matcher: compileRe2(`^(?:${expression})$`, "u") };
}

function globAccepts(glob: CompiledGlob, text: string): boolean {
  if (glob.literal) return glob.source === text;
  // A wildcard never produces a "." or ".." segment, whatever it spans.
  if (text.split("/").some((segment) => segment === "." || segment === "..")) return false;
  return glob.matcher.test(text);
}

/** The anchored, linear-time form of a `pattern`: RE2 cannot be made to backtrack by an input the agent chooses. */
export function compileArgumentPattern(pattern: string): RE2 {
  // Wrapped in a group so an alternation stays anchored ("a|b" must not accept "ab"), and not multiline.
  return compileRe2(`^(?:${pattern})$`, "u");
}

interface PathRoots {
  absolute: string[][];
  relative: boolean;
  names: string[];
}

function segmentsOf(absolutePath: string): string[] {
  const segments = absolutePath.split("/");
  if (segments.length > 1 && segments.at(-1) === "") segments.pop();
  return segments;
}

function compileRoots(under: string | readonly string[]): PathRoots {
  const names = typeof under === "string" ? [under] : [...under];
  return { absolute: names.filter((root) => root !== ".").map(segmentsOf), relative: names.includes("."), names };
}

function underRoot(text: string, roots: PathRoots): boolean {
  if (text.startsWith("/")) {
    const segments = segmentsOf(text);
    return roots.absolute.some((root) => root.length <= segments.length && root.every((segment, index) => segments[index] === segment));
  }
  // Relative means relative to the upstream's own root: no home directory, drive letter or UNC prefix either.
  return roots.relative && !text.startsWith("~") && !/^[A-Za-z]:/.test(text);
}

function rootsMessage(roots: PathRoots): string {
  const absolute = roots.names.filter((root) => root !== ".");
  if (!roots.relative) return `is not under ${absolute.join(" or ")}`;
  if (absolute.length === 0) return "must be relative (no leading /, ~ or drive letter)";
  return `is neither relative nor under ${absolute.join(" or ")}`;
}

export interface CompiledConstraint {
  toolGlob: string;
  path: string;
  steps: Step[];
  constraint: ArgumentConstraint;
  pattern: RE2 | undefined;
  /** A pattern with a "/" describes a path or URL, so its values get the path checks too. */
  patternIsPathLike: boolean;
  globs: CompiledGlob[] | undefined;
  roots: PathRoots | undefined;
}

/** Checks one value against one constraint; a reason names the constraint that failed. */
function violation(found: Found, entry: CompiledConstraint): string | undefined {
  const { value, path } = found;
  const { constraint } = entry;
  if (value === undefined) return constraint.required ? `argument ${path} is required (required)` : undefined;
  if (value === null && constraint.required) return `argument ${path} is required (required)`;
  if (constraint.enum !== undefined && !constraint.enum.some((allowed) => allowed === value)) {
    return `argument ${path} = ${describe(value)} is not one of ${describe(constraint.enum)} (enum)`;
  }
  if (entry.pattern !== undefined) {
    if (typeof value !== "string") return `argument ${path} = ${describe(value)} must be a string to match ${constraint.pattern} (pattern)`;
    const hidden = hiddenCharacterIn(value);
    if (hidden !== undefined) return `argument ${path} = ${describe(value)} ${hidden} (pattern)`;
    for (const form of formsOf(value)) {
      if (!entry.pattern.test(form.text)) return `argument ${path} = ${describe(value)} does not match ${constraint.pattern}${form.note} (pattern)`;
      const problem = entry.patternIsPathLike ? pathProblem(form.text, true) : undefined;
      if (problem !== undefined) return `argument ${path} = ${describe(value)} is path-like (its pattern has a "/") and ${problem}${form.note} (pattern)`;
    }
  }
  if (entry.globs !== undefined) {
    if (typeof value !== "string") return `argument ${path} = ${describe(value)} must be a string to match ${describe(constraint.glob)} (glob)`;
    const hidden = hiddenCharacterIn(value);
    if (hidden !== undefined) return `argument ${path} = ${describe(value)} ${hidden} (glob)`;
    for (const form of formsOf(value)) {
      if (!entry.globs.some((glob) => globAccepts(glob, form.text))) return `argument ${path} = ${describe(value)} matches none of ${describe(constraint.glob)}${form.note} (glob)`;
    }
  }
  if (entry.roots !== undefined) {
    if (typeof value !== "string") return `argument ${path} = ${describe(value)} must be a string (a path) (path)`;
    if (value === "") return `argument ${path} is an empty path (path)`;
    const hidden = hiddenCharacterIn(value);
    if (hidden !== undefined) return `argument ${path} = ${describe(value)} ${hidden} (path)`;
    for (const form of formsOf(value)) {
      const problem = pathProblem(form.text, false);
      if (problem !== undefined) return `argument ${path} = ${describe(value)} ${problem}${form.note} (path)`;
      if (!underRoot(form.text, entry.roots)) return `argument ${path} = ${describe(value)} ${rootsMessage(entry.roots)}${form.note} (path)`;
    }
  }
  if (constraint.min !== undefined || constraint.max !== undefined) {
    if (typeof value !== "number" || !Number.isFinite(value)) return `argument ${path} = ${describe(value)} must be a number (${constraint.min !== undefined ? "min" : "max"})`;
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

/** Compiles a server's `arguments` table once, at start: a bad path, glob or pattern is a startup error, not a 500 later. */
export function compileConstraints(table: Record<string, Record<string, ArgumentConstraint>>): CompiledConstraint[] {
  const compiled: CompiledConstraint[] = [];
  for (const [toolGlob, paths] of Object.entries(table)) {
    for (const [path, constraint] of Object.entries(paths)) {
      compiled.push({
        toolGlob,
        path,
        steps: parseArgumentPath(path),
        constraint,
        pattern: constraint.pattern === undefined ? undefined : compileArgumentPattern(constraint.pattern),
        patternIsPathLike: constraint.pattern?.includes("/") ?? false,
        globs: constraint.glob?.map(compileArgumentGlob),
        roots: constraint.path === undefined ? undefined : compileRoots(constraint.path.under),
      });
    }
  }
  return compiled;
}

/** The decision for one call: every constraint whose tool glob matches the upstream tool name must hold. */
export function checkArguments(constraints: readonly CompiledConstraint[], tool: string, args: unknown): PolicyVerdict {
  for (const entry of constraints) {
    if (!globMatches(entry.toolGlob, tool)) continue;
    const located = valuesAt(args ?? {}, entry.steps, entry.path);
    if ("violation" in located) return { allow: false, reason: located.violation };
    if (located.found.length === 0) {
      if (entry.constraint.required) return { allow: false, reason: `argument ${entry.path} is required (required)` };
      continue;
    }
    for (const item of located.found) {
      const reason = violation(item, entry);
      if (reason !== undefined) return { allow: false, reason };
    }
  }
  return { allow: true };
}
