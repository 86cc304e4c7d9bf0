// Requirement (issue 17, found by scripts/vps-nspawn-proof.sh on a booted Debian 12): the sandbox runner starts
// under its own rendered unit. Its seccomp-based settings hold for everything it starts, bubblewrap included:
// - RestrictAddressFamilies= filters socket(); bwrap brings up the loopback of each task's new network namespace
//   over rtnetlink, so without AF_NETLINK the self-test failed ("bwrap: loopback: Failed to create NETLINK_ROUTE
//   socket: Address family not supported by protocol");
// - ProtectHostname=yes refuses sethostname(); bwrap names each task's own UTS namespace, so the self-test failed
//   ("bwrap: Can't set hostname to sandbox: Operation not permitted").
// Either way the unit restarted until systemd gave up. This traces a real sandboxed command's socket() and
// sethostname() calls and holds each rendered runner unit to what it saw.
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

/** Address families of every socket(), and the names of other traced calls, of one sandboxed command. */
function traceOneSandboxedCommand(): { families: Set<string>; calls: Set<string> } {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-sandbox-families-"));
  try {
    const trace = join(directory, "trace");
    const result = spawnSync("strace", ["-f", "-qq", "-e", "trace=socket,sethostname,setdomainname", "-o", trace, process.execPath, join(repository, "bin/perimeter.js"), "sandbox", "exec", "--", "true"], {
      encoding: "utf8",
      env: { PATH, HOME: directory },
      timeout: 120_000,
    });
    assert.equal(result.status, 0, `perimeter sandbox exec -- true failed: ${result.stdout}${result.stderr}`);
    const text = readFileSync(trace, "utf8");
    return {
      families: new Set([...text.matchAll(/socket\((AF_[A-Z0-9]+)/g)].map((match) => match[1] ?? "")),
      calls: new Set([...text.matchAll(/\b(sethostname|setdomainname)\(/g)].map((match) => match[1] ?? "")),
    };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

test("sandbox runner units allow every address family its bubblewrap backend opens, and its sethostname", { skip }, () => {
  const { families: seen, calls } = traceOneSandboxedCommand();
  assert.ok(calls.has("sethostname"), `the trace shows bwrap naming the task's UTS namespace (saw ${[...calls].join(", ") || "no call"})`);
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
    const protectHostname = runner.service.filter(([key]) => key === "ProtectHostname").at(-1)?.[1] ?? "no";
    assert.notEqual(protectHostname, "yes", `${name}: perimeter-sandbox.service has ProtectHostname=yes, whose seccomp filter refuses the sethostname() bwrap makes in each task's own UTS namespace`);
  }
});
