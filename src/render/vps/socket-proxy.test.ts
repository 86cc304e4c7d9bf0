// Requirement (issue 17, found by scripts/vps-nspawn-proof.sh on a booted Debian 12): a rendered unit's Type= must
// match what its program does. systemd-socket-proxyd never sends READY=1 (systemd 252 of Debian 12, 255 of Ubuntu
// 24.04), so a Type=notify proxy unit stays "activating" while it already carries connections, and systemd kills it
// when TimeoutStartSec runs out: mcp-guard then loses its way into the network-less sandbox runner. This runs the real
// binary, socket-activated, with a notification socket of our own, and holds every proxy unit of the render to
// what the binary was seen to do.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configFrom, exampleText } from "../testing.ts";
import { SOCKET_PROXYD, renderVps } from "./render.ts";

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const missing = ["systemd-socket-activate", "systemd-notify", "python3"].filter((command) => spawnSync("sh", ["-c", `command -v ${command}`], { env: { PATH } }).status !== 0);
const skip = missing.length > 0 ? `needs ${missing.join(", ")} (scripts/install-system-packages.sh)` : spawnSync("test", ["-x", SOCKET_PROXYD]).status !== 0 ? `needs ${SOCKET_PROXYD} (package systemd)` : false;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

async function firstConnection(port: number): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const connected = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (connected) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`systemd-socket-activate never listened on 127.0.0.1:${port}`);
}

/**
 * Starts a program as systemd would for a socket unit (its listening socket passed as fd 3 by
 * systemd-socket-activate, NOTIFY_SOCKET set) and reports whether it sent READY=1 within `seconds`. Node has no
 * AF_UNIX datagram sockets, so a small python3 listener stands in for systemd's notification socket.
 */
async function notifies(program: string, args: readonly string[], seconds: number): Promise<{ notified: boolean; received: string }> {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-proxyd-"));
  const notifySocket = join(directory, "notify");
  const listener = spawn(
    "python3",
    [
      "-c",
      [
        "import socket, sys",
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
        "s.bind(sys.argv[1])",
        "print('listening', flush=True)",
        "s.settimeout(float(sys.argv[2]))",
        "try:\n    print(s.recv(4096).decode(errors='replace').replace('\\n', ' '), flush=True)\nexcept socket.timeout:\n    print('nothing', flush=True)",
      ].join("\n"),
      notifySocket,
      String(seconds),
    ],
    { env: { PATH }, stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  listener.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  const ended = new Promise<void>((resolve) => listener.on("close", () => resolve()));
  await new Promise<void>((resolve) => listener.stdout.once("data", () => resolve()));
  const listen = await freePort();
  const proxy = spawn("systemd-socket-activate", ["-l", `127.0.0.1:${listen}`, "-E", `NOTIFY_SOCKET=${notifySocket}`, program, ...args], {
    env: { PATH },
    stdio: "ignore",
  });
  try {
    // Like a socket unit, systemd-socket-activate starts the program on the first connection.
    await firstConnection(listen);
    await ended;
  } finally {
    proxy.kill("SIGKILL");
    listener.kill("SIGKILL");
    rmSync(directory, { recursive: true, force: true });
  }
  const received = output.replace(/^listening\n/, "").trim();
  assert.match(output, /^listening\n/, "the notification listener did not start");
  return { notified: /\bREADY=1\b/.test(received), received };
}

test("socket proxy units: Type= matches systemd-socket-proxyd, which does not send READY=1", { skip }, async () => {
  const render = renderVps(configFrom(exampleText("vps")));
  const proxies = render.units.filter((unit) => unit.service.some(([key, value]) => key === "ExecStart" && value.startsWith(SOCKET_PROXYD)));
  assert.ok(proxies.length > 0, "examples/vps.yaml (sandbox without network) renders at least one socket proxy unit");
  // The harness first shows it hears a program that does notify, so "nothing" below means the proxy said nothing.
  assert.equal((await notifies("systemd-notify", ["--ready"], 3)).notified, true, "the notification listener heard no READY=1 from systemd-notify --ready");
  const seen = await notifies(SOCKET_PROXYD, [`127.0.0.1:${await freePort()}`], 3);
  for (const unit of proxies) {
    const type = unit.service.find(([key]) => key === "Type")?.[1] ?? "simple";
    if (!seen.notified) {
      assert.notEqual(type, "notify", `${unit.name} is Type=notify, but ${SOCKET_PROXYD} sent no READY=1 in 3 s (received: ${seen.received}): systemd would keep it activating and kill it after TimeoutStartSec`);
    }
    assert.ok(["simple", "exec", "notify"].includes(type), `${unit.name}: Type=${type}`);
  }
});
