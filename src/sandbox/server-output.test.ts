// The runner's answers alone: binary output as base64, credentials out of recorded command lines, the summary text.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeUtf8, redactArgument, resultSummary } from "./server-output.ts";
import type { SandboxResult } from "./task.ts";
import { TEST_LIMITS } from "./test-support.ts";

test("output that is not UTF-8 comes back as base64, and says so", () => {
  assert.deepEqual(decodeUtf8(Buffer.from("héllo")), { text: "héllo", encoding: "utf8" });
  assert.deepEqual(decodeUtf8(Buffer.from([0xff, 0xfe])), { text: "//4=", encoding: "base64" });
});

test("a credential in a command line is recorded as its kind; long arguments are clipped", () => {
  assert.match(redactArgument("sk-ant-api03-" + "a".repeat(90)), /^\[redacted .+\]$/);
  assert.equal(redactArgument("print(1)"), "print(1)");
  assert.equal(redactArgument("x".repeat(600)), `${"x".repeat(512)}...(600 chars)`);
});

test("the summary names the exit, both streams with their truncation, and the files", () => {
  const result: SandboxResult = {
    exitCode: 137,
    signal: "SIGKILL",
    reason: "output-limit",
    stdout: { data: Buffer.from("partial"), bytes: 9000, truncated: true },
    stderr: { data: Buffer.alloc(0), bytes: 0, truncated: false },
    durationMs: 12.4,
    files: [],
    filesMissing: ["out"],
    limits: { backend: "bubblewrap", limits: TEST_LIMITS, cgroup: null, network: "none", seccomp: true, missing: [] },
    limitsHit: ["output"],
  };
  const summary = resultSummary(result, [{ path: "a.txt", content: "a", encoding: "utf8", mode: 0o644 }]);
  assert.equal(summary.text, ["exit code: 137 (SIGKILL); ended by: output-limit; 12 ms", "--- stdout (truncated; 9000 bytes written)", "partial", "--- stderr", "", "--- files returned: a.txt (see structuredContent)", "--- not returned: out"].join("\n"));
  assert.equal(summary.structured.stdoutTruncated, true);
  assert.equal(summary.structured.durationMs, 12);
});
