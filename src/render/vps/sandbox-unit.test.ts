// Requirement (issue 17, found by scripts/vps-nspawn-proof.sh on a booted Debian 12): the sandbox runner starts
// under its own rendered unit. RestrictAddressFamilies= is a seccomp filter on socket() for the runner and
// everything it starts, bubblewrap included; bwrap brings up the loopback of each task's new network namespace over
// rtnetlink, so without AF_NETLINK the runner's self-test failed ("bwrap: loopback: Failed to create NETLINK_ROUTE
// socket: Address family not supported by protocol") and the unit restarted until systemd gave up. This traces
// the socket() calls of a real sandboxed command and holds each rendered runner unit to the families it saw.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { configFrom, exampleText } from "../testing.ts";
import { renderVps } from "./render.ts";

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const missing = ["strace", "bwrap"].filter((command) => spawnSync("sh", ["-c", `command -v ${command}`], { env: { PATH } }).status !== 0);
const skip = missing.length > 0 ? `needs ${missing.join(", ")} (scripts/install-system-packages.sh)` : false;
const repository = resolve(import.meta.dirname, "../../..");

/** Address families of every socket() the runner's bubblewrap backend and its task open for one command. */
function familiesOfOneSandboxedCommand(): Set<string> {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-sandbox-families-"));
  try {
    const trace = join(directory, "trace");
    const result = spawnSync("strace", ["-f", "-qq", "-e", "trace=socket", "-o", trace, process.execPath, join(repository, "bin/perimeter.js"), "sandbox", "exec", "--", "true"], {
      encoding: "utf8",
      env: { PATH, HOME: directory },
      timeout: 120_000,
    });
    assert.equal(result.status, 0, `perimeter sandbox exec -- true failed: ${result.stdout}${result.stderr}`);
    return new Set([...readFileSync(trace, "utf8").matchAll(/socket\((AF_[A-Z0-9]+)/g)].map((match) => match[1] ?? ""));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

test("sandbox runner units allow every address family its bubblewrap backend opens", { skip }, () => {
  const seen = familiesOfOneSandboxedCommand();
  assert.ok(seen.has("AF_NETLINK"), `the trace shows bwrap's rtnetlink socket (saw ${[...seen].join(", ")})`);
  const configs = {
    "examples/vps.yaml": configFrom(exampleText("vps")),
    "sandbox.network.allow": configFrom(exampleText("vps").replace("  network: none", "  network: { allow: [pypi.org] }")),
  };
  for (const [name, config] of Object.entries(configs)) {
    const runner = renderVps(config).units.find((unit) => unit.name === "perimeter-sandbox.service");
    assert.ok(runner !== undefined, `${name} renders perimeter-sandbox.service`);
    const allowed = new Set(runner.service.filter(([key]) => key === "RestrictAddressFamilies").flatMap(([, value]) => value.split(/\s+/)));
    const refused = [...seen].filter((family) => !allowed.has(family));
    assert.deepEqual(refused, [], `${name}: perimeter-sandbox.service RestrictAddressFamilies=${[...allowed].join(" ")} refuses ${refused.join(", ")}, which a sandboxed command needs`);
  }
});
