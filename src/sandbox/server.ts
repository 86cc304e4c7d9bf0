// `perimeter serve sandbox`: an MCP server (Streamable HTTP at /mcp, bearer token) whose tools run each task in a
// disposable sandbox. mcp-guard is its one expected client; it forwards which agent is calling in
// X-Perimeter-Caller, which keys the per-caller quotas and named workspaces (trusted only because the caller holds
// the token). Metrics are served on a listener of their own (listenMetrics), without that token.
//
// Order of a `run`: check the task and the caller's quota (refusals are recorded), record the start in the audit
// log (if that fails the run is refused: nothing runs unrecorded), wait for a slot (bounded queue), run, record the
// result (if that fails the result is withheld), answer. A crash in one call becomes that call's error result.
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createHash, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { McpServer, createMcpHandler, validateHostHeader } from "@modelcontextprotocol/server";
import type { AuthInfo, CallToolResult } from "@modelcontextprotocol/server";
import { toNodeHandler } from "@modelcontextprotocol/node";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { secretShapeIn, splitHostPort } from "../config/index.ts";
import { createAuditRecorder } from "../audit-log/index.ts";
import type { AuditRecord, RecorderLog } from "../audit-log/index.ts";
import type { Logger } from "../shared/index.ts";
import { closeAfterAnswerIfBodyUnread, silentLogger } from "../shared/index.ts";
import { SandboxTaskError, SandboxUnavailableError, workspacePathProblem } from "./task.ts";
import type { SandboxBackend, SandboxHostRule, SandboxLimits, SandboxResult, SandboxTask } from "./task.ts";
import { createWorkspaceStore, workspaceNameProblem } from "./workspaces.ts";
import type { WorkspaceFile, WorkspaceLimits } from "./workspaces.ts";

/** The audit log (src/audit-log) the runner records through: a run's start is committed before it starts. */
export type SandboxAuditSink = RecorderLog;

export interface CallerQuotas {
  /** Runs one caller may have running or queued at once. */
  readonly concurrentRuns: number;
  /** Runs one caller may start per minute. */
  readonly runsPerMinute: number;
}

export interface SandboxServerOptions {
  readonly backend: SandboxBackend;
  /** The bearer token clients must present. */
  readonly token: string;
  readonly audit: SandboxAuditSink;
  /** Tasks running at once; more wait in the queue. */
  readonly concurrency: number;
  /** Tasks that may wait; beyond it a run is refused as busy. */
  readonly queueLimit: number;
  readonly quotas: CallerQuotas;
  readonly workspaces: WorkspaceLimits;
  /** The most a call may ask for (timeout in particular). */
  readonly ceiling: SandboxLimits;
  /** When set, a run may ask for network "proxy" and gets this allowlist. */
  readonly networkAllow?: readonly SandboxHostRule[];
  /** Largest request body (files travel in it, base64). @default 32 MiB */
  readonly maxRequestBytes?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
}

export interface SandboxServer {
  listen(target: string): Promise<{ host: string; port: number; url: string }>;
  /**
   * Serves GET /metrics (Prometheus) and /healthz on a listener of its own, without a token: a scraper must not hold
   * the token that runs commands, and this listener runs none. The MCP listener does not serve /metrics.
   */
  listenMetrics(target: string): Promise<{ host: string; port: number; url: string }>;
  readonly registry: Registry;
  close(): Promise<void>;
}

const CALLER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DEFAULT_CALLER = "default";

function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** "Bearer X" matching the expected token's hash, compared in constant time. */
export function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  const presented = hashToken(match?.[1] ?? "");
  return timingSafeEqual(presented, expected) && match !== null;
}

function decodeUtf8(data: Buffer): { text: string; encoding: "utf8" } | { text: string; encoding: "base64" } {
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(data), encoding: "utf8" };
  } catch {
    return { text: data.toString("base64"), encoding: "base64" };
  }
}

/** Command lines go to the audit log; anything shaped like a credential is replaced by its kind. */
function redactArgument(argument: string): string {
  const shape = secretShapeIn(argument);
  const clipped = argument.length > 512 ? `${argument.slice(0, 512)}...(${argument.length} chars)` : argument;
  return shape === undefined ? clipped : `[redacted ${shape}]`;
}

