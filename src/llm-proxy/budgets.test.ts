// Requirements (issue 12, item 7 and its smaller edges): a cost budget is enforced or refused, never silently
// unlimited. Cost comes from llm.providers.<name>.costPer1kTokens; a cost budget (costPerDay, costTotal) on a key
// whose models — or their failover providers — have no price is refused wherever it is set: in llm.clients (a
// config error), by `perimeter llm-keys create` (exit 2), and by the running proxy for a key stored earlier (403,
// audited). A priced key is refused with 429 once its spending reaches the budget. `--models` accepts a bare model
// name exactly one provider lists, as requests do. The provider is a stand-in speaking OpenAI's wire format.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../config/index.ts";
import { createStandInProvider } from "./stand-in-provider.ts";
import type { StandInProvider } from "./stand-in-provider.ts";
import { post, request, runPerimeter, startProxy } from "./test-support.ts";
import type { Harness } from "./test-support.ts";

const small = (model: string) => ({ model, max_tokens: 10, messages: [{ role: "user", content: "hi" }] });

function configProblems(llmYaml: string): string {
  try {
    parseConfig(`version: 1\nname: test\nllm:\n${llmYaml.split("\n").map((line) => `  ${line}`).join("\n")}\n`, "test.yaml");
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail("the configuration was accepted");
}

const PROVIDERS = (baseUrl: string) => `providers:
  paid: { baseUrl: "${baseUrl}", models: [gpt-paid, twin], allowPrivateAddress: true, costPer1kTokens: { input: 10, output: 20 } }
  chained: { baseUrl: "${baseUrl}", models: [gpt-chained], allowPrivateAddress: true, costPer1kTokens: { input: 1, output: 2 }, failoverTo: free }
  free: { baseUrl: "${baseUrl}", models: [gpt-free, twin], allowPrivateAddress: true }
aliases:
  cheap: free/gpt-free`;

describe("a cost budget needs prices: the configuration", () => {
  const providers = PROVIDERS("http://127.0.0.1:9/v1");

  test("a client with costPerDay over every model ('*') is refused, naming the unpriced provider and the fix", () => {
    const message = configProblems(`${providers}\nclients:\n  - { name: hermes, keySecret: HERMES_KEY, budget: { costPerDay: 5 } }`);
    assert.match(message, /costPerDay/);
    assert.match(message, /provider free has no price/);
    assert.match(message, /llm\.providers\.free\.costPer1kTokens: \{ input, output \}/);
    assert.doesNotMatch(message, /provider paid has no price/, "a priced provider is not blamed");
  });

  test("costTotal is refused the same way; through an alias, a bare model name and a failover provider too", () => {
    assert.match(configProblems(`${providers}\nclients:\n  - { name: a, keySecret: A_KEY, models: [cheap], budget: { costTotal: 1 } }`), /costTotal.*provider free has no price/s);
    assert.match(configProblems(`${providers}\nclients:\n  - { name: a, keySecret: A_KEY, models: [gpt-free], budget: { costTotal: 1 } }`), /provider free has no price/);
    const failover = configProblems(`${providers}\nclients:\n  - { name: a, keySecret: A_KEY, models: ["chained/*"], budget: { costPerDay: 1 } }`);
    assert.match(failover, /provider free has no price/);
    assert.match(failover, /failover of chained/);
  });

  test("a client restricted to priced models, or with only token budgets, is accepted", () => {
    const text = (clients: string) => `version: 1\nname: test\nllm:\n${`${providers}\nclients:\n${clients}`.split("\n").map((line) => `  ${line}`).join("\n")}\n`;
    const priced = parseConfig(text(`  - { name: a, keySecret: A_KEY, models: ["paid/*"], budget: { costPerDay: 5, costTotal: 50 } }`));
    assert.equal(priced.llm.clients[0]?.budget.costPerDay, 5);
    const tokens = parseConfig(text(`  - { name: a, keySecret: A_KEY, budget: { tokensPerDay: 1000 } }`));
    assert.equal(tokens.llm.clients[0]?.budget.tokensPerDay, 1000);
  });

  test("serve llm-proxy with such a configuration refuses to start: exit 2, naming the provider", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const directory = mkdtempSync(join(tmpdir(), "perimeter-llm-"));
    const file = join(directory, "perimeter.yaml");
    const llm = `${providers}\nclients:\n  - { name: hermes, keySecret: HERMES_KEY, budget: { costPerDay: 5 } }`;
    writeFileSync(file, `version: 1\nname: test\naudit: { path: ${join(directory, "audit.db")} }\nllm:\n${llm.split("\n").map((line) => `  ${line}`).join("\n")}\n`);
    const result = await runPerimeter(["serve", "llm-proxy", "-c", file, "--listen", "127.0.0.1:0"], { HERMES_KEY: "sk-perimeter-hermes-0123456789abcdefghijklmnop" });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /invalid configuration/);
    assert.match(result.stderr, /llm\.providers\.free\.costPer1kTokens/);
  });
});

