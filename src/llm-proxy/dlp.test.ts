// Requirements (issue 7): every secret shape (SECRET_SHAPES) and a planted canary are caught in message content,
// tool-call arguments, multimodal text parts, system prompts and Anthropic content blocks; known secret values the
// proxy holds are caught as is and base64-encoded; in redact mode the provider receives the redacted prompt, in block
// mode nothing is sent; a hit is recorded and counted, never its value; ordinary code and prose stay untouched.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SECRET_SHAPES } from "../config/index.ts";
import { createSecretScanner, inspectRequestBody } from "./dlp.ts";
import { createStandInProvider } from "./stand-in-provider.ts";
import type { StandInProvider } from "./stand-in-provider.ts";
import { post, request, startProxy } from "./test-support.ts";
import type { Harness } from "./test-support.ts";

// Samples are assembled at run time so that this file holds no credential-shaped literal.
const alnum = "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xYz";
const repeat = (text: string, length: number) => text.repeat(Math.ceil(length / text.length)).slice(0, length);
const SAMPLES: Record<string, string> = {
  "OpenAI-style API key": ["sk", "proj", repeat(alnum, 40)].join("-"),
  "Anthropic API key": ["sk", "ant", "api03", repeat(alnum, 40)].join("-"),
  "GitHub token": ["ghp", repeat(alnum, 36)].join("_"),
  "Slack token": ["xoxb", "2093847561", repeat(alnum, 24)].join("-"),
  "Telegram bot token": `${"7312946580"}:${repeat(`_-${alnum}`, 35)}`,
  "AWS access key id": `AKIA${repeat("QZ7W2X9V4T6R8P3M", 16)}`,
  "Google API key": `AIza${repeat(alnum, 35)}`,
  "JSON Web Token": [`eyJ${repeat(alnum, 20)}`, `eyJ${repeat(alnum, 30)}`, repeat(alnum, 43)].join("."),
  "PEM private key": `${"-----BEGIN"} RSA PRIVATE KEY-----\n${repeat(alnum, 64)}\n-----END RSA PRIVATE KEY-----`,
  "Discord bot token": [`M${repeat(alnum, 23)}`, repeat(alnum, 6), repeat(alnum, 27)].join("."),
};
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
  const scanner = createSecretScanner([{ label: "canary CANARY_TOKEN", value: CANARY }, { label: "provider key MAIN_KEY", value: PROVIDER_KEY }]);

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
    const corpus = [
      "The quick brown fox jumps over the lazy dog. Kubernetes NetworkPolicies need a CNI that enforces them.",
      "export function createServer(options: ServerOptions): Server {\n  const skip = options.skipAuth ?? false;\n  return new Server({ ...options, skip });\n}",
      "def tokenize(text: str) -> list[str]:\n    return [token for token in text.split() if token]\n",
      "commit 9fceb02d0ae598e95dc970b74767f19372d61af8\nAuthor: Dev <dev@example.com>\nDate: 2026-01-05",
      "request id 3f2b8c1e-9d4a-4e7b-b6f0-2c5d8e9a1b7f failed after 12ms; retrying with backoff 250ms",
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7Zk4bA0aY3H9bX5mR2cV8dN1pL6sT0wQ4eU7iO3yK dev@laptop",
      "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGUgZXhhbXBsZTAKBggqhkjOPQQDAjAS\n-----END CERTIFICATE-----",
      "pip install scikit-learn sk-video && kubectl get pods -n sk-system --token-file=/var/run/token",
      "https://example.com/search?q=openai+api+key&session=abc123&page=2#results",
      "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hermes-secret\ntype: Opaque\nstringData:\n  MINIMAX_API_KEY: ${MINIMAX_API_KEY}",
      "Set OPENAI_API_KEY in your environment; never paste the key into chat. AKIA is the prefix of AWS access key ids.",
      "at 12:30:45 the job 20260105:nightly-build-of-the-main-branch finished",
      "const jwtHeader = 'eyJ'; // JWTs start with base64 of {\"",
    ];
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
