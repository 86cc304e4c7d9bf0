// Issue 14 item 6: a rendered deployment signs its audit checkpoints on every target. Each component's runtime
// perimeter.yaml names a signing key inside its own state volume (created there on first start, so no key is ever
// in the render), and the runbook says how to take each public key off the host.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import { parseConfig } from "../config/index.ts";
import { RenderError, STATE_DIRECTORY } from "./plan.ts";
import { renderTarget } from "./render.ts";
import { EXAMPLES, TARGETS, exampleConfig, renderedFiles } from "./testing.ts";
import type { Target } from "./plan.ts";

/** Every perimeter.yaml a service of this render reads, by where it sits in the render. */
function runtimeConfigs(files: Map<string, string>, target: Target): Map<string, string> {
  const found = new Map<string, string>();
  for (const [path, content] of files) {
    if (target === "kubernetes") {
      if (!path.endsWith(".yaml") || path === "kustomization.yaml") continue;
      for (const document of parseAllDocuments(content, { version: "1.1" })) {
        const object = document.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> } | null;
        if (object?.kind !== "ConfigMap") continue;
        for (const [key, value] of Object.entries(object.data ?? {})) {
          if (key.endsWith(".yaml") && (parse(value) as { audit?: unknown } | null)?.audit !== undefined) found.set(`${path} ${object.metadata?.name}/${key}`, value);
        }
      }
    } else if (/^(config|files\/etc\/perimeter)\/[^/]+\.yaml$/.test(path) && (parse(content) as { audit?: unknown } | null)?.audit !== undefined) {
      found.set(path, content);
    }
  }
  return found;
}

const cases: Array<[string, Target]> = [...EXAMPLES.flatMap((example) => TARGETS.map((target): [string, Target] => [example, target])), ["vps", "vps"]];

for (const [example, target] of cases) {
  test(`${example} on ${target}: every runtime config signs audit checkpoints with a key in its own state volume`, () => {
    assert.equal(exampleConfig(example).audit.signingKeyFile, undefined, "the example itself sets no key: the render must");
    const files = renderedFiles(exampleConfig(example), target);
    const configs = runtimeConfigs(files, target);
    assert.ok(configs.size >= 1, "no runtime perimeter.yaml found");
    for (const [where, text] of configs) {
      const runtime = parseConfig(text, where);
      const key = runtime.audit.signingKeyFile;
      assert.ok(key !== undefined, `${where}: audit.signingKeyFile is not set, so its checkpoints are unsigned`);
      assert.ok(key.startsWith(`${STATE_DIRECTORY}/`), `${where}: ${key} is not in the state volume ${STATE_DIRECTORY}`);
    }
    const runbook = files.get("RUNBOOK.md") ?? "";
    assert.match(runbook, /perimeter audit-log public-key/, "the runbook must say how to keep each public key off the host");
  });
}

test("an operator's own audit.signingKeyFile is kept as declared (in the state volume)", () => {
  const config = exampleConfig("compose-vps");
  config.audit.signingKeyFile = `${STATE_DIRECTORY}/my-key.pem`;
  const runtime = parseConfig(renderedFiles(config, "compose").get("config/perimeter.yaml") ?? "", "perimeter.yaml");
  assert.equal(runtime.audit.signingKeyFile, `${STATE_DIRECTORY}/my-key.pem`);
});

// Issue 14 item 6, second promise: sandbox.image is honoured (Kubernetes runs every task in it) or refused where the
// bubblewrap backend would silently run tasks on the runner's own /usr instead (Compose, vps).
test("sandbox.image is refused on compose and vps, saying what to do", () => {
  for (const [example, target] of [["compose-vps", "compose"], ["vps", "vps"]] as const) {
    const config = exampleConfig(example);
    config.sandbox.image = "python:3.12-slim";
    assert.throws(
      () => renderTarget(config, target),
      (error: Error) => error instanceof RenderError && /sandbox\.image/.test(error.message) && /remove sandbox\.image/i.test(error.message) && /kubernetes/.test(error.message),
      `${target} must refuse sandbox.image`,
    );
  }
});

test("sandbox.image is honoured on kubernetes: the task Job runs it, and python:3.12-slim when it is not set", () => {
  const jobImage = (image: string | undefined): string => {
    const config = exampleConfig("k3s-telegram-minimax");
    config.sandbox.image = image;
    const text = [...renderedFiles(config, "kubernetes").values()].join("\n");
    const match = /- name: task\n\s+image: (\S+)/.exec(text);
    assert.ok(match !== null, "no sandbox task image in the render");
    return match[1] as string;
  };
  assert.equal(jobImage("registry.example.com/sandbox/python:3.13"), "registry.example.com/sandbox/python:3.13");
  assert.equal(jobImage(undefined), "python:3.12-slim");
});
