// The pages, rendered on the server from plain data. Nothing here reads a database or the network: the server
// gathers the data and these functions turn it into escaped HTML (html.ts), so a page can be tested from values.
import type { Approval } from "../approvals/index.ts";
import type { AuditFilter, EgressTop, FullRecord, SourceState } from "./audit-index.ts";
import type { ChainStatus } from "./chain.ts";
import type { SafeHtml} from "./html.ts";
import { html, prettyJson, visible } from "./html.ts";

export interface PageContext {
  csrf: string | undefined;
  chain: ChainStatus[];
  sources: SourceState[];
  now: number;
}

const NAV = [
  ["/approvals", "Approvals"],
  ["/reviews", "Tool reviews"],
  ["/audit", "Audit log"],
  ["/egress", "Egress"],
  ["/llm", "LLM spend"],
  ["/health", "Health"],
] as const;

export function chainBanner(chain: ChainStatus[], sources: SourceState[]): SafeHtml {
  const items = chain.map((status) => {
    switch (status.state) {
      case "verified":
        return html`<li class="chain ok" data-state="verified" data-source="${status.source}">${status.source}: chain verified up to record ${status.head.seq}${
          status.lastSigned === undefined ? html`, no signed checkpoint` : html`, last signed checkpoint at record ${status.lastSigned.seq} (${status.lastSigned.time})`
        } <small>checked ${status.checkedAt}</small></li>`;
      case "broken":
        return html`<li class="chain broken" data-state="broken" data-source="${status.source}"><strong>${status.source}: CHAIN BROKEN at record ${status.firstBrokenSeq}</strong>: ${status.reason} <small>checked ${status.checkedAt}</small></li>`;
      case "unavailable":
        return html`<li class="chain unavailable" data-state="unavailable" data-source="${status.source}">${status.source}: cannot verify: ${status.message}</li>`;
      default:
        return html`<li class="chain pending" data-state="pending" data-source="${status.source}">${status.source}: verifying…</li>`;
    }
  });
  const problems = sources
    .filter((source) => source.state !== "ok")
    .map((source) => html`<li class="chain unavailable" data-source-state="${source.state}">${source.name}: audit log ${source.state}: ${"message" in source ? source.message : ""}</li>`);
  return html`<ul id="chain-status" class="chain-list">${items}${problems}</ul>`;
}

export function layout(title: string, context: PageContext, body: SafeHtml, active = ""): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Perimeter</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body data-csrf="${context.csrf ?? ""}">
<header>
<span class="brand">Perimeter</span>
<nav>${NAV.map(([href, label]) => html`<a href="${href}"${href === active ? html` aria-current="page"` : ""}>${label}</a>`)}</nav>
${context.csrf === undefined ? "" : html`<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="${context.csrf}"><button>Log out</button></form>`}
</header>
${context.csrf === undefined ? "" : chainBanner(context.chain, context.sources)}
<main>
<h1>${title}</h1>
${body}
</main>
</body>
</html>
`;
}

export function loginPage(message?: string): SafeHtml {
  const context: PageContext = { csrf: undefined, chain: [], sources: [], now: Date.now() };
  return layout(
    "Log in",
    context,
    html`${message === undefined ? "" : html`<p class="error" role="alert">${message}</p>`}
<form method="post" action="/login" class="login">
<label>Admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button>Log in</button>
</form>
<p class="hint">The token is the value of mcp.admin.tokenSecret. It is exchanged for a session cookie and not kept in the browser.</p>`,
  );
}

function secondsLeft(approval: Approval, now: number): string {
  if (approval.expiresAt === undefined) return "no deadline";
  return `${Math.max(0, Math.round((Date.parse(approval.expiresAt) - now) / 1000))} s`;
}

function decisionForm(approval: Approval, csrf: string, approveLabel = "Approve", denyLabel = "Deny"): SafeHtml {
  return html`<form method="post" action="/approvals/${approval.id}/decide" class="decide">
<input type="hidden" name="csrf" value="${csrf}">
<label>Reason <input type="text" name="reason" maxlength="500" placeholder="optional"></label>
<button name="decision" value="approve" class="approve" data-id="${approval.id}">${approveLabel}</button>
<button name="decision" value="deny" class="deny" data-id="${approval.id}">${denyLabel}</button>
</form>`;
}

function callCard(approval: Approval, context: PageContext): SafeHtml {
  const detail = (approval.detail ?? {}) as Record<string, unknown>;
  const redactions = Array.isArray(detail.redactions) ? detail.redactions.map(String) : [];
  return html`<article class="approval" id="approval-${approval.id}" data-id="${approval.id}" data-kind="tool-call">
