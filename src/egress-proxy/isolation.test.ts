// Requirement (issue 3, seed 002's topology): an "agent" network namespace whose only route is a veth to the proxy's
// namespace cannot reach anything directly; through the proxy (the real CLI, resolving names through the real
// system resolver and /etc/hosts of its namespace) allowlisted hosts work and everything else gets 403.
//
// Three namespaces of our own, with addresses that exist only inside them:
//   agent (10.203.N.2) --veth-- (10.203.N.1) proxy (10.204.N.1) --veth-- (10.204.N.2) internet stand-in
// The proxy namespace does not forward packets (ip_forward=0), exactly like a proxy container on a Docker
// `internal` network plus an egress network. Everything is removed afterwards, also when a step fails.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readAuditRecords } from "../audit-log/index.ts";
import { makeCertificate, waitFor } from "./test-support.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const isRoot = process.getuid?.() === 0;
const suffix = Math.random().toString(16).slice(2, 8);
const N = 1 + Math.floor(Math.random() * 250);
const NS = { agent: `pa-${suffix}`, proxy: `pp-${suffix}`, internet: `pi-${suffix}` };
const AGENT_IP = `10.203.${N}.2`;
const PROXY_IP = `10.203.${N}.1`;
const PROXY_OUTER_IP = `10.204.${N}.1`;
const INTERNET_IP = `10.204.${N}.2`;
const children: ChildProcess[] = [];
let directory = "";
let auditFile = "";

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

function cleanup(): void {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  for (const name of Object.values(NS)) {
    spawnSync("ip", ["netns", "del", name], { stdio: "ignore" });
    rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  }
  if (directory !== "") rmSync(directory, { recursive: true, force: true });
}

/** Runs a command inside a namespace; never throws, returns what happened. */
function inNamespace(namespace: string, command: string[], timeoutMs = 10_000): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync("ip", ["netns", "exec", namespace, ...command], { encoding: "utf8", timeout: timeoutMs });
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

function startIn(namespace: string, command: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn("ip", ["netns", "exec", namespace, ...command], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, output: () => output };
}

const ORIGIN_SCRIPT = `
import https from "node:https";
import http from "node:http";
import { readFileSync } from "node:fs";
const [certFile, keyFile, address] = process.argv.slice(2);
const handler = (kind) => (request, response) => response.end(kind + " " + request.headers.host + " " + request.url);
let ready = 0;
const done = () => { if (++ready === 3) console.log("origin ready"); };
https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, handler("tls")).listen(443, address, done);
https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, handler("tls8443")).listen(8443, address, done);
http.createServer(handler("http")).listen(80, address, done);
`;

before(() => {
  if (!isRoot) return;
  process.on("exit", cleanup);
  directory = mkdtempSync(join(tmpdir(), "perimeter-isolation-"));
  auditFile = join(directory, "audit.db");
  const certificate = makeCertificate(["allowed.test", "paste.test", "lan.test"]);
  writeFileSync(join(directory, "cert.pem"), certificate.cert);
  writeFileSync(join(directory, "key.pem"), certificate.key);
  writeFileSync(join(directory, "origin.mjs"), ORIGIN_SCRIPT);

  for (const name of Object.values(NS)) {
    ip("netns", "add", name);
    ip("-n", name, "link", "set", "lo", "up");
  }
  ip("link", "add", `va${suffix}`, "netns", NS.agent, "type", "veth", "peer", "name", `vp${suffix}`, "netns", NS.proxy);
  ip("link", "add", `vq${suffix}`, "netns", NS.proxy, "type", "veth", "peer", "name", `vi${suffix}`, "netns", NS.internet);
  ip("-n", NS.agent, "addr", "add", `${AGENT_IP}/24`, "dev", `va${suffix}`);
  ip("-n", NS.proxy, "addr", "add", `${PROXY_IP}/24`, "dev", `vp${suffix}`);
  ip("-n", NS.proxy, "addr", "add", `${PROXY_OUTER_IP}/24`, "dev", `vq${suffix}`);
  ip("-n", NS.internet, "addr", "add", `${INTERNET_IP}/24`, "dev", `vi${suffix}`);
  for (const [name, device] of [[NS.agent, `va${suffix}`], [NS.proxy, `vp${suffix}`], [NS.proxy, `vq${suffix}`], [NS.internet, `vi${suffix}`]] as const) {
    ip("-n", name, "link", "set", device, "up");
  }
  // The agent's only route leads to the proxy's namespace; the internet knows its way back, so a direct attempt
  // fails only because the proxy namespace does not forward.
  ip("-n", NS.agent, "route", "add", "default", "via", PROXY_IP);
  ip("-n", NS.internet, "route", "add", "default", "via", PROXY_OUTER_IP);
  execFileSync("ip", ["netns", "exec", NS.proxy, "sysctl", "-qw", "net.ipv4.ip_forward=0"], { stdio: "pipe" });

  // Names: the proxy resolves through the system resolver and its namespace's /etc/hosts (ip netns exec mounts
  // /etc/netns/<name>/hosts there); the agent can resolve the same names, so direct attempts fail on routing alone.
  const hosts = `${INTERNET_IP} allowed.test paste.test\n${AGENT_IP} lan.test\n`;
  for (const name of [NS.proxy, NS.agent]) {
    mkdirSync(`/etc/netns/${name}`, { recursive: true });
    writeFileSync(`/etc/netns/${name}/hosts`, hosts);
  }
});