const fileInput = z.object({
  path: z.string().describe("Path relative to the workspace, e.g. src/main.py"),
  content: z.string().describe("File content (UTF-8 text, or base64 with encoding: base64)"),
  encoding: z.enum(["utf8", "base64"]).optional(),
  mode: z.number().int().min(0).max(0o777).optional().describe("Permission bits, e.g. 493 (0o755) for a script"),
});

const runInput = z.object({
  command: z.array(z.string()).min(1).optional().describe("Program and arguments, e.g. [\"python3\", \"main.py\"]"),
  script: z.string().optional().describe("A /bin/sh script; give this or command"),
  stdin: z.string().optional(),
  files: z.array(fileInput).max(1000).optional().describe("Files placed in the workspace before the command runs"),
  collect: z.array(z.string()).max(100).optional().describe("Workspace paths (files or directories) to return afterwards"),
  timeoutSeconds: z.number().positive().optional(),
  env: z.record(z.string(), z.string()).optional().describe("Environment variables for the command (nothing else is inherited)"),
  workspace: z.string().optional().describe("Keep files across calls in this named workspace (bounded in size and idle time)"),
  network: z.enum(["none", "proxy"]).optional().describe("none (default): no network. proxy: only the operator's allowlisted hosts, through the egress proxy"),
});

const workspaceInput = z.object({ workspace: z.string().describe("Name of the workspace") });

function toolError(message: string): CallToolResult {
  return { content: [{ type: "text", text: message }], isError: true };
}

function decodeFile(file: z.infer<typeof fileInput>): Buffer {
  return file.encoding === "base64" ? Buffer.from(file.content, "base64") : Buffer.from(file.content, "utf8");
}

