// `perimeter serve dashboard -c perimeter.yaml [--listen HOST:PORT]`
import { dirname, join, resolve } from "node:path";
import { EXIT_OK, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command } from "../cli/index.ts";
import { createApprovalsClient } from "../approvals/index.ts";
import { feedTokenNeeds, loadConfig, placeholdersIn, readSecret, requireSecrets, secretValues, splitHostPort } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { readFileSync } from "node:fs";
import { createLogger, formatHostPort, openServiceAudit, untilStopped } from "../shared/index.ts";
import { createAuditIndex } from "./audit-index.ts";
import type { AuditIndex, LocalSource, SourceState } from "./audit-index.ts";
import { createChainMonitor } from "./chain.ts";
import { createRemoteMirror } from "./remote-source.ts";
import type { RemoteMirror } from "./remote-source.ts";
import { readKeySpend } from "./llm-spend.ts";
import { createDashboard } from "./server.ts";

const HELP = `perimeter serve dashboard — the operator's web UI: approvals, tool reviews, the audit log, egress, LLM spend, health

Usage:
  perimeter serve dashboard -c perimeter.yaml [--listen HOST:PORT] [--log-level LEVEL]

Listens on dashboard.listen (127.0.0.1:8720 by default; keep it on loopback and reach it over SSH or a port-forward).
Log in with the admin token (the variable named by mcp.admin.tokenSecret); decisions go through the mcp-guard admin
API (mcp.admin.listen, or dashboard.adminUrl). It reads audit.path (or dashboard.sources) read-only and keeps its
search index in dashboard.statePath (default dashboard.db beside the audit log).
`;

