// Requirements (issue 7): every secret shape (SECRET_SHAPES) and a planted canary are caught in message content,
// tool-call arguments, multimodal text parts, system prompts and Anthropic content blocks; known secret values the
// proxy holds are caught as is and base64-encoded; in redact mode the provider receives the redacted prompt, in block
// mode nothing is sent; a hit is recorded and counted, never its value; ordinary code and prose stay untouched.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SECRET_SHAPES } from "../config/index.ts";
import { CANARY as ATTACK_CANARY, PROVIDER_KEY as ATTACK_PROVIDER_KEY, FALSE_POSITIVE_CORPUS, SHAPE_SAMPLES, attacks, repeat, revealed } from "../dlp/testing.ts";
import { createPromptScanner, inspectRequestBody } from "./dlp.ts";
import { createStandInProvider } from "./stand-in-provider.ts";
import type { StandInProvider } from "./stand-in-provider.ts";
import { post, request, startProxy } from "./test-support.ts";
import type { Harness } from "./test-support.ts";

// Samples are assembled at run time (src/dlp/testing.ts) so that this file holds no credential-shaped literal.
const SAMPLES = SHAPE_SAMPLES;
const alnum = "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xYz";
const CANARY = `canary-${repeat("7f3a9c1e5b", 30)}`;
const PROVIDER_KEY = `provider-secret-${repeat("Zq8Lm2Nx", 24)}`;
const AGENT_KEY = `sk-perimeter-${repeat("Ag3ntK3y", 43)}`;

/** The same secret placed everywhere a prompt can carry text, in OpenAI chat format. */
function chatBodyWith(secret: string): Record<string, unknown> {
  return {
    model: "main/gpt-test",
    max_tokens: 10,
    messages: [
      { role: "system", content: `system prompt ${secret}` },
      { role: "user", content: `please use ${secret} now` },
      { role: "user", content: [{ type: "text", text: `multimodal ${secret}` }, { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk" } }] },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "deploy", arguments: JSON.stringify({ token: secret, region: "eu" }) } }] },
      { role: "tool", tool_call_id: "call_1", content: `tool result ${secret}` },
    ],
  };
}

/** The same in Anthropic Messages format: system blocks, text blocks, tool_use input, tool_result content. */
function anthropicBodyWith(secret: string): Record<string, unknown> {
  return {
    model: "claude/claude-test",
    max_tokens: 10,
    system: [{ type: "text", text: `system ${secret}` }],
    messages: [
      { role: "user", content: [{ type: "text", text: `hello ${secret}` }] },
      { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "shell", input: { command: `echo ${secret}` } }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: secret }] }] },
    ],
  };
}

const CHAT_LOCATIONS = ["messages[0].content", "messages[1].content", "messages[2].content[0].text", "messages[3].tool_calls[0].function.arguments", "messages[4].content"];
const ANTHROPIC_LOCATIONS = ["system[0].text", "messages[0].content[0].text", "messages[1].content[0].input.command", "messages[2].content[0].content[0].text"];

