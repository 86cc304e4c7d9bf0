// The verdicts of scripts/vps-nspawn-proof.sh (which boots the VPS render in systemd-nspawn and is run by hand or
// by a job with root and a Debian mirror: docs/vps.md "Proving the VPS render"). Its judgement is pure, so here each
// verdict is shown to refuse the observation that would make the proof a lie: a timeout or an unreachable network
// taken for the unit's filter, a control that was itself filtered, a probe that never ran.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { exampleConfig } from "../../src/render/testing.ts";
import { agentLoopbackPorts } from "../../src/render/vps/firewall.ts";
import { renderVps } from "../../src/render/vps/render.ts";
import { PROTECTED_LOOPBACK, fillEnvFiles, ipFilterVerdict, judge, lastObservation, protectedLoopback, renderFacts } from "../../scripts/vps-nspawn/proof.ts";

const UID = 10000;

function agentSaw(outside: Record<string, { outcome: string; ms: number }>, overrides: Record<string, unknown> = {}) {
  return {
    stand_in: true,
    uid: UID,
    perimeter_ready: true,
    outside,
    loopback_protected: loopbackAll(seen("ECONNREFUSED", 0)),
    egress_proxy_tcp: { outcome: "connected", ms: 1 },
    egress_proxy_refused_host: { outcome: "answered", status: "HTTP/1.1 403 Forbidden" },
    llm_proxy_models: { outcome: "answered", status: 200 },
    mcp_guard_initialize: { outcome: "answered", status: 200 },
    env_file_write: { outcome: "EACCES" },
    env_file_replace: { outcome: "EBUSY" },
    service_secrets_read: { outcome: "EACCES" },
    ...overrides,
  };
}

type Seen = { outcome: string; ms: number };
const seen = (outcome: string, ms: number): Seen => ({ outcome, ms });
/** The same outcome for every loopback listener the agent must not dial. */
const loopbackAll = (outcome: Seen) => Object.fromEntries(PROTECTED_LOOPBACK.map((name) => [name, outcome]));
const LOOPBACK_CONTROL = PROTECTED_LOOPBACK.map((name) => `loopback ${name} (control)`).sort();
/** The same UDP and TCP outcome for both TEST-NET addresses. */
const both = (udp: Seen, tcp: Seen) => ({
  "udp 192.0.2.1:443": udp,
  "tcp 192.0.2.1:443": tcp,
  "udp 2001:db8::1:443": udp,
  "tcp 2001:db8::1:443": tcp,
});
const failed = (checks: ReturnType<typeof judge>) => checks.filter((entry) => !entry.pass).map((entry) => entry.name);
const UDP = ["udp 192.0.2.1:443", "udp 2001:db8::1:443"];
const TCP = ["tcp 192.0.2.1:443", "tcp 2001:db8::1:443"];
const ALL = [UDP[0], TCP[0], UDP[1], TCP[1]];

