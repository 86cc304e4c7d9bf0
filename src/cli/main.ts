// The `perimeter` command: dispatches to each capability's command module and maps errors to exit codes.
// Modules load lazily so that `perimeter check` never pays for the MCP SDK or the Kubernetes client.
// Not config/index.ts: the schema (zod, yaml) loads only for commands that read a config.
import { ConfigError } from "../config/errors.ts";
import { MissingSecretError, processEnvironment } from "../config/secrets.ts";
// errors.ts directly, not shared/index.ts: the CLI fast path (--version, help) must load no package (pino).
import { PerimeterError } from "../shared/errors.ts";
import { EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError, writeLine } from "./command.ts";
import type { Command, CommandIo } from "./command.ts";

const HELP = `perimeter — a security perimeter for self-hosted AI agents

Usage:
  perimeter render -c FILE -t kubernetes|compose|vps -o DIR [--force]
  perimeter agent-config --agent hermes|qwen-code|codex|claude-code -c FILE [--env|--json] [-o FILE]
  perimeter host apply DIR [--dry-run]      install a vps render on this host (as root)
  perimeter check PATH... [-] [--format text|json|sarif|junit] [--fail-on SEVERITY] [--baseline FILE]
                 | --list-rules | --explain RULE
  perimeter up -c FILE [--check]           every service on this host, under one supervisor
  perimeter status -c FILE [--json]        health, restarts and audit chain head of perimeter up
  perimeter verify isolation|mcp|host|all -c FILE -t kubernetes|compose|vps|local [--format text|json|junit]
  perimeter replay -c FILE [TRACE...] [--from-audit DB] [--format text|json|junit]   a policy against recorded calls
  perimeter serve egress-proxy|sandbox|mcp-guard|llm-proxy|dashboard [-c FILE] [flags]
  perimeter sandbox exec [limits] -- CMD ARGS...
  perimeter approvals list [--json] | show ID | approve ID [--reason R] | deny ID [--reason R]
                 | review [--approve-clean]   (-c FILE, else $PERIMETER_CONFIG)
  perimeter audit-log verify [--db FILE] [--public-key FILE] | tail [--follow] [--json]
  perimeter backup create -c FILE | verify [ARCHIVE] | restore ARCHIVE [--force] | list   (-i IDENTITY)
  perimeter llm-keys create --client NAME [--models a,b] | list | revoke ID   (-c FILE)
  perimeter schema                      print the JSON Schema of perimeter.yaml
  perimeter help COMMAND                 help for one command

Exit codes: 0 ok; 1 findings, denial or failed verification; 2 usage or config error; 3 internal error.
`;

type Loader = () => Promise<Command>;

const SERVE_HELP = `perimeter serve — run one service of the perimeter in the foreground

Usage:
  perimeter serve egress-proxy -c FILE   the allowlisting HTTP(S) proxy every outbound connection goes through
  perimeter serve sandbox -c FILE        the sandbox runner (code execution for the agent)
  perimeter serve mcp-guard -c FILE      the MCP gateway: tool policy, approvals, definition pinning, audit
  perimeter serve llm-proxy -c FILE      the LLM proxy: provider keys, model allowlist, budgets, DLP
  perimeter serve dashboard -c FILE      approvals, reviews, the audit log and health in a browser

Each service's own flags: perimeter help serve SERVICE (or perimeter serve SERVICE --help).
`;

const SERVICES: Record<string, Loader> = {
  "egress-proxy": async () => (await import("../egress-proxy/cli.ts")).serveEgressProxy,
  sandbox: async () => (await import("../sandbox/cli.ts")).serveSandbox,
  "mcp-guard": async () => (await import("../mcp-guard/cli.ts")).serveMcpGuard,
  "llm-proxy": async () => (await import("../llm-proxy/index.ts")).serveLlmProxy,
  dashboard: async () => (await import("../dashboard/cli.ts")).serveDashboard,
};