describe("DLP scanner", () => {
  const scanner = createPromptScanner([{ label: "canary CANARY_TOKEN", value: CANARY }, { label: "provider key MAIN_KEY", value: PROVIDER_KEY }]);

  test("there is a sample for every shape in SECRET_SHAPES (a new shape needs a test)", () => {
    for (const { kind } of SECRET_SHAPES) assert.ok(Object.hasOwn(SAMPLES, kind), `no sample for ${kind}`);
  });

  for (const [kind, sample] of Object.entries(SAMPLES)) {
    test(`${kind} is caught in message content, system prompt, tool arguments, multimodal text and tool results, and redacted`, () => {
      const body = chatBodyWith(sample);
      const hits = inspectRequestBody(body, scanner, "redact");
      assert.deepEqual(hits.map((hit) => hit.location), CHAT_LOCATIONS);
      for (const hit of hits) assert.equal(hit.kind, kind);
      const text = JSON.stringify(body);
      assert.ok(!text.includes(sample.slice(0, 30)), "nothing of the secret is left");
      assert.ok(text.includes(`[REDACTED:${kind}]`));
      const args = JSON.parse((((body.messages as unknown[])[3] as { tool_calls: Array<{ function: { arguments: string } }> }).tool_calls[0] as { function: { arguments: string } }).function.arguments) as { token: string; region: string };
      assert.equal(args.region, "eu", "tool arguments stay valid JSON after redaction");
    });

    test(`${kind} is caught in Anthropic system blocks, text blocks, tool_use input and tool_result content`, () => {
      const body = anthropicBodyWith(sample);
      const hits = inspectRequestBody(body, scanner, "block");
      assert.deepEqual(hits.map((hit) => hit.location), ANTHROPIC_LOCATIONS);
      assert.ok(JSON.stringify(body).includes(sample.split("\n")[0] as string), "block mode changes nothing");
    });
  }

  test("a Telegram bot token ending in '-' is caught (the shared shape's trailing \\b misses it)", () => {
    const token = `${"7312946580"}:${repeat(`${alnum}_-`, 35)}`;
    assert.ok(token.endsWith("-"));
    assert.deepEqual(scanner.find(`token ${token} here`), ["Telegram bot token"]);
  });

  test("a planted canary and a provider key are caught as is and base64-encoded, named by their variable", () => {
    const base64 = Buffer.from(CANARY).toString("base64");
    const body = { input: [`leak ${CANARY}`, `encoded ${base64}`, `key ${PROVIDER_KEY}`, `url-safe ${Buffer.from(PROVIDER_KEY).toString("base64url")}`] };
    const hits = inspectRequestBody(body, scanner, "redact");
    assert.deepEqual(hits.map((hit) => hit.kind), ["canary CANARY_TOKEN", "canary CANARY_TOKEN (base64)", "provider key MAIN_KEY", "provider key MAIN_KEY (base64)"]);
    assert.ok(!JSON.stringify(body).includes(CANARY) && !JSON.stringify(body).includes(base64));
  });

  test("false-positive corpus: ordinary code, prose, hashes, UUIDs, public keys, certificates and images stay clean", () => {
    const corpus = FALSE_POSITIVE_CORPUS;
    const body = { messages: corpus.map((content) => ({ role: "user", content })), image: { type: "image", source: { type: "base64", media_type: "image/png", data: repeat("AKIAQZ7W2X9V4T6R8P3M+/", 400) } } };
    const before = JSON.stringify(body);
    const hits = inspectRequestBody(body, scanner, "redact");
    assert.deepEqual(hits, []);
    assert.equal(JSON.stringify(body), before);
  });
});

