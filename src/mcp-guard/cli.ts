// `perimeter serve mcp-guard -c perimeter.yaml [--listen HOST:PORT] [--admin-listen HOST:PORT]`
import { resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Counter } from "prom-client";
import { EXIT_OK, UsageError, parseCommandArgs, writeLine } from "../cli/index.ts";
import type { Command } from "../cli/index.ts";
import { ConfigError, MissingSecretError, loadConfig } from "../config/index.ts";
import type { Environment, PerimeterConfig } from "../config/index.ts";
import { watchConfigFile } from "../egress-proxy/index.ts";
import { ServiceHost, createLogger, formatHostPort } from "../shared/index.ts";
import type { Logger } from "../shared/index.ts";
import { createMcpGuard } from "./guard.ts";
import type { McpGuard } from "./guard.ts";
import { GuardSetupError, parseListen, prepareGuard } from "./setup.ts";
import { RedactPatternError } from "./redact.ts";

const HELP = `perimeter serve mcp-guard — the agent's one MCP endpoint

Usage:
  perimeter serve mcp-guard -c perimeter.yaml [--listen HOST:PORT] [--admin-listen HOST:PORT] [--log-level LEVEL]

Reads the mcp, approvals and audit sections. The agent connects to http://HOST:PORT/mcp (mcp.listen) with its bearer
token (mcp.agents[].tokenSecret); operators decide held calls and tool-definition reviews with perimeter approvals,
which talks to the admin listener (mcp.admin.listen, also /metrics and /healthz).

SIGHUP, or a change to the config file, reloads it: the new configuration is checked whole first (schema, secrets
in the environment, argument constraints, redaction patterns); an invalid one is refused with an error log and
perimeter_mcp_guard_config_reloads_total{result="rejected"}, and the running policy stays. A valid one restarts the
guard inside the process on it: calls in flight end, calls held for approval expire. audit.path and
audit.signingKeyFile apply at the next start.
`;

/** Opens the guard's own connection to the audit database (pinning and approval tables live beside the records). */
export function openGuardDatabase(path: string): DatabaseSync {
  const database = new DatabaseSync(path);
  database.exec("PRAGMA busy_timeout = 5000");
  database.exec("PRAGMA journal_mode = WAL");
  database.exec("PRAGMA synchronous = FULL");
  return database;
}

