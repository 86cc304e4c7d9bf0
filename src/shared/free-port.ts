// A free TCP port on loopback, for tests and benchmarks that must pass a port to a child process (in-process servers
// listen on port 0 instead). There is a window between closing and the child binding: callers retry on EADDRINUSE.
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";

export async function freePort(host = "127.0.0.1"): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
