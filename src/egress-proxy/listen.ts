// Where the proxy listens: a listen target (HOST:PORT, [IPv6]:PORT, a Unix socket path, or the same as an object)
// parsed and bound by the shared service host, and the addresses that reach this process, which a request must never
// be sent to.
import type http from "node:http";
import { networkInterfaces } from "node:os";
import { isUnspecifiedAddress } from "../net/index.ts";
import { bindServer, parseListenAddress } from "../shared/index.ts";
import type { BoundAddress, ListenAddress } from "../shared/index.ts";

/** Where to listen: `127.0.0.1:3128`, `[::1]:3128`, `/run/perimeter/egress.sock` (`unix:` prefix optional), or the same as an object. */
export type ListenTarget = string | { readonly host: string; readonly port: number } | { readonly path: string };

/** Port 0 (any free port) is valid here, unlike for a destination. Throws PerimeterError("bad_address"). */
export function parseListenTarget(target: ListenTarget): ListenAddress {
  if (typeof target !== "string") return "path" in target ? { kind: "unix", path: target.path } : { kind: "tcp", host: target.host, port: target.port };
  return parseListenAddress(target, { unix: true, example: "127.0.0.1:3128" });
}

/** Binds `server`; throws PerimeterError("setup") naming the address and the fix when it cannot. */
export function listenOn(server: http.Server, target: ListenTarget): Promise<BoundAddress> {
  return bindServer(server, parseListenTarget(target));
}

/**
 * Addresses (and ranges) that reach this process; the address policy compares them as values, in every notation. A
 * wildcard listener answers on every local address: each interface's, and on a loopback interface its whole network
 * (Linux delivers all of 127.0.0.0/8 locally, not only 127.0.0.1).
 */
export function selfAddressesOf(addresses: readonly BoundAddress[]): string[] {
  const result = new Set<string>();
  for (const address of addresses) {
    if (address.kind !== "tcp") continue;
    if (isUnspecifiedAddress(address.host)) {
      for (const entries of Object.values(networkInterfaces())) {
        for (const entry of entries ?? []) result.add(entry.internal && entry.cidr !== null ? entry.cidr : entry.address);
      }
      result.add("0.0.0.0");
      result.add("::");
    } else {
      result.add(address.host);
    }
  }
  return [...result];
}
