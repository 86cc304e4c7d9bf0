// Reads the TLS ClientHello at the start of a CONNECT tunnel to learn the SNI, without terminating TLS. Written by
// hand: it is small, and it sits on the security boundary (domain fronting), so it is strict where clients are
// uniform (one server_name extension, one host_name entry, no duplicate extensions) and tolerant where the protocol
// allows variety (a ClientHello split across TCP segments and across several TLS records, in any sizes).
import { PerimeterError } from "../shared/errors.ts";

/** The handshake bytes we are willing to buffer before giving up; real ClientHellos (post-quantum key shares and
 * all) are well under this. */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXTENSION_SERVER_NAME = 0;
const MAX_RECORD_PAYLOAD = 16384 + 2048;
/** Real clients use one record, rarely a few; hundreds of tiny records only serve to make a peeker work. */
const MAX_RECORDS = 64;

export type ClientHelloResult =
  | { readonly kind: "need-more" }
  | { readonly kind: "complete"; readonly serverName: string | undefined; readonly bytes: number }
  | { readonly kind: "invalid"; readonly reason: "not-tls" | "malformed-client-hello" | "client-hello-too-large"; readonly detail: string };

/** A ClientHello that breaks its own length fields; caught below and answered as malformed-client-hello. */
class Malformed extends PerimeterError {
  constructor(message: string) {
    super("bad_request", message);
  }
}

/** Bounds-checked reader over one buffer. */
class Cursor {
  private offset = 0;
  private readonly buffer: Buffer;
  private readonly end: number;
  constructor(buffer: Buffer, start = 0, end = buffer.length) {
    this.buffer = buffer;
    this.offset = start;
    this.end = end;
  }
  get remaining(): number {
    return this.end - this.offset;
  }
  private need(count: number): void {
    if (count > this.remaining) throw new Malformed(`truncated: needed ${count} bytes, ${this.remaining} left`);
  }
  u8(): number {
    this.need(1);
    return this.buffer[this.offset++] as number;
  }
  u16(): number {
    this.need(2);
    const value = this.buffer.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }
  u24(): number {
    return (this.u8() << 16) | this.u16();
  }
  skip(count: number): void {
    this.need(count);
    this.offset += count;
  }
  /** A sub-cursor over the next `count` bytes (a length-prefixed vector), advancing past them. */
  vector(count: number): Cursor {
    this.need(count);
    const inner = new Cursor(this.buffer, this.offset, this.offset + count);
    this.offset += count;
    return inner;
  }
  bytes(count: number): Buffer {
    this.need(count);
    const slice = this.buffer.subarray(this.offset, this.offset + count);
    this.offset += count;
    return slice;
  }
}

/** Parses a complete ClientHello handshake body (after the 4-byte handshake header). */
function serverNameOf(body: Buffer): string | undefined {
  const hello = new Cursor(body);
  hello.skip(2 + 32); // legacy_version, random
  hello.vector(hello.u8()); // legacy_session_id
  const suites = hello.u16();
  if (suites === 0 || suites % 2 !== 0) throw new Malformed("cipher_suites length must be even and non-zero");
  hello.skip(suites);
  hello.vector(hello.u8()); // legacy_compression_methods
  if (hello.remaining === 0) return undefined; // no extensions at all (old clients): no SNI
  const extensions = hello.vector(hello.u16());
  if (hello.remaining !== 0) throw new Malformed("bytes after the extensions block");
  const seen = new Set<number>();
  let serverName: string | undefined;
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.vector(extensions.u16());
    // Two extensions of one type are forbidden (RFC 8446 4.2); two server_names is how a fronting attempt would
    // show one name to us and another to the server.
    if (seen.has(type)) throw new Malformed(`extension ${type} appears twice`);
    seen.add(type);
    if (type !== EXTENSION_SERVER_NAME) continue;
    const list = data.vector(data.u16());
    if (data.remaining !== 0) throw new Malformed("bytes after server_name list");
    let names = 0;
    while (list.remaining > 0) {
      const nameType = list.u8();
      const name = list.bytes(list.u16());
      if (nameType !== 0) continue; // only host_name (0) is defined
      names += 1;
      if (names > 1) throw new Malformed("more than one host_name in server_name");
      const text = name.toString("latin1");
      if (text.length === 0 || !/^[\x21-\x7e]+$/.test(text)) throw new Malformed("server_name is not a printable ASCII host name");
      serverName = text;
    }
  }
  return serverName;
}