<h3><code>${visible(`${approval.server}__${approval.tool}`)}</code> <span class="muted">for agent</span> ${visible(approval.agent ?? "-")}</h3>
<dl>
<dt>Request</dt><dd><code>${approval.id}</code>, opened ${approval.createdAt}</dd>
<dt>Time left</dt><dd><time class="countdown" data-expires="${approval.expiresAt ?? ""}">${secondsLeft(approval, context.now)}</time></dd>
<dt>Definition</dt><dd><code title="sha256 of the tool definition this approval is bound to">${approval.definitionHash}</code></dd>
<dt>Arguments</dt><dd>sha256 <code>${approval.argumentsHash ?? "-"}</code>${typeof detail.argumentsBytes === "number" ? html`, ${detail.argumentsBytes} bytes` : ""}; ${
    redactions.length === 0 ? "nothing redacted" : html`redacted (you see [REDACTED], the upstream gets the value): ${redactions.map((path) => html`<code>${visible(path)}</code> `)}`
  }</dd>
</dl>
<pre class="arguments">${prettyJson(detail.arguments ?? {})}</pre>
${context.csrf === undefined ? "" : decisionForm(approval, context.csrf)}
</article>`;
}

function decidedTable(decided: Approval[]): SafeHtml {
  if (decided.length === 0) return html`<p class="muted">Nothing decided yet.</p>`;
  return html`<table class="decided"><thead><tr><th>Request</th><th>Kind</th><th>Tool</th><th>Agent</th><th>Outcome</th><th>By</th><th>When</th><th>Why</th></tr></thead><tbody>
${decided.map(
  (approval) =>
    html`<tr data-id="${approval.id}" data-status="${approval.status}"><td><code>${approval.id}</code></td><td>${approval.kind}</td><td><code>${visible(`${approval.server}__${approval.tool}`)}</code></td><td>${visible(approval.agent ?? "-")}</td><td class="status-${approval.status}">${approval.status}</td><td>${visible(approval.approver ?? "-")}</td><td>${approval.decidedAt ?? "-"}</td><td>${visible(approval.reason ?? "")}</td></tr>`,
)}
</tbody></table>`;
}

export function approvalsPage(context: PageContext, data: { pending: Approval[]; reviews: number; decided: Approval[]; error?: string; notice?: string }): SafeHtml {
  const calls = data.pending.filter((approval) => approval.kind === "tool-call");
  return layout(
    "Approvals",
    context,
    html`${data.notice === undefined ? "" : html`<p class="notice" role="status">${data.notice}</p>`}
${data.error === undefined ? "" : html`<p class="error" role="alert">${data.error}</p>`}
<section id="pending" data-live="approvals">
<h2>Held calls <span class="count">${calls.length}</span></h2>
${calls.length === 0 ? html`<p class="muted empty">No call is waiting.</p>` : calls.map((approval) => callCard(approval, context))}
${data.reviews > 0 ? html`<p><a href="/reviews">${data.reviews} tool definition${data.reviews === 1 ? "" : "s"} waiting for review</a></p>` : ""}
</section>
<section><h2>Decided</h2>${decidedTable(data.decided)}</section>`,
    "/approvals",
  );
}

interface Finding {
  field?: string;
  kind?: string;
  excerpt?: string;
}
interface Change {
  path?: string;
  before?: unknown;
  after?: unknown;
}

function flaggedPath(path: string, findings: Finding[]): boolean {
  return findings.some((finding) => typeof finding.field === "string" && (finding.field === path || finding.field.startsWith(`${path}.`) || finding.field.startsWith(`${path} `) || path.startsWith(finding.field)));
}

function reviewCard(approval: Approval, context: PageContext): SafeHtml {
  const detail = (approval.detail ?? {}) as Record<string, unknown>;
  const findings = (Array.isArray(detail.findings) ? detail.findings : []) as Finding[];
  const changes = (Array.isArray(detail.changes) ? detail.changes : []) as Change[];
  const changed = detail.change === "changed";
  const cell = (value: unknown) => (value === undefined ? html`<span class="muted">(absent)</span>` : html`<pre>${typeof value === "string" ? visible(value) : prettyJson(value)}</pre>`);
  return html`<article class="review" id="review-${approval.id}" data-id="${approval.id}" data-kind="tool-definition">
<h3><code>${visible(String(detail.exposedName ?? `${approval.server}__${approval.tool}`))}</code> — ${changed ? "changed definition" : "new definition"}</h3>
<dl><dt>Review</dt><dd><code>${approval.id}</code>, opened ${approval.createdAt}</dd><dt>Definition</dt><dd><code>${approval.definitionHash}</code>${
    changed ? html` (was <code>${String(detail.previousHash ?? "-")}</code>)` : ""
  }</dd></dl>