const COMMANDS: Record<string, Loader> = {
  render: async () => (await import("../render/cli.ts")).renderCommand,
  "agent-config": async () => (await import("../agent-config/cli.ts")).agentConfigCommand,
  check: async () => (await import("../check/cli.ts")).checkCommand,
  sandbox: async () => (await import("../sandbox/cli.ts")).sandboxCommand,
  approvals: async () => (await import("../approvals/cli.ts")).approvalsCommand,
  "audit-log": async () => (await import("../audit-log/cli.ts")).auditLogCommand,
  backup: async () => (await import("../backup/cli.ts")).backupCommand,
  "llm-keys": async () => (await import("../llm-proxy/index.ts")).llmKeysCommand,
  host: async () => (await import("../render/vps/apply.ts")).hostCommand,
  up: async () => (await import("../up/cli.ts")).upCommand,
  status: async () => (await import("../up/cli.ts")).statusCommand,
  verify: async () => (await import("../verify/cli.ts")).verifyCommand,
  replay: async () => (await import("../replay/cli.ts")).replayCommand,
  serve: async () => async (args, io) => {
    const [service, ...rest] = args;
    // `perimeter help serve` arrives here as `serve --help`: the list of services is the help.
    if (service === undefined || service === "--help" || service === "-h") {
      io.stdout.write(SERVE_HELP);
      return service === undefined ? EXIT_USAGE : EXIT_OK;
    }
    const loader = SERVICES[service];
    if (loader === undefined) {
      throw new UsageError(`serve: name a service: ${Object.keys(SERVICES).join(", ")}${service === undefined ? "" : ` (not "${service}")`}`);
    }
    return (await loader())(rest, io);
  },
  schema: async () => async (_args, io) => {
    const { configJsonSchema } = await import("../config/index.ts");
    writeLine(io.stdout, JSON.stringify(configJsonSchema(), null, 2));
    return EXIT_OK;
  },
};

export async function runCli(argv: string[], io: CommandIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    const topic = args[0];
    // `help serve mcp-guard` is the service's own help; `help serve` the list of services.
    if (topic !== undefined && COMMANDS[topic] !== undefined) return runCli([topic, ...args.slice(1), "--help"], io);
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (name === "--version" || name === "version") {
    writeLine(io.stdout, "perimeter 0.1.0");
    return EXIT_OK;
  }
  const loader = COMMANDS[name];
  try {
    if (loader === undefined) throw new UsageError(`unknown command "${name}"; run perimeter help`);
    return await (await loader())(args, io);
  } catch (error) {
    if (error instanceof ConfigError) {
      writeLine(io.stderr, `perimeter ${name}: invalid configuration:`);
      writeLine(io.stderr, error.message);
      return EXIT_USAGE;
    }
    if (error instanceof UsageError || error instanceof MissingSecretError) {
      writeLine(io.stderr, `perimeter: ${error.message}`);
      return EXIT_USAGE;
    }
    // Every other error we throw on purpose says what went wrong and how to fix it; its code picks the exit code
    // (src/shared/errors.ts). Only what is not ours is a bug worth a stack trace.
    if (error instanceof PerimeterError) {
      writeLine(io.stderr, `perimeter ${name}: ${error.message}`);
      return error.exitCode;
    }
    writeLine(io.stderr, `perimeter ${name}: internal error: ${(error as Error).stack ?? String(error)}`);
    return EXIT_INTERNAL;
  }
}

/** Set when stdout or stderr lost its reader (see processIo): the command ends with EXIT_BROKEN_PIPE. */
let brokenPipe = false;
/** 128 + SIGPIPE, what a shell reports for a process killed by a broken pipe. */
const EXIT_BROKEN_PIPE = 141;

function processIo(): CommandIo {
  const controller = new AbortController();
  const reloadListeners: Array<() => void> = [];
  let signals = 0;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      signals += 1;
      // A second signal means the operator wants out now.
      if (signals > 1) process.exit(130);
      controller.abort(new Error(signal));
    });
  }
  process.on("SIGHUP", () => {
    for (const listener of reloadListeners) listener();
  });
  // Whoever read our output has gone (`perimeter ... | head`, a log shipper that died): nothing more can be said
  // there. Node would make it an uncaught exception and drop open connections mid-way; instead stop as a Unix tool
  // stopped by SIGPIPE would, but cleanly (a service closes its listeners and its audit log), exiting 141 as a shell
  // reports a SIGPIPE death. Any other error on these streams stays fatal.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EPIPE") throw error;
      brokenPipe = true;
      controller.abort(new Error(`${stream === process.stdout ? "stdout" : "stderr"} closed (EPIPE)`));
    });
  }
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: processEnvironment(),
    cwd: process.cwd(),
    signal: controller.signal,
    onReload: (listener) => reloadListeners.push(listener),
  };
}

/** Runs the command line of this process and ends it with the command's exit code. */
export async function main(): Promise<void> {
  const ran = await runCli(process.argv.slice(2), processIo());
  const code = brokenPipe && ran === 0 ? EXIT_BROKEN_PIPE : ran;
  process.exitCode = code;
  // Services close their own handles; for everything else, do not let a stray timer keep the process alive.
  setImmediate(() => process.exit(code));
}

if (import.meta.main) await main();
