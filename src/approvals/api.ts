// The approvals admin API: list and decide requests over HTTP with the admin bearer token. Mounted by mcp-guard on
// its admin listener (never the agent's), shaped for the CLI today and a dashboard or chat bot later:
//   GET  /v1/approvals[?status=pending&kind=tool-call]   → { approvals: [...] }
//   GET  /v1/approvals/ID                                → the approval
//   POST /v1/approvals/ID/approve  { reason?, approver?, channel? } → the approval (still pending when it needs more people)
//   POST /v1/approvals/ID/deny     { reason?, approver?, channel? } → the decided approval
// channel is "cli", "dashboard" or "api" (the default), recorded with the decision; "telegram" is the approver bot's
// alone. For the two-person rule every decision through this API counts as one person, the token's principal,
// whatever approver name is given: one token holder cannot approve twice under two names.
// Errors are JSON { error: { code, message } }: 401 no/bad token, 404 unknown id, 409 not pending or already
// approved by this principal, 400 bad body,
// 503 when the decision cannot be audited (it is then not applied).
import type { IncomingMessage, ServerResponse } from "node:http";
import { sendJson, sendJsonError } from "../shared/index.ts";
import { ApprovalStateError } from "./store.ts";
import type { ApprovalChannel, ApprovalKind, ApprovalStatus, ApprovalStore } from "./store.ts";

export interface ApprovalsApiOptions {
  store: ApprovalStore;
  /** Returns the name of the principal holding this bearer token, or undefined (the agent's token must not pass). */
  authenticate: (authorization: string | undefined) => string | undefined;
  onDecision?: (event: { id: string; decision: "approve" | "deny"; approver: string }) => void;
}

const STATUSES: readonly ApprovalStatus[] = ["pending", "approved", "denied", "expired", "used"];
const KINDS: readonly ApprovalKind[] = ["tool-call", "tool-definition"];
const MAX_BODY = 16 * 1024;
const API_CHANNELS: readonly ApprovalChannel[] = ["api", "cli", "dashboard"];



async function readJson(request: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new RangeError(`body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  return text === "" ? {} : (JSON.parse(text) as unknown);
}

/** Handles /v1/approvals routes; returns false for any other path so the caller can route it elsewhere. */
export function createApprovalsApi(options: ApprovalsApiOptions): (request: IncomingMessage, response: ServerResponse) => Promise<boolean> {
  const { store } = options;
  return async (request, response) => {
    const url = new URL(request.url ?? "/", "http://admin.invalid");
    if (url.pathname !== "/v1/approvals" && !url.pathname.startsWith("/v1/approvals/")) return false;
    const principal = options.authenticate(request.headers.authorization);
    if (principal === undefined) {
      sendJsonError(response, 401, "unauthorized", "the approvals API needs the admin bearer token (mcp.admin.tokenSecret); agent tokens are not accepted here", {
        "www-authenticate": 'Bearer realm="perimeter-admin"',
      });
      return true;
    }
    const rest = url.pathname.slice("/v1/approvals".length).split("/").filter((part) => part !== "");
    try {
      if (rest.length === 0) {
        if (request.method !== "GET") return (sendJsonError(response, 405, "method-not-allowed", "use GET to list approvals", { allow: "GET" }), true);
        const status = url.searchParams.get("status") ?? undefined;
        const kind = url.searchParams.get("kind") ?? undefined;
        if (status !== undefined && !STATUSES.includes(status as ApprovalStatus)) return (sendJsonError(response, 400, "bad-request", `status must be one of ${STATUSES.join(", ")}`), true);
        if (kind !== undefined && !KINDS.includes(kind as ApprovalKind)) return (sendJsonError(response, 400, "bad-request", `kind must be one of ${KINDS.join(", ")}`), true);
        const limit = Number(url.searchParams.get("limit") ?? "500");
        sendJson(response, 200, {
          approvals: store.list({ ...(status === undefined ? {} : { status: status as ApprovalStatus }), ...(kind === undefined ? {} : { kind: kind as ApprovalKind }), limit: Number.isFinite(limit) ? limit : 500 }),
        });
        return true;
      }
      const [id, action, extra] = rest;
      if (id === undefined || extra !== undefined || !/^[a-z0-9]{1,40}$/.test(id)) return (sendJsonError(response, 404, "not-found", "no such route"), true);
      if (action === undefined) {
        if (request.method !== "GET") return (sendJsonError(response, 405, "method-not-allowed", "use GET", { allow: "GET" }), true);
        const approval = store.get(id);
        if (approval === undefined) return (sendJsonError(response, 404, "not-found", `no approval request ${id}`), true);
        sendJson(response, 200, approval);
        return true;
      }
      if (action !== "approve" && action !== "deny") return (sendJsonError(response, 404, "not-found", "no such route (use /approve or /deny)"), true);
      if (request.method !== "POST") return (sendJsonError(response, 405, "method-not-allowed", "use POST", { allow: "POST" }), true);
      let body: unknown;
      try {
        body = await readJson(request);
      } catch (error) {
        return (sendJsonError(response, 400, "bad-request", `the body must be a JSON object with optional reason and approver (${(error as Error).message})`), true);
      }
      if (body === null || typeof body !== "object" || Array.isArray(body)) return (sendJsonError(response, 400, "bad-request", "the body must be a JSON object"), true);
      const { reason, approver, channel } = body as { reason?: unknown; approver?: unknown; channel?: unknown };
      if ((reason !== undefined && typeof reason !== "string") || (approver !== undefined && typeof approver !== "string")) {
        return (sendJsonError(response, 400, "bad-request", "reason and approver must be strings"), true);
      }
      if (channel !== undefined && !API_CHANNELS.includes(channel as ApprovalChannel)) {
        return (sendJsonError(response, 400, "bad-request", `channel must be one of ${API_CHANNELS.join(", ")} (telegram decisions come from the approver bot only)`), true);
      }
      const cleanApprover = typeof approver === "string" ? approver.replace(/[^\w.@+-]/g, "").slice(0, 64) : "";
      // The token proves the principal; the name the human gives is recorded beside it, not instead of it.
      const who = cleanApprover === "" ? principal : `${principal}:${cleanApprover}`;
      const decided = store.decide(id, {
        decision: action,
        approver: who,
        identity: principal,
        channel: (channel as ApprovalChannel | undefined) ?? "api",
        ...(typeof reason === "string" && reason !== "" ? { reason: reason.slice(0, 500) } : {}),
      });
      options.onDecision?.({ id, decision: action, approver: who });
      sendJson(response, 200, decided);
      return true;
    } catch (error) {
      if (error instanceof ApprovalStateError) {
        sendJsonError(response, error.code === "not-found" ? 404 : 409, error.code, error.message);
      } else {
        // Most likely the audit log: the decision was not applied because it could not be recorded.
        sendJsonError(response, 503, "not-recorded", `the decision was not applied: ${(error as Error).message}`);
      }
      return true;
    }
  };
}
