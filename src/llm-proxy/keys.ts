// Virtual keys and their usage, in SQLite (the audit database unless llm.keysPath says otherwise; our tables are
// prefixed llm_). A key is stored only as its SHA-256: the database never holds a usable credential. Keys come from
// two places: `llm.clients` (values from the proxy's environment, synced at start) and `perimeter llm-keys create`.
// The server looks a key up on every request, so a revocation from the CLI takes effect on the next request.
import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { PerimeterError } from "../shared/index.ts";
import { VIRTUAL_KEY_PREFIX } from "./dlp.ts";

export interface KeyLimits {
  readonly requestsPerMinute?: number;
  readonly tokensPerMinute?: number;
}

export interface KeyBudget {
  readonly tokensPerDay?: number;
  readonly tokensTotal?: number;
  readonly costPerDay?: number;
  readonly costTotal?: number;
}

export interface KeyPolicy {
  /** provider/model globs or aliases. */
  readonly models: readonly string[];
  readonly limits: KeyLimits;
  readonly budget: KeyBudget;
}

export interface VirtualKey extends KeyPolicy {
  readonly id: string;
  readonly client: string;
  readonly source: "config" | "cli";
  readonly createdAt: string;
  readonly revokedAt: string | undefined;
  readonly revokedReason: string | undefined;
}

export type AuthenticationResult = { ok: true; key: VirtualKey } | { ok: false; reason: "unknown-key" | "revoked-key" };

export interface UsageTotals {
  readonly dayTokens: number;
  readonly dayCost: number;
  readonly totalTokens: number;
  readonly totalCost: number;
}

export interface UsageRow {
  readonly keyId: string;
  readonly day: string;
  readonly requests: number;
  readonly tokensIn: number;
  readonly tokensOut: number;
  readonly cost: number;
}

export interface ConfigClientKey {
  readonly name: string;
  readonly value: string;
  readonly policy: KeyPolicy;
}

export interface LlmKeyStore {
  authenticate(presented: string): AuthenticationResult;
  create(client: string, policy: KeyPolicy): { key: VirtualKey; secret: string };
  list(): VirtualKey[];
  revoke(id: string, reason: string): "revoked" | "already-revoked" | "not-found";
  /** Makes the `llm.clients` keys current: new values added, rotated or removed ones revoked. */
  syncConfigClients(clients: readonly ConfigClientKey[]): void;
  usageTotals(keyId: string, day: string): UsageTotals;
  /** Adds usage; written to the database in batches (see flushIntervalMs). */
  addUsage(keyId: string, day: string, tokensIn: number, tokensOut: number, cost: number): void;
  /** Writes pending usage now. */
  flush(): void;
  usageRows(): UsageRow[];
  close(): void;
}

export function hashKey(presented: string): string {
  return hash("sha256", presented, "hex");
}

