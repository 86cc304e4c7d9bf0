// The relay stage of a CONNECT tunnel: bytes both ways between the client and the dialled origin, once the decision
// is committed, until either side closes, the tunnel idles out or outlives its lifetime; then its connection-close
// record. The origin side is read into a buffer of the tunnel's own (see createUpstreamReader).
import type net from "node:net";
import { recordTunnelClose } from "./record.ts";
import type { EgressDecisionRecord } from "./record.ts";
import { upstreamFailure } from "./refusals.ts";
import type { EgressProxyState, OpenTunnel } from "./state.ts";

/** Bytes one tunnel reads from its upstream at a time. */
const RELAY_BUFFER_BYTES = 64 * 1024;

export interface UpstreamReader {
  readonly onread: net.OnReadOpts;
  /** Starts delivering to the client (bytes that arrived before are delivered first). */
  start(client: net.Socket, upstream: net.Socket): void;
}

/**
 * Reads a tunnel's upstream into one buffer of its own and writes straight from it to the client, reading again only
 * once the write has completed. Streams would allocate a fresh 64 KiB Buffer per read, and on a heap the size of this
 * service the garbage collection that causes doubles the CPU per byte relayed. The tunnel's buffer is allocated at its
 * first byte, so an idle tunnel costs none; the very first read lands in a small buffer shared by the proxy and is
 * copied at once.
 */
export function createUpstreamReader(shared: Buffer): UpstreamReader {
  let own: Buffer | undefined;
  let handedOut = false;
  let target: net.Socket | undefined;
  let source: net.Socket | undefined;
  const pending: Buffer[] = [];
  const resume = (error?: Error | null) => {
    if ((error === undefined || error === null) && source !== undefined && !source.destroyed) source.resume();
  };
  return {
    onread: {
      buffer: () => {
        if (!handedOut) {
          handedOut = true;
          return shared;
        }
        own ??= Buffer.allocUnsafe(RELAY_BUFFER_BYTES);
        return own;
      },
      callback: (bytes, buffer) => {
        // The client is gone: nothing to deliver to, keep reading so that the upstream's end is seen.
        if (target?.destroyed === true) return true;
        if (buffer === shared || target === undefined) {
          const copy = Buffer.from(buffer.subarray(0, bytes));
          if (target === undefined) {
            pending.push(copy);
            return false;
          }
          if (target.write(copy)) return true;
          target.once("drain", () => resume());
          return false;
        }
        target.write(buffer.subarray(0, bytes), resume);
        return false;
      },
    },
    start(client, upstream) {
      target = client;
      source = upstream;
      for (const chunk of pending.splice(0)) client.write(chunk);
      upstream.resume();
    },
  };
}

/** Relays bytes both ways until either side closes, the tunnel idles out or outlives its lifetime. */
export function relay(state: EgressProxyState, client: net.Socket, upstream: net.Socket, upstreamReader: UpstreamReader, first: Buffer, record: EgressDecisionRecord, release: () => void): void {
  const opened = performance.now();
  const limits = state.effective.limits;
  state.metrics.openTunnels.inc();
  let done = false;
  let grace: NodeJS.Timeout | undefined;
  const tunnel: OpenTunnel = { client: record.client, finish };
  state.tunnels.add(tunnel);
  const lifetime = setTimeout(() => finish("lifetime-exceeded"), limits.tunnelLifetimeSeconds * 1000);
  function finish(reason: string): void {
    if (done) return;
    done = true;
    clearTimeout(lifetime);
    clearTimeout(grace);
    state.tunnels.delete(tunnel);
    release();
    state.metrics.openTunnels.dec();
    client.destroy();
    upstream.destroy();
    recordTunnelClose(state, record, reason, upstream, opened);
  }
  client.setTimeout(limits.idleTimeoutSeconds * 1000, () => finish("idle-timeout"));
  upstream.setTimeout(limits.idleTimeoutSeconds * 1000, () => finish("idle-timeout"));
  client.on("error", (error) => finish(`client-${(error as NodeJS.ErrnoException).code ?? "error"}`));
  upstream.on("error", (error) => finish(upstreamFailure(error)));
  // When one side is gone, the other is ended, not destroyed: bytes still queued for it (the tail of a download)
  // must be delivered. The tunnel is finished when both are closed, or a few seconds later at most.
  const sideClosed = (other: net.Socket) => () => {
    if (client.destroyed && upstream.destroyed) return finish("closed");
    other.end();
    // Read on (and discard) so that the other side's own end is seen: a client unpiped from a departed upstream,
    // or an upstream paused behind a write to a departed client, would otherwise sit until the grace timer.
    other.resume();
    grace ??= setTimeout(() => finish("closed"), Math.min(5000, limits.idleTimeoutSeconds * 1000));
  };
  client.on("close", sideClosed(upstream));
  upstream.on("close", sideClosed(client));
  if (first.length > 0) upstream.write(first);
  client.pipe(upstream);
  upstream.once("end", () => client.end());
  upstreamReader.start(client, upstream);
}
