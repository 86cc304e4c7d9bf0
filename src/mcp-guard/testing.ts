// Test support for mcp-guard (imported by *.test.ts and the benchmark only): a real HTTP MCP server built with the
// official SDK that records every request it receives, a guard started on loopback with a real audit log, and agent
// clients speaking either protocol revision.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { toNodeHandler } from "@modelcontextprotocol/node";
import { McpServer, createMcpHandler } from "@modelcontextprotocol/server";
import pino from "pino";
import { z } from "zod";
import { openAuditLog } from "../audit-log/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { parseConfig } from "../config/index.ts";
import type { Environment } from "../config/index.ts";
import { openGuardDatabase } from "./cli.ts";
import { createMcpGuard } from "./guard.ts";
import type { McpGuard, McpGuardDependencies, McpGuardOptions } from "./guard.ts";
import { eventually } from "../shared/testing.ts";

export const EVERYTHING_ENTRY = join(import.meta.dirname, "../../node_modules/@modelcontextprotocol/server-everything/dist/index.js");

export interface RecordedRequest {
  method: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export interface RecordingServer {
  url: string;
  requests: RecordedRequest[];
  /** Tool description of `describe-me`; change it and call notifyToolsChanged() to simulate a rug pull. */
  setDescription(text: string): void;
  notifyToolsChanged(): void;
  /** The highest number of `slow` calls that ran at the same time. */
  maxConcurrentSlow(): number;
  /** Values of a leaked secret the `leak` tool puts in every field of its result. */
  setLeak(secret: string): void;
  close(): Promise<void>;
}

/**
 * A real Streamable HTTP MCP server (SDK v2, both protocol revisions) that records the headers and bodies of every
 * request, so tests can prove which credentials arrived and that the agent's token never did.
 */
export async function startRecordingServer(): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  let description = "Describes itself.";
  let leak = "nothing-to-leak";
  let runningSlow = 0;
  let maxSlow = 0;
  const factory = () => {
    const server = new McpServer({ name: "recording-upstream", version: "1.0.0" });
    server.registerTool("echo", { description: "Echoes the message.", inputSchema: z.object({ message: z.string() }) }, ({ message }) => ({
      content: [{ type: "text", text: `web echo: ${message}` }],
    }));
    server.registerTool("echo-headers", { description: "Returns the request headers it received.", inputSchema: z.object({}) }, (_args, context) => {
      const headers: Record<string, string> = {};
      context.http?.req?.headers.forEach((value, key) => (headers[key] = value));
      return { content: [{ type: "text", text: JSON.stringify(headers) }], structuredContent: { headers } };
    });
    server.registerTool(
      "create_issue",
      {
        description: "Creates an issue.",
        inputSchema: z.object({
          owner: z.string(),
          repo: z.string(),
          title: z.string().optional(),
          count: z.number().optional(),
          labels: z.array(z.object({ name: z.string() })).optional(),
        }),
      },
      ({ owner, repo, title }) => ({ content: [{ type: "text", text: `created issue in ${owner}/${repo}: ${title ?? ""}` }] }),
    );
    server.registerTool("describe-me", { description, inputSchema: z.object({}) }, () => ({ content: [{ type: "text", text: "described" }] }));
    server.registerTool("slow", { description: "Waits a while.", inputSchema: z.object({ ms: z.number() }) }, async ({ ms }) => {
      runningSlow += 1;
      maxSlow = Math.max(maxSlow, runningSlow);
      await new Promise((resolve) => setTimeout(resolve, Math.min(ms, 5000)));
      runningSlow -= 1;
      return { content: [{ type: "text", text: "done" }] };
    });
    server.registerTool(
      "leak",
      { description: "Returns a secret in every result field.", inputSchema: z.object({ fail: z.boolean().optional() }) },
      ({ fail }) => {
        if (fail === true) throw new Error(`upstream failure while using ${leak}`);
        return {
          content: [
            { type: "text", text: `the token is ${leak}` },
            { type: "resource", resource: { uri: `secret://x?token=${leak}`, mimeType: "text/plain", text: `file with ${leak}` } },
            { type: "resource", resource: { uri: "secret://blob", mimeType: "application/octet-stream", blob: Buffer.from(`binary ${leak} end`).toString("base64") } },
            { type: "resource_link", uri: `https://example.invalid/?key=${leak}`, name: `link ${leak}` },
            { type: "image", data: Buffer.from(`not-really-png ${leak}`).toString("base64"), mimeType: "image/png" },
          ],
          structuredContent: { value: leak, nested: { list: [leak, "fine"] }, [leak]: "as a key" },
        };
      },
    );
    return server;
  };
  const handler = createMcpHandler(factory);
  const serve = toNodeHandler(handler);
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    requests.push({ method: request.method ?? "", headers: request.headers, body });
    let parsed: unknown;
    try {
      parsed = body === "" ? undefined : JSON.parse(body);
    } catch {
      parsed = undefined;
    }
    await serve(request as IncomingMessage & { headers: Record<string, string | string[] | undefined> }, response, parsed);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    requests,
    setDescription: (text) => (description = text),
    notifyToolsChanged: () => handler.notify.toolsChanged(),
    maxConcurrentSlow: () => maxSlow,
    setLeak: (secret) => (leak = secret),
    async close() {
      await handler.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface StartedGuard {
  guard: McpGuard;
  url: string;
  adminUrl: string;
  audit: AuditLog;
  auditPath: string;
  directory: string;
  logLines: string[];
  close(): Promise<void>;
}

/** Starts a guard from YAML (parsed like perimeter.yaml) with a real audit log in a temporary directory. */
export async function startGuard(
  yaml: string,
  env: Environment,
  options: McpGuardOptions & { directory?: string; wrapAudit?: (log: AuditLog) => McpGuardDependencies["audit"]; /** Return once listening, before the upstreams' first sync. */ waitReady?: boolean } = {},
): Promise<StartedGuard> {
  const directory = options.directory ?? mkdtempSync(join(tmpdir(), "mcp-guard-test-"));
  const auditPath = join(directory, "audit.db");
  const config = parseConfig(yaml.replaceAll("AUDIT_PATH", auditPath));
  const audit = openAuditLog({ path: auditPath });
  const database = openGuardDatabase(auditPath);
  const logLines: string[] = [];
  const logger = pino(
    { level: "debug" },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logLines.push(chunk.toString("utf8"));
        callback();
      },
    }),
  );
  let guard: McpGuard;
  try {
    const { wrapAudit, directory: _directory, waitReady: _waitReady, ...guardOptions } = options;
    guard = createMcpGuard(config, { env, audit: wrapAudit?.(audit) ?? audit, database, logger }, { listen: "127.0.0.1:0", adminListen: "127.0.0.1:0", backoff: { initialMs: 100, maxMs: 1000 }, ...guardOptions });
  } catch (error) {
    database.close();
    audit.close();
    if (options.directory === undefined) rmSync(directory, { recursive: true, force: true });
    throw error;
  }
  const { agent, admin } = await guard.listen();
  if (options.waitReady !== false) await guard.ready(20_000);
  return {
    guard,
    url: `http://127.0.0.1:${agent.port}/mcp`,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    audit,
    auditPath,
    directory,
    logLines,
    async close() {
      await guard.close();
      database.close();
      audit.close();
      if (options.directory === undefined) rmSync(directory, { recursive: true, force: true });
    },
  };
}

