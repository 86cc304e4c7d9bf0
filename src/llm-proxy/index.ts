// Public API of llm-proxy: other folders import only from here (their tests and benches may also use testing.ts).
export { serveLlmProxy, llmKeysCommand } from "./cli.ts";
export { createLlmProxy } from "./server.ts";
export type { LlmProxy } from "./server.ts";
export type { LlmProxyDependencies } from "./state.ts";
export { LlmProxySetupError } from "./setup.ts";
export { openLlmKeyStore } from "./keys.ts";
export type { LlmKeyStore, VirtualKey, KeyPolicy, KeyLimits, KeyBudget } from "./keys.ts";
export { createPromptScanner, inspectRequestBody } from "./dlp.ts";
export type { PromptScanner, DlpHit } from "./dlp.ts";
