// Turning the `mcp` section into what the guard runs with: each upstream's transport spec (credentials resolved at
// connect time, never earlier), the agents' and admin tokens, and the redactor that knows every injected value.
// Everything that can be wrong with the config or the environment is found here, at start, with a message that
// says how to fix it.
import { MissingSecretError, expandPlaceholders, feedTokenNeeds, placeholdersIn, readSecret, requireSecrets, secretValues } from "../config/index.ts";
import type { Environment, McpServerConfig, PerimeterConfig, SecretNeed } from "../config/index.ts";
import { dialAddress as dialTcpAddress, parseTcp } from "../shared/index.ts";
import type { TokenEntry } from "../shared/index.ts";
import { compileConstraints } from "./arguments.ts";
import type { CompiledConstraint } from "./arguments.ts";
import { createRedactor } from "./redact.ts";
import type { Redactor } from "./redact.ts";
import type { UpstreamSpec } from "./upstream.ts";
// errors.ts directly: this module is loaded where the rest of shared/ (pino) need not be.
import { PerimeterError } from "../shared/errors.ts";

export class GuardSetupError extends PerimeterError {
  constructor(message: string) {
    super("config", message);
  }
}

/** The minimal environment of a stdio child besides what its config names: enough to find and run the command. */
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** HOST:PORT of a listen address (IPv6 in brackets; port 0 picks a free port), through the one shared parser. */
export function parseListen(listen: string): { host: string; port: number } {
  const address = parseTcp(listen);
  if (address === undefined) throw new GuardSetupError(`"${listen}" is not HOST:PORT (write 127.0.0.1:8700, or [::1]:8700 for IPv6)`);
  return { host: address.host, port: address.port };
}

/** A listen address turned into one a client on this machine can dial (a wildcard bind is reached on loopback). */
export function dialAddress(listen: string): string {
  return dialTcpAddress({ kind: "tcp", ...parseListen(listen) });
}

export interface PreparedServer {
  name: string;
  config: McpServerConfig;
  spec: UpstreamSpec;
  constraints: CompiledConstraint[];
  /** Names of environment variables whose values this upstream receives. */
  secretNames: string[];
}

export interface PreparedGuard {
  servers: PreparedServer[];
  agents: TokenEntry[];
  admin: TokenEntry;
  /** The read-only audit feed token (audit.feedTokenSecret), when configured. */
  feed?: TokenEntry;
  redactor: Redactor;
}

function referencedNames(values: Iterable<string>): string[] {
  return [...new Set([...values].flatMap(placeholdersIn))];
}

function prepareServer(name: string, server: McpServerConfig, config: PerimeterConfig, env: Environment): PreparedServer {
  const usedFor = `mcp.servers.${name}`;
  const headerNames = referencedNames(Object.values(server.headers));
  const envNames = referencedNames(Object.values(server.env));
  // Fail at start, naming the variable, rather than on the first connect attempt.
  for (const variable of [...headerNames, ...envNames]) readSecret(env, variable, usedFor);
  const expand = (record: Record<string, string>) => Object.fromEntries(Object.entries(record).map(([key, value]) => [key, expandPlaceholders(env, value, usedFor)]));
  let constraints: CompiledConstraint[];
  try {
    constraints = compileConstraints(server.arguments);
  } catch (error) {
    throw new GuardSetupError(`${usedFor}.arguments: ${(error as Error).message}`);
  }
  const secretNames = [...headerNames, ...envNames, ...server.secrets];

  if (server.command !== undefined) {
    const [command, ...args] = server.command;
    return {
      name,
      config: server,
      constraints,
      secretNames,
      spec: {
        kind: "stdio",
        command: command as string,
        args,
        env: () => ({ PATH: env.PATH ?? DEFAULT_PATH, HOME: env.HOME ?? "/tmp", ...expand(server.env) }),
      },
    };
  }
  if (server.builtin === "sandbox") {
    const url = server.url ?? `http://${dialAddress(config.sandbox.listen)}/mcp`;
    readSecret(env, config.sandbox.tokenSecret, `${usedFor} (builtin sandbox: sandbox.tokenSecret)`);
    return {
      name,
      config: server,
      constraints,
      secretNames: [...secretNames, config.sandbox.tokenSecret],
      spec: {
        kind: "http",
        url,
        headers: () => ({ ...expand(server.headers), Authorization: `Bearer ${readSecret(env, config.sandbox.tokenSecret, `${usedFor} (sandbox.tokenSecret)`)}` }),
        // The runner keys workspaces and quotas by it, trusting it because only the guard holds the runner's token.
        callerHeader: "X-Perimeter-Caller",
      },
    };
  }
  if (server.url === undefined) {
    throw new GuardSetupError(`${usedFor}: builtin ${server.builtin ?? "server"} needs a url when mcp-guard serves it (perimeter render sets it to the in-cluster service; for a local run write url: http://127.0.0.1:PORT/mcp)`);
  }
  return { name, config: server, constraints, secretNames, spec: { kind: "http", url: server.url, headers: () => expand(server.headers) } };
}

