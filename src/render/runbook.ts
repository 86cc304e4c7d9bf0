// RUNBOOK.md, written into every render (the VPS target's in vps/runbook.ts, over the pieces exported here): day 1 and day 2 of this declaration on this target, as commands that run as
// written. Each command block opens with where it runs — `# [here]` (a workstation with perimeter and kubectl, in
// the directory of the declaration), `# [cluster]`, `# [docker]` or `# [host]` — and src/render/runbook.test.ts runs
// every [here] block and the secret script, and syntax-checks the rest. Paths come from four variables set once at
// the top, so a block pasted into a shell means the same thing in every section.
import type { PerimeterConfig } from "../config/index.ts";
import { podConfigHash } from "./kubernetes/config-hash.ts";
import { dashboardPortForward } from "./kubernetes/dashboard.ts";
import { dashboardPort } from "./dashboard.ts";
import { namespaces } from "./kubernetes/names.ts";
import type { KubernetesRender } from "./kubernetes/render.ts";
import type { ComposeRender } from "./compose/render.ts";
import { CONFIG_HASH_LABEL } from "./compose/config-hash.ts";
import { AGENT_WORKLOAD, MCP_GUARD, portOf, secretPlan, sharedSecretNotes } from "./plan.ts";
import type { SecretSpec } from "./plan.ts";

export const RUNBOOK_PATH = "RUNBOOK.md";

export type Where = "here" | "cluster" | "docker" | "host";

const WHERE: Record<Where, string> = {
  here: "# [here] your workstation, in the directory of your declaration",
  cluster: "# [cluster] needs kubectl access to the cluster",
  docker: "# [docker] on the Docker host (docker compose finds the render through COMPOSE_FILE)",
  host: "# [host] on the VPS, as root",
};

/** The snapshot of a live SQLite audit log: one read transaction (VACUUM INTO), safe beside the writing service. */
const AUDIT_SNAPSHOT = `node -e 'const sqlite = require("node:sqlite"); const [from, to] = process.argv.slice(1); new sqlite.DatabaseSync(from).prepare("VACUUM INTO ?").run(to)'`;

export class Document {
  readonly lines: string[] = [];
  heading(level: number, text: string): this {
    this.lines.push(`${"#".repeat(level)} ${text}`, "");
    return this;
  }
  text(...paragraph: string[]): this {
    this.lines.push(...paragraph, "");
    return this;
  }
  commands(where: Where, ...commands: string[]): this {
    this.lines.push("```sh", WHERE[where], ...commands, "```", "");
    return this;
  }
  yaml(...lines: string[]): this {
    this.lines.push("```yaml", ...lines, "```", "");
    return this;
  }
  table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): this {
    const cell = (value: string) => value.replace(/\|/g, "\\|");
    this.lines.push(`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((row) => `| ${row.map(cell).join(" | ")} |`), "");
    return this;
  }
  toString(): string {
    return `${this.lines.join("\n").trimEnd()}\n`;
  }
}

/** Variables (one per line of the secret plan) and the workloads reading each: the rotation table. */
export function rotationRows(secrets: readonly SecretSpec[]): Array<{ key: string; secrets: SecretSpec[] }> {
  const byKey = new Map<string, SecretSpec[]>();
  for (const secret of secrets) for (const key of secret.keys) byKey.set(key, [...(byKey.get(key) ?? []), secret]);
  return [...byKey].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, holders]) => ({ key, secrets: holders }));
}

/** What to revoke at the source when tearing down (a deleted Secret does not invalidate a token). */
export function revocations(config: PerimeterConfig): string[] {
  const lines: string[] = [];
  const platforms = config.agent.platforms as Record<string, { tokenSecret?: string } | undefined>;
  for (const [platform, settings] of Object.entries(platforms).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (settings?.tokenSecret === undefined) continue;
    lines.push(platform === "telegram" ? `- ${settings.tokenSecret}: revoke the bot token with @BotFather (/revoke, or /deletebot to remove the bot).` : `- ${settings.tokenSecret}: revoke the ${platform} token in that platform's developer settings.`);
  }
  for (const [name, provider] of Object.entries(config.llm.providers).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (provider.apiKeySecret !== undefined) lines.push(`- ${provider.apiKeySecret}: delete the ${name} API key in the provider's console (${provider.baseUrl}).`);
  }
  for (const secret of secretPlan(config)) {
    // Upstream credentials (mcp-guard-upstream-*) and deployed servers' own (mcp-*); not the perimeter's own tokens.
    if (secret.name === MCP_GUARD || (!secret.name.startsWith(`${MCP_GUARD}-upstream-`) && !secret.name.startsWith("mcp-"))) continue;
    lines.push(`- ${secret.keys.join(", ")}: revoke at the service that issued ${secret.keys.length === 1 ? "it" : "them"} (${secret.purpose}).`);
  }
  lines.push("- The perimeter's own tokens (agent, admin, sandbox, virtual LLM keys) die with the deployment; nothing outside knows them.");
  return lines;
}

