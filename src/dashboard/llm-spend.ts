// Spend per virtual key against its budget, read from llm-proxy's own tables (llm_keys, llm_usage), which live in the
// audit database unless llm.keysPath moves them. Read-only; a database without those tables simply has no keys.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { pathToFileURL } from "node:url";
import type { KeySpend } from "./pages.ts";

export function readKeySpend(paths: ReadonlyArray<{ name: string; path: string }>, now = new Date()): { keys: KeySpend[]; errors: string[] } {
  const day = now.toISOString().slice(0, 10);
  const keys: KeySpend[] = [];
  const errors: string[] = [];
  for (const { name, path } of paths) {
    const absolute = resolve(path);
    if (!existsSync(absolute)) continue;
    const url = pathToFileURL(absolute);
    url.searchParams.set("mode", "ro");
    let database: DatabaseSync | undefined;
    try {
      database = new DatabaseSync(url, { readOnly: true, timeout: 250 });
      const tables = new Set((database.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('llm_keys', 'llm_usage')").all() as Array<{ name: string }>).map((row) => row.name));
      if (!tables.has("llm_keys")) continue;
      const usage = tables.has("llm_usage");
      const rows = database
        .prepare(
          usage
            ? `SELECT k.id, k.client, k.budget,
                 coalesce(sum(u.tokens_in + u.tokens_out), 0) AS tokens, coalesce(sum(u.cost), 0) AS cost, coalesce(sum(u.requests), 0) AS requests,
                 coalesce(sum(CASE WHEN u.day = ? THEN u.tokens_in + u.tokens_out END), 0) AS tokens_today,
                 coalesce(sum(CASE WHEN u.day = ? THEN u.cost END), 0) AS cost_today
               FROM llm_keys k LEFT JOIN llm_usage u ON u.key_id = k.id GROUP BY k.id ORDER BY k.client, k.id LIMIT 1000`
            : "SELECT id, client, budget, 0 AS tokens, 0 AS cost, 0 AS requests, 0 AS tokens_today, 0 AS cost_today FROM llm_keys ORDER BY client, id LIMIT 1000",
        )
        .all(...(usage ? [day, day] : [])) as Array<Record<string, unknown>>;
      for (const row of rows) {
        let budget: KeySpend["budget"] = {};
        try {
          const parsed = JSON.parse(String(row.budget)) as Record<string, unknown>;
          for (const field of ["tokensPerDay", "tokensTotal", "costPerDay", "costTotal"] as const) if (typeof parsed[field] === "number") budget[field] = parsed[field];
        } catch {
          budget = {};
        }
        keys.push({
          id: String(row.id),
          client: String(row.client),
          source: name,
          budget,
          today: { tokens: Number(row.tokens_today), cost: Number(row.cost_today) },
          total: { tokens: Number(row.tokens), cost: Number(row.cost), requests: Number(row.requests) },
        });
      }
    } catch (error) {
      errors.push(`${name}: cannot read llm-proxy's keys: ${(error as Error).message}`);
    } finally {
      database?.close();
    }
  }
  return { keys, errors };
}
