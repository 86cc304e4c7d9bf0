// `perimeter agent-config`: each agent's own configuration carries the same facts render gives Hermes, and only
// names of secrets. The end-to-end proof that the files work with the real agents is test/agents/.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { PerimeterConfig } from "../config/index.ts";
import { configFrom, exampleConfig, exampleText, renderedFiles } from "../render/testing.ts";
import { AGENT_NAMES, agentConfiguration } from "./index.ts";

const BIN = join(import.meta.dirname, "..", "..", "bin", "perimeter.js");
const directory = mkdtempSync(join(tmpdir(), "agent-config-"));
after(() => rmSync(directory, { recursive: true, force: true }));

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr });
    });
  });
}

interface QwenSettings {
  modelProviders: { openai: Array<{ baseUrl: string; envKey: string }> };
  mcpServers: { perimeter: { httpUrl: string; headers: { Authorization: string }; timeout: number } };
  mcp: { toolIdleTimeoutMs: number };
  proxy: string;
  general: { enableAutoUpdate: boolean };
  privacy: { usageStatisticsEnabled: boolean };
  telemetry: { enabled: boolean };
  permissions: { deny: string[] };
}
const qwenSettings = (config: PerimeterConfig) => JSON.parse(agentConfiguration(config, "qwen-code").files[0]?.content ?? "{}") as QwenSettings;

const LOCAL = `version: 1
name: local-test
egress: { listen: "0.0.0.0:3199" }
mcp:
  listen: "[::1]:8799"
  agents: [{ name: worker, tokenSecret: WORKER_TOKEN }]
  servers:
    sandbox: { builtin: sandbox }
approvals: { timeoutSeconds: 120 }
llm:
  listen: "127.0.0.1:8798"
  providers:
    openai: { baseUrl: "https://api.openai.com/v1", apiKeySecret: OPENAI_API_KEY, models: [gpt-5] }
  clients: [{ name: worker, keySecret: WORKER_LLM_KEY }]
`;

describe("agent-config: every agent is told the same facts, in its own format", () => {
  const config = configFrom(LOCAL);

  test("Hermes' file is render's config.yaml, byte for byte (the same function, so they cannot drift)", () => {
    const example = exampleConfig("compose-vps");
    const rendered = renderedFiles(example, "compose").get("config/hermes-config.yaml");
    assert.ok(rendered !== undefined, "render wrote Hermes' config");
    assert.equal(agentConfiguration(example, "hermes", "compose").files[0]?.content, rendered);
    assert.ok(exampleText("compose-vps").length > 0);
  });

  test("local: the agent dials the listen addresses (a wildcard on loopback, IPv6 in brackets)", () => {
    const qwen = qwenSettings(config);
    assert.equal(qwen.modelProviders.openai[0]?.baseUrl, "http://127.0.0.1:8798/v1");
    assert.equal(qwen.modelProviders.openai[0]?.envKey, "WORKER_LLM_KEY", "the virtual key's variable, never the provider's");
    assert.equal(qwen.mcpServers.perimeter.httpUrl, "http://[::1]:8799/mcp");
    assert.equal(qwen.mcpServers.perimeter.headers.Authorization, "Bearer ${WORKER_TOKEN}");
    assert.equal(qwen.proxy, "http://127.0.0.1:3199");
    const codex = agentConfiguration(config, "codex").files[0]?.content ?? "";
    assert.match(codex, /^base_url = "http:\/\/127\.0\.0\.1:8798\/v1"$/m);
    assert.match(codex, /^url = "http:\/\/\[::1\]:8799\/mcp"$/m);
    assert.match(codex, /^bearer_token_env_var = "WORKER_TOKEN"$/m);
    assert.match(codex, /^env_key = "WORKER_LLM_KEY"$/m);
  });

  test("a held call outlasts no agent's deadline: every MCP timeout covers approvals.timeoutSeconds and the upstream", () => {
    // Hermes' deadline as render computes it: approvals.timeoutSeconds + the longest upstream timeout + a margin.
    const hermes = agentConfiguration(config, "hermes").files[0]?.content ?? "";
    const expected = Number(/^ {4}timeout: (\d+)$/m.exec(hermes)?.[1]);
    assert.ok(expected > 120 + 30, `Hermes' MCP timeout ${expected} s outlasts the 120 s hold`);
    const qwen = qwenSettings(config);
    assert.equal(qwen.mcpServers.perimeter.timeout, expected * 1000);
    assert.ok(qwen.mcp.toolIdleTimeoutMs >= (expected - 120) * 1000, "the idle timeout covers the longest silent upstream call");
    assert.match(agentConfiguration(config, "codex").files[0]?.content ?? "", new RegExp(`^tool_timeout_sec = ${expected}$`, "m"));
    const claude = JSON.parse(agentConfiguration(config, "claude-code").files[0]?.content ?? "{}") as { env: Record<string, string> };
    assert.equal(claude.env.MCP_TOOL_TIMEOUT, String(expected * 1000));
  });

  test("with commands only in sandboxes, each agent's own shell and file tools are off; telemetry and updates always", () => {
    const qwen = qwenSettings(config);
    assert.ok(qwen.permissions.deny.includes("run_shell_command") && qwen.permissions.deny.includes("write_file"));
    assert.deepEqual([qwen.general.enableAutoUpdate, qwen.privacy.usageStatisticsEnabled, qwen.telemetry.enabled], [false, false, false]);
    const codex = agentConfiguration(config, "codex").files[0]?.content ?? "";
    for (const line of ["shell_tool = false", "plugins = false", "check_for_update_on_startup = false"]) assert.ok(codex.includes(line), line);
    const inPod = configFrom(`${LOCAL}agent: { terminal: in-pod }\n`);
    const qwenInPod = qwenSettings(inPod);
    assert.ok(!qwenInPod.permissions.deny.includes("run_shell_command"), "in-pod keeps the shell (its network is the egress proxy's)");
    assert.ok(!(agentConfiguration(inPod, "codex").files[0]?.content ?? "").includes("shell_tool = false"));
  });

  test("the environment names secrets and never holds a value; no provider key is ever named", () => {
    for (const agent of AGENT_NAMES) {
      const configuration = agentConfiguration(config, agent);
      const secrets = configuration.environment.flatMap((entry) => ("secretKey" in entry ? [entry.secretKey] : []));
      assert.ok(secrets.includes("WORKER_LLM_KEY") && secrets.includes("WORKER_TOKEN"), `${agent}: ${secrets.join(", ")}`);
      assert.ok(!secrets.includes("OPENAI_API_KEY"), `${agent} is never given the provider key`);
      for (const file of configuration.files) assert.ok(!file.content.includes("OPENAI_API_KEY"), `${agent} ${file.name}`);
    }
  });
});