describe("DLP in llm-proxy against a stand-in provider", () => {
  let openai: StandInProvider;
  let claude: StandInProvider;
  let redacting: Harness;
  let blocking: Harness;
  const environment = { MAIN_KEY: PROVIDER_KEY, AGENT_KEY, CANARY_TOKEN: CANARY };

  before(async () => {
    openai = createStandInProvider({ expectedKey: PROVIDER_KEY });
    claude = createStandInProvider({ expectedKey: PROVIDER_KEY });
    const [main, anthropic] = await Promise.all([openai.listen(), claude.listen()]);
    const llm = (mode: string) => `providers:
  main: { baseUrl: "${main.baseUrl}", apiKeySecret: MAIN_KEY, models: [gpt-test], allowPrivateAddress: true }
  claude: { kind: anthropic, baseUrl: "${anthropic.baseUrl}", apiKeySecret: MAIN_KEY, models: [claude-test], allowPrivateAddress: true }
canaries: [CANARY_TOKEN]
dlp: { mode: ${mode} }
clients:
  - { name: hermes, keySecret: AGENT_KEY }`;
    redacting = await startProxy(llm("redact"), environment);
    blocking = await startProxy(llm("block"), environment);
  });

  after(async () => {
    await Promise.all([redacting.close(), blocking.close()]);
    await Promise.all([openai.close(), claude.close()]);
  });

  test("redact mode: the stand-in provider receives the prompt with the canary and secret shapes replaced; the hit is recorded without the value", async () => {
    const body = chatBodyWith(CANARY);
    (body.messages as Array<{ content: unknown }>)[1]!.content = `please use ${SAMPLES["GitHub token"]} and ${CANARY}`;
    const response = await post(redacting.url, "/v1/chat/completions", body, AGENT_KEY);
    assert.equal(response.status, 200);
    const forwarded = JSON.stringify(openai.requests.at(-1)?.body);
    assert.ok(!forwarded.includes(CANARY), "the canary reached the provider");
    assert.ok(!forwarded.includes(SAMPLES["GitHub token"] as string));
    assert.ok(forwarded.includes("[REDACTED:canary CANARY_TOKEN]"));
    assert.ok(forwarded.includes("[REDACTED:GitHub token]"));
    const record = redacting.records().at(-1);
    const hits = record?.data.dlpHits as Array<{ kind: string; location: string }>;
    assert.ok(hits.some((hit) => hit.kind === "canary CANARY_TOKEN" && hit.location === "messages[3].tool_calls[0].function.arguments"));
    assert.ok(hits.some((hit) => hit.kind === "GitHub token" && hit.location === "messages[1].content"));
    assert.ok(!JSON.stringify(redacting.records()).includes(CANARY), "the audit log never holds the value");
    const metrics = await request(`${redacting.url}/metrics`, "GET", undefined);
    assert.match(metrics.text, /llm_proxy_dlp_hits_total\{kind="canary",action="redacted"\} [1-9]/);
  });

  test("redact mode: the agent sending the provider's own key or its virtual key is caught too", async () => {
    const response = await post(redacting.url, "/v1/chat/completions", { model: "main/gpt-test", max_tokens: 5, messages: [{ role: "user", content: `keys: ${PROVIDER_KEY} ${AGENT_KEY}` }] }, AGENT_KEY);
    assert.equal(response.status, 200);
    const forwarded = JSON.stringify(openai.requests.at(-1)?.body);
    assert.ok(!forwarded.includes(PROVIDER_KEY) && !forwarded.includes(AGENT_KEY));
    assert.deepEqual((redacting.records().at(-1)?.data.dlpHits as Array<{ kind: string }>).map((hit) => hit.kind), ["provider key MAIN_KEY", "client key AGENT_KEY"]);
  });

  test("a canary smuggled in the model name is refused and recorded redacted (the audit log never holds it)", async () => {
    const response = await post(redacting.url, "/v1/chat/completions", { model: `main/${CANARY}`, messages: [] }, AGENT_KEY);
    assert.equal(response.status, 404);
    const record = redacting.records().at(-1);
    assert.equal(record?.data.model, "main/[REDACTED:canary CANARY_TOKEN]");
    assert.ok(!JSON.stringify(redacting.records()).includes(CANARY));
  });

  test("a canary straddling the model name's recorded length is redacted before the name is cut (no piece of it is recorded)", async () => {
    const response = await post(redacting.url, "/v1/chat/completions", { model: `main/${"x".repeat(240)}${CANARY}`, messages: [] }, AGENT_KEY);
    assert.equal(response.status, 404);
    const recorded = JSON.stringify(redacting.records().at(-1));
    for (let start = 0; start + 8 <= CANARY.length; start += 1) assert.ok(!recorded.includes(CANARY.slice(start, start + 8)), `a piece of the canary was recorded: ${CANARY.slice(start, start + 8)}`);
  });

  test("block mode: a canary in an Anthropic tool_result is refused with 403 Anthropic-style and nothing reaches the stand-in provider", async () => {
    const before = claude.requests.length;
    const response = await request(`${blocking.url}/v1/messages`, "POST", anthropicBodyWith(CANARY), { "x-api-key": AGENT_KEY });
    assert.equal(response.status, 403);
    assert.equal((response.json.error as { type: string }).type, "permission_error");
    assert.match(String((response.json.error as { message: string }).message), /canary CANARY_TOKEN/);
    assert.equal(claude.requests.length, before);
    const record = blocking.records().at(-1);
    assert.equal(record?.data.decision, "deny");
    assert.equal(record?.data.reason, "dlp-blocked");
    assert.equal((record?.data.dlpHits as unknown[]).length, ANTHROPIC_LOCATIONS.length);
  });

  test("block mode: every secret shape in a Responses API input is refused with 403 OpenAI-style", async () => {
    for (const [kind, sample] of Object.entries(SAMPLES)) {
      const response = await post(blocking.url, "/v1/responses", { model: "main/gpt-test", instructions: "be brief", input: [{ role: "user", content: [{ type: "input_text", text: sample }] }] }, AGENT_KEY);
      assert.equal(response.status, 403, kind);
      assert.equal(response.json.error?.code, "sensitive_data_blocked");
    }
    const clean = await post(blocking.url, "/v1/responses", { model: "main/gpt-test", input: "what is a NetworkPolicy?" }, AGENT_KEY);
    assert.equal(clean.status, 200);
  });

  test("a proxy whose canary variable is unset refuses to start, naming the variable", async () => {
    await assert.rejects(startProxy(`canaries: [MISSING_CANARY]`, {}), /MISSING_CANARY/);
  });
});