/** An address as a client dials it: a wildcard bind is reached on loopback. */
function origin(listen: string): string {
  const parsed = splitHostPort(listen);
  if (parsed === undefined) throw new UsageError(`"${listen}" is not HOST:PORT`);
  const host = parsed.host.replace(/^\[|\]$/g, "");
  const dial = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${dial.includes(":") ? `[${dial}]` : dial}:${parsed.port}`;
}

/** Service name to /healthz URL, from the listen addresses a config gives each service. */
export function healthUrls(config: PerimeterConfig): Record<string, string> {
  if (Object.keys(config.dashboard.health).length > 0) return { ...config.dashboard.health };
  const urls: Record<string, string> = {};
  if (config.egress.metrics !== undefined) urls["egress-proxy"] = `${origin(config.egress.metrics)}/healthz`;
  if (Object.keys(config.llm.providers).length > 0) urls["llm-proxy"] = `${origin(config.llm.listen)}/healthz`;
  if (config.agent.terminal === "sandbox" || Object.values(config.mcp.servers).some((server) => server.builtin === "sandbox")) urls.sandbox = `${origin(config.sandbox.listen)}/healthz`;
  if (Object.keys(config.mcp.servers).length > 0 || config.agent.terminal === "sandbox") urls["mcp-guard"] = `${origin(config.mcp.admin.listen)}/healthz`;
  return urls;
}

/** Every variable the config names as holding a secret: the dashboard masks their values wherever they appear. */
export function secretNamesOf(config: PerimeterConfig): Set<string> {
  const names = new Set<string>();
  const walk = (value: unknown, key: string, depth: number) => {
    if (depth > 12) return;
    if (typeof value === "string") {
      if (/Secret$/.test(key)) names.add(value);
      for (const name of placeholdersIn(value)) names.add(name);
    } else if (Array.isArray(value)) {
      for (const item of value) {
        if (typeof item === "string" && ["canaries", "secrets", "extraSecrets"].includes(key)) names.add(item);
        walk(item, key, depth + 1);
      }
    } else if (value !== null && typeof value === "object") {
      for (const [child, item] of Object.entries(value)) walk(item, child, depth + 1);
    }
  };
  walk(config, "", 0);
  return names;
}

/** A source the dashboard copies from a service's audit feed into a local mirror (remote-source.ts). */
export interface RemoteSource extends LocalSource {
  readonly url: string;
}

/** Every log the dashboard shows; a url source is read from its local mirror in `mirrorDirectory`. */
export function dashboardSources(config: PerimeterConfig, cwd: string, mirrorDirectory: string): { sources: LocalSource[]; remotes: RemoteSource[] } {
  if (config.dashboard.sources.length === 0) {
    const sources: LocalSource[] = [{ name: "perimeter", path: resolve(cwd, config.audit.path) }];
    if (config.egress.auditPath !== undefined && resolve(cwd, config.egress.auditPath) !== sources[0]?.path) sources.push({ name: "egress-proxy", path: resolve(cwd, config.egress.auditPath) });
    return { sources, remotes: [] };
  }
  const remotes: RemoteSource[] = [];
  const sources = config.dashboard.sources.map((source): LocalSource => {
    if (source.url !== undefined) {
      const remote = { name: source.name, url: source.url, path: join(mirrorDirectory, `mirror-${source.name}.db`) };
      remotes.push(remote);
      return remote;
    }
    return { name: source.name, path: resolve(cwd, source.path ?? "") };
  });
  return { sources, remotes };
}

/** Copies every remote source's new records now and then, one page round at a time; never overlapping itself. */
function startMirroring(mirrors: readonly RemoteMirror[], intervalMs: number): () => void {
  let busy = false;
  const tick = () => {
    if (busy) return;
    busy = true;
    void Promise.all(mirrors.map((mirror) => mirror.sync())).finally(() => {
      busy = false;
    });
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** The index's source states, with a remote that cannot be copied from shown as such (its copy stays searchable). */
function withRemoteStates(index: AuditIndex, mirrors: readonly RemoteMirror[]): AuditIndex {
  const byName = new Map(mirrors.map((mirror) => [mirror.name, mirror]));
  return {
    ...index,
    sources: () =>
      index.sources().map((source): SourceState => {
        const remote = byName.get(source.name)?.state();
        if (remote?.state === "unreachable") return { name: source.name, state: "unreadable", records: source.records, message: remote.message };
        if (remote?.state === "diverged") return { name: source.name, state: "unreadable", records: source.records, message: remote.reason };
        if (remote?.state === "pending" && source.state === "missing") return { name: source.name, state: "missing", records: source.records, message: "not copied from its service yet" };
        return source;
      }),
  };
}

export const serveDashboard: Command = async (args, io) => {
  const { values } = parseCommandArgs("serve dashboard", args, {
    config: { type: "string", short: "c" },
    listen: { type: "string" },
    "log-level": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values.config === undefined) throw new UsageError("serve dashboard: pass the config with -c perimeter.yaml (it names the audit log, the admin listener and the admin token's variable)");
  const config = loadConfig(resolve(io.cwd, values.config));
  const logger = createLogger("dashboard", values["log-level"] ?? "info");
  // Every missing variable named at once (each read below would name only the first).
  requireSecrets(io.env, [
    { name: config.mcp.admin.tokenSecret, usedFor: "the dashboard's login (mcp.admin.tokenSecret, the approvals/admin token)" },
    ...feedTokenNeeds(config.audit, "the dashboard's copies of every component's audit log (audit.feedTokenSecret)"),
  ]);
  const adminToken = readSecret(io.env, config.mcp.admin.tokenSecret, "the dashboard's login (mcp.admin.tokenSecret, the approvals/admin token)");
  const auditPath = resolve(io.cwd, config.audit.path);
  const statePath = resolve(io.cwd, config.dashboard.statePath ?? join(dirname(auditPath), "dashboard.db"));
  const { sources, remotes } = dashboardSources(config, io.cwd, dirname(statePath));
  // With audit.feedTokenSecret every component's feed answers that read-only token, so the admin token (which decides
  // approvals) is presented to mcp-guard's admin API alone; without it, only mcp-guard serves a feed, to the admin token.
  const feedSecret = config.audit.feedTokenSecret;
  const feedToken = feedSecret === undefined ? undefined : readSecret(io.env, feedSecret, "the dashboard's copies of every component's audit log (audit.feedTokenSecret)");
  const mirrors = remotes.map((remote) =>
    createRemoteMirror({ ...remote, ...(feedToken === undefined ? { token: adminToken } : { token: feedToken, tokenName: "the audit feed token (audit.feedTokenSecret)" }) }),
  );
  const stopMirroring = startMirroring(mirrors, 1000);
  const index = withRemoteStates(createAuditIndex({ statePath, sources }), mirrors);
  const mirrorOf = (name: string) => mirrors.find((mirror) => mirror.name === name);
  const chain = createChainMonitor({ sources, ready: (name) => mirrorOf(name)?.copied() ?? true, divergence: (name) => mirrorOf(name)?.divergence() });
  const audit = await openServiceAudit({
    cwd: io.cwd,
    path: auditPath,
    ...(config.audit.signingKeyFile === undefined ? {} : { signingKeyFile: config.audit.signingKeyFile }),
    checkpointEvery: config.audit.checkpointEvery,
  });
  const keyPaths = [...sources, ...(config.llm.keysPath === undefined ? [] : [{ name: "llm-keys", path: resolve(io.cwd, config.llm.keysPath) }])];
  const tls = config.dashboard.tls === undefined ? undefined : { cert: readFileSync(resolve(io.cwd, config.dashboard.tls.certFile)), key: readFileSync(resolve(io.cwd, config.dashboard.tls.keyFile)) };
  const dashboard = createDashboard({
    listen: values.listen ?? config.dashboard.listen,
    adminToken,
    sessionMinutes: config.dashboard.sessionMinutes,
    approvals: createApprovalsClient({ baseUrl: config.dashboard.adminUrl ?? origin(config.mcp.admin.listen), token: adminToken }),
    index,
    chain,
    health: healthUrls(config),
    keySpend: () => readKeySpend(keyPaths),
    secrets: secretValues(io.env, secretNamesOf(config)),
    allowedHosts: config.dashboard.allowedHosts,
    ...(tls === undefined ? {} : { tls }),
    audit,
    logger,
  });
  const address = await dashboard.listen();
  writeLine(io.stdout, `dashboard listening on ${tls === undefined ? "http" : "https"}://${formatHostPort(address.address, address.port)}/`);
  await untilStopped(io.signal);
  logger.info({ event: "shutdown" }, "dashboard shutting down");
  stopMirroring();
  await dashboard.close();
  index.close();
  for (const mirror of mirrors) mirror.close();
  audit.close();
  return EXIT_OK;
};
