// `perimeter render -t compose`: seed 002's egress isolation with our services. The agent sits on an internal
// network (no route out) and reaches the world only through egress-proxy; each service gets its own env file, so no
// container holds another's credentials; nothing is published beyond 127.0.0.1, nothing gets the Docker socket.
import type { PerimeterConfig } from "../../config/index.ts";
import { composeAuditAlias, endpoints as endpointsFor } from "../endpoints.ts";
import type { Endpoints } from "../endpoints.ts";
import { HERMES_ENV_PATH, hermesAgentFiles } from "../hermes.ts";
import type { HermesAgentFiles } from "../hermes.ts";
import { auditFeeds, dashboardPort } from "../dashboard.ts";
import {
  AGENT_WORKLOAD,
  DASHBOARD,
  EGRESS_PROXY,
  HERMES_UID,
  KUBERNETES_MCP,
  KUBERNETES_MCP_IMAGE,
  KUBERNETES_MCP_PORT,
  LLM_PROXY,
  MCP_GUARD,
  RUNTIME_CONFIG_PATH,
  SANDBOX_METRICS_PORT,
  SANDBOX_RUNNER,
  SERVICE_UID,
  STATE_DIRECTORY,
  refuseSandboxImage,
  builtinServer,
  deployedMcpServers,
  mcpGuardNeedsInternet,
  portOf,
  sandboxAllowlist,
  sandboxServerName,
  secretPlan,
  servedModels,
} from "../plan.ts";
import type { PerimeterService, SecretSpec } from "../plan.ts";
import { auditOnly, runtimeConfig } from "../runtime-config.ts";
import { KUBERNETES_READ_RULES, kubernetesMcpToml } from "../kubernetes/tool-servers.ts";
import { multiplyQuantity } from "../kubernetes/objects.ts";
import { standardLabels } from "../kubernetes/names.ts";
import { toCommentedYaml, toYaml, toYamlStream } from "../yaml.ts";
import { SANDBOX_SECCOMP_PROFILE } from "./seccomp.ts";
import { labelConfigHashes } from "./config-hash.ts";

export interface ComposeFile {
  readonly path: string;
  readonly content: string;
}

export interface ComposeRender {
  readonly files: readonly ComposeFile[];
  /** The parsed compose.yaml, for tests. */
  readonly compose: Record<string, unknown>;
  readonly envFiles: ReadonlyArray<{ service: string; file: string; keys: readonly string[]; purpose: string }>;
  readonly warnings: readonly string[];
}

type Service = Record<string, unknown>;

const LOGGING = { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } };

/**
 * DNS is a way out no proxy sees (`<secret>.attacker.example`). A container only on internal networks gets no
 * external answers from Docker's embedded resolver since the fix for CVE-2024-29018; before it, the resolver
 * forwarded such queries from the host's namespace whenever the host's own resolver listened on loopback
 * (systemd-resolved), past the internal network. Compose cannot pin that from the file, so the header says it.
 */
export const COMPOSE_DNS_NOTE = [
  "Needs Docker Engine 26.0.0+ (or 25.0.5+/23.0.11+): older engines resolve any name for containers on internal",
  "networks through the host's resolver (CVE-2024-29018), an unaudited way out. Check: docker version, and",
  "docker compose exec hermes-gateway getent hosts example.com must print nothing.",
];

/** Our services: non-root, read-only root, no capabilities, no privilege gain, bounded (seed 002/004). */
function hardened(memory: string, cpus: string): Service {
  return {
    user: `${SERVICE_UID}:${SERVICE_UID}`,
    read_only: true,
    tmpfs: ["/tmp:size=64m,mode=1777"],
    cap_drop: ["ALL"],
    security_opt: ["no-new-privileges:true"],
    mem_limit: memory,
    cpus,
    pids_limit: 256,
    restart: "unless-stopped",
    logging: LOGGING,
  };
}

function composeMemory(quantity: string): string {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (match === null) return quantity;
  const unit = { Ki: "k", Mi: "m", Gi: "g", Ti: "t", k: "k", M: "m", G: "g", T: "t" }[match[2] ?? ""] ?? "b";
  return `${match[1]}${unit}`;
}