// Issue 12, item 1: what the adversarial review found DLP let through, sent through the running proxy. Each test
// checks what the stand-in provider received and what the audit record says. The same inputs go through mcp-guard's
// redactor in src/mcp-guard/redact.test.ts (one shared scanner, src/dlp).
describe("DLP attacks of issue 12 through llm-proxy", () => {
  let openai: StandInProvider;
  let claude: StandInProvider;
  let redacting: Harness;
  let blocking: Harness;
  const environment = { MAIN_KEY: ATTACK_PROVIDER_KEY, AGENT_KEY, CANARY_TOKEN: ATTACK_CANARY };
  const llm = (main: string, anthropic: string, mode: string) => `providers:
  main: { baseUrl: "${main}", apiKeySecret: MAIN_KEY, models: [gpt-test, embed-test], allowPrivateAddress: true }
  claude: { kind: anthropic, baseUrl: "${anthropic}", apiKeySecret: MAIN_KEY, models: [claude-test], allowPrivateAddress: true }
canaries: [CANARY_TOKEN]
dlp: { mode: ${mode} }
clients:
  - { name: hermes, keySecret: AGENT_KEY }`;

  before(async () => {
    openai = createStandInProvider({ expectedKey: ATTACK_PROVIDER_KEY });
    claude = createStandInProvider({ expectedKey: ATTACK_PROVIDER_KEY });
    const [main, anthropic] = await Promise.all([openai.listen(), claude.listen()]);
    redacting = await startProxy(llm(main.baseUrl, anthropic.baseUrl, "redact"), environment);
    blocking = await startProxy(llm(main.baseUrl, anthropic.baseUrl, "block"), environment);
  });

  after(async () => {
    await Promise.all([redacting.close(), blocking.close()]);
    await Promise.all([openai.close(), claude.close()]);
  });

  const hitsOf = (harness: Harness) => (harness.records().at(-1)?.data.dlpHits ?? []) as Array<{ kind: string; location: string }>;

  for (const attack of attacks()) {
    test(`redact mode: ${attack.name} — in a prompt, a tool call's arguments and a tool result — never reaches the provider`, async () => {
      assert.ok(revealed(attack.text, attack.secret), "the oracle reads the secret in the input (else this test proves nothing)");
      const before = openai.requests.length;
      const body = {
        model: "main/gpt-test",
        max_tokens: 5,
        messages: [
          { role: "user", content: `look: ${attack.text}` },
          { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "write", arguments: JSON.stringify({ content: attack.text, path: "/tmp/out" }) } }] },
          { role: "tool", tool_call_id: "call_1", content: attack.text },
        ],
      };
      const response = await post(redacting.url, "/v1/chat/completions", body, AGENT_KEY);
      assert.equal(response.status, 200, response.text);
      assert.equal(openai.requests.length, before + 1);
      const forwarded = openai.requests.at(-1)?.body as { messages: Array<{ content: string; tool_calls?: Array<{ function: { arguments: string } }> }> };
      assert.ok(!revealed(JSON.stringify(forwarded), attack.secret), `the provider could read it: ${JSON.stringify(forwarded).slice(0, 400)}`);
      const args = JSON.parse(forwarded.messages[1]?.tool_calls?.[0]?.function.arguments ?? "") as { path: string };
      assert.equal(args.path, "/tmp/out", "tool arguments stay valid JSON after redaction");
      const locations = new Set(hitsOf(redacting).map((hit) => hit.location));
      assert.deepEqual([...locations].sort(), ["messages[0].content", "messages[1].tool_calls[0].function.arguments", "messages[2].content"]);
      assert.ok(!revealed(JSON.stringify(redacting.records().at(-1)), attack.secret), "the audit record holds no trace of it");
    });
  }

  test("the false-positive corpus goes out unchanged and unrecorded in redact mode", async () => {
    const response = await post(redacting.url, "/v1/chat/completions", { model: "main/gpt-test", max_tokens: 5, messages: FALSE_POSITIVE_CORPUS.map((content) => ({ role: "user", content })) }, AGENT_KEY);
    assert.equal(response.status, 200);
    assert.deepEqual((openai.requests.at(-1)?.body as { messages: Array<{ content: string }> }).messages.map((message) => message.content), FALSE_POSITIVE_CORPUS);
    assert.deepEqual(hitsOf(redacting), []);
  });

  // A property name cannot be redacted without changing what the request means (a tool's parameter, a schema's
  // field), so a secret in an object key refuses the request in either mode.
  const keyAttacks: Array<{ name: string; path: string; body: Record<string, unknown>; location: RegExp; kind: string }> = [
    {
      name: "the canary as a tool parameter's name",
      path: "/v1/chat/completions",
      body: { model: "main/gpt-test", messages: [{ role: "user", content: "hi" }], tools: [{ type: "function", function: { name: "save", parameters: { type: "object", properties: { [ATTACK_CANARY]: { type: "string" } } } } }] },
      location: /^tools\[0\]\.function\.parameters\.properties\{key \d+\}$/,
      kind: "canary CANARY_TOKEN",
    },
    {
      name: "the provider key as a metadata key",
      path: "/v1/chat/completions",
      body: { model: "main/gpt-test", messages: [{ role: "user", content: "hi" }], metadata: { [ATTACK_PROVIDER_KEY]: "1" } },
      location: /^metadata\{key 0\}$/,
      kind: "provider key MAIN_KEY",
    },
    {
      name: "the base64 of the canary as a property of a response_format schema",
      path: "/v1/chat/completions",
      body: { model: "main/gpt-test", messages: [{ role: "user", content: "hi" }], response_format: { type: "json_schema", json_schema: { name: "out", schema: { type: "object", properties: { ok: { type: "boolean" }, [`x${Buffer.from(ATTACK_CANARY).toString("base64")}`]: { type: "string" } } } } } },
      location: /^response_format\.json_schema\.schema\.properties\{key 1\}$/,
      kind: "canary CANARY_TOKEN (base64)",
    },
    {
      name: "a GitHub token as a property of an Anthropic tool's input_schema",
      path: "/v1/messages",
      body: { model: "claude/claude-test", max_tokens: 5, messages: [{ role: "user", content: "hi" }], tools: [{ name: "t", input_schema: { type: "object", properties: { [`token_${SAMPLES["GitHub token"]}`]: { type: "string" } } } }] },
      location: /^tools\[0\]\.input_schema\.properties\{key 0\}$/,
      kind: "GitHub token",
    },
  ];
  for (const attack of keyAttacks) {
    for (const mode of ["redact", "block"] as const) {
      test(`${mode} mode: ${attack.name} is refused with 403, recorded by location, and nothing reaches the provider`, async () => {
        const harness = mode === "redact" ? redacting : blocking;
        const provider = attack.path === "/v1/messages" ? claude : openai;
        const before = provider.requests.length;
        const response = attack.path === "/v1/messages" ? await request(`${harness.url}${attack.path}`, "POST", attack.body, { "x-api-key": AGENT_KEY }) : await post(harness.url, attack.path, attack.body, AGENT_KEY);
        assert.equal(response.status, 403, response.text);
        assert.equal(provider.requests.length, before, "the provider received the request");
        assert.match(response.text, attack.path === "/v1/messages" ? /permission_error/ : /sensitive_data_blocked/);
        const record = harness.records().at(-1);
        assert.equal(record?.data.reason, "dlp-blocked");
        assert.ok(hitsOf(harness).some((hit) => hit.kind === attack.kind && attack.location.test(hit.location)), JSON.stringify(hitsOf(harness)));
        assert.ok(!revealed(JSON.stringify(harness.records().at(-1)), ATTACK_CANARY) && !revealed(JSON.stringify(harness.records().at(-1)), ATTACK_PROVIDER_KEY));
      });
    }
  }

  test("embedding input given as token ids (which DLP cannot read) is refused with 400 and never reaches the provider", async () => {
    const before = openai.requests.length;
    for (const input of [[1820, 3290, 374], [[1820, 3290], [374, 9861]]]) {
      const response = await post(redacting.url, "/v1/embeddings", { model: "main/embed-test", input }, AGENT_KEY);
      assert.equal(response.status, 400, response.text);
      assert.match(String(response.json.error?.message), /token ids/);
      assert.equal(response.json.error?.param, "input");
    }
    assert.equal(openai.requests.length, before);
    const text = await post(redacting.url, "/v1/embeddings", { model: "main/embed-test", input: ["plain text", `the canary ${ATTACK_CANARY}`] }, AGENT_KEY);
    assert.equal(text.status, 200, "text input is still served (and scanned)");
    assert.ok(!JSON.stringify(openai.requests.at(-1)?.body).includes(ATTACK_CANARY));
  });

  test("a canary shorter than 8 characters refuses to start (it would match ordinary words; DLP would be noise)", async () => {
    let started: Harness | undefined;
    try {
      await assert.rejects(
        async () => {
          started = await startProxy(`canaries: [SHORT_CANARY]\nclients:\n  - { name: hermes, keySecret: AGENT_KEY }`, { SHORT_CANARY: "abc1234", AGENT_KEY });
        },
        (error: Error) => {
          assert.match(error.message, /SHORT_CANARY/);
          assert.match(error.message, /at least 8/);
          assert.doesNotMatch(error.message, /abc1234/);
          return true;
        },
      );
    } finally {
      await started?.close();
    }
  });
});