after(cleanup);

test(
  "seed 002 topology: from the agent namespace, direct connections fail, allowlisted ones through the proxy succeed, everything else gets 403",
  { skip: isRoot ? false : "needs root to create network namespaces (CI runs as root)", timeout: 90_000 },
  async () => {
    const origin = startIn(NS.internet, [process.execPath, join(directory, "origin.mjs"), join(directory, "cert.pem"), join(directory, "key.pem"), INTERNET_IP]);
    await waitFor(() => /origin ready/.test(origin.output()), 10_000, "origin in the internet namespace");
    const proxy = startIn(NS.proxy, [
      process.execPath, join(ROOT, "bin", "perimeter.js"), "serve", "egress-proxy",
      "--listen", `${PROXY_IP}:3128`,
      "--allow", "allowed.test:80,443",
      "--allow", "lan.test",
      "--allow-cidr", `${INTERNET_IP}/32`,
      "--audit", auditFile,
    ]);
    await waitFor(() => /egress-proxy listening proxy=/.test(proxy.output()) || proxy.child.exitCode !== null, 10_000, "proxy in its namespace");
    assert.match(proxy.output(), new RegExp(`proxy=http://${PROXY_IP.replaceAll(".", "\\.")}:3128`));

    const ca = join(directory, "cert.pem");
    const curl = (...args: string[]) => inNamespace(NS.agent, ["curl", "-sS", "--cacert", ca, "--max-time", "3", ...args], 15_000);
    const viaProxy = (...args: string[]) => curl("--proxy", `http://${PROXY_IP}:3128`, "--fail", "-v", ...args);

    // Direct connections from the agent fail (no forwarding), by name and by address, TLS and plain.
    for (const url of ["https://allowed.test/", "http://allowed.test/", `https://${INTERNET_IP}/`]) {
      const direct = curl("--noproxy", "*", "--max-time", "2", url);
      assert.notEqual(direct.status, 0, `direct ${url} must fail`);
      assert.doesNotMatch(direct.stdout, /tls|http/, `no answer from the origin for ${url}`);
    }

    // Allowlisted through the proxy: HTTPS (CONNECT, SNI checked) and plain HTTP.
    const https = viaProxy("https://allowed.test/path");
    assert.equal(https.status, 0, https.stderr);
    assert.equal(https.stdout, "tls allowed.test /path");
    const plain = viaProxy("http://allowed.test/plain");
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal(plain.stdout, "http allowed.test /plain");

    // Everything else: 403 with the reason.
    const refusals: Array<[string, string]> = [
      ["https://paste.test/", "not-allowlisted"],
      ["http://paste.test/", "not-allowlisted"],
      ["https://allowed.test:8443/", "port-not-allowed"],
      ["https://lan.test/", "private-address"],
      [`https://${INTERNET_IP}/`, "private-address"], // an address, not a name: no rule can match it
      [`https://${PROXY_IP}:3128/`, "private-address"],
    ];
    for (const [url, reason] of refusals) {
      const refused = viaProxy(url);
      assert.notEqual(refused.status, 0, `${url} must be refused`);
      assert.match(refused.stderr, /< HTTP\/1\.1 403/, `${url}: ${refused.stderr}`);
      assert.match(refused.stderr, new RegExp(`< X-Perimeter-Denied: ${reason}`), url);
    }

    proxy.child.kill("SIGTERM");
    await waitFor(() => proxy.child.exitCode !== null, 10_000, "proxy shutdown");
    assert.equal(proxy.child.exitCode, 0);
    const decisions = readAuditRecords(auditFile).filter((record) => record.type === "egress-decision");
    assert.equal(decisions.filter((record) => record.data.decision === "allow").length, 2);
    assert.equal(decisions.filter((record) => record.data.decision === "deny").length, refusals.length);
    assert.ok(decisions.every((record) => record.data.source === AGENT_IP), "every request came from the agent namespace");
  },
);