export type ProtocolVersion = "2025-11-25" | "2026-07-28";
export const PROTOCOL_VERSIONS: readonly ProtocolVersion[] = ["2025-11-25", "2026-07-28"];

/** The official SDK client, as an agent would connect, speaking the given protocol revision. */
export async function connectAgent(url: string, token: string, version: ProtocolVersion, headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: "test-agent", version: "1.0.0" }, version === "2026-07-28" ? { versionNegotiation: { mode: { pin: "2026-07-28" } } } : {});
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}`, ...headers } } }));
  return client;
}

export { eventually };

/** All text of a tool result, for assertions. */
export function resultText(result: { content?: unknown }): string {
  const content = (result.content ?? []) as Array<{ type: string; text?: string }>;
  return content.map((block) => block.text ?? "").join("\n");
}

/** A request as a scripted upstream in a test saw it: the raw body and, for a POST, its parsed JSON-RPC message. */
export interface SeenRequest {
  method: string;
  headers: IncomingHttpHeaders;
  body: string;
  message: { id?: string | number; method?: string; params?: Record<string, unknown> } | undefined;
}

export type ScriptedHandler = (seen: SeenRequest, response: ServerResponse, request: IncomingMessage) => void | Promise<void>;

/** A node:http request listener that reads each request whole, records it in `seen`, then lets `handle` answer. */
export function recordingHandler(handle: ScriptedHandler, seen: SeenRequest[]): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      let message: SeenRequest["message"];
      try {
        message = body === "" ? undefined : (JSON.parse(body) as SeenRequest["message"]);
      } catch {
        message = undefined;
      }
      const entry = { method: request.method ?? "", headers: request.headers, body, message };
      seen.push(entry);
      void handle(entry, response, request);
    });
  };
}