/** A new virtual key: 32 random bytes, prefixed so DLP (and any secret scanner) recognises it. */
export function generateVirtualKey(): string {
  return `${VIRTUAL_KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS llm_keys (
  id TEXT PRIMARY KEY,
  client TEXT NOT NULL,
  key_hash TEXT NOT NULL UNIQUE,
  source TEXT NOT NULL CHECK (source IN ('config', 'cli')),
  models TEXT NOT NULL,
  limits TEXT NOT NULL,
  budget TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT,
  revoked_reason TEXT
);
CREATE TABLE IF NOT EXISTS llm_usage (
  key_id TEXT NOT NULL,
  day TEXT NOT NULL,
  requests INTEGER NOT NULL DEFAULT 0,
  tokens_in INTEGER NOT NULL DEFAULT 0,
  tokens_out INTEGER NOT NULL DEFAULT 0,
  cost REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (key_id, day)
);
`;

interface KeyRow {
  id: string;
  client: string;
  key_hash: string;
  source: string;
  models: string;
  limits: string;
  budget: string;
  created_at: string;
  revoked_at: string | null;
  revoked_reason: string | null;
}

function rowToKey(row: KeyRow): VirtualKey {
  return {
    id: row.id,
    client: row.client,
    source: row.source === "config" ? "config" : "cli",
    models: JSON.parse(row.models) as string[],
    limits: JSON.parse(row.limits) as KeyLimits,
    budget: JSON.parse(row.budget) as KeyBudget,
    createdAt: row.created_at,
    revokedAt: row.revoked_at ?? undefined,
    revokedReason: row.revoked_reason ?? undefined,
  };
}

export interface KeyStoreOptions {
  readonly now?: () => Date;
  /**
   * Usage rows are written in batches this often (one transaction instead of one per request: the audit log writes
   * to the same file on every request too). The proxy's in-memory ledger is exact meanwhile; a crash loses at most
   * this much of the persisted usage (the audit records still hold it). @default 100
   */
  readonly flushIntervalMs?: number;
  /** Called when a batch cannot be written; the batch is kept and retried. */
  readonly onError?: (error: Error) => void;
}

type Statements = ReturnType<typeof prepareStatements>;

function prepareStatements(database: DatabaseSync) {
  return {
    byHash: database.prepare("SELECT * FROM llm_keys WHERE key_hash = ?"),
    byId: database.prepare("SELECT * FROM llm_keys WHERE id = ?"),
    all: database.prepare("SELECT * FROM llm_keys ORDER BY created_at, id"),
    insert: database.prepare(
      "INSERT INTO llm_keys (id, client, key_hash, source, models, limits, budget, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    updatePolicy: database.prepare("UPDATE llm_keys SET models = ?, limits = ?, budget = ? WHERE id = ?"),
    revoke: database.prepare("UPDATE llm_keys SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL"),
    configKeys: database.prepare("SELECT * FROM llm_keys WHERE source = 'config' AND revoked_at IS NULL"),
    dayUsage: database.prepare("SELECT tokens_in + tokens_out AS tokens, cost FROM llm_usage WHERE key_id = ? AND day = ?"),
    totalUsage: database.prepare("SELECT COALESCE(SUM(tokens_in + tokens_out), 0) AS tokens, COALESCE(SUM(cost), 0) AS cost FROM llm_usage WHERE key_id = ?"),
    addUsage: database.prepare(
      `INSERT INTO llm_usage (key_id, day, requests, tokens_in, tokens_out, cost) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (key_id, day) DO UPDATE SET requests = requests + excluded.requests, tokens_in = tokens_in + excluded.tokens_in,
       tokens_out = tokens_out + excluded.tokens_out, cost = cost + excluded.cost`,
    ),
    usageRows: database.prepare("SELECT key_id, day, requests, tokens_in, tokens_out, cost FROM llm_usage ORDER BY key_id, day"),
  } satisfies Record<string, StatementSync>;
}

interface PendingUsage {
  keyId: string;
  day: string;
  requests: number;
  tokensIn: number;
  tokensOut: number;
  cost: number;
}

/** The key store on one SQLite connection, with usage written in batches (KeyStoreOptions.flushIntervalMs). */
class SqliteKeyStore implements LlmKeyStore {
  readonly #database: DatabaseSync;
  readonly #statements: Statements;
  readonly #now: () => Date;
  readonly #flushIntervalMs: number;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #pending = new Map<string, PendingUsage>();
  #flushTimer: NodeJS.Timeout | undefined;

  constructor(path: string, options: KeyStoreOptions) {
    this.#now = options.now ?? (() => new Date());
    this.#flushIntervalMs = options.flushIntervalMs ?? 100;
    this.#onError = options.onError;
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const database = new DatabaseSync(path);
    // WAL and a busy timeout: the audit log and the CLI write the same file from other connections.
    database.exec("PRAGMA busy_timeout = 5000");
    database.exec("PRAGMA journal_mode = WAL");
    database.exec("PRAGMA synchronous = NORMAL");
    database.exec(SCHEMA);
    this.#database = database;
    this.#statements = prepareStatements(database);
  }

  #transaction<T>(work: () => T): T {
    const database = this.#database;
    database.exec("BEGIN IMMEDIATE");
    try {
      const result = work();
      database.exec("COMMIT");
      return result;
    } catch (error) {
      if (database.isTransaction) database.exec("ROLLBACK");
      throw error;
    }
  }

  /** Usage added but not yet written, so readers in this process see it at once. */
  #pendingFor(keyId: string, day: string | undefined): { tokens: number; cost: number } {
    let tokens = 0;
    let cost = 0;
    for (const row of this.#pending.values()) {
      if (row.keyId !== keyId || (day !== undefined && row.day !== day)) continue;
      tokens += row.tokensIn + row.tokensOut;
      cost += row.cost;
    }
    return { tokens, cost };
  }

  authenticate(presented: string): AuthenticationResult {
    const presentedHash = hashKey(presented);
    const row = this.#statements.byHash.get(presentedHash) as KeyRow | undefined;
    // The lookup is by hash (an attacker cannot steer it); the comparison is constant-time all the same.
    if (row === undefined || !timingSafeEqual(Buffer.from(row.key_hash, "hex"), Buffer.from(presentedHash, "hex"))) return { ok: false, reason: "unknown-key" };
    if (row.revoked_at !== null) return { ok: false, reason: "revoked-key" };
    return { ok: true, key: rowToKey(row) };
  }

  create(client: string, policy: KeyPolicy): { key: VirtualKey; secret: string } {
    const secret = generateVirtualKey();
    const id = `llmk_${randomBytes(6).toString("hex")}`;
    const createdAt = this.#now().toISOString();
    this.#statements.insert.run(id, client, hashKey(secret), "cli", JSON.stringify(policy.models), JSON.stringify(policy.limits), JSON.stringify(policy.budget), createdAt);
    return { key: rowToKey(this.#statements.byId.get(id) as unknown as KeyRow), secret };
  }

  list(): VirtualKey[] {
    return (this.#statements.all.all() as unknown as KeyRow[]).map(rowToKey);
  }

  revoke(id: string, reason: string): "revoked" | "already-revoked" | "not-found" {
    const row = this.#statements.byId.get(id) as KeyRow | undefined;
    if (row === undefined) return "not-found";
    if (row.revoked_at !== null) return "already-revoked";
    this.#statements.revoke.run(this.#now().toISOString(), reason, id);
    return "revoked";
  }

  #syncConfigClient(client: ConfigClientKey): string {
    const statements = this.#statements;
    const valueHash = hashKey(client.value);
    // The id carries a hash prefix so that a rotated value is a new key and the old one gets revoked.
    const id = `cfg_${client.name}_${valueHash.slice(0, 8)}`;
    const existing = statements.byId.get(id) as KeyRow | undefined;
    const models = JSON.stringify(client.policy.models);
    const limits = JSON.stringify(client.policy.limits);
    const budget = JSON.stringify(client.policy.budget);
    if (existing === undefined) {
      const clash = statements.byHash.get(valueHash) as KeyRow | undefined;
      if (clash !== undefined) {
        throw new PerimeterError("config", `llm.clients ${client.name}: its key value is already the key ${clash.id} (client ${clash.client}); give each client its own value`);
      }
      statements.insert.run(id, client.name, valueHash, "config", models, limits, budget, this.#now().toISOString());
    } else {
      // A revoked config key stays revoked (an operator revoked it on purpose): rotate the value to replace it.
      statements.updatePolicy.run(models, limits, budget, id);
    }
    return id;
  }

  syncConfigClients(clients: readonly ConfigClientKey[]): void {
    this.#transaction(() => {
      const current = new Set<string>();
      for (const client of clients) current.add(this.#syncConfigClient(client));
      for (const row of this.#statements.configKeys.all() as unknown as KeyRow[]) {
        if (!current.has(row.id)) {
          const stillListed = clients.some((client) => client.name === row.client);
          this.#statements.revoke.run(this.#now().toISOString(), stillListed ? "value rotated in the environment" : "client removed from llm.clients", row.id);
        }
      }
    });
  }

  usageTotals(keyId: string, day: string): UsageTotals {
    const dayRow = this.#statements.dayUsage.get(keyId, day) as { tokens: number; cost: number } | undefined;
    const totalRow = this.#statements.totalUsage.get(keyId) as { tokens: number; cost: number };
    const pendingDay = this.#pendingFor(keyId, day);
    const pendingTotal = this.#pendingFor(keyId, undefined);
    return {
      dayTokens: (dayRow?.tokens ?? 0) + pendingDay.tokens,
      dayCost: (dayRow?.cost ?? 0) + pendingDay.cost,
      totalTokens: totalRow.tokens + pendingTotal.tokens,
      totalCost: totalRow.cost + pendingTotal.cost,
    };
  }

  addUsage(keyId: string, day: string, tokensIn: number, tokensOut: number, cost: number): void {
    const id = `${keyId}\u0000${day}`;
    const row = this.#pending.get(id);
    if (row === undefined) this.#pending.set(id, { keyId, day, requests: 1, tokensIn, tokensOut, cost });
    else {
      row.requests += 1;
      row.tokensIn += tokensIn;
      row.tokensOut += tokensOut;
      row.cost += cost;
    }
    this.#flushTimer ??= setTimeout(() => this.flush(), this.#flushIntervalMs).unref();
  }

  flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#pending.size === 0) return;
    try {
      this.#transaction(() => {
        for (const row of this.#pending.values()) this.#statements.addUsage.run(row.keyId, row.day, row.requests, row.tokensIn, row.tokensOut, row.cost);
      });
      this.#pending.clear();
    } catch (error) {
      this.#onError?.(error as Error);
      if (this.#database.isOpen) this.#flushTimer = setTimeout(() => this.flush(), this.#flushIntervalMs * 10).unref();
    }
  }

  usageRows(): UsageRow[] {
    this.flush();
    return (this.#statements.usageRows.all() as unknown as Array<{ key_id: string; day: string; requests: number; tokens_in: number; tokens_out: number; cost: number }>).map((row) => ({
      keyId: row.key_id,
      day: row.day,
      requests: row.requests,
      tokensIn: row.tokens_in,
      tokensOut: row.tokens_out,
      cost: row.cost,
    }));
  }

  close(): void {
    if (!this.#database.isOpen) return;
    this.flush();
    clearTimeout(this.#flushTimer);
    this.#database.close();
  }
}

export function openLlmKeyStore(path: string, options: KeyStoreOptions = {}): LlmKeyStore {
  return new SqliteKeyStore(path, options);
}
