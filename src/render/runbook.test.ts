// Issue 14: RUNBOOK.md in every render runs as written, changes take effect, and the secret script is idempotent.
// The runbook's fenced blocks are read back from the written file: every block passes `bash -n`; every [here] block
// runs (perimeter render/check/approvals/audit-log verify against a real mcp-guard and real audit logs, kubectl
// kustomize); the secret script runs against a stand-in for the cluster (real kubectl for the client side, a script
// that stores what `kubectl apply` receives). [cluster], [docker] and [host] blocks need what this machine lacks.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { openAuditLog } from "../audit-log/index.ts";
import { freePort } from "../shared/index.ts";
import { eventually, startRecordingServer } from "../mcp-guard/testing.ts";
import type { RecordingServer } from "../mcp-guard/testing.ts";
import { configFrom, exampleConfig, examplePath, exampleText, manifestObjects, renderedFiles, yamlOf } from "./testing.ts";
import type { AnyObject, Loose } from "./testing.ts";
import { CONFIG_HASH_ANNOTATION } from "./kubernetes/config-hash.ts";
import { CONFIG_HASH_LABEL } from "./compose/config-hash.ts";

const BIN = join(import.meta.dirname, "../../bin/perimeter.js");
const REAL_KUBECTL = execFileSync("sh", ["-c", "command -v kubectl"], { encoding: "utf8" }).trim();
const RUNS: ReadonlyArray<{ example: string; target: "kubernetes" | "compose" | "vps" }> = [
  ...["k3s-telegram-minimax", "kubernetes-full", "compose-vps"].flatMap((example) => (["kubernetes", "compose"] as const).map((target) => ({ example, target }))),
  { example: "vps", target: "vps" },
];

