// Issue 13: the rendered Hermes wiring checked against what Hermes' source does (hermes-sources.ts cites where).
// Each requirement is asserted on the render of every example for every target, as the files render writes them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_HERMES_IMAGE, HERMES_RELEASES, hermesCompatibilityMarkdown, hermesRelease } from "./hermes-sources.ts";
import { HERMES_HEALTHCHECK_SCRIPT, NETWORK_DISABLED_TOOLSETS, SANDBOX_DISABLED_TOOLSETS } from "./hermes.ts";
import { EXAMPLES, TARGETS, configFrom, containersOf, exampleConfig, exampleText, find, manifestObjects, podSpec, renderedFiles, yamlOf } from "./testing.ts";
import type { Loose } from "./testing.ts";
import type { PerimeterConfig } from "../config/index.ts";

/** Toolsets of Hermes 0.18.0 (toolsets.py:95) that act only on the agent's own state: the ones that may stay on. */
const LOCAL_ONLY_TOOLSETS = ["clarify", "context_engine", "delegation", "memory", "project", "session_search", "skills", "todo"];
/** Every toolset name of 0.16.0 and 0.18.0 (toolsets.py TOOLSETS, without the hermes-<platform> composites and the bundles). */
const HERMES_TOOLSETS = [
  "browser", "clarify", "code_execution", "computer_use", "context_engine", "cronjob", "delegation", "discord", "discord_admin", "feishu_doc", "feishu_drive",
  "file", "homeassistant", "image_gen", "kanban", "memory", "messaging", "moa", "project", "search", "session_search", "skills", "spotify", "terminal", "todo",
  "tts", "video", "video_gen", "vision", "web", "x_search", "yuanbao",
];

interface AgentRender {
  seed: Loose;
  seedText: string;
  envFile: string;
  /** The container's literal environment. */
  environment: Map<string, string>;
  healthcheck: string[];
  /** How .env reaches /opt/data/.env, as the target writes it. */
  envMount: string;
}

function agentRender(config: PerimeterConfig, target: "kubernetes" | "compose"): AgentRender {
  const files = renderedFiles(config, target);
  if (target === "compose") {
    const compose = yamlOf(files.get("compose.yaml") as string);
    const gateway = compose.services["hermes-gateway"];
    const seedText = files.get("config/hermes-config.yaml") as string;
    return {
      seed: yamlOf(seedText),
      seedText,
      envFile: files.get("config/hermes.env") as string,
      environment: new Map(Object.entries(gateway.environment as Record<string, string>)),
      healthcheck: (gateway.healthcheck.test as string[]).slice(1),
      envMount: (gateway.volumes as string[]).find((volume) => volume.includes(":/opt/data/.env")) ?? "",
    };
  }
  const objects = manifestObjects(files);
  const deployment = find(objects, "Deployment", "hermes-gateway");
  const seedMap = find(objects, "ConfigMap", "hermes-config-seed").data as Record<string, string>;
  const container = podSpec(deployment).containers[0];
  const mount = (container.volumeMounts as Loose[]).find((entry) => entry.mountPath === "/opt/data/.env");
  return {
    seed: yamlOf(seedMap["config.yaml"] as string),
    seedText: seedMap["config.yaml"] as string,
    envFile: seedMap["hermes.env"] as string,
    environment: new Map((container.env as Loose[]).filter((entry) => entry.value !== undefined).map((entry) => [entry.name, entry.value])),
    healthcheck: container.readinessProbe.exec.command,
    envMount: mount === undefined ? "" : `${mount.name}:${mount.subPath}:${mount.readOnly === true ? "ro" : "rw"}`,
  };
}

function upstreamTimeouts(config: PerimeterConfig): number {
  const declared = Object.values(config.mcp.servers).map((server) => server.timeoutSeconds);
  return Math.max(...declared, config.sandbox.limits.timeoutSeconds + 60);
}

