// Docker Compose rules (the Compose Specification; `version:` is accepted and ignored like Compose v2 does).
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { closest } from "../config/index.ts";
import type { Collector, Subject } from "./collector.ts";
import { parseEnvText } from "./env-file.ts";
import { isLoopbackHost } from "../shared/index.ts";
import { UNKNOWN_VALUE, checkHermesEnvironment, commandWords, exposedDashboardHost, hasAgentLabels, isAgentImage, runsGateway } from "./hermes-facts.ts";
import type { EnvEntry } from "./hermes-facts.ts";
import type { CheckError } from "./model.ts";
import { asArray, asRecord, asString } from "./yaml-source.ts";
import type { Path, YamlDocument } from "./yaml-source.ts";

const TOP_LEVEL_KEYS = ["version", "name", "services", "networks", "volumes", "configs", "secrets", "include", "models"];
const SERVICE_KEYS = ["annotations", "attach", "build", "blkio_config", "cpu_count", "cpu_percent", "cpu_shares", "cpu_period", "cpu_quota", "cpu_rt_runtime", "cpu_rt_period", "cpus", "cpuset", "cap_add", "cap_drop", "cgroup", "cgroup_parent", "command", "configs", "container_name", "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname", "driver_opts", "entrypoint", "env_file", "environment", "expose", "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck", "hostname", "image", "init", "ipc", "isolation", "labels", "label_file", "links", "logging", "mac_address", "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "models", "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports", "post_start", "pre_stop", "privileged", "profiles", "provider", "pull_policy", "read_only", "restart", "runtime", "scale", "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts", "volumes", "volumes_from", "working_dir"];

const SOCKETS = ["/var/run/docker.sock", "/run/docker.sock", "/var/run/containerd/containerd.sock", "/run/containerd/containerd.sock", "/run/podman/podman.sock", "/var/run/crio/crio.sock"];

/** A YAML document is a compose file when its top level has a `services` mapping and nothing that is not Compose. */
export function looksLikeCompose(value: unknown): boolean {
  const root = asRecord(value);
  return root !== undefined && asRecord(root.services) !== undefined && root.apiVersion === undefined && root.kind === undefined;
}

function serviceSubject(document: YamlDocument, name: string): Subject {
  return { file: document.file, name: `service ${name}`, locate: (path) => document.locate(["services", name, ...path]) };
}

function isAgentService(name: string, service: Record<string, unknown>): boolean {
  if (isAgentImage(asString(service.image))) return true;
  if (runsGateway([...commandWords(service.command), ...commandWords(service.entrypoint)])) return true;
  const labels = asRecord(service.labels) ?? Object.fromEntries(asArray(service.labels).map((entry) => String(entry).split("=", 2)));
  if (hasAgentLabels(labels)) return true;
  // Override files (seed 002) name the service without repeating its image.
  return service.image === undefined && service.build === undefined && ["hermes", "hermes-agent", "hermes-gateway", "gateway"].includes(name);
}

/** A published port's host address: "" when it listens on every interface. */
function publishedHost(port: unknown): { host: string; text: string } | undefined {
  const long = asRecord(port);
  if (long !== undefined) {
    if (long.published === undefined) return undefined;
    return { host: asString(long.host_ip) ?? "", text: `${asString(long.host_ip) ?? ""}${asString(long.host_ip) === undefined ? "" : ":"}${String(long.published)}:${String(long.target)}` };
  }
  const text = asString(port);
  if (text === undefined) return undefined;
  const withoutProtocol = text.replace(/\/(tcp|udp|sctp)$/i, "");
  const bracketed = /^\[([^\]]+)\]:(.+)$/.exec(withoutProtocol);
  if (bracketed !== null) return { host: bracketed[1] as string, text };
  const parts = withoutProtocol.split(":");
  if (parts.length <= 1) return undefined; // container port only: Docker picks an ephemeral host port on 0.0.0.0
  if (parts.length === 2) return { host: "", text };
  return { host: parts.slice(0, parts.length - 2).join(":"), text };
}