function composeCpus(quantity: string): string {
  return quantity.endsWith("m") ? String(Number(quantity.slice(0, -1)) / 1000) : quantity;
}

export function renderCompose(config: PerimeterConfig): ComposeRender {
  refuseSandboxImage(config, "compose");
  const state: ComposeState = { config, endpoints: endpointsFor(config, "compose"), secrets: secretPlan(config), warnings: [], envFiles: [], services: {}, volumes: {}, comments: {}, envFileFor: () => "" };
  state.envFileFor = (secret, keys = secret.keys) => {
    const file = `env/${secret.name}.env`;
    state.envFiles.push({ service: secret.workload, file, keys: [...keys], purpose: secret.purpose });
    return file;
  };
  const networks = perimeterServices(state);
  toolServices(state);
  const hermes = agentServices(state);
  return composeOutput(state, networks, hermes);
}

/** What the service families of one Compose render share and fill in. */
interface ComposeState {
  readonly config: PerimeterConfig;
  readonly endpoints: Endpoints;
  readonly secrets: readonly SecretSpec[];
  readonly warnings: string[];
  readonly envFiles: Array<{ service: string; file: string; keys: string[]; purpose: string }>;
  readonly services: Record<string, Service>;
  readonly volumes: Record<string, Record<string, never>>;
  /** Comments written above keys of compose.yaml (`services.NAME.KEY`). */
  readonly comments: Record<string, string>;
  /** Registers a service's env file (its keys, for the templates) and returns its path. */
  envFileFor: (secret: SecretSpec, keys?: readonly string[]) => string;
}

/** One of our services: the perimeter image running `perimeter serve`, hardened, with its own state volume and env files. */
function perimeterService(state: ComposeState, name: string, service: PerimeterService, port: number | undefined, configPath: string, networks: string[], memory: string, extra: Service = {}): Service {
  state.volumes[`${name}-state`] = {};
  const serviceSecrets = state.secrets.filter((secret) => secret.workload === name);
  const definition: Service = {
    image: state.config.kubernetes.perimeterImage,
    command: ["serve", service, "-c", configPath, ...(port === undefined ? [] : ["--listen", `0.0.0.0:${port}`])],
    ...hardened(memory, "1"),
    ...(serviceSecrets.length === 0 ? {} : { env_file: serviceSecrets.map((secret) => state.envFileFor(secret)) }),
    environment: { HOME: "/tmp" },
    networks: serviceNetworks(state, name, networks),
    volumes: ["./config:/etc/perimeter:ro", `${name}-state:${STATE_DIRECTORY}`],
    ...extra,
  };
  state.services[name] = definition;
  return definition;
}

/**
 * A service's networks; a component whose feed the dashboard reads also gets a name on `audit` alone
 * (composeAuditAlias). Its admin and feed listeners bind that name (runtime-config.ts), which Docker's embedded DNS
 * resolves to the container's address on `audit` only, so the agent's network and the tool servers' networks, which
 * mcp-guard and egress-proxy also join, have no route to them. Only the long form of `networks:` carries aliases.
 */
function serviceNetworks(state: ComposeState, name: string, networks: readonly string[]): string[] | Record<string, { aliases?: string[] }> {
  if (!networks.includes("audit") || !auditFeeds(state.config, "compose").some((feed) => feed.component === name)) return [...networks];
  return Object.fromEntries(networks.map((network) => [network, network === "audit" ? { aliases: [composeAuditAlias(name)] } : {}]));
}

