// Secrets are referenced by the name of an environment variable (or Secret key), never written in perimeter.yaml.
// This module knows what a reference looks like, what a pasted credential looks like, and how `${VAR}` placeholders
// expand. Only config/ reads the environment (STYLE.md); services receive values through these helpers.
// errors.ts directly, not shared/index.ts: the CLI fast path (--version, help) must load no package (pino).
import { PerimeterError } from "../shared/errors.ts";

/** An environment variable / Secret key name: upper case, digits and underscores, not starting with a digit. */
export const SECRET_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** `${VAR}` placeholders as Hermes and our config write them. */
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Shapes of credentials people paste by mistake. Each names the kind so that an error can say what it saw without
 * echoing the value. Kept conservative: a false positive here refuses a config, so every shape is specific.
 * Anchors (issue 12): `\b` treats `_` as a word character, so `token_ghp_…` or `…/bot123456:AA…` slipped through.
 * A prefix no word contains (ghp_, xoxb-, AIza, eyJ…eyJ, -----BEGIN) has no left anchor at all; one that ends
 * common words (`risk-`, `task-`, `ASIA`) must not follow a letter or digit, and may follow `_` or punctuation.
 * Right anchors only where the length is the signal (Telegram's 35, AWS's 20).
 */
export const SECRET_SHAPES: ReadonlyArray<{ kind: string; pattern: RegExp }> = [
  { kind: "OpenAI-style API key", pattern: /(?<![A-Za-z0-9])sk-(?:proj-|ant-|or-v1-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}/ },
  { kind: "Anthropic API key", pattern: /(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9_-]{20,}/ },
  { kind: "GitHub token", pattern: /gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}/ },
  { kind: "Slack token", pattern: /xox[abposr]-[A-Za-z0-9-]{10,}/ },
  { kind: "Telegram bot token", pattern: /(?<![0-9])[0-9]{6,12}:[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])/ },
  { kind: "AWS access key id", pattern: /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/ },
  { kind: "Google API key", pattern: /AIza[0-9A-Za-z_-]{35}/ },
  { kind: "JSON Web Token", pattern: /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/ },
  // The whole block, header to footer, not only the header: a redactor that removes the header alone sends the key
  // itself. A block cut off before its footer runs to the end of the text, or to a quote (with any backslashes
  // before it): a key never holds one, and inside JSON text (tool-call arguments) the quote ends the string, which
  // must stay valid. PGP's footer says "PRIVATE KEY BLOCK".
  { kind: "PEM private key", pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|(?=\\*")|$)/ },
  { kind: "Discord bot token", pattern: /(?<![A-Za-z0-9])[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}/ },
];

/** The kind of credential a string contains, if it looks like one; `undefined` otherwise. */
export function secretShapeIn(value: string): string | undefined {
  for (const { kind, pattern } of SECRET_SHAPES) if (pattern.test(value)) return kind;
  return undefined;
}

/** Names referenced by `${VAR}` placeholders in a string, in order of appearance. */
export function placeholdersIn(value: string): string[] {
  return [...value.matchAll(PLACEHOLDER)].map((match) => match[1] as string);
}

/**
 * A header value that carries a credential must take it from a placeholder: `Bearer ${GITHUB_TOKEN}` is fine,
 * `Bearer abc123...` is a pasted secret. Returns a reason when the value is a literal credential.
 */
export function literalCredentialIn(headerName: string, value: string): string | undefined {
  const shape = secretShapeIn(value);
  if (shape !== undefined) return `it contains what looks like a ${shape}`;
  const credentialHeader = /^(authorization|proxy-authorization|x-api-key|api-key|x-auth-token|cookie)$/i.test(headerName);
  if (credentialHeader && placeholdersIn(value).length === 0) return `the ${headerName} header must take its credential from a \${VAR} placeholder`;
  return undefined;
}

/** A secret a component needs, and what for (named in the error when it is missing). */
export interface SecretNeed {
  name: string;
  usedFor: string;
}

export class MissingSecretError extends PerimeterError {
  /** The first missing variable. */
  readonly secretName: string;
  /** Every missing variable, so the operator sets them all in one round instead of one per failed start. */
  readonly secretNames: readonly string[];
  constructor(secretName: string | readonly SecretNeed[], usedFor = "") {
    const missing = typeof secretName === "string" ? [{ name: secretName, usedFor }] : secretName;
    const first = missing[0]?.name ?? "";
    super(
      "missing_secret",
      missing.length === 1
        ? `${missing[0]?.usedFor} needs the environment variable ${first}; set it (or create the Secret key ${first}) before starting.`
        : `${missing.length} environment variables are missing; set each (or create the Secret key of the same name) before starting:\n${missing.map((need) => `  ${need.name}: ${need.usedFor}`).join("\n")}`,
    );
    this.secretName = first;
    this.secretNames = missing.map((need) => need.name);
  }
}

export type Environment = Readonly<Record<string, string | undefined>>;

/** Throws one MissingSecretError naming every unset variable among `needs` (each once, with all its uses). */
export function requireSecrets(environment: Environment, needs: Iterable<SecretNeed>): void {
  const missing = new Map<string, string[]>();
  for (const need of needs) {
    const value = environment[need.name];
    if (value !== undefined && value !== "") continue;
    const uses = missing.get(need.name) ?? [];
    if (!uses.includes(need.usedFor)) uses.push(need.usedFor);
    missing.set(need.name, uses);
  }
  if (missing.size > 0) throw new MissingSecretError([...missing].map(([name, uses]) => ({ name, usedFor: uses.join("; ") })));
}

/**
 * The audit feed's read-only token, when audit.feedTokenSecret names one: a need of every service that serves its
 * audit feed, and of the dashboard that reads them, so that its absence is reported with the service's other needs.
 */
export function feedTokenNeeds(audit: { readonly feedTokenSecret?: string | undefined }, usedFor = "audit.feedTokenSecret (the read-only token of the audit feed)"): SecretNeed[] {
  return audit.feedTokenSecret === undefined ? [] : [{ name: audit.feedTokenSecret, usedFor }];
}

/** The value of a referenced secret; throws a message that names the variable (never a value) when it is unset. */
export function readSecret(environment: Environment, name: string, usedFor: string): string {
  const value = environment[name];
  if (value === undefined || value === "") throw new MissingSecretError(name, usedFor);
  return value;
}

/**
 * Expands `${VAR}` from the environment at connect time. Unlike Hermes (which leaves an unset placeholder literal),
 * we refuse: sending the literal text `${GITHUB_TOKEN}` upstream would only hide a misconfiguration.
 */
export function expandPlaceholders(environment: Environment, value: string, usedFor: string): string {
  return value.replace(PLACEHOLDER, (_match, name: string) => readSecret(environment, name, usedFor));
}

/** Every non-empty secret value named by `names`, for redaction. Unset names are skipped. */
export function secretValues(environment: Environment, names: Iterable<string>): string[] {
  const values = new Set<string>();
  for (const name of names) {
    const value = environment[name];
    if (value !== undefined && value.length >= 4) values.add(value);
  }
  return [...values];
}

/** The process environment, for the CLI to pass down (only config/ touches `process.env`). */
export function processEnvironment(): Environment {
  return process.env;
}
