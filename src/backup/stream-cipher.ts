// age's payload encryption, STREAM (https://age-encryption.org/v1): 64 KiB chunks sealed with ChaCha20-Poly1305
// under a key derived from the file key, each with an 11-byte big-endian counter nonce whose last byte marks the
// final chunk (so a cut at a chunk boundary is detected). node:crypto (OpenSSL) does the sealing: the age-encryption
// package's pure-JavaScript cipher ran at 74 MB/s here against about 800 MiB/s. No other import, so the encryption
// thread starts fast.
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync } from "node:crypto";
import type { KeyObject } from "node:crypto";

export const CHUNK = 64 * 1024;
export const TAG = 16;
/** The payload nonce after the header, from which the payload key is derived. */
export const NONCE = 16;

export function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync("sha256", fileKey, nonce, "payload", 32));
}

/** A KeyObject once, instead of the raw key imported again for each of the 16,384 chunks of a GiB. */
export function payloadKeyObject(key: Uint8Array): KeyObject {
  return createSecretKey(key);
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  // 11-byte big-endian counter; 6 bytes reach 2^48 chunks (16 EiB), far past any archive.
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

/** Ciphertext and tag as two buffers, written one after the other: no copy to join them. */
function sealChunk(key: KeyObject, counter: number, last: boolean, plaintext: Buffer): [Buffer, Buffer] {
  const cipher = createCipheriv("chacha20-poly1305", key, chunkNonce(counter, last), { authTagLength: TAG });
  const sealed = cipher.update(plaintext);
  cipher.final();
  return [sealed, cipher.getAuthTag()];
}

export function openChunk(key: KeyObject, counter: number, last: boolean, sealed: Buffer): Buffer | undefined {
  const decipher = createDecipheriv("chacha20-poly1305", key, chunkNonce(counter, last), { authTagLength: TAG });
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
  const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG));
  try {
    decipher.final();
  } catch {
    return undefined;
  }
  return plaintext;
}

/** Seals a payload chunk by chunk. A full chunk is sealed as "not last" only once more data follows it. */
export interface PayloadSealer {
  /** Sealed chunks that the data completes (none until more than 64 KiB is pending). */
  add(data: Buffer): Buffer[];
  /** The final chunk (possibly empty or full). */
  finish(): Buffer[];
}

export function createPayloadSealer(key: KeyObject): PayloadSealer {
  const pending = Buffer.alloc(CHUNK);
  let used = 0;
  let counter = 0;
  return {
    add(data) {
      const sealed: Buffer[] = [];
      let offset = 0;
      while (offset < data.length) {
        if (used === CHUNK) {
          sealed.push(...sealChunk(key, counter, false, pending));
          counter += 1;
          used = 0;
        }
        // Whole chunks straight from the input, with at least one byte after them (so they are not the last).
        while (used === 0 && data.length - offset > CHUNK) {
          sealed.push(...sealChunk(key, counter, false, data.subarray(offset, offset + CHUNK)));
          counter += 1;
          offset += CHUNK;
        }
        const take = Math.min(CHUNK - used, data.length - offset);
        data.copy(pending, used, offset, offset + take);
        used += take;
        offset += take;
      }
      return sealed;
    },
    finish() {
      const last = sealChunk(key, counter, true, pending.subarray(0, used));
      pending.fill(0);
      return last;
    },
  };
}

