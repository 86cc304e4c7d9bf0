// The shape of perimeter.yaml. Every object is strict (an unknown key is an error with a suggestion), secrets are
// names of environment variables, and each refinement says why the rule exists. Defaults are the secure choice and
// carry the reason in a comment, so `perimeter schema` and the README show them.
import { z } from "zod";
import { RE2 } from "re2-wasm";
import { isIP } from "node:net";
import { SECRET_NAME, literalCredentialIn, secretShapeIn } from "./secrets.ts";
import { parseHostRule } from "./hosts.ts";
import { describeUnpriced, pricingFix, unpricedProvidersFor } from "./llm-models.ts";

// ---------------------------------------------------------------------------------------------------------------
// Scalars

/** A variable name to suggest for a pasted secret of a recognised shape (the suggestion should fit what was pasted). */
const SUGGESTED_SECRET_NAME: Readonly<Record<string, string>> = {
  "OpenAI-style API key": "OPENAI_API_KEY",
  "Anthropic API key": "ANTHROPIC_API_KEY",
  "GitHub token": "GITHUB_TOKEN",
  "Slack token": "SLACK_BOT_TOKEN",
  "Telegram bot token": "TELEGRAM_BOT_TOKEN",
  "AWS access key id": "AWS_ACCESS_KEY_ID",
  "Google API key": "GOOGLE_API_KEY",
  "Discord bot token": "DISCORD_BOT_TOKEN",
};

/** The Hermes image tag Perimeter was verified against (src/render/hermes-sources.ts), suggested for a ':latest'. */
const VERIFIED_HERMES_TAG = "v2026.7.1";

const secretName = z
  .string()
  .superRefine((value, context) => {
    if (SECRET_NAME.test(value)) return;
    const shape = secretShapeIn(value);
    context.addIssue({
      code: "custom",
      message:
        shape !== undefined || value.length > 24
          ? `this looks like a literal secret${shape !== undefined ? ` (${shape})` : ""}: write the NAME of an environment variable (e.g. ${SUGGESTED_SECRET_NAME[shape ?? ""] ?? "MY_SERVICE_TOKEN"}) and put the value in that variable or Secret key`
          : `"${value}" is not an environment variable name: use upper case letters, digits and underscores (e.g. TELEGRAM_BOT_TOKEN)`,
    });
  })
  .describe("Name of an environment variable / Secret key holding the value. Never the value itself.");

/** A DNS-1123 label; `<name>-sandbox` must still fit in 63 characters. */
const resourceName = z
  .string()
  .regex(/^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/, "use 1-40 lower-case letters, digits and '-', starting with a letter (a Kubernetes name)");

/** A key of `mcp.servers` / `llm.providers`: becomes part of tool names (`<server>__<tool>`) and resource names. */
const componentName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,30}$/, "use 1-31 lower-case letters, digits and '-', starting with a letter");

export const imageReference = z
  .string()
  .superRefine((value, context) => {
    // Pinning matters: Hermes' defaults move between releases, and ':latest' makes a rollout silently change them.
    const digest = /@sha256:[a-f0-9]{64}$/.test(value);
    const lastSegment = value.slice(value.lastIndexOf("/") + 1);
    const tag = lastSegment.includes(":") ? lastSegment.slice(lastSegment.indexOf(":") + 1).replace(/@.*$/, "") : undefined;
    if (!/^[a-z0-9][a-z0-9._\-/:@]*$/.test(value)) {
      context.addIssue({ code: "custom", message: `"${value}" is not an image reference (registry/name:tag or name@sha256:...)` });
    } else if (tag === "latest") {
      const name = value.replace(/:latest$/, "");
      const example = name.endsWith("hermes-agent") ? `${name}:${VERIFIED_HERMES_TAG}, the release Perimeter was verified against` : `${name}:<the version you run>`;
      context.addIssue({ code: "custom", message: `":latest" is refused: pin a version tag (e.g. ${example}) or a digest so upgrades are deliberate` });
    } else if (!digest && (tag === undefined || tag === "")) {
      context.addIssue({ code: "custom", message: `"${value}" has no tag: pin a version tag or an @sha256 digest so upgrades are deliberate` });
    }
  })
  .describe("Container image with a version tag or digest; ':latest' and untagged images are refused.");

const hostPort = z
  .string()
  .superRefine((value, context) => {
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
    const port = match === null ? NaN : Number(match[3]);
    if (match === null || !(port >= 0 && port <= 65535)) {
      context.addIssue({ code: "custom", message: `"${value}" is not HOST:PORT (write 127.0.0.1:8700, or [::1]:8700 for IPv6)` });
    } else if (port === 0) {
      // Another component (the agent, mcp-guard, the approvals CLI, Prometheus) is configured to reach this address,
      // so a port the kernel picks at each start could never be found. Tests pass --listen HOST:0 instead.
      context.addIssue({ code: "custom", message: `"${value}": port 0 (a free port picked at each start) cannot be reached by the components configured to call this service; choose a fixed port, or pass --listen ${match[1] === undefined ? match[2] : `[${match[1]}]`}:0 on the command line for a test` });
    }
  })
  .describe("Listen address HOST:PORT with a fixed port (not 0); IPv6 in brackets.");

