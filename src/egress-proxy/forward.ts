// The plain-HTTP stage (absolute-form requests): check the request (http-target.ts), decide, admit, then one
// exchange with the origin on a pooled or new connection to a checked address (upstream.ts). The decision record is
// committed before any byte of the answer reaches the client; with group commit the request goes out while it
// commits (see mayForwardWhileCommitting), otherwise after.
import type http from "node:http";
import type net from "node:net";
import type { CheckedAddress } from "../net/index.ts";
import { admit } from "./admit.ts";
import { decide } from "./decide.ts";
import { dialChecked, formatAuthority } from "./dial.ts";
import type { Dialled } from "./dial.ts";
import type { ResponseHead } from "./http1.ts";
import { headerValues, parseHttpTarget, responseHeaders, upstreamRequestHead } from "./http-target.ts";
import type { BodyFraming, HttpTarget } from "./http-target.ts";
import { finishRecord, finishRefused, noteAddresses, noteDecision, openRecord } from "./record.ts";
import type { EgressDecisionRecord } from "./record.ts";
import { AUDIT_UNAVAILABLE, keepsConnection, respondRefusal, upstreamFailure } from "./refusals.ts";
import type { Refusal, RefusalReason } from "./refusals.ts";
import { clientKey, mayForwardWhileCommitting } from "./state.ts";
import type { ConnectionState, EgressProxyState } from "./state.ts";
import { exchange } from "./upstream.ts";
import type { Exchange, ExchangeOptions } from "./upstream.ts";

/** Largest response head accepted from an origin (Node's own client allows 16 KiB). */
const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

const ignore = () => {};

/** One admitted plain-HTTP request on its way to the origin and back. */
interface ForwardContext {
  readonly state: EgressProxyState;
  readonly request: http.IncomingMessage;
  readonly response: http.ServerResponse;
  /** Expect: 100-continue: the 100 is sent once the decision is committed, so a refused upload is never read. */
  readonly expectsContinue: boolean;
  readonly record: EgressDecisionRecord;
  readonly connection: ConnectionState | undefined;
  readonly target: HttpTarget;
  readonly candidates: readonly CheckedAddress[];
  /**
   * Pooled connections are the client's own: unidentified clients are told apart by source address (as for rate
   * limits). A connection is pooled under the address it is open to, and taken for any address the name checks out
   * to now.
   */
  readonly poolPrefix: string;
  readonly head: string;
  readonly body: BodyFraming;
  readonly lifetimeTimer: NodeJS.Timeout;
  /** The exchange is over (answered, failed or abandoned): nothing more is sent or written. */
  finished: boolean;
  current: Exchange | undefined;
  /**
   * The response head is written with the first body bytes or at the end (Node would not send it earlier anyway):
   * until then a body that turns out malformed at once, or never comes, is still answered with a 502 or 504 instead
   * of a bare reset.
   */
  pendingHead: ResponseHead | undefined;
  /** Whether the decision record has committed; until then nothing reaches the client. */
  committed: boolean;
  /** A failure that came before the commit, answered once it is done. */
  answerAfterCommit: (() => void) | undefined;
}

