// Test support of llm-proxy for other folders' tests and benches (never imported by product code): the stand-in
// provider that plays OpenAI and Anthropic, which are outside this network.
export { createStandInProvider, STAND_IN_TOOL_ARGUMENT_FRAGMENTS } from "./stand-in-provider.ts";
export type { RecordedRequest, StandInProviderOptions, StandInProvider } from "./stand-in-provider.ts";
