// The catalog: which upstream tools the agent may see right now. A tool is listed (and callable) only when the
// server's tools.allow matches it and its exact definition hash is trusted in the pinning store. A new or changed
// definition is recorded, opens a review in the approval store, and stays hidden until a human approves it.
import type { Tool } from "@modelcontextprotocol/client";
import type { ApprovalStore, AuditAppender } from "../approvals/index.ts";
import type { McpServerConfig } from "../config/index.ts";
import type { Logger } from "../shared/index.ts";
import { definitionHash, definitionOf, diffDefinitions, scanForHiddenInstructions } from "./definitions.ts";
import type { ToolDefinition } from "./definitions.ts";
import type { Pin, PinStatus, PinStore } from "./pins.ts";
import { annotationsFor, namespacedName, toolAllowed } from "./policy.ts";

export interface CatalogEntry {
  server: string;
  /** The upstream's name for the tool. */
  tool: string;
  /** `<server>__<tool>`, the name the agent uses. */
  exposedName: string;
  definition: ToolDefinition;
  hash: string;
  status: PinStatus;
  reviewId?: string;
  /** What tools/list returns for it. */
  listed: Tool;
}

export interface Catalog {
  /** Replaces a server's tools after a sync; returns whether what the agent sees changed. */
  update(server: string, tools: readonly Tool[]): boolean;
  /** Re-reads pin statuses (after a review was decided); returns whether what the agent sees changed. */
  refresh(server: string): boolean;
  get(exposedName: string): CatalogEntry | undefined;
  /** Tools the agent may see: allowed and trusted. */
  listed(): Tool[];
  entries(): CatalogEntry[];
}

export interface CatalogOptions {
  servers: Record<string, McpServerConfig>;
  pins: PinStore;
  approvals: ApprovalStore;
  audit: AuditAppender;
  logger: Logger;
  trustOnFirstUse: boolean;
}

/** What tools/list returns for a tool: its namespaced name, its definition and the annotations the operator set. */
function listedForm(server: McpServerConfig, serverName: string, definition: ToolDefinition): Tool {
  const tool: Tool = { name: namespacedName(serverName, definition.name), inputSchema: definition.inputSchema as Tool["inputSchema"] };
  if (definition.title !== undefined) tool.title = definition.title;
  if (definition.description !== undefined) tool.description = definition.description;
  if (definition.outputSchema !== undefined) tool.outputSchema = definition.outputSchema as Tool["outputSchema"];
  const annotations = annotationsFor(server, definition.name);
  if (annotations !== undefined) tool.annotations = annotations;
  return tool;
}

/**
 * A definition the pinning store has never seen: trusted on first use (first sync, nothing suspicious, never trusted
 * before, and the operator allows it), or quarantined behind a review in the approval store.
 */
function pinNewDefinition(options: CatalogOptions, serverName: string, toolName: string, definition: ToolDefinition, hash: string, firstSync: boolean): Pin {
  const { pins, approvals, audit, logger } = options;
  const findings = scanForHiddenInstructions(definition);
  const previous = pins.lastTrusted(serverName, toolName);
  if (options.trustOnFirstUse && firstSync && findings.length === 0 && previous === undefined) {
    audit.append({ component: "mcp-guard", type: "tool-definition-trust", server: serverName, tool: toolName, definitionHash: hash, decidedBy: "trust-on-first-use" });
    return pins.record({ server: serverName, tool: toolName, hash, definition, findings, status: "trusted", decidedBy: "trust-on-first-use" });
  }
  const review =
    approvals.findDefinitionReview(serverName, toolName, hash) ??
    approvals.open({
      kind: "tool-definition",
      server: serverName,
      tool: toolName,
      definitionHash: hash,
      detail: JSON.parse(
        JSON.stringify({
          change: previous === undefined ? "new" : "changed",
          exposedName: namespacedName(serverName, toolName),
          definition,
          previousHash: previous?.hash ?? null,
          changes: previous === undefined ? [] : diffDefinitions(previous.definition, definition),
          findings,
        }),
      ),
    });
  const pin = pins.record({ server: serverName, tool: toolName, hash, definition, findings, status: "pending", reviewId: review.id });
  logger.warn(
    { event: "tool-quarantine", server: serverName, tool: toolName, review: review.id, change: previous === undefined ? "new" : "changed", findings: findings.map((finding) => finding.kind) },
    "tool definition quarantined until reviewed (perimeter approvals list)",
  );
  return pin;
}

