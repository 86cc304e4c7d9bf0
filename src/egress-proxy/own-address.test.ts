// Requirement (issue 12, item 9; docs/egress-proxy.md "the proxy's own addresses stay denied"): through the real CLI,
// an allowlisted name that resolves to the proxy's own address in any notation (::ffff:127.0.0.1, ::ffff:7f00:1,
// ::127.0.0.1, 0.0.0.0) is refused with proxy-address even when an --allow-cidr covers it, and a proxy listening on a
// wildcard address counts every local address (all of loopback's 127.0.0.0/8) as its own. Trap listeners on those
// addresses prove nothing connected; a control name on an address that is not the proxy's goes through.
// Run inside ../shared/bin/offline (loopback only): nothing here leaves loopback.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import net from "node:net";
import { join } from "node:path";
import type { BoundAddress } from "../shared/index.ts";
import { httpThroughProxy, openTunnel, startTrap, waitFor } from "./test-support.ts";
import type { Origin } from "./test-support.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const octet = () => 2 + Math.floor(Math.random() * 250);

interface Running {
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
}

/** A port free on every address right now, so the proxy's own port can be allowlisted before it starts. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "0.0.0.0", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startCli(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [join(ROOT, "bin", "perimeter.js"), "serve", "egress-proxy", ...args], {
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await waitFor(() => /listening/.test(stdout) || child.exitCode !== null, 10_000, "the CLI to listen");
  if (!/proxy=/.test(stdout)) throw new Error(`CLI did not start: ${stderr}`);
  return { child, exited, stderr: () => stderr };
}

async function stop(running: Running): Promise<void> {
  running.child.kill("SIGTERM");
  assert.equal(await running.exited, 0, running.stderr());
}

function endpoint(port: number): BoundAddress & { kind: "tcp" } {
  return { kind: "tcp", host: "127.0.0.1", port, family: 4, url: `http://127.0.0.1:${port}` };
}

describe("own address, proxy on 127.0.0.1: every notation of it is refused under --allow-cidr 127.0.0.0/8", () => {
  let trap: Origin; // on 127.0.0.1, the proxy's own address: nothing may reach it
  let control: Origin; // on another loopback address: the allowCidr must let this one through
  let proxyPort: number;
  let running: Running;
  const names = {
    "mapped.self.test": "::ffff:127.0.0.1",
    "mapped-hex.self.test": "::ffff:7f00:1",
    "mapped-full.self.test": "0:0:0:0:0:ffff:7f00:1",
    "compatible.self.test": "::127.0.0.1",
    "unspecified.self.test": "0.0.0.0",
    "mapped-unspecified.self.test": "::ffff:0.0.0.0",
  };
  before(async () => {
    trap = await startTrap("127.0.0.1");
    control = await startTrap(`127.${octet()}.${octet()}.${octet()}`);
    proxyPort = await freePort();
    const ports = [trap.port, control.port, proxyPort].join(",");
    running = await startCli([
      "--listen", `127.0.0.1:${proxyPort}`,
      "--allow", `.self.test:${ports}`,
      "--allow-cidr", "127.0.0.0/8",
      "--allow-cidr", "0.0.0.0/8",
      ...Object.entries(names).flatMap(([name, address]) => ["--resolve", `${name}=${address}`]),
      "--resolve", `control.self.test=::ffff:${control.host}`,
    ]);
  });
  after(async () => {
    await stop(running);
    await trap.close();
    await control.close();
  });

  for (const [name, address] of Object.entries(names)) {
    test(`${name} resolving to ${address}: CONNECT to a listener on the proxy's address and to the proxy's own port are refused`, async () => {
      for (const port of [trap.port, proxyPort]) {
        const tunnel = await openTunnel(endpoint(proxyPort), `${name}:${port}`);
        assert.equal(tunnel.status, 403, `${name}:${port}`);
        assert.equal(tunnel.headers["x-perimeter-denied"], "proxy-address", `${name}:${port}`);
      }
      const plain = await httpThroughProxy(endpoint(proxyPort), `http://${name}:${trap.port}/`);
      assert.equal(plain.status, 403);
      assert.equal(plain.headers["x-perimeter-denied"], "proxy-address");
      assert.equal(trap.seen.connections, 0, "nothing reached the listener on the proxy's address");
    });
  }

  test("control: a mapped loopback address that is not the proxy's goes through the same allowCidr", async () => {
    const tunnel = await openTunnel(endpoint(proxyPort), `control.self.test:${control.port}`);
    assert.equal(tunnel.status, 200);
    tunnel.socket.destroy();
    await waitFor(() => control.seen.connections === 1, 3000, "the control listener to be reached");
    assert.equal(trap.seen.connections, 0);
  });
});

describe("own address, proxy on the wildcard 0.0.0.0: every local address is its own", () => {
  let trap: Origin; // on some 127/8 address: a wildcard listener answers there too
  let proxyPort: number;
  let running: Running;
  before(async () => {
    trap = await startTrap(`127.${octet()}.${octet()}.${octet()}`);
    proxyPort = await freePort();
    running = await startCli([
      "--listen", `0.0.0.0:${proxyPort}`,
      "--allow", `.wild.test:${trap.port},${proxyPort}`,
      "--allow-cidr", "127.0.0.0/8",
      "--resolve", `loopback.wild.test=${trap.host}`,
      "--resolve", `mapped.wild.test=::ffff:${trap.host}`,
    ]);
  });
  after(async () => {
    await stop(running);
    await trap.close();
  });

  for (const name of ["loopback.wild.test", "mapped.wild.test"]) {
    test(`${name}: a loopback address other than 127.0.0.1 reaches a wildcard listener, so it is refused`, async () => {
      for (const port of [trap.port, proxyPort]) {
        const tunnel = await openTunnel(endpoint(proxyPort), `${name}:${port}`);
        assert.equal(tunnel.status, 403, `${name}:${port}`);
        assert.equal(tunnel.headers["x-perimeter-denied"], "proxy-address", `${name}:${port}`);
      }
      assert.equal(trap.seen.connections, 0, "nothing reached the trap");
    });
  }
});