/** A bin directory with `perimeter` (this checkout on Node 24) and the stand-in `kubectl`. */
function toolbox(root: string): string {
  const bin = join(root, "bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, "perimeter"), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
  // The images' node is 24 (node:sqlite for the audit snapshot); this machine's own may be older.
  writeFileSync(join(bin, "node"), `#!/bin/sh\nexec "${process.execPath}" "$@"\n`, { mode: 0o755 });
  // Stand-in for the cluster: records every call; `apply -f -` stores the object it receives (failing once when
  // asked to); `create` without --dry-run behaves as the API server does for an existing name; `rollout` is logged;
  // everything else (create --dry-run=client, kustomize) is the real kubectl, which needs no cluster for those.
  writeFileSync(
    join(bin, "kubectl"),
    `#!/bin/sh
state="$STANDIN_STATE"
printf '%s\\n' "$*" >> "$state/argv.log"
case "$1" in
  apply)
    cat > "$state/incoming.yaml"
    name=$(sed -n 's/^  name: //p' "$state/incoming.yaml" | head -n 1)
    if [ -f "$state/fail-once-$name" ]; then rm "$state/fail-once-$name"; echo "error: connection to the server was refused" >&2; exit 1; fi
    mv "$state/incoming.yaml" "$state/secret-$name.yaml"; echo "secret/$name configured" ;;
  create)
    case "$*" in *--dry-run=client*) exec "${REAL_KUBECTL}" "$@" ;; esac
    if [ -f "$state/secret-$4" ]; then echo "Error from server (AlreadyExists): secrets \\"$4\\" already exists" >&2; exit 1; fi
    printf '%s\\n' "$*" > "$state/secret-$4" ;;
  -n) printf '%s\\n' "$*" >> "$state/rollout.log" ;;
  *) exec "${REAL_KUBECTL}" "$@" ;;
esac
`,
    { mode: 0o755 },
  );
  return bin;
}

function render(example: string, target: string, directory: string): void {
  const result = spawnSync(process.execPath, [BIN, "render", "-c", examplePath(example), "-t", target, "-o", directory, "--force"], { encoding: "utf8", timeout: 120_000 });
  assert.equal(result.status, 0, result.stderr);
}

interface Block {
  readonly where: string;
  readonly text: string;
}

/** The ```sh blocks of a runbook, each with the place its first line names. */
function blocks(markdown: string): Block[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => {
    const text = match[1] ?? "";
    return { where: /^# \[(\w+)\]/.exec(text)?.[1] ?? "", text };
  });
}

function bash(script: string, env: Record<string, string>, cwd: string) {
  return spawnSync("bash", ["--norc", "--noprofile", "-euo", "pipefail", "-c", script], { encoding: "utf8", env, cwd, timeout: 120_000 });
}

/** A real audit log with a few records, as a service writes it. */
function auditLog(path: string): void {
  const log = openAuditLog({ path });
  for (let index = 0; index < 3; index += 1) log.append({ component: "mcp-guard", type: "tool-call", agent: "hermes", tool: "web__echo", decision: "allow" });
  log.close();
}

describe("RUNBOOK.md: every block passes bash -n, every [here] block and the secret script run as written", { timeout: 900_000 }, () => {
  let root: string;
  let web: RecordingServer;
  let guard: ChildProcessWithoutNullStreams;
  let adminPort: number;
  let guardConfig: string;
  const adminToken = "runbook-admin-token-0123456789";
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "perimeter-runbook-"));
    web = await startRecordingServer();
    adminPort = await freePort();
    // The mcp-guard the port-forward reaches: trust-on-first-use off, so the first start has definitions to review.
    guardConfig = join(root, "guard.yaml");
    writeFileSync(
      guardConfig,
      `version: 1
name: runbook
mcp:
  admin: { listen: "127.0.0.1:${adminPort}" }
  pinning: { trustOnFirstUse: false }
  servers:
    web: { url: ${web.url}, tools: { allow: ["*"] } }
    web2: { url: ${web.url}, tools: { allow: ["*"] } }
audit: { path: ${join(root, "guard-audit.db")} }
`,
    );
    guard = spawn(process.execPath, [BIN, "serve", "mcp-guard", "-c", guardConfig, "--listen", "127.0.0.1:0"], {
      env: { PATH: process.env.PATH ?? "", HOME: tmpdir(), PERIMETER_AGENT_TOKEN: "runbook-agent-token-0123456789", PERIMETER_ADMIN_TOKEN: adminToken },
    });
    let stdout = "";
    guard.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    await eventually(() => (stdout.includes("listening on") ? true : undefined), 30_000, "mcp-guard to listen");
  });
  after(async () => {
    guard.kill("SIGTERM");
    await web.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** IDs of pending tool-definition reviews on the guard, newest last. */
  const pendingReviews = async (): Promise<string[]> =>
    eventually(async () => {
      const response = await fetch(`http://127.0.0.1:${adminPort}/v1/approvals?status=pending`, { headers: { authorization: `Bearer ${adminToken}` } });
      const body = (await response.json()) as { approvals?: Array<{ id: string; kind: string }> } | Array<{ id: string; kind: string }>;
      const list = Array.isArray(body) ? body : (body.approvals ?? []);
      const ids = list.filter((approval) => approval.kind === "tool-definition").map((approval) => approval.id);
      return ids.length > 0 ? ids : undefined;
    }, 20_000, "a pending definition review");

  for (const { example, target } of RUNS) {
    test(`${example} (${target})`, async () => {
      const work = join(root, `${example}-${target}`);
      mkdirSync(work, { recursive: true });
      const renderDirectory = join(work, "out");
      const backups = join(work, "backups");
      render(example, target, renderDirectory);
      const markdown = readFileSync(join(renderDirectory, "RUNBOOK.md"), "utf8");
      const found = blocks(markdown);
      assert.ok(found.length >= 10, "a runbook with its blocks");
      const places = new Set(found.map((block) => block.where));
      assert.ok(places.has("here"), "some blocks run here");
      for (const block of found) {
        assert.match(block.where, /^(here|cluster|docker|host)$/, `a block without its place:\n${block.text}`);
        const syntax = spawnSync("bash", ["-n"], { input: block.text, encoding: "utf8" });
        assert.equal(syntax.status, 0, `bash -n: ${syntax.stderr}\n${block.text}`);
      }
      // Every perimeter command and kustomize build the operator runs from the workstation sits in a [here] block.
      for (const block of found.filter((candidate) => candidate.where !== "here")) {
        for (const line of block.text.split("\n")) assert.doesNotMatch(line, /^(perimeter (render|check) .*\$RENDER_DIR|kubectl kustomize)\b/, `${line} must run here`);
      }

      const state = join(work, "cluster");
      mkdirSync(state);
      const env: Record<string, string> = {
        PATH: `${toolbox(work)}:${process.env.PATH ?? ""}`,
        HOME: work,
        KUBECONFIG: join(work, "no-kubeconfig"),
        STANDIN_STATE: state,
        PERIMETER_DECLARATION: examplePath(example),
        RENDER_DIR: renderDirectory,
        BACKUP_DIR: backups,
        ADMIN_PORT: String(adminPort),
        PERIMETER_ADMIN_TOKEN: adminToken,
      };
      // The copies section 12 makes: real audit logs, snapshotted with the runbook's own command where it has one.
      mkdirSync(backups);
      const snapshot = /(node -e '[^']*VACUUM INTO[^']*')/.exec(markdown)?.[1];
      for (const name of new Set([...markdown.matchAll(/"\$BACKUP_DIR\/([\w-]+)-audit\.db"/g)].map((match) => match[1] as string))) {
        const live = join(work, `${name}-live.db`);
        auditLog(live);
        if (snapshot === undefined) auditLog(join(backups, `${name}-audit.db`));
        else {
          const copied = bash(`${snapshot} "${live}" "$BACKUP_DIR/${name}-audit.db"`, env, work);
          assert.equal(copied.status, 0, copied.stderr);
        }
      }

      const here = found.filter((block) => block.where === "here");
      let reviews: string[] = [];
      for (const block of here) {
        if (block.text.includes("perimeter approvals")) {
          reviews = reviews.length > 0 ? reviews : await pendingReviews();
          env.APPROVAL_ID = reviews.shift() as string;
        }
        if (block.text.includes("cp -R") && target === "compose") {
          // The operator's filled-in env files before a re-render (day 2), which must survive it.
          for (const file of readdirSync(join(renderDirectory, "env")).filter((name) => name.endsWith(".env"))) writeFileSync(join(renderDirectory, "env", file), `# mine\nVALUE=${file}\n`);
        }
        const result = bash(block.text, env, work);
        assert.equal(result.status, 0, `[here] block failed (${result.status}):\n${block.text}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
        if (block.text.includes("approvals approve")) assert.match(result.stdout, /approved/);
      }
      if (target === "compose") {
        const envFiles = readdirSync(join(renderDirectory, "env")).filter((name) => name.endsWith(".env"));
        assert.ok(envFiles.length > 0, "step 3 created the env files");
        for (const file of envFiles) assert.equal(readFileSync(join(renderDirectory, "env", file), "utf8"), `# mine\nVALUE=${file}\n`, `${file} survived the re-render`);
        assert.equal(existsSync(`${renderDirectory}.next`), false);
      }

      if (target === "kubernetes" && existsSync(join(renderDirectory, "create-secrets.sh"))) {
        // Every create-secrets.sh command of the runbook (day 1, rotation table), with every variable exported.
        const script = readFileSync(join(renderDirectory, "create-secrets.sh"), "utf8");
        const variables = [...new Set([...script.matchAll(/^\s+\S+\) echo "([A-Z0-9_ ]+)" ;;$/gm)].flatMap((match) => (match[1] ?? "").split(" ")))];
        const values = Object.fromEntries(variables.map((name) => [name, `value-of-${name.toLowerCase()}-${Math.random().toString(36).slice(2)}`]));
        // From the blocks and the rotation table; the prose example names a Secret only a later render has.
        const runnable = [...found.map((block) => block.text), ...markdown.split("\n").filter((line) => line.startsWith("|"))].join("\n");
        const commands = [...runnable.matchAll(/(sh "\$RENDER_DIR\/create-secrets\.sh"[^`\n]*)/g)].map((match) => (match[1] ?? "").trim());
        assert.ok(commands.some((command) => command.includes("--restart")), "rotation commands");
        for (const command of commands) {
          const result = bash(command, { ...env, ...values }, work);
          assert.equal(result.status, 0, `${command}: ${result.stderr}`);
        }
        const log = readFileSync(join(state, "argv.log"), "utf8");
        for (const value of Object.values(values)) assert.equal(log.includes(value), false, "no value on a kubectl command line");
      }
    });
  }
});

describe("create-secrets.sh: all missing variables at once, idempotent, finishes a partial run, rotates", { timeout: 300_000 }, () => {
  const setup = () => {
    const work = mkdtempSync(join(tmpdir(), "perimeter-secrets-"));
    const directory = join(work, "out");
    render("compose-vps", "kubernetes", directory);
    const state = join(work, "cluster");
    mkdirSync(state);
    const env = { PATH: `${toolbox(work)}:${process.env.PATH ?? ""}`, HOME: work, KUBECONFIG: join(work, "none"), STANDIN_STATE: state };
    const script = join(directory, "create-secrets.sh");
    const values: Record<string, string> = {
      HERMES_LLM_KEY: "llm-key-1",
      PERIMETER_AGENT_TOKEN: "agent-token-1",
      TELEGRAM_BOT_TOKEN: "123:telegram-1",
      PERIMETER_ADMIN_TOKEN: "admin-token-1",
      PERIMETER_SANDBOX_TOKEN: "sandbox-token-1",
      GITHUB_TOKEN: "ghp_github-1",
      ANTHROPIC_API_KEY: "sk-ant-1",
      OPENROUTER_API_KEY: "sk-or-1",
      PERIMETER_AUDIT_FEED_TOKEN: "feed-token-1",
    };
    const run = (args: string[], extra: Record<string, string> = values) => spawnSync("sh", [script, ...args], { encoding: "utf8", env: { ...env, ...extra }, timeout: 120_000 });
    const stored = (name: string): Record<string, string> => {
      const data = (yamlOf(readFileSync(join(state, `secret-${name}.yaml`), "utf8")) as Loose).data as Record<string, string>;
      return Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value, "base64").toString("utf8")]));
    };
    return { work, state, run, stored, values };
  };

  test("a missing variable: every missing one is named, nothing reaches the cluster (exit 2)", () => {
    const { run, state, values } = setup();
    const { GITHUB_TOKEN: _github, OPENROUTER_API_KEY: _openrouter, ...partial } = values;
    const result = run([], partial);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /export these variables first \(nothing was changed\): GITHUB_TOKEN OPENROUTER_API_KEY$/m);
    assert.equal(existsSync(join(state, "argv.log")), false);
  });

  test("re-runnable: a run cut short is finished by running it again; a second run changes nothing; values never on argv", () => {
    const { run, state, stored, values } = setup();
    writeFileSync(join(state, "fail-once-llm-proxy"), "");
    const first = run([]);
    assert.notEqual(first.status, 0, "the stand-in refused llm-proxy once");
    assert.equal(existsSync(join(state, "secret-llm-proxy.yaml")), false);
    const second = run([]);
    assert.equal(second.status, 0, second.stderr);
    const third = run([]);
    assert.equal(third.status, 0, third.stderr);
    assert.deepEqual(stored("llm-proxy"), { ANTHROPIC_API_KEY: "sk-ant-1", HERMES_LLM_KEY: "llm-key-1", OPENROUTER_API_KEY: "sk-or-1", PERIMETER_AUDIT_FEED_TOKEN: "feed-token-1" });
    assert.deepEqual(stored("hermes-gateway"), { HERMES_LLM_KEY: "llm-key-1", PERIMETER_AGENT_TOKEN: "agent-token-1", TELEGRAM_BOT_TOKEN: "123:telegram-1" });
    const argv = readFileSync(join(state, "argv.log"), "utf8");
    for (const value of Object.values(values)) assert.equal(argv.includes(value), false, `${value} on a command line`);
  });

  test("rotation: only the named Secrets change, and --restart restarts exactly their readers; --dry-run runs no kubectl", () => {
    const { run, state, stored, values } = setup();
    assert.equal(run([]).status, 0);
    const rotated = { ...values, PERIMETER_AGENT_TOKEN: "agent-token-2" };
    const dry = run(["--dry-run", "--restart", "hermes-gateway", "mcp-guard"], rotated);
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /would apply Secret hermes-gateway in hermes-system/);
    assert.match(dry.stdout, /would restart deployment\/mcp-guard in hermes-tools/);
    assert.equal(stored("mcp-guard").PERIMETER_AGENT_TOKEN, "agent-token-1", "dry run changed nothing");
    const result = run(["--restart", "hermes-gateway", "mcp-guard"], rotated);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(stored("hermes-gateway").PERIMETER_AGENT_TOKEN, "agent-token-2");
    assert.equal(stored("mcp-guard").PERIMETER_AGENT_TOKEN, "agent-token-2");
    assert.equal(readFileSync(join(state, "rollout.log"), "utf8"), "-n hermes-system rollout restart deployment/hermes-gateway\n-n hermes-tools rollout restart deployment/mcp-guard\n");
    const unknown = run(["no-such-secret"]);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /no Secret "no-such-secret" in this render; choose from: hermes-gateway mcp-guard/);
    // The admin token is typed once and reaches both its readers: mcp-guard checks it, the dashboard logs in with it.
    assert.equal(stored("dashboard").PERIMETER_ADMIN_TOKEN, "admin-token-1");
  });
});

describe("changes take effect: pod templates and Compose services carry the hash of the configuration they read", () => {
  const hashes = (text: string) => {
    const objects = manifestObjects(renderedFiles(configFrom(text), "kubernetes"));
    return Object.fromEntries(
      objects.filter((object: AnyObject) => object.kind === "Deployment").map((object: AnyObject) => [object.metadata.name, ((object.spec as Loose).template.metadata.annotations ?? {})[CONFIG_HASH_ANNOTATION] as string | undefined]),
    );
  };
  const labels = (text: string) => {
    const compose = yamlOf(renderedFiles(configFrom(text), "compose").get("compose.yaml") ?? "");
    return Object.fromEntries(Object.entries(compose.services as Record<string, Loose>).map(([name, service]) => [name, (service.labels ?? {})[CONFIG_HASH_LABEL] as string | undefined]));
  };
  const changed = (before: Record<string, string | undefined>, after: Record<string, string | undefined>) => Object.keys(after).filter((name) => before[name] !== after[name]).sort();
  const base = exampleText("k3s-telegram-minimax");
  const newHost = base.replace("allow: [api.telegram.org]", "allow: [api.telegram.org, api.example.com]");
  const newUser = base.replace('allowedUsers: ["987654321"]', 'allowedUsers: ["987654321", "123456789"]');

  // perimeter.yaml carries the whole declaration, so an agent setting rolls the four services too; an egress host
  // is not in anything the agent reads, so it does not roll the agent (and its Telegram long poll).
  test("Kubernetes: an egress host rolls the workloads that read perimeter.yaml and not the agent; a Hermes setting rolls the agent", () => {
    const before = hashes(base);
    for (const [name, hash] of Object.entries(before)) assert.match(hash ?? "", /^[0-9a-f]{64}$/, `${name} has no config hash`);
    assert.deepEqual(changed(before, hashes(newHost)), ["dashboard", "egress-proxy", "llm-proxy", "mcp-guard", "sandbox-runner"]);
    assert.ok(changed(before, hashes(newUser)).includes("hermes-gateway"));
    assert.deepEqual(hashes(base), before, "deterministic");
  });

  test("Compose: the same edits recreate exactly the services that mount what changed", () => {
    const before = labels(base);
    assert.match(before["mcp-guard"] ?? "", /^[0-9a-f]{64}$/);
    const hostChange = changed(before, labels(newHost));
    assert.ok(hostChange.includes("egress-proxy") && !hostChange.includes("hermes-gateway") && !hostChange.includes("hermes-seed"), hostChange.join(","));
    const userChange = changed(before, labels(newUser));
    assert.ok(userChange.includes("hermes-gateway"), userChange.join(","));
    assert.deepEqual(labels(base), before, "deterministic");
  });

  test("every example renders RUNBOOK.md for every target it supports", () => {
    for (const example of ["k3s-telegram-minimax", "kubernetes-full", "compose-vps"]) {
      for (const target of ["kubernetes", "compose"] as const) assert.match(renderedFiles(exampleConfig(example), target).get("RUNBOOK.md") ?? "", /^# Runbook: perimeter "/);
    }
    assert.match(renderedFiles(exampleConfig("vps"), "vps").get("RUNBOOK.md") ?? "", /Runbook: perimeter "hermes" on one VPS/);
  });
});

