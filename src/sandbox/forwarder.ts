// The forwarder that runs inside a proxy-mode sandbox (bubblewrap backend). The sandbox's network namespace has
// only loopback, so the one way out is the egress proxy's Unix socket, bound into the sandbox. Programs expect an
// HTTP proxy on a TCP port, so this listens on 127.0.0.1:<port>, relays each connection to the socket, starts the
// task's command once it listens, and exits with the command's status. It runs with the runner's own Node binary
// (bound read-only at /.perimeter/node) and under the same seccomp filter, uid and limits as the task.
//
// It is not a policy point: the proxy checks each request against the task's allowlist by the per-task token in
// HTTP(S)_PROXY, so a program that talks to the socket directly, or kills this forwarder, gains nothing.
export const FORWARDER_SOURCE = `
import { createServer, createConnection } from "node:net";
import { spawn } from "node:child_process";
import { constants } from "node:os";
const [socketPath, port, program, ...programArguments] = process.argv.slice(2);
// The task is stopped with SIGTERM to every process: let the command handle it, and leave when it has gone.
process.on("SIGTERM", () => {});
const server = createServer((client) => {
  const upstream = createConnection(socketPath);
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
  client.pipe(upstream).pipe(client);
});
server.on("error", (error) => {
  process.stderr.write("sandbox: the proxy forwarder cannot listen on 127.0.0.1:" + port + ": " + error.message + "\\n");
  process.exit(125);
});
server.listen({ host: "127.0.0.1", port: Number(port) }, () => {
  const child = spawn(program, programArguments, { stdio: "inherit" });
  child.on("error", (error) => {
    process.stderr.write("sandbox: " + program + ": " + (error.code === "ENOENT" ? "command not found" : error.message) + "\\n");
    process.exit(error.code === "ENOENT" ? 127 : 126);
  });
  child.on("exit", (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
});
`;
