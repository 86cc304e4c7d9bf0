// `perimeter serve mcp-guard -c perimeter.yaml [--listen HOST:PORT] [--admin-listen HOST:PORT]`
import { resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { EXIT_OK, UsageError, parseCommandArgs, writeLine } from "../cli/command.ts";
import type { Command } from "../cli/command.ts";
import { openAuditLog } from "../audit-log/index.ts";
import { loadConfig } from "../config/index.ts";
import { createLogger } from "../shared/index.ts";
import { createMcpGuard } from "./guard.ts";
import { GuardSetupError } from "./setup.ts";
import { RedactPatternError } from "./redact.ts";

const HELP = `perimeter serve mcp-guard — the agent's one MCP endpoint

Usage:
  perimeter serve mcp-guard -c perimeter.yaml [--listen HOST:PORT] [--admin-listen HOST:PORT] [--log-level LEVEL]

Reads the mcp, approvals and audit sections. The agent connects to http://HOST:PORT/mcp (mcp.listen) with its bearer
token (mcp.agents[].tokenSecret); operators decide held calls and tool-definition reviews with perimeter approvals,
which talks to the admin listener (mcp.admin.listen, also /metrics and /healthz).
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
  const auditPath = resolve(io.cwd, config.audit.path);
  const audit = openAuditLog({
    path: auditPath,
    ...(config.audit.signingKeyFile === undefined ? {} : { signingKeyFile: resolve(io.cwd, config.audit.signingKeyFile) }),
    checkpointEvery: config.audit.checkpointEvery,
    walCheckpoints: "background",
  });
  const database = openGuardDatabase(auditPath);
  let guard;
  try {
    guard = createMcpGuard(config, { env: io.env, audit, database, logger }, {
      ...(values.listen === undefined ? {} : { listen: values.listen }),
      ...(values["admin-listen"] === undefined ? {} : { adminListen: values["admin-listen"] }),
    });
  } catch (error) {
    database.close();
    audit.close();
    if (error instanceof GuardSetupError || error instanceof RedactPatternError) throw new UsageError(`serve mcp-guard: ${error.message}`);
    throw error;
  }
  const { agent, admin } = await guard.listen();
  const url = (address: { address: string; port: number }) => `http://${address.address.includes(":") ? `[${address.address}]` : address.address}:${address.port}`;
  writeLine(io.stdout, `mcp-guard listening on ${url(agent)}/mcp (admin ${url(admin)})`);
  await new Promise<void>((resolveWait) => {
    if (io.signal.aborted) resolveWait();
    io.signal.addEventListener("abort", () => resolveWait(), { once: true });
  });
  logger.info({ event: "shutdown" }, "mcp-guard shutting down");
  await guard.close();
  database.close();
  audit.close();
  return EXIT_OK;
};
