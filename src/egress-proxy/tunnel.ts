// The CONNECT stage: decide, admit, dial the checked address, and for a rule that requires it (port 443) read the
// TLS ClientHello and compare its SNI with the CONNECT host before anything reaches the origin; the decision record
// is committed before any byte comes back, then relay.ts carries the tunnel.
import type http from "node:http";
import type net from "node:net";
import { normalizeHostname, splitHostPort } from "../config/index.ts";
import { admit } from "./admit.ts";
import { TLS_ACCESS_DENIED_ALERT, createClientHelloReader } from "./client-hello.ts";
import { decide } from "./decide.ts";
import { dialChecked } from "./dial.ts";
import { duplicateHeader } from "./http-target.ts";
import { finishRecord, finishRefused, noteAddresses, noteDecision, openRecord } from "./record.ts";
import type { EgressDecisionRecord } from "./record.ts";
import { createUpstreamReader, relay } from "./relay.ts";
import type { UpstreamReader } from "./relay.ts";
import { AUDIT_UNAVAILABLE, refuseRaw, upstreamFailure } from "./refusals.ts";
import type { Refusal, RefusalReason } from "./refusals.ts";
import { mayForwardWhileCommitting } from "./state.ts";
import type { EgressProxyState } from "./state.ts";

const EMPTY = Buffer.alloc(0);

/** One CONNECT after its upstream is open: what the SNI check and the relay need. */
interface TunnelContext {
  readonly state: EgressProxyState;
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  readonly reader: UpstreamReader;
  readonly record: EgressDecisionRecord;
  /** Gives the tunnel slot back; idempotent. */
  readonly release: () => void;
}

export async function handleConnect(state: EgressProxyState, request: http.IncomingMessage, client: net.Socket, head: Buffer): Promise<void> {
  const connection = state.connections.get(client);
  if (connection !== undefined) connection.tunnel = true;
  const source = client.remoteAddress ?? "unix";
  client.on("error", () => client.destroy());
  const target = splitHostPort(request.url ?? "");
  const record = openRecord(source, "CONNECT", request.url ?? "", target?.port ?? 0);
  const refuse = (refusal: Refusal) => {
    finishRefused(state, record, refusal);
    refuseRaw(client, refusal);
  };
  if (target === undefined) return refuse({ reason: "bad-request", message: `CONNECT needs host:port (e.g. CONNECT api.example.com:443), not "${String(request.url).slice(0, 100)}"` });
  const duplicate = duplicateHeader(request);
  if (duplicate !== undefined) return refuse({ reason: "duplicate-header", message: `the ${duplicate} header appears more than once` });

  const decision = decide({ kind: "connect", host: target.host, port: target.port, sourceAddress: source, proxyAuthorization: request.headers["proxy-authorization"] }, state.effective);
  noteDecision(record, decision);
  const admitted = await admit(state, decision, source, "connect");
  if (!admitted.ok) {
    record.address = admitted.address;
    return refuse(admitted.refusal);
  }
  const release = admitted.release ?? (() => {});
  if (client.destroyed) return release();
  noteAddresses(record, admitted.address, admitted.candidates);

  let upstream: net.Socket;
  const reader = createUpstreamReader(state.firstReadBuffer);
  try {
    const dialled = await dialChecked(state, admitted.candidates, target.port, reader.onread);
    upstream = dialled.socket;
    // The tunnel's records name the address it was actually opened to.
    record.address = dialled.address;
  } catch (error) {
    release();
    return refuse({ reason: upstreamFailure(error), message: `could not connect to ${decision.host}:${target.port} (${(record.addresses ?? [admitted.address]).join(", ")}): ${(error as Error).message}` });
  }
  record.rules = decision.allow ? decision.rules : [];
  state.setupTimers.connect.observe((performance.now() - record.startedAt) / 1000);
  if (client.destroyed) {
    upstream.destroy();
    return release();
  }
  const context: TunnelContext = { state, client, upstream, reader, record, release };
  if (decision.allow && decision.requireSni && target.port === 443) {
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    return peekSni(context, head);
  }
  // Until the tunnel is relayed: nothing read from the client is lost, an upstream error is seen via `destroyed`.
  client.pause();
  finishRecord(state, record, { decision: "allow" }, (ok) => {
    if (!ok || client.destroyed || upstream.destroyed || upstream.readableEnded) {
      upstream.destroy();
      release();
      if (!ok) refuseRaw(client, AUDIT_UNAVAILABLE);
      else if (!client.destroyed) refuseRaw(client, { reason: "upstream-reset", message: `${decision.host}:${target.port} closed the connection at once` });
      return;
    }
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    relay(state, client, upstream, reader, head, record, release);
  });
}