describe("a cost budget needs prices: llm-keys create and the running proxy (stand-in provider)", () => {
  let provider: StandInProvider;
  let harness: Harness;

  before(async () => {
    provider = createStandInProvider();
    const { baseUrl } = await provider.listen();
    harness = await startProxy(PROVIDERS(baseUrl), {});
  });

  after(async () => {
    await harness.close();
    await provider.close();
  });

  const create = (...args: string[]) => runPerimeter(["llm-keys", "create", "--client", "ci-bot", ...args, "-c", harness.configPath]);

  test("llm-keys create --cost-per-day over every model is refused with exit 2, naming the unpriced provider and the fix", async () => {
    const refused = await create("--cost-per-day", "1");
    assert.equal(refused.code, 2, refused.stdout);
    assert.match(refused.stderr, /--cost-per-day/);
    assert.match(refused.stderr, /provider free has no price/);
    assert.match(refused.stderr, /llm\.providers\.free\.costPer1kTokens: \{ input, output \}/);
    assert.match(refused.stderr, /--models/, "it says the other way out: restrict the key to priced models");
    assert.equal(harness.keyStore.list().filter((key) => key.client === "ci-bot").length, 0, "no key was stored");
  });

  test("llm-keys create --cost-total is refused for an unpriced failover provider and for an unpriced bare model name", async () => {
    const failover = await create("--models", "chained/gpt-chained", "--cost-total", "1");
    assert.equal(failover.code, 2);
    assert.match(failover.stderr, /provider free has no price \(failover of chained\)/);
    const bare = await create("--models", "gpt-free", "--cost-total", "1");
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /provider free has no price/);
  });

  test("spend past the budget: a key created with --cost-per-day and priced --models is refused 429 once spent, and the refusal is audited", async () => {
    const created = await create("--models", "paid/*", "--cost-per-day", "2");
    assert.equal(created.code, 0, created.stderr);
    const key = created.stdout.trim().split("\n").at(-1) as string;
    const id = /created (llmk_[0-9a-f]+)/.exec(created.stdout)?.[1] as string;
    const statuses: number[] = [];
    let refusal;
    for (let index = 0; index < 50; index++) {
      const response = await post(harness.url, "/v1/chat/completions", small("paid/gpt-paid"), key);
      statuses.push(response.status);
      if (response.status !== 200) {
        refusal = response;
        break;
      }
    }
    assert.ok(refusal !== undefined, `never refused: ${statuses.join(",")}`);
    assert.ok(statuses.length >= 3, `spent a few requests first: ${statuses.join(",")}`);
    assert.equal(refusal.status, 429);
    assert.equal(refusal.json.error?.code, "insufficient_quota");
    assert.match(String(refusal.json.error?.message), /the costPerDay budget of this key \(2\.0000\) would be exceeded: used \d+\.\d{4}/);
    const records = harness.records().filter((record) => record.data.keyId === id);
    const last = records.at(-1);
    assert.equal(last?.data.decision, "deny");
    assert.equal(last?.data.reason, "budget-exhausted:costPerDay");
    const spent = records.filter((record) => record.data.decision === "allow").reduce((sum, record) => sum + (record.data.cost as number), 0);
    assert.ok(spent > 0 && spent <= 2, `settled cost ${spent} against a budget of 2`);
    harness.keyStore.flush();
    const listed = JSON.parse((await runPerimeter(["llm-keys", "list", "--json", "-c", harness.configPath])).stdout) as Array<{ id: string; usage: { totalCost: number } }>;
    assert.ok(Math.abs((listed.find((entry) => entry.id === id)?.usage.totalCost ?? -1) - spent) < 1e-9, "the key store holds the same spending");
  });

  test("a stored key whose cost budget meets an unpriced provider at request time (price removed by a reload) is refused 403, audited, never forwarded", async () => {
    const created = await create("--models", "paid/*", "--cost-total", "100");
    assert.equal(created.code, 0, created.stderr);
    const key = created.stdout.trim().split("\n").at(-1) as string;
    assert.equal((await post(harness.url, "/v1/chat/completions", small("paid/gpt-paid"), key)).status, 200);
    const baseUrl = harness.config.llm.providers.paid?.baseUrl as string;
    const unpriced = PROVIDERS(baseUrl).replace(", costPer1kTokens: { input: 10, output: 20 }", "");
    harness.proxy.reload(parseConfig(`version: 1\nname: test\naudit:\n  path: ${harness.auditPath}\nllm:\n${unpriced.split("\n").map((line) => `  ${line}`).join("\n")}\n`));
    try {
      const before = provider.requests.length;
      const refused = await post(harness.url, "/v1/chat/completions", small("paid/gpt-paid"), key);
      assert.equal(refused.status, 403);
      assert.equal(refused.json.error?.code, "budget_unpriced");
      assert.match(String(refused.json.error?.message), /costTotal/);
      assert.match(String(refused.json.error?.message), /llm\.providers\.paid\.costPer1kTokens/);
      assert.equal(provider.requests.length, before, "nothing reached the provider unmetered");
      assert.equal(harness.records().at(-1)?.data.reason, "budget-unpriced:costTotal");
    } finally {
      harness.proxy.reload(harness.config);
    }
    assert.equal((await post(harness.url, "/v1/chat/completions", small("paid/gpt-paid"), key)).status, 200, "priced again, served again");
  });

  test("--models takes a bare model name that exactly one provider lists, as requests do; an ambiguous one is refused naming the providers", async () => {
    const created = await create("--models", "gpt-free", "--tokens-per-day", "10000");
    assert.equal(created.code, 0, created.stderr);
    const key = created.stdout.trim().split("\n").at(-1) as string;
    assert.equal((await post(harness.url, "/v1/chat/completions", small("gpt-free"), key)).status, 200, "by its bare name");
    assert.equal((await post(harness.url, "/v1/chat/completions", small("free/gpt-free"), key)).status, 200, "by provider/model");
    assert.equal((await post(harness.url, "/v1/chat/completions", small("paid/gpt-paid"), key)).status, 403, "nothing else");
    const models = await request(`${harness.url}/v1/models`, "GET", undefined, { authorization: `Bearer ${key}` });
    assert.deepEqual((models.json.data as Array<{ id: string }>).map((entry) => entry.id).sort(), ["cheap", "free/gpt-free"]);
    const ambiguous = await create("--models", "twin");
    assert.equal(ambiguous.code, 2);
    assert.match(ambiguous.stderr, /"twin" is served by several providers \(paid, free\): write provider\/model/);
  });
});