describe("vps nspawn proof: verdicts", () => {
  it("unit-filter: EPERM at once for the datagram, a connect that never completes: passes", () => {
    assert.deepEqual(failed(judge(agentSaw(both(seen("EPERM", 0), seen("timeout", 3000))), "unit-filter", UID)), []);
  });

  it("unit-filter: ENETUNREACH (no route, no filter involved) is not the unit's filter", () => {
    assert.deepEqual(failed(judge(agentSaw(both(seen("ENETUNREACH", 0), seen("ENETUNREACH", 0))), "unit-filter", UID)), UDP);
  });

  it("unit-filter: a datagram that was sent, or the firewall's EHOSTUNREACH, is not the unit's filter", () => {
    assert.deepEqual(failed(judge(agentSaw(both(seen("sent", 0), seen("timeout", 3000))), "unit-filter", UID)), UDP);
    assert.deepEqual(failed(judge(agentSaw(both(seen("EHOSTUNREACH", 0), seen("EHOSTUNREACH", 0))), "unit-filter", UID)), UDP);
  });

  it("unit-filter: a slow EPERM is not a refusal at once; a connect that got through fails", () => {
    assert.deepEqual(failed(judge(agentSaw(both(seen("EPERM", 3000), seen("connected", 1))), "unit-filter", UID)), ALL);
  });

  it("firewall: refused at once passes; a timeout or a connection fails", () => {
    assert.deepEqual(failed(judge(agentSaw(both(seen("EPERM", 0), seen("EHOSTUNREACH", 1))), "firewall", UID)), []);
    assert.deepEqual(failed(judge(agentSaw(both(seen("sent", 0), seen("timeout", 3000))), "firewall", UID)), ALL);
    assert.deepEqual(failed(judge(agentSaw(both(seen("EPERM", 0), seen("connected", 1))), "firewall", UID)), TCP);
    assert.deepEqual(failed(judge(agentSaw(both(seen("EPERM", 0), seen("EACCES", 1013))), "firewall", UID)), [], "an ICMPv6 answer held back by the kernel's rate limit");
    assert.deepEqual(failed(judge(agentSaw(both(seen("EPERM", 1500), seen("EACCES", 1))), "firewall", UID)), UDP, "a datagram is refused at once or not at all");
  });

  it("the agent's loopback ways out, its read-only .env and hidden secrets are each checked", () => {
    const saw = agentSaw(both(seen("EPERM", 0), seen("timeout", 3000)), {
      uid: 0,
      perimeter_ready: false,
      egress_proxy_tcp: { outcome: "ECONNREFUSED", ms: 0 },
      egress_proxy_refused_host: { outcome: "answered", status: "HTTP/1.1 200 Connection established" },
      llm_proxy_models: { outcome: "answered", status: 401 },
      mcp_guard_initialize: { outcome: "answered", status: 401 },
      env_file_write: { outcome: "opened" },
      env_file_replace: { outcome: "replaced" },
      service_secrets_read: { outcome: "opened" },
    });
    assert.deepEqual(failed(judge(saw, "unit-filter", UID)), [
      "runs as the agent's uid",
      "perimeter services listening",
      "loopback: egress proxy",
      "egress proxy refuses example.com",
      "loopback: llm-proxy /models",
      "loopback: mcp-guard initialize",
      "agent's .env not writable",
      "agent's .env not replaceable",
      "services' secrets hidden",
    ]);
  });

  it("firewall: the agent reset at once on the dashboard, mcp-guard's admin listener and the feeds passes; a connection, a drop (timeout) or a missing port fails", () => {
    const outside = both(seen("EPERM", 0), seen("EHOSTUNREACH", 1));
    assert.deepEqual(failed(judge(agentSaw(outside), "firewall", UID)), []);
    assert.deepEqual(failed(judge(agentSaw(outside, { loopback_protected: { ...loopbackAll(seen("ECONNREFUSED", 0)), dashboard: seen("connected", 0) } }), "firewall", UID)), ["loopback refused: dashboard"]);
    assert.deepEqual(failed(judge(agentSaw(outside, { loopback_protected: { ...loopbackAll(seen("ECONNREFUSED", 0)), "mcp-guard admin": seen("timeout", 3000) } }), "firewall", UID)), ["loopback refused: mcp-guard admin"]);
    assert.deepEqual(failed(judge(agentSaw(outside, { loopback_protected: {} }), "firewall", UID)), PROTECTED_LOOPBACK.map((name) => `loopback refused: ${name}`).sort());
    // Without the firewall the unit's IPAddressAllow=localhost lets the agent through: not judged there.
    assert.deepEqual(failed(judge(agentSaw(both(seen("EPERM", 0), seen("timeout", 3000)), { loopback_protected: loopbackAll(seen("connected", 0)) }), "unit-filter", UID)), []);
  });

  it("control: a protected port that does not answer a process outside the unit voids the loopback verdict", () => {
    const outside = both(seen("sent", 0), seen("timeout", 3000));
    assert.deepEqual(failed(judge({ stand_in: true, outside, loopback_protected: { ...loopbackAll(seen("connected", 0)), dashboard: seen("ECONNREFUSED", 0) } }, "control", UID)), ["loopback dashboard (control)"]);
  });

  it("control: sent and unanswered passes; a process outside the unit that also got EPERM voids the proof", () => {
    const listening = loopbackAll(seen("connected", 0));
    assert.deepEqual(failed(judge({ stand_in: true, outside: both(seen("sent", 0), seen("EHOSTUNREACH", 3050)), loopback_protected: listening }, "control", UID)), []);
    assert.deepEqual(failed(judge({ stand_in: true, outside: both(seen("EPERM", 0), seen("EPERM", 1)), loopback_protected: listening }, "control", UID)), ALL.map((name) => `${name} (control)`));
  });

  it("no probe line, or a missing address, fails instead of passing by default", () => {
    assert.deepEqual(failed(judge(lastObservation("stand-in started\nnothing else\n"), "unit-filter", UID)), ["probe line"]);
    assert.deepEqual(failed(judge({ stand_in: true, outside: {} }, "control", UID)), [...ALL.map((name) => `${name} (control)`), ...LOOPBACK_CONTROL]);
    assert.deepEqual(failed(judge({ stand_in: true, outside: {} }, "unit-filter", UID)).slice(0, 4), ALL);
  });

  it("the newest probe of a journal is the one judged", () => {
    const journal = [
      `PERIMETER-PROOF ${JSON.stringify(agentSaw(both(seen("sent", 0), seen("connected", 1))))}`,
      `x PERIMETER-PROOF ${JSON.stringify(agentSaw(both(seen("EPERM", 0), seen("timeout", 3000))))}`,
    ].join("\n");
    assert.deepEqual(failed(judge(lastObservation(journal), "unit-filter", UID)), []);
  });
});

