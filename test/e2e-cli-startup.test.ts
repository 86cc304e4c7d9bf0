// Requirement: `perimeter sandbox exec -- CMD` loads only what one sandboxed command needs. The serve-only stack (MCP
// SDK, sandbox MCP server, audit log, egress proxy, Kubernetes client, render) is imported lazily by `serve sandbox`
// and the kubernetes backend, because every module costs start-up time on each shell command. Proven with the real
// CLI and a real bubblewrap sandbox; a resolve hook records every module the process loads. No timing is asserted
// (start-up figures on a shared machine are for the benchmark, docs/sandbox.md).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { BIN } from "./fixtures/e2e-support.ts";

const HOOK = join(import.meta.dirname, "fixtures", "trace-imports.mjs");

function traced(args: string[]): Promise<{ code: number; stdout: string; stderr: string; modules: string[] }> {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-startup-"));
  const file = join(directory, "modules.txt");
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", HOOK, BIN, ...args],
      { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: directory, TRACE_IMPORTS_FILE: file }, timeout: 30_000 },
      (error, stdout, stderr) => {
        let modules: string[] = [];
        try {
          modules = readFileSync(file, "utf8").trim().split("\n");
        } catch {
          // no module traced: the assertions below say so
        }
        rmSync(directory, { recursive: true, force: true });
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr, modules });
      },
    );
  });
}

test("perimeter sandbox exec runs a command without loading the serve-only stack (MCP SDK, audit log, egress proxy, Kubernetes, render)", async () => {
  const result = await traced(["sandbox", "exec", "--", "echo", "from-exec"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "from-exec\n");
  assert.ok(result.modules.some((url) => url.endsWith("/src/sandbox/bubblewrap.ts")), `the trace saw the sandbox backend load (${result.modules.length} modules)`);
  const forbidden = [
    /\/node_modules\/@modelcontextprotocol\//,
    /\/node_modules\/@kubernetes\//,
    /\/node_modules\/prom-client\//,
    /\/src\/sandbox\/server\.ts$/,
    /\/src\/sandbox\/kubernetes\.ts$/,
    /\/src\/sandbox\/egress\.ts$/,
    /\/src\/egress-proxy\//,
    /\/src\/audit-log\//,
    /\/src\/render\//,
  ];
  const loaded = result.modules.filter((url) => forbidden.some((pattern) => pattern.test(url)));
  assert.deepEqual(loaded, [], "sandbox exec loaded serve-only modules");
});

test("the trace sees lazily imported modules: perimeter audit-log verify loads src/audit-log (positive control)", async () => {
  const result = await traced(["audit-log", "verify", "--db", join(tmpdir(), "perimeter-no-such-audit.db")]);
  assert.equal(result.code, 2, "a missing database is exit 2");
  assert.ok(result.modules.some((url) => /\/src\/audit-log\//.test(url)), "the hook records modules imported by dynamic import()");
});