describe("perimeter agent-config (the command)", () => {
  const configFile = join(directory, "perimeter.yaml");
  writeFileSync(configFile, LOCAL);
  const secretValues = { WORKER_TOKEN: "worker-token-value-1234567890", WORKER_LLM_KEY: "sk-perimeter-virtual-value", OPENAI_API_KEY: "sk-provider-value-0987654321" };

  test("prints the file, the environment (names of secrets only) and JSON; a secret in the environment is never printed", async () => {
    for (const agent of AGENT_NAMES) {
      for (const mode of [[], ["--env"], ["--json"]]) {
        const result = await cli(["agent-config", "--agent", agent, "-c", configFile, ...mode], secretValues);
        assert.equal(result.code, 0, `${agent} ${mode.join(" ")}: ${result.stderr}`);
        assert.ok(result.stdout.length > 100);
        for (const value of Object.values(secretValues)) assert.ok(!result.stdout.includes(value), `${agent} ${mode.join(" ")} printed a secret`);
      }
    }
    const env = await cli(["agent-config", "--agent", "qwen-code", "-c", configFile, "--env"]);
    assert.match(env.stdout, /^HTTPS_PROXY=http:\/\/127\.0\.0\.1:3199$/m);
    assert.match(env.stdout, /^# secret WORKER_LLM_KEY: the value of WORKER_LLM_KEY$/m);
    const json = JSON.parse((await cli(["agent-config", "--agent", "claude-code", "-c", configFile, "--json"])).stdout) as { files: Array<{ name: string }>; environment: Array<{ name: string; secret?: string }> };
    assert.deepEqual(json.files.map((file) => file.name), ["settings", "mcp"]);
    assert.ok(json.environment.some((entry) => entry.name === "ANTHROPIC_API_KEY" && entry.secret === "WORKER_LLM_KEY"), "Claude Code's key variable holds the virtual key");
  });

  test("-o writes the file whole; an existing file is refused unless --force", async () => {
    const output = join(directory, "settings.json");
    assert.equal((await cli(["agent-config", "--agent", "qwen-code", "-c", configFile, "-o", output])).code, 0);
    assert.doesNotThrow(() => JSON.parse(readFileSync(output, "utf8")) as unknown);
    const again = await cli(["agent-config", "--agent", "qwen-code", "-c", configFile, "-o", output]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; pass --force/);
    const forced = await cli(["agent-config", "--agent", "codex", "-c", configFile, "-o", output, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(readFileSync(output, "utf8"), /^model_provider = "perimeter"$/m);
    assert.ok(!existsSync(join(directory, `.settings.json.${process.pid}.tmp`)));
  });

  test("mistakes are usage errors that say how to fix them", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["agent-config", "-c", configFile], /--agent hermes\|qwen-code\|codex\|claude-code/],
      [["agent-config", "--agent", "cursor", "-c", configFile], /not "cursor"/],
      [["agent-config", "--agent", "codex"], /-c FILE/],
      [["agent-config", "--agent", "codex", "-c", configFile, "--target", "moon"], /--target is local, compose, kubernetes/],
      [["agent-config", "--agent", "claude-code", "-c", configFile, "--file", "nope"], /its files are settings, mcp/],
      [["agent-config", "--agent", "codex", "-c", configFile, "--env", "--json"], /choose one of/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args);
      assert.equal(result.code, 2, args.join(" "));
      assert.match(result.stderr, message);
    }
  });
});