export function firstStartText(config: PerimeterConfig): string {
  return config.mcp.pinning.trustOnFirstUse
    ? "mcp.pinning.trustOnFirstUse is on: the definitions seen at the first start are trusted as they are; a definition that changes later waits for review."
    : "mcp.pinning.trustOnFirstUse is off: **every allowed tool waits for your review at the first start, and until you approve, the agent has no tools.** Review them now.";
}

export function variablesBlock(document: Document, target: "kubernetes" | "compose" | "vps", extra: string[] = []): void {
  document.heading(2, "Before you start").text(
    "Every block below uses these variables (absolute paths, so a block means the same from any directory). Set them once per shell; each block says where it runs.",
  );
  document.commands(
    "here",
    'export PERIMETER_DECLARATION="$PWD/perimeter.yaml"   # the declaration this directory was rendered from',
    `export RENDER_DIR="$PWD/out/${target}"${" ".repeat(Math.max(1, 22 - target.length))}# this directory`,
    'export BACKUP_DIR="$PWD/backups"                     # where backups land (keep them off the host, encrypted)',
    ...extra,
  );
}

function secretTable(document: Document, secrets: readonly SecretSpec[], column: string, place: (secret: SecretSpec) => string): void {
  document.table(["Secret", column, "variables", "read by"], secrets.map((secret) => [secret.name, place(secret), secret.keys.join(", "), secret.workload]));
}

// ---------------------------------------------------------------------------------------------------- kubernetes

export function kubernetesRunbook(config: PerimeterConfig, render: KubernetesRender): string {
  const facts = kubernetesFacts(config, render);
  const document = new Document();
  kubernetesDay1(document, facts);
  kubernetesDay2(document, facts);
  return document.toString();
}

type KubernetesFacts = ReturnType<typeof kubernetesFacts>;

/** What both days of the Kubernetes runbook read from the render: its Deployments, ConfigMaps and audited services. */
function kubernetesFacts(config: PerimeterConfig, render: KubernetesRender) {
  const ns = namespaces(config);
  const objects = render.files.flatMap((file) => file.objects ?? []) as Array<{ kind: string; metadata?: { name?: string; namespace?: string }; spec?: Record<string, unknown> }>;
  const deployments = objects.filter((object) => object.kind === "Deployment").map((object) => ({ name: object.metadata?.name ?? "", namespace: object.metadata?.namespace ?? "", object }));
  const configMaps = objects.filter((object) => object.kind === "ConfigMap") as Array<{ kind: string; metadata?: { name?: string; namespace?: string }; data?: Record<string, string> }>;
  const external = config.kubernetes.externalSecrets;
  const secretNamespace = (secret: SecretSpec) => (secret.namespace === "system" ? ns.system : ns.tools);
  const adminPort = portOf(config.mcp.admin.listen);
  const approvals = (args: string) => `perimeter approvals ${args} -c "$PERIMETER_DECLARATION" --admin-url "http://127.0.0.1:$ADMIN_PORT"`;
  // The services that write an audit log, with the config path their container reads.
  const audited = deployments.flatMap(({ name, namespace, object }) => {
    const container = ((object.spec?.template as { spec?: { containers?: Array<{ command?: string[] }> } } | undefined)?.spec?.containers ?? [])[0];
    const command = container?.command ?? [];
    if (command[0] !== "perimeter" || command[1] !== "serve") return [];
    const configIndex = command.indexOf("-c");
    return [{ name, namespace, configPath: command[configIndex + 1] ?? "/etc/perimeter/perimeter.yaml", auditPath: auditPathOf(config, command[2]) }];
  });
  const agentNamespace = ns.system;
  return { config, render, ns, objects, deployments, configMaps, external, secretNamespace, adminPort, approvals, audited, agentNamespace };
}

