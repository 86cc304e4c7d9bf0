// Issue 19 item 1: the dashboard over a real mcp-guard (real upstream, real audit log). Each test names the
// requirement it proves; the attacks go through the dashboard's own HTTP interface.
import assert from "node:assert/strict";
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, test } from "node:test";
import type { Approval } from "../approvals/index.ts";
import { openAuditLog, readAuditRecords } from "../audit-log/index.ts";
import { silentLogger } from "../shared/index.ts";
import { eventually, resultText } from "../mcp-guard/testing.ts";
import { createApprovalsClient } from "../approvals/index.ts";
import { createAuditIndex } from "./audit-index.ts";
import { createChainMonitor } from "./chain.ts";
import { createDashboard } from "./server.ts";
import { ENV, HttpSession, startPerimeter } from "./testing.ts";
import type { Perimeter } from "./testing.ts";

const ADMIN = ENV.PERIMETER_ADMIN_TOKEN;

describe("dashboard over a real mcp-guard", { timeout: 180_000 }, () => {
  let perimeter: Perimeter;
  let operator: HttpSession;

  before(async () => {
    perimeter = await startPerimeter();
    operator = new HttpSession(perimeter.base);
    assert.equal((await operator.login(ADMIN)).status, 303);
  });
  after(async () => {
    await perimeter?.close();
  });

  const admin = createApprovalsClientFor(() => perimeter);
  const holdCall = async (title: string) => {
    const call = perimeter.agent.callTool({ name: "web__create_issue", arguments: { owner: "o", repo: "r", title } }, { timeout: 60_000 });
    call.catch(() => undefined);
    const request = await eventually(async () => (await admin().list({ status: "pending", kind: "tool-call" })).find((approval) => (approval.detail as { arguments?: { title?: string } }).arguments?.title === title), 10_000, "the held call");
    return { call, request };
  };

  test("without a session every page redirects to the login and every action is refused (401) without changing the request", async () => {
    const stranger = new HttpSession(perimeter.base);
    for (const path of ["/approvals", "/reviews", "/audit", "/egress", "/llm", "/health"]) {
      const answer = await stranger.request(path);
      assert.equal(answer.status, 303, path);
      assert.equal(answer.headers.get("location"), "/login");
    }
    assert.equal((await stranger.request("/events")).status, 401);
    assert.equal((await stranger.request("/chain.json")).status, 401);
    const { call, request } = await holdCall("no-session");
    const forged = await stranger.request(`/approvals/${request.id}/decide`, { method: "POST", body: "decision=approve&csrf=x" });
    assert.equal(forged.status, 401);
    const wrongCookie = new HttpSession(perimeter.base);
    wrongCookie.cookie = `perimeter-session=${"A".repeat(43)}`;
    assert.equal((await wrongCookie.request(`/approvals/${request.id}/decide`, { method: "POST", body: "decision=approve&csrf=x" })).status, 401);
    assert.equal((await admin().get(request.id)).status, "pending", "the request is unchanged");
    await admin().decide(request.id, "deny", { reason: "cleanup" });
    await call;
    const refusals = readAuditRecords(perimeter.guard.auditPath, { last: 200 }).filter((record) => record.component === "dashboard" && record.type === "dashboard-refusal");
    assert.ok(refusals.some((record) => record.data.reason === "no-session"), "the refusal is recorded");
    assert.ok(refusals.some((record) => record.data.reason === "bad-session"));
  });

  test("the admin token is exchanged for an HttpOnly, SameSite=Strict session cookie with an expiry; a wrong token is refused and recorded", async () => {
    const browser = new HttpSession(perimeter.base);
    const wrong = await browser.login("not-the-admin-token-at-all");
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("set-cookie"), null);
    const ok = await browser.login(ADMIN);
    const cookie = ok.headers.get("set-cookie") ?? "";
    assert.match(cookie, /^perimeter-session=[A-Za-z0-9_-]{43}; /);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    assert.match(cookie, /Max-Age=3600/);
    assert.doesNotMatch(cookie, /Secure/, "plain http on loopback: a Secure cookie would never come back");
    assert.ok(!cookie.includes(ADMIN), "the cookie is not the token");
    const logins = readAuditRecords(perimeter.guard.auditPath, { last: 200 }).filter((record) => record.type === "dashboard-login");
    assert.ok(logins.some((record) => record.data.outcome === "refused"));
    assert.ok(logins.some((record) => record.data.outcome === "ok"));
  });

  test("CSRF: a decision without the session's CSRF token, with a wrong one, or from another origin is refused (403), recorded, and changes nothing", async () => {
    const { call, request } = await holdCall("csrf");
    const csrf = await operator.csrf();
    const attempts: Array<{ body: string; headers: Record<string, string> }> = [
      { body: "decision=approve", headers: {} },
      { body: "decision=approve&csrf=wrong-token", headers: {} },
      { body: `decision=approve&csrf=${csrf}`, headers: { origin: "http://evil.example" } },
      { body: `decision=approve&csrf=${csrf}`, headers: { origin: "null" } },
      { body: `decision=approve&csrf=${csrf}`, headers: { origin: "", "sec-fetch-site": "cross-site" } },
    ];
    for (const attempt of attempts) {
      const answer = await operator.request(`/approvals/${request.id}/decide`, { method: "POST", body: attempt.body, headers: attempt.headers });
      assert.equal(answer.status, 403, JSON.stringify(attempt));
    }
    assert.equal((await admin().get(request.id)).status, "pending");
    const reasons = readAuditRecords(perimeter.guard.auditPath, { last: 300 }).filter((record) => record.type === "dashboard-refusal").map((record) => record.data.reason);
    assert.ok(reasons.includes("csrf") && reasons.includes("cross-origin"));
    await admin().decide(request.id, "deny");
    await call;
  });

  test("an oversized, mistyped or malformed body is refused (413, 415, 400) and never changes a request", async () => {
    const { call, request } = await holdCall("bodies");
    const csrf = await operator.csrf();
    assert.equal((await operator.request(`/approvals/${request.id}/decide`, { method: "POST", body: `decision=approve&csrf=${csrf}&reason=${"x".repeat(20_000)}` })).status, 413);
    assert.equal((await operator.request(`/approvals/${request.id}/decide`, { method: "POST", body: JSON.stringify({ decision: "approve", csrf }), headers: { "content-type": "application/json" } })).status, 415);
    assert.equal((await operator.request(`/approvals/${request.id}/decide`, { method: "POST", body: `decision=yes&csrf=${csrf}` })).status, 400);
    assert.equal((await operator.request(`/approvals/${request.id}/decide`, { method: "POST", body: `decision=approve&csrf=${csrf}&csrf=other` })).status, 303, "the first csrf field counts");
    const decided = await admin().get(request.id);
    assert.match(decided.status, /^(approved|used)$/);
    assert.equal(decided.approver, "admin:dashboard", "the decision names the dashboard as its channel");
    const result = await call;
    assert.equal(result.isError, undefined, resultText(result));
  });

  test("a decision on an already-decided or unknown request is refused (409, 404) by the admin API and shown", async () => {
    const { call, request } = await holdCall("twice");
    const csrf = await operator.csrf();
    assert.equal((await operator.request(`/approvals/${request.id}/decide`, { method: "POST", body: `decision=deny&csrf=${csrf}&reason=no` })).status, 303);
    const again = await operator.request(`/approvals/${request.id}/decide`, { method: "POST", body: `decision=approve&csrf=${csrf}` });
    assert.equal(again.status, 409);
    assert.match(again.text, /denied/);
    assert.equal((await operator.request(`/approvals/cnotarealid00000000/decide`, { method: "POST", body: `decision=approve&csrf=${csrf}` })).status, 404);
    assert.equal((await admin().get(request.id)).status, "denied");
    const result = await call;
    assert.match(resultText(result), /denied/);
    assert.ok(!perimeter.web.requests.some((entry) => entry.body.includes('"title":"twice"')), "the upstream never saw the denied call");
  });

  test("approving in the dashboard releases the agent's held call (the browser path's latency is measured)", async () => {
    const { call, request } = await holdCall("release");
    const page = await operator.request("/approvals");
    assert.match(page.text, new RegExp(`id="approval-${request.id}"`));
    assert.match(page.text, /&quot;title&quot;: &quot;release&quot;/, "the arguments are pretty-printed");
    const csrf = await operator.csrf();
    const started = performance.now();
    const answer = await operator.request(`/approvals/${request.id}/decide`, { method: "POST", body: `decision=approve&csrf=${csrf}&reason=looks+fine` });
    assert.equal(answer.status, 303);
    const result = await call;
    const releasedMs = performance.now() - started;
    assert.equal(result.isError, undefined, resultText(result));
    assert.match(resultText(result), /created issue in o\/r: release/);
    assert.ok(releasedMs < 250, `released ${releasedMs.toFixed(1)} ms after the click (target 250 ms)`);
    const decided = await operator.request("/approvals");
    assert.match(decided.text, new RegExp(`data-id="${request.id}" data-status="(approved|used)"`));
    assert.match(decided.text, /looks fine/);
  });

  test("every answer has a strict CSP and no page holds inline script, inline style or event handlers; assets are self-served", async () => {
    for (const path of ["/login", "/approvals", "/reviews", "/audit", "/egress", "/llm", "/health", "/static/app.js", "/static/app.css"]) {
      const answer = await (path === "/login" ? new HttpSession(perimeter.base) : operator).request(path);
      assert.equal(answer.status, 200, path);
      const csp = answer.headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'none'/, path);
      assert.match(csp, /script-src 'self'(;|$)/, path);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/, path);
      assert.equal(answer.headers.get("x-frame-options"), "DENY");
      if (answer.headers.get("content-type")?.startsWith("text/html") === true) {
        assert.doesNotMatch(answer.text, /<script(?![^>]*\bsrc="\/static\/)[^>]*>/i, `${path}: inline script`);
        assert.doesNotMatch(answer.text, /\sstyle=|<style|\son[a-z]+=/i, `${path}: inline style or handler`);
        assert.doesNotMatch(answer.text, /(src|href)="(https?:)?\/\//i, `${path}: a third-party origin`);
      }
    }
  });

  test("DNS rebinding: a Host other than the dashboard's is refused (403)", async () => {
    const port = new URL(perimeter.base).port;
    const status = await new Promise<number>((resolve, reject) => {
      const request = http.get({ host: "127.0.0.1", port, path: "/approvals", headers: { host: `attacker.example:${port}`, cookie: operator.cookie } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on("error", reject);
    });
    assert.equal(status, 403);
  });

  test("no secret value is ever rendered: a record holding the admin token or an upstream credential shows [REDACTED]; agent text is escaped and invisible characters are shown", async () => {
    perimeter.guard.audit.append({ component: "cli", type: "note-test", note: `token ${ADMIN} and ${ENV.WEB_TOKEN}`, agent: "<script>alert(1)</script>", name: "evil\u200btool" });
    const page = await eventually(async () => {
      const answer = await operator.request("/audit?type=note-test");
      return answer.text.includes("note-test</td>") ? answer.text : undefined;
    }, 5000, "the record indexed");
    assert.ok(!page.includes(ADMIN) && !page.includes(ENV.WEB_TOKEN), "no secret on the page");
    assert.match(page, /token \[REDACTED\] and \[REDACTED\]/);
    assert.ok(!page.includes("<script>alert(1)"), "agent text is escaped");
    assert.match(page, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(page, /evil<mark class="hidden-char"[^>]*>⟨U\+200B⟩<\/mark>tool/);
  });

  test("the audit log filters by component, decision, agent, tool, host and time, with keyset pagination that neither repeats nor skips", async () => {
    for (let index = 0; index < 130; index += 1) {
      perimeter.guard.audit.append({ component: "egress-proxy", type: "egress-decision", client: index % 2 === 0 ? "hermes" : "sandbox", host: `h${index % 5}.example`, decision: index % 3 === 0 ? "deny" : "allow", reason: "test" });
    }
    await eventually(() => (perimeter.index.query({ component: "egress-proxy" }, 500).rows.length >= 130 ? true : undefined), 5000, "indexed");
    const seen: number[] = [];
    let next = "";
    for (let pageNumber = 0; pageNumber < 10; pageNumber += 1) {
      const answer = await operator.request(`/audit?component=egress-proxy&agent=hermes${next === "" ? "" : `&before=${next}`}`);
      assert.equal(answer.status, 200);
      const ids = [...answer.text.matchAll(/<tr data-id="(\d+)"/g)].map((match) => Number(match[1]));
      assert.ok(ids.length > 0 || pageNumber > 0);
      seen.push(...ids);
      const older = /id="older" href="\/audit\?[^"]*before=(\d+)"/.exec(answer.text);
      if (older === null) break;
      next = older[1] as string;
    }
    assert.equal(seen.length, 65, "every hermes record exactly once");
    assert.equal(new Set(seen).size, seen.length);
    const denied = await operator.request("/audit?decision=deny&host=h0.example");
    const rows = [...denied.text.matchAll(/<tr data-id="\d+"[^>]*>(.*?)<\/tr>/gs)].map((match) => match[1] as string);
    assert.ok(rows.length > 0 && rows.every((row) => row.includes(">deny<") && row.includes("h0.example")));
    const future = await operator.request(`/audit?component=egress-proxy&from=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`);
    assert.doesNotMatch(future.text, /<tr data-id=/);
    assert.equal((await operator.request("/audit?from=yesterday")).status, 400);
    assert.equal((await operator.request(`/audit?host=${"x".repeat(300)}`)).status, 400);
    const egress = await operator.request("/egress");
    assert.match(egress.text, /Top refused hosts per client/);
    assert.match(egress.text, /<td>hermes<\/td><td>h0\.example<\/td><td>deny<\/td>/);
  });

  test("the health page probes every service", async () => {
    const answer = await operator.request("/health");
    assert.match(answer.text, /<tr class="health-ok"><td>mcp-guard<\/td>/);
  });

  test("logging out ends the session: the old cookie is refused", async () => {
    const browser = new HttpSession(perimeter.base);
    await browser.login(ADMIN);
    const csrf = await browser.csrf();
    const cookie = browser.cookie;
    assert.equal((await browser.request("/logout", { method: "POST", body: `csrf=${csrf}` })).status, 303);
    browser.cookie = cookie;
    assert.equal((await browser.request("/approvals")).status, 303);
  });
});

describe("dashboard on its own", { timeout: 60_000 }, () => {
  test("a session expires: after sessionMinutes the cookie no longer opens a page", async () => {
    const directory = mkdtempSync(join(tmpdir(), "dashboard-expiry-"));
    let clock = Date.now();
    const sources = [{ name: "perimeter", path: join(directory, "audit.db") }];
    const index = createAuditIndex({ statePath: join(directory, "dashboard.db"), sources });
    const dashboard = createDashboard({
      listen: "127.0.0.1:0",
      adminToken: ADMIN,
      sessionMinutes: 5,
      approvals: createApprovalsClient({ baseUrl: "http://127.0.0.1:9", token: ADMIN }),
      index,
      chain: createChainMonitor({ sources }),
      health: {},
      keySpend: () => ({ keys: [], errors: [] }),
      secrets: [],
      logger: silentLogger(),
      now: () => clock,
    });
    const { port } = await dashboard.listen();
    try {
      const browser = new HttpSession(`http://127.0.0.1:${port}`);
      assert.equal((await browser.login(ADMIN)).status, 303);
      const page = await browser.request("/approvals");
      assert.equal(page.status, 200);
      assert.match(page.text, /cannot reach the mcp-guard admin API/, "an unreachable guard is shown, not a crash");
      clock += 5 * 60_000 + 1;
      assert.equal((await browser.request("/approvals")).status, 303);
    } finally {
      await dashboard.close();
      index.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test("the dashboard survives its audit log missing, then locked by another process, and says so", async () => {
    const directory = mkdtempSync(join(tmpdir(), "dashboard-missing-"));
    const path = join(directory, "audit.db");
    const log = openAuditLog({ path });
    log.append({ component: "cli", type: "perimeter-start" });
    log.close();
    const sources = [{ name: "perimeter", path }];
    const index = createAuditIndex({ statePath: join(directory, "state", "dashboard.db"), sources });
    const chain = createChainMonitor({ sources, minIntervalMs: 100 });
    const dashboard = createDashboard({
      listen: "127.0.0.1:0",
      adminToken: ADMIN,
      sessionMinutes: 5,
      approvals: createApprovalsClient({ baseUrl: "http://127.0.0.1:9", token: ADMIN }),
      index,
      chain,
      health: {},
      keySpend: () => ({ keys: [], errors: [] }),
      secrets: [],
      logger: silentLogger(),
      ingestIntervalMs: 50,
    });
    const { port } = await dashboard.listen();
    try {
      const browser = new HttpSession(`http://127.0.0.1:${port}`);
      await browser.login(ADMIN);
      assert.match((await browser.request("/audit")).text, /perimeter-start/);
      renameSync(path, `${path}.moved`);
      const missing = await eventually(async () => {
        const answer = await browser.request("/audit");
        return answer.status === 200 && /audit log missing/.test(answer.text) ? answer.text : undefined;
      }, 5000, "the page to say the log is missing");
      assert.match(missing, /no audit log at/);
      assert.match(missing, /perimeter-start/, "what was indexed stays searchable");
      renameSync(`${path}.moved`, path);
      // Another process takes the file's lock and keeps it (exclusive locking mode, a write in progress).
      const holder = new DatabaseSync(path);
      holder.exec("PRAGMA locking_mode = EXCLUSIVE");
      holder.exec("BEGIN EXCLUSIVE");
      holder.exec("INSERT INTO audit_log_meta (key, value) VALUES ('lock-test', 'x')");
      try {
        const locked = await eventually(async () => {
          const answer = await browser.request("/audit");
          return answer.status === 200 && /audit log locked/.test(answer.text) ? answer.text : undefined;
        }, 5000, "the page to say the log is locked");
        assert.match(locked, /database is locked/);
        assert.equal((await browser.request("/health")).status, 200);
      } finally {
        holder.exec("ROLLBACK");
        holder.close();
      }
      await eventually(async () => ((await browser.request("/audit")).text.includes("audit log locked") ? undefined : true), 5000, "recovery");
    } finally {
      await dashboard.close();
      index.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

function createApprovalsClientFor(perimeter: () => Perimeter) {
  return () => createApprovalsClient({ baseUrl: perimeter().guard.adminUrl, token: ADMIN });
}

export type { Approval };