/** Reads the ClientHello before anything reaches the origin; refuses a missing or different SNI. */
function peekSni(context: TunnelContext, head: Buffer): void {
  const { state, client, upstream, record, release } = context;
  const hello = createClientHelloReader();
  let settled = false;
  const refuseTls = (reason: RefusalReason, detail: string, sni?: string) => {
    settled = true;
    cleanup();
    record.sni = sni;
    finishRecord(state, record, { decision: "deny", reason, detail });
    upstream.destroy();
    release();
    // The 200 is already sent: a TLS alert is the only way left to tell the client.
    if (reason === "not-tls") client.destroy();
    else client.end(TLS_ACCESS_DENIED_ALERT);
    setTimeout(() => client.destroy(), 1000).unref();
  };
  const timeoutSeconds = state.effective.limits.headerTimeoutSeconds;
  const timer = setTimeout(() => refuseTls("sni-timeout", `no complete TLS ClientHello within ${timeoutSeconds} s`), timeoutSeconds * 1000);
  const onClose = () => {
    if (settled) return;
    settled = true;
    cleanup();
    upstream.destroy();
    release();
  };
  const onData = (chunk: Buffer) => {
    if (settled) return;
    const result = hello.push(chunk);
    if (result.kind === "need-more") return;
    if (result.kind === "invalid") return refuseTls(result.reason === "not-tls" ? "not-tls" : "malformed-client-hello", result.detail);
    const sni = result.serverName === undefined ? undefined : normalizeHostname(result.serverName);
    if (result.serverName === undefined) return refuseTls("sni-missing", `the TLS ClientHello for ${record.host} carries no SNI; send SNI, or set requireSni: false on the rule for clients that cannot`);
    if (sni !== record.host) return refuseTls("sni-mismatch", `TLS SNI "${result.serverName}" differs from the CONNECT host ${record.host}`, result.serverName);
    settled = true;
    cleanup();
    record.sni = sni;
    allowTunnel(context, hello.buffered());
  };
  function cleanup() {
    clearTimeout(timer);
    client.off("data", onData);
    client.off("close", onClose);
    upstream.off("close", onClose);
    upstream.off("error", onClose);
  }
  client.on("close", onClose);
  upstream.on("close", onClose);
  upstream.on("error", onClose);
  client.on("data", onData);
  if (head.length > 0) onData(head);
}

/** The SNI matched: commit the decision, then relay, the ClientHello first. */
function allowTunnel(context: TunnelContext, clientHello: Buffer): void {
  const { state, client, upstream, reader, record, release } = context;
  // Until the tunnel is relayed: the client's next bytes wait in its socket, the origin's in the reader's pending
  // list; an upstream error shows as destroyed. The ClientHello may go ahead while the decision commits (see
  // mayForwardWhileCommitting): nothing comes back before the commit.
  client.pause();
  const helloSent = mayForwardWhileCommitting(state) && !upstream.destroyed;
  if (helloSent) upstream.write(clientHello);
  finishRecord(state, record, { decision: "allow" }, (ok) => {
    if (!ok || client.destroyed || upstream.destroyed || upstream.readableEnded) {
      upstream.destroy();
      release();
      if (!client.destroyed) client.end(TLS_ACCESS_DENIED_ALERT);
      return;
    }
    relay(state, client, upstream, reader, helloSent ? EMPTY : clientHello, record, release);
  });
}