describe("vps nspawn proof: render facts and env files", () => {
  it("fills every empty variable once per name, keeps the mode, and reads the render's facts", (context) => {
    const directory = mkdtempSync(join(tmpdir(), "nspawn-proof-"));
    context.after(() => rmSync(directory, { recursive: true, force: true }));
    const render = join(directory, "render");
    const root = join(directory, "root");
    mkdirSync(join(render, "files/etc/systemd/system"), { recursive: true });
    mkdirSync(join(root, "etc/perimeter/env"), { recursive: true });
    writeFileSync(
      join(render, "manifest.json"),
      JSON.stringify({
        units: ["perimeter-egress-proxy.service", "hermes-gateway.service"],
        agent: { user: "hermes", uid: UID },
        ssh: { adminUsers: ["admin"] },
        envFiles: [
          { path: "/etc/perimeter/env/mcp-guard.env", keys: ["PERIMETER_AGENT_TOKEN", "PERIMETER_ADMIN_TOKEN"] },
          { path: "/etc/perimeter/env/hermes-gateway.env", keys: ["PERIMETER_AGENT_TOKEN"] },
        ],
      }),
    );
    writeFileSync(join(render, "files/etc/systemd/system/perimeter-egress-proxy.service"), "[Service]\nExecStart=/usr/local/bin/perimeter serve egress-proxy\n");
    writeFileSync(join(render, "files/etc/systemd/system/hermes-gateway.service"), "[Service]\nExecStart=/opt/hermes-agent/venv/bin/python -m hermes_cli.main gateway run\n");
    writeFileSync(join(root, "etc/perimeter/env/mcp-guard.env"), "# guard\nPERIMETER_AGENT_TOKEN=\nPERIMETER_ADMIN_TOKEN=kept\n");
    writeFileSync(join(root, "etc/perimeter/env/hermes-gateway.env"), "PERIMETER_AGENT_TOKEN=\n");
    chmodSync(join(root, "etc/perimeter/env/mcp-guard.env"), 0o600);

    assert.deepEqual(fillEnvFiles(render, root), ["/etc/perimeter/env/mcp-guard.env: PERIMETER_AGENT_TOKEN", "/etc/perimeter/env/hermes-gateway.env: PERIMETER_AGENT_TOKEN"]);
    const guard = readFileSync(join(root, "etc/perimeter/env/mcp-guard.env"), "utf8");
    const agent = readFileSync(join(root, "etc/perimeter/env/hermes-gateway.env"), "utf8");
    const token = /^PERIMETER_AGENT_TOKEN=([0-9a-f]{64})$/m.exec(guard)?.[1];
    assert.ok(token !== undefined, guard);
    assert.equal(agent, `PERIMETER_AGENT_TOKEN=${token}\n`, "the pair the render says must match does");
    assert.match(guard, /^PERIMETER_ADMIN_TOKEN=kept$/m, "a value already there is left alone");
    assert.equal(statSync(join(root, "etc/perimeter/env/mcp-guard.env")).mode & 0o777, 0o600);

    const facts = renderFacts(render);
    assert.equal(facts.perimeterExecutable, "/usr/local/bin/perimeter");
    assert.equal(facts.agentPython, "/opt/hermes-agent/venv/bin/python");
    assert.deepEqual(facts.adminUsers, ["admin"]);
    assert.equal(facts.agentUid, UID);
  });

  it("protected-ports names the rendered dashboard, admin listener and feeds, and none of the agent's own ports", () => {
    const config = exampleConfig("vps");
    const render = mkdtempSync(join(tmpdir(), "perimeter-proof-ports-"));
    try {
      for (const file of renderVps(config).files) {
        mkdirSync(join(render, file.path, ".."), { recursive: true });
        writeFileSync(join(render, file.path), file.content);
      }
      const ports = protectedLoopback(render);
      assert.deepEqual(Object.keys(ports).slice(0, PROTECTED_LOOPBACK.length), [...PROTECTED_LOOPBACK]);
      assert.equal(ports.dashboard, "127.0.0.1:8720");
      assert.equal(ports["mcp-guard admin"], "127.0.0.1:8710");
      const given = new Set(agentLoopbackPorts(config));
      assert.deepEqual(Object.values(ports).filter((listen) => given.has(Number(listen.slice(listen.lastIndexOf(":") + 1)))), []);
    } finally {
      rmSync(render, { recursive: true, force: true });
    }
  });

  it("ip-filter: the verify report's host.agent-ip-filter must have the status the mode expects; a missing check or no JSON fails", () => {
    const report = (status: string) => JSON.stringify({ results: [{ id: "host.firewall", status: "PASS" }, { id: "host.agent-ip-filter", status, evidence: "e" }] });
    assert.equal(ipFilterVerdict(report("PASS"), "PASS").pass, true);
    assert.equal(ipFilterVerdict(report("FAIL"), "PASS").pass, false);
    assert.equal(ipFilterVerdict(report("FAIL"), "FAIL").pass, true);
    assert.equal(ipFilterVerdict(report("SKIP"), "FAIL").pass, false);
    assert.equal(ipFilterVerdict(JSON.stringify({ results: [{ id: "host.firewall", status: "FAIL" }] }), "FAIL").pass, false);
    assert.equal(ipFilterVerdict("perimeter: cannot load config", "FAIL").pass, false);
  });
});