function kubernetesDay1(document: Document, facts: KubernetesFacts): void {
  const { config, render, ns, deployments, external, secretNamespace, adminPort, approvals, audited } = facts;
  document.heading(1, `Runbook: perimeter "${config.name}" on Kubernetes`).text(
    `Rendered by \`perimeter render -t kubernetes\` for this declaration; re-rendering rewrites it. Namespaces: ${[ns.system, ns.tools, ...deployments.map((deployment) => deployment.namespace)].filter((value, index, all) => all.indexOf(value) === index).join(", ")}.`,
    "Blocks marked [here] run on your workstation (perimeter and kubectl installed); [cluster] blocks need access to the cluster.",
  );
  variablesBlock(document, "kubernetes", [`export ADMIN_PORT=${adminPort}                       # local end of the mcp-guard admin port-forward`]);

  document.heading(2, "Day 1");
  document.heading(3, "1. Images").text(
    `The perimeter services run \`${config.kubernetes.perimeterImage}\`; the agent runs \`${config.agent.image}\`. Pull or mirror both into a registry the cluster can reach; to build the perimeter image yourself, from a checkout of perimeter at the matching version:`,
  );
  document.commands("docker", `docker build -t ${config.kubernetes.perimeterImage} . && docker push ${config.kubernetes.perimeterImage}`);
  document.heading(3, "2. Check the render").text("Static checks and a kustomize build; both run without a cluster.");
  document.commands("here", 'perimeter check "$RENDER_DIR"', 'kubectl kustomize "$RENDER_DIR" > /dev/null');
  document.heading(3, "3. Namespaces and Secrets");
  if (external === undefined) {
    document.text(
      "Export every variable below (`read -rs NAME && export NAME`; tokens: `openssl rand -hex 32`), then run the script. It checks every variable first and names all missing ones at once; values go to kubectl in private temporary files, never on a command line. It is re-runnable: a run cut short is finished by running it again.",
    );
    secretTable(document, render.secrets, "namespace", secretNamespace);
    document.text("Values that must match:", ...sharedSecretNotes(config).map((note) => `- ${note}`));
    document.commands("cluster", 'kubectl apply -f "$RENDER_DIR/namespaces.yaml"', 'sh "$RENDER_DIR/create-secrets.sh" --dry-run', 'sh "$RENDER_DIR/create-secrets.sh"');
  } else {
    document.text(`Secrets come from ${external.storeKind} "${external.storeName}" (external-secrets.yaml): store one remote key per variable, named like it.`);
    secretTable(document, render.secrets, "namespace", secretNamespace);
    document.commands("cluster", 'kubectl apply -f "$RENDER_DIR/namespaces.yaml"');
  }
  document.heading(3, "4. Apply and wait until ready");
  document.commands(
    "cluster",
    'kubectl apply -k "$RENDER_DIR"',
    ...(external === undefined ? [] : [`kubectl get externalsecrets -A -l app.kubernetes.io/part-of=${config.name}   # every one SecretSynced`]),
    ...deployments.map((deployment) => `kubectl -n ${deployment.namespace} rollout status deployment/${deployment.name} --timeout=${deployment.name === AGENT_WORKLOAD ? "10m" : "5m"}`),
  );
  document.text(`The agent is ready when its gateway runs with every platform connected (its readiness probe reads gateway_state.json).`);

  document.heading(3, "5. Review the tool definitions of the first start").text(firstStartText(config));
  document.text(
    `The dashboard shows the same reviews in a browser: it listens on its pod's loopback only (no Ingress, a ClusterIP Service, a NetworkPolicy that admits nothing); open it through a port-forward, then http://127.0.0.1:${dashboardPort(config)}/, and log in with the admin token:`,
  );
  document.commands("cluster", dashboardPortForward(config));
  document.text(`From the terminal instead: the admin API (port ${adminPort}) admits only the dashboard pod on the pod network; reach it through a port-forward left open in a second terminal:`);
  document.commands("cluster", `kubectl -n ${ns.tools} port-forward deployment/${MCP_GUARD} "$ADMIN_PORT:${adminPort}"`);
  document.text(
    `Then, with the admin token exported (\`${config.mcp.admin.tokenSecret}\`, the value you gave create-secrets.sh), list the definitions, read each one whole, and approve or deny it (\`APPROVAL_ID\`: an ID from the list):`,
  );
  document.commands(
    "here",
    approvals("list --kind tool-definition"),
    approvals('show "$APPROVAL_ID"'),
    approvals('approve "$APPROVAL_ID" --reason "definition reviewed"'),
  );
  document.text(`Or inside the pod, without a port-forward: \`kubectl -n ${ns.tools} exec deployment/${MCP_GUARD} -- perimeter approvals list -c /etc/perimeter/perimeter.yaml\`.`);

  document.heading(3, "6. Approve or deny a held call").text(
    `A call matching a tool's \`approve\` rule waits for a human for ${config.approvals.timeoutSeconds} s (approvals.timeoutSeconds), then is denied. An approval lets exactly that call through once.`,
  );
  document.commands("here", approvals("list --kind tool-call"), approvals('show "$APPROVAL_ID"'), approvals('deny "$APPROVAL_ID" --reason "not expected"'));

  document.heading(3, "7. Read and verify the audit logs").text(
    "Each perimeter service keeps its own hash-chained audit log on its volume. Verify every chain, and read the newest records:",
  );
  document.commands(
    "cluster",
    ...audited.map((service) => `kubectl -n ${service.namespace} exec deployment/${service.name} -- perimeter audit-log verify -c ${service.configPath}`),
    `kubectl -n ${ns.tools} exec deployment/${MCP_GUARD} -- perimeter audit-log tail -n 20 -c /etc/perimeter/perimeter.yaml`,
  );
  document.text(SIGNED_CHECKPOINTS);
  document.commands("cluster", 'mkdir -p "$BACKUP_DIR"', ...audited.map((service) => `kubectl -n ${service.namespace} exec deployment/${service.name} -- perimeter audit-log public-key -c ${service.configPath} > "$BACKUP_DIR/${service.name}-audit.pub"`));
}

