// Requirements (issue 17 item 2, the apply step): `perimeter host apply DIR` shows what it will change before
// changing it, checks every file before installing it (nft -c, sshd -t, fail2ban-client -t, systemd-analyze verify),
// is idempotent, never overwrites the operator's env files, and refuses — changing nothing — when the SSH session it
// runs in would be locked out. Driven through the real CLI against a --root directory (root and the tools needed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeDirectory } from "../write.ts";
import { exampleConfig } from "../testing.ts";
import { renderTarget } from "../render.ts";

const PERIMETER = fileURLToPath(new URL("../../../bin/perimeter.js", import.meta.url));
const NODE = process.execPath;
const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const needed = ["nft", "sshd", "fail2ban-client", "systemd-analyze", "systemd-sysusers", "systemd-tmpfiles", "unshare"].filter((command) => spawnSync("sh", ["-c", `command -v ${command}`], { env: { PATH } }).status !== 0);
const skip = process.getuid?.() !== 0 ? "needs root (chown, nft -c; CI runs the suite as root)" : needed.length > 0 ? `needs ${needed.join(", ")} (scripts/install-system-packages.sh)` : false;

function render(): string {
  const directory = join(mkdtempSync(join(tmpdir(), "perimeter-apply-")), "render");
  const written = writeDirectory(directory, renderTarget(exampleConfig("vps"), "vps").files, { force: false });
  assert.ok(written.ok);
  return directory;
}

