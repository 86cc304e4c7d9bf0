// Issue 13's gap: the Kubernetes render mounts Hermes' .env from the `hermes.env` key of a ConfigMap
// (subPath, read-only at /opt/data/.env), and check never read it. A provider key or a credential written there is
// in the agent's environment and in a ConfigMap (readable by every holder of the built-in `view` role, unencrypted,
// committed with the manifests): each must be a finding, at its line inside the block scalar.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCheck } from "./check.ts";
import type { CheckReport } from "./model.ts";

const TODAY = "2026-06-01";
const TELEGRAM_TOKEN = `123456789:${"A".repeat(35)}`;
const ANTHROPIC_KEY = `sk-ant-${"b".repeat(40)}`;

function checkFiles(files: Record<string, string>, options: { kustomize?: "builtin" } = {}): CheckReport {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-check-cm-env-"));
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(directory, name, ".."), { recursive: true });
      writeFileSync(join(directory, name), text);
    }
    return runCheck(["."], { cwd: directory, today: TODAY, ...options });
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

function active(result: CheckReport, rules: readonly string[]): string[] {
  return result.findings
    .filter((finding) => finding.suppression === undefined && rules.includes(finding.ruleId))
    .map((finding) => `${finding.ruleId} ${finding.location.file}:${finding.location.line}`);
}

/** The shape `perimeter render -t kubernetes` writes: the seed ConfigMap and the gateway mounting its hermes.env. */
function agentManifest(envLines: readonly string[], options: { mountEnv?: boolean; key?: string } = {}): string {
  const key = options.key ?? "hermes.env";
  const mount = options.mountEnv === false ? "" : `            - { name: seed, mountPath: /opt/data/.env, subPath: ${key}, readOnly: true }\n`;
  return `apiVersion: v1
kind: ConfigMap
metadata: { name: hermes-config-seed, namespace: hermes-system }
data:
  config.yaml: |
    model:
      provider: custom
  ${key}: |
    # Hermes .env rendered by perimeter render
${envLines.map((line) => `    ${line}`).join("\n")}
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: hermes-gateway, namespace: hermes-system }
spec:
  replicas: 1
  selector: { matchLabels: { app.kubernetes.io/name: hermes } }
  template:
    metadata: { labels: { app.kubernetes.io/name: hermes } }
    spec:
      containers:
        - name: hermes
          image: nousresearch/hermes-agent:v2026.7.1
          volumeMounts:
${mount}            - { name: data, mountPath: /opt/data }
      volumes:
        - name: seed
          configMap: { name: hermes-config-seed }
        - name: data
          emptyDir: {}
`;
}

// Line of the first env line in agentManifest: 10.
const FIRST_ENV_LINE = 10;
const RULES = ["K8S-PROVIDER-KEY-IN-AGENT", "K8S-CONFIGMAP-SECRET", "HERMES-PROXY-BYPASS", "HERMES-ALLOW-ALL-USERS"];

test("a provider key in the ConfigMap's hermes.env the agent mounts is K8S-PROVIDER-KEY-IN-AGENT, and its value K8S-CONFIGMAP-SECRET, at their lines", () => {
  const result = checkFiles({ "agent.yaml": agentManifest(["TELEGRAM_ALLOWED_USERS=987654321", `ANTHROPIC_API_KEY=${ANTHROPIC_KEY}`]) });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(active(result, RULES).sort(), [`K8S-CONFIGMAP-SECRET agent.yaml:${FIRST_ENV_LINE + 1}`, `K8S-PROVIDER-KEY-IN-AGENT agent.yaml:${FIRST_ENV_LINE + 1}`]);
});

test("a provider key named with no value in hermes.env is still the agent's (Hermes reads it from its environment too)", () => {
  const result = checkFiles({ "agent.yaml": agentManifest(["OPENAI_API_KEY="]) });
  assert.deepEqual(active(result, RULES), [`K8S-PROVIDER-KEY-IN-AGENT agent.yaml:${FIRST_ENV_LINE}`]);
});

test("a credential pasted into hermes.env is K8S-CONFIGMAP-SECRET, by its shape or by its name", () => {
  const result = checkFiles({ "agent.yaml": agentManifest([`TELEGRAM_BOT_TOKEN=${TELEGRAM_TOKEN}`, "TELEGRAM_ALLOWED_USERS=987654321", "API_SERVER_KEY=short-but-a-secret-all-the-same"]) });
  assert.deepEqual(active(result, RULES), [`K8S-CONFIGMAP-SECRET agent.yaml:${FIRST_ENV_LINE}`, `K8S-CONFIGMAP-SECRET agent.yaml:${FIRST_ENV_LINE + 2}`]);
  for (const finding of result.findings) assert.ok(!finding.message.includes(TELEGRAM_TOKEN), "the value is never echoed");
});

