// Test support: runs one Kubernetes-backend task in a process of its own and reports its peak resident memory
// (VmHWM), so a test can hold the runner's memory to a bound. Usage (the stand-in's address and certificate come in
// the environment): node kubernetes-memory-probe.ts TEMPLATE_JSON TASK_JSON. Prints one JSON line on stdout.
import { readFileSync } from "node:fs";
import { createKubernetesBackend } from "./kubernetes.ts";
import { standInKubeConfig } from "./kubernetes-stand-in.ts";
import type { SandboxLimits, SandboxTask } from "./task.ts";

function peakResidentBytes(): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
  if (match === null) throw new Error("no VmHWM in /proc/self/status");
  return Number(match[1]) * 1024;
}

const [templateJson, limitsJson, taskJson] = process.argv.slice(2) as [string, string, string];
const kubeConfig = await standInKubeConfig({ url: process.env.STAND_IN_URL as string, certificate: process.env.STAND_IN_CERTIFICATE as string });
const backend = createKubernetesBackend({ kubeConfig, template: JSON.parse(templateJson), defaults: JSON.parse(limitsJson) as SandboxLimits });
// A small task first, so the baseline includes the client library and one round trip.
await backend.run({ argv: ["true"] });
const baseline = peakResidentBytes();
const result = await backend.run(JSON.parse(taskJson) as SandboxTask);
const peak = peakResidentBytes();
await backend.close();
process.stdout.write(
  `${JSON.stringify({
    baseline,
    peak,
    exitCode: result.exitCode,
    reason: result.reason,
    stdoutBytes: result.stdout.bytes,
    stdoutKept: result.stdout.data.length,
    files: result.files.map((file) => ({ path: file.path, bytes: file.content.length })),
    filesMissing: result.filesMissing,
    limitsHit: result.limitsHit,
  })}\n`,
);
