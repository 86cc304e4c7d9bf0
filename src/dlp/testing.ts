// Test support (not imported by product code): the inputs that attack the secret scanner, shared by the tests of the
// scanner itself, of llm-proxy (through the running proxy) and of mcp-guard's redactor, so that one scanner is seen
// to behave the same in both services. Samples are assembled at run time so that no file holds a credential-shaped
// literal.

const alnum = "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xYz";
export const repeat = (text: string, length: number): string => text.repeat(Math.ceil(length / text.length)).slice(0, length);

/** One sample per kind in SECRET_SHAPES (a new shape needs one: the tests check). */
export const SHAPE_SAMPLES: Readonly<Record<string, string>> = {
  "OpenAI-style API key": ["sk", "proj", repeat(alnum, 40)].join("-"),
  "Anthropic API key": ["sk", "ant", "api03", repeat(alnum, 40)].join("-"),
  "GitHub token": ["ghp", repeat(alnum, 36)].join("_"),
  "Slack token": ["xoxb", "2093847561", repeat(alnum, 24)].join("-"),
  "Telegram bot token": `${"7312946580"}:${repeat(`_-${alnum}`, 35)}`,
  "AWS access key id": `AKIA${repeat("QZ7W2X9V4T6R8P3M", 16)}`,
  "Google API key": `AIza${repeat(alnum, 35)}`,
  "JSON Web Token": [`eyJ${repeat(alnum, 20)}`, `eyJ${repeat(alnum, 30)}`, repeat(alnum, 43)].join("."),
  "PEM private key": `${"-----BEGIN"} RSA PRIVATE KEY-----\n${repeat(alnum, 64)}\n${repeat(alnum.toLowerCase(), 64)}\n-----END RSA PRIVATE KEY-----`,
  "Discord bot token": [`M${repeat(alnum, 23)}`, repeat(alnum, 6), repeat(alnum, 27)].join("."),
};

/** Shapes whose prefix is a common word ending (`risk-`, `task-`): they are caught glued to `_`, `=`, `/`… but not to a letter. */
export const PROSE_PREFIXED_SHAPES: ReadonlySet<string> = new Set(["OpenAI-style API key", "Anthropic API key", "AWS access key id", "Discord bot token"]);

/** A planted canary and a provider key, as the services would hold them. */
export const CANARY = `perimeter-canary-${repeat("c4n4ry7f3a9Q", 32)}`;
export const PROVIDER_KEY = `provider-secret-${repeat("Zq8Lm2Nx", 40)}`;

/** A `.env` file whose canary line starts `shift` bytes later, so the canary's base64 lands at each alignment. */
export function envFile(shift: number): string {
  return `${"#".repeat(shift)}\nLOG_LEVEL=debug\nCANARY_TOKEN=${CANARY}\nREGION=eu-west-1\n`;
}

/** GNU `base64` wraps at 76 columns, `xxd -p` at 60. */
export function wrap(text: string, columns: number, newline = "\n"): string {
  const lines: string[] = [];
  for (let index = 0; index < text.length; index += columns) lines.push(text.slice(index, index + columns));
  return lines.join(newline);
}

const PEM_BODY = [repeat(`MIIEvQIBADAN${alnum}`, 64), repeat(`BgkqhkiG9w0B${alnum}`, 64), repeat(`AQEFAASCBKcw${alnum}`, 40)];
const pem = (label: string, footer = true) => `${"-----BEGIN"} ${label}-----\n${PEM_BODY.join("\n")}\n${footer ? `${"-----END"} ${label}-----\n` : ""}`;

export interface Attack {
  readonly name: string;
  /** Text as the agent would send it (a prompt, a tool result). */
  readonly text: string;
  /** What must not be readable afterwards, as is or decoded (see `revealed`). */
  readonly secret: string;
}

