// `perimeter serve egress-proxy`: flags alone run a standalone proxy; with -c it reads perimeter.yaml's `egress`
// section (client tokens from the environment variables it names) and reloads on SIGHUP and when the file changes.
import { resolve as resolvePath } from "node:path";
import { ConfigError, MissingSecretError, feedTokenNeeds, loadConfig, normalizeHostname, requireSecrets } from "../config/index.ts";
import type { PerimeterConfig } from "../config/index.ts";
import { EXIT_OK, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command, CommandIo } from "../cli/index.ts";
import { cachingResolver, parseIpLiteral, systemResolver } from "../net/index.ts";
import type { Resolver } from "../net/index.ts";
import { PerimeterError, ServiceHost, createLogger, describeBound, feedTokenVerifier } from "../shared/index.ts";
import type { AuditFeedRoute } from "../shared/index.ts";
import { createEgressProxy } from "./server.ts";
import type { AuditSink, EgressProxy } from "./server.ts";
import { PolicyError, compilePolicy, egressSecretNeeds, normalizeCidr, policyFromConfig } from "./policy.ts";
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

type Values = ReturnType<typeof parseValues>["values"];

function parseValues(args: string[]) {
  return parseCommandArgs("serve egress-proxy", args, {
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
}

interface Loaded {
  readonly policy: EgressPolicyInput;
  readonly config: PerimeterConfig | undefined;
  readonly notes: string[];
}

/**
 * Reads the policy from the config file (if any) and the flags. Throws ConfigError, MissingSecretError (every
 * variable the config names and the environment lacks, the audit feed token's included) or PolicyError.
 */
function policyLoader(values: Values, io: CommandIo, configFile: string | undefined): () => Loaded {
  const allowFlags = values.allow ?? [];
  const cidrFlags = values["allow-cidr"] ?? [];
  const auditOrder = values["audit-before-forwarding"] === true ? { auditBeforeForwarding: true } : {};
  return () => {
    if (configFile === undefined) {
      return { policy: { allow: allowFlags, allowCidrs: cidrFlags, unknownClients: "global", ...auditOrder }, config: undefined, notes: [] };
    }
    const config = loadConfig(configFile);
    requireSecrets(io.env, [...egressSecretNeeds(config.egress), ...feedTokenNeeds(config.audit)]);
    const { policy, notes } = policyFromConfig(config.egress, io.env, { allow: allowFlags, allowCidrs: cidrFlags, ...auditOrder });
    return { policy, config, notes };
  };
}

/** The audit log, and its read-only feed when audit.feedTokenSecret is set; both closed by the host. */
async function openAudit(host: ServiceHost, values: Values, config: PerimeterConfig | undefined, io: CommandIo): Promise<{ log?: AuditSink; feed?: AuditFeedRoute }> {
  const auditPath = values.audit ?? config?.egress.auditPath ?? config?.audit.path;
  if (auditPath === undefined) {
    host.logger.warn("no audit log configured (--audit FILE or audit.path): audit records go to this log");
    return {};
  }
  const log = await host.openAudit({
    path: auditPath,
    cwd: io.cwd,
    ...(config?.audit.signingKeyFile !== undefined ? { signingKeyFile: config.audit.signingKeyFile } : {}),
    ...(config !== undefined ? { checkpointEvery: config.audit.checkpointEvery } : {}),
    walCheckpoints: "background",
  });
  const verifier = feedTokenVerifier(config?.audit.feedTokenSecret, io.env);
  if (verifier === undefined) return { log };
  const feed = await host.openAuditFeed({ auditPath: resolvePath(io.cwd, auditPath), verifier, tokenHint: "the audit feed token (audit.feedTokenSecret)" });
  return { log, feed };
}

/** A PerimeterError keeps its code (and so its exit code), with the service named for `perimeter up`'s log. */
function named(error: unknown): unknown {
  return error instanceof PerimeterError && !(error instanceof UsageError) ? new PerimeterError(error.code, `serve egress-proxy: ${error.message}`, { cause: error }) : error;
}

export const serveEgressProxy: Command = async (args, io) => {
  const { values } = parseValues(args);
  if (values.help === true) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  const logger = createLogger("egress-proxy");
  for (const cidr of values["allow-cidr"] ?? []) {
    const parsed = normalizeCidr(cidr);
    if (!parsed.ok) throw new UsageError(`serve egress-proxy: --allow-cidr ${parsed.reason}`);
  }
  const configFile = values.config === undefined ? undefined : resolvePath(io.cwd, values.config);
  const load = policyLoader(values, io, configFile);
  let initial: Loaded;
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

  const host = new ServiceHost("egress-proxy", logger);
  let proxy: EgressProxy;
  try {
    const audit = await openAudit(host, values, initial.config, io);
    const pins = parsePins(values.resolve ?? []);
    proxy = createEgressProxy(initial.policy, {
      resolver: Object.keys(pins).length > 0 ? pinnedResolver(pins, cachingResolver(systemResolver())) : cachingResolver(systemResolver()),
      logger,
      ...(audit.log !== undefined ? { audit: audit.log } : {}),
      ...(audit.feed !== undefined ? { auditFeed: audit.feed } : {}),
    });
    host.defer("egress proxy", () => proxy.close());
    const addresses = [`proxy=${describeBound(await proxy.listen(values.listen ?? initial.config?.egress.listen ?? "127.0.0.1:3128"))}`];
    const metricsTarget = values.metrics ?? initial.config?.egress.metrics;
    if (metricsTarget !== undefined) addresses.push(`metrics=${describeBound(await proxy.listenMetrics(metricsTarget))}`);
    writeLine(io.stdout, `egress-proxy listening ${addresses.join(" ")}`);
  } catch (error) {
    await host.close();
    throw named(error);
  }

  const reload = (trigger: string) => {
    if (configFile === undefined) {
      logger.info({ trigger }, "no config file: nothing to reload (flags are fixed for the life of the process)");
      return;
    }
    let next: Loaded;
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
  if (configFile !== undefined) {
    const watcher = watchConfigFile(configFile, () => reload("file-change"));
    host.defer("config watcher", () => watcher.close());
  }
  await host.serveUntil(io.signal);
  logger.flush();
  return EXIT_OK;
};
