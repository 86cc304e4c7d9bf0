// The redact stage of a tools/call: what the upstream answered becomes what the agent may receive. Every value is
// redacted (the upstream's credentials and the configured patterns), the upstream's protocol-level _meta is dropped,
// a failure becomes an error result whose text is redacted too, and a result past MAX_RESULT_BYTES is withheld.
// It needs no state but the redactor, so it is tested alone (call-result.test.ts).
import type { CallToolResult } from "@modelcontextprotocol/client";
import type { Forwarded } from "./call-forward.ts";
import type { Redactor } from "./redact.ts";

/** Largest result handed to the agent: a runaway upstream must not make the guard buffer and relay without bound. */
export const MAX_RESULT_BYTES = 8 * 1024 * 1024;
/** An upstream's failure message is kept up to this many characters. */
const MAX_FAILURE_TEXT = 2000;

export interface RelayedResult {
  readonly result: CallToolResult;
  /** Why the call failed (redacted), for the record; undefined when the upstream answered. */
  readonly failure: string | undefined;
  /** The size of the result as JSON, for the record. */
  readonly resultBytes: number;
}

export function errorResult(text: string): CallToolResult {
  return { content: [{ type: "text", text }], isError: true };
}

/**
 * The upstream's protocol-level `_meta` keys (the reserved `io.modelcontextprotocol/` namespace: its server info,
 * protocol version...) describe the guard↔upstream hop, not this one: the agent talks to the guard, and must not
 * learn which upstream answered or take its identity for the guard's. Other `_meta` keys are the tool's and pass.
 */
export function withoutProtocolMeta(result: CallToolResult): CallToolResult {
  const meta = result._meta;
  if (meta === undefined || meta === null || typeof meta !== "object") return result;
  const kept = Object.fromEntries(Object.entries(meta).filter(([key]) => !key.startsWith("io.modelcontextprotocol/")));
  const { _meta: _dropped, ...rest } = result;
  return Object.keys(kept).length === 0 ? rest : { ...rest, _meta: kept };
}

/** `exposedName` is `<server>__<tool>`, as failures name the tool to the agent. */
export function relayedResult(redactor: Redactor, forwarded: Forwarded, exposedName: string, maxResultBytes = MAX_RESULT_BYTES): RelayedResult {
  let result: CallToolResult;
  let failure: string | undefined;
  try {
    if (!forwarded.ok) throw forwarded.error;
    result = withoutProtocolMeta(redactor.value(forwarded.raw));
  } catch (error) {
    failure = redactor.text((error as Error).message ?? String(error)).slice(0, MAX_FAILURE_TEXT);
    result = errorResult(`perimeter: ${exposedName} failed: ${failure}`);
  }
  let resultBytes = Buffer.byteLength(JSON.stringify(result));
  if (resultBytes > maxResultBytes) {
    failure = `the result was ${resultBytes} bytes, more than the ${maxResultBytes} the guard relays`;
    result = errorResult(`perimeter: ${exposedName}: ${failure}`);
    resultBytes = Buffer.byteLength(JSON.stringify(result));
  }
  return { result, failure, resultBytes };
}