function environmentOf(document: YamlDocument, directory: string, name: string, service: Record<string, unknown>, subject: Subject, errors: CheckError[], notes: Array<{ file: string; reason: string }>): EnvEntry[] {
  const entries: EnvEntry[] = [];
  const valueOf = (raw: string | undefined): string | typeof UNKNOWN_VALUE => (raw === undefined || raw.includes("${") || /\$[A-Za-z_]/.test(raw) ? UNKNOWN_VALUE : raw);
  // env_file first: `environment` overrides it, as in Compose.
  const envFiles = typeof service.env_file === "string" ? [service.env_file] : asArray(service.env_file);
  envFiles.forEach((item, index) => {
    const relative = asString(item) ?? asString(asRecord(item)?.path);
    if (relative === undefined) return;
    const full = resolve(directory, relative);
    if (!existsSync(full)) {
      notes.push({ file: full, reason: `env_file of service ${name} not found; its variables were not checked` });
      return;
    }
    const parsed = parseEnvText(full, readFileSync(full, "utf8"));
    errors.push(...parsed.errors);
    for (const variable of parsed.variables) entries.push({ name: variable.name, value: variable.value, subject, path: ["env_file", index] });
  });
  const environment = service.environment;
  if (Array.isArray(environment)) {
    environment.forEach((item, index) => {
      const text = asString(item) ?? "";
      const equals = text.indexOf("=");
      entries.push({ name: equals < 0 ? text : text.slice(0, equals), value: equals < 0 ? UNKNOWN_VALUE : valueOf(text.slice(equals + 1)), subject, path: ["environment", index] });
    });
  } else {
    for (const [key, value] of Object.entries(asRecord(environment) ?? {})) {
      entries.push({ name: key, value: value === null ? UNKNOWN_VALUE : valueOf(asString(value)), subject, path: ["environment", key] });
    }
  }
  return entries;
}