/** The networks, and the perimeter's own services on them (the proxies, mcp-guard, the dashboard, the sandbox runner). */
function perimeterServices(state: ComposeState): Record<string, Record<string, unknown>> {
  const { config } = state;
  // The agent's network is internal (no default route); only the egress side can reach the internet. `audit`
  // (internal) joins the dashboard to the services whose feeds it reads, without the agent; `dashboard` exists only so
  // Docker can publish the dashboard's port (it publishes nothing from an internal network), on 127.0.0.1.
  const networks: Record<string, Record<string, unknown>> = {
    agent: { internal: true },
    tools: { internal: true },
    egress: {},
    audit: { internal: true },
    // Not internal (Docker would publish nothing), but without masquerading: the dashboard has no route out.
    dashboard: { driver_opts: { "com.docker.network.bridge.enable_ip_masquerade": "false" } },
  };
  if (servedModels(config).length > 0) networks.llm = { internal: true };

  perimeterService(state, EGRESS_PROXY, "egress-proxy", portOf(config.egress.listen), RUNTIME_CONFIG_PATH, ["agent", "audit", "egress"], "256m");
  const guardNetworks = ["agent", "audit", "tools", ...(mcpGuardNeedsInternet(config) || deployedMcpServers(config).length > 0 ? ["egress"] : [])];
  perimeterService(state, MCP_GUARD, "mcp-guard", portOf(config.mcp.listen), RUNTIME_CONFIG_PATH, guardNetworks, "1g");
  perimeterService(state, LLM_PROXY, "llm-proxy", portOf(config.llm.listen), RUNTIME_CONFIG_PATH, ["agent", "audit", "egress", ...(servedModels(config).length > 0 ? ["llm"] : [])], "512m");
  // The dashboard: dashboard.listen is the container's address (Docker publishes to it), published on 127.0.0.1 only.
  const port = dashboardPort(config);
  perimeterService(state, DASHBOARD, "dashboard", undefined, RUNTIME_CONFIG_PATH, ["audit", "dashboard"], "512m", { ports: [`127.0.0.1:${port}:${port}`] });
  state.comments[`services.${DASHBOARD}.ports`] = "loopback only: open it through an SSH tunnel (ssh -L); never publish it on another address.";

  if (sandboxServerName(config) !== undefined) {
    // With a sandbox allowlist the runner's bubblewrap backend runs its own egress proxy in-process (one proxy client
    // per task, the task's allowlist only), so the runner itself needs the egress network; without one it has none.
    const runner = perimeterService(state, SANDBOX_RUNNER, "sandbox", portOf(config.sandbox.listen), RUNTIME_CONFIG_PATH, ["audit", "tools", ...(sandboxAllowlist(config) === undefined ? [] : ["egress"])], "2g", {});
    // Its own metrics listener (runs nothing) serves /healthz and the audit feed to the dashboard, on `audit` only:
    // the runner shares `tools` (and `egress`) with the MCP tool servers.
    runner.command = [...(runner.command as string[]), "--metrics-listen", auditOnly(state.endpoints, SANDBOX_RUNNER, SANDBOX_METRICS_PORT)];
    // bubblewrap builds each task's sandbox from user namespaces. Docker's default seccomp profile refuses
    // namespace creation to a process without CAP_SYS_ADMIN and docker-default AppArmor refuses mount; granting
    // CAP_SYS_ADMIN would be far worse, so the runner gets a profile that allows namespaces and denies the
    // syscalls container escapes use (config/sandbox-runner-seccomp.json), and no AppArmor profile.
    runner.security_opt = ["no-new-privileges:true", "seccomp=./config/sandbox-runner-seccomp.json", "apparmor=unconfined"];
    runner.tmpfs = ["/tmp:size=1g,mode=1777"];
    // Docker mounts the cgroup filesystem read-only, so the container's own limits are the sandbox's budget:
    // sized for sandbox.concurrency tasks at their limits, plus the runner itself.
    runner.pids_limit = config.sandbox.limits.pids * config.sandbox.concurrency + 64;
    runner.mem_limit = composeMemory(multiplyQuantity(config.sandbox.limits.memory, config.sandbox.concurrency));
    runner.cpus = composeCpus(multiplyQuantity(config.sandbox.limits.cpu, config.sandbox.concurrency));
    state.comments[`services.${SANDBOX_RUNNER}.security_opt`] = [
      "perimeter:ignore COMPOSE-SECURITY-OPT-UNCONFINED bubblewrap needs mount inside its user namespaces, which docker-default AppArmor denies; seccomp stays on (a namespace-permitting profile), capabilities stay dropped (docs/render.md)",
      "bubblewrap creates each task's namespaces; see docs/render.md, \"The sandbox on Docker Compose\".",
    ].join("\n");
  }
  return networks;
}

