// What other capabilities (render, the future `perimeter up`) may use from llm-proxy.
export { createLlmProxy, buildRuntime, configClientKeys, LlmProxySetupError } from "./server.ts";
export type { LlmProxy, LlmProxyDependencies } from "./server.ts";
export { openLlmKeyStore, generateVirtualKey, hashKey } from "./keys.ts";
export type { LlmKeyStore, VirtualKey, KeyPolicy, KeyLimits, KeyBudget } from "./keys.ts";
export { createSecretScanner, inspectRequestBody, VIRTUAL_KEY_PREFIX } from "./dlp.ts";
export type { SecretScanner, KnownSecret, DlpHit } from "./dlp.ts";
export { resolveModel, modelAllowed, failoverChain } from "./routing.ts";
