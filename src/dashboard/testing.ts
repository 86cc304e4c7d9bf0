// Test support for the dashboard (imported by its tests and bench only): a real mcp-guard with a real upstream and
// audit log, and the dashboard over the same database, both on loopback; a small cookie-keeping HTTP client.
import { join } from "node:path";
import { createApprovalsClient } from "../approvals/index.ts";
import type { Client } from "@modelcontextprotocol/client";
import { silentLogger } from "../shared/index.ts";
import { connectAgent, eventually, startGuard, startRecordingServer } from "../mcp-guard/testing.ts";
import type { RecordingServer, StartedGuard } from "../mcp-guard/testing.ts";
import { createAuditIndex } from "./audit-index.ts";
import type { AuditIndex } from "./audit-index.ts";
import { createChainMonitor } from "./chain.ts";
import type { ChainMonitor } from "./chain.ts";
import { readKeySpend } from "./llm-spend.ts";
import { createDashboard } from "./server.ts";
import type { Dashboard, DashboardOptions } from "./server.ts";

export const ENV = {
  PATH: process.env.PATH,
  HOME: "/tmp",
  PERIMETER_AGENT_TOKEN: "agent-token-dashboard-0123456789",
  PERIMETER_ADMIN_TOKEN: "admin-token-dashboard-abcdefghijkl",
  WEB_TOKEN: "upstream-web-credential-dash-7c2e41",
};

export function guardYaml(webUrl: string, timeoutSeconds = 60): string {
  return `
version: 1
name: t
mcp:
  pinning: { trustOnFirstUse: true }
  servers:
    web:
      url: ${webUrl}
      headers: { Authorization: "Bearer \${WEB_TOKEN}" }
      secrets: [WEB_TOKEN]
      tools: { allow: [echo, create_issue, describe-me], approve: [create_issue] }
approvals: { timeoutSeconds: ${timeoutSeconds} }
audit: { path: AUDIT_PATH }
`;
}

export interface Perimeter {
  web: RecordingServer;
  guard: StartedGuard;
  agent: Client;
  dashboard: Dashboard;
  index: AuditIndex;
  chain: ChainMonitor;
  base: string;
  close(): Promise<void>;
}

export async function startPerimeter(overrides: Partial<DashboardOptions> & { chainIntervalMs?: number; directory?: string } = {}): Promise<Perimeter> {
  const web = await startRecordingServer();
  const guard = await startGuard(guardYaml(web.url), ENV, overrides.directory === undefined ? {} : { directory: overrides.directory });
  await eventually(() => (guard.guard.upstream("web")?.state().state === "ready" ? true : undefined), 20_000, "the upstream ready");
  const agent = await connectAgent(guard.url, ENV.PERIMETER_AGENT_TOKEN, "2026-07-28");
  const sources = [{ name: "perimeter", path: guard.auditPath }];
  const index = createAuditIndex({ statePath: join(guard.directory, "dashboard.db"), sources });
  const chain = createChainMonitor({ sources, minIntervalMs: overrides.chainIntervalMs ?? 300 });
  const { chainIntervalMs: _interval, directory: _directory, ...options } = overrides;
  const dashboard = createDashboard({
    listen: "127.0.0.1:0",
    adminToken: ENV.PERIMETER_ADMIN_TOKEN,
    sessionMinutes: 60,
    approvals: createApprovalsClient({ baseUrl: guard.adminUrl, token: ENV.PERIMETER_ADMIN_TOKEN }),
    index,
    chain,
    health: { "mcp-guard": `${guard.adminUrl}/healthz` },
    keySpend: () => readKeySpend(sources),
    secrets: [ENV.WEB_TOKEN, ENV.PERIMETER_AGENT_TOKEN],
    audit: guard.audit,
    logger: silentLogger(),
    ingestIntervalMs: 100,
    ...options,
  });
  const address = await dashboard.listen();
  return {
    web,
    guard,
    agent,
    dashboard,
    index,
    chain,
    base: `http://127.0.0.1:${address.port}`,
    async close() {
      await dashboard.close();
      index.close();
      await agent.close();
      await guard.close();
      await web.close();
    },
  };
}

/** A browser-less client that keeps the session cookie and reads the CSRF token from pages. */
export class HttpSession {
  readonly base: string;
  cookie: string | undefined;
  constructor(base: string) {
    this.base = base;
  }
  async request(path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Headers; text: string }> {
    const response = await fetch(`${this.base}${path}`, {
      method: init.method ?? "GET",
      redirect: "manual",
      headers: { ...(this.cookie === undefined ? {} : { cookie: this.cookie }), ...(init.body === undefined ? {} : { "content-type": "application/x-www-form-urlencoded", origin: this.base }), ...init.headers },
      ...(init.body === undefined ? {} : { body: init.body }),
    });
    return { status: response.status, headers: response.headers, text: await response.text() };
  }
  async login(token: string): Promise<{ status: number; headers: Headers; text: string }> {
    const answer = await this.request("/login", { method: "POST", body: new URLSearchParams({ token }).toString() });
    const setCookie = answer.headers.get("set-cookie");
    if (answer.status === 303 && setCookie !== null) this.cookie = setCookie.split(";")[0];
    return answer;
  }
  async csrf(): Promise<string> {
    const page = await this.request("/approvals");
    const match = /data-csrf="([^"]+)"/.exec(page.text);
    if (match === null) throw new Error(`no CSRF token on the page (status ${page.status})`);
    return match[1] as string;
  }
}