export async function handleHttp(state: EgressProxyState, request: http.IncomingMessage, response: http.ServerResponse, expectsContinue = false): Promise<void> {
  const socket = request.socket;
  const connection = state.connections.get(socket);
  const source = socket.remoteAddress ?? "unix";
  if (connection !== undefined) connection.requests += 1;
  const record = openRecord(source, request.method ?? "", request.url ?? "");
  const refuse = (refusal: Refusal) => {
    finishRefused(state, record, refusal);
    respondRefusal(response, refusal, keepsConnection(refusal.reason));
  };
  const parsed = parseHttpTarget(request, state.viaToken);
  if (!parsed.ok) return refuse(parsed.refusal);
  const target = parsed.target;
  record.port = target.port;
  const decision = decide({ kind: "http", host: target.host, port: target.port, sourceAddress: source, proxyAuthorization: request.headers["proxy-authorization"] }, state.effective);
  noteDecision(record, decision);
  if (connection !== undefined) {
    connection.client = decision.client;
    if (connection.hosts.size < 32) connection.hosts.add(formatAuthority(decision.host, target.port));
  }
  const admitted = await admit(state, decision, source, "http");
  if (!admitted.ok) {
    record.address = admitted.address;
    return refuse(admitted.refusal);
  }
  if (response.destroyed) return;
  noteAddresses(record, admitted.address, admitted.candidates);
  record.rules = decision.allow ? decision.rules : [];
  const { head, body } = upstreamRequestHead(request, target.url, state.viaToken);
  const context: ForwardContext = {
    state,
    request,
    response,
    expectsContinue,
    record,
    connection,
    target,
    candidates: admitted.candidates,
    poolPrefix: `${clientKey(decision.client, source)}\0`,
    head,
    body,
    lifetimeTimer: setTimeout(() => failForward(context, "upstream-timeout", `the exchange with ${target.url.host} outlived ${state.effective.limits.tunnelLifetimeSeconds} s`), state.effective.limits.tunnelLifetimeSeconds * 1000),
    finished: false,
    current: undefined,
    pendingHead: undefined,
    committed: false,
    answerAfterCommit: undefined,
  };
  context.lifetimeTimer.unref();
  response.on("close", () => {
    clearTimeout(context.lifetimeTimer);
    if (!response.writableFinished && !context.finished) {
      context.finished = true;
      context.current?.abort();
    }
  });
  response.on("drain", () => context.current?.resume());
  forward(context);
}

/**
 * Either the request goes out while its decision record commits (the answer is read only after the commit), or
 * (auditBeforeForwarding, a failing log, or a client waiting for 100 Continue) the decision is committed before a
 * byte reaches the origin; a new connection is opened meanwhile.
 * An idle connection is taken from the pool only when the request is sent on it, and never in the turn that read the
 * request: bytes an origin sent unasked on it in that turn have then been seen by the pool, which drops the
 * connection, instead of being read as this request's answer. (Until the exchange listens on it, the pool must: a
 * reset with no error listener would end the process.)
 */
function forward(context: ForwardContext): void {
  const { state, response, record } = context;
  const overlap = !context.expectsContinue && mayForwardWhileCommitting(state);
  const connecting = pooledAddress(context) !== undefined ? undefined : dialChecked(state, context.candidates, context.target.port);
  connecting?.catch(ignore);
  const sendRequest = () => {
    if (connecting !== undefined) return sendWhenConnected(context, connecting, false);
    if (context.finished) return;
    const address = pooledAddress(context);
    const idle = address === undefined ? undefined : state.upstreamPool.take(poolKey(context, address));
    return idle !== undefined && address !== undefined ? send(context, idle, address, true, false) : sendWhenConnected(context, undefined, false);
  };
  // Queued before the record: at the end of this turn the request goes out first, then the record commits.
  if (overlap) setImmediate(sendRequest);
  finishRecord(state, record, { decision: "allow" }, (ok) => {
    context.committed = true;
    state.setupTimers.http.observe((performance.now() - record.startedAt) / 1000);
    if (!ok) {
      context.finished = true;
      clearTimeout(context.lifetimeTimer);
      context.current?.abort();
      connecting?.then((connected) => connected.socket.destroy(), ignore);
      respondRefusal(response, AUDIT_UNAVAILABLE, false);
      return;
    }
    if (context.answerAfterCommit !== undefined) return context.answerAfterCommit();
    if (overlap) return context.current?.resume();
    if (context.expectsContinue && !response.destroyed) response.writeContinue();
    sendRequest();
  });
}

function poolKey(context: ForwardContext, address: string): string {
  return `${context.poolPrefix}${address}\0${context.target.port}`;
}

function pooledAddress(context: ForwardContext): string | undefined {
  return context.candidates.find((candidate) => context.state.upstreamPool.has(poolKey(context, candidate.address)))?.address;
}

/** Sends on the connection being opened, or (undefined) on a new one. */
function sendWhenConnected(context: ForwardContext, connecting: Promise<Dialled> | undefined, retried: boolean): void {
  (connecting ?? dialChecked(context.state, context.candidates, context.target.port)).then(
    (connected) => send(context, connected.socket, connected.address, false, retried),
    (error: unknown) => {
      const targets = (context.record.addresses ?? [context.record.address]).join(", ");
      failForward(context, upstreamFailure(error), `could not connect to ${context.target.url.host} (${targets}): ${(error as Error).message}`);
    },
  );
}

