// Requirements (issue 7): virtual keys are stored hashed; unknown and revoked keys get 401; a key's model allowlist
// (globs and aliases) is enforced; request-rate and token-rate limits apply; token and cost budgets RESERVE the worst
// case before sending so that 20 concurrent requests cannot overshoot, and settle on real usage; `perimeter llm-keys
// create|list|revoke` manage keys while the proxy runs. The provider is a stand-in speaking OpenAI's wire format.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { readAuditRecords } from "../audit-log/index.ts";
import { createStandInProvider } from "./stand-in-provider.ts";
import type { StandInProvider } from "./stand-in-provider.ts";
import { openLlmKeyStore } from "./keys.ts";
import { eventually, post, postStream, request, runPerimeter, startProxy, temporaryDirectory } from "./test-support.ts";
import type { Harness } from "./test-support.ts";
import { join } from "node:path";

const KEYS = {
  HERMES_KEY: "sk-perimeter-hermes-0123456789abcdefghijklmnop",
  LIMITED_KEY: "sk-perimeter-limited-0123456789abcdefghijklmno",
  BUDGET_KEY: "sk-perimeter-budget-0123456789abcdefghijklmnop",
  COST_KEY: "sk-perimeter-cost-0123456789abcdefghijklmnopqr",
  TPM_KEY: "sk-perimeter-tpm-0123456789abcdefghijklmnopqrs",
};

const small = (model: string, extra: Record<string, unknown> = {}) => ({ model, max_tokens: 10, messages: [{ role: "user", content: "hi" }], ...extra });

