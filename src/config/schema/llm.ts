// llm: the providers llm-proxy forwards to, aliases, canaries and the virtual keys of its clients.
import { z } from "zod";
import { componentName, hostPort, imageReference, quantity, secretName } from "./scalars.ts";

export const provider = z
  .strictObject({
    kind: z.enum(["openai", "anthropic"]).default("openai").describe("Wire format the provider speaks. @default openai"),
    baseUrl: z.url({ protocol: /^https?$/, error: "baseUrl must be an http(s) URL such as https://api.minimax.io/v1" }),
    apiKeySecret: secretName.optional().describe("Environment variable of llm-proxy holding the provider key; never given to the agent."),
    models: z.array(z.string().min(1)).min(1, "list the models this provider serves"),
    allowPrivateAddress: z
      .boolean()
      .default(false)
      .describe("Allow a private/in-cluster address (local vLLM/Ollama). The only way past the SSRF deny set. @default false"),
    failoverTo: componentName.optional().describe("Provider to retry on 5xx or timeout."),
    timeoutSeconds: z.number().int().min(1).max(3600).default(300),
    costPer1kTokens: z
      .strictObject({ input: z.number().min(0), output: z.number().min(0) })
      .optional()
      .describe("Price per 1,000 input and output tokens, in the currency of the budgets. Without it, requests here cost 0, so a key with a cost budget (costPerDay, costTotal) that may use this provider is refused."),
    serve: z
      .strictObject({
        engine: z.enum(["vllm", "ollama"]),
        image: imageReference,
        model: z.string(),
        port: z.number().int().min(1).max(65535).optional(),
        gpus: z.number().int().min(0).default(0),
        resources: z.strictObject({ cpu: quantity, memory: quantity }).default({ cpu: "4", memory: "16Gi" }),
      })
      .optional()
      .describe("Serve this model in the <name>-llm namespace (Kubernetes target)."),
  })
  .superRefine((value, context) => {
    if (value.baseUrl.startsWith("http://") && !value.allowPrivateAddress) {
      context.addIssue({ code: "custom", path: ["baseUrl"], message: "plain http is only for in-cluster providers: use https, or set allowPrivateAddress: true for a local vLLM/Ollama service" });
    }
  });

export const llm = z.strictObject({
  listen: hostPort.default("127.0.0.1:8702"),
  providers: z.record(componentName, provider).default({}),
  default: z.string().optional().describe("provider/model used for the alias 'default'."),
  aliases: z.record(z.string(), z.string()).default({}),
  canaries: z.array(secretName).default([]).describe("Environment variables whose values must never leave in a prompt."),
  dlp: z.strictObject({ mode: z.enum(["redact", "block"]).default("redact") }).prefault({}),
  keysPath: z.string().optional().describe("Where virtual keys and usage are stored. @default the audit database"),
  clients: z
    .array(
      z.strictObject({
        name: componentName,
        keySecret: secretName.describe("Variable holding this client's virtual key (the agent gets the same value); stored hashed."),
        models: z.array(z.string()).default(["*"]).describe("provider/model globs or aliases this client may use."),
        limits: z
          .strictObject({
            requestsPerMinute: z.number().min(1).optional(),
            tokensPerMinute: z.number().min(1).optional(),
          })
          .prefault({}),
        budget: z
          .strictObject({
            tokensPerDay: z.number().int().min(1).optional(),
            tokensTotal: z.number().int().min(1).optional(),
            costPerDay: z.number().min(0).optional(),
            costTotal: z.number().min(0).optional(),
          })
          .prefault({}),
      }),
    )
    .default([])
    .describe("Virtual keys declared in config (keys created with `perimeter llm-keys create` live in the database)."),
});
