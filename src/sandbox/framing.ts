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
export function wrapperScript(options: { nonce: string; outputBytes: number; returnBytes: number; collect: readonly string[]; hasStdin: boolean }): string {
  if (!/^[0-9a-f]{32}$/.test(options.nonce)) throw new Error("nonce must be 32 hex digits");
  for (const bound of [options.outputBytes, options.returnBytes]) if (!Number.isSafeInteger(bound) || bound < 0) throw new Error("byte bounds must be whole numbers");
  for (const path of options.collect) {
    const problem = workspacePathProblem(path);
    if (problem !== undefined) throw new Error(problem);
  }
  const quote = (value: string) => `'${value.replace(/'/g, "'\\''")}'`;
  const collect = options.collect.map(quote).join(" ");
  const nonce = options.nonce;
  // The program inherits the task's environment, and a shell assignment to an inherited name changes what is
  // exported: so the constants are written in literally and the few variables the wrapper needs carry the nonce in
  // their names, which no task environment names (the nonce is made after the task is fixed).
  const variable = (name: string) => `p${nonce}_${name}`;
  const [tab, key, mode, path, status] = ["tab", "key", "mode", "path", "status"].map(variable) as [string, string, string, string, string];
  const stdoutFile = "/tmp/.perimeter-stdout";
  const stderrFile = "/tmp/.perimeter-stderr";
  return [
    "#!/bin/sh",
    "# Written by the Perimeter sandbox runner for one task; see src/sandbox/framing.ts.",
    // Place the input files: the manifest lists key, mode and path per line (tab-separated, paths validated).
    `if [ -f ${INPUTS_DIRECTORY}/manifest ]; then`,
    `  ${tab}=$(printf '\\t')`,
    `  while IFS="$${tab}" read -r ${key} ${mode} ${path}; do`,
    `    [ -n "$${key}" ] || continue`,
    `    mkdir -p "${WORKSPACE_DIRECTORY}/$(dirname "$${path}")" && cp "${INPUTS_DIRECTORY}/$${key}" "${WORKSPACE_DIRECTORY}/$${path}" && chmod "$${mode}" "${WORKSPACE_DIRECTORY}/$${path}" || exit 125`,
    `  done < ${INPUTS_DIRECTORY}/manifest`,
    "fi",
    `cd ${WORKSPACE_DIRECTORY} || exit 125`,
    `"$@" < ${options.hasStdin ? `${INPUTS_DIRECTORY}/stdin` : "/dev/null"} > ${stdoutFile} 2> ${stderrFile}`,
    `${status}=$?`,
    // Whatever the program left running must not change its files or output while they are read.
    "kill -9 -1 2>/dev/null",
    // Each stream and the files are cut where the runner would stop keeping them: the pod log stays bounded (the
    // kubelet rotates a container log past containerLogMaxSize, 10 MiB by default, and serves only the newest part).
    `echo "${nonce} begin"`,
    `head -c ${options.outputBytes} ${stdoutFile} | base64 | sed "s/^/${nonce} o /"`,
    `head -c ${options.outputBytes} ${stderrFile} | base64 | sed "s/^/${nonce} e /"`,
    `echo "${nonce} n $(wc -c < ${stdoutFile}) $(wc -c < ${stderrFile})"`,
    ...(options.collect.length > 0 ? [`tar --format=posix --hard-dereference --ignore-failed-read -cf - -- ${collect} 2>/dev/null | head -c ${options.returnBytes + 1} | base64 | sed "s/^/${nonce} f /"`] : []),
    `echo "${nonce} x $${status}"`,
    `echo "${nonce} end"`,
    "exit 0",
    "",
  ].join("\n");
}

export interface DecodedLog {
  /** At most `outputBytes` of each stream. */
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  /** What the program wrote (the wrapper's count, or what arrived when a forger sent more). */
  readonly stdoutBytes: number;
  readonly stderrBytes: number;
  /** The returned files' tar stream, at most `returnBytes`. */
  readonly files: Buffer;
  /** True when more than `returnBytes` of files arrived: `files` is cut there. */
  readonly filesCut: boolean;
  readonly exitCode: number | undefined;
  /** True when the "end" frame arrived (the wrapper finished). */
  readonly complete: boolean;
}

export interface LogBounds {
  /** Bytes kept of stdout and of stderr. */
  readonly outputBytes: number;
  /** Bytes kept of the returned files' tar stream. */
  readonly returnBytes: number;
}