/** `directory` is where the compose file lives: env_file paths are relative to it. */
export function checkCompose(document: YamlDocument, directory: string, collector: Collector, errors: CheckError[], notes: Array<{ file: string; reason: string }>): void {
  const root = asRecord(document.value) ?? {};
  const fileSubject: Subject = { file: document.file, name: "compose file", locate: (path) => document.locate(path) };
  for (const key of Object.keys(root)) {
    if (TOP_LEVEL_KEYS.includes(key) || key.startsWith("x-")) continue;
    const suggestion = closest(key, TOP_LEVEL_KEYS);
    collector.add("COMPOSE-UNKNOWN-KEY", fileSubject, [key], `unknown top-level key "${key}"${suggestion === undefined ? "" : ` — did you mean "${suggestion}"?`}`);
  }
  const networks = asRecord(root.networks) ?? {};
  for (const [name, raw] of Object.entries(asRecord(root.services) ?? {})) {
    const service = asRecord(raw) ?? {};
    const subject = serviceSubject(document, name);
    const agent = isAgentService(name, service);
    for (const key of Object.keys(service)) {
      if (SERVICE_KEYS.includes(key) || key.startsWith("x-")) continue;
      const suggestion = closest(key, SERVICE_KEYS);
      collector.add("COMPOSE-UNKNOWN-KEY", subject, [key], `unknown service key "${key}"${suggestion === undefined ? "" : ` — did you mean "${suggestion}"?`}; the setting is not applied`);
    }
    const networkMode = asString(service.network_mode);
    if (networkMode === "host") collector.add("COMPOSE-HOST-NETWORK", subject, ["network_mode"], `network_mode: host gives ${agent ? "the agent" : `service ${name}`} the host's network: NetworkPolicy-like isolation and internal networks do not apply`);
    for (const field of ["pid", "ipc", "uts", "userns_mode"] as const) {
      if (asString(service[field]) === "host") collector.add("COMPOSE-HOST-NETWORK", subject, [field], `${field}: host shares the host's ${field === "userns_mode" ? "user" : field.toUpperCase()} namespace`);
    }
    if (service.privileged === true) collector.add("COMPOSE-PRIVILEGED", subject, ["privileged"], `service ${name} runs privileged`);
    const added = asArray(service.cap_add).map((entry) => String(entry).toUpperCase().replace(/^CAP_/, "")).filter((capability) => capability !== "NET_BIND_SERVICE");
    if (added.length > 0) collector.add("COMPOSE-CAP-ADD", subject, ["cap_add"], `service ${name} adds ${added.join(", ")}`);
    asArray(service.security_opt).forEach((entry, index) => {
      const option = String(entry).replace(/\s/g, "").toLowerCase();
      if (/^(seccomp|apparmor)[:=]unconfined$/.test(option) || /^label[:=]disable$/.test(option) || /^no-new-privileges[:=]false$/.test(option) || option === "systempaths=unconfined") {
        collector.add("COMPOSE-SECURITY-OPT-UNCONFINED", subject, ["security_opt", index], `security_opt "${String(entry)}" removes a kernel confinement`);
      }
    });
    asArray(service.volumes).forEach((entry, index) => {
      const source = asString(asRecord(entry)?.source) ?? asString(entry)?.split(":")[0];
      if (source !== undefined && SOCKETS.includes(source.replace(/\/+$/, ""))) collector.add("COMPOSE-DOCKER-SOCKET", subject, ["volumes", index], `service ${name} mounts ${source}`);
    });
    if (service.use_api_socket === true) collector.add("COMPOSE-DOCKER-SOCKET", subject, ["use_api_socket"], `use_api_socket gives service ${name} the Docker API`);
    asArray(service.ports).forEach((entry, index) => {
      const published = publishedHost(entry);
      if (published === undefined) return;
      const host = published.host.replace(/^\[|\]$/g, "");
      if (host === "" || host === "0.0.0.0" || host === "::") collector.add("COMPOSE-PORT-ALL-INTERFACES", subject, ["ports", index], `port "${published.text}" is published on every interface (and Docker's rules bypass ufw)`);
    });
    const environment = environmentOf(document, directory, name, service, subject, errors, notes);
    checkHermesEnvironment(environment, { complete: agent, providerKeyRule: agent ? "COMPOSE-PROVIDER-KEY-IN-AGENT" : undefined }, collector);
    const dashboardHost = exposedDashboardHost([...commandWords(service.command), ...commandWords(service.entrypoint)]);
    if (dashboardHost !== undefined) collector.add("HERMES-DASHBOARD-EXPOSED", subject, ["command"], `the dashboard binds ${dashboardHost}`);
    if (!agent) continue;
    if (networkMode === "none") continue;
    if (networkMode === undefined || networkMode === "") {
      const attached = Array.isArray(service.networks) ? service.networks.map(String) : Object.keys(asRecord(service.networks) ?? {});
      if (attached.length === 0) {
        collector.add("COMPOSE-AGENT-NETWORK-NOT-INTERNAL", subject, [], `the agent is on the project's default network, which has a route to the internet`);
      }
      attached.forEach((network, index) => {
        const definition = asRecord(networks[network]);
        if (definition?.internal === true) return;
        const why = networks[network] === undefined && network !== "default" ? "is not defined in this file" : definition?.external === true || definition?.external !== undefined ? "is external, so its settings are not visible here" : "is not internal: true";
        collector.add("COMPOSE-AGENT-NETWORK-NOT-INTERNAL", subject, Array.isArray(service.networks) ? ["networks", index] : ["networks", network], `the agent's network "${network}" ${why}`);
      });
    }
    if (networkMode !== "host") {
      const proxy = environment.find((entry) => /^https?_proxy$/i.test(entry.name) && entry.value !== "");
      if (proxy === undefined) collector.add("COMPOSE-NO-EGRESS-PROXY", subject, service.environment === undefined ? [] : ["environment"], "the agent has no HTTPS_PROXY/HTTP_PROXY: its outbound calls have no allowlisted path");
      else if (typeof proxy.value === "string" && isLoopbackHost(proxy.value.replace(/^https?:\/\//, "").replace(/:\d+.*$/, ""))) {
        // A loopback proxy inside the agent's container is the agent itself: no boundary.
        collector.add("COMPOSE-NO-EGRESS-PROXY", subject, proxy.path, `${proxy.name} points at loopback, inside the agent's own container`);
      }
    }
  }
}

export type { Path };