/** What mcp-guard calls that runs beside it: the read-only Kubernetes MCP, servers from their own image, local models. */
function toolServices(state: ComposeState): void {
  const { config } = state;
  const kubernetesServer = builtinServer(config, "kubernetes-readonly");
  if (kubernetesServer !== undefined) {
    const [, entry] = kubernetesServer;
    state.services[KUBERNETES_MCP] = {
      image: entry.image ?? KUBERNETES_MCP_IMAGE,
      command: ["--config", "/etc/kubernetes-mcp-server/config.toml"],
      ...hardened("256m", "0.5"),
      environment: { HOME: "/tmp" },
      networks: ["tools", "egress"],
      volumes: ["./config/kubernetes-mcp-server.toml:/etc/kubernetes-mcp-server/config.toml:ro", "./secrets/kubeconfig:/etc/kubernetes-mcp-server/kubeconfig:ro"],
    };
    state.comments[`services.${KUBERNETES_MCP}.volumes`] = "secrets/kubeconfig: a kubeconfig for the read-only ServiceAccount of kubernetes-readonly-rbac.yaml (docs/render.md).";
  }

  for (const server of deployedMcpServers(config)) {
    const own = state.secrets.find((secret) => secret.name === server.workload);
    state.services[server.workload] = {
      image: server.image,
      ...hardened("512m", "0.5"),
      ...(own === undefined ? {} : { env_file: [state.envFileFor(own)] }),
      environment: {
        HOME: "/tmp",
        ...Object.fromEntries(Object.entries(server.config.env).filter(([, value]) => !/\$\{/.test(value)).sort(([a], [b]) => (a < b ? -1 : 1))),
      },
      networks: ["tools", "egress"],
    };
    if (Object.values(server.config.env).some((value) => /\$\{/.test(value))) {
      state.warnings.push(`mcp.servers.${server.server}.env: values with \${VAR} are not expanded on Compose; put the final value in ${own === undefined ? "the server's env file" : `env/${own.name}.env`}`);
    }
  }

  for (const model of servedModels(config)) {
    const name = `llm-${model.provider}`;
    state.volumes[`${name}-models`] = {};
    const isVllm = model.engine === "vllm";
    state.services[name] = {
      image: model.image,
      ...(isVllm ? { command: ["--model", model.model, "--served-model-name", ...model.servedNames, "--host", "0.0.0.0", "--port", String(model.port), "--download-dir", "/models"] } : {}),
      user: `${SERVICE_UID}:${SERVICE_UID}`,
      cap_drop: ["ALL"],
      security_opt: ["no-new-privileges:true"],
      read_only: true,
      tmpfs: ["/tmp:size=2g,mode=1777"],
      environment: isVllm
        ? { HOME: "/tmp", HF_HOME: "/models/huggingface", HF_HUB_OFFLINE: "1", XDG_CACHE_HOME: "/tmp/.cache" }
        : { HOME: "/tmp", OLLAMA_HOST: `0.0.0.0:${model.port}`, OLLAMA_MODELS: "/models" },
      ...(isVllm ? { shm_size: "2g" } : {}),
      mem_limit: composeMemory(model.resources.memory),
      cpus: composeCpus(model.resources.cpu),
      networks: ["llm"],
      volumes: [`${name}-models:/models`],
      restart: "unless-stopped",
      logging: LOGGING,
      ...(model.gpus > 0 ? { deploy: { resources: { reservations: { devices: [{ driver: "nvidia", count: model.gpus, capabilities: ["gpu"] }] } } } } : {}),
    };
  }
}

/** The agent: internal network only, proxy settings, its own env file, its data volume seeded once. */
function agentServices(state: ComposeState): HermesAgentFiles {
  const { config } = state;
  state.volumes["hermes-data"] = {};
  const agentSecret = state.secrets.find((secret) => secret.name === AGENT_WORKLOAD);
  const hermes = hermesAgentFiles(config, state.endpoints);
  const agentEntries = hermes.environment;
  // Compose passes env files through as-is, so the agent's file holds each variable under the name Hermes reads.
  const agentFileKeys = agentEntries.flatMap((entry) => ("secretKey" in entry ? [entry.name] : [])).sort();
  state.services["hermes-seed"] = {
    image: config.agent.image,
    entrypoint: ["sh", "-c"],
    command: ['if [ ! -f /opt/data/config.yaml ]; then cp /seed/config.yaml /opt/data/config.yaml && echo "seeded config.yaml"; else echo "config.yaml already present, leaving it"; fi'],
    // The image creates /opt/data for uid 10000 (useradd -d /opt/data), and a new named volume inherits that.
    user: `${HERMES_UID}:${HERMES_UID}`,
    network_mode: "none",
    read_only: true,
    cap_drop: ["ALL"],
    security_opt: ["no-new-privileges:true"],
    volumes: ["hermes-data:/opt/data", "./config/hermes-config.yaml:/seed/config.yaml:ro"],
    restart: "no",
  };
  state.services[AGENT_WORKLOAD] = {
    image: config.agent.image,
    command: ["gateway", "run"],
    depends_on: {
      "hermes-seed": { condition: "service_completed_successfully" },
      [EGRESS_PROXY]: { condition: "service_started" },
      [LLM_PROXY]: { condition: "service_started" },
      [MCP_GUARD]: { condition: "service_started" },
    },
    env_file: agentSecret === undefined ? [] : [state.envFileFor(agentSecret, agentFileKeys)],
    environment: Object.fromEntries(agentEntries.flatMap((entry) => ("value" in entry ? [[entry.name, entry.value]] : []))),
    networks: ["agent"],
    // Hermes loads .env over its environment; read-only, the agent cannot rewrite it to undo the proxy or allowlists.
    volumes: ["hermes-data:/opt/data", `./config/hermes.env:${HERMES_ENV_PATH}:ro`],
    tmpfs: ["/tmp:size=1g"],
    // The s6 init needs CHOWN/SETUID/SETGID to drop to uid 10000 (seed 003), so only NET_RAW is dropped.
    cap_drop: ["NET_RAW"],
    security_opt: ["no-new-privileges:true"],
    mem_limit: composeMemory(config.agent.resources.limits.memory),
    cpus: composeCpus(config.agent.resources.limits.cpu),
    pids_limit: 1024,
    // Healthy only while this process's gateway runs with every platform connected (gateway_state.json, hermes.ts).
    healthcheck: {
      test: ["CMD", ...hermes.healthcheck],
      interval: "10s",
      timeout: "5s",
      retries: 30,
      start_period: "20s",
    },
    restart: "unless-stopped",
    logging: LOGGING,
  };
  state.comments[`services.${AGENT_WORKLOAD}.networks`] = "internal only: no default route; HTTPS_PROXY is the way out (seed 002).";
  if (config.agent.apiServer.enabled || config.agent.dashboard.enabled) {
    state.warnings.push("agent.apiServer/dashboard on Compose: render publishes no port (the agent's network is internal, and Docker publishes nothing from an internal network); reach it with `docker compose exec` or add a loopback-bound reverse proxy on the agent network");
  }
  return hermes;
}

/** compose.yaml (labelled with the hash of what each service mounts), the runtime config and the env file templates. */
function composeOutput(state: ComposeState, networks: Record<string, Record<string, unknown>>, hermes: HermesAgentFiles): ComposeRender {
  const { config, services, volumes, comments, envFiles, warnings } = state;
  const sandboxServer = sandboxServerName(config);
  const kubernetesServer = builtinServer(config, "kubernetes-readonly");
  const composeObject = {
    name: config.name,
    services: Object.fromEntries(Object.entries(services).sort(([a], [b]) => (a < b ? -1 : 1))),
    networks,
    volumes,
  };
  const header = [
    `perimeter "${config.name}" for Docker Compose, rendered by perimeter render. Start with: docker compose up -d`,
    "Fill env/*.env first (copy each env/*.env.example; .env.example lists every secret per service).",
    "Only the dashboard's port is published, on 127.0.0.1; no container gets the Docker socket or the host network.",
    ...COMPOSE_DNS_NOTE,
  ].join("\n");
  const composeYaml = toCommentedYaml(composeObject, comments, header);

  const runtime = runtimeConfig(config, state.endpoints);
  const files: ComposeFile[] = [
    { path: "compose.yaml", content: composeYaml },
    { path: "config/perimeter.yaml", content: toYaml(runtime) },
    { path: "config/hermes-config.yaml", content: hermes.configYaml },
    { path: "config/hermes.env", content: hermes.envFile },
  ];
  if (sandboxServer !== undefined) files.push({ path: "config/sandbox-runner-seccomp.json", content: `${JSON.stringify(SANDBOX_SECCOMP_PROFILE, null, 2)}\n` });
  if (kubernetesServer !== undefined) {
    const [, entry] = kubernetesServer;
    files.push({ path: "config/kubernetes-mcp-server.toml", content: kubernetesMcpToml({ port: KUBERNETES_MCP_PORT, kubeconfig: "/etc/kubernetes-mcp-server/kubeconfig" }) });
    files.push({ path: "kubernetes-readonly-rbac.yaml", content: readonlyRbac(config, entry.namespaces) });
  }
  envFiles.sort((a, b) => (a.file < b.file ? -1 : 1));
  for (const envFile of envFiles) {
    files.push({
      path: `${envFile.file}.example`,
      content: [`# ${envFile.purpose}`, `# Copy to ${envFile.file} (chmod 600) and fill in. Read only by the ${envFile.service} container.`, ...envFile.keys.map((key) => `${key}=`), ""].join("\n"),
    });
  }
  files.push({ path: ".env.example", content: envExample(config, envFiles) });
  // Every mounted file is known now: label each service with the hash of what it mounts, then write compose.yaml again.
  labelConfigHashes(composeObject.services, files);
  files.splice(files.findIndex((file) => file.path === "compose.yaml"), 1, { path: "compose.yaml", content: toCommentedYaml(composeObject, comments, header) });
  files.sort((a, b) => (a.path < b.path ? -1 : 1));
  return { files, compose: composeObject, envFiles, warnings };
}

function envExample(config: PerimeterConfig, envFiles: ReadonlyArray<{ service: string; file: string; keys: readonly string[]; purpose: string }>): string {
  const lines = [
    `# Every secret of perimeter "${config.name}", per service. Each service reads only its own file under env/:`,
    "# this file is documentation (Compose does not read it). Generate tokens with: openssl rand -hex 32",
    "# A variable listed under two services must hold the same value in both files.",
  ];
  for (const envFile of envFiles) {
    lines.push("", `# --- ${envFile.file} (service ${envFile.service}): ${envFile.purpose}`);
    for (const key of envFile.keys) lines.push(`${key}=`);
  }
  return `${lines.join("\n")}\n`;
}

/** RBAC to apply to the cluster the Compose host's kubernetes-mcp-server reads: a token-only ServiceAccount. */
function readonlyRbac(config: PerimeterConfig, targetNamespaces: readonly string[]): string {
  const home = [...targetNamespaces].sort()[0] ?? "default";
  const name = `${config.name}-${KUBERNETES_MCP}`;
  const objects: unknown[] = [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace: home, labels: standardLabels(config, name, KUBERNETES_MCP) }, automountServiceAccountToken: false },
  ];
  for (const namespace of [...targetNamespaces].sort()) {
    objects.push(
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: `${name}-read`, namespace, labels: standardLabels(config, `${name}-read`, KUBERNETES_MCP) }, rules: KUBERNETES_READ_RULES },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: `${name}-read`, namespace, labels: standardLabels(config, `${name}-read`, KUBERNETES_MCP) },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: `${name}-read` },
        subjects: [{ kind: "ServiceAccount", name, namespace: home }],
      },
    );
  }
  return `# Apply to the cluster kubernetes-mcp-server reads, then build secrets/kubeconfig from a token:\n#   kubectl create token ${name} -n ${home} --duration=720h\n${toYamlStream(objects)}`;
}