const FEED_TOKEN_USE = "audit.feedTokenSecret (the read-only token of the audit feed)";

/** Every variable the guard reads at start, so that a missing one is reported with all the others at once. */
function secretNeeds(config: PerimeterConfig): SecretNeed[] {
  const needs: SecretNeed[] = config.mcp.agents.map((agent) => ({ name: agent.tokenSecret, usedFor: `mcp.agents ${agent.name} (the agent's bearer token for mcp-guard)` }));
  needs.push({ name: config.mcp.admin.tokenSecret, usedFor: "mcp.admin.tokenSecret (the bearer token of the approvals/admin API)" });
  needs.push(...feedTokenNeeds(config.audit, FEED_TOKEN_USE));
  for (const [name, server] of Object.entries(config.mcp.servers)) {
    for (const variable of referencedNames([...Object.values(server.headers), ...Object.values(server.env)])) needs.push({ name: variable, usedFor: `mcp.servers.${name}` });
    if (server.builtin === "sandbox") needs.push({ name: config.sandbox.tokenSecret, usedFor: `mcp.servers.${name} (builtin sandbox: sandbox.tokenSecret)` });
  }
  const telegram = config.approvals.telegram;
  if (telegram !== undefined) {
    needs.push({ name: telegram.tokenSecret, usedFor: "approvals.telegram.tokenSecret (the approver bot's token)" });
    if (telegram.proxyTokenSecret !== undefined) needs.push({ name: telegram.proxyTokenSecret, usedFor: "approvals.telegram.proxyTokenSecret (the bot's egress proxy token)" });
  }
  return needs;
}

export function prepareGuard(config: PerimeterConfig, env: Environment): PreparedGuard {
  requireSecrets(env, secretNeeds(config));
  const agents = config.mcp.agents.map((agent) => ({ name: agent.name, token: readSecret(env, agent.tokenSecret, `mcp.agents ${agent.name} (the agent's bearer token for mcp-guard)`) }));
  const admin = { name: "admin", token: readSecret(env, config.mcp.admin.tokenSecret, "mcp.admin.tokenSecret (the bearer token of the approvals/admin API)") };
  const seen = new Map<string, string>();
  for (const agent of agents) {
    const other = seen.get(agent.token);
    if (other !== undefined) throw new GuardSetupError(`mcp.agents ${other} and ${agent.name} have the same token: give each agent its own, so the audit log can tell them apart`);
    seen.set(agent.token, agent.name);
  }
  if (seen.has(admin.token)) {
    throw new GuardSetupError(`the admin token (${config.mcp.admin.tokenSecret}) equals agent ${seen.get(admin.token)}'s token: the agent could approve its own calls; use a different value`);
  }
  const feed = config.audit.feedTokenSecret === undefined ? undefined : { name: "audit-feed", token: readSecret(env, config.audit.feedTokenSecret, FEED_TOKEN_USE) };
  if (feed !== undefined) {
    // The feed token goes to the dashboard on another host; it must open nothing else.
    if (seen.has(feed.token)) throw new GuardSetupError(`the audit feed token (${config.audit.feedTokenSecret}) equals agent ${seen.get(feed.token)}'s token: the agent could read every component's records; use a different value`);
    if (feed.token === admin.token) throw new GuardSetupError(`the audit feed token (${config.audit.feedTokenSecret}) equals the admin token (${config.mcp.admin.tokenSecret}): whoever holds the read-only token could approve calls; use a different value`);
  }
  const servers = Object.entries(config.mcp.servers).map(([name, server]) => {
    try {
      return prepareServer(name, server, config, env);
    } catch (error) {
      if (error instanceof MissingSecretError || error instanceof GuardSetupError) throw error;
      throw new GuardSetupError(`mcp.servers.${name}: ${(error as Error).message}`);
    }
  });
  const secretNames = new Set(servers.flatMap((server) => server.secretNames));
  let redactor: Redactor;
  try {
    redactor = createRedactor({
      secrets: [...secretValues(env, secretNames), ...agents.map((agent) => agent.token), admin.token, ...(feed === undefined ? [] : [feed.token])],
      patterns: config.mcp.redact,
    });
  } catch (error) {
    throw new GuardSetupError((error as Error).message);
  }
  return { servers, agents, admin, ...(feed === undefined ? {} : { feed }), redactor };
}
