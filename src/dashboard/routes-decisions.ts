// Routes that change state: the login form, the logout and an approval decision. Each passes the Origin check and
// reads a bounded urlencoded form; everything but the login also needs the session's CSRF token.
import { ApprovalsApiError } from "../approvals/index.ts";
import { errorPage, loginPage } from "./pages.ts";
import type { Session } from "./session.ts";
import { RequestError, pageContext, readForm, record, redirect, refuse, sameOrigin, send } from "./state.ts";
import type { DashboardRequest, DashboardState } from "./state.ts";

const DECIDE_PATH = /^\/approvals\/([a-z0-9]{1,40})\/decide$/;

function sessionCookie(state: DashboardState, session: Session): string {
  return `${state.cookieName}=${session.id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.round((session.expiresAt - session.createdAt) / 1000)}${state.secure ? "; Secure" : ""}`;
}

function clearCookie(state: DashboardState): string {
  return `${state.cookieName}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${state.secure ? "; Secure" : ""}`;
}

/** /login: the form, or a throttled, same-origin check of the admin token that starts a session. */
export async function handleLogin(state: DashboardState, context: DashboardRequest): Promise<void> {
  const { request, response, method } = context;
  if (method === "GET") return send(state, response, 200, loginPage());
  if (method !== "POST") return send(state, response, 405, "use GET or POST", { allow: "GET, POST", "content-type": "text/plain" });
  const anonymous = { ...context, session: undefined };
  if (!sameOrigin(state.secure, request)) return refuse(state, anonymous, 403, "cross-origin-login", "A login must come from this dashboard's own page.");
  if (!state.sessions.allowAttempt()) return refuse(state, anonymous, 429, "login-throttled", "Too many login attempts: wait a minute.");
  const token = (await readForm(request)).get("token") ?? "";
  if (!state.sessions.tokenMatches(token)) {
    record(state, "dashboard-login", { outcome: "refused", remote: request.socket.remoteAddress ?? null });
    return send(state, response, 401, loginPage("That is not the admin token."));
  }
  const created = state.sessions.create();
  record(state, "dashboard-login", { outcome: "ok", remote: request.socket.remoteAddress ?? null, expiresAt: new Date(created.expiresAt).toISOString() });
  return redirect(response, "/approvals", { "set-cookie": sessionCookie(state, created) });
}

/** A POST with a session: same origin, the CSRF token, then /logout or /approvals/ID/decide. */
export async function handleAction(state: DashboardState, context: DashboardRequest, session: Session): Promise<void> {
  const { request, response, path } = context;
  if (!sameOrigin(state.secure, request)) return refuse(state, context, 403, "cross-origin", "Refused: the request did not come from this dashboard (Origin).");
  const fields = await readForm(request);
  if (!state.sessions.csrfMatches(session, fields.get("csrf") ?? (request.headers["x-csrf-token"] as string | undefined))) {
    return refuse(state, context, 403, "csrf", "Refused: the form's CSRF token is missing or wrong. Reload the page and try again.");
  }
  if (path === "/logout") {
    state.sessions.destroy(session.id);
    return redirect(response, "/login", { "set-cookie": clearCookie(state) });
  }
  const decide = DECIDE_PATH.exec(path);
  if (decide !== null) return decideApproval(state, context, decide[1] as string, fields);
  throw new RequestError("not_found", "not-found", "no such action");
}

async function decideApproval(state: DashboardState, context: DashboardRequest, id: string, fields: URLSearchParams): Promise<void> {
  const decision = fields.get("decision");
  if (decision !== "approve" && decision !== "deny") throw new RequestError("bad_request", "bad-decision", "decision must be approve or deny");
  const reason = (fields.get("reason") ?? "").slice(0, 500);
  try {
    const decided = await state.options.approvals.decide(id, decision, { approver: "dashboard", ...(reason === "" ? {} : { reason }) });
    const back = decided.kind === "tool-definition" ? "/reviews" : "/approvals";
    return redirect(context.response, `${back}?decided=${encodeURIComponent(id)}&status=${decided.status}`);
  } catch (error) {
    const status = error instanceof ApprovalsApiError && error.status >= 400 ? error.status : 502;
    return send(state, context.response, status, errorPage(pageContext(state, context.session), "Not decided", `Request ${id} was not decided: ${(error as Error).message}`));
  }
}