/** The review may have been decided while this process was not listening (another process, a restart). */
function settledPin(options: CatalogOptions, pin: Pin, serverName: string, toolName: string, hash: string): Pin {
  if (pin.status !== "pending" || pin.reviewId === undefined) return pin;
  const review = options.approvals.get(pin.reviewId);
  if (review === undefined || (review.status !== "approved" && review.status !== "denied")) return pin;
  options.pins.decide(serverName, toolName, hash, review.status === "approved" ? "trusted" : "denied", review.approver ?? "unknown");
  return options.pins.get(serverName, toolName, hash) ?? pin;
}

/** A server's tools as catalog entries: allowed ones only, each pinned (trusted, pending or denied). */
export function classifyTools(options: CatalogOptions, serverName: string, tools: readonly Tool[]): CatalogEntry[] {
  const server = options.servers[serverName];
  if (server === undefined) return [];
  const firstSync = !options.pins.knowsServer(serverName);
  const counts = new Map<string, number>();
  for (const tool of tools) counts.set(tool.name, (counts.get(tool.name) ?? 0) + 1);
  const entries: CatalogEntry[] = [];
  for (const tool of tools) {
    if (!toolAllowed(server, tool.name).allow) continue;
    if ((counts.get(tool.name) ?? 0) > 1) {
      // Two definitions under one name: which one would a call reach? Serve neither.
      options.logger.warn({ event: "tool-duplicate", server: serverName, tool: tool.name }, "upstream lists a tool name twice; hiding it");
      continue;
    }
    const definition = definitionOf(tool);
    const hash = definitionHash(definition);
    const known = options.pins.get(serverName, tool.name, hash) ?? pinNewDefinition(options, serverName, tool.name, definition, hash, firstSync);
    const pin = settledPin(options, known, serverName, tool.name, hash);
    const entry: CatalogEntry = {
      server: serverName,
      tool: tool.name,
      exposedName: namespacedName(serverName, tool.name),
      definition,
      hash,
      status: pin.status,
      listed: listedForm(server, serverName, definition),
    };
    if (pin.reviewId !== undefined) entry.reviewId = pin.reviewId;
    entries.push(entry);
  }
  return entries;
}

export function createCatalog(options: CatalogOptions): Catalog {
  const { logger } = options;
  const byServer = new Map<string, CatalogEntry[]>();
  const lastTools = new Map<string, readonly Tool[]>();
  let byName = new Map<string, CatalogEntry>();
  let listedCache: Tool[] | undefined;

  const visibleSignature = (server: string) =>
    (byServer.get(server) ?? [])
      .filter((entry) => entry.status === "trusted")
      .map((entry) => `${entry.exposedName}:${entry.hash}`)
      .sort()
      .join("\n");

  const rebuildIndex = () => {
    byName = new Map();
    for (const entries of byServer.values()) for (const entry of entries) byName.set(entry.exposedName, entry);
    listedCache = undefined;
  };

  const apply = (server: string, tools: readonly Tool[]): boolean => {
    const before = visibleSignature(server);
    let entries: CatalogEntry[];
    try {
      entries = classifyTools(options, server, tools);
    } catch (error) {
      // Fail closed: if a definition cannot be pinned or its review cannot be recorded (audit or database down),
      // the server's tools are hidden until the next sync succeeds.
      logger.error({ event: "catalog-error", server, error: (error as Error).message }, "cannot pin tool definitions; hiding the server's tools");
      entries = [];
    }
    byServer.set(server, entries);
    rebuildIndex();
    return visibleSignature(server) !== before;
  };

  return {
    update(server, tools) {
      lastTools.set(server, tools);
      return apply(server, tools);
    },
    refresh(server) {
      const tools = lastTools.get(server);
      return tools === undefined ? false : apply(server, tools);
    },
    get: (exposedName) => byName.get(exposedName),
    listed() {
      if (listedCache === undefined) {
        listedCache = [...byName.values()].filter((entry) => entry.status === "trusted").map((entry) => entry.listed);
        listedCache.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      }
      return listedCache;
    },
    entries: () => [...byName.values()],
  };
}