test("Hermes' environment rules apply to hermes.env: an empty HTTPS_PROXY and ALLOW_ALL_USERS are reported at their lines", () => {
  const result = checkFiles({ "agent.yaml": agentManifest(["HTTPS_PROXY=", "GATEWAY_ALLOW_ALL_USERS=true"]) });
  assert.deepEqual(active(result, RULES), [`HERMES-PROXY-BYPASS agent.yaml:${FIRST_ENV_LINE}`, `HERMES-ALLOW-ALL-USERS agent.yaml:${FIRST_ENV_LINE + 1}`]);
});

test("an env key the agent mounts at /opt/data/.env is read whatever its name; a variable reference is not a pasted secret", () => {
  const result = checkFiles({ "agent.yaml": agentManifest(["GITHUB_TOKEN=${GITHUB_TOKEN}", `GEMINI_API_KEY=${ANTHROPIC_KEY}`], { key: "dotenv" }) });
  assert.deepEqual(active(result, RULES).sort(), [`K8S-CONFIGMAP-SECRET agent.yaml:${FIRST_ENV_LINE + 1}`, `K8S-PROVIDER-KEY-IN-AGENT agent.yaml:${FIRST_ENV_LINE + 1}`]);
});

test("what render writes into hermes.env (proxies, allowlists, switches) is not a finding", () => {
  const result = checkFiles({
    "agent.yaml": agentManifest([
      "TELEGRAM_ALLOWED_USERS=987654321",
      "API_SERVER_ENABLED=false",
      "HERMES_GATEWAY_NO_SUPERVISE=1",
      "HTTPS_PROXY=http://egress-proxy.hermes-tools.svc.cluster.local:3128",
      "NO_PROXY=mcp-guard.hermes-tools.svc.cluster.local,localhost,127.0.0.1,::1",
    ]),
  });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(active(result, RULES), []);
});

test("a secret in another ConfigMap key is K8S-CONFIGMAP-SECRET too; a .env key nobody mounts gets the secret rule but not the agent's provider rule", () => {
  const result = checkFiles({
    "cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata: { name: tools, namespace: apps }
data:
  endpoint: https://example.test
  token: ${TELEGRAM_TOKEN}
  worker.env: |
    OPENAI_API_KEY=${ANTHROPIC_KEY}
`,
  });
  assert.deepEqual(active(result, RULES), ["K8S-CONFIGMAP-SECRET cm.yaml:6", "K8S-CONFIGMAP-SECRET cm.yaml:8"]);
});

test("a hermes.env generated by kustomize from a file is reported in that file at its line", () => {
  const result = checkFiles(
    {
      "base/kustomization.yaml": "resources: [gateway.yaml]\nconfigMapGenerator:\n  - name: hermes-config-seed\n    namespace: hermes-system\n    options: { disableNameSuffixHash: true }\n    files: [hermes.env]\n",
      "base/hermes.env": `TELEGRAM_ALLOWED_USERS=987654321\nANTHROPIC_API_KEY=${ANTHROPIC_KEY}\n`,
      "base/gateway.yaml": agentManifest([], {}).split("---\n")[1] as string,
    },
    { kustomize: "builtin" },
  );
  assert.deepEqual(result.errors, []);
  assert.deepEqual(active(result, RULES).sort(), ["K8S-CONFIGMAP-SECRET base/hermes.env:2", "K8S-PROVIDER-KEY-IN-AGENT base/hermes.env:2"]);
});

test("a ConfigMap the agent imports whole with envFrom: a provider key among its keys is the agent's, and a credential-named key with a value is a pasted secret", () => {
  const result = checkFiles({
    "agent.yaml": `apiVersion: v1
kind: ConfigMap
metadata: { name: hermes-settings, namespace: hermes-system }
data:
  TELEGRAM_ALLOWED_USERS: "987654321"
  OPENAI_API_KEY: ""
  API_SERVER_KEY: not-a-reference
  GITHUB_TOKEN: \${GITHUB_TOKEN}
---
apiVersion: v1
kind: Pod
metadata: { name: hermes, namespace: hermes-system }
spec:
  containers:
    - name: hermes
      image: nousresearch/hermes-agent:v2026.7.1
      envFrom:
        - configMapRef: { name: hermes-settings }
`,
  });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(active(result, RULES), ["K8S-CONFIGMAP-SECRET agent.yaml:7", "K8S-PROVIDER-KEY-IN-AGENT agent.yaml:18"]);
});
