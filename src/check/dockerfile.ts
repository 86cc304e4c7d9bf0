// Dockerfiles: instructions joined across line continuations, stages tracked so that USER and FROM are judged on the
// stage that ships. An unknown instruction is an error (docker build would refuse it too).
import type { LineDirective } from "./suppress.ts";
import { secretShapeIn } from "../config/index.ts";
import type { Collector, Subject } from "./collector.ts";
import { isAgentImage, isCredentialName } from "./hermes-facts.ts";
import { isPinned } from "./kubernetes.ts";
import type { CheckError } from "./model.ts";

const INSTRUCTIONS = new Set(["ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"]);

export interface Instruction {
  readonly keyword: string;
  readonly argument: string;
  readonly line: number;
}

export interface Dockerfile {
  readonly file: string;
  readonly instructions: readonly Instruction[];
  readonly errors: readonly CheckError[];
  readonly directives: readonly LineDirective[];
}

export function parseDockerfile(file: string, text: string): Dockerfile {
  const lines = text.split(/\r?\n/);
  const instructions: Instruction[] = [];
  const errors: CheckError[] = [];
  const directives: LineDirective[] = [];
  let pending: { text: string; line: number; column: number } | undefined;
  const escape = /^#\s*escape\s*=\s*`/i.test(lines[0] ?? "") ? "`" : "\\";
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index] ?? "";
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) {
      const directive = /#\s*perimeter:ignore\b(.*)$/.exec(raw);
      if (directive !== null) pending = { text: (directive[1] ?? "").trim(), line: index + 1, column: raw.indexOf("#") + 1 };
      continue;
    }
    const start = index;
    let joined = trimmed;
    while (joined.endsWith(escape) && index + 1 < lines.length) {
      index += 1;
      const next = (lines[index] ?? "").trim();
      joined = joined.slice(0, -1) + (next.startsWith("#") ? "" : ` ${next}`);
    }
    const match = /^([A-Za-z]+)(\s+(.*))?$/.exec(joined);
    const keyword = match?.[1]?.toUpperCase();
    if (match === null || keyword === undefined || !INSTRUCTIONS.has(keyword)) {
      errors.push({ location: { file, line: start + 1, column: 1 }, message: `unknown Dockerfile instruction "${joined.split(/\s+/)[0] ?? ""}"` });
      continue;
    }
    instructions.push({ keyword, argument: (match[3] ?? "").trim(), line: start + 1 });
    if (pending !== undefined) {
      directives.push({ ...pending, covers: start + 1 });
      pending = undefined;
    }
  }
  if (errors.length === 0 && !instructions.some((instruction) => instruction.keyword === "FROM")) {
    errors.push({ location: { file, line: 1, column: 1 }, message: "no FROM instruction: not a Dockerfile" });
  }
  return { file, instructions, errors, directives };
}

function substitute(text: string, variables: ReadonlyMap<string, string>): string | undefined {
  let unresolved = false;
  const result = text.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}?/g, (_match, name: string, fallback: string | undefined) => {
    const value = variables.get(name) ?? fallback;
    if (value === undefined) unresolved = true;
    return value ?? "";
  });
  return unresolved ? undefined : result;
}

/** KEY=VALUE pairs of ENV/ARG/LABEL, or the legacy `ENV KEY VALUE`. */
function assignments(argument: string): Array<{ name: string; value: string | undefined }> {
  if (!argument.includes("=") || /^[A-Za-z_][A-Za-z0-9_]*\s+[^=]*$/.test(argument)) {
    const [name, ...rest] = argument.split(/\s+/);
    return name === undefined ? [] : [{ name, value: rest.length > 0 ? rest.join(" ") : undefined }];
  }
  const pairs: Array<{ name: string; value: string | undefined }> = [];
  for (const match of argument.matchAll(/([A-Za-z_][A-Za-z0-9_.-]*)(?:=("(?:[^"\\]|\\.)*"|'[^']*'|\S*))?/g)) {
    const value = match[2];
    pairs.push({ name: match[1] as string, value: value === undefined ? undefined : value.replace(/^["']|["']$/g, "") });
  }
  return pairs;
}

export function checkDockerfile(dockerfile: Dockerfile, collector: Collector): void {
  const lineOf = (path: readonly (string | number)[]) => ({ file: dockerfile.file, line: typeof path[0] === "number" ? path[0] : 1, column: 1 });
  const subject: Subject = { file: dockerfile.file, name: dockerfile.file.slice(dockerfile.file.lastIndexOf("/") + 1), locate: lineOf };
  const globalArguments = new Map<string, string>();
  const stages: Array<{ name?: string; base: string; user?: string; agentBase: boolean; line: number }> = [];
  for (const instruction of dockerfile.instructions) {
    const { keyword, argument, line } = instruction;
    const stage = stages.at(-1);
    if (keyword === "ARG" && stage === undefined) {
      for (const { name, value } of assignments(argument)) if (value !== undefined) globalArguments.set(name, value);
    }
    if (keyword === "FROM") {
      const words = argument.split(/\s+/).filter((word) => !word.startsWith("--"));
      const image = words[0] ?? "";
      const alias = words[1]?.toUpperCase() === "AS" ? words[2] : undefined;
      const resolved = substitute(image, globalArguments);
      const previous = stages.find((candidate) => candidate.name !== undefined && candidate.name.toLowerCase() === (resolved ?? image).toLowerCase());
      if (previous !== undefined) {
        stages.push({ name: alias, base: previous.base, user: previous.user, agentBase: previous.agentBase, line });
      } else {
        stages.push({ name: alias, base: resolved ?? image, agentBase: isAgentImage(resolved), line });
        if (resolved !== undefined && resolved !== "scratch" && !isPinned(resolved)) collector.add("DOCKER-IMAGE-TAG", subject, [line], `FROM ${resolved} ${resolved.includes(":latest") ? "floats with :latest" : "has no tag"}`);
      }
      continue;
    }
    if (stage === undefined) continue;
    if (keyword === "USER") stage.user = argument.split(/\s+/)[0];
    if (keyword === "ENV" || keyword === "ARG") {
      for (const { name, value } of assignments(argument)) {
        if (value === undefined || value === "" || value.startsWith("$")) continue;
        const shape = secretShapeIn(value);
        if (shape !== undefined || isCredentialName(name)) collector.add("DOCKER-SECRET-IN-IMAGE", subject, [line], `${keyword} ${name} bakes ${shape === undefined ? "a credential" : `a ${shape}`} into the image's layers`);
      }
    }
    if (keyword === "RUN" && /\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b/.test(argument)) {
      collector.add("DOCKER-CURL-PIPE-SHELL", subject, [line], "a downloaded script is piped straight into a shell");
    }
  }
  const last = stages.at(-1);
  if (last === undefined) return;
  const user = last.user?.split(":")[0];
  if (user === undefined) {
    if (!last.agentBase) collector.add("DOCKER-ROOT-USER", subject, [last.line], "the final stage sets no USER, so it runs as root");
  } else if (user === "root" || user === "0") {
    const userLine = [...dockerfile.instructions].reverse().find((instruction) => instruction.keyword === "USER")?.line ?? last.line;
    collector.add("DOCKER-ROOT-USER", subject, [userLine], `USER ${last.user} runs the image as root`);
  }
}