export const serveMcpGuard: Command = async (args, io) => {
  const { values } = parseCommandArgs("serve mcp-guard", args, {
    config: { type: "string", short: "c" },
    listen: { type: "string" },
    "admin-listen": { type: "string" },
    "log-level": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values.config === undefined) {
    throw new UsageError("serve mcp-guard: pass the config with -c perimeter.yaml (its mcp.servers are the upstreams to guard)");
  }
  const config = loadConfig(resolve(io.cwd, values.config));
  const logger = createLogger("mcp-guard", values["log-level"] ?? "info");
  // Everything opened from here on is closed in reverse order when the command ends, whichever way it ends (a guard
  // that cannot listen used to leave its database open).
  const host = new ServiceHost("mcp-guard", logger);
  try {
    return await serveWithHost(host, config, values as ServeValues, io, logger);
  } finally {
    await host.close();
  }
};

type ServeValues = { config: string; listen?: string; "admin-listen"?: string };

async function serveWithHost(host: ServiceHost, config: PerimeterConfig, values: ServeValues, io: Parameters<Command>[1], logger: Logger): Promise<number> {
  const audit = await host.openAudit({
    path: config.audit.path,
    ...(config.audit.signingKeyFile === undefined ? {} : { signingKeyFile: config.audit.signingKeyFile }),
    cwd: io.cwd,
    checkpointEvery: config.audit.checkpointEvery,
    walCheckpoints: "background",
  });
  const database = openGuardDatabase(resolve(io.cwd, config.audit.path));
  host.defer("guard database", () => database.close());
  let guard;
  try {
    guard = createMcpGuard(config, { env: io.env, audit, database, logger }, {
      ...(values.listen === undefined ? {} : { listen: values.listen }),
      ...(values["admin-listen"] === undefined ? {} : { adminListen: values["admin-listen"] }),
    });
  } catch (error) {
    if (error instanceof GuardSetupError || error instanceof RedactPatternError) throw new UsageError(`serve mcp-guard: ${error.message}`);
    throw error;
  }
  let running: { config: PerimeterConfig; guard: McpGuard } = { config, guard };
  host.defer("guard", () => running.guard.close());
  const { agent, admin } = await guard.listen();
  const url = (address: { address: string; port: number }) => `http://${formatHostPort(address.address, address.port)}`;
  writeLine(io.stdout, `mcp-guard listening on ${url(agent)}/mcp (admin ${url(admin)})`);

  // The counter outlives each guard a reload builds, so it is registered into every guard's registry in turn.
  const reloads = new Counter({ name: "perimeter_mcp_guard_config_reloads_total", help: "Configuration reloads by result (applied, rejected).", labelNames: ["result"], registers: [] });
  guard.metrics.registry.registerMetric(reloads);
  const configFile = resolve(io.cwd, values.config);
  const listenOptions = {
    ...(values.listen === undefined ? {} : { listen: values.listen }),
    ...(values["admin-listen"] === undefined ? {} : { adminListen: values["admin-listen"] }),
  };
  let reloading: Promise<void> = Promise.resolve();
  let fatal: Error | undefined;
  let stopWaiting: () => void = () => undefined;
  const reload = (trigger: string) => {
    if (fatal !== undefined) return;
    reloading = reloading.then(async () => {
      const checked = checkReload(configFile, running.config, io.env, listenOptions);
      if (!checked.ok) {
        reloads.inc({ result: "rejected" });
        logger.error({ event: "config-reload-rejected", trigger, problems: checked.problems }, "new configuration is invalid; keeping the current policy");
        return;
      }
      running = await swapGuard(running, checked.config, { env: io.env, audit, database, logger }, listenOptions, logger);
      running.guard.metrics.registry.registerMetric(reloads);
      const applied = running.config === checked.config;
      reloads.inc({ result: applied ? "applied" : "rejected" });
      if (applied) logger.info({ event: "config-reloaded", trigger }, "configuration reloaded");
    }).catch((error: unknown) => {
      // Neither configuration could start: end the service loudly rather than serve nothing.
      fatal = error as Error;
      stopWaiting();
    });
  };
  io.onReload(() => reload("SIGHUP"));
  const watcher = watchConfigFile(configFile, () => reload("file-change"));
  await new Promise<void>((resolveWait) => {
    stopWaiting = resolveWait;
    if (io.signal.aborted) resolveWait();
    io.signal.addEventListener("abort", () => resolveWait(), { once: true });
  });
  logger.info({ event: "shutdown" }, "mcp-guard shutting down");
  watcher.close();
  await reloading;
  if (fatal !== undefined) throw new Error(`serve mcp-guard: neither the reloaded nor the previous configuration could start: ${fatal.message}`);
  return EXIT_OK;
}

type ReloadCheck = { ok: true; config: PerimeterConfig } | { ok: false; problems: string[] };

/**
 * Everything that would stop a guard from starting on the new file, found before the running one is touched:
 * the schema, every referenced secret, constraints and redaction patterns (prepareGuard), the listen addresses.
 */
function checkReload(configFile: string, current: PerimeterConfig, env: Environment, options: { listen?: string; adminListen?: string }): ReloadCheck {
  let next: PerimeterConfig;
  try {
    next = loadConfig(configFile);
    prepareGuard(next, env);
    parseListen(options.listen ?? next.mcp.listen);
    parseListen(options.adminListen ?? next.mcp.admin.listen);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof MissingSecretError || error instanceof GuardSetupError || error instanceof RedactPatternError) {
      return { ok: false, problems: error.message.split("\n") };
    }
    return { ok: false, problems: [`cannot read the configuration: ${(error as Error).message}`] };
  }
  const moved = (["path", "signingKeyFile"] as const).filter((field) => next.audit[field] !== current.audit[field]);
  if (moved.length > 0) {
    return { ok: false, problems: moved.map((field) => `audit.${field} changed: the audit log moves only at a restart (restart the service to apply it)`) };
  }
  return { ok: true, config: next };
}

/**
 * Stops the running guard and starts one on the new configuration, on the same database and audit log. If the new
 * one cannot start (a port taken meanwhile), the previous configuration is started again; if even that fails, the
 * error ends the command, so a supervisor restarts the service rather than it serving nothing.
 */
async function swapGuard(
  running: { config: PerimeterConfig; guard: McpGuard },
  next: PerimeterConfig,
  dependencies: Parameters<typeof createMcpGuard>[1],
  options: { listen?: string; adminListen?: string },
  logger: Logger,
): Promise<{ config: PerimeterConfig; guard: McpGuard }> {
  await running.guard.close();
  try {
    const guard = createMcpGuard(next, dependencies, options);
    try {
      await guard.listen();
    } catch (error) {
      await guard.close();
      throw error;
    }
    return { config: next, guard };
  } catch (error) {
    logger.error({ event: "config-reload-failed", error: (error as Error).message }, "the new configuration did not start; starting the previous one again");
    const guard = createMcpGuard(running.config, dependencies, options);
    await guard.listen();
    return { config: running.config, guard };
  }
}
