// The record stage: every request's egress decision is one record, opened when the request arrives, filled in as the
// stages learn more (who the client is, the checked address, the address dialled, the TLS SNI), and finished exactly
// once with its outcome: counted in the metrics and committed to the audit log as one `egress-decision` event. The
// tunnel's and connection's `connection-close` events are built here too, so that every audit event the proxy
// writes has one shape, in one file.
import type net from "node:net";
import type { EgressDecision } from "./decide.ts";
import { STATUS, outcomeOf } from "./refusals.ts";
import type { Refusal, RefusalReason } from "./refusals.ts";
import type { ConnectionState, EgressProxyState } from "./state.ts";

/** One request's decision record; mutable while the request is decided, then finished once. */
export interface EgressDecisionRecord {
  /** Client name, `unknown` until (and unless) the decision identifies one. */
  client: string;
  readonly source: string;
  readonly method: string;
  /** As the client wrote it, then the decision's normalised host. */
  host: string;
  port: number;
  /** The checked address: the first of the name's, then the one dialled. */
  address: string | undefined;
  /** Every checked address of the name, when there is more than one: the proxy dials the first that answers. */
  addresses: readonly string[] | undefined;
  sni: string | undefined;
  /** Sources of the rules that admitted the request. */
  rules: readonly string[] | undefined;
  readonly startedAt: number;
  finished: boolean;
}

export type RecordOutcome = { readonly decision: "allow" } | { readonly decision: "deny" | "error"; readonly reason: RefusalReason; readonly detail?: string };

/** `then(true)` once the record is committed; `then(false)` when it could not be (the caller must then refuse). */
export type Committed = (ok: boolean) => void;

/** A commit nothing waits for: its failure is logged and counted by the recorder. */
function ignoreCommitted(): void {}

export function openRecord(source: string, method: string, host: string, port = 0): EgressDecisionRecord {
  return { client: "unknown", source, method, host, port, address: undefined, addresses: undefined, sni: undefined, rules: undefined, startedAt: performance.now(), finished: false };
}

/** The pure decision named the client and normalised the host. */
export function noteDecision(record: EgressDecisionRecord, decision: EgressDecision): void {
  record.client = decision.client;
  record.host = decision.host;
}

/** Admission checked the name's addresses: the first is named until a dial says which one answered. */
export function noteAddresses(record: EgressDecisionRecord, address: string | undefined, candidates: readonly { readonly address: string }[] = []): void {
  record.address = address;
  record.addresses = candidates.length > 1 ? candidates.map((candidate) => candidate.address) : undefined;
}

/**
 * Counts the outcome and commits the record. A second finish is a bug in a stage: it is logged, not written, so the
 * audit log keeps one decision per request.
 */
export function finishRecord(state: EgressProxyState, record: EgressDecisionRecord, outcome: RecordOutcome, then?: Committed): void {
  if (record.finished) {
    state.logger.error({ host: record.host, method: record.method, decision: outcome.decision }, "egress decision finished twice; the second outcome is not recorded");
    return;
  }
  record.finished = true;
  const reason = outcome.decision === "allow" ? "allowlisted" : outcome.reason;
  if (outcome.decision === "allow") state.allowedDecisions.inc();
  else state.metrics.decisions.inc({ decision: outcome.decision, reason });
  recordAudit(state, decisionEvent(record, outcome, reason), then);
}

/** Finishes the record with a refusal: deny (policy) or error (could not serve), as the reason says. */
export function finishRefused(state: EgressProxyState, record: EgressDecisionRecord, refusal: Refusal, then?: Committed): void {
  finishRecord(state, record, { decision: outcomeOf(refusal.reason), reason: refusal.reason, detail: refusal.message }, then);
}

/** The `egress-decision` audit event: the only place its fields are named. */
export function decisionEvent(record: EgressDecisionRecord, outcome: RecordOutcome, reason: string): Record<string, unknown> & { type: string } {
  return {
    type: "egress-decision",
    client: record.client,
    source: record.source,
    method: record.method,
    host: record.host,
    port: record.port,
    address: record.address ?? null,
    ...(record.addresses !== undefined ? { addresses: record.addresses } : {}),
    decision: outcome.decision,
    reason,
    status: outcome.decision === "allow" ? (record.method === "CONNECT" ? 200 : null) : STATUS[outcome.reason],
    ...(record.sni !== undefined ? { sni: record.sni } : {}),
    ...(record.rules !== undefined ? { rules: record.rules } : {}),
    ...(outcome.decision !== "allow" && outcome.detail !== undefined ? { detail: outcome.detail } : {}),
    durationMs: Math.round((performance.now() - record.startedAt) * 1000) / 1000,
  };
}

/** A closed tunnel: what it carried and why it ended. Nothing waits for it. */
export function recordTunnelClose(state: EgressProxyState, record: EgressDecisionRecord, reason: string, upstream: net.Socket, openedAt: number): void {
  const toUpstream = upstream.bytesWritten;
  const fromUpstream = upstream.bytesRead;
  state.metrics.bytes.inc({ direction: "upstream" }, toUpstream);
  state.metrics.bytes.inc({ direction: "downstream" }, fromUpstream);
  recordSoon(state, {
    type: "connection-close",
    kind: "tunnel",
    client: record.client,
    source: record.source,
    host: record.host,
    port: record.port,
    address: record.address ?? null,
    ...(record.sni !== undefined ? { sni: record.sni } : {}),
    reason,
    bytesToUpstream: toUpstream,
    bytesFromUpstream: fromUpstream,
    durationMs: Math.round(performance.now() - openedAt),
  });
}

/** A closed client connection that carried plain-HTTP requests: its hosts, request count and upstream failures. */
export function recordConnectionClose(state: EgressProxyState, connection: ConnectionState, socket: net.Socket): void {
  state.metrics.bytes.inc({ direction: "upstream" }, socket.bytesRead);
  state.metrics.bytes.inc({ direction: "downstream" }, socket.bytesWritten);
  recordSoon(state, {
    type: "connection-close",
    kind: "http",
    client: connection.client,
    source: connection.source,
    hosts: [...connection.hosts],
    requests: connection.requests,
    upstreamErrors: connection.upstreamErrors,
    reason: "closed",
    bytesToUpstream: socket.bytesRead,
    bytesFromUpstream: socket.bytesWritten,
    durationMs: Math.round(performance.now() - connection.startedAt),
  });
}

/**
 * Records an audit event; `then(true)` once it is committed, `then(false)` when it could not be (the recorder has
 * logged the whole record and counted it). With group commit `then` runs at the end of this event-loop turn,
 * otherwise at once. Without an audit log the event goes to the operational log (never dropped).
 */
function recordAudit(state: EgressProxyState, event: Record<string, unknown> & { type: string }, then?: Committed): void {
  if (state.recorder === undefined) {
    state.logger.info({ audit: { component: "egress-proxy", ...event } }, event.type);
    then?.(true);
  } else if (then === undefined) state.recorder.commit(event, ignoreCommitted);
  else state.recorder.commit(event, (error) => then(error === null));
}

/** A record nothing waits for and no request depends on: it rides with the next commit. */
function recordSoon(state: EgressProxyState, event: Record<string, unknown> & { type: string }): void {
  if (state.recorder === undefined) state.logger.info({ audit: { component: "egress-proxy", ...event } }, event.type);
  else state.recorder.soon(event);
}
