// mcp: mcp-guard's listeners, the agents it serves, the upstream MCP servers with their tool allowlists and argument
// constraints, definition pinning and limits.
import { z } from "zod";
import { compileRe2 } from "../re2.ts";
import { literalCredentialIn, secretShapeIn } from "../secrets.ts";
import { globMatches } from "../glob.ts";
import { componentName, hostPort, imageReference, resourceName, secretName } from "./scalars.ts";

// Roots of the `path` constraint: "." or an absolute path spelled one way only, so a prefix test on segments is exact.
const argumentPathRoot = z.string().refine(
  (root) =>
    root === "." ||
    (root.startsWith("/") && !/[\\%\p{Cc}\p{Cf}]/u.test(root) && (root === "/" || root.split("/").slice(1).every((segment) => segment !== "" && segment !== "." && segment !== ".."))),
  { message: 'a path root (under) is "." (relative to the upstream\'s own directory) or a clean absolute path such as /work: no trailing /, no //, . or .. segments, backslashes or %' },
);

export const argumentConstraint = z
  .strictObject({
    enum: z.array(z.union([z.string(), z.number(), z.boolean(), z.null()])).min(1).optional().describe("Values allowed, compared strictly (no type coercion); list null to allow null."),
    pattern: z.string().optional().describe("Anchored regular expression (RE2 syntax, linear time) the value must match; a pattern with a / also gets the path checks."),
    glob: z.array(z.string()).min(1).optional().describe("Globs one of which the value must match: * and ? within one path segment, ** for whole segments."),
    path: z
      .strictObject({ under: z.union([argumentPathRoot, z.array(argumentPathRoot).min(1)]).describe('Absolute roots, or "." for a path relative to the upstream\'s own directory.') })
      .optional()
      .describe("The value is a path at or below one of the roots, with no . or .. segment, //, backslash or percent-encoding."),
    min: z.number().optional(),
    max: z.number().optional(),
    maxLength: z.number().int().min(0).optional(),
    required: z.boolean().default(false),
  })
  .superRefine((value, context) => {
    if (value.pattern !== undefined) {
      try {
        compileRe2(value.pattern, "u");
      } catch (error) {
        const reason = (error as Error).message.replace(/^Invalid regular expression: /, "");
        context.addIssue({
          code: "custom",
          path: ["pattern"],
          message: `RE2 cannot compile it (${reason}); patterns run in linear time so that no argument can make the guard backtrack for minutes, so backreferences and lookaround are not available: rewrite it without them, or use glob, enum or path`,
        });
      }
    }
    for (const [index, glob] of (value.glob ?? []).entries()) {
      if (glob.split("/").some((segment) => segment !== "**" && segment.includes("**"))) {
        context.addIssue({ code: "custom", path: ["glob", index], message: `"**" must be a whole path segment (write "a/**/b" for any depth, "a/*b" within one segment)` });
      }
    }
  });

const toolAnnotations = z.strictObject({
  readOnlyHint: z.boolean().optional(),
  destructiveHint: z.boolean().optional(),
  idempotentHint: z.boolean().optional(),
  openWorldHint: z.boolean().optional(),
});

