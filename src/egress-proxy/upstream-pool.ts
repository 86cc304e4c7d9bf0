// Idle keep-alive connections to origins, for the plain-HTTP forwarding leg. A connection is given back only after an
// exchange that ended exactly where its framing said (upstream.ts decides that); while idle, any byte, end or error
// from the origin drops it, so one response can never be read as part of another. Keys name the client and the
// checked address, so two clients never share an upstream connection.
import type net from "node:net";

/** How long an idle pooled connection is kept: below the 5 s keep-alive timeout of Node and Apache origins. */
const POOL_IDLE_MS = 4000;
const MAX_IDLE_PER_KEY = 256;
const MAX_IDLE_TOTAL = 1024;

export interface UpstreamPool {
  /** An idle connection for `key`, or undefined. The connection is the caller's until it gives it back. */
  take(key: string): net.Socket | undefined;
  /** Whether `key` has an idle connection now (it may still die before take). */
  has(key: string): boolean;
  /** Keeps a connection whose last exchange ended cleanly; destroys it when the pool is full. */
  give(key: string, socket: net.Socket): void;
  idle(): number;
  /** Destroys every idle connection (and those of keys matching `filter`, when given). */
  clear(filter?: (key: string) => boolean): void;
}

export function createUpstreamPool(): UpstreamPool {
  const idle = new Map<string, Set<net.Socket>>();
  const cleanups = new Map<net.Socket, () => void>();
  let total = 0;

  function remove(key: string, socket: net.Socket): void {
    const cleanup = cleanups.get(socket);
    if (cleanup === undefined) return;
    cleanups.delete(socket);
    cleanup();
    const set = idle.get(key);
    set?.delete(socket);
    if (set?.size === 0) idle.delete(key);
    total -= 1;
  }

  return {
    take(key) {
      const set = idle.get(key);
      if (set === undefined) return undefined;
      for (const socket of set) {
        remove(key, socket);
        if (!socket.destroyed && socket.readable && socket.writable) return socket;
        socket.destroy();
      }
      return undefined;
    },
    has: (key) => idle.has(key),
    give(key, socket) {
      if (socket.destroyed || !socket.readable || !socket.writable || total >= MAX_IDLE_TOTAL || (idle.get(key)?.size ?? 0) >= MAX_IDLE_PER_KEY) {
        socket.destroy();
        return;
      }
      // While idle, any byte, end or error means the connection is not reusable.
      const drop = () => {
        remove(key, socket);
        socket.destroy();
      };
      socket.on("data", drop);
      socket.on("end", drop);
      socket.on("error", drop);
      socket.on("close", drop);
      socket.on("timeout", drop);
      socket.setTimeout(POOL_IDLE_MS);
      cleanups.set(socket, () => {
        socket.off("data", drop);
        socket.off("end", drop);
        socket.off("error", drop);
        socket.off("close", drop);
        socket.off("timeout", drop);
        socket.setTimeout(0);
      });
      let set = idle.get(key);
      if (set === undefined) idle.set(key, (set = new Set()));
      set.add(socket);
      total += 1;
      // Flowing while idle, so that a close or a stray byte from the origin is seen at once.
      socket.resume();
    },
    idle: () => total,
    clear(filter) {
      for (const [key, set] of [...idle]) {
        if (filter !== undefined && !filter(key)) continue;
        for (const socket of [...set]) {
          remove(key, socket);
          socket.destroy();
        }
      }
    },
  };
}