function send(context: ForwardContext, upstream: net.Socket, address: string, reused: boolean, retried: boolean): void {
  if (context.finished) {
    upstream.destroy();
    return;
  }
  // A new connection the origin closed while the decision was being committed: its events are already past.
  if (upstream.destroyed || !upstream.writable || upstream.readableEnded) {
    upstream.destroy();
    failForward(context, "upstream-reset", `${context.target.url.host} (${address}) closed the connection before the request was sent`);
    return;
  }
  const { request, state } = context;
  const started = exchange({
    socket: upstream,
    reused,
    method: request.method ?? "GET",
    head: context.head,
    body: context.body,
    request,
    maxHeadBytes: MAX_RESPONSE_HEAD_BYTES,
    idleTimeoutMs: state.effective.limits.idleTimeoutSeconds * 1000,
    ...answerHandlers(context, upstream, address, retried),
  });
  // The answer is read only once the decision is committed.
  if (!context.committed) started.pause();
  context.current = started;
}

/** What happens to the origin's answer: passed on to the client, the connection pooled or retried once. */
function answerHandlers(context: ForwardContext, upstream: net.Socket, address: string, retried: boolean): Pick<ExchangeOptions, "onInformational" | "onHead" | "onData" | "onEnd" | "onError"> {
  const { request, response, state, target } = context;
  return {
    onInformational: (interim) => {
      // 103 Early Hints is passed on; 100 was answered by us (checkContinue), 102 is obsolete.
      if (interim.status !== 103 || request.httpVersionMinor === 0) return;
      const links = headerValues(interim, "link");
      if (links.length === 0) return;
      // Node refuses Link values it cannot validate (even a valid comma-separated list); thrown from here it would
      // be uncaught in the upstream socket's data handler and end the process. Hints are optional: dropped.
      try {
        response.writeEarlyHints({ link: links });
      } catch (error) {
        state.logger.debug({ err: error, host: target.url.host }, "103 Early Hints not passed on");
      }
    },
    onHead: (responseHead) => {
      context.pendingHead = responseHead;
    },
    onData: (data) => (writePendingHead(context) ? response.write(data) : true),
    onEnd: (reusable) => {
      if (!writePendingHead(context)) {
        upstream.destroy();
        return;
      }
      context.finished = true;
      clearTimeout(context.lifetimeTimer);
      if (reusable) state.upstreamPool.give(poolKey(context, address), upstream);
      response.end();
    },
    onError: (error, responseStarted) => {
      // A pooled connection the origin had closed: try once more on a new one, if nothing can be repeated twice.
      if (error.retryable && !retried && !responseStarted && !context.finished) {
        context.current = undefined;
        sendWhenConnected(context, undefined, true);
        return;
      }
      failForward(context, upstreamFailure(error), `${target.url.host} (${address}): ${error.message}`);
    },
  };
}

function writePendingHead(context: ForwardContext): boolean {
  const head = context.pendingHead;
  if (head === undefined) return true;
  context.pendingHead = undefined;
  try {
    context.response.writeHead(head.status, head.reason, responseHeaders(head, context.state.viaToken));
    return true;
  } catch (error) {
    failForward(context, "upstream-error", `${context.target.url.host} sent a response head this proxy cannot pass on: ${(error as Error).message}`);
    return false;
  }
}

/**
 * Ends an allowed exchange that could not be completed. Its decision is already recorded (allow); the failure is
 * counted on the connection's close record and answered with a 502/504, or, once the answer is under way, by cutting
 * it. Nothing is answered before the decision's commit.
 */
function failForward(context: ForwardContext, reason: RefusalReason, message: string): void {
  if (context.finished) return;
  context.finished = true;
  context.current?.abort();
  if (context.connection !== undefined) context.connection.upstreamErrors += 1;
  const { response } = context;
  const answer = () => {
    if (!response.headersSent) respondRefusal(response, { reason, message }, false);
    else {
      // A response under way can only be cut short. Reset, not closed: a close-delimited response (to an HTTP/1.0
      // client) would otherwise end in a clean close and read as complete.
      if (response.socket !== null && !response.socket.destroyed) response.socket.resetAndDestroy();
      response.destroy();
    }
  };
  if (context.committed) answer();
  else context.answerAfterCommit = answer;
}
