// What other capabilities may use from dlp/: the one secret scanner behind llm-proxy's DLP and mcp-guard's redaction.
export { createSecretScanner, base64Cores, MIN_SECRET_LENGTH, SecretPatternError, VIRTUAL_KEY_PREFIX } from "./scanner.ts";
export type { KnownSecret, SecretPattern, SecretScanner, SecretSpan } from "./scanner.ts";