for (const example of EXAMPLES) {
  const config = exampleConfig(example);
  for (const target of TARGETS) {
    const name = `${example} (${target})`;
    const agent = agentRender(config, target);

    test(`${name}: item 1 — the MCP call timeout outlasts a held call plus its upstream, with a connect timeout and sampling off`, () => {
      const perimeter = agent.seed.mcp_servers.perimeter;
      const needed = config.approvals.timeoutSeconds + upstreamTimeouts(config);
      assert.ok(perimeter.timeout >= needed, `timeout ${perimeter.timeout} < approvals ${config.approvals.timeoutSeconds} + upstream`);
      assert.ok(perimeter.timeout > 300, "longer than Hermes' own default");
      assert.ok(perimeter.connect_timeout > 0 && perimeter.connect_timeout <= 60);
      assert.deepEqual(perimeter.sampling, { enabled: false });
      assert.ok(agent.seed.agent.gateway_timeout > perimeter.timeout, "the turn's inactivity watchdog outlasts one MCP call");
    });

    test(`${name}: item 2 — the gateway's approval wait (approvals.gateway_timeout) and the CLI's (approvals.timeout) are both written`, () => {
      assert.equal(agent.seed.approvals.gateway_timeout, config.approvals.timeoutSeconds);
      assert.equal(agent.seed.approvals.timeout, config.approvals.timeoutSeconds);
    });

    test(`${name}: item 3 — a stranger's DM is ignored, never answered with a pairing code`, () => {
      assert.equal(agent.seed.unauthorized_dm_behavior, "ignore");
    });

    test(`${name}: item 4 — every Hermes toolset that reaches the network or runs code outside the perimeter is off`, () => {
      const disabled = new Set(agent.seed.agent.disabled_toolsets as string[]);
      for (const toolset of HERMES_TOOLSETS) {
        if (LOCAL_ONLY_TOOLSETS.includes(toolset)) continue;
        if (config.agent.terminal === "in-pod" && (SANDBOX_DISABLED_TOOLSETS as readonly string[]).includes(toolset)) continue;
        assert.ok(disabled.has(toolset), `${toolset} stays on`);
      }
      assert.equal(agent.seed.security.allow_lazy_installs, false);
      assert.equal(agent.seed.security.tirith_enabled, false);
      assert.equal(agent.seed.kanban.dispatch_in_gateway, false);
      assert.equal(agent.seed.model_catalog.enabled, false);
      for (const server of Object.values(agent.seed.mcp_servers) as Loose[]) {
        assert.equal(server.command, undefined, "no stdio MCP server beside the agent");
        assert.equal(server.sampling.enabled, false);
      }
    });

    test(`${name}: item 5 — the healthcheck reads this process's gateway_state.json, not a log line`, () => {
      assert.deepEqual(agent.healthcheck.slice(0, 4), ["/opt/hermes/.venv/bin/python", "-c", HERMES_HEALTHCHECK_SCRIPT, "/opt/data/gateway_state.json"]);
      assert.deepEqual(agent.healthcheck.slice(4), Object.keys(config.agent.platforms).sort());
      assert.ok(!agent.healthcheck.join(" ").includes("gateway.log"));
    });

    test(`${name}: item 6 — gateway run is the container's process, not handed to s6 supervision`, () => {
      assert.equal(agent.environment.get("HERMES_GATEWAY_NO_SUPERVISE"), "1");
    });

    test(`${name}: item 7 — the boot hook does not migrate the seeded config`, () => {
      const release = hermesRelease(config.agent.image);
      assert.ok(release !== undefined, `${config.agent.image} is a verified release`);
      assert.equal(agent.seed._config_version, release.configVersion);
      assert.equal(agent.environment.get("HERMES_SKIP_CONFIG_MIGRATION"), "1");
    });

    test(`${name}: item 8 — /opt/data/.env is Perimeter's, mounted read-only, and repeats the proxy and allowlists`, () => {
      assert.equal(agent.envMount, target === "compose" ? "./config/hermes.env:/opt/data/.env:ro" : "seed:hermes.env:ro");
      const values = new Map(agent.envFile.split("\n").filter((line) => /^[A-Za-z_]/.test(line)).map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
      for (const variable of ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy", "HERMES_GATEWAY_NO_SUPERVISE", "HERMES_SKIP_CONFIG_MIGRATION"]) {
        assert.equal(values.get(variable), agent.environment.get(variable), variable);
      }
      for (const platform of Object.keys(config.agent.platforms)) assert.ok((values.get(`${platform.toUpperCase()}_ALLOWED_USERS`) ?? "") !== "", platform);
      for (const secret of [config.mcp.agents[0]?.tokenSecret, "HERMES_LLM_KEY", "TELEGRAM_BOT_TOKEN"]) assert.ok(!values.has(secret as string), `${secret} in the .env`);
    });
  }
}

test("item 8 — kubernetes: the .env key is mounted only into the gateway, read-only, from the seed ConfigMap", () => {
  const objects = manifestObjects(renderedFiles(exampleConfig("k3s-telegram-minimax"), "kubernetes"));
  const deployment = find(objects, "Deployment", "hermes-gateway");
  const mounts = containersOf(deployment).flatMap((container: Loose) => (container.volumeMounts as Loose[]).filter((mount) => mount.mountPath === "/opt/data/.env").map((mount) => ({ container: container.name, ...mount })));
  assert.deepEqual(mounts, [{ container: "hermes", name: "seed", mountPath: "/opt/data/.env", subPath: "hermes.env", readOnly: true }]);
});

test("item 2/7 — an image tag render does not know gets the keys of every release but no _config_version", () => {
  const text = exampleText("k3s-telegram-minimax").replace(/image: nousresearch\/hermes-agent:\S+/, "image: nousresearch/hermes-agent:v2099.1.1");
  const agent = agentRender(configFrom(text), "kubernetes");
  assert.equal(agent.seed._config_version, undefined);
  assert.ok(agent.seed.approvals.gateway_timeout > 0 && agent.seed.approvals.timeout > 0);
  assert.equal(agent.environment.get("HERMES_SKIP_CONFIG_MIGRATION"), "1");
  assert.match(agent.seedText, /v2099\.1\.1 is not a release render knows/);
});

test("item 1 — the MCP timeout follows approvals.timeoutSeconds and the sandbox limit", () => {
  const text = `${exampleText("k3s-telegram-minimax").replace("approvals: { timeoutSeconds: 600 }", "approvals: { timeoutSeconds: 3000 }").replace("timeoutSeconds: 300 }", "timeoutSeconds: 1200 }")}`;
  const config = configFrom(text);
  const agent = agentRender(config, "compose");
  assert.ok(agent.seed.mcp_servers.perimeter.timeout >= 3000 + 1200 + 60);
  assert.ok(agent.seed.agent.gateway_timeout > agent.seed.mcp_servers.perimeter.timeout);
});

test("item 4 — in-pod terminal keeps Hermes' terminal but still turns off the network toolsets", () => {
  const text = exampleText("k3s-telegram-minimax").replace("terminal: sandbox", "terminal: in-pod");
  const agent = agentRender(configFrom(text), "kubernetes");
  const disabled = agent.seed.agent.disabled_toolsets as string[];
  assert.ok(!disabled.includes("terminal"));
  for (const toolset of NETWORK_DISABLED_TOOLSETS) assert.ok(disabled.includes(toolset), toolset);
});

test("agent.image defaults to a release every citation was checked against, and hermesRelease reads tags only", () => {
  assert.equal(hermesRelease(DEFAULT_HERMES_IMAGE)?.version, "0.18.0");
  assert.equal(configFrom("version: 1\nname: x\nllm: { providers: { p: { baseUrl: 'https://p.example/v1', models: [m] } } }\n").agent.image, DEFAULT_HERMES_IMAGE);
  assert.equal(hermesRelease("registry.example:5000/nousresearch/hermes-agent:v2026.6.5")?.configVersion, 27);
  assert.equal(hermesRelease("registry.example:5000/nousresearch/hermes-agent"), undefined);
  assert.equal(hermesRelease("nousresearch/hermes-agent:v2026.7.1@sha256:0123"), HERMES_RELEASES[2]);
});

test("docs/hermes-compatibility.md is generated from hermes-sources.ts (UPDATE_GOLDEN=1 rewrites it)", () => {
  const path = new URL("../../docs/hermes-compatibility.md", import.meta.url);
  if (process.env.UPDATE_GOLDEN === "1") writeFileSync(path, hermesCompatibilityMarkdown());
  assert.equal(readFileSync(path, "utf8"), hermesCompatibilityMarkdown(), "stale: UPDATE_GOLDEN=1 node --test src/render/hermes.test.ts");
});

// --- item 5: the healthcheck script itself, run by a real Python against state files like the gateway's ----------

const python = spawnSync("python3", ["-c", "print(1)"]).status === 0 ? "python3" : undefined;

function startTimeOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
}