/** A fresh image root with the admin account and its key, as on a provider's Debian image. */
function hostRoot(): string {
  const root = mkdtempSync(join(tmpdir(), "perimeter-apply-root-"));
  mkdirSync(join(root, "etc"), { recursive: true });
  mkdirSync(join(root, "home/admin/.ssh"), { recursive: true });
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000::/home/admin:/bin/bash\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\nadmin:x:1000:\n");
  writeFileSync(join(root, "home/admin/.ssh/authorized_keys"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPerimeterTestKeyOnly admin@laptop\n");
  return root;
}

function apply(directory: string, root: string, options: { sshClient?: string; user?: string; dryRun?: boolean } = {}) {
  // nft -c needs a network namespace it may change: a private one, as in CI.
  const result = spawnSync("unshare", ["--net", NODE, PERIMETER, "host", "apply", directory, "--root", root, ...(options.dryRun === true ? ["--dry-run"] : [])], {
    encoding: "utf8",
    env: { PATH, USER: options.user ?? "admin", ...(options.sshClient === undefined ? {} : { SSH_CLIENT: options.sshClient }) },
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (directory: string) => {
    for (const entry of readdirSync(directory).sort()) {
      const path = join(directory, entry);
      const stat = statSync(path);
      out.push(`${path.slice(root.length)} ${(stat.mode & 0o7777).toString(8)} ${stat.uid} ${stat.isFile() ? readFileSync(path, "utf8").length : "dir"}`);
      if (stat.isDirectory()) walk(path);
    }
  };
  walk(root);
  return out;
}

test("apply refuses, changing nothing, when the SSH session comes from outside the admin ranges", { skip }, () => {
  const root = hostRoot();
  const before = tree(root);
  const result = apply(render(), root, { sshClient: "198.51.100.9 51000 22" });
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, /refused, nothing was changed: your SSH session comes from 198\.51\.100\.9.*add 198\.51\.100\.9\/32/);
  assert.deepEqual(tree(root), before);
});

test("apply refuses when the login user is not an admin user, or no admin has a key", { skip }, () => {
  const root = hostRoot();
  assert.match(apply(render(), root, { sshClient: "203.0.113.7 51000 22", user: "deploy" }).stderr, /deploy, which is not in host\.ssh\.adminUsers/);
  writeFileSync(join(root, "home/admin/.ssh/authorized_keys"), "");
  const before = tree(root);
  assert.match(apply(render(), root, { sshClient: "203.0.113.7 51000 22" }).stderr, /no admin user has an authorized key/);
  assert.deepEqual(tree(root), before);
});

test("--dry-run lists every change and every check and writes nothing", { skip }, () => {
  const root = hostRoot();
  const before = tree(root);
  const result = apply(render(), root, { sshClient: "203.0.113.7 51000 22", dryRun: true });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^ {2}new {7}\/etc\/ssh\/sshd_config\.d\/00-perimeter\.conf \(root 0644\)$/m);
  for (const check of ["nft", "sshd", "fail2ban", "systemd-unit", "sysusers"]) assert.match(result.stdout, new RegExp(`: ok \\(${check}\\)$`, "m"), check);
  assert.deepEqual(tree(root), before);
});

test("apply installs with owners and modes (agent data 0700, .env 0600, env files root 0600), and a second run changes nothing", { skip }, () => {
  const root = hostRoot();
  const directory = render();
  const first = apply(directory, root, { sshClient: "203.0.113.7 51000 22" });
  assert.equal(first.status, 0, first.stderr);
  assert.match(readFileSync(join(root, "etc/passwd"), "utf8"), /^hermes:x:10000:10000:.*:\/var\/lib\/hermes:\/usr\/sbin\/nologin$/m);
  const mode = (path: string) => (statSync(join(root, path)).mode & 0o777).toString(8);
  assert.equal(mode("var/lib/hermes/.hermes"), "700");
  assert.equal(statSync(join(root, "var/lib/hermes/.hermes")).uid, 10000);
  assert.equal(mode("var/lib/hermes/.hermes/.env"), "600");
  assert.equal(mode("var/lib/hermes/.hermes/config.yaml"), "600");
  assert.equal(mode("etc/perimeter/env/llm-proxy.env"), "600");
  assert.equal(statSync(join(root, "etc/perimeter/env/llm-proxy.env")).uid, 0);
  assert.match(first.stdout, /services not started: fill in these variables first/);

  // The operator fills in a secret; the next apply keeps it, touches nothing, restarts nothing.
  writeFileSync(join(root, "etc/perimeter/env/llm-proxy.env"), "HERMES_LLM_KEY=filled\nOPENROUTER_API_KEY=filled\n");
  const before = tree(root);
  const second = apply(directory, root, { sshClient: "203.0.113.7 51000 22" });
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stdout, /^installed 0 file\(s\)$/m);
  assert.doesNotMatch(second.stdout, /^ {2}(new|changed|mode) /m);
  assert.match(second.stdout, /^ {2}kept {6}\/etc\/perimeter\/env\/llm-proxy\.env/m);
  assert.doesNotMatch(second.stdout, /^ {2}(run|skipped \(--root\)): (systemctl (restart|reload)|sshd)/m);
  assert.match(first.stdout, /^ {2}skipped \(--root\): systemctl restart perimeter-firewall\.service$/m, "the first run does (re)load what it installed");
  assert.deepEqual(tree(root), before);
});

test("a file its tool rejects stops apply before anything is installed (sshd -t, nft -c)", { skip }, () => {
  for (const [file, from, to] of [
    ["files/etc/ssh/sshd_config.d/00-perimeter.conf", "PermitRootLogin no", "PermitRootLogin perhaps"],
    ["files/etc/perimeter/nftables.nft", "policy drop;", "policy perhaps;"],
  ] as const) {
    const root = hostRoot();
    const directory = render();
    writeFileSync(join(directory, file), readFileSync(join(directory, file), "utf8").replace(from, to));
    const before = tree(root);
    const result = apply(directory, root, { sshClient: "203.0.113.7 51000 22" });
    assert.equal(result.status, 1, file);
    assert.match(result.stderr, /refused, nothing was changed/);
    assert.deepEqual(tree(root), before, file);
  }
});

test("a changed file is shown as a diff before it is replaced; a changed env file (a seed) is never shown or replaced", { skip }, () => {
  const root = hostRoot();
  const directory = render();
  assert.equal(apply(directory, root, { sshClient: "203.0.113.7 51000 22" }).status, 0);
  writeFileSync(join(root, "etc/ssh/sshd_config.d/00-perimeter.conf"), "PermitRootLogin yes\n");
  writeFileSync(join(root, "etc/perimeter/env/mcp-guard.env"), "PERIMETER_ADMIN_TOKEN=secret-value-1234\n");
  const result = apply(directory, root, { sshClient: "203.0.113.7 51000 22", dryRun: true });
  assert.match(result.stdout, /changed {3}\/etc\/ssh\/sshd_config\.d\/00-perimeter\.conf[\s\S]*-PermitRootLogin yes[\s\S]*\+PermitRootLogin no/);
  assert.doesNotMatch(result.stdout, /secret-value-1234/);
  assert.equal(apply(directory, root, { sshClient: "203.0.113.7 51000 22" }).status, 0);
  assert.match(readFileSync(join(root, "etc/ssh/sshd_config.d/00-perimeter.conf"), "utf8"), /^PermitRootLogin no$/m);
  assert.equal(readFileSync(join(root, "etc/perimeter/env/mcp-guard.env"), "utf8"), "PERIMETER_ADMIN_TOKEN=secret-value-1234\n");
});
