// JSON answers of the admin-side HTTP APIs (approvals, the audit feed): never cached, length known, and a refusal
// answered before the request body was read never reads it (src/shared/refusal.ts).
import type { ServerResponse } from "node:http";
import { closeAfterAnswerIfBodyUnread } from "./refusal.ts";

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  closeAfterAnswerIfBodyUnread(response);
  response.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", "content-length": String(Buffer.byteLength(text)), ...headers });
  response.end(text);
}

/** `{ error: { code, message } }`, the error shape of every admin API. */
export function sendJsonError(response: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(response, status, { error: { code, message } }, headers);
}