${
  findings.length === 0
    ? html`<p class="muted">No hidden-instruction finding.</p>`
    : html`<ul class="findings">${findings.map((finding) => html`<li class="finding"><strong>${finding.kind ?? "finding"}</strong> in <code>${visible(finding.field ?? "?")}</code>: <span class="excerpt">${visible(finding.excerpt ?? "")}</span></li>`)}</ul>`
}
${
  changed
    ? html`<table class="diff"><thead><tr><th>Field</th><th>Trusted before</th><th>Now</th></tr></thead><tbody>${changes.map(
        (change) => html`<tr class="${flaggedPath(change.path ?? "", findings) ? "flagged" : ""}"><td><code>${visible(change.path ?? "")}</code></td><td class="before">${cell(change.before)}</td><td class="after">${cell(change.after)}</td></tr>`,
      )}</tbody></table>`
    : html`<pre class="definition">${prettyJson(detail.definition ?? {})}</pre>`
}
${context.csrf === undefined || approval.status !== "pending" ? html`<p>Status: ${approval.status}</p>` : decisionForm(approval, context.csrf, "Trust this definition", "Reject")}
</article>`;
}

export function reviewsPage(context: PageContext, data: { pending: Approval[]; decided: Approval[]; error?: string }): SafeHtml {
  const reviews = data.pending.filter((approval) => approval.kind === "tool-definition");
  return layout(
    "Tool-definition reviews",
    context,
    html`${data.error === undefined ? "" : html`<p class="error" role="alert">${data.error}</p>`}
<p class="hint">A new or changed tool definition stays hidden from the agent until it is trusted here. Invisible characters are shown as <mark class="hidden-char">⟨U+XXXX⟩</mark>.</p>
<section data-live="approvals">${reviews.length === 0 ? html`<p class="muted empty">No definition is waiting.</p>` : reviews.map((approval) => reviewCard(approval, context))}</section>
<section><h2>Decided</h2>${decidedTable(data.decided)}</section>`,
    "/reviews",
  );
}

function filterQuery(filter: AuditFilter, before?: number): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filter)) if (key !== "before" && value !== undefined && value !== "") query.set(key, String(value));
  if (before !== undefined) query.set("before", String(before));
  return query.toString();
}

export function recordRow(record: FullRecord): SafeHtml {
  const refused = record.decision !== null && !["allow", "approved", "ok"].includes(record.decision);
  return html`<tr data-id="${record.id}" class="${refused ? "refused" : ""}"><td><code>${record.source}#${record.seq}</code></td><td><time>${record.time}</time></td><td>${record.component}</td><td>${visible(record.type)}</td><td class="decision">${visible(record.decision ?? "")}</td><td>${visible(record.agent ?? "")}</td><td>${visible(record.tool ?? "")}</td><td>${visible(record.host ?? "")}</td><td><details><summary>data</summary><pre>${record.data === undefined ? "(unavailable)" : prettyJson(record.data)}</pre></details></td></tr>`;
}

export function auditPage(context: PageContext, data: { filter: AuditFilter; rows: FullRecord[]; next: number | undefined; lastId: number; components: string[]; decisions: string[]; error?: string; tookMs: number }): SafeHtml {
  const { filter } = data;
  const input = (name: keyof AuditFilter, label: string, list?: string) =>
    html`<label>${label} <input name="${name}" value="${filter[name] === undefined ? "" : String(filter[name])}" maxlength="256"${list === undefined ? "" : html` list="${list}"`}></label>`;
  return layout(
    "Audit log",
    context,
    html`${data.error === undefined ? "" : html`<p class="error" role="alert">${data.error}</p>`}
<form method="get" action="/audit" class="filters">
${input("component", "Component", "components")}${input("decision", "Decision", "decisions")}${input("agent", "Agent/client")}${input("tool", "Tool")}${input("host", "Host")}${input("type", "Type")}
<label>From <input name="from" value="${filter.from ?? ""}" placeholder="2026-01-01T00:00:00Z"></label>
<label>To <input name="to" value="${filter.to ?? ""}" placeholder="ISO time"></label>
<button>Filter</button> <a href="/audit">clear</a>
<datalist id="components">${data.components.map((value) => html`<option value="${value}">`)}</datalist>
<datalist id="decisions">${data.decisions.map((value) => html`<option value="${value}">`)}</datalist>
</form>
<p class="muted">${data.rows.length} record${data.rows.length === 1 ? "" : "s"} (newest first, ${data.tookMs} ms)${
      filter.before === undefined ? html` · <span id="live" data-after="${data.lastId}" data-query="${filterQuery(filter)}">live tail on</span>` : ""
    }</p>
<table class="records"><thead><tr><th>Record</th><th>Time</th><th>Component</th><th>Type</th><th>Decision</th><th>Agent</th><th>Tool</th><th>Host</th><th></th></tr></thead>
<tbody id="records">${data.rows.map(recordRow)}</tbody></table>
${data.next === undefined ? html`<p class="muted">End of the log.</p>` : html`<p><a id="older" href="/audit?${filterQuery(filter, data.next)}">Older records →</a></p>`}`,
    "/audit",
  );
}

