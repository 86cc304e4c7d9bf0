// A free TCP port on loopback, for tests and benchmarks that must pass a port to a child process (in-process servers
// listen on port 0 instead), and for the metrics port perimeter up picks itself. There is a window between closing
// and the child binding: callers retry on EADDRINUSE. To keep that window from being hit, the port is chosen below
// the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default), where no outgoing connection
// of another process takes it as its local port, and never twice in one process (port 0 could hand out a port it
// had just returned, which made two services of one test config collide).
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";

const LOWEST = 10_000;
const ATTEMPTS = 64;
const handedOut = new Set<number>();

/** The range to draw from: below the ephemeral range when there is room, else above it; undefined: use port 0. */
function candidateRange(): { low: number; high: number } | undefined {
  let ephemeral = { low: 32_768, high: 60_999 };
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) ephemeral = { low: low as number, high: high as number };
  } catch {
    // not Linux: the default range
  }
  if (ephemeral.low - LOWEST >= 1000) return { low: LOWEST, high: ephemeral.low - 1 };
  if (65_535 - ephemeral.high >= 1000) return { low: ephemeral.high + 1, high: 65_535 };
  return undefined;
}

function tryListen(port: number, host: string): Promise<number | undefined> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(undefined));
    server.listen(port, host, () => {
      const bound = (server.address() as AddressInfo).port;
      server.close(() => resolve(bound));
    });
  });
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  const range = candidateRange();
  for (let attempt = 0; range !== undefined && attempt < ATTEMPTS; attempt += 1) {
    const port = range.low + Math.floor(Math.random() * (range.high - range.low + 1));
    if (handedOut.has(port)) continue;
    const bound = await tryListen(port, host);
    if (bound !== undefined) return remember(bound);
  }
  for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
    const bound = await tryListen(0, host);
    if (bound !== undefined && !handedOut.has(bound)) return remember(bound);
  }
  throw new Error(`no free TCP port found on ${host} in ${2 * ATTEMPTS} attempts`);
}

function remember(port: number): number {
  if (handedOut.size >= 4096) handedOut.clear();
  handedOut.add(port);
  return port;
}