export function createSandboxServer(options: SandboxServerOptions): SandboxServer {
  const logger = options.logger ?? silentLogger();
  const now = options.now ?? Date.now;
  const expectedToken = hashToken(options.token);
  const maxRequestBytes = options.maxRequestBytes ?? 32 * 1024 * 1024;
  const store = createWorkspaceStore(options.workspaces, now);
  const sweeper = setInterval(() => store.sweep(), Math.max(1000, Math.min(60_000, options.workspaces.ttlMs / 2)));
  sweeper.unref();

  const registry = new Registry();
  const runsTotal = new Counter({ name: "perimeter_sandbox_runs_total", help: "Sandbox runs by how they ended (or were refused).", labelNames: ["outcome"], registers: [registry] });
  const runDuration = new Histogram({ name: "perimeter_sandbox_run_duration_seconds", help: "Wall-clock time of sandbox runs.", buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600], registers: [registry] });
  const queueGauge = new Gauge({ name: "perimeter_sandbox_queue_length", help: "Runs waiting for a slot.", registers: [registry] });
  const runningGauge = new Gauge({ name: "perimeter_sandbox_running", help: "Runs in progress.", registers: [registry] });

  // Concurrency: a fixed number of slots and a bounded FIFO of waiters; a waiter whose caller goes away leaves it.
  let running = 0;
  const waiters: { grant: () => void; signal: AbortSignal }[] = [];
  async function acquire(signal: AbortSignal): Promise<() => void> {
    const release = () => {
      running -= 1;
      runningGauge.set(running);
      let next = waiters.shift();
      while (next !== undefined && next.signal.aborted) next = waiters.shift();
      queueGauge.set(waiters.length);
      next?.grant();
    };
    if (running < options.concurrency && waiters.length === 0) {
      running += 1;
      runningGauge.set(running);
      return release;
    }
    if (waiters.length >= options.queueLimit) throw new SandboxTaskError(`the sandbox runner is busy (${options.concurrency} running, ${waiters.length} waiting); try again shortly`);
    return new Promise((resolve, reject) => {
      const waiter = {
        signal,
        grant: () => {
          signal.removeEventListener("abort", onAbort);
          running += 1;
          runningGauge.set(running);
          resolve(release);
        },
      };
      const onAbort = () => {
        const index = waiters.indexOf(waiter);
        if (index >= 0) waiters.splice(index, 1);
        queueGauge.set(waiters.length);
        reject(new SandboxTaskError("the call was cancelled while waiting for a slot"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      waiters.push(waiter);
      queueGauge.set(waiters.length);
    });
  }

  // Per-caller quotas: concurrent runs and a sliding one-minute window of starts.
  const active = new Map<string, number>();
  const starts = new Map<string, number[]>();
  function quotaProblem(caller: string): string | undefined {
    if ((active.get(caller) ?? 0) >= options.quotas.concurrentRuns) return `quota: ${caller} already has ${options.quotas.concurrentRuns} runs in progress; wait for one to finish`;
    const recent = (starts.get(caller) ?? []).filter((time) => time > now() - 60_000);
    starts.set(caller, recent);
    if (recent.length >= options.quotas.runsPerMinute) return `quota: ${caller} has started ${options.quotas.runsPerMinute} runs in the last minute; try again later`;
    return undefined;
  }

  // One recorder (src/audit-log/recorder.ts): a run's start is committed before it starts, its end settles it
  // (decisionSeq) before the result is returned, refusals are committed before they are answered.
  const auditFailures = new Counter({ name: "perimeter_sandbox_audit_failures_total", help: "Audit records that could not be written (each one refused or withheld an operation).", registers: [registry] });
  const recorder = createAuditRecorder(options.audit, { component: "sandbox", logger, onFailure: () => auditFailures.inc() });
  const record = (event: { type: string; [field: string]: unknown }): Promise<AuditRecord | undefined> => recorder.record(event);

  async function refuse(caller: string, type: string, reason: string, fields: Record<string, unknown> = {}): Promise<CallToolResult> {
    runsTotal.inc({ outcome: "refused" });
    await recorder.refusal({ type, phase: "refused", caller, reason, ...fields });
    return toolError(reason);
  }

  function resultSummary(result: SandboxResult, files: { path: string; content: string; encoding: string }[]): { text: string; structured: Record<string, unknown> } {
    const stdout = decodeUtf8(result.stdout.data);
    const stderr = decodeUtf8(result.stderr.data);
    const structured = {
      exitCode: result.exitCode,
      signal: result.signal,
      reason: result.reason,
      stdout: stdout.text,
      stdoutEncoding: stdout.encoding,
      stdoutTruncated: result.stdout.truncated,
      stderr: stderr.text,
      stderrEncoding: stderr.encoding,
      stderrTruncated: result.stderr.truncated,
      durationMs: Math.round(result.durationMs),
      files,
      filesMissing: result.filesMissing,
      limitsHit: result.limitsHit,
      limits: { ...result.limits.limits, cgroup: result.limits.cgroup, network: result.limits.network, missing: result.limits.missing },
    };
    const lines = [
      `exit code: ${result.exitCode ?? "none"}${result.signal !== null ? ` (${result.signal})` : ""}; ended by: ${result.reason}; ${Math.round(result.durationMs)} ms`,
      `--- stdout${result.stdout.truncated ? ` (truncated; ${result.stdout.bytes} bytes written)` : ""}${stdout.encoding === "base64" ? " (base64)" : ""}`,
      stdout.text,
      `--- stderr${result.stderr.truncated ? ` (truncated; ${result.stderr.bytes} bytes written)` : ""}${stderr.encoding === "base64" ? " (base64)" : ""}`,
      stderr.text,
    ];
    if (files.length > 0) lines.push(`--- files returned: ${files.map((file) => file.path).join(", ")} (see structuredContent)`);
    if (result.filesMissing.length > 0) lines.push(`--- not returned: ${result.filesMissing.join(", ")}`);
    return { text: lines.join("\n"), structured };
  }

  async function runTool(args: z.infer<typeof runInput>, caller: string, signal: AbortSignal): Promise<CallToolResult> {
    const command = args.command ?? (args.script !== undefined ? ["/bin/sh", "-c", args.script] : []);
    const auditCommand = command.map(redactArgument);
    if ((args.command === undefined) === (args.script === undefined)) return refuse(caller, "sandbox-run", "give exactly one of command (program and arguments) or script");
    if (args.workspace !== undefined) {
      const problem = workspaceNameProblem(args.workspace);
      if (problem !== undefined) return refuse(caller, "sandbox-run", problem);
    }
    for (const path of args.collect ?? []) {
      const problem = workspacePathProblem(path);
      if (problem !== undefined) return refuse(caller, "sandbox-run", problem);
    }
    if (args.network === "proxy" && options.networkAllow === undefined) return refuse(caller, "sandbox-run", 'network "proxy" is not offered by this runner (set sandbox.network.allow in perimeter.yaml); use network "none"');
    const quota = quotaProblem(caller);
    if (quota !== undefined) return refuse(caller, "sandbox-run", quota, { command: auditCommand });

    const timeoutMs = args.timeoutSeconds === undefined ? undefined : Math.min(args.timeoutSeconds * 1000, options.ceiling.timeoutMs);
    const callFiles = (args.files ?? []).map((file) => ({ path: file.path, content: decodeFile(file), mode: file.mode }));
    const execute = async (): Promise<CallToolResult> => {
      const workspaceFiles = args.workspace === undefined ? new Map<string, WorkspaceFile>() : store.snapshot(caller, args.workspace);
      for (const file of callFiles) workspaceFiles.delete(file.path);
      const task: SandboxTask = {
        ...(args.command !== undefined ? { argv: args.command } : { script: args.script as string }),
        ...(args.stdin !== undefined ? { stdin: args.stdin } : {}),
        files: [...[...workspaceFiles.entries()].map(([path, file]) => ({ path, content: file.content, mode: file.mode })), ...callFiles],
        ...(args.env !== undefined ? { env: args.env } : {}),
        ...(timeoutMs !== undefined ? { limits: { timeoutMs } } : {}),
        network: args.network === "proxy" ? { mode: "proxy", allow: options.networkAllow as readonly SandboxHostRule[] } : { mode: "none" },
        collect: args.workspace === undefined ? (args.collect ?? []) : ["."],
        caller,
      };
      // Nothing runs unrecorded: if the start cannot be written, the call is refused.
      let started: AuditRecord | undefined;
      try {
        started = await record({ type: "sandbox-run", phase: "started", caller, command: auditCommand, workspace: args.workspace ?? null, network: task.network?.mode ?? "none", timeoutMs: timeoutMs ?? null, files: task.files?.length ?? 0, stdinBytes: args.stdin === undefined ? 0 : Buffer.byteLength(args.stdin), envNames: Object.keys(args.env ?? {}) });
      } catch (error) {
        runsTotal.inc({ outcome: "refused" });
        logger.error({ event: "audit-failed", error: (error as Error).message }, "audit log unavailable: refusing a sandbox run");
        return toolError("the audit log is unavailable, so the sandbox refuses to run anything (operator: check the audit database)");
      }
      active.set(caller, (active.get(caller) ?? 0) + 1);
      const recentStarts = starts.get(caller) ?? [];
      recentStarts.push(now());
      starts.set(caller, recentStarts);
      let result: SandboxResult;
      try {
        const release = await acquire(signal);
        try {
          result = await options.backend.run(task, { signal });
        } finally {
          release();
        }
      } catch (error) {
        const outcome = error instanceof SandboxTaskError ? "refused" : "error";
        runsTotal.inc({ outcome });
        const message = error instanceof SandboxTaskError || error instanceof SandboxUnavailableError ? error.message : "internal error running the sandbox";
        if (!(error instanceof SandboxTaskError)) logger.error({ event: "sandbox-run-failed", caller, error: (error as Error).message }, "sandbox run failed");
        // A failure to record it is logged whole and turns /healthz unhealthy; the call fails either way.
        await recorder.refusal({ type: "sandbox-run", phase: "failed", decisionSeq: started?.seq ?? null, caller, command: auditCommand, reason: message });
        return toolError(message);
      } finally {
        active.set(caller, (active.get(caller) ?? 1) - 1);
      }
      runsTotal.inc({ outcome: result.reason });
      runDuration.observe(result.durationMs / 1000);

      let workspaceNote: string | undefined;
      let returned = result.files;
      if (args.workspace !== undefined) {
        if (result.limitsHit.includes("returned-files")) {
          // Files that did not come back are not gone from the workspace: keep it as it was rather than lose them.
          workspaceNote = `workspace "${args.workspace}" was not updated: its files came to more than the runner returns from a task`;
        } else if (result.reason === "exit" || result.reason === "signal") {
          const next = new Map(result.files.map((file) => [file.path, { content: file.content, mode: file.mode }]));
          const change = store.replace(caller, args.workspace, next);
          if (!change.ok) workspaceNote = `workspace "${args.workspace}" was not updated: ${change.reason}`;
        } else {
          workspaceNote = `workspace "${args.workspace}" was not updated: the run ended by ${result.reason}`;
        }
        const wanted = args.collect ?? [];
        returned = result.files.filter((file) => wanted.some((path) => path === "." || file.path === path || file.path.startsWith(`${path}/`)));
      }
      const files = returned.map((file) => {
        const decoded = decodeUtf8(file.content);
        return { path: file.path, content: decoded.text, encoding: decoded.encoding, mode: file.mode };
      });
      try {
        await record({
          type: "sandbox-run",
          phase: "finished",
          decisionSeq: started?.seq ?? null,
          caller,
          command: auditCommand,
          workspace: args.workspace ?? null,
          exitCode: result.exitCode,
          signal: result.signal,
          reason: result.reason,
          durationMs: Math.round(result.durationMs),
          stdoutBytes: result.stdout.bytes,
          stderrBytes: result.stderr.bytes,
          truncated: result.stdout.truncated || result.stderr.truncated,
          filesReturned: files.length,
          limits: { ...result.limits.limits, cgroup: result.limits.cgroup, network: result.limits.network },
          limitsHit: result.limitsHit,
        });
      } catch (error) {
        logger.error({ event: "audit-failed", error: (error as Error).message }, "audit log unavailable: withholding a sandbox result");
        return toolError("the run finished but the audit log is unavailable, so its result is withheld (operator: check the audit database)");
      }
      const summary = resultSummary(result, files);
      if (workspaceNote !== undefined) summary.text += `\n--- ${workspaceNote}`;
      return { content: [{ type: "text", text: summary.text }], structuredContent: { ...summary.structured, ...(workspaceNote !== undefined ? { workspaceNote } : {}) }, isError: false };
    };
    return args.workspace === undefined ? execute() : store.exclusive(caller, args.workspace, execute);
  }

  async function fileTool(type: string, caller: string, workspace: string, work: () => CallToolResult, fields: Record<string, unknown> = {}): Promise<CallToolResult> {
    const problem = workspaceNameProblem(workspace);
    if (problem !== undefined) return refuse(caller, type, problem);
    try {
      await record({ type, caller, workspace, ...fields });
    } catch (error) {
      logger.error({ event: "audit-failed", error: (error as Error).message }, "audit log unavailable: refusing a workspace call");
      return toolError("the audit log is unavailable, so the sandbox refuses the call (operator: check the audit database)");
    }
    return work();
  }

  // 2025-11-25 clients are served statelessly, so their notifications/cancelled arrives in a request of its own:
  // runs in flight are found by caller and JSON-RPC id (and only when exactly one matches).
  const inFlight = new Map<string, Set<AbortController>>();
  const inFlightKey = (caller: string, id: unknown) => `${caller}\u0000${JSON.stringify(id)}`;
  function cancelInFlight(caller: string, body: unknown): void {
    for (const message of Array.isArray(body) ? body : [body]) {
      const candidate = message as { method?: unknown; params?: { requestId?: unknown } } | null;
      if (candidate?.method !== "notifications/cancelled" || candidate.params?.requestId === undefined) continue;
      const matching = inFlight.get(inFlightKey(caller, candidate.params.requestId));
      if (matching?.size === 1) for (const controller of matching) controller.abort();
    }
  }

  const openWorld = options.networkAllow !== undefined;
  const factory = (context: { authInfo?: AuthInfo }) => {
    const caller = context.authInfo?.clientId ?? DEFAULT_CALLER;
    // Aborted when the HTTP exchange that carries this call goes away (the caller disconnected).
    const disconnected = context.authInfo?.extra?.disconnected as AbortSignal | undefined;
    const server = new McpServer({ name: "perimeter-sandbox", version: "0.1.0" }, { capabilities: { tools: {} } });
    server.registerTool(
      "run",
      {
        title: "Run a command in a disposable sandbox",
        description:
          "Runs a program (command) or a /bin/sh script in a fresh, isolated sandbox with its own empty workspace (or a named workspace's files), " +
          `no secrets, ${openWorld ? 'no network unless network is "proxy" (then only allowlisted hosts)' : "no network"}, and bounded CPU, memory, disk, processes and time. ` +
          "Returns exit code, stdout, stderr and requested files. Tools available: python3, node, sh and the usual command-line utilities.",
        inputSchema: runInput,
        annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: openWorld },
      },
      async (args, ctx) => {
        const cancelled = new AbortController();
        const key = inFlightKey(caller, ctx.mcpReq.id);
        const entries = inFlight.get(key) ?? new Set<AbortController>();
        entries.add(cancelled);
        inFlight.set(key, entries);
        try {
          const signals = [ctx.mcpReq.signal, cancelled.signal, ...(disconnected !== undefined ? [disconnected] : [])];
          return await runTool(args, caller, AbortSignal.any(signals));
        } catch (error) {
          logger.error({ event: "tool-crashed", tool: "run", error: (error as Error).stack }, "the run tool failed");
          return toolError(error instanceof SandboxTaskError ? error.message : "internal error in the sandbox runner");
        } finally {
          entries.delete(cancelled);
          if (entries.size === 0) inFlight.delete(key);
        }
      },
    );
    server.registerTool(
      "write_file",
      {
        title: "Write a file into a named workspace",
        description: "Creates or overwrites a file in a named workspace (created on first use). Later runs with that workspace see it. Workspaces expire when idle.",
        inputSchema: workspaceInput.extend(fileInput.shape),
        annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
      },
      async (args) =>
        fileTool("sandbox-file-write", caller, args.workspace, () => {
          const content = decodeFile(args);
          const change = store.write(caller, args.workspace, args.path, { content, mode: args.mode ?? 0o644 });
          return change.ok ? { content: [{ type: "text", text: `wrote ${content.length} bytes to ${args.path} in workspace ${args.workspace}` }] } : toolError(change.reason);
        }, { path: args.path, bytes: args.content.length }),
    );
    server.registerTool(
      "read_file",
      {
        title: "Read a file from a named workspace",
        description: "Returns a file of a named workspace (UTF-8 text, or base64 when it is binary).",
        inputSchema: workspaceInput.extend({ path: z.string() }),
        annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
      },
      async (args) =>
        fileTool("sandbox-file-read", caller, args.workspace, () => {
          const file = store.read(caller, args.workspace, args.path);
          if (file === undefined) return toolError(store.exists(caller, args.workspace) ? `no file ${args.path} in workspace ${args.workspace}` : `no workspace ${args.workspace} (it may have expired)`);
          const decoded = decodeUtf8(file.content);
          return { content: [{ type: "text", text: decoded.text }], structuredContent: { path: args.path, content: decoded.text, encoding: decoded.encoding, mode: file.mode, size: file.content.length } };
        }, { path: args.path }),
    );
    server.registerTool(
      "list_files",
      {
        title: "List the files of a named workspace",
        description: "Lists every file of a named workspace with its size.",
        inputSchema: workspaceInput,
        annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
      },
      async (args) =>
        fileTool("sandbox-file-list", caller, args.workspace, () => {
          const files = store.list(caller, args.workspace);
          return { content: [{ type: "text", text: files.length === 0 ? `workspace ${args.workspace} is empty or does not exist` : files.map((file) => `${file.size}\t${file.path}`).join("\n") }], structuredContent: { workspace: args.workspace, files } };
        }),
    );
    return server;
  };

  const handler = createMcpHandler(factory, { maxRequestBodySize: maxRequestBytes });
  const serveMcp = toNodeHandler(handler, { maxRequestBodySize: maxRequestBytes, onerror: (error) => logger.error({ event: "mcp-error", error: error.message }, "MCP request failed") });
  let loopbackOnly = true;

  async function onRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      // Unhealthy while the audit log refuses writes: every run is refused then, and a probe should say so.
      if (recorder.healthy()) response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      else response.writeHead(503, { "content-type": "text/plain" }).end("audit log failing: every run is refused; see the runner's log\n");
      return;
    }
    if (path === "/metrics") {
      closeAfterAnswerIfBodyUnread(response);
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are served on the metrics listener (perimeter serve sandbox --metrics-listen HOST:PORT), without a token\n");
      return;
    }
    if (path !== "/mcp") {
      closeAfterAnswerIfBodyUnread(response);
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: the MCP endpoint is /mcp\n");
      return;
    }
    if (!bearerMatches(request.headers.authorization, expectedToken)) {
      const presented = request.headers.authorization !== undefined;
      // Refused before its body is read: the body never is (src/shared/refusal.ts).
      closeAfterAnswerIfBodyUnread(response);
      response
        .writeHead(401, { "content-type": "application/json", "www-authenticate": `Bearer realm="perimeter-sandbox"${presented ? ', error="invalid_token"' : ""}` })
        .end(JSON.stringify({ error: presented ? "invalid_token" : "unauthorized", error_description: "present the sandbox runner's token as Authorization: Bearer TOKEN" }));
      return;
    }
    // DNS rebinding: on loopback, only loopback names may address us.
    if (loopbackOnly) {
      const host = validateHostHeader(request.headers.host ?? null, ["localhost", "127.0.0.1", "[::1]"]);
      if (!host.ok) {
        closeAfterAnswerIfBodyUnread(response);
        response.writeHead(403, { "content-type": "text/plain" }).end("forbidden host\n");
        return;
      }
    }
    const named = request.headers["x-perimeter-caller"];
    const caller = typeof named === "string" && CALLER.test(named) ? named : DEFAULT_CALLER;
    // A call is served within one HTTP exchange: if the client drops it, the run it started is stopped.
    const disconnected = new AbortController();
    response.on("close", () => {
      if (!response.writableFinished) disconnected.abort();
    });
    const auth: AuthInfo = { token: "bearer", clientId: caller, scopes: [], extra: { disconnected: disconnected.signal } };
    if (request.method !== "POST") {
      await serveMcp(Object.assign(request, { auth }), response);
      return;
    }
    // Buffer the body (bounded) to look for cancellations, then hand the same bytes to the MCP handler.
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of request) {
      size += (chunk as Buffer).length;
      if (size > maxRequestBytes) {
        response.writeHead(413, { "content-type": "text/plain" }).end(`request body over ${maxRequestBytes} bytes: send large files in several write_file calls\n`);
        return;
      }
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks);
    if (body.length < 65536 && body.includes("notifications/cancelled")) {
      try {
        cancelInFlight(caller, JSON.parse(body.toString("utf8")));
      } catch {
        // Not JSON: the MCP handler answers with a parse error.
      }
    }
    const buffered = {
      method: request.method,
      url: request.url,
      headers: request.headers,
      auth,
      async *[Symbol.asyncIterator]() {
        yield body;
      },
    };
    await serveMcp(buffered, response);
  }

  async function onMetricsRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? "/").split("?")[0];
    closeAfterAnswerIfBodyUnread(response);
    if (path !== "/metrics" && path !== "/healthz") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: this listener serves /metrics and /healthz only (MCP is on the main listener)\n");
    } else if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { "content-type": "text/plain", allow: "GET, HEAD" }).end("the metrics listener answers GET only\n");
    } else if (path === "/metrics") {
      response.writeHead(200, { "content-type": registry.contentType }).end(await registry.metrics());
    } else if (recorder.healthy()) {
      response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else {
      response.writeHead(503, { "content-type": "text/plain" }).end("audit log failing: every run is refused; see the runner's log\n");
    }
  }

  const servers: Server[] = [];
  async function listenOn(target: string, handle: (request: IncomingMessage, response: ServerResponse) => Promise<void>, path: string): Promise<{ host: string; port: number; url: string; loopback: boolean }> {
    // Port 0 (any free port) is fine for a listener, though not for a host rule.
    const parsed = /:0$/.test(target) ? (() => {
      const found = splitHostPort(target.replace(/:0$/, ":1"));
      return found === undefined ? undefined : { host: found.host, port: 0 };
    })() : splitHostPort(target);
    if (parsed === undefined) throw new SandboxTaskError(`"${target}" is not HOST:PORT (write 127.0.0.1:8701, or [::1]:8701)`);
    const host = parsed.host.replace(/^\[|\]$/g, "");
    const server = createServer((request, response) => {
      handle(request, response).catch((error: unknown) => {
        logger.error({ event: "request-crashed", error: (error as Error).stack }, "sandbox server request failed");
        if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" });
        response.end("internal error\n");
      });
    });
    server.requestTimeout = 0; // runs may take minutes; the task's own timeout bounds them
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(parsed.port, host, () => resolve());
    });
    servers.push(server);
    const address = server.address() as { address: string; port: number };
    const shown = address.address.includes(":") ? `[${address.address}]` : address.address;
    return { host: address.address, port: address.port, url: `http://${shown}:${address.port}${path}`, loopback: host === "127.0.0.1" || host === "::1" || host === "localhost" };
  }

  return {
    registry,
    async listen(target) {
      const { loopback, ...address } = await listenOn(target, onRequest, "/mcp");
      loopbackOnly = loopback;
      return address;
    },
    async listenMetrics(target) {
      const { loopback: _loopback, ...address } = await listenOn(target, onMetricsRequest, "/metrics");
      return address;
    },
    async close() {
      clearInterval(sweeper);
      await handler.close();
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
      // Records still queued for this turn's commit are written before the caller closes the audit log.
      recorder.flush();
    },
  };
}