export interface ClientHelloReader {
  /** Feeds bytes as they arrive; answers once enough has been seen. */
  push(chunk: Buffer): ClientHelloResult;
  /** Every byte pushed so far, to be forwarded upstream unchanged once the tunnel is allowed. */
  buffered(): Buffer;
}

/**
 * An incremental reader: handshake fragments are collected from successive handshake records until the whole
 * ClientHello message is there, however the bytes were split into records and segments.
 */
export function createClientHelloReader(maxBytes = MAX_CLIENT_HELLO_BYTES): ClientHelloReader {
  // Parsing is incremental so that a client dribbling one byte per segment costs linear time, not quadratic.
  let data = Buffer.allocUnsafe(1024);
  let length = 0;
  let offset = 0; // end of the last complete record parsed
  let records = 0;
  const fragments: Buffer[] = [];
  let handshakeBytes = 0;
  let expected: number | undefined;
  let result: ClientHelloResult = { kind: "need-more" };

  function append(chunk: Buffer): void {
    if (length + chunk.length > data.length) {
      const grown = Buffer.allocUnsafe(Math.max(data.length * 2, length + chunk.length));
      data.copy(grown, 0, 0, length);
      data = grown;
    }
    chunk.copy(data, length);
    length += chunk.length;
  }

  function advance(): ClientHelloResult {
    for (;;) {
      if (length - offset < 5) return { kind: "need-more" };
      const type = data[offset] as number;
      const major = data[offset + 1] as number;
      const recordLength = data.readUInt16BE(offset + 3);
      if (type !== RECORD_HANDSHAKE || major !== 3) {
        return offset === 0
          ? { kind: "invalid", reason: "not-tls", detail: "the tunnel did not start with a TLS handshake record" }
          : { kind: "invalid", reason: "malformed-client-hello", detail: `record type ${type} before the ClientHello was complete` };
      }
      if (recordLength === 0 || recordLength > MAX_RECORD_PAYLOAD) return { kind: "invalid", reason: "malformed-client-hello", detail: `TLS record length ${recordLength}` };
      if (length - offset - 5 < recordLength) return { kind: "need-more" };
      records += 1;
      if (records > MAX_RECORDS) return { kind: "invalid", reason: "malformed-client-hello", detail: `ClientHello spread over more than ${MAX_RECORDS} records` };
      fragments.push(Buffer.from(data.subarray(offset + 5, offset + 5 + recordLength)));
      handshakeBytes += recordLength;
      offset += 5 + recordLength;
      if (expected === undefined && handshakeBytes >= 4) {
        const head = Buffer.concat(fragments);
        if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: "invalid", reason: "malformed-client-hello", detail: `first handshake message is type ${head[0]}, not ClientHello` };
        expected = 4 + head.readUIntBE(1, 3);
        if (expected > maxBytes) return { kind: "invalid", reason: "client-hello-too-large", detail: `ClientHello of ${expected} bytes` };
      }
      if (expected !== undefined && handshakeBytes >= expected) {
        const message = Buffer.concat(fragments).subarray(4, expected);
        try {
          return { kind: "complete", serverName: serverNameOf(message), bytes: offset };
        } catch (error) {
          if (error instanceof Malformed) return { kind: "invalid", reason: "malformed-client-hello", detail: error.message };
          throw error;
        }
      }
    }
  }

  return {
    push(chunk) {
      if (result.kind !== "need-more") return result;
      append(chunk);
      result = advance();
      if (result.kind === "need-more" && length > maxBytes + 5 * MAX_RECORDS) {
        result = { kind: "invalid", reason: "client-hello-too-large", detail: `no complete ClientHello in ${length} bytes` };
      }
      return result;
    },
    buffered() {
      return Buffer.from(data.subarray(0, length));
    },
  };
}

/** A TLS fatal alert record (access_denied), so a refused client sees why rather than a bare reset. */
export const TLS_ACCESS_DENIED_ALERT = Buffer.from([21, 3, 3, 0, 2, 2, 49]);
