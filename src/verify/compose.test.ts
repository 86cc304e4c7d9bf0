// Requirements (issue 18): `perimeter verify -t compose` without a Docker engine (none can run here): the commands it
// builds (`docker compose exec -T hermes-gateway python3 -c …`, `docker compose config --format json`), the checks on
// the project's configuration as examples/compose-vps.yaml renders it (pass) and broken variants (fail), and the
// whole CLI path through a stand-in `docker` executable on PATH that answers `config` with the render as JSON and
// runs `exec`'s command on this machine with a container-like environment — so the parsing of real probe output is
// exercised. Not exercised: a real engine, Compose's own normalisation of the file, networks and DNS in containers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../config/index.ts";
import { renderCompose } from "../render/index.ts";
import { composeChecks } from "./cluster.ts";
import { composeVantage, PROBE_LOADER } from "./runners.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "perimeter.js");
const EXAMPLE = join(ROOT, "examples", "compose-vps.yaml");
const project = renderCompose(loadConfig(EXAMPLE)).compose as { services: Record<string, Record<string, unknown>>; networks: Record<string, Record<string, unknown>> };

test("the probe runs with docker compose exec -T in the agent's service, python3 and one JSON argument", () => {
  const command = composeVantage({ composeFile: "/srv/hermes/compose.yaml", project: "hermes", service: "hermes-gateway" }).probeCommand({ timeout: 2, probes: [{ id: "t", kind: "file", path: "/x" }] });
  assert.equal(command.file, "docker");
  assert.deepEqual(command.args.slice(0, 11), ["compose", "--file", "/srv/hermes/compose.yaml", "--project-name", "hermes", "exec", "-T", "hermes-gateway", "python3", "-c", PROBE_LOADER]);
  assert.deepEqual(JSON.parse(command.args[11] as string), { timeout: 2, probes: [{ id: "t", kind: "file", path: "/x" }] });
  assert.ok(PROBE_LOADER.length < 6000, `the loader stays small for exec command lines (${PROBE_LOADER.length} characters)`);
});

test("the rendered project passes: no host access, the agent on internal networks only", () => {
  const results = composeChecks(structuredClone(project));
  assert.deepEqual(results.map((result) => [result.id, result.status]), [["isolation.host-access", "PASS"], ["isolation.network-policy", "PASS"]], JSON.stringify(results));
});

const VARIANTS: Array<{ name: string; expected: string; edit: (agent: Record<string, unknown>, networks: Record<string, Record<string, unknown>>) => void }> = [
  { name: "privileged", expected: "isolation.host-access", edit: (agent) => (agent.privileged = true) },
  { name: "the Docker socket mounted (long syntax, as compose config prints it)", expected: "isolation.host-access", edit: (agent) => (agent.volumes = [...((agent.volumes as unknown[]) ?? []), { type: "bind", source: "/var/run/docker.sock", target: "/var/run/docker.sock" }]) },
  { name: "a host directory mounted (short syntax)", expected: "isolation.host-access", edit: (agent) => (agent.volumes = [...((agent.volumes as unknown[]) ?? []), "/home/admin:/mnt/home"]) },
  { name: "a published port", expected: "isolation.host-access", edit: (agent) => (agent.ports = ["0.0.0.0:9119:9119"]) },
  { name: "network_mode: host", expected: "isolation.network-policy", edit: (agent) => (agent.network_mode = "host") },
  { name: "the agent also on the egress network (a route out)", expected: "isolation.network-policy", edit: (agent) => (agent.networks = { ...(agent.networks as Record<string, unknown>), egress: null }) },
  { name: "the agent's network no longer internal", expected: "isolation.network-policy", edit: (_agent, networks) => delete networks.agent?.internal },
];

for (const variant of VARIANTS) {
  test(`broken compose: ${variant.name} → ${variant.expected} FAILs, the other check passes`, () => {
    const changed = structuredClone(project);
    variant.edit(changed.services["hermes-gateway"] as Record<string, unknown>, changed.networks);
    const results = composeChecks(changed);
    assert.deepEqual(results.filter((result) => result.status === "FAIL").map((result) => result.id), [variant.expected], JSON.stringify(results));
    assert.ok((results.find((result) => result.id === variant.expected)?.fix ?? "").length > 0);
  });
}

test("the whole CLI through a stand-in docker: compose config parsed, the probe's output read back, a leaked key found", () => {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-verify-compose-"));
  try {
    writeFileSync(join(directory, "config.json"), JSON.stringify(project));
    const log = join(directory, "docker.log");
    // Stands in for the Docker CLI and engine: logs its arguments, answers `config`, runs `exec`'s command with the
    // environment the rendered service gives its container (plus EXTRA_ENV).
    writeFileSync(
      join(directory, "docker"),
      `#!/bin/sh\nprintf '%s\\n' "$*" | cut -c1-200 >> "${log}"\ncase " $* " in\n  *" config "*) cat "${join(directory, "config.json")}";;\n  *" exec "*) while [ "$1" != "hermes-gateway" ]; do shift; done; shift; shift; exec env -i PATH=/usr/bin:/bin HTTPS_PROXY=http://127.0.0.1:9 $EXTRA_ENV /usr/bin/python3 "$@";;\nesac\n`,
    );
    chmodSync(join(directory, "docker"), 0o755);
    const run = (extra: string) =>
      spawnSync(process.execPath, [BIN, "verify", "isolation", "-t", "compose", "-c", EXAMPLE, "--compose-file", join(directory, "compose.yaml"), "--project", "hermes", "--format", "json"], {
        encoding: "utf8",
        env: { PATH: `${directory}:/usr/bin:/bin`, EXTRA_ENV: extra },
        timeout: 60_000,
      });
    const clean = run("");
    const report = JSON.parse(clean.stdout) as { results: Array<{ id: string; status: string; evidence: string }>; vantage: string };
    const byId = new Map(report.results.map((result) => [result.id, result]));
    assert.match(report.vantage, /docker compose exec/);
    for (const id of ["isolation.host-access", "isolation.network-policy", "isolation.service-account-token", "isolation.docker-socket", "isolation.agent-env"]) assert.equal(byId.get(id)?.status, "PASS", `${id}: ${JSON.stringify(byId.get(id))}`);
    // Nothing listens on the stand-in proxy's port: the probe's answer is parsed and reported, not invented.
    assert.equal(byId.get("isolation.proxy-refuses")?.status, "FAIL");
    assert.match(byId.get("isolation.proxy-refuses")?.evidence ?? "", /cannot reach the proxy: refused/);
    assert.equal(clean.status, 1);
    const calls = readFileSync(log, "utf8");
    assert.match(calls, /^compose --file .*compose\.yaml --project-name hermes config --format json$/m);
    assert.match(calls, /^compose --file .*compose\.yaml --project-name hermes exec -T hermes-gateway python3 -c import base64,zlib;/m);

    const leaked = run("OPENROUTER_API_KEY=sk-or-leaked-0123456789");
    const leakedReport = JSON.parse(leaked.stdout) as { results: Array<{ id: string; status: string; evidence: string }> };
    const environment = leakedReport.results.find((result) => result.id === "isolation.agent-env");
    assert.equal(environment?.status, "FAIL");
    assert.match(environment?.evidence ?? "", /OPENROUTER_API_KEY/);
    assert.ok(!leaked.stdout.includes("sk-or-leaked-0123456789"), "the value is never printed");
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
