// How a Kubernetes task's results travel back through its pod log, which is the only channel out of the pod.
//
// A wrapper (run.sh, below) runs the program with stdout and stderr redirected to files, then writes every byte of
// them, and the requested files as a tar stream, base64-encoded in lines that start with a per-task random nonce:
//
//   <nonce> o <base64>      stdout            <nonce> f <base64>      returned files (tar)
//   <nonce> e <base64>      stderr            <nonce> x <status>      exit status
//   <nonce> n <out> <err>   byte counts       <nonce> end
//
// The program's output only ever appears base64-encoded inside frames, so nothing it prints - fake markers, a
// guessed nonce, an "x 0" line - can be mistaken for a frame; lines without the nonce are ignored. The limit: the
// program runs as the same uid as the wrapper, so a program that deliberately reads the wrapper's files or memory
// can learn the nonce and write to the container's log directly. Framing keeps the runner from being confused by
// output; it does not make a hostile program's report trustworthy (nothing could: it controls its own output).
import { workspacePathProblem } from "./task.ts";

export const INPUTS_DIRECTORY = "/inputs";
export const WORKSPACE_DIRECTORY = "/workspace";

/** The wrapper script, for one task. `paths` are the workspace paths to return (validated, no control characters). */
export function wrapperScript(options: { nonce: string; outputBytes: number; collect: readonly string[]; hasStdin: boolean }): string {
  if (!/^[0-9a-f]{32}$/.test(options.nonce)) throw new Error("nonce must be 32 hex digits");
  for (const path of options.collect) {
    const problem = workspacePathProblem(path);
    if (problem !== undefined) throw new Error(problem);
  }
  const quote = (value: string) => `'${value.replace(/'/g, "'\\''")}'`;
  const collect = options.collect.map(quote).join(" ");
  return [
    "#!/bin/sh",
    "# Written by the Perimeter sandbox runner for one task; see src/sandbox/framing.ts.",
    `N=${options.nonce}`,
    `I=${INPUTS_DIRECTORY}`,
    `W=${WORKSPACE_DIRECTORY}`,
    "O=/tmp/.perimeter-stdout; E=/tmp/.perimeter-stderr",
    // Place the input files: the manifest lists key, mode and path per line (tab-separated, paths validated).
    'if [ -f "$I/manifest" ]; then',
    "  tab=$(printf '\\t')",
    '  while IFS="$tab" read -r key mode path; do',
    '    [ -n "$key" ] || continue',
    '    mkdir -p "$W/$(dirname "$path")" && cp "$I/$key" "$W/$path" && chmod "$mode" "$W/$path" || exit 125',
    '  done < "$I/manifest"',
    "fi",
    'cd "$W" || exit 125',
    options.hasStdin ? '"$@" < "$I/stdin" > "$O" 2> "$E"' : '"$@" < /dev/null > "$O" 2> "$E"',
    "s=$?",
    // Whatever the program left running must not change its files or output while they are read.
    "kill -9 -1 2>/dev/null",
    `frame() { head -c ${options.outputBytes} "$1" | base64 | sed "s/^/$N $2 /"; }`,
    'echo "$N begin"',
    "frame \"$O\" o",
    "frame \"$E\" e",
    'echo "$N n $(wc -c < "$O") $(wc -c < "$E")"',
    ...(options.collect.length > 0 ? [`tar --format=posix --hard-dereference --ignore-failed-read -cf - -- ${collect} 2>/dev/null | base64 | sed "s/^/$N f /"`] : []),
    'echo "$N x $s"',
    'echo "$N end"',
    "exit 0",
    "",
  ].join("\n");
}

export interface DecodedLog {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly stdoutBytes: number;
  readonly stderrBytes: number;
  readonly files: Buffer;
  readonly exitCode: number | undefined;
  /** True when the "end" frame arrived (the wrapper finished). */
  readonly complete: boolean;
}

/** Reads the frames of one task out of its pod log; everything without the nonce is ignored. */
export function decodeLog(log: string, nonce: string): DecodedLog {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const files: Buffer[] = [];
  let exitCode: number | undefined;
  let stdoutBytes = 0;
  let stderrBytes = 0;
  let complete = false;
  let begun = false;
  const prefix = `${nonce} `;
  for (const line of log.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const rest = line.slice(prefix.length);
    if (rest === "begin") {
      begun = true;
      continue;
    }
    if (!begun || complete) continue;
    if (rest === "end") {
      complete = true;
      continue;
    }
    const kind = rest.slice(0, 1);
    const payload = rest.slice(2);
    if (kind === "o" || kind === "e" || kind === "f") {
      if (!/^[A-Za-z0-9+/=]*$/.test(payload)) continue;
      (kind === "o" ? stdout : kind === "e" ? stderr : files).push(Buffer.from(payload, "base64"));
    } else if (kind === "x" && exitCode === undefined && /^\d{1,3}$/.test(payload)) {
      exitCode = Number(payload);
    } else if (kind === "n") {
      const match = /^(\d+) (\d+)$/.exec(payload);
      if (match !== null) {
        stdoutBytes = Number(match[1]);
        stderrBytes = Number(match[2]);
      }
    }
  }
  return { stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), stdoutBytes, stderrBytes, files: Buffer.concat(files), exitCode, complete };
}
