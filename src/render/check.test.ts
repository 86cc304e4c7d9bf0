// Requirement (brief): `perimeter check` over every render reports zero findings; the only suppressions are the
// deliberate exceptions docs/render.md lists, each with its reason. Runs the real CLI on the written directories.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderTarget, writeDirectory } from "./index.ts";
import { EXAMPLES, TARGETS, exampleConfig } from "./testing.ts";

const bin = new URL("../../bin/perimeter.js", import.meta.url).pathname;

/** The exceptions render makes on purpose (docs/render.md, "Deliberate exceptions"). */
const DELIBERATE = new Set([
  "K8S-SA-TOKEN-AUTOMOUNT",
  "K8S-RBAC-CREATE-PODS",
  "K8S-NETPOL-IPBLOCK-IN-CLUSTER",
  "K8S-RUN-AS-ROOT",
  "K8S-CAPABILITIES-NOT-DROPPED",
  "K8S-READONLY-ROOTFS",
  "COMPOSE-SECURITY-OPT-UNCONFINED",
]);

interface CheckJson {
  summary: { findings: number; failing: number; suppressed: number; errors: number };
  findings: Array<{ rule: string; suppression?: { reason: string } }>;
}

for (const example of EXAMPLES) {
  for (const target of TARGETS) {
    test(`perimeter check finds nothing in the ${target} render of ${example}`, () => {
      const root = mkdtempSync(join(tmpdir(), "perimeter-render-check-"));
      const directory = join(root, "out");
      assert.ok(writeDirectory(directory, renderTarget(exampleConfig(example), target).files, { force: false }).ok);
      const result = spawnSync(process.execPath, [bin, "check", directory, "--format", "json"], { encoding: "utf8", timeout: 120_000 });
      assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
      const report = JSON.parse(result.stdout) as CheckJson;
      assert.equal(report.summary.failing, 0);
      assert.equal(report.summary.errors, 0);
      for (const finding of report.findings) {
        assert.ok(finding.suppression !== undefined, `${finding.rule} is not suppressed`);
        assert.ok(DELIBERATE.has(finding.rule), `${finding.rule} is suppressed but not a documented exception`);
        assert.ok(finding.suppression.reason.length > 20, `${finding.rule}: the suppression gives no reason`);
      }
      rmSync(root, { recursive: true, force: true });
    });
  }
}
