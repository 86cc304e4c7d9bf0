// The SDK Client as the guard uses it for every upstream: one per-call cost removed (see GuardClient).
import { Client } from "@modelcontextprotocol/client";
import type { StandardSchemaV1 } from "@modelcontextprotocol/client";

type WireCodec = ReturnType<Client["_wireCodec"]>;

/**
 * The SDK Client with one cost removed from every tools/call. Without an explicit result schema, the SDK's request()
 * builds the result validator anew per call, and to do so first validates `undefined` against the method's result
 * schema (to learn whether the method exists in the era) and formats the resulting zod error: 3 % of the guard's CPU
 * in a profile. Here that validator is built once per wire codec (era), from the codec's own validateResult, and
 * passed as the schema: the same validation, the same errors, through the SDK's public request(request, schema)
 * form. Everything else (callTool's output-schema check, 2026-07-28 header mirroring, timeouts) is the SDK's.
 */
export class GuardClient extends Client {
  private readonly callToolValidators = new WeakMap<WireCodec, StandardSchemaV1>();

  constructor(...parameters: ConstructorParameters<typeof Client>) {
    super(...parameters);
    const request = Client.prototype.request;
    const validatorFor = (codec: WireCodec): StandardSchemaV1 => {
      let validator = this.callToolValidators.get(codec);
      if (validator === undefined) {
        validator = {
          "~standard": {
            version: 1,
            vendor: "mcp-wire-codec",
            validate: (value: unknown) => {
              const outcome = codec.validateResult("tools/call", value);
              return outcome.ok ? { value: outcome.value } : { issues: [{ message: outcome.reason === "invalid" ? outcome.message : "not-in-era: tools/call" }] };
            },
          },
        };
        this.callToolValidators.set(codec, validator);
      }
      return validator;
    };
    // An own property: request() is overloaded, which a subclass method cannot restate simply.
    this.request = ((message: { method: string }, schemaOrOptions?: unknown, options?: unknown) => {
      // Only once a version is negotiated: before that the SDK resolves a bootstrap codec of its own.
      if (message.method === "tools/call" && !isStandardSchema(schemaOrOptions) && this.getNegotiatedProtocolVersion() !== undefined) {
        return request.call(this, message as never, validatorFor(this._wireCodec()), schemaOrOptions as never);
      }
      return request.call(this, message as never, schemaOrOptions as never, options as never);
    }) as Client["request"];
  }
}

function isStandardSchema(value: unknown): boolean {
  return typeof value === "object" && value !== null && "~standard" in value;
}
