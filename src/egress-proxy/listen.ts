// Listening, with no proxy state: a listen target parsed (HOST:PORT, [IPv6]:PORT, a Unix socket path), a stale socket
// of a crashed process cleared, and the addresses that reach this process, which a request must never be sent to.
import type http from "node:http";
import net from "node:net";
import { lstatSync, unlinkSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { isUnspecifiedAddress } from "../net/index.ts";
import type { AddressFamily } from "../net/index.ts";
import type { ListenAddress, ListenTarget } from "./state.ts";

export function parseListenTarget(target: ListenTarget): { path: string } | { host: string; port: number } {
  if (typeof target !== "string") return "path" in target ? { path: target.path } : { host: target.host, port: target.port };
  if (target.startsWith("unix:")) return { path: target.slice(5) };
  if (target.includes("/")) return { path: target };
  // Port 0 (any free port) is valid for listening, unlike for a destination, so splitHostPort does not apply.
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(target);
  const parsed = match === null || Number(match[3]) > 65535 ? undefined : { host: (match[1] ?? match[2]) as string, port: Number(match[3]) };
  if (parsed === undefined) throw new Error(`"${target}" is not HOST:PORT or a socket path (write 127.0.0.1:3128, [::1]:3128 or /run/perimeter/egress.sock)`);
  return parsed;
}

/** Removes a stale Unix socket left by a crashed process; refuses to touch anything that is not a socket. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket: remove it or choose another path`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (alive) throw new Error(`${path} is in use by another process`);
  unlinkSync(path);
}

export async function listenOn(server: http.Server, target: ListenTarget): Promise<ListenAddress> {
  const parsed = parseListenTarget(target);
  if ("path" in parsed) await clearStaleSocket(parsed.path);
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    const done = () => {
      server.off("error", onError);
      resolve();
    };
    if ("path" in parsed) server.listen(parsed.path, done);
    else server.listen(parsed.port, parsed.host, done);
  });
  const address = server.address();
  if (typeof address === "string" || address === null) return { kind: "unix", path: "path" in parsed ? parsed.path : String(address) };
  const family: AddressFamily = address.family === "IPv6" ? 6 : 4;
  const hostText = family === 6 ? `[${address.address}]` : address.address;
  return { kind: "tcp", host: address.address, port: address.port, family, url: `http://${hostText}:${address.port}` };
}

/**
 * Addresses (and ranges) that reach this process; the address policy compares them as values, in every notation. A
 * wildcard listener answers on every local address: each interface's, and on a loopback interface its whole network
 * (Linux delivers all of 127.0.0.0/8 locally, not only 127.0.0.1).
 */
export function selfAddressesOf(addresses: readonly ListenAddress[]): string[] {
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