export interface LogDecoder {
  /** Feeds the next piece of the pod log, as it arrives. */
  write(chunk: Buffer): void;
  end(): DecodedLog;
}

/** Frames are short (a nonce, a kind and 76 base64 characters); a longer line is no frame and is skipped unread. */
const MAX_FRAME_LINE = 4096;

/** What one stream keeps: the first `limit` bytes; the rest is only counted. */
function boundedCollector(limit: number) {
  const chunks: Buffer[] = [];
  let kept = 0;
  let received = 0;
  return {
    push(data: Buffer) {
      received += data.length;
      if (kept >= limit) return;
      const piece = data.length <= limit - kept ? data : data.subarray(0, limit - kept);
      chunks.push(piece);
      kept += piece.length;
    },
    received: () => received,
    data: () => Buffer.concat(chunks, kept),
  };
}

/**
 * Reads the frames of one task out of its pod log piece by piece, so the runner holds at most the bounds, whatever
 * the log's size: a program that learned the nonce can write frames too, as many as it likes. Lines without the
 * nonce, before "begin" or after "end" are ignored.
 */
export function createLogDecoder(nonce: string, bounds: LogBounds): LogDecoder {
  const stdout = boundedCollector(bounds.outputBytes);
  const stderr = boundedCollector(bounds.outputBytes);
  const files = boundedCollector(bounds.returnBytes);
  let exitCode: number | undefined;
  let stdoutBytes = 0;
  let stderrBytes = 0;
  let complete = false;
  let begun = false;
  const prefix = `${nonce} `;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let skipping = false;

  function line(text: string): void {
    if (!text.startsWith(prefix)) return;
    const rest = text.slice(prefix.length);
    if (rest === "begin") {
      begun = true;
      return;
    }
    if (!begun || complete) return;
    if (rest === "end") {
      complete = true;
      return;
    }
    const kind = rest.slice(0, 1);
    const payload = rest.slice(2);
    if (kind === "o" || kind === "e" || kind === "f") {
      if (!/^[A-Za-z0-9+/=]*$/.test(payload)) return;
      (kind === "o" ? stdout : kind === "e" ? stderr : files).push(Buffer.from(payload, "base64"));
    } else if (kind === "x" && exitCode === undefined && /^\d{1,3}$/.test(payload)) {
      exitCode = Number(payload);
    } else if (kind === "n") {
      const match = /^(\d{1,15}) (\d{1,15})$/.exec(payload);
      if (match !== null) {
        stdoutBytes = Number(match[1]);
        stderrBytes = Number(match[2]);
      }
    }
  }

  return {
    write(chunk) {
      let start = 0;
      for (let newline = chunk.indexOf(0x0a, start); newline >= 0; newline = chunk.indexOf(0x0a, start)) {
        if (!skipping) {
          const piece = chunk.subarray(start, newline);
          // Frames are ASCII: latin1 maps bytes to characters one to one, with no decoder state across chunks.
          line(pendingBytes === 0 ? piece.toString("latin1") : Buffer.concat([...pending, piece]).toString("latin1"));
        }
        pending = [];
        pendingBytes = 0;
        skipping = false;
        start = newline + 1;
      }
      if (start < chunk.length && !skipping) {
        const rest = chunk.subarray(start);
        pendingBytes += rest.length;
        if (pendingBytes > MAX_FRAME_LINE) {
          skipping = true;
          pending = [];
          pendingBytes = 0;
        } else {
          // A copy: the caller may reuse its chunk.
          pending.push(Buffer.from(rest));
        }
      }
    },
    end() {
      if (!skipping && pendingBytes > 0) line(Buffer.concat(pending).toString("latin1"));
      pending = [];
      pendingBytes = 0;
      return {
        stdout: stdout.data(),
        stderr: stderr.data(),
        stdoutBytes: Math.max(stdoutBytes, stdout.received()),
        stderrBytes: Math.max(stderrBytes, stderr.received()),
        files: files.data(),
        filesCut: files.received() > bounds.returnBytes,
        exitCode,
        complete,
      };
    },
  };
}

/** A whole log at once (tests, and logs already in memory). */
export function decodeLog(log: string, nonce: string, bounds: LogBounds = { outputBytes: Number.MAX_SAFE_INTEGER, returnBytes: Number.MAX_SAFE_INTEGER }): DecodedLog {
  const decoder = createLogDecoder(nonce, bounds);
  decoder.write(Buffer.from(log, "latin1"));
  return decoder.end();
}