function kubernetesDay2(document: Document, facts: KubernetesFacts): void {
  const { config, render, objects, deployments, configMaps, external, secretNamespace, audited, agentNamespace } = facts;
  document.heading(2, "Day 2");
  document.heading(3, "8. Change the declaration and apply it").text(
    "Edit the declaration, re-render over this directory (nothing in it is yours: Secrets live in the cluster), check, look at the diff, apply:",
  );
  document.commands("here", 'perimeter render -c "$PERIMETER_DECLARATION" -t kubernetes -o "$RENDER_DIR" --force', 'perimeter check "$RENDER_DIR"');
  document.commands("cluster", 'kubectl diff -k "$RENDER_DIR"', 'kubectl apply -k "$RENDER_DIR"');
  document.text(
    `Which workloads restart: a Deployment rolls when its pod template changes. Every template carries \`perimeter.dev/config-hash\`, the hash of the ConfigMap data its pod reads, so a configuration change rolls exactly the workloads that read it:`,
  );
  document.table(
    ["workload", "reads", "rolls when"],
    deployments.map(({ name, namespace, object }) => {
      const pod = (object.spec?.template as { spec?: unknown } | undefined)?.spec;
      const reads = readsOf(pod);
      return [`${namespace}/${name}`, reads.length === 0 ? "no ConfigMap" : reads.join(", "), reads.length === 0 ? "its own spec changes (image, resources)" : podConfigHash(pod, namespace, configMaps) === undefined ? "its spec changes" : "that data or its own spec changes"];
    }),
  );
  document.text(
    "Secrets are not part of any template (their values are not in the render): after changing one, restart its readers (section 10). egress-proxy and mcp-guard also reload their policy from a changed file on their own; a new configuration that is invalid is refused with an error log and `perimeter_*_reloads_total{result=\"rejected\"}`, and the previous one stays in force.",
  );

  document.heading(3, "9. Add an egress host or an MCP server").text("An egress host: add it to `egress.allow` (a host name, `*.example.com` for subdomains; no URL, no path), then section 8.");
  document.yaml("egress:", "  allow:", "    - api.telegram.org", "    - api.example.com          # the new host");
  document.text(
    "An MCP server: declare it with the header that carries its credential as a variable, render, create its Secret (`mcp-guard-upstream-NAME`), apply, then review its tools (section 5): new tools are not available until approved (unless trustOnFirstUse).",
  );
  document.yaml("mcp:", "  servers:", "    example:", "      url: https://mcp.example.com/mcp", '      headers: { Authorization: "Bearer ${EXAMPLE_TOKEN}" }', "      tools: { allow: [list_things, get_thing] }");
  if (external === undefined) document.text('With the new variable exported: `sh "$RENDER_DIR/create-secrets.sh" mcp-guard-upstream-example` (after the render, the script knows the new Secret), then `kubectl apply -k "$RENDER_DIR"`.');

  document.heading(3, "10. Rotate a secret").text(
    "Pods read Secrets only at start. Export the new value (and every other variable of the same Secret), re-apply only the Secrets that hold it, and restart their readers; the script does both and can be run again after a partial run. A value held by two Secrets must change in both at once.",
  );
  document.table(
    ["variable", "Secrets", "command"],
    rotationRows(render.secrets).map(({ key, secrets }) => [
      key,
      secrets.map((secret) => `${secretNamespace(secret)}/${secret.name}`).join(", "),
      external === undefined ? `\`sh "$RENDER_DIR/create-secrets.sh" --restart ${secrets.map((secret) => secret.name).join(" ")}\`` : `update the remote key, then \`kubectl -n NS rollout restart deployment/NAME\` for ${secrets.map((secret) => secret.workload).join(", ")}`,
    ]),
  );

  document.heading(3, "11. Upgrade Hermes (and the perimeter)").text(
    "Set `agent.image` (or `kubernetes.perimeterImage`) in the declaration to the new tag, then section 8: the image is in the pod template, so exactly those workloads roll. Read docs/hermes-compatibility.md first.",
    `The seeded \`config.yaml\` on the agent's volume is **not** replaced: the seed-config init container copies it only when none exists, so what the agent or you changed there (\`/model\`, \`hermes setup\`, edits) survives upgrades, and a new seed (new endpoints, new keys for a new Hermes) does not reach it. To re-seed, move the old file aside; the next start copies the new seed and the old file stays beside it to compare. **What is lost:** every change made to config.yaml since it was seeded (re-apply what you need from the copy); nothing else in /opt/data (memories, skills, sessions, SOUL.md) is touched, and .env is never on the volume.`,
  );
  document.commands(
    "cluster",
    `kubectl -n ${agentNamespace} exec deployment/${AGENT_WORKLOAD} -c hermes -- mv /opt/data/config.yaml /opt/data/config.yaml.before-reseed`,
    `kubectl -n ${agentNamespace} rollout restart deployment/${AGENT_WORKLOAD}`,
    `kubectl -n ${agentNamespace} rollout status deployment/${AGENT_WORKLOAD} --timeout=10m`,
    `kubectl -n ${agentNamespace} exec deployment/${AGENT_WORKLOAD} -c hermes -- cat /opt/data/config.yaml.before-reseed > "$BACKUP_DIR/config.before-reseed.yaml"`,
    `kubectl -n ${agentNamespace} exec deployment/${AGENT_WORKLOAD} -c hermes -- cat /opt/data/config.yaml | diff "$BACKUP_DIR/config.before-reseed.yaml" - || true`,
  );

  document.heading(3, "12. Back up the agent's data and every audit log").text(
    "The agent's data directory, encrypted to an age public key (`age-keygen -o backup.key` on another machine; the key never goes near the cluster), and a consistent snapshot of each audit log (one SQLite read transaction, safe while the service writes):",
  );
  document.commands(
    "cluster",
    'mkdir -p "$BACKUP_DIR"',
    `kubectl -n ${agentNamespace} exec deployment/${AGENT_WORKLOAD} -c hermes -- tar -C /opt/data -cf - . | age -r "$AGE_RECIPIENT" > "$BACKUP_DIR/hermes-data-$(date -u +%Y%m%dT%H%M%SZ).tar.age"`,
    ...audited.flatMap((service) => [
      `kubectl -n ${service.namespace} exec deployment/${service.name} -- sh -c 'rm -f /tmp/audit-snapshot.db'`,
      `kubectl -n ${service.namespace} exec deployment/${service.name} -- ${AUDIT_SNAPSHOT} ${service.auditPath} /tmp/audit-snapshot.db`,
      `kubectl -n ${service.namespace} exec deployment/${service.name} -- cat /tmp/audit-snapshot.db > "$BACKUP_DIR/${service.name}-audit.db"`,
    ]),
  );
  document.text("Verify the copies where you keep them:");
  document.commands("here", ...audited.map((service) => `perimeter audit-log verify --db "$BACKUP_DIR/${service.name}-audit.db"`));

  document.heading(3, "13. Tear down").text(
    "Back up first (section 12): deleting the namespaces deletes every volume — the agent's memories and skills and the audit logs — with them.",
  );
  const allNamespaces = [...new Set([...objects.filter((object) => object.kind === "Namespace").map((object) => object.metadata?.name ?? "")])].filter((name) => name !== "");
  document.commands("cluster", 'kubectl delete -k "$RENDER_DIR" --ignore-not-found', `kubectl delete namespace ${allNamespaces.join(" ")} --ignore-not-found`);
  document.text("Then revoke what outlives the cluster:", ...revocations(config));
}

