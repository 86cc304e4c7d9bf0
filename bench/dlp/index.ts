// bench/dlp: what the secret scan costs per request, in process (no sockets), for llm-proxy's request-body scan and
// mcp-guard's result redaction. The end-to-end llm-proxy bench sends a one-line prompt, where the scan is invisible;
// agents send long ones (a conversation with tool results, a pasted file), so this measures those.
//   node_modules/.bin/node bench/dlp/index.ts
// Bodies: a 16-turn chat with code, logs and prose (about 64 KiB of text, 5 % of it base64 and hex), clean, and the
// same with a canary and a GitHub token planted; 24 known values (as a proxy holding a real configuration would).
// Prints µs per body (median of rounds) and MB/s. Bounded: about 20 s.
import { performance } from "node:perf_hooks";
import { createPromptScanner, inspectRequestBody } from "../../src/llm-proxy/index.ts";
import { createRedactor } from "../../src/mcp-guard/index.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 15);
const ITERATIONS = Number(process.env.ITERATIONS ?? 40);

// Deterministic pseudo-random text, so runs compare.
let seed = 12345;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const token = (length: number) => Array.from({ length }, () => pick([...alphabet])).join("");

const known = Array.from({ length: 24 }, (_, index) => ({ label: `secret SECRET_${index}`, value: `${pick(["sk-", "xoxb-", "tok_", ""])}${token(32 + (index % 20))}` }));
const canary = known[0]?.value as string;

const words = "the proxy forwards each request after the scan finds nothing kubernetes network policy egress sandbox tool result error retry function return const value".split(" ");
const prose = (length: number) => {
  let text = "";
  while (text.length < length) text += `${pick(words)} `;
  return text;
};
const code = (length: number) => {
  let text = "";
  while (text.length < length) text += `export function ${pick(words)}${token(4)}(options: Options): Result {\n  const ${pick(words)} = options.${pick(words)} ?? ${Math.floor(random() * 1000)};\n  return { ok: true };\n}\n`;
  return text;
};
const logLines = (length: number) => {
  let text = "";
  while (text.length < length) text += `2026-01-05T12:${Math.floor(random() * 60)}:00Z level=info request=${token(8)}-${token(4)} path=/v1/${pick(words)} status=200 ms=${Math.floor(random() * 300)}\n`;
  return text;
};
const encoded = (length: number) => Buffer.from(prose(length)).toString("base64").slice(0, length) + "\n" + Buffer.from(prose(length / 2)).toString("hex").slice(0, length);

function chatBody(plant: boolean): Record<string, unknown> {
  const messages: Array<Record<string, unknown>> = [{ role: "system", content: prose(2000) }];
  for (let turn = 0; turn < 16; turn++) {
    messages.push({ role: "user", content: prose(400) + (plant && turn === 9 ? ` here: ${canary} ` : "") });
    messages.push({ role: "assistant", content: null, tool_calls: [{ id: `call_${turn}`, type: "function", function: { name: "shell", arguments: JSON.stringify({ command: `cat src/${pick(words)}.ts`, cwd: "/workspace" }) } }] });
    const result = turn % 4 === 0 ? logLines(3500) : turn % 4 === 1 ? code(3500) : turn % 4 === 2 ? prose(3500) : encoded(900) + prose(1700);
    messages.push({ role: "tool", tool_call_id: `call_${turn}`, content: result + (plant && turn === 13 ? `\nGITHUB_TOKEN=ghp_${token(36)}\n` : "") });
  }
  return { model: "main/gpt-test", max_tokens: 512, messages, tools: [{ type: "function", function: { name: "shell", description: prose(300), parameters: { type: "object", properties: { command: { type: "string" }, cwd: { type: "string" } } } } }] };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function measure(name: string, bytes: number, run: () => void): void {
  for (let index = 0; index < ITERATIONS * 2; index++) run();
  const perBody: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    for (let index = 0; index < ITERATIONS; index++) run();
    perBody.push(((performance.now() - started) * 1000) / ITERATIONS);
  }
  const us = median(perBody);
  console.log(`${name.padEnd(46)} ${us.toFixed(0).padStart(8)} µs/body ${((bytes / us) * 1e6 / 1e6).toFixed(1).padStart(8)} MB/s`);
}

const scanner = createPromptScanner(known);
const redactor = createRedactor({ secrets: known.map((secret) => secret.value) });
const clean = JSON.stringify(chatBody(false));
const planted = JSON.stringify(chatBody(true));
console.log(`dlp benchmark on Node ${process.version}: body ${(clean.length / 1024).toFixed(0)} KiB, ${known.length} known values, ${ROUNDS} rounds × ${ITERATIONS}`);
// The parse is part of what llm-proxy does anyway; it is measured alone so the scan's share shows.
measure("JSON.parse only (reference)", clean.length, () => void JSON.parse(clean));
measure("llm-proxy inspectRequestBody, clean (redact)", clean.length, () => void inspectRequestBody(JSON.parse(clean), scanner, "redact"));
measure("llm-proxy inspectRequestBody, 2 planted (redact)", planted.length, () => void inspectRequestBody(JSON.parse(planted), scanner, "redact"));
const parsedClean = JSON.parse(clean) as unknown;
const parsedPlanted = JSON.parse(planted) as unknown;
measure("mcp-guard redactor.value, clean", clean.length, () => void redactor.value(parsedClean));
measure("mcp-guard redactor.value, 2 planted", planted.length, () => void redactor.value(parsedPlanted));
