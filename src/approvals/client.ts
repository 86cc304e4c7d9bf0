// A small client for the approvals admin API, used by `perimeter approvals` (and usable by a chat bot later).
import type { Approval, ApprovalKind, ApprovalStatus } from "./store.ts";

export class ApprovalsApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApprovalsApiError";
    this.status = status;
    this.code = code;
  }
}

export interface ApprovalsClient {
  list(filter?: { status?: ApprovalStatus; kind?: ApprovalKind }): Promise<Approval[]>;
  get(id: string): Promise<Approval>;
  decide(id: string, decision: "approve" | "deny", options?: { reason?: string; approver?: string; channel?: "api" | "cli" | "dashboard" }): Promise<Approval>;
}

export function createApprovalsClient(options: { baseUrl: string; token: string; timeoutMs?: number }): ApprovalsClient {
  const base = options.baseUrl.replace(/\/+$/, "");
  const call = async <T>(path: string, init: { method: string; body?: unknown }): Promise<T> => {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method: init.method,
        headers: { authorization: `Bearer ${options.token}`, ...(init.body === undefined ? {} : { "content-type": "application/json" }) },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
        redirect: "error",
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new ApprovalsApiError(0, "unreachable", `cannot reach the mcp-guard admin API at ${base} (${cause}); is perimeter serve mcp-guard running with this config?`);
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new ApprovalsApiError(response.status, "bad-response", `the admin API answered ${response.status} with something other than JSON`);
    }
    if (!response.ok) {
      const error = (body as { error?: { code?: string; message?: string } }).error;
      throw new ApprovalsApiError(response.status, error?.code ?? "error", error?.message ?? `HTTP ${response.status}`);
    }
    return body as T;
  };
  return {
    async list(filter = {}) {
      const query = new URLSearchParams();
      if (filter.status !== undefined) query.set("status", filter.status);
      if (filter.kind !== undefined) query.set("kind", filter.kind);
      const suffix = query.size === 0 ? "" : `?${query.toString()}`;
      return (await call<{ approvals: Approval[] }>(`/v1/approvals${suffix}`, { method: "GET" })).approvals;
    },
    get: (id) => call<Approval>(`/v1/approvals/${encodeURIComponent(id)}`, { method: "GET" }),
    decide: (id, decision, decideOptions = {}) => call<Approval>(`/v1/approvals/${encodeURIComponent(id)}/${decision}`, { method: "POST", body: decideOptions }),
  };
}
