// The audit routes: /audit (one page of the index, filtered, keyset-paginated) and /events (a live tail as
// server-sent events), and the ingest tick that copies new records into the index and pushes them to open tails.
import type { AuditFilter, IndexedRecord } from "./audit-index.ts";
import { auditPage, recordRow } from "./pages.ts";
import { RequestError, SECURITY_HEADERS, pageContext, scrubSecrets, send } from "./state.ts";
import type { DashboardRequest, DashboardState, LiveTail } from "./state.ts";

const FILTER_FIELDS = ["component", "type", "decision", "agent", "tool", "host", "from", "to"] as const;
const MATCHED_FIELDS = ["component", "type", "decision", "agent", "tool", "host"] as const;
const RECORD_ID = /^\d{1,15}$/;

/** The filter in a query string: values of at most 256 characters, ISO times normalised, a numeric keyset cursor. */
export function readAuditFilter(query: URLSearchParams): AuditFilter {
  const filter: AuditFilter = {};
  for (const field of FILTER_FIELDS) {
    const value = query.get(field);
    if (value !== null && value !== "") {
      if (value.length > 256) throw new RequestError("bad_request", "bad-filter", `the ${field} filter is longer than 256 characters`);
      filter[field] = value;
    }
  }
  for (const field of ["from", "to"] as const) {
    if (filter[field] !== undefined && Number.isNaN(Date.parse(filter[field] as string))) throw new RequestError("bad_request", "bad-filter", `${field} must be an ISO time such as 2026-01-31T12:00:00Z`);
    if (filter[field] !== undefined) filter[field] = new Date(Date.parse(filter[field] as string)).toISOString();
  }
  const before = query.get("before");
  if (before !== null && before !== "") {
    if (!RECORD_ID.test(before)) throw new RequestError("bad_request", "bad-filter", "before must be a record id from the previous page");
    filter.before = Number(before);
  }
  return filter;
}

/** Whether a live tail with this filter shows the row (the same fields the index filters on). */
export function tailMatches(filter: AuditFilter, row: Pick<IndexedRecord, (typeof MATCHED_FIELDS)[number] | "time">): boolean {
  return (
    MATCHED_FIELDS.every((field) => filter[field] === undefined || filter[field] === row[field]) &&
    (filter.from === undefined || row.time >= filter.from) &&
    (filter.to === undefined || row.time < filter.to)
  );
}

export function auditRoute(state: DashboardState, context: DashboardRequest): void {
  const { index } = state;
  const started = performance.now();
  const filter = readAuditFilter(context.url.searchParams);
  const { rows, next } = index.query(filter, 50);
  const failing = index.sources().filter((source) => source.state !== "ok");
  const error = failing.length === 0 ? undefined : failing.map((source) => `${source.name}: ${"message" in source ? source.message : "unavailable"}`).join("; ");
  const data = { filter, rows, next, lastId: index.lastId(), components: index.distinct("component"), decisions: index.distinct("decision"), tookMs: Math.round(performance.now() - started) };
  send(state, context.response, 200, auditPage(pageContext(state, context.session), { ...data, ...(error === undefined ? {} : { error }) }));
}

/** Opens a live tail from `after` (or the newest record); the ingest tick writes to it until the client leaves. */
export function eventsRoute(state: DashboardState, context: DashboardRequest): void {
  const { request, response, url } = context;
  const filter = readAuditFilter(url.searchParams);
  const afterText = url.searchParams.get("after") ?? "";
  const after = RECORD_ID.test(afterText) ? Number(afterText) : state.index.lastId();
  response.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/event-stream", connection: "keep-alive" });
  response.write(": live tail of the audit log\n\n");
  const tail: LiveTail = { response, filter, after };
  state.tails.add(tail);
  request.socket.setTimeout(0);
  response.on("close", () => state.tails.delete(tail));
}

function pushToTails(state: DashboardState): void {
  const oldest = Math.min(...[...state.tails].map((tail) => tail.after));
  const rows = state.index.since(oldest, 200);
  for (const tail of state.tails) {
    const fresh = rows.filter((row) => row.id > tail.after);
    if (fresh.length === 0) continue;
    tail.after = fresh.at(-1)?.id ?? tail.after;
    for (const row of fresh.filter((candidate) => tailMatches(tail.filter, candidate))) {
      tail.response.write(`event: record\ndata: ${JSON.stringify({ id: row.id, component: row.component, type: row.type, html: scrubSecrets(state.secrets, recordRow(row).text) })}\n\n`);
    }
    if (fresh.some((row) => row.component === "approvals")) tail.response.write(`event: approvals\ndata: {}\n\n`);
  }
}

/** Indexes a bounded batch of new records and pushes them to the open tails; never throws (a failure is logged). */
export function ingestTick(state: DashboardState): void {
  if (state.ingesting) return;
  state.ingesting = true;
  try {
    // Bounded per tick, so a first indexing of a large log never holds the event loop for long; the next tick
    // continues where this one stopped.
    const { more } = state.index.ingest(2_000);
    if (state.tails.size > 0) pushToTails(state);
    if (more) setImmediate(() => ingestTick(state));
  } catch (error) {
    state.logger.error({ event: "index-failed", error: scrubSecrets(state.secrets, (error as Error).message) });
  } finally {
    state.ingesting = false;
  }
}

/** A comment line on every tail, so that no proxy in between closes an idle stream. */
export function keepTailsAlive(state: DashboardState): void {
  for (const tail of state.tails) tail.response.write(": keep-alive\n\n");
}
