// Attacker's review of the shared pieces (issue 15): the stale-socket clearing must never act through a symlink, and
// the listen-address parser must refuse the IPv6 and port forms that would bind somewhere other than written.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PerimeterError, ServiceHost, dialAddress, parseListenAddress, parseTcp, silentLogger } from "./index.ts";

/**
 * A socket file with nobody listening, as a crashed process leaves it: a child binds it and is SIGKILLed. (Closing a
 * listener in this process would not do: libuv unlinks the path when a listening pipe closes.)
 */
function staleSocket(path: string): void {
  spawnSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`], { timeout: 20_000 });
  assert.ok(lstatSync(path).isSocket(), "the killed child left its socket file");
}

test("attack: a symlink at the socket path, to a stale socket or a live one elsewhere, is refused and neither is removed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "perimeter-symlink-"));
  const host = new ServiceHost("test", silentLogger());
  const live = net.createServer();
  try {
    const elsewhere = join(dir, "victim-stale.sock");
    staleSocket(elsewhere);
    const link = join(dir, "service.sock");
    symlinkSync(elsewhere, link);
    await assert.rejects(host.listen(http.createServer(), link, { unix: true }), (error: unknown) => error instanceof PerimeterError && /exists and is not a socket/.test(error.message));
    assert.ok(lstatSync(link).isSymbolicLink(), "the link is left as it was");
    assert.ok(lstatSync(elsewhere).isSocket(), "the socket it points at is not unlinked");

    const liveElsewhere = join(dir, "victim-live.sock");
    await new Promise<void>((resolve) => live.listen(liveElsewhere, resolve));
    const liveLink = join(dir, "other.sock");
    symlinkSync(liveElsewhere, liveLink);
    await assert.rejects(host.listen(http.createServer(), liveLink, { unix: true }), /exists and is not a socket/);
    assert.ok(existsSync(liveElsewhere));
  } finally {
    live.close();
    await host.close();
  }
});

test("attack: listen addresses that would bind elsewhere than written are refused; port 0 and IPv6 forms parse exactly", () => {
  for (const text of ["[::1%lo]:8700", "[fe80::1%eth0]:8700", "[127.0.0.1]:8700", "::1:8700", "[::1]", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:", " 127.0.0.1:8700", "127.0.0.1:8700\n", "127.0.0.1:8700/x", "unix:/x"]) {
    assert.throws(() => parseListenAddress(text), (error: unknown) => error instanceof PerimeterError && error.code === "bad_address", JSON.stringify(text));
  }
  assert.deepEqual(parseTcp("[::]:0"), { kind: "tcp", host: "::", port: 0 });
  assert.deepEqual(parseTcp("[::FFFF:127.0.0.1]:8700"), { kind: "tcp", host: "::ffff:127.0.0.1", port: 8700 });
  assert.deepEqual(parseListenAddress("unix:/run/x.sock", { unix: true }), { kind: "unix", path: "/run/x.sock" });
  // A wildcard bind is dialled on loopback, never on the wildcard itself.
  assert.equal(dialAddress({ kind: "tcp", host: "::", port: 8700 }), "[::1]:8700");
  assert.equal(dialAddress({ kind: "tcp", host: "0.0.0.0", port: 8700 }), "127.0.0.1:8700");
});

test("a socket file a SIGKILLed process left behind is cleared and bound (service-host.test.ts's stale socket is unlinked by libuv before the host sees it)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "perimeter-stale-"));
  const path = join(dir, "service.sock");
  staleSocket(path);
  const host = new ServiceHost("test", silentLogger());
  try {
    const bound = await host.listen(http.createServer((_request, response) => response.end("fresh")), path, { unix: true });
    assert.deepEqual(bound, { kind: "unix", path });
    const answer = await new Promise<string>((resolve, reject) => {
      http.get({ socketPath: path, path: "/" }, (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        response.on("end", () => resolve(text));
      }).on("error", reject);
    });
    assert.equal(answer, "fresh");
  } finally {
    await host.close();
  }
});