export function egressPage(context: PageContext, data: { allowed: EgressTop[]; refused: EgressTop[] }): SafeHtml {
  const table = (rows: EgressTop[], caption: string) =>
    rows.length === 0
      ? html`<p class="muted">No ${caption.toLowerCase()} yet.</p>`
      : html`<table class="egress"><caption>${caption}</caption><thead><tr><th>Client</th><th>Host</th><th>Decision</th><th>Requests</th><th>Last</th></tr></thead><tbody>${rows.map(
          (row) => html`<tr><td>${visible(row.client)}</td><td>${visible(row.host)}</td><td>${row.decision}</td><td>${row.count}</td><td>${row.lastTime}</td></tr>`,
        )}</tbody></table>`;
  return layout("Egress", context, html`${table(data.allowed, "Top allowed hosts per client")}${table(data.refused, "Top refused hosts per client")}`, "/egress");
}

export interface KeySpend {
  id: string;
  client: string;
  source: string;
  budget: { tokensPerDay?: number; tokensTotal?: number; costPerDay?: number; costTotal?: number };
  today: { tokens: number; cost: number };
  total: { tokens: number; cost: number; requests: number };
}

export function llmPage(context: PageContext, data: { keys: KeySpend[]; error?: string }): SafeHtml {
  const meter = (used: number, limit: number | undefined, unit: string) =>
    limit === undefined
      ? html`${round(used)} ${unit} <span class="muted">(no budget)</span>`
      : html`<meter min="0" max="${limit}" high="${limit * 0.8}" value="${Math.min(used, limit)}"></meter> ${round(used)} / ${limit} ${unit}${used >= limit ? html` <strong class="over">over budget</strong>` : ""}`;
  return layout(
    "LLM spend",
    context,
    html`${data.error === undefined ? "" : html`<p class="error" role="alert">${data.error}</p>`}
${
  data.keys.length === 0
    ? html`<p class="muted">No virtual key yet.</p>`
    : html`<table class="spend"><thead><tr><th>Client</th><th>Key</th><th>Tokens today</th><th>Tokens total</th><th>Cost today</th><th>Cost total</th><th>Requests</th></tr></thead><tbody>${data.keys.map(
        (key) =>
          html`<tr><td>${visible(key.client)}</td><td><code>${key.id}</code></td><td>${meter(key.today.tokens, key.budget.tokensPerDay, "tokens")}</td><td>${meter(key.total.tokens, key.budget.tokensTotal, "tokens")}</td><td>${meter(key.today.cost, key.budget.costPerDay, "")}</td><td>${meter(key.total.cost, key.budget.costTotal, "")}</td><td>${key.total.requests}</td></tr>`,
      )}</tbody></table>`
}`,
    "/llm",
  );
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(4);
}

export interface ServiceHealth {
  name: string;
  url: string;
  status: "ok" | "unhealthy" | "unreachable";
  code?: number;
  detail: string;
}

export function healthPage(context: PageContext, data: { services: ServiceHealth[] }): SafeHtml {
  return layout(
    "Health",
    context,
    html`<table class="health"><thead><tr><th>Service</th><th>Status</th><th>Probe</th><th>Answer</th></tr></thead><tbody>${data.services.map(
      (service) => html`<tr class="health-${service.status}"><td>${service.name}</td><td>${service.status}${service.code === undefined ? "" : html` (${service.code})`}</td><td><code>${service.url}</code></td><td><code>${visible(service.detail)}</code></td></tr>`,
    )}</tbody></table>
<h2>Audit logs</h2>
<table class="sources"><thead><tr><th>Log</th><th>State</th><th>Indexed records</th></tr></thead><tbody>${context.sources.map(
      (source) => html`<tr><td>${source.name}</td><td>${source.state}${"message" in source ? html`: ${source.message}` : ""}</td><td>${source.records}</td></tr>`,
    )}</tbody></table>`,
    "/health",
  );
}

export function errorPage(context: PageContext, title: string, message: string): SafeHtml {
  return layout(title, context, html`<p class="error" role="alert">${message}</p>`);
}