describe("virtual keys against a stand-in provider", () => {
  let provider: StandInProvider;
  let harness: Harness;

  before(async () => {
    provider = createStandInProvider();
    const { baseUrl } = await provider.listen();
    harness = await startProxy(
      `providers:
  main:
    baseUrl: ${baseUrl}
    models: [gpt-test, gpt-mini, gated, other]
    allowPrivateAddress: true
    costPer1kTokens: { input: 10, output: 20 }
default: main/gpt-test
aliases:
  fast: main/gpt-mini
clients:
  - name: hermes
    keySecret: HERMES_KEY
    models: [default, fast]
  - name: limited
    keySecret: LIMITED_KEY
    limits: { requestsPerMinute: 3 }
  - name: budget
    keySecret: BUDGET_KEY
    budget: { tokensPerDay: 100 }
  - name: cost
    keySecret: COST_KEY
    budget: { costTotal: 1 }
  - name: tpm
    keySecret: TPM_KEY
    limits: { tokensPerMinute: 70 }`,
      KEYS,
    );
  });

  after(async () => {
    await harness.close();
    await provider.close();
  });

  test("an unknown key, a missing key and a malformed header get 401 OpenAI-style, are recorded, and never reach the provider", async () => {
    const before = provider.requests.length;
    const unknown = await post(harness.url, "/v1/chat/completions", small("default"), "sk-perimeter-not-a-key-0123456789abcdefghijk");
    assert.equal(unknown.status, 401);
    assert.equal(unknown.json.error?.code, "invalid_api_key");
    assert.equal(unknown.json.error?.type, "invalid_request_error");
    const missing = await post(harness.url, "/v1/chat/completions", small("default"));
    assert.equal(missing.status, 401);
    const basic = await post(harness.url, "/v1/chat/completions", small("default"), undefined, { authorization: "Basic aGVybWVzOmtleQ==" });
    assert.equal(basic.status, 401);
    assert.equal(provider.requests.length, before);
    const record = harness.records().at(-1);
    assert.equal(record?.data.decision, "deny");
    assert.equal(record?.data.reason, "unauthorized");
    assert.ok(!JSON.stringify(harness.records()).includes("not-a-key"), "a presented key is never written to the audit log");
  });

  test("keys are stored as SHA-256 only: the database file does not contain any key value", () => {
    const files = [harness.auditPath, `${harness.auditPath}-wal`].filter((file) => existsSync(file));
    const bytes = files.map((file) => readFileSync(file).toString("latin1")).join("");
    assert.ok(bytes.includes("llm_keys"), "the key table is in the file that was read");
    for (const value of Object.values(KEYS)) assert.ok(!bytes.includes(value), "a key value was found in the database");
  });

  test("model allowlist: aliases and their targets are allowed, other models get 403 permission_error", async () => {
    assert.equal((await post(harness.url, "/v1/chat/completions", small("default"), KEYS.HERMES_KEY)).status, 200);
    assert.equal(provider.requests.at(-1)?.body?.model, "gpt-test", "default resolves to llm.default");
    assert.equal((await post(harness.url, "/v1/chat/completions", small("fast"), KEYS.HERMES_KEY)).status, 200);
    assert.equal(provider.requests.at(-1)?.body?.model, "gpt-mini", "a custom alias resolves to its target");
    assert.equal((await post(harness.url, "/v1/chat/completions", small("main/gpt-test"), KEYS.HERMES_KEY)).status, 200, "the target of an allowed alias is allowed by name");
    const refused = await post(harness.url, "/v1/chat/completions", small("main/other"), KEYS.HERMES_KEY);
    assert.equal(refused.status, 403);
    assert.equal(refused.json.error?.type, "permission_error");
    assert.equal(refused.json.error?.code, "model_not_allowed");
    assert.equal(harness.records().at(-1)?.data.reason, "model-not-allowed");
    const models = await request(`${harness.url}/v1/models`, "GET", undefined, { authorization: `Bearer ${KEYS.HERMES_KEY}` });
    assert.deepEqual((models.json.data as Array<{ id: string }>).map((entry) => entry.id).sort(), ["default", "fast", "main/gpt-mini", "main/gpt-test"]);
  });

  test("request-rate limit: the 4th request within a minute gets 429 rate_limit_exceeded with Retry-After", async () => {
    const statuses: number[] = [];
    let last;
    for (let index = 0; index < 4; index++) {
      last = await post(harness.url, "/v1/chat/completions", small("default"), KEYS.LIMITED_KEY);
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal(last?.json.error?.code, "rate_limit_exceeded");
    assert.equal(last?.json.error?.type, "requests");
    assert.ok(Number(last?.headers["retry-after"]) >= 1);
  });

  test("token-rate limit: the worst case is reserved per minute, and a request larger than the limit is refused outright", async () => {
    // Each small request reserves 32 tokens (22 prompt upper bound + max_tokens 10): two fit in 70, the third does not.
    const first = await post(harness.url, "/v1/chat/completions", small("default"), KEYS.TPM_KEY);
    assert.equal(first.status, 200);
    const second = await post(harness.url, "/v1/chat/completions", small("default"), KEYS.TPM_KEY);
    assert.equal(second.status, 200);
    // Settled usage (11 of 32 each) was refunded, so a third fits too (without the refund only 6 would be left).
    const third = await post(harness.url, "/v1/chat/completions", small("default"), KEYS.TPM_KEY);
    assert.equal(third.status, 200);
    // A request needing more than 70 never fits.
    const huge = await post(harness.url, "/v1/chat/completions", small("default", { max_tokens: 100 }), KEYS.TPM_KEY);
    assert.equal(huge.status, 429);
    assert.equal(huge.json.error?.type, "tokens");
    assert.match(String(huge.json.error?.message), /more than this key's limit of 70 tokens per minute/);
  });

  test("budget: 20 concurrent requests reserve their worst case, so tokensPerDay is never overshot", async () => {
    const concurrent = await Promise.all(
      Array.from({ length: 20 }, () => postStream(harness.url, "/v1/chat/completions", small("main/gated", { stream: true }), KEYS.BUDGET_KEY)),
    );
    const admitted = concurrent.filter((response) => response.status === 200);
    const refused = concurrent.filter((response) => response.status === 429);
    // 100 / 32 reserved per request: exactly 3 can be in flight at once.
    assert.equal(admitted.length, 3);
    assert.equal(refused.length, 17);
    const refusal = JSON.parse(await refused[0]!.rest()) as { error: { code: string; message: string } };
    assert.equal(refusal.error.code, "insufficient_quota");
    assert.match(refusal.error.message, /tokensPerDay budget of this key \(100\) would be exceeded/);
    provider.release();
    await Promise.all(admitted.map((response) => response.rest()));
    // Then sequentially until refused: settlement frees what was reserved but not used.
    let sequential = 0;
    for (let index = 0; index < 20; index++) {
      const response = await post(harness.url, "/v1/chat/completions", small("default"), KEYS.BUDGET_KEY);
      if (response.status !== 200) {
        assert.equal(response.status, 429);
        break;
      }
      sequential += 1;
    }
    await eventually(() => harness.records().filter((record) => record.data.client === "budget" && record.data.decision === "allow").length === 3 + sequential);
    const used = harness.records().filter((record) => record.data.client === "budget").reduce((sum, record) => sum + (record.data.tokensIn as number) + (record.data.tokensOut as number), 0);
    assert.ok(used <= 100, `settled ${used} tokens against a budget of 100`);
    assert.ok(used > 100 - 32, `the budget is used up to within one reservation (${used})`);
    const key = harness.keyStore.list().find((entry) => entry.client === "budget");
    assert.equal(harness.keyStore.usageTotals(key!.id, new Date().toISOString().slice(0, 10)).dayTokens, used, "usage is persisted in the key store");
  });

  test("budget: a request without max_tokens reserves the default cap (4096), so a small budget refuses it up front", async () => {
    const response = await post(harness.url, "/v1/chat/completions", { model: "default", messages: [{ role: "user", content: "hi" }] }, KEYS.COST_KEY);
    // costTotal 1 at 20 per 1k output tokens: 4096 reserved output tokens cost ~82, far above the budget.
    assert.equal(response.status, 429);
    assert.match(String(response.json.error?.message), /costTotal/);
    const capped = await post(harness.url, "/v1/chat/completions", small("default"), KEYS.COST_KEY);
    assert.equal(capped.status, 200);
    const record = harness.records().at(-1);
    assert.ok((record?.data.cost as number) > 0 && (record?.data.cost as number) < 1);
  });

  test("llm-keys create/list/revoke via the CLI while the proxy runs: the key works at once and is refused after revoke", async () => {
    const created = await runPerimeter(["llm-keys", "create", "--client", "ci-bot", "--models", "fast", "--requests-per-minute", "100", "-c", harness.configPath]);
    assert.equal(created.code, 0, created.stderr);
    const lines = created.stdout.trim().split("\n");
    const key = lines.at(-1) as string;
    assert.match(key, /^sk-perimeter-[A-Za-z0-9_-]{43}$/, "the key is printed on the last line");
    const id = /created (llmk_[0-9a-f]+)/.exec(created.stdout)?.[1] as string;
    assert.ok(id !== undefined);

    assert.equal((await post(harness.url, "/v1/chat/completions", small("fast"), key)).status, 200);
    assert.equal((await post(harness.url, "/v1/chat/completions", small("default"), key)).status, 403, "only the models given with --models");

    const listed = await runPerimeter(["llm-keys", "list", "-c", harness.configPath]);
    assert.equal(listed.code, 0);
    assert.match(listed.stdout, new RegExp(`${id}\\s+ci-bot\\s+cli\\s+active\\s+fast`));
    assert.ok(!listed.stdout.includes(key), "list never shows a key value");
    const json = JSON.parse((await runPerimeter(["llm-keys", "list", "--json", "-c", harness.configPath])).stdout) as Array<{ id: string; client: string; source: string; limits: { requestsPerMinute?: number } }>;
    assert.equal(json.find((entry) => entry.id === id)?.limits.requestsPerMinute, 100);
    assert.ok(json.some((entry) => entry.client === "hermes" && entry.source === "config"));

    const revoked = await runPerimeter(["llm-keys", "revoke", id, "-c", harness.configPath]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const after = await post(harness.url, "/v1/chat/completions", small("fast"), key);
    assert.equal(after.status, 401);
    assert.equal(after.json.error?.code, "invalid_api_key");
    assert.equal(harness.records().at(-1)?.data.reason, "unauthorized");

    const events = readAuditRecords(harness.auditPath, { limit: 100_000 }).filter((record) => record.component === "cli").map((record) => `${record.type}:${String(record.data.keyId)}`);
    assert.deepEqual(events, [`llm-key-create:${id}`, `llm-key-revoke:${id}`]);
    assert.ok(!JSON.stringify(readAuditRecords(harness.auditPath, { limit: 100_000 })).includes(key));

    const again = await runPerimeter(["llm-keys", "revoke", "llmk_000000000000", "-c", harness.configPath]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no key llmk_000000000000/);
  });

  test("llm-keys create refuses unusable input with exit 2 and a message saying how to fix it", async () => {
    const noClient = await runPerimeter(["llm-keys", "create", "-c", harness.configPath]);
    assert.equal(noClient.code, 2);
    assert.match(noClient.stderr, /--client NAME is required/);
    const badModel = await runPerimeter(["llm-keys", "create", "--client", "x", "--models", "nowhere/*", "-c", harness.configPath]);
    assert.equal(badModel.code, 2);
    assert.match(badModel.stderr, /matches no configured model/);
    const badLimit = await runPerimeter(["llm-keys", "create", "--client", "x", "--tokens-per-day", "-5", "-c", harness.configPath]);
    assert.equal(badLimit.code, 2);
  });
});

describe("key store", () => {
  test("llm.clients sync: a rotated value revokes the old key, a removed client's key is revoked, a revoked config key stays revoked", () => {
    const store = openLlmKeyStore(join(temporaryDirectory(), "keys.db"));
    const policy = { models: ["*"], limits: {}, budget: {} };
    store.syncConfigClients([{ name: "hermes", value: "sk-perimeter-first-value-0123456789abcdef", policy }, { name: "other", value: "sk-perimeter-other-value-0123456789abcdef", policy }]);
    assert.equal(store.authenticate("sk-perimeter-first-value-0123456789abcdef").ok, true);
    store.syncConfigClients([{ name: "hermes", value: "sk-perimeter-second-value-0123456789abcde", policy }]);
    assert.deepEqual(store.authenticate("sk-perimeter-first-value-0123456789abcdef"), { ok: false, reason: "revoked-key" });
    assert.deepEqual(store.authenticate("sk-perimeter-other-value-0123456789abcdef"), { ok: false, reason: "revoked-key" });
    const current = store.authenticate("sk-perimeter-second-value-0123456789abcde");
    assert.ok(current.ok);
    store.revoke(current.key.id, "test");
    store.syncConfigClients([{ name: "hermes", value: "sk-perimeter-second-value-0123456789abcde", policy }]);
    assert.deepEqual(store.authenticate("sk-perimeter-second-value-0123456789abcde"), { ok: false, reason: "revoked-key" });
    assert.throws(() => store.syncConfigClients([{ name: "a", value: "sk-perimeter-same-0123456789abcdefghij", policy }, { name: "b", value: "sk-perimeter-same-0123456789abcdefghij", policy }]), /already the key/);
    store.close();
  });

  test("settled usage survives a restart: a new proxy on the same store sees the budget already used (stand-in provider)", async () => {
    const provider = createStandInProvider();
    const { baseUrl } = await provider.listen();
    const directory = temporaryDirectory();
    const store = openLlmKeyStore(join(directory, "keys.db"));
    const key = store.create("restart", { models: ["*"], limits: {}, budget: { tokensTotal: 40 } });
    const day = new Date().toISOString().slice(0, 10);
    store.addUsage(key.key.id, day, 5, 10, 0);
    store.close();
    const harness = await startProxy(`keysPath: ${join(directory, "keys.db")}\nproviders:\n  main: { baseUrl: "${baseUrl}", models: [m], allowPrivateAddress: true }`, {});
    try {
      // 15 used + 32 reserved > 40.
      const response = await post(harness.url, "/v1/chat/completions", small("main/m"), key.secret);
      assert.equal(response.status, 429);
      assert.match(String(response.json.error?.message), /tokensTotal budget of this key \(40\) would be exceeded: used 15/);
    } finally {
      await harness.close();
      await provider.close();
    }
  });
});
