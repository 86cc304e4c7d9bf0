// Ed25519 keys for checkpoints. Public keys travel as "ed25519:<base64 of the 32 raw bytes>" — short enough to print,
// paste into a ticket or a config, and compare by eye — or as a PEM SPKI file.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

const PUBLIC_KEY_PREFIX = "ed25519:";

export interface SigningKey {
  readonly privateKey: KeyObject;
  /** "ed25519:<base64>" */
  readonly publicKey: string;
  readonly publicKeyPem: string;
}

function publicKeyId(key: KeyObject): string {
  const jwk = key.export({ format: "jwk" });
  if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.x !== "string") throw new TypeError("not an Ed25519 key");
  return PUBLIC_KEY_PREFIX + Buffer.from(jwk.x, "base64url").toString("base64");
}

function fromPrivateKey(privateKey: KeyObject, file: string): SigningKey {
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new Error(
      `${file} holds a ${privateKey.asymmetricKeyType ?? "non-asymmetric"} key; audit checkpoints need Ed25519: remove the file to have one generated, or create one with \`openssl genpkey -algorithm ed25519 -out ${file}\``,
    );
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey: publicKeyId(publicKey), publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString() };
}

/**
 * Reads the PKCS#8 PEM key in `file`, or creates it (mode 0600, directories 0700) when it does not exist, and writes
 * the public half beside it as `<file>.pub` for verifiers. Several processes may start at once on the same key file:
 * the key is written to a temporary name and linked into place, so each either creates the whole file or reads the
 * winner's, never a half-written one.
 */
export function loadOrCreateSigningKey(file: string): { key: SigningKey; created: boolean } {
  try {
    return { key: fromPrivateKey(createPrivateKey(readFileSync(file)), file), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync("ed25519");
  const key = fromPrivateKey(privateKey, file);
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  writeFileSync(temporary, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600, flag: "wx" });
  try {
    linkSync(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return { key: fromPrivateKey(createPrivateKey(readFileSync(file)), file), created: false };
  } finally {
    unlinkSync(temporary);
  }
  writeFileSync(`${file}.pub`, key.publicKeyPem, { mode: 0o644 });
  return { key, created: true };
}

export function signCheckpoint(key: SigningKey, message: Buffer): string {
  return sign(null, message, key.privateKey).toString("base64");
}

/** Parses a public key given by an operator: a PEM SPKI block, or "ed25519:<base64>" as printed by Perimeter. */
export function parsePublicKey(text: string, origin: string): string {
  const trimmed = text.trim();
  if (trimmed.includes("PRIVATE KEY")) {
    throw new Error(`${origin} holds a private key; pass the public key (the .pub file beside the signing key, or the output of perimeter audit-log public-key)`);
  }
  if (trimmed.startsWith("-----BEGIN")) {
    let key: KeyObject;
    try {
      key = createPublicKey(trimmed);
    } catch (error) {
      throw new Error(`${origin} is not a readable PEM public key: ${(error as Error).message}`);
    }
    if (key.asymmetricKeyType !== "ed25519") throw new Error(`${origin} holds a ${key.asymmetricKeyType ?? "unknown"} key; audit checkpoints are signed with Ed25519`);
    return publicKeyId(key);
  }
  const base64 = trimmed.startsWith(PUBLIC_KEY_PREFIX) ? trimmed.slice(PUBLIC_KEY_PREFIX.length) : trimmed;
  const raw = /^[A-Za-z0-9+/]{43}=$/.test(base64) ? Buffer.from(base64, "base64") : undefined;
  if (raw?.length !== 32) throw new Error(`${origin} is neither a PEM public key nor "ed25519:<base64 of 32 bytes>"`);
  return PUBLIC_KEY_PREFIX + raw.toString("base64");
}

/** False for any malformed key or signature: a verifier treats "cannot check" the same as "does not match". */
export function verifyCheckpointSignature(publicKey: string, message: Buffer, signature: string): boolean {
  if (!publicKey.startsWith(PUBLIC_KEY_PREFIX) || !/^[A-Za-z0-9+/]+={0,2}$/.test(signature)) return false;
  try {
    const x = Buffer.from(publicKey.slice(PUBLIC_KEY_PREFIX.length), "base64").toString("base64url");
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
    return verify(null, message, key, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}
