// `perimeter serve egress-proxy`: flags alone run a standalone proxy; with -c it reads perimeter.yaml's `egress`
// section (client tokens from the environment variables it names) and reloads on SIGHUP and when the file changes.
import { resolve as resolvePath } from "node:path";
import { ConfigError, MissingSecretError, loadConfig, normalizeHostname } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { EXIT_OK, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command } from "../cli/index.ts";
import { cachingResolver, parseIpLiteral, systemResolver } from "../net/index.ts";
import type { Resolver } from "../net/index.ts";
import { createLogger } from "../shared/index.ts";
import { createEgressProxy } from "./server.ts";
import type { AuditSink, ListenAddress } from "./server.ts";
import { PolicyError, compilePolicy, normalizeCidr, policyFromConfig } from "./policy.ts";
import type { EgressPolicyInput } from "./policy.ts";
import { watchConfigFile } from "./watch.ts";

const HELP = `perimeter serve egress-proxy — the allowlisting, SSRF-proof forward proxy

Usage:
  perimeter serve egress-proxy [-c perimeter.yaml] [--listen 127.0.0.1:3128] [--allow HOST[:PORTS]]...
                               [--allow-cidr CIDR]... [--metrics 127.0.0.1:9810] [--audit FILE]
                               [--audit-before-forwarding] [--resolve NAME=ADDRESS[,ADDRESS]]...

  -c, --config FILE     read the egress section of perimeter.yaml; reload on SIGHUP and when the file changes
  --listen ADDRESS      HOST:PORT ([::1]:3128 for IPv6) or a Unix socket path (default 127.0.0.1:3128)
  --allow RULE          allow a host for every client: api.example.com, *.example.com (subdomains),
                        .example.com (apex and subdomains); ports default to 443 (api.example.com:80,443)
  --allow-cidr CIDR     let every rule reach this range despite the SSRF deny set (e.g. 10.43.0.0/16)
  --metrics ADDRESS     serve /metrics and /healthz on this separate listener
  --audit FILE          SQLite audit log (default with -c: egress.auditPath, else audit.path); without
                        either, audit records go to the JSON log on stderr
  --audit-before-forwarding
                        commit each decision before any byte of the request reaches the origin (adds one
                        SQLite commit to every request); by default the request goes out while its record
                        commits and the answer is held until it has (egress.auditBeforeForwarding)
  --resolve NAME=ADDR   pin a name to addresses instead of DNS (still checked against the deny set)

Denials are HTTP 403 (407 for identity, 429 rate, 503 limits) with X-Perimeter-Denied: <reason>;
upstream failures are 502/504 with X-Perimeter-Error: <reason>.
`;

function parsePins(entries: readonly string[]): Record<string, string[]> {
  const pins: Record<string, string[]> = {};
  for (const entry of entries) {
    const equals = entry.indexOf("=");
    const name = normalizeHostname(entry.slice(0, equals));
    const addresses = entry.slice(equals + 1).split(",").map((text) => parseIpLiteral(text)?.address);
    if (equals < 1 || name === undefined || addresses.length === 0 || addresses.some((address) => address === undefined)) {
      throw new UsageError(`serve egress-proxy: --resolve "${entry}" must be NAME=ADDRESS[,ADDRESS] (e.g. api.example.com=203.0.113.7)`);
    }
    pins[name] = addresses as string[];
  }
  return pins;
}

/** Pinned names from the table, everything else through the system resolver. */
function pinnedResolver(pins: Record<string, string[]>, fallback: Resolver): Resolver {
  return {
    async lookup(host) {
      const pinned = pins[normalizeHostname(host) ?? host];
      return pinned !== undefined ? [...pinned] : fallback.lookup(host);
    },
    cached(host) {
      return pins[normalizeHostname(host) ?? host] ?? fallback.cached?.(host);
    },
  };
}

function describeAddress(address: ListenAddress): string {
  return address.kind === "unix" ? `unix:${address.path}` : address.url;
}

