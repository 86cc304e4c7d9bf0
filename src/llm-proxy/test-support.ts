// Shared by the llm-proxy tests: a proxy with a real audit log and key store in a temporary directory, pointed at
// stand-in providers, and small HTTP clients that play the agent's part (an OpenAI/Anthropic SDK over HTTP).
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { parseConfig } from "../config/index.ts";
import type { Environment, PerimeterConfig } from "../config/index.ts";
import { openAuditLog, readAuditRecords } from "../audit-log/index.ts";
import type { AuditLog, AuditRecord, RecorderLog } from "../audit-log/index.ts";
import type { CommandIo } from "../cli/index.ts";
import { runCli } from "../cli/main.ts";
import { openLlmKeyStore } from "./keys.ts";
import type { LlmKeyStore } from "./keys.ts";
import { createLlmProxy } from "./server.ts";
import type { LlmProxy } from "./server.ts";
import type { LlmProxyDependencies } from "./state.ts";
import { eventually as pollUntil } from "../shared/testing.ts";

export function temporaryDirectory(): string {
  return mkdtempSync(join(tmpdir(), "perimeter-llm-"));
}

export interface Harness {
  readonly url: string;
  readonly proxy: LlmProxy;
  readonly keyStore: LlmKeyStore;
  readonly auditPath: string;
  readonly configPath: string;
  readonly directory: string;
  readonly config: PerimeterConfig;
  /**
   * The llm-request audit records written so far, each forwarded request's decision merged with the llm-response
   * record that settles it (status, usage, cost), so a test reads one view of a request.
   */
  records(): Array<AuditRecord & { data: Record<string, unknown> }>;
  close(): Promise<void>;
}

/**
 * Starts llm-proxy with `llmYaml` as the body of the `llm:` section (indented by the caller or not: it is indented
 * here). The config file is written to the directory too, for CLI tests.
 */
export async function startProxy(
  llmYaml: string,
  environment: Environment,
  dependencies: Partial<Omit<LlmProxyDependencies, "environment" | "keyStore" | "audit">> = {},
  wrapAudit: (log: AuditLog) => RecorderLog = (log) => log,
): Promise<Harness> {
  const directory = temporaryDirectory();
  const auditPath = join(directory, "audit.db");
  const text = `version: 1\nname: test\naudit:\n  path: ${auditPath}\nllm:\n${llmYaml
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n")}\n`;
  const configPath = join(directory, "perimeter.yaml");
  const { writeFileSync } = await import("node:fs");
  writeFileSync(configPath, text);
  const config = parseConfig(text, configPath);
  const audit: AuditLog = openAuditLog({ path: auditPath });
  const keyStore = openLlmKeyStore(config.llm.keysPath ?? auditPath);
  const proxy = createLlmProxy(config, { environment, keyStore, audit: wrapAudit(audit), ...dependencies });
  const { port } = await proxy.listen("127.0.0.1", 0);
  return {
    url: `http://127.0.0.1:${port}`,
    proxy,
    keyStore,
    auditPath,
    configPath,
    directory,
    config,
    records: () => requestRecords(auditPath),
    async close() {
      await proxy.close(100);
      keyStore.close();
      audit.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** Finished requests: llm-request records, each merged with the llm-response that settles it (which wins where both say something). */
export function requestRecords(auditPath: string): Array<AuditRecord & { data: Record<string, unknown> }> {
  const records = readAuditRecords(auditPath, { limit: 100_000 });
  const settled = new Map<number, Record<string, unknown>>();
  for (const record of records) if (record.type === "llm-response") settled.set(record.data.decisionSeq as number, record.data);
  // A forwarded request whose outcome is not yet recorded is still in flight: left out, as before it ends.
  return records
    .filter((record) => record.type === "llm-request" && (record.data.decision !== "allow" || settled.has(record.seq)))
    .map((record) => ({ ...record, data: { ...record.data, ...settled.get(record.seq) } }));
}

export interface JsonResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  readonly json: Record<string, unknown> & { error?: Record<string, unknown> };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export function request(url: string, method: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const outgoing = http.request(url, { method, agent, headers: { ...(payload === undefined ? {} : { "content-type": "application/json" }), ...headers } }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not JSON (an SSE body)
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text, json });
      });
      response.on("error", reject);
    });
    outgoing.on("error", reject);
    outgoing.end(payload);
  });
}

export function post(base: string, path: string, body: unknown, key?: string, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return request(`${base}${path}`, "POST", body, { ...(key === undefined ? {} : { authorization: `Bearer ${key}` }), ...headers });
}

export interface StreamingResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** Resolves with the next chunk's text, or undefined at the end. */
  next(): Promise<string | undefined>;
  /** Everything until the end. */
  rest(): Promise<string>;
  /** Drops the connection, as an agent that gives up does. */
  abort(): void;
}

/** A streaming POST that hands chunks over as they arrive (no buffering), like an SDK's SSE reader. */
export function postStream(base: string, path: string, body: unknown, key: string, headers: Record<string, string> = {}): Promise<StreamingResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}`, ...headers } }, (response) => {
      const queue: Array<string | undefined> = [];
      const waiters: Array<(value: string | undefined) => void> = [];
      const push = (value: string | undefined) => {
        const waiter = waiters.shift();
        if (waiter !== undefined) waiter(value);
        else queue.push(value);
      };
      response.on("data", (chunk: Buffer) => push(chunk.toString("utf8")));
      response.on("end", () => push(undefined));
      response.on("error", () => push(undefined));
      response.on("close", () => push(undefined));
      const next = () => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise<string | undefined>((resolveNext) => waiters.push(resolveNext)));
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        next,
        async rest() {
          let text = "";
          for (let guard = 0; guard < 100_000; guard++) {
            const chunk = await next();
            if (chunk === undefined) break;
            text += chunk;
          }
          return text;
        },
        abort: () => outgoing.destroy(),
      });
    });
    outgoing.on("error", reject);
    outgoing.end(JSON.stringify(body));
  });
}

/** `data:` payloads of an SSE text, parsed when JSON. */
export function sseData(text: string): unknown[] {
  return text
    .split(/\n\n/)
    .map((block) => block.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n"))
    .filter((data) => data !== "")
    .map((data) => {
      try {
        return JSON.parse(data) as unknown;
      } catch {
        return data;
      }
    });
}

/** Runs the perimeter CLI in this process, capturing its output. */
export async function runPerimeter(args: string[], environment: Environment = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
  stderr.on("data", (chunk: Buffer) => (err += chunk.toString("utf8")));
  const io: CommandIo = {
    stdout,
    stderr,
    stdin: new PassThrough(),
    env: environment,
    cwd: process.cwd(),
    signal: new AbortController().signal,
    onReload: () => {},
  };
  const code = await runCli(args, io);
  return { code, stdout: out, stderr: err };
}

/** Waits until `check` holds, polling; bounded. */
export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  await pollUntil(() => (check() ? true : undefined), timeoutMs, "the condition", 10);
}