const cidr = z.string().superRefine((value, context) => {
  const [address, bits, extra] = value.split("/");
  const family = isIP(address ?? "");
  const max = family === 4 ? 32 : 128;
  if (family === 0 || extra !== undefined || bits === undefined || !/^\d{1,3}$/.test(bits) || Number(bits) > max) {
    context.addIssue({ code: "custom", message: `"${value}" is not a CIDR block (write 10.43.0.0/16 or fd00::/8)` });
  }
});

/** A Service's ClusterIP, written as a plain address: a name would need the very DNS these addresses replace. */
const serviceIP = z.string().refine((value) => isIP(value) !== 0, {
  error: (issue) => `"${String(issue.input)}" is not an IP address: write a free address of the cluster's Service CIDR, e.g. 10.43.0.240 (k3s) or 10.96.0.240 (kubeadm)`,
});

const quantity = z.string().regex(/^\d+(\.\d+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/, "use a Kubernetes quantity such as 500m, 512Mi or 5Gi");

const hostRule = z
  .union([
    z.string(),
    z.strictObject({
      host: z.string(),
      ports: z.array(z.number().int().min(1).max(65535)).min(1).optional().describe("@default [443]"),
      allowCidr: z.array(cidr).optional().describe("Addresses this rule may reach despite the SSRF deny set (e.g. an in-cluster range)."),
      requireSni: z.boolean().default(true).describe("Refuse CONNECT to 443 whose TLS SNI is missing or differs. @default true"),
    }),
  ])
  .superRefine((value, context) => {
    const parsed = typeof value === "string" ? parseHostRule(value) : parseHostRule(value.host, value.ports);
    if (!parsed.ok) context.addIssue({ code: "custom", message: parsed.reason });
  });
export type HostRuleInput = z.infer<typeof hostRule>;

// ---------------------------------------------------------------------------------------------------------------
// agent

const platform = z.strictObject({
  allowedUsers: z
    .array(z.union([z.string(), z.number()]).transform(String))
    .min(1, "an empty allowlist lets anyone who finds the bot drive the agent: list the user ids allowed to talk to it")
    .superRefine((users, context) => {
      for (const user of users) {
        if (user === "*" || user.toLowerCase() === "all") {
          context.addIssue({ code: "custom", message: `"${user}" allows every user: a bot token is effectively public, so list the user ids explicitly` });
        }
      }
    }),
  tokenSecret: secretName.describe("Environment variable holding the platform's bot token."),
  extraSecrets: z.array(secretName).default([]).describe("Further variables this platform needs (e.g. SLACK_APP_TOKEN)."),
});

const agent = z.strictObject({
  image: imageReference.default(`nousresearch/hermes-agent:${VERIFIED_HERMES_TAG}`),
  platforms: z.partialRecord(z.enum(["telegram", "discord", "slack", "whatsapp", "signal", "matrix", "mattermost", "email"]), platform).default({}),
  data: z
    .strictObject({
      size: quantity.default("5Gi"),
      storageClass: z.string().optional().describe("Prefer an encrypted storage class: /opt/data holds keys, memories and sessions."),
    })
    .prefault({}),
  terminal: z
    .enum(["sandbox", "in-pod"])
    .default("sandbox")
    .describe("sandbox: shell runs in disposable sandboxes behind mcp-guard (Hermes' own terminal tools are off). in-pod: Hermes' local backend inside its pod. @default sandbox"),
  approvals: z
    .string()
    .default("manual")
    .superRefine((value, context) => {
      if (value === "off" || value === "yolo") {
        context.addIssue({ code: "custom", message: `approvals "${value}" lets a prompt-injected agent run anything unasked: use manual (or smart)` });
      } else if (value !== "manual" && value !== "smart") {
        context.addIssue({ code: "custom", message: `approvals must be manual or smart, not "${value}"` });
      }
    })
    .transform((value) => value as "manual" | "smart")
    .describe("Hermes' own approvals.mode; 'off' is refused. @default manual"),
  cronApprovals: z.enum(["deny", "approve"]).default("deny").describe("Hermes approvals.cron_mode. @default deny"),
  allowPrivateUrls: z
    .literal(false, { error: "allow_private_urls: true lets prompt-injected URLs reach private services; leave it false and reach internal services through mcp-guard" })
    .default(false),
  websiteBlocklist: z.array(z.string()).default([]),
  apiServer: z
    .strictObject({
      enabled: z.boolean().default(false),
      port: z.number().int().min(1).max(65535).default(8642),
      keySecret: secretName.optional().describe("API_SERVER_KEY; required when enabled (an empty key accepts every request)."),
    })
    .prefault({})
    .superRefine((value, context) => {
      if (value.enabled && value.keySecret === undefined) {
        context.addIssue({ code: "custom", path: ["keySecret"], message: "an enabled API server without a key accepts every request: set keySecret (e.g. HERMES_API_SERVER_KEY)" });
      }
    }),
  dashboard: z
    .strictObject({
      enabled: z.boolean().default(false),
      port: z.number().int().min(1).max(65535).default(9119),
    })
    .prefault({}),
  resources: z
    .strictObject({
      requests: z.strictObject({ cpu: quantity, memory: quantity }).default({ cpu: "250m", memory: "512Mi" }),
      limits: z.strictObject({ cpu: quantity, memory: quantity }).default({ cpu: "2", memory: "2Gi" }),
    })
    .prefault({}),
});

// ---------------------------------------------------------------------------------------------------------------
// llm

const provider = z
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

const llm = z.strictObject({
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

// ---------------------------------------------------------------------------------------------------------------
// mcp

// Roots of the `path` constraint: "." or an absolute path spelled one way only, so a prefix test on segments is exact.
const argumentPathRoot = z.string().refine(
  (root) =>
    root === "." ||
    (root.startsWith("/") && !/[\\%\p{Cc}\p{Cf}]/u.test(root) && (root === "/" || root.split("/").slice(1).every((segment) => segment !== "" && segment !== "." && segment !== ".."))),
  { message: 'a path root (under) is "." (relative to the upstream\'s own directory) or a clean absolute path such as /work: no trailing /, no //, . or .. segments, backslashes or %' },
);

const argumentConstraint = z
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
        new RE2(value.pattern, "u");
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

const mcpServer = z
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

const mcp = z.strictObject({
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

// ---------------------------------------------------------------------------------------------------------------
// approvals: who decides held calls, on which channels, and how many people each tool needs

/** A Telegram user id. Usernames are refused: they can be released and claimed by someone else, ids cannot. */
const telegramUserId = z.union([z.number(), z.string()]).superRefine((value, context) => {
  const text = String(value).trim();
  if (/^@?[A-Za-z][A-Za-z0-9_]{3,31}$/.test(text)) {
    context.addIssue({ code: "custom", message: `"${text}" is a username: usernames can change hands, so list the numeric user id (the approver bot logs the id of anyone who sends it /start)` });
  } else if (/^-\d+$/.test(text)) {
    context.addIssue({ code: "custom", message: `${text} is a group or channel id: approvers are people, list each one's numeric user id` });
  } else if (!/^[1-9]\d{0,15}$/.test(text) || (typeof value === "number" && !Number.isSafeInteger(value))) {
    context.addIssue({ code: "custom", message: `"${text}" is not a Telegram user id: write the number (e.g. 123456789)` });
  }
}).transform((value) => String(value).trim());

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

const telegramApprover = z
  .strictObject({
    tokenSecret: secretName.describe("Environment variable holding the approver bot's token: a bot of its own, never the agent's (the agent holds that token and could read or answer the buttons itself)."),
    approvers: z
      .array(telegramUserId)
      .min(1, "list the numeric Telegram user ids allowed to approve: with none, nobody could decide on the phone")
      .describe("Numeric Telegram user ids of the people who may decide; each must have sent /start to the bot once. Usernames are refused."),
    apiRoot: z
      .url()
      .default("https://api.telegram.org")
      .superRefine((value, context) => {
        const url = new URL(value);
        if (url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOST.test(url.host.replace(/:\d+$/, "")))) return;
        context.addIssue({ code: "custom", message: `"${value}": the bot token travels in every request path, so use https (http only to a Bot API server on loopback)` });
      })
      .describe("Bot API root (a self-hosted Bot API server, or a stand-in in tests). @default https://api.telegram.org"),
    proxy: z
      .url({ protocol: /^http$/ })
      .optional()
      .describe("The egress proxy the bot's requests go through (e.g. http://127.0.0.1:3128); perimeter up fills in its own. @default none: direct"),
    proxyTokenSecret: secretName.optional().describe("Token of the bot's egress.clients entry, sent to the proxy as Proxy-Authorization."),
  })
  .describe("The Telegram approver bot (issue 19): held calls and definition reviews go to the approvers' chats with Approve / Deny buttons.");

const approvalTool = z.union([
  z.string(),
  z.strictObject({
    tool: z.string().describe("A `<server>__<tool>` glob."),
    approvers: z
      .number()
      .int()
      .min(1)
      .max(10)
      .default(1)
      .describe("Distinct people who must approve each call (the two-person rule: 2); any deny ends it. The admin token counts as one person, each Telegram approver as one. @default 1"),
  }),
]);

// ---------------------------------------------------------------------------------------------------------------
// backup (perimeter backup create|verify|restore)

const backupPath = z
  .string()
  .refine((value) => value.startsWith("/"), { message: "use an absolute path: the backup timer runs from /, where a relative path would name another place" });

/** True when `path` is `directory` or lies inside it (both absolute). */
function pathWithin(path: string, directory: string): boolean {
  const trimmed = directory.replace(/\/+$/, "");
  return path === trimmed || path.startsWith(`${trimmed}/`);
}

const ageRecipient = z.string().superRefine((value, context) => {
  if (/^AGE-SECRET-KEY-/i.test(value)) {
    context.addIssue({ code: "custom", message: "this is an age identity (a secret key), not a recipient: write its public key (age-keygen -y FILE prints it) and keep the identity off this host" });
  } else if (!/^age1[02-9ac-hj-np-z]{20,}$/.test(value)) {
    context.addIssue({ code: "custom", message: `"${value}" is not an age public key: write one as printed by age-keygen (age1…)` });
  }
});

const backupSection = z
  .strictObject({
    dataDirectory: backupPath.describe("The agent's data directory to back up (Hermes' ~/.hermes, e.g. /var/lib/hermes/.hermes)."),
    directory: backupPath.default("/var/backups/perimeter").describe("Where archives are written (created 0700). @default /var/backups/perimeter"),
    recipients: z
      .array(ageRecipient)
      .min(1, "list at least one age public key (age1…) to encrypt backups to: they hold the agent's secrets, memory and sessions")
      .describe("age public keys the archives are encrypted to; keep the matching identities off this host."),
    identityFile: backupPath
      .optional()
      .describe("age identity file used by verify and restore when -i is not given. Better kept off this host: whoever reads it opens every backup."),
    keep: z.number().int().min(1).max(1000).default(7).describe("Archives kept in directory; older ones are removed after each create. @default 7"),
    auditLog: z.boolean().default(true).describe("Include a consistent snapshot of audit.path. @default true"),
  })
  .superRefine((value, context) => {
    if (pathWithin(value.directory, value.dataDirectory)) {
      context.addIssue({ code: "custom", path: ["directory"], message: "the backup directory is inside the data directory: the agent could delete or replace its own backups; choose a directory outside it" });
    }
    if (value.identityFile !== undefined && pathWithin(value.identityFile, value.dataDirectory)) {
      context.addIssue({ code: "custom", path: ["identityFile"], message: "the identity is inside the data directory: the agent could read the key to every backup, and each backup would carry its own key; keep it elsewhere (best off this host)" });
    }
    if (value.identityFile !== undefined && pathWithin(value.identityFile, value.directory)) {
      context.addIssue({ code: "custom", path: ["identityFile"], message: "the identity is next to the archives it opens, which then protects nothing; keep it elsewhere (best off this host)" });
    }
  });

// ---------------------------------------------------------------------------------------------------------------
// sandbox, egress, approvals, audit, kubernetes

const sandbox = z.strictObject({
  backend: z.enum(["kubernetes", "bubblewrap"]).default("bubblewrap"),
  listen: hostPort.default("127.0.0.1:8701"),
  tokenSecret: secretName.default("PERIMETER_SANDBOX_TOKEN").describe("Bearer token mcp-guard uses to call the sandbox runner."),
  image: imageReference
    .optional()
    .describe("The image every sandbox task runs in, on the kubernetes backend (a Job per task). The bubblewrap backend (Compose, vps, perimeter up) runs tasks on the runner's own /usr, so render refuses it there. Unset on kubernetes: python:3.12-slim."),
  runtimeClassName: z.string().optional(),
  limits: z
    .strictObject({
      cpu: quantity.default("1"),
      memory: quantity.default("1Gi"),
      pids: z.number().int().min(8).max(32768).default(256),
      disk: quantity.default("1Gi"),
      timeoutSeconds: z.number().int().min(1).max(86400).default(300),
    })
    .prefault({}),
  network: z
    .union([z.literal("none"), z.strictObject({ allow: z.array(hostRule).min(1) })])
    .default("none")
    .describe("none (default): no network at all. { allow: [...] }: only the egress proxy, with this allowlist."),
  concurrency: z.number().int().min(1).max(256).default(4),
});

const egressClient = z.strictObject({
  name: componentName,
  tokenSecret: secretName.optional().describe("Proxy-Authorization Basic/Bearer token of this client."),
  sources: z.array(cidr).default([]).describe("Source addresses identifying this client."),
  allow: z.array(hostRule).default([]),
});

const egress = z.strictObject({
  listen: hostPort.default("127.0.0.1:3128"),
  metrics: hostPort.optional(),
  allow: z.array(hostRule).default([]).describe("Rules for every client."),
  clients: z.array(egressClient).default([]),
  unknownClients: z.enum(["deny", "global"]).default("deny").describe("Policy for clients no entry identifies. @default deny"),
  limits: z
    .strictObject({
      tunnelsPerClient: z.number().int().min(1).default(256),
      tunnelsTotal: z.number().int().min(1).default(4096),
      requestsPerSecondPerClient: z.number().min(0.1).default(50),
      idleTimeoutSeconds: z.number().min(1).default(300),
      headerTimeoutSeconds: z.number().min(1).default(10),
      maxHeaderBytes: z.number().int().min(1024).max(1048576).default(16384),
      tunnelLifetimeSeconds: z.number().min(1).default(3600),
      connectTimeoutSeconds: z.number().min(1).default(10).describe("Give up dialling an upstream after this long (504). @default 10"),
    })
    .prefault({}),
  auditPath: z.string().optional(),
  auditBeforeForwarding: z
    .boolean()
    .default(false)
    .describe(
      "true: nothing reaches an origin before its decision is committed to the audit log (one commit, about 0.1 ms on a quiet machine, added to every request). false (default): the request goes out while its record commits, and the answer is held until the commit; after a failed commit the proxy works as with true until the log accepts writes again. @default false",
    ),
});

// ---------------------------------------------------------------------------------------------------------------
// host: the VPS target (render -t vps) — SSH, firewall and the agent's system user on one Linux host (seed 004)

const linuxUserName = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "use a Linux user name: lower-case letters, digits, '_' and '-', starting with a letter or '_'");
const absolutePath = z.string().regex(/^\/[A-Za-z0-9._\/-]*$/, "use an absolute path of letters, digits, '.', '_', '-' and '/' (it is written into systemd units)");
const systemdSpan = z.string().regex(/^\d+(us|ms|s|m|min|h|d|w|month|y)$/, "use a systemd time span such as 10m, 1h or 1month");

/** The widest source range SSH may be opened to without `allowPublic`: shorter prefixes are most of the internet. */
export const HOST_PUBLIC_PREFIX = { 4: 8, 6: 16 } as const;

/** True when a CIDR admits most of the internet (e.g. 0.0.0.0/0, ::/0, 0.0.0.0/1). */
export function isInternetWideCidr(value: string): boolean {
  const [address, bits] = value.split("/");
  const family = isIP(address ?? "");
  if (family === 0 || bits === undefined) return false;
  return Number(bits) < HOST_PUBLIC_PREFIX[family === 4 ? 4 : 6];
}

const hostSection = z
  .strictObject({
    ssh: z.strictObject({
      port: z.number().int().min(1).max(65535).default(22),
      adminUsers: z
        .array(linuxUserName)
        .min(1, "name the admin account(s) that log in over SSH (sshd AllowUsers): without one every account could, or nobody could")
        .refine((users) => !users.includes("root"), { message: "root is refused: log in as an admin user and use sudo (PermitRootLogin no)" })
        .describe("Accounts allowed to log in over SSH (AllowUsers), keys only."),
      adminCidrs: z.array(cidr).default([]).describe("Source ranges allowed to reach SSH (static admin IP, VPN or bastion)."),
      tailscale: z.boolean().default(false).describe("Allow SSH arriving on the tailscale0 interface. @default false"),
      allowPublic: z
        .boolean()
        .default(false)
        .describe("Accept an internet-wide SSH range (e.g. 0.0.0.0/0); fail2ban must then stay enabled. @default false"),
    }),
    agent: z
      .strictObject({
        mode: z
          .enum(["native", "container"])
          .default("native")
          .describe("native: Hermes from a virtualenv as the agent user under a hardened unit. container: the official image with host networking, ports bound to loopback. @default native"),
        user: linuxUserName.default("hermes").describe("The agent's dedicated system user: no SSH key, no sudo, no login shell. @default hermes"),
        uid: z
          .number()
          .int()
          .min(1000)
          .max(59999)
          .default(10000)
          .describe("Fixed uid of the agent user: the firewall's second wall matches it (and the official image runs as 10000). @default 10000"),
        home: absolutePath.default("/var/lib/hermes").describe("The agent user's home; Hermes' data directory is <home>/.hermes (0700). @default /var/lib/hermes"),
        installDir: absolutePath
          .default("/opt/hermes-agent")
          .describe("native: Hermes' checkout with its virtualenv in venv/, owned by root so the agent cannot rewrite its own code. @default /opt/hermes-agent"),
      })
      .prefault({}),
    perimeterExecutable: absolutePath.default("/usr/local/bin/perimeter").describe("The perimeter command the units run (Node 24). @default /usr/local/bin/perimeter"),
    firewall: z
      .strictObject({
        outboundAllow: z
          .array(
            z.strictObject({
              cidr,
              ports: z.array(z.number().int().min(1).max(65535)).min(1).default([443]),
              protocol: z.enum(["tcp", "udp"]).default("tcp"),
            }),
          )
          .optional()
          .describe("When set, the whole host may open new outbound connections only to these (list DNS resolvers, NTP, package mirrors and providers too). @default unset: outbound open except for the agent"),
      })
      .prefault({}),
    fail2ban: z
      .strictObject({
        enabled: z.boolean().default(true),
        maxRetry: z.number().int().min(1).max(100).default(5),
        findTime: systemdSpan.default("10m"),
        banTime: systemdSpan.default("1h"),
      })
      .prefault({}),
    updates: z
      .strictObject({
        automaticReboot: z.boolean().default(false).describe("Reboot after an update that needs it (at rebootTime). @default false"),
        rebootTime: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "use HH:MM").default("04:00"),
      })
      .prefault({}),
    journal: z
      .strictObject({
        maxUse: z.string().regex(/^\d+[KMG]$/, "use a size such as 500M or 1G").default("1G"),
        retention: systemdSpan.default("1month"),
      })
      .prefault({}),
  })
  .superRefine((value, context) => {
    const ssh = value.ssh;
    if (ssh.adminCidrs.length === 0 && !ssh.tailscale) {
      context.addIssue({
        code: "custom",
        path: ["ssh"],
        message: "no admin access path: SSH would be closed to everyone. List your static IP, VPN or bastion range in host.ssh.adminCidrs (e.g. 203.0.113.7/32), or set host.ssh.tailscale: true and reach SSH over Tailscale",
      });
    }
    ssh.adminCidrs.forEach((range, index) => {
      if (isInternetWideCidr(range) && !ssh.allowPublic) {
        context.addIssue({
          code: "custom",
          path: ["ssh", "adminCidrs", index],
          message: `${range} opens SSH to most of the internet: use your static IP/VPN range or Tailscale, or set host.ssh.allowPublic: true to accept public SSH (fail2ban then stays on)`,
        });
      }
    });
    if (ssh.adminCidrs.some(isInternetWideCidr) && ssh.allowPublic && !value.fail2ban.enabled) {
      context.addIssue({ code: "custom", path: ["fail2ban", "enabled"], message: "public SSH (allowPublic) needs fail2ban against brute force: set host.fail2ban.enabled: true" });
    }
    if (value.agent.mode === "container" && value.agent.uid !== 10000) {
      context.addIssue({ code: "custom", path: ["agent", "uid"], message: "the official Hermes image runs the gateway as uid 10000, which the firewall's agent rule matches: leave host.agent.uid at 10000 in container mode" });
    }
    if (value.agent.uid === 65532) {
      context.addIssue({ code: "custom", path: ["agent", "uid"], message: "65532 is the perimeter services' uid in the image: give the agent its own uid" });
    }
  });

// The dashboard: approvals, reviews, the audit log and health in a browser (src/dashboard).
const dashboardSource = z
  .strictObject({
    name: componentName,
    path: z.string().optional().describe("An audit database this dashboard can read (a file, opened read-only)."),
    url: z
      .string()
      .regex(/^https?:\/\/[^/?#]+$/, "url is a service's admin origin, e.g. http://mcp-guard:8710 (no path)")
      .optional()
      .describe("A service's admin listener serving its audit records read-only (GET /v1/audit/records, /v1/audit/head) with the admin token."),
  })
  .refine((source) => (source.path === undefined) !== (source.url === undefined), { message: "a dashboard source has either path (a local audit database) or url (a service's admin listener), not both or neither" });

const dashboardSection = z.strictObject({
  listen: hostPort.default("127.0.0.1:8720").describe("Where the dashboard serves. Keep it on loopback (reach it over SSH or kubectl port-forward). @default 127.0.0.1:8720"),
  sessionMinutes: z.number().int().min(5).max(1440).default(480).describe("How long a session cookie lasts after logging in with the admin token. @default 480"),
  statePath: z.string().optional().describe("The dashboard's own search index of the audit records (rebuilt from the logs when deleted). @default dashboard.db beside audit.path"),
  sources: z
    .array(dashboardSource)
    .default([])
    .describe("Audit logs to show. @default audit.path alone (perimeter up: every service shares it); a rendered deployment lists each component's own log."),
  health: z.record(z.string(), z.string().regex(/^https?:\/\/\S+$/, "a health URL is http(s)://HOST:PORT/healthz")).default({}).describe("Service name to its /healthz URL. @default derived from the config's listen addresses"),
  adminUrl: z.string().regex(/^https?:\/\/[^/?#]+$/, "adminUrl is the mcp-guard admin origin, e.g. http://127.0.0.1:8710").optional().describe("The mcp-guard admin API the dashboard decides through. @default http://mcp.admin.listen"),
  allowedHosts: z.array(z.string()).default([]).describe("Host names besides loopback and the listen address the browser may use (DNS-rebinding protection)."),
  tls: z.strictObject({ certFile: z.string(), keyFile: z.string() }).optional().describe("Serve HTTPS with this certificate (the session cookie is then Secure and __Host- prefixed)."),
});

const config = z
  .strictObject({
    version: z.literal(1, { error: "version must be 1" }),
    name: resourceName,
    agent: agent.prefault({}),
    llm: llm.prefault({}),
    mcp: mcp.prefault({}),
    sandbox: sandbox.prefault({}),
    egress: egress.prefault({}),
    approvals: z
      .strictObject({
        timeoutSeconds: z.number().int().min(1).max(86400).default(600),
        tools: z
          .array(approvalTool)
          .default([])
          .describe("Extra `<server>__<tool>` globs whose calls need approval, as a string or { tool, approvers: N } for N distinct approvers."),
        telegram: telegramApprover.optional(),
        hook: z
          .array(z.string().min(1))
          .min(1)
          .optional()
          .describe("A command (argv, no shell) run for each held call and each pending definition review, with the event as one JSON object on stdin: a page, a webhook through curl, a chat message. It gets PATH, HOME and LANG only, is killed after hookTimeoutSeconds, and its failure is logged; it never delays or changes a decision. @default none"),
        hookTimeoutSeconds: z.number().int().min(1).max(300).optional().describe("How long the hook may run before it is killed. @default 10"),
        maxReviewBytes: z
          .number()
          .int()
          .min(1024)
          .max(16777216)
          .default(262144)
          .describe("Largest redacted arguments (JSON bytes) of a held call that a reviewer is shown whole; a call needing approval with larger arguments is denied, since a human would approve what they cannot see. @default 256 KiB"),
      })
      .prefault({}),
    audit: z
      .strictObject({
        store: z.enum(["sqlite"]).default("sqlite"),
        path: z.string().default("/var/lib/perimeter/audit.db"),
        signingKeyFile: z.string().optional().describe("Ed25519 private key (PEM) for checkpoints; created on first start when absent. Unset, perimeter up writes unsigned checkpoints; a rendered deployment always signs, each component with /var/lib/perimeter/audit-signing.pem in its own state volume."),
        checkpointEvery: z.number().int().min(1).default(1000),
        feedTokenSecret: secretName
          .optional()
          .describe("Environment variable holding a read-only token for the audit feed (GET /v1/audit/head, /v1/audit/records): with it set, egress-proxy and the sandbox runner serve their records on their metrics listener, llm-proxy on its listener and mcp-guard on its admin listener, so the dashboard can copy and verify every component's chain without holding the admin token anywhere but in mcp-guard. Unset, only mcp-guard serves its records (to the admin token)."),
      })
      .prefault({}),
    backup: backupSection.optional().describe("Encrypted backups of the agent's data directory and the audit log (perimeter backup)."),
    dashboard: dashboardSection.prefault({}).describe("The operator's web dashboard (perimeter serve dashboard; started by perimeter up)."),
    kubernetes: z
      .strictObject({
        cni: z.enum(["default", "cilium"]).default("default"),
        sandboxRuntimeClass: z.string().nullable().default(null),
        externalSecrets: z.strictObject({ storeName: z.string(), storeKind: z.enum(["SecretStore", "ClusterSecretStore"]).default("ClusterSecretStore") }).optional(),
        ingressNamespace: z.string().optional().describe("Namespace of the ingress controller, when the API server or dashboard is published."),
        observability: z.strictObject({ enabled: z.boolean().default(false), namespace: z.string().default("observability") }).prefault({}),
        perimeterImage: imageReference.default("ghcr.io/perimeter-dev/perimeter:0.1.0"),
        apiServerCidr: z.string().optional().describe("Address range of the Kubernetes API server, for the runner's and k8s MCP's egress."),
        serviceIPs: z
          .strictObject({
            "mcp-guard": serviceIP,
            "llm-proxy": serviceIP,
            "egress-proxy": serviceIP,
            "egress-proxy-sandbox": serviceIP.optional().describe("Needed when sandbox.network.allow is set."),
          })
          .optional()
          .describe(
            "Fixed ClusterIPs for the Services the agent and sandbox tasks reach, free addresses in the cluster's Service CIDR. With them those pods get no DNS at all (the names are in their /etc/hosts); required unless cni is cilium, because a NetworkPolicy cannot limit DNS to some names.",
          ),
      })
      .prefault({}),
    host: hostSection.optional().describe("The VPS target (render -t vps): SSH access, firewall, updates and the agent's system user."),
  })
  .superRefine((value, context) => {
    const providers = value.llm.providers;
    const modelRef = (reference: string, path: (string | number)[]) => {
      const [providerName, ...rest] = reference.split("/");
      const model = rest.join("/");
      const found = providers[providerName ?? ""];
      if (found === undefined) {
        context.addIssue({ code: "custom", path, message: `"${reference}" names provider "${providerName}", which is not in llm.providers (${Object.keys(providers).join(", ") || "none"})` });
      } else if (!found.models.includes(model)) {
        context.addIssue({ code: "custom", path, message: `"${reference}": provider ${providerName} does not list model "${model}" (it has ${found.models.join(", ")})` });
      }
    };
    if (value.llm.default !== undefined) modelRef(value.llm.default, ["llm", "default"]);
    for (const [alias, target] of Object.entries(value.llm.aliases)) modelRef(target, ["llm", "aliases", alias]);
    for (const [name, entry] of Object.entries(providers)) {
      if (entry.failoverTo !== undefined && providers[entry.failoverTo] === undefined) {
        context.addIssue({ code: "custom", path: ["llm", "providers", name, "failoverTo"], message: `failover provider "${entry.failoverTo}" is not in llm.providers` });
      }
    }
    value.llm.clients.forEach((client, index) => {
      // A cost budget counts only priced requests: over an unpriced provider it would silently never trip.
      const costBudgets = (["costPerDay", "costTotal"] as const).filter((budget) => client.budget[budget] !== undefined);
      const unpriced = costBudgets.length === 0 ? [] : unpricedProvidersFor(value.llm, client.models);
      if (unpriced.length > 0) {
        context.addIssue({
          code: "custom",
          path: ["llm", "clients", index, "budget"],
          message: `client ${client.name} has a cost budget (${costBudgets.join(", ")}) but may use models whose spending cannot be counted: ${describeUnpriced(unpriced)}; ${pricingFix(unpriced)}, or restrict the client's models to priced providers`,
        });
      }
    });
    const servers = Object.keys(value.mcp.servers);
    const telegram = value.approvals.telegram;
    // The admin token is one person however many names its holder types; each Telegram approver is one more.
    const deciders = 1 + new Set(telegram?.approvers ?? []).size;
    value.approvals.tools.forEach((entry, index) => {
      const tool = typeof entry === "string" ? entry : entry.tool;
      if (typeof entry !== "string" && entry.approvers > deciders) {
        context.addIssue({
          code: "custom",
          path: ["approvals", "tools", index, "approvers"],
          message: `"${tool}" needs ${entry.approvers} distinct approvers but only ${deciders} can decide (the admin token counts as one, plus each approvals.telegram.approvers id): add approvers or lower the number`,
        });
      }
      const server = tool.split("__")[0] ?? "";
      if (!tool.includes("__") || !servers.some((name) => globMatches(server, name))) {
        context.addIssue({ code: "custom", path: ["approvals", "tools", index], message: `"${tool}" must be <server>__<tool> for a server in mcp.servers (${servers.join(", ") || "none defined"})` });
      }
    });
    if (telegram !== undefined) {
      // The agent holds its own platform tokens: as the approver bot's token, the agent could read the buttons' callbacks
      // and answer them itself. Its other credentials are refused for the same reason.
      const agentSecrets = new Map<string, string>();
      for (const [name, platform] of Object.entries(value.agent.platforms)) {
        if (platform === undefined) continue;
        agentSecrets.set(platform.tokenSecret, `agent.platforms.${name}.tokenSecret`);
        for (const extra of platform.extraSecrets) agentSecrets.set(extra, `agent.platforms.${name}.extraSecrets`);
      }
      for (const entry of value.mcp.agents) agentSecrets.set(entry.tokenSecret, `mcp.agents ${entry.name} tokenSecret`);
      for (const [key, name] of [["tokenSecret", telegram.tokenSecret], ["proxyTokenSecret", telegram.proxyTokenSecret]] as const) {
        const owner = name === undefined ? undefined : agentSecrets.get(name);
        if (owner !== undefined) {
          context.addIssue({
            code: "custom",
            path: ["approvals", "telegram", key],
            message: `${name} is the agent's (${owner}): the agent holds it and could read or answer the approval buttons itself; create a separate bot with @BotFather and name its token's variable here`,
          });
        }
      }
      if (new Set(telegram.approvers).size !== telegram.approvers.length) {
        context.addIssue({ code: "custom", path: ["approvals", "telegram", "approvers"], message: "an approver is listed twice: each id is one person" });
      }
    }
    const agentNames = value.mcp.agents.map((entry) => entry.name);
    if (new Set(agentNames).size !== agentNames.length) {
      context.addIssue({ code: "custom", path: ["mcp", "agents"], message: "agent names must be unique" });
    }
    if (value.agent.terminal === "sandbox" && !Object.values(value.mcp.servers).some((server) => server.builtin === "sandbox")) {
      // Not an error: render adds the sandbox server itself. Nothing to do here, but keep the rule visible.
    }
  });

export const perimeterConfigSchema = config;
export type PerimeterConfig = z.output<typeof config>;
export type PerimeterConfigInput = z.input<typeof config>;
export type McpServerConfig = z.output<typeof mcpServer>;
export type LlmProviderConfig = z.output<typeof provider>;
export type EgressConfig = z.output<typeof egress>;
export type SandboxConfig = z.output<typeof sandbox>;
export type ArgumentConstraint = z.output<typeof argumentConstraint>;
export type HostConfig = z.output<typeof hostSection>;
export type TelegramApproverConfig = z.output<typeof telegramApprover>;
export type DashboardConfig = z.output<typeof dashboardSection>;

/** `*` and `?` globs over a whole string (tool names, argument values). */
export function globMatches(pattern: string, value: string): boolean {
  const expression = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${expression}$`, "s").test(value);
}