/** Where a service writes its audit log inside its container (egress-proxy may have its own, egress.auditPath). */
function auditPathOf(config: PerimeterConfig, service: string | undefined): string {
  return service === "egress-proxy" ? (config.egress.auditPath ?? config.audit.path) : config.audit.path;
}

/** "configmap/key" entries a pod reads (for the restart table). */
function readsOf(pod: unknown): string[] {
  type Source = { name: string; items?: Array<{ key: string }> };
  const spec = pod as { volumes?: Array<{ configMap?: Source; projected?: { sources?: Array<{ configMap?: Source }> } }> } | undefined;
  const reads: string[] = [];
  const add = (source: Source | undefined) => {
    if (source === undefined) return;
    if (source.items === undefined || source.items.length === 0) reads.push(`${source.name} (all keys)`);
    else for (const item of source.items) reads.push(`${source.name}/${item.key}`);
  };
  for (const volume of spec?.volumes ?? []) {
    add(volume.configMap);
    for (const projected of volume.projected?.sources ?? []) add(projected.configMap);
  }
  return reads;
}

/** Issue 14 item 6: every rendered component signs; the public keys must live where an attacker on the host is not. */
export const SIGNED_CHECKPOINTS =
  "Checkpoints are signed with a key each service created on its first start in its own state volume (`audit.signingKeyFile`). Keep each public key off the host: with it, `perimeter audit-log verify --public-key FILE` detects a log rewritten whole, which the hash chain alone cannot.";

