// Requirements (issue 18): text names the fix under each FAIL; JSON round-trips; JUnit XML is accepted by a real XML
// parser (Python's expat, as CI tools' JUnit readers are built on one) and reads as JUnit: one testcase per check, a
// failure for each FAIL, skipped for SKIP — with hostile evidence (markup, quotes, control characters) intact.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { formatReport } from "./format.ts";
import type { Report } from "./format.ts";
import { verificationExit } from "./model.ts";

const HOSTILE = `<script>alert("x")</script> & 'quotes' ]]> \u0001 bell`;

const REPORT: Report = {
  target: "local",
  vantage: "in the agent's namespaces",
  notes: ["a note"],
  seconds: 3.2,
  results: [
    { id: "isolation.lan", suite: "isolation", status: "PASS", evidence: "10.0.0.1:80 timeout", seconds: 2.5 },
    { id: "isolation.proxy-refuses", suite: "isolation", status: "FAIL", evidence: HOSTILE, fix: "point HTTPS_PROXY at egress-proxy" },
    { id: "mcp.github.review", suite: "mcp", status: "WARN", evidence: "create_issue waits for review", fix: "perimeter approvals list" },
    { id: "host.backup", suite: "host", status: "SKIP", evidence: "no backup: section" },
  ],
};

const JUNIT_READER = String.raw`
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
cases = []
for suite in root.iter("testsuite"):
    for case in suite.iter("testcase"):
        failure = case.find("failure")
        cases.append({"suite": suite.get("name"), "name": case.get("name"), "failure": None if failure is None else failure.get("message"), "failureText": None if failure is None else failure.text, "skipped": case.find("skipped") is not None, "out": case.findtext("system-out")})
print(json.dumps({"root": root.tag, "tests": root.get("tests"), "failures": root.get("failures"), "skipped": root.get("skipped"), "cases": cases}))
`;

test("JUnit output parses with a real XML parser and reads as JUnit", () => {
  const xml = formatReport(REPORT, "junit");
  const parsed = spawnSync("/usr/bin/python3", ["-c", JUNIT_READER], { input: xml, encoding: "utf8" });
  assert.equal(parsed.status, 0, parsed.stderr);
  const junit = JSON.parse(parsed.stdout) as { root: string; tests: string; failures: string; skipped: string; cases: Array<{ suite: string; name: string; failure: string | null; failureText: string | null; skipped: boolean; out: string | null }> };
  assert.equal(junit.root, "testsuites");
  assert.deepEqual([junit.tests, junit.failures, junit.skipped], ["4", "1", "1"]);
  assert.deepEqual(junit.cases.map((entry) => [entry.suite, entry.name]), [["isolation", "isolation.lan"], ["isolation", "isolation.proxy-refuses"], ["mcp", "mcp.github.review"], ["host", "host.backup"]]);
  const failure = junit.cases[1];
  // The control character cannot travel in XML 1.0; everything else arrives as written.
  assert.equal(failure?.failure, HOSTILE.replace("\u0001", "\uFFFD"));
  assert.match(failure?.failureText ?? "", /fix: point HTTPS_PROXY at egress-proxy/);
  assert.equal(junit.cases[3]?.skipped, true);
  assert.match(junit.cases[2]?.out ?? "", /^WARN create_issue waits for review — fix: perimeter approvals list/);
  assert.equal(junit.cases[0]?.failure, null);
});

test("text shows PASS/WARN/FAIL/SKIP per check, the fix under FAIL and WARN, and a summary", () => {
  const text = formatReport(REPORT, "text");
  assert.match(text, /^perimeter verify -t local: agent-side probes in the agent's namespaces\nnote: a note\n/);
  assert.match(text, /● isolation\n {2}PASS  isolation\.lan  10\.0\.0\.1:80 timeout\n {2}FAIL  isolation\.proxy-refuses  .*\n {8}fix: point HTTPS_PROXY at egress-proxy\n/);
  assert.match(text, /WARN  mcp\.github\.review .*\n {8}fix: perimeter approvals list/);
  assert.match(text, /1 passed, 1 warnings, 1 failed, 1 skipped in 3\.2 s\n$/);
});

test("JSON round-trips the report", () => {
  assert.deepEqual(JSON.parse(formatReport(REPORT, "json")), JSON.parse(JSON.stringify(REPORT)));
});

test("exit 1 when anything FAILs, 0 when only PASS, WARN and SKIP", () => {
  assert.equal(verificationExit(REPORT.results), 1);
  assert.equal(verificationExit(REPORT.results.filter((result) => result.status !== "FAIL")), 0);
});
