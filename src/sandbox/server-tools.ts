// The runner's MCP tools (run, write_file, read_file, list_files), built per request for its caller: their input
// schemas, the cancellation of runs in flight, and the workspace file tools. The run tool's stages are in
// server-run.ts.
import { z } from "zod";
import { McpServer } from "@modelcontextprotocol/server";
import type { AuthInfo, CallToolResult } from "@modelcontextprotocol/server";
import { decodeFile, runTool } from "./server-run.ts";
import { decodeUtf8, toolError } from "./server-output.ts";
import { recordSandboxEvent, refuseCall } from "./server-state.ts";
import type { SandboxServerState } from "./server-state.ts";
import { SandboxTaskError } from "./task.ts";
import { workspaceNameProblem } from "./workspaces.ts";

/** The caller when mcp-guard names none (X-Perimeter-Caller). */
export const DEFAULT_CALLER = "default";

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

export type RunInput = z.infer<typeof runInput>;

const workspaceInput = z.object({ workspace: z.string().describe("Name of the workspace") });

const inFlightKey = (caller: string, id: unknown) => `${caller}\u0000${JSON.stringify(id)}`;

/**
 * 2025-11-25 clients are served statelessly, so their notifications/cancelled arrives in a request of its own:
 * runs in flight are found by caller and JSON-RPC id (and only when exactly one matches).
 */
export function cancelInFlight(state: SandboxServerState, caller: string, body: unknown): void {
  for (const message of Array.isArray(body) ? body : [body]) {
    const candidate = message as { method?: unknown; params?: { requestId?: unknown } } | null;
    if (candidate?.method !== "notifications/cancelled" || candidate.params?.requestId === undefined) continue;
    const matching = state.inFlight.get(inFlightKey(caller, candidate.params.requestId));
    if (matching?.size === 1) for (const controller of matching) controller.abort();
  }
}

/** The run tool's handler: cancellable by a notification, the MCP request's own signal and the caller's disconnection. */
async function trackedRun(state: SandboxServerState, args: RunInput, caller: string, request: { id: unknown; signal: AbortSignal }, disconnected: AbortSignal | undefined): Promise<CallToolResult> {
  const cancelled = new AbortController();
  const key = inFlightKey(caller, request.id);
  const entries = state.inFlight.get(key) ?? new Set<AbortController>();
  entries.add(cancelled);
  state.inFlight.set(key, entries);
  try {
    const signals = [request.signal, cancelled.signal, ...(disconnected !== undefined ? [disconnected] : [])];
    return await runTool(state, args, caller, AbortSignal.any(signals));
  } catch (error) {
    state.logger.error({ event: "tool-crashed", tool: "run", error: (error as Error).stack }, "the run tool failed");
    return toolError(error instanceof SandboxTaskError ? error.message : "internal error in the sandbox runner");
  } finally {
    entries.delete(cancelled);
    if (entries.size === 0) state.inFlight.delete(key);
  }
}

/** A workspace file tool: the name checked, the call recorded (refused when it cannot be), then the work. */
async function fileTool(state: SandboxServerState, type: string, caller: string, workspace: string, work: () => CallToolResult, fields: Record<string, unknown> = {}): Promise<CallToolResult> {
  const problem = workspaceNameProblem(workspace);
  if (problem !== undefined) return refuseCall(state, caller, type, problem);
  try {
    await recordSandboxEvent(state, { type, caller, workspace, ...fields });
  } catch (error) {
    state.logger.error({ event: "audit-failed", error: (error as Error).message }, "audit log unavailable: refusing a workspace call");
    return toolError("the audit log is unavailable, so the sandbox refuses the call (operator: check the audit database)");
  }
  return work();
}

function registerRun(state: SandboxServerState, server: McpServer, caller: string, disconnected: AbortSignal | undefined): void {
  const openWorld = state.options.networkAllow !== undefined;
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
    async (args, ctx) => trackedRun(state, args, caller, ctx.mcpReq, disconnected),
  );
}

function registerFileTools(state: SandboxServerState, server: McpServer, caller: string): void {
  const { store } = state;
  server.registerTool(
    "write_file",
    {
      title: "Write a file into a named workspace",
      description: "Creates or overwrites a file in a named workspace (created on first use). Later runs with that workspace see it. Workspaces expire when idle.",
      inputSchema: workspaceInput.extend(fileInput.shape),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    async (args) =>
      fileTool(state, "sandbox-file-write", caller, args.workspace, () => {
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
      fileTool(state, "sandbox-file-read", caller, args.workspace, () => {
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
      fileTool(state, "sandbox-file-list", caller, args.workspace, () => {
        const files = store.list(caller, args.workspace);
        return { content: [{ type: "text", text: files.length === 0 ? `workspace ${args.workspace} is empty or does not exist` : files.map((file) => `${file.size}\t${file.path}`).join("\n") }], structuredContent: { workspace: args.workspace, files } };
      }),
  );
}

/** The MCP server for one request, as createMcpHandler asks for it: the caller comes from the request's AuthInfo. */
export function toolServerFor(state: SandboxServerState, context: { authInfo?: AuthInfo }): McpServer {
  const caller = context.authInfo?.clientId ?? DEFAULT_CALLER;
  // Aborted when the HTTP exchange that carries this call goes away (the caller disconnected).
  const disconnected = context.authInfo?.extra?.disconnected as AbortSignal | undefined;
  const server = new McpServer({ name: "perimeter-sandbox", version: "0.1.0" }, { capabilities: { tools: {} } });
  registerRun(state, server, caller, disconnected);
  registerFileTools(state, server, caller);
  return server;
}
