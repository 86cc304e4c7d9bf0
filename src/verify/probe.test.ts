// Requirements (issue 18, seed 003): the probe program, run with python3 as on the agent's side, tells CONNECTED from
// blocked (a refused connection, an unreachable network and a timeout all count as blocked), reads a proxy's answer
// and X-Perimeter-Denied, and reports service credentials in its environment by name — found by name or by value —
// without ever printing a value. Listeners are our own on loopback; the timeout is made by our own nftables drop
// rule inside a private network namespace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";
import { PROBE_PROGRAM, parseProbeOutput } from "./probe.ts";
import type { ProbeSpec } from "./probe.ts";

const PYTHON = "/usr/bin/python3";
const isRoot = process.getuid?.() === 0;

function runProbe(spec: ProbeSpec, env: Record<string, string> = {}, prefix: string[] = []) {
  return new Promise<ReturnType<typeof parseProbeOutput> & { stdout: string }>((resolve, reject) => {
    const child = spawn(prefix[0] ?? PYTHON, [...prefix.slice(1), ...(prefix.length > 0 ? [PYTHON] : []), "-c", PROBE_PROGRAM, JSON.stringify(spec)], { env: { PATH: "/usr/bin:/bin", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", () => {
      try {
        resolve({ ...parseProbeOutput(stdout), stdout });
      } catch (error) {
        reject(new Error(`${(error as Error).message}: ${stderr}`));
      }
    });
  });
}

async function listen(handler: (socket: Socket) => void): Promise<Server> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

test("connected, refused and a name that does not resolve are told apart; only connected is a leak", async () => {
  const open = await listen((socket) => socket.destroy());
  const closed = await listen(() => undefined);
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  try {
    const { answers } = await runProbe({
      timeout: 2,
      probes: [
        { id: "open", kind: "connect", host: "127.0.0.1", port: (open.address() as AddressInfo).port },
        { id: "closed", kind: "connect", host: "127.0.0.1", port: closedPort },
        { id: "nowhere", kind: "connect", host: "perimeter-verify.invalid", port: 443 },
      ],
    });
    assert.equal(answers.open?.outcome, "connected");
    assert.equal(answers.closed?.outcome, "refused");
    assert.equal(answers.nowhere?.outcome, "no-such-name");
  } finally {
    open.close();
  }
});

test("a dropped SYN is a timeout (blocked), bounded by the probe's timeout", { skip: isRoot ? false : "needs root for a network namespace and nftables" }, async () => {
  const namespace = `vp-${Math.random().toString(16).slice(2, 8)}`;
  execFileSync("ip", ["netns", "add", namespace]);
  try {
    execFileSync("ip", ["-n", namespace, "link", "set", "lo", "up"]);
    execFileSync("ip", ["netns", "exec", namespace, "nft", "-f", "-"], { input: "table inet t {\n  chain output {\n    type filter hook output priority 0; policy accept;\n    tcp dport 9 drop\n  }\n}\n" });
    const started = Date.now();
    const { answers } = await runProbe({ timeout: 1, probes: [{ id: "dropped", kind: "connect", host: "127.0.0.1", port: 9 }] }, {}, ["ip", "netns", "exec", namespace]);
    assert.equal(answers.dropped?.outcome, "timeout");
    assert.ok(Date.now() - started < 4000, "bounded by the timeout");
  } finally {
    spawnSync("ip", ["netns", "del", namespace]);
  }
});

test("a proxy's refusal is read with its X-Perimeter-Denied; a missing proxy variable is said", async () => {
  const proxy = await listen((socket) => socket.once("data", () => socket.end("HTTP/1.1 403 Forbidden\r\nX-Perimeter-Denied: not-allowlisted\r\nContent-Length: 0\r\n\r\n")));
  try {
    const port = (proxy.address() as AddressInfo).port;
    const { answers } = await runProbe(
      { timeout: 2, probes: [{ id: "denied", kind: "proxy", proxyVariables: ["HTTPS_PROXY"], host: "example.invalid", port: 443 }, { id: "unset", kind: "proxy", proxyVariables: ["NOT_SET_PROXY"], host: "x", port: 1 }] },
      { HTTPS_PROXY: `http://127.0.0.1:${port}` },
    );
    assert.deepEqual({ status: answers.denied?.status, denied: answers.denied?.denied }, { status: 403, denied: "not-allowlisted" });
    assert.match(String(answers.unset?.error), /none of NOT_SET_PROXY is set/);
  } finally {
    proxy.close();
  }
});

test("service credentials in the environment are reported by name, found by name or by value, never printed", async () => {
  const value = "sk-provider-0123456789abcdefghij";
  const digest = createHash("sha256").update(value).digest("hex");
  const result = await runProbe(
    { timeout: 2, probes: [{ id: "env", kind: "env", names: ["MINIMAX_API_KEY", "GITHUB_TOKEN"], digests: [digest], required: ["HTTPS_PROXY"] }] },
    { MINIMAX_API_KEY: "whatever-value-1", RENAMED_KEY: value },
  );
  assert.deepEqual(result.answers.env?.names, ["MINIMAX_API_KEY"]);
  assert.deepEqual(result.answers.env?.byValue, ["RENAMED_KEY"]);
  assert.deepEqual(result.answers.env?.missing, ["HTTPS_PROXY"]);
  assert.ok(!result.stdout.includes(value) && !result.stdout.includes("whatever-value-1"), "no value in the probe's output");
});

test("a probe that prints no answer is an error naming what came back", () => {
  assert.throws(() => parseProbeOutput("Traceback (most recent call last):\n  boom"), /printed no answer \(Traceback/);
});