export const mcpServer = z
  .strictObject({
    command: z.array(z.string()).min(1).optional().describe("stdio upstream: argv of the child process."),
    url: z.url({ protocol: /^https?$/ }).optional().describe("Streamable HTTP upstream."),
    builtin: z.enum(["kubernetes-readonly", "sandbox"]).optional().describe("A server Perimeter deploys itself."),
    image: imageReference.optional().describe("Container image running this server (Kubernetes/Compose targets)."),
    env: z.record(z.string(), z.string()).default({}).describe("Environment of a stdio child; values may use ${VAR} from the guard's environment."),
    headers: z.record(z.string(), z.string()).default({}).describe("Headers for an HTTP upstream; credentials only as ${VAR}."),
    secrets: z.array(secretName).default([]).describe("Variables this server's own Secret holds (beyond those referenced in env/headers)."),
    namespaces: z.array(resourceName).default([]).describe("kubernetes-readonly: namespaces it may read."),
    tools: z
      .strictObject({
        allow: z.array(z.string()).default([]).describe("Glob patterns of tools to expose. Deny by default."),
        approve: z.array(z.string()).default([]).describe("Tools whose calls wait for a human decision."),
        annotations: z.record(z.string(), toolAnnotations).default({}).describe("Our annotations per tool glob; upstream annotations are not trusted."),
      })
      .prefault({}),
    arguments: z.record(z.string(), z.record(z.string(), argumentConstraint)).default({}).describe("tool glob -> argument path -> constraint"),
    timeoutSeconds: z.number().int().min(1).max(3600).default(60),
  })
  .superRefine((value, context) => {
    // A builtin may carry a url (render points it at the in-cluster service); otherwise exactly one transport.
    const transports = [value.command, value.url].filter((kind) => kind !== undefined).length;
    if (value.builtin === undefined ? transports !== 1 : value.command !== undefined) {
      context.addIssue({ code: "custom", message: "give exactly one of command (stdio), url (Streamable HTTP) or builtin" });
    }
    for (const [name, headerValue] of Object.entries(value.headers)) {
      const reason = literalCredentialIn(name, headerValue);
      if (reason !== undefined) {
        context.addIssue({ code: "custom", path: ["headers", name], message: `${reason}: write "Bearer \${GITHUB_TOKEN}" and set the variable in the guard's environment` });
      }
    }
    for (const [name, envValue] of Object.entries(value.env)) {
      const shape = secretShapeIn(envValue);
      if (shape !== undefined) {
        context.addIssue({ code: "custom", path: ["env", name], message: `this looks like a literal ${shape}: write \${${name}} and set ${name} in the guard's environment` });
      }
    }
    for (const pattern of value.tools.approve) {
      if (!value.tools.allow.some((allow) => globMatches(allow, pattern) || allow === pattern)) {
        context.addIssue({ code: "custom", path: ["tools", "approve"], message: `"${pattern}" needs approval but is not in tools.allow, so it could never be called: add it to allow or remove it` });
      }
    }
    if (value.builtin === "kubernetes-readonly" && value.namespaces.length === 0) {
      context.addIssue({ code: "custom", path: ["namespaces"], message: "name the namespaces the read-only Kubernetes MCP may read (e.g. [target-app])" });
    }
  });

export const mcp = z.strictObject({
  listen: hostPort.default("127.0.0.1:8700"),
  admin: z
    .strictObject({
      listen: hostPort.default("127.0.0.1:8710"),
      tokenSecret: secretName.default("PERIMETER_ADMIN_TOKEN").describe("Bearer token of the approvals/admin API. Never given to the agent."),
    })
    .prefault({}),
  agents: z
    .array(
      z.strictObject({
        name: componentName,
        tokenSecret: secretName,
        refusals: z
          .enum(["error", "result"])
          .default("error")
          .describe(
            'How policy refusals (a tool not allowed, an argument constraint, a denied or expired approval, a limit) reach this agent: "error", an MCP tool error (isError), the protocol\'s convention; "result", a normal result whose text starts "refused by the perimeter:". Use "result" for Hermes: its MCP client counts isError results toward a circuit breaker that blocks every tool of the server for 60 s after three in a row, so three refusals would close the agent\'s only door to its tools. Outages (an upstream down, the audit log failing) are errors either way.',
          ),
      }),
    )
    .default([{ name: "hermes", tokenSecret: "PERIMETER_AGENT_TOKEN", refusals: "error" }]),
  servers: z.record(componentName, mcpServer).default({}),
  redact: z.array(z.string()).default([]).describe("Extra regular expressions to redact from results."),
  allowedHosts: z
    .array(z.string().min(1))
    .default([])
    .describe("Host names the agent may use to reach mcp-guard besides loopback names and the listen address (e.g. mcp-guard.hermes-tools.svc); any other Host or Origin is refused (DNS-rebinding protection)."),
  pinning: z
    .strictObject({
      trustOnFirstUse: z
        .boolean()
        .default(false)
        .describe("Trust the tool definitions of a server's first sync on an empty store without review. Definitions flagged for hidden instructions are quarantined regardless. @default false: every new definition waits for `perimeter approvals approve`"),
    })
    .prefault({}),
  limits: z
    .strictObject({
      concurrentCallsPerAgent: z.number().int().min(1).max(4096).default(32).describe("tools/call requests one agent may have in flight; more are refused at once. @default 32"),
      pendingApprovalsPerAgent: z.number().int().min(1).max(1000).default(16).describe("Held calls one agent may have waiting for a human; more are denied. @default 16"),
      maxRequestBytes: z.number().int().min(1024).max(16777216).default(1048576).describe("Largest request body the agent endpoint reads. @default 1 MiB"),
    })
    .prefault({}),
});
