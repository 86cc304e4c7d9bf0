// The dial stage: connect to one of the addresses the admission stage checked, never to a name. Used by both the
// CONNECT tunnel and plain-HTTP forwarding.
import type net from "node:net";
import type { CheckedAddress } from "../net/index.ts";
import type { EgressProxyState } from "./state.ts";

/** How long a connection attempt runs alone before the next address is tried too (RFC 8305's 250 ms). */
const ATTEMPT_DELAY_MS = 250;

const ignore = () => {};

export interface Dialled {
  readonly socket: net.Socket;
  /** The checked address the socket is open to. */
  readonly address: string;
}

/** The order to try checked addresses in: the resolver's first, then alternating address families (RFC 8305 §4). */
export function dialOrder(candidates: readonly CheckedAddress[]): CheckedAddress[] {
  const firstFamily = candidates[0]?.family;
  const same = candidates.filter((candidate) => candidate.family === firstFamily);
  const other = candidates.filter((candidate) => candidate.family !== firstFamily);
  const order: CheckedAddress[] = [];
  for (let index = 0; index < Math.max(same.length, other.length); index++) {
    if (index < same.length) order.push(same[index] as CheckedAddress);
    if (index < other.length) order.push(other[index] as CheckedAddress);
  }
  return order;
}

export function formatAuthority(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * Connects to one of the checked addresses, within one connect timeout for the whole attempt. Several addresses (a
 * name with A and AAAA records, or several of one family) are tried as RFC 8305 says: alternating families from the
 * resolver's first, the next one as soon as an attempt fails or after ATTEMPT_DELAY_MS without an answer (the
 * earlier ones keep trying); the first to connect wins and the others are destroyed before anything is read from
 * them. Only addresses that passed the deny-set check are ever dialled; the name never reaches a socket.
 */
export function dialChecked(state: EgressProxyState, candidates: readonly CheckedAddress[], port: number, onread?: net.OnReadOpts): Promise<Dialled> {
  return new Promise((resolve, reject) => {
    const order = dialOrder(candidates);
    const attempts = new Set<net.Socket>();
    let next = 0;
    let settled = false;
    let lastError: unknown;
    let stagger: NodeJS.Timeout | undefined;
    const stop = () => {
      settled = true;
      clearTimeout(deadline);
      clearTimeout(stagger);
      for (const socket of attempts) socket.destroy();
      attempts.clear();
    };
    const finish = (error: unknown) => {
      if (settled) return;
      stop();
      reject(error);
    };
    const deadline = setTimeout(() => {
      const targets = order.map((candidate) => formatAuthority(candidate.address, port)).join(", ");
      finish(Object.assign(new Error(`connecting to ${targets} timed out`), { code: "ERR_UPSTREAM_TIMEOUT" }));
    }, state.effective.limits.connectTimeoutSeconds * 1000);
    const attempt = (): void => {
      clearTimeout(stagger);
      stagger = undefined;
      if (settled) return;
      const candidate = order[next];
      if (candidate === undefined) {
        // Nothing left to start: an attempt still running decides, or, with none left, the last error does.
        if (attempts.size === 0) finish(lastError ?? new Error("no address to connect to"));
        return;
      }
      next += 1;
      let socket: net.Socket;
      try {
        socket = state.dial({ host: candidate.address, port, family: candidate.family, ...(onread !== undefined ? { onread } : {}) });
      } catch (error) {
        lastError = error;
        attempt();
        return;
      }
      attempts.add(socket);
      const onError = (error: Error) => {
        attempts.delete(socket);
        lastError = error;
        attempt();
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        attempts.delete(socket);
        if (settled) {
          socket.destroy();
          return;
        }
        stop();
        socket.removeListener("error", onError);
        // From here until its user listens (after the audit commit), an error must not be uncaught: it shows as
        // `destroyed`, which every user checks before it starts.
        socket.on("error", ignore);
        resolve({ socket, address: candidate.address });
      });
      if (next < order.length) stagger = setTimeout(attempt, ATTEMPT_DELAY_MS);
    };
    attempt();
  });
}