// ---------------------------------------------------------------------------------------------------- compose

export function composeRunbook(config: PerimeterConfig, render: ComposeRender): string {
  const services = (render.compose.services ?? {}) as Record<string, { volumes?: string[]; env_file?: string[]; command?: string[]; labels?: Record<string, string>; image?: string }>;
  const serviceNames = Object.keys(services).sort();
  const secrets = secretPlan(config);
  const audited = serviceNames.filter((name) => {
    const command = services[name]?.command ?? [];
    return command[0] === "serve";
  });
  const exec = (service: string, command: string) => `docker compose exec -T ${service} ${command}`;
  const approvals = (args: string) => exec(MCP_GUARD, `perimeter approvals ${args} -c /etc/perimeter/perimeter.yaml`);
  const readersOf = (secret: SecretSpec) => serviceNames.filter((name) => (services[name]?.env_file ?? []).includes(`env/${secret.name}.env`));
  const document = new Document();
  document.heading(1, `Runbook: perimeter "${config.name}" on Docker Compose`).text(
    "Rendered by `perimeter render -t compose` for this declaration; re-rendering rewrites it. [docker] blocks run on the Docker host (Docker Engine 26+ with the compose plugin); [here] blocks wherever perimeter is installed.",
  );
  variablesBlock(document, "compose", ['export COMPOSE_FILE="$RENDER_DIR/compose.yaml"       # every docker compose command below uses it']);

  document.heading(2, "Day 1");
  document.heading(3, "1. Images").text(`The perimeter services run \`${config.kubernetes.perimeterImage}\` (kubernetes.perimeterImage); the agent runs \`${config.agent.image}\`. To build the perimeter image on this host, from a checkout of perimeter at the matching version:`);
  document.commands("docker", `docker build -t ${config.kubernetes.perimeterImage} .`, "docker compose pull --ignore-pull-failures");
  document.heading(3, "2. Check the render");
  document.commands("here", 'perimeter check "$RENDER_DIR"');
  document.heading(3, "3. Secrets: one env file per service").text(
    "Each service reads only its own file. Copy each example once (`cp -n` never overwrites a filled-in file), fill it in, keep it 0600. Tokens: `openssl rand -hex 32`.",
  );
  document.table(["file", "variables", "read by"], render.envFiles.map((file) => [file.file, file.keys.join(", "), file.service]));
  document.text("Values that must match:", ...sharedSecretNotes(config).map((note) => `- ${note}`));
  document.commands("here", 'for f in "$RENDER_DIR"/env/*.env.example; do cp -n "$f" "${f%.example}"; done', 'chmod 600 "$RENDER_DIR"/env/*.env');
  document.heading(3, "4. Start and wait until healthy");
  document.commands("docker", "docker compose up -d", "docker compose ps   # hermes-gateway turns (healthy); hermes-seed exits 0 after seeding");
  document.text("The gateway turns healthy once it runs with every platform connected (its healthcheck reads gateway_state.json).");

  document.heading(3, "5. Review the tool definitions of the first start").text(
    firstStartText(config),
    `In a browser: the dashboard is published on the Docker host's 127.0.0.1:${dashboardPort(config)} only (from your workstation: \`ssh -L ${dashboardPort(config)}:127.0.0.1:${dashboardPort(config)} DOCKER_HOST\`); log in with the admin token.`,
    "From the terminal: mcp-guard's container holds the admin token; run the commands there (`APPROVAL_ID`: an ID from the list).",
  );
  document.commands("docker", approvals("list --kind tool-definition"), approvals('show "$APPROVAL_ID"'), approvals('approve "$APPROVAL_ID" --reason "definition reviewed"'));
  document.heading(3, "6. Approve or deny a held call").text(`A held call waits ${config.approvals.timeoutSeconds} s (approvals.timeoutSeconds) for a decision, then is denied.`);
  document.commands("docker", approvals("list --kind tool-call"), approvals('deny "$APPROVAL_ID" --reason "not expected"'));
  document.heading(3, "7. Read and verify the audit logs");
  document.commands("docker", ...audited.map((service) => exec(service, "perimeter audit-log verify -c /etc/perimeter/perimeter.yaml")), exec(MCP_GUARD, "perimeter audit-log tail -n 20 -c /etc/perimeter/perimeter.yaml"));
  document.text(SIGNED_CHECKPOINTS);
  document.commands("docker", 'mkdir -p "$BACKUP_DIR"', ...audited.map((service) => `${exec(service, "perimeter audit-log public-key -c /etc/perimeter/perimeter.yaml")} > "$BACKUP_DIR/${service}-audit.pub"`));

  document.heading(2, "Day 2");
  document.heading(3, "8. Change the declaration and apply it").text(
    "Render beside this directory, check, and copy the new files over the old ones. `render --force` would keep your env files but swap the directory; copying in place keeps the running containers' bind mounts on the files they read.",
  );
  document.commands(
    "here",
    'rm -rf "$RENDER_DIR.next"',
    'perimeter render -c "$PERIMETER_DECLARATION" -t compose -o "$RENDER_DIR.next"',
    'perimeter check "$RENDER_DIR.next"',
    'cp -R "$RENDER_DIR.next"/. "$RENDER_DIR"/ && rm -rf "$RENDER_DIR.next"',
  );
  document.commands("docker", "docker compose up -d", "docker compose ps");
  document.text(
    `Which services restart: \`docker compose up -d\` recreates a service whose definition changed. Each service that mounts rendered files carries the label \`${CONFIG_HASH_LABEL}\`, the hash of those files, so a change recreates exactly the services that read it:`,
  );
  document.table(
    ["service", "mounts", "recreated when"],
    serviceNames.map((name) => {
      const mounts = (services[name]?.volumes ?? []).filter((volume) => volume.startsWith("./")).map((volume) => volume.split(":")[0] ?? volume);
      return [name, mounts.length === 0 ? "no rendered file" : mounts.join(", "), mounts.length === 0 ? "its definition changes" : "those files or its definition change"];
    }),
  );
  document.text("Env files are yours and are not hashed: after editing one, recreate its readers (section 10). egress-proxy and mcp-guard also reload a changed perimeter.yaml themselves; an invalid one is refused loudly and the old policy stays.");
  document.heading(3, "9. Add an egress host or an MCP server").text("Add the host to `egress.allow` (a host name, no URL), or the server to `mcp.servers` with its credential as `${VARIABLE}`; then section 8. A new server's credential goes to the new `env/mcp-guard-upstream-NAME.env` (step 3 copies its example); then review its tools (section 5).");
  document.yaml("egress:", "  allow: [api.telegram.org, api.example.com]", "mcp:", "  servers:", "    example:", "      url: https://mcp.example.com/mcp", '      headers: { Authorization: "Bearer ${EXAMPLE_TOKEN}" }', "      tools: { allow: [list_things] }");
  document.heading(3, "10. Rotate a secret").text("Edit the value in every env file that holds it (a value in two files must change in both), then recreate the services that read them. Re-running after a partial edit is safe.");
  const rows = rotationRows(secrets.filter((secret) => render.envFiles.some((file) => file.file === `env/${secret.name}.env`)));
  document.table(
    ["variable", "env files", "command"],
    rows.map(({ key, secrets: holders }) => [key, holders.map((secret) => `env/${secret.name}.env`).join(", "), `\`docker compose up -d --force-recreate ${[...new Set(holders.flatMap(readersOf))].join(" ")}\``]),
  );
  document.heading(3, "11. Upgrade Hermes (and the perimeter)").text(
    "Set `agent.image` (or `kubernetes.perimeterImage`) to the new tag, then section 8 and `docker compose pull`. Read docs/hermes-compatibility.md first.",
    "The seeded `config.yaml` on the hermes-data volume is **not** replaced (hermes-seed copies it only when absent). To re-seed, move it aside and run the seed again; the old file stays beside the new one. **What is lost:** every change made to config.yaml since it was seeded (re-apply what you need from the copy); the rest of /opt/data is untouched.",
  );
  document.commands(
    "docker",
    exec(AGENT_WORKLOAD, "mv /opt/data/config.yaml /opt/data/config.yaml.before-reseed"),
    "docker compose run --rm hermes-seed",
    `docker compose restart ${AGENT_WORKLOAD}`,
    exec(AGENT_WORKLOAD, "diff /opt/data/config.yaml.before-reseed /opt/data/config.yaml") + " || true",
  );
  document.heading(3, "12. Back up the agent's data and every audit log").text("Encrypted to an age public key whose private key lives elsewhere; audit logs as consistent snapshots (safe while the service writes).");
  document.commands(
    "docker",
    'mkdir -p "$BACKUP_DIR"',
    `${exec(AGENT_WORKLOAD, "tar -C /opt/data -cf - .")} | age -r "$AGE_RECIPIENT" > "$BACKUP_DIR/hermes-data-$(date -u +%Y%m%dT%H%M%SZ).tar.age"`,
    ...audited.flatMap((service) => [
      exec(service, "rm -f /tmp/audit-snapshot.db"),
      exec(service, `${AUDIT_SNAPSHOT} ${auditPathOf(config, services[service]?.command?.[1])} /tmp/audit-snapshot.db`),
      `${exec(service, "cat /tmp/audit-snapshot.db")} > "$BACKUP_DIR/${service}-audit.db"`,
    ]),
  );
  document.commands("here", ...audited.map((service) => `perimeter audit-log verify --db "$BACKUP_DIR/${service}-audit.db"`));
  document.heading(3, "13. Tear down").text("Back up first: `--volumes` deletes the agent's data and the audit logs. Without it the volumes stay for a later `up`.");
  document.commands("docker", "docker compose down --volumes", 'shred -u "$RENDER_DIR"/env/*.env 2>/dev/null || rm -f "$RENDER_DIR"/env/*.env');
  document.text("Then revoke what outlives the host:", ...revocations(config));
  return document.toString();
}