/** Ways a known value or a credential leaves in text that the review found the scanners missed (issue 12). */
export function attacks(): Attack[] {
  const list: Attack[] = [];
  for (const shift of [0, 1, 2]) {
    const env = Buffer.from(envFile(shift));
    const offset = env.indexOf(CANARY);
    list.push({ name: `base64 of a .env, canary at byte offset ${offset} (≡ ${offset % 3} mod 3)`, text: `cat: here it is ${env.toString("base64")}`, secret: CANARY });
    list.push({ name: `URL-safe base64 of a .env, canary at byte offset ${offset} (≡ ${offset % 3} mod 3)`, text: `?blob=${env.toString("base64url")}&x=1`, secret: CANARY });
    list.push({ name: `GNU base64 output wrapped at 76 columns, canary at byte offset ${offset}`, text: `$ base64 .env\n${wrap(env.toString("base64"), 76)}\n$`, secret: CANARY });
    list.push({ name: `base64 wrapped at 76 columns inside a JSON string (\\n escapes), offset ${offset}`, text: wrap(env.toString("base64"), 76, "\\n"), secret: CANARY });
    list.push({ name: `xxd -p of a .env (lower-case hex, 60 columns), offset ${offset}`, text: wrap(env.toString("hex"), 60), secret: CANARY });
    list.push({ name: `upper-case hex of a .env, offset ${offset}`, text: `0x${env.toString("hex").toUpperCase()}`, secret: CANARY });
  }
  list.push({ name: "hex of the provider key alone", text: `key=${Buffer.from(PROVIDER_KEY).toString("hex")}`, secret: PROVIDER_KEY });
  list.push({ name: "base64 of the provider key in a Basic header", text: `Authorization: Basic ${Buffer.from(`user:${PROVIDER_KEY}`).toString("base64")}`, secret: PROVIDER_KEY });
  list.push({ name: "an RSA PEM private key: header, body and footer", text: `key file:\n${pem("RSA PRIVATE KEY")}done`, secret: PEM_BODY.join("\n") });
  list.push({ name: "an OpenSSH private key", text: pem("OPENSSH PRIVATE KEY"), secret: PEM_BODY.join("\n") });
  list.push({ name: "an encrypted PKCS#8 private key", text: pem("ENCRYPTED PRIVATE KEY"), secret: PEM_BODY.join("\n") });
  list.push({ name: "a PGP private key block", text: pem("PGP PRIVATE KEY BLOCK"), secret: PEM_BODY.join("\n") });
  list.push({ name: "a PEM private key cut off before its footer", text: `head -c 2000 key.pem:\n${pem("PRIVATE KEY", false)}`, secret: PEM_BODY.join("\n") });
  list.push({ name: "a PEM private key in a JSON string (\\n escapes)", text: JSON.stringify(pem("EC PRIVATE KEY")).slice(1, -1), secret: PEM_BODY.join("\n").replaceAll("\n", "\\n") });
  for (const [kind, sample] of Object.entries(SHAPE_SAMPLES)) {
    list.push({ name: `${kind} glued to a word by '_' (token_…)`, text: `token_${sample}`, secret: sample });
    list.push({ name: `${kind} glued to a path on its right (…/next)`, text: `${sample}/next`, secret: sample });
    if (kind !== "Telegram bot token") list.push({ name: `${kind} glued to '_x' on its right`, text: `${sample}_x`, secret: sample });
    if (!PROSE_PREFIXED_SHAPES.has(kind)) list.push({ name: `${kind} glued to a letter (bot…, as in a Telegram API URL)`, text: `https://api.example.org/bot${sample}/getMe`, secret: sample });
  }
  return list;
}

/** Ordinary text that must pass untouched (a false positive destroys a prompt or a tool result). */
export const FALSE_POSITIVE_CORPUS: readonly string[] = [
  "The quick brown fox jumps over the lazy dog. Kubernetes NetworkPolicies need a CNI that enforces them.",
  "export function createServer(options: ServerOptions): Server {\n  const skip = options.skipAuth ?? false;\n  return new Server({ ...options, skip });\n}",
  "def tokenize(text: str) -> list[str]:\n    return [token for token in text.split() if token]\n",
  "commit 9fceb02d0ae598e95dc970b74767f19372d61af8\nAuthor: Dev <dev@example.com>\nDate: 2026-01-05",
  "sha256:3f2b8c1e9d4a4e7bb6f02c5d8e9a1b7f9fceb02d0ae598e95dc970b74767f193 layer already exists",
  "request id 3f2b8c1e-9d4a-4e7b-b6f0-2c5d8e9a1b7f failed after 12ms; retrying with backoff 250ms",
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7Zk4bA0aY3H9bX5mR2cV8dN1pL6sT0wQ4eU7iO3yK dev@laptop",
  "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGUgZXhhbXBsZTAKBggqhkjOPQQDAjAS\n-----END CERTIFICATE-----",
  "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEq7Zk4bA0aY3H9bX5mR2cV8dN1pL6sT0w\n-----END PUBLIC KEY-----",
  "pip install scikit-learn sk-video && kubectl get pods -n sk-system --token-file=/var/run/token",
  "the risk-assessment-for-the-new-deployment-pipeline and the task-force-2024-planning-meeting-notes are due",
  "https://example.com/search?q=openai+api+key&session=abc123&page=2#results",
  "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hermes-secret\ntype: Opaque\nstringData:\n  MINIMAX_API_KEY: ${MINIMAX_API_KEY}",
  "Set OPENAI_API_KEY in your environment; never paste the key into chat. AKIA is the prefix of AWS access key ids.",
  "REGION_ASIAPACIFICSOUTHEAST1 and CONSTANT_AKIAXYZ are configuration names, not keys",
  "at 12:30:45 the job 20260105:nightly-build-of-the-main-branch finished",
  "const jwtHeader = 'eyJ'; // JWTs start with base64 of {\"",
  `echo ${Buffer.from("the deployment finished without errors at noon; nothing to report").toString("base64")} | base64 -d`,
  `${Buffer.from("an ordinary configuration file with no secrets in it at all").toString("hex")}`,
];

const separators = /\r|\n|\\+r|\\+n/g;

/**
 * Whether any 12-character piece of `secret` can be read in `text`: as is, or decoded from base64 (any alphabet, any
 * alignment, line breaks — real or escaped — removed) or hex. An independent oracle: it knows nothing of how the scanner matches.
 */
export function revealed(text: string, secret: string, window = 12): boolean {
  const pieces = new Set<string>();
  for (let index = 0; index + window <= secret.length; index++) pieces.add(secret.slice(index, index + window));
  const readable = (candidate: string) => {
    for (const piece of pieces) if (candidate.includes(piece)) return true;
    return false;
  };
  if (readable(text)) return true;
  const joined = text.replace(separators, "");
  for (const run of joined.match(/[A-Za-z0-9+/_-]{16,}/g) ?? []) {
    for (let shift = 0; shift < 4; shift++) if (readable(Buffer.from(run.slice(shift).replaceAll("-", "+").replaceAll("_", "/"), "base64").toString("latin1"))) return true;
  }
  for (const run of joined.match(/[0-9a-fA-F]{24,}/g) ?? []) {
    for (let shift = 0; shift < 2; shift++) if (readable(Buffer.from(run.slice(shift), "hex").toString("latin1"))) return true;
  }
  return false;
}