function healthy(state: unknown, platforms: string[]): boolean {
  const directory = mkdtempSync(join(tmpdir(), "hermes-health-"));
  try {
    const file = join(directory, "gateway_state.json");
    writeFileSync(file, typeof state === "string" ? state : JSON.stringify(state));
    return spawnSync(python as string, ["-c", HERMES_HEALTHCHECK_SCRIPT, file, ...platforms]).status === 0;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

test("item 5 — healthy only for a live gateway of this run with its platforms connected", { skip: python === undefined ? "python3 is not installed here" : false }, async () => {
  // A stand-in for the gateway process: its pid and kernel start time are what the gateway writes (gateway/status.py:401).
  const gateway = spawn("sleep", ["30"]);
  try {
    const pid = gateway.pid as number;
    const running = { pid, start_time: startTimeOf(pid), kind: "hermes-gateway", gateway_state: "running", platforms: { telegram: { state: "connected" } } };
    assert.equal(healthy(running, ["telegram"]), true);
    // The previous run's file after a restart: the pid may exist again, with another start time.
    assert.equal(healthy({ ...running, start_time: running.start_time - 1 }, ["telegram"]), false);
    assert.equal(healthy({ ...running, pid: 2 ** 22 + 7 }, ["telegram"]), false);
    // The boot hook's synthetic state has no pid (hermes_cli/container_boot.py:226).
    assert.equal(healthy({ gateway_state: "running", timestamp: 1, migrated_from: "legacy-container-cmd" }, ["telegram"]), false);
    assert.equal(healthy({ ...running, gateway_state: "starting" }, ["telegram"]), false);
    assert.equal(healthy({ ...running, gateway_state: "degraded" }, ["telegram"]), false);
    assert.equal(healthy({ ...running, platforms: { telegram: { state: "retrying" } } }, ["telegram"]), false);
    assert.equal(healthy(running, ["telegram", "discord"]), false, "every configured platform must be connected");
    assert.equal(healthy("{not json", ["telegram"]), false);
  } finally {
    gateway.kill();
  }
});
