// Requirement (issue 13 item 9): every example's llm section starts the proxy as shipped — `perimeter serve
// llm-proxy -c examples/X.yaml` — so an operator copying an example never meets a proxy that refuses to start
// (compose-vps.yaml, an Anthropic default failing over to OpenRouter, was refused before translation existed).
// Only the audit log is moved to a temporary directory; the providers are not called (nothing leaves loopback).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { parseConfig } from "../config/index.ts";
import { eventually, temporaryDirectory } from "./test-support.ts";

const root = join(import.meta.dirname, "..", "..");
const examples = readdirSync(join(root, "examples")).filter((name) => name.endsWith(".yaml"));

test("the examples directory holds the examples this test starts", () => {
  assert.ok(examples.includes("compose-vps.yaml") && examples.length >= 3, examples.join(", "));
});

for (const name of examples) {
  test(`serve llm-proxy starts with the llm section of examples/${name}`, async () => {
    const text = readFileSync(join(root, "examples", name), "utf8");
    const config = parseConfig(text, name);
    const directory = temporaryDirectory();
    const document = parseDocument(text);
    document.setIn(["audit", "path"], join(directory, "audit.db"));
    if (document.hasIn(["audit", "signingKeyFile"])) document.setIn(["audit", "signingKeyFile"], join(directory, "audit-signing.pem"));
    if (document.hasIn(["llm", "keysPath"])) document.setIn(["llm", "keysPath"], join(directory, "keys.db"));
    const file = join(directory, name);
    writeFileSync(file, document.toString());
    // Every variable the llm section names, with a random value (as an operator's deployment provides them).
    const secrets = [
      ...Object.values(config.llm.providers).flatMap((provider) => (provider.apiKeySecret === undefined ? [] : [provider.apiKeySecret])),
      ...config.llm.clients.map((client) => client.keySecret),
      ...config.llm.canaries,
    ];
    const environment = Object.fromEntries(secrets.map((secret) => [secret, `value-${randomBytes(16).toString("hex")}`]));
    const child = spawn(process.execPath, [join(root, "bin", "perimeter.js"), "serve", "llm-proxy", "-c", file, "--listen", "127.0.0.1:0"], {
      cwd: directory,
      env: { PATH: process.env.PATH, ...environment },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      await eventually(() => stderr.includes("llm-proxy listening") || child.exitCode !== null, 20_000);
      assert.ok(stderr.includes("llm-proxy listening"), `examples/${name}: the proxy did not start (exit ${child.exitCode}): ${stderr}`);
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
      for (const value of Object.values(environment)) assert.ok(!stderr.includes(value), "no secret value in the logs");
    } finally {
      child.kill("SIGKILL");
    }
  });
}