export const serveEgressProxy: Command = async (args, io) => {
  const { values } = parseCommandArgs("serve egress-proxy", args, {
    config: { type: "string", short: "c" },
    listen: { type: "string" },
    allow: { type: "string", multiple: true },
    "allow-cidr": { type: "string", multiple: true },
    metrics: { type: "string" },
    audit: { type: "string" },
    "audit-before-forwarding": { type: "boolean" },
    resolve: { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const logger = createLogger("egress-proxy");
  const allowFlags = values.allow ?? [];
  const cidrFlags = values["allow-cidr"] ?? [];
  for (const cidr of cidrFlags) {
    const parsed = normalizeCidr(cidr);
    if (!parsed.ok) throw new UsageError(`serve egress-proxy: --allow-cidr ${parsed.reason}`);
  }
  const auditOrder = values["audit-before-forwarding"] === true ? { auditBeforeForwarding: true } : {};
  const configFile = values.config === undefined ? undefined : resolvePath(io.cwd, values.config);

  /** The policy from the config file (if any) and the flags. Throws ConfigError, MissingSecretError or PolicyError. */
  const load = (): { policy: EgressPolicyInput; config: PerimeterConfig | undefined; notes: string[] } => {
    if (configFile === undefined) {
      return { policy: { allow: allowFlags, allowCidrs: cidrFlags, unknownClients: "global", ...auditOrder }, config: undefined, notes: [] };
    }
    const config = loadConfig(configFile);
    const { policy, notes } = policyFromConfig(config.egress, io.env, { allow: allowFlags, allowCidrs: cidrFlags, ...auditOrder });
    return { policy, config, notes };
  };

  let initial: ReturnType<typeof load>;
  try {
    initial = load();
    compilePolicy(initial.policy);
  } catch (error) {
    if (error instanceof PolicyError) throw new UsageError(`serve egress-proxy: ${error.problems.join("; ")}`);
    throw error;
  }
  for (const note of initial.notes) logger.warn(note);
  if ((initial.policy.allow ?? []).length === 0 && (initial.policy.clients ?? []).length === 0) {
    logger.warn("no allow rules: every request will be denied (pass --allow HOST or set egress.allow)");
  }

  const auditPath = values.audit ?? initial.config?.egress.auditPath ?? initial.config?.audit.path;
  let auditLog: (AuditSink & { close(): void }) | undefined;
  if (auditPath !== undefined) {
    const { openAuditLog } = await import("../audit-log/index.ts");
    try {
      auditLog = openAuditLog({
        path: resolvePath(io.cwd, auditPath),
        ...(initial.config?.audit.signingKeyFile !== undefined ? { signingKeyFile: resolvePath(io.cwd, initial.config.audit.signingKeyFile) } : {}),
        ...(initial.config !== undefined ? { checkpointEvery: initial.config.audit.checkpointEvery } : {}),
        walCheckpoints: "background",
      });
    } catch (error) {
      throw new UsageError(`serve egress-proxy: ${(error as Error).message}`);
    }
  } else {
    logger.warn("no audit log configured (--audit FILE or audit.path): audit records go to this log");
  }

  const pins = parsePins(values.resolve ?? []);
  const proxy = createEgressProxy(initial.policy, {
    resolver: Object.keys(pins).length > 0 ? pinnedResolver(pins, cachingResolver(systemResolver())) : cachingResolver(systemResolver()),
    logger,
    ...(auditLog !== undefined ? { audit: auditLog } : {}),
  });

  const listenTarget = values.listen ?? initial.config?.egress.listen ?? "127.0.0.1:3128";
  const metricsTarget = values.metrics ?? initial.config?.egress.metrics;
  let addresses: string[];
  try {
    const proxyAddress = await proxy.listen(listenTarget);
    addresses = [`proxy=${describeAddress(proxyAddress)}`];
    if (metricsTarget !== undefined) addresses.push(`metrics=${describeAddress(await proxy.listenMetrics(metricsTarget))}`);
  } catch (error) {
    await proxy.close();
    auditLog?.close();
    throw new UsageError(`serve egress-proxy: cannot listen: ${(error as Error).message}`);
  }
  writeLine(io.stdout, `egress-proxy listening ${addresses.join(" ")}`);

  const reload = (trigger: string) => {
    if (configFile === undefined) {
      logger.info({ trigger }, "no config file: nothing to reload (flags are fixed for the life of the process)");
      return;
    }
    let next: ReturnType<typeof load>;
    try {
      next = load();
    } catch (error) {
      if (!(error instanceof ConfigError || error instanceof MissingSecretError)) throw error;
      proxy.metrics.policyReloads.inc({ result: "rejected" });
      logger.error({ trigger, problems: error.message.split("\n") }, "new configuration is invalid; keeping the current policy");
      return;
    }
    const result = proxy.reload(next.policy);
    if (result.ok) {
      for (const note of next.notes) logger.warn(note);
      if (next.config?.egress.listen !== initial.config?.egress.listen && values.listen === undefined) {
        logger.warn("egress.listen changed: listen addresses apply at the next start");
      }
      logger.info({ trigger }, "policy reloaded");
    }
  };
  io.onReload(() => reload("SIGHUP"));
  const watcher = configFile === undefined ? undefined : watchConfigFile(configFile, () => reload("file-change"));

  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  logger.info("shutting down");
  watcher?.close();
  await proxy.close();
  auditLog?.close();
  logger.flush();
  return EXIT_OK;
};
