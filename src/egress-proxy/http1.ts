// The strict HTTP/1.1 pieces of the upstream leg of plain-HTTP forwarding: a response-head parser and a chunked-body
// decoder. Written by hand because Node's HTTP client (ClientRequest, the Agent's pooling, its response parser) was a
// third of the proxy's CPU per request, and the parts needed here are small enough to own. The client side stays on
// Node's llhttp server, which is where smuggling attempts come from.
//
// Strictness is the point: anything a lenient parser would guess at (bare LF, obs-fold, whitespace before the colon,
// control characters, two Content-Lengths, Content-Length with Transfer-Encoding, codings other than chunked,
// oversized heads, chunk sizes that overflow) is refused, and the connection it came on is never reused, so an origin
// cannot make us misframe one response into another.
import { PerimeterError } from "../shared/errors.ts";

export interface ResponseHead {
  /** 0 or 1: the minor version of HTTP/1.x. */
  readonly minor: number;
  readonly status: number;
  readonly reason: string;
  /** name, value, name, value... as received (names in their original case). */
  readonly rawHeaders: string[];
  /** Bytes of the head including the blank line that ends it. */
  readonly length: number;
  /** How the body is framed, before the request method and status are taken into account. */
  readonly framing: { readonly kind: "length"; readonly length: number } | { readonly kind: "chunked" } | { readonly kind: "close" };
  /** The response asks for the connection to be closed after it (Connection: close, or HTTP/1.0 without keep-alive). */
  readonly close: boolean;
  /** Tokens of the Connection header, lowercased: these headers are hop-by-hop for this response. */
  readonly connectionTokens: ReadonlySet<string>;
}

export type HeadParse = { readonly kind: "need-more" } | { readonly kind: "invalid"; readonly detail: string } | { readonly kind: "head"; readonly head: ResponseHead };

const NEED_MORE = { kind: "need-more" } as const;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values: visible characters, space, tab and obs-text; no other control characters. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const MAX_CONTENT_LENGTH = Number.MAX_SAFE_INTEGER;
/** Shared by every response without a Connection header; read-only by type (nothing adds to a head's tokens). */
const NO_TOKENS: ReadonlySet<string> = new Set<string>();

const invalid = (detail: string): HeadParse => ({ kind: "invalid", detail });

/**
 * Parses a response head at the start of `buffer`. "need-more" until the blank line has arrived; "invalid" when the
 * head is malformed or longer than `maxBytes`.
 */
export function parseResponseHead(buffer: Buffer, maxBytes: number, scannedBefore = 0): HeadParse {
  // `scannedBefore`: bytes at the start already seen without a complete head, so that a head arriving a byte at a
  // time is scanned once in all, not once per byte (the CR/LF/CR/LF and CR-then-other checks look back 3 and 1).
  const end = buffer.indexOf("\r\n\r\n", Math.max(0, scannedBefore - 3), "latin1");
  if (end === -1) {
    // A head past the limit without its end is already fatal; so is a bare LF or CR anywhere in what we have: a head
    // written with bare LFs never contains CRLFCRLF, and waiting for one would turn a malformed response into a
    // timeout (or, behind a body that happens to hold CRLFCRLF, into a much later refusal).
    if (buffer.length > maxBytes) return invalid(`response head longer than ${maxBytes} bytes`);
    if (hasBareLineBreak(buffer, Math.max(0, scannedBefore - 1))) return invalid("bare CR or LF in the response head");
    return NEED_MORE;
  }
  const length = end + 4;
  if (length > maxBytes) return invalid(`response head longer than ${maxBytes} bytes`);
  const text = buffer.toString("latin1", 0, end);
  const lines = text.split("\r\n");
  for (const line of lines) if (line.includes("\n") || line.includes("\r")) return invalid("bare CR or LF in the response head");
  const statusMatch = STATUS_LINE.exec(lines[0] ?? "");
  if (statusMatch === null) return invalid(`malformed status line "${(lines[0] ?? "").slice(0, 80)}"`);
  const minor = Number(statusMatch[1]);
  const status = Number(statusMatch[2]);
  const rawHeaders: string[] = [];
  let contentLength: number | undefined;
  let transferEncoding: string | undefined;
  let connection = "";
  for (let index = 1; index < lines.length; index += 1) {
    const line = lines[index] as string;
    if (line.startsWith(" ") || line.startsWith("\t")) return invalid("obs-fold (a header line continued on the next line)");
    const colon = line.indexOf(":");
    if (colon <= 0) return invalid(`malformed header line "${line.slice(0, 80)}"`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return invalid(`invalid header name "${name.slice(0, 80)}"`);
    // Only spaces and tabs around a value are optional whitespace; String.trim would also drop control characters
    // (\v, \f) and latin1 NBSP, letting "Content-Length: \v5" pass the check below as "5".
    const value = trimOptionalWhitespace(line.slice(colon + 1));
    if (!FIELD_VALUE.test(value)) return invalid(`control character in the ${name} header`);
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      if (contentLength !== undefined) return invalid("more than one Content-Length");
      if (!/^[0-9]{1,16}$/.test(value) || Number(value) > MAX_CONTENT_LENGTH) return invalid(`invalid Content-Length "${value.slice(0, 40)}"`);
      contentLength = Number(value);
    } else if (lower === "transfer-encoding") {
      if (transferEncoding !== undefined) return invalid("more than one Transfer-Encoding");
      transferEncoding = value.toLowerCase();
    } else if (lower === "connection") {
      connection = connection === "" ? value : `${connection},${value}`;
    }
  }
  const connectionTokens: ReadonlySet<string> = connection === "" ? NO_TOKENS : new Set(
    connection
      .toLowerCase()
      .split(",")
      .map((token) => token.trim())
      .filter((token) => token !== ""),
  );
  const close = connectionTokens.has("close") || (minor === 0 && !connectionTokens.has("keep-alive"));
  let framing: ResponseHead["framing"];
  if (transferEncoding !== undefined) {
    if (contentLength !== undefined) return invalid("both Content-Length and Transfer-Encoding");
    if (transferEncoding !== "chunked") return invalid(`Transfer-Encoding "${transferEncoding.slice(0, 40)}" (only chunked is accepted)`);
    if (minor === 0) return invalid("Transfer-Encoding in an HTTP/1.0 response");
    framing = { kind: "chunked" };
  } else if (contentLength !== undefined) {
    framing = { kind: "length", length: contentLength };
  } else {
    framing = { kind: "close" };
  }
  return { kind: "head", head: { minor, status, reason: statusMatch[3] ?? "", rawHeaders, length, framing, close, connectionTokens } };
}

/** An LF not preceded by CR, or a CR followed by anything but LF (a CR at the very end may still get its LF). */
function hasBareLineBreak(buffer: Buffer, from = 0): boolean {
  for (let index = buffer.indexOf(10, from); index !== -1; index = buffer.indexOf(10, index + 1)) if (index === 0 || buffer[index - 1] !== 13) return true;
  for (let index = buffer.indexOf(13, from); index !== -1; index = buffer.indexOf(13, index + 1)) if (index + 1 < buffer.length && buffer[index + 1] !== 10) return true;
  return false;
}

/** Strips leading and trailing spaces and tabs (a loop, not a regular expression: no backtracking on long values). */
function trimOptionalWhitespace(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text.charCodeAt(start) === 32 || text.charCodeAt(start) === 9)) start += 1;
  while (end > start && (text.charCodeAt(end - 1) === 32 || text.charCodeAt(end - 1) === 9)) end -= 1;
  return text.slice(start, end);
}

/** Whether a response to `method` with `status` carries a body at all (RFC 9112 §6.3). */
export function responseHasBody(method: string, status: number): boolean {
  return method !== "HEAD" && status !== 204 && status !== 304 && !(status >= 100 && status < 200);
}

export interface ChunkedDecoder {
  /**
   * Feeds bytes; calls `onData` with each slice of body. Returns how many bytes of `chunk` belonged to the body (the
   * rest follow the message), or throws ChunkedError on malformed framing.
   */
  push(chunk: Buffer, onData: (data: Buffer) => void): number;
  /** The terminating chunk and trailers have been read. */
  readonly done: boolean;
}

/** An origin's chunked body that does not follow the framing rules; the exchange fails with a 502. */
export class ChunkedError extends PerimeterError {
  constructor(message: string) {
    super("upstream", `malformed chunked body: ${message}`);
  }
}

/** Limits on the parts of chunked framing that are not body: a size line and the trailer section. */
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;

/**
 * Decodes `Transfer-Encoding: chunked`: hex size (at most 15 digits, and refused unless it is a safe integer), optional
 * extensions (ignored), CRLF, data, CRLF; a zero size ends the body, followed by trailers (read and dropped) and a
 * blank line. Only CRLF line ends are accepted.
 */
export function createChunkedDecoder(): ChunkedDecoder {
  type State = "size" | "data" | "data-end" | "trailers" | "done";
  let state: State = "size";
  let line = "";
  let remaining = 0;
  let trailerBytes = 0;

  /** `before`: bytes of the same section in lines already complete (the trailer section's limit spans its lines). */
  function takeLine(chunk: Buffer, start: number, limit: number, before: number, what: string): { line: string; next: number } | number {
    const newline = chunk.indexOf(10, start);
    const end = newline === -1 ? chunk.length : newline + 1;
    line += chunk.toString("latin1", start, end);
    if (before + line.length > limit) throw new ChunkedError(`${what} longer than ${limit} bytes`);
    if (newline === -1) return end;
    if (!line.endsWith("\r\n")) throw new ChunkedError(`bare LF in the ${what}`);
    const complete = line.slice(0, -2);
    line = "";
    return { line: complete, next: end };
  }

  return {
    get done() {
      return state === "done";
    },
    push(chunk, onData) {
      let offset = 0;
      while (offset < chunk.length && state !== "done") {
        if (state === "data") {
          const take = Math.min(remaining, chunk.length - offset);
          onData(chunk.subarray(offset, offset + take));
          offset += take;
          remaining -= take;
          if (remaining === 0) state = "data-end";
          continue;
        }
        if (state === "data-end") {
          // Exactly CRLF after the data; collect it across reads.
          const piece = chunk.toString("latin1", offset, Math.min(chunk.length, offset + 2 - line.length));
          line += piece;
          offset += piece.length;
          if (line.length < 2) continue;
          if (line !== "\r\n") throw new ChunkedError("chunk data not followed by CRLF");
          line = "";
          state = "size";
          continue;
        }
        const what = state === "size" ? "chunk-size line" : "trailer section";
        const taken = state === "size" ? takeLine(chunk, offset, MAX_CHUNK_LINE, 0, what) : takeLine(chunk, offset, MAX_TRAILER_BYTES, trailerBytes, what);
        if (typeof taken === "number") {
          offset = taken;
          continue;
        }
        // Counted once the line is complete: the partial line is already in `line` (counting both refused trailers
        // split across reads at about half the limit).
        if (state === "trailers") trailerBytes += taken.line.length + 2;
        offset = taken.next;
        if (state === "size") {
          const match = /^([0-9A-Fa-f]{1,15})(?:[\t ]*;.*)?$/.exec(taken.line);
          if (match === null) throw new ChunkedError(`invalid chunk size line "${taken.line.slice(0, 40)}"`);
          if (/[\x00-\x08\x0a-\x1f\x7f]/.test(taken.line)) throw new ChunkedError("control character in a chunk extension");
          remaining = Number.parseInt(match[1] as string, 16);
          // 15 hex digits are 60 bits: past 2^53 the count would be inexact and the body's end misplaced.
          if (!Number.isSafeInteger(remaining)) throw new ChunkedError(`chunk size ${match[1] as string} is larger than ${Number.MAX_SAFE_INTEGER}`);
          state = remaining === 0 ? "trailers" : "data";
        } else if (taken.line === "") {
          state = "done";
        } else if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*$/.test(taken.line)) {
          throw new ChunkedError(`malformed trailer line "${taken.line.slice(0, 40)}"`);
        }
      }
      return offset;
    },
  };
}

/** Frames `data` as one chunk of a chunked body. */
export function encodeChunk(data: Buffer): Buffer[] {
  return [Buffer.from(`${data.length.toString(16)}\r\n`, "latin1"), data, CRLF];
}

export const CRLF = Buffer.from("\r\n", "latin1");
export const LAST_CHUNK = Buffer.from("0\r\n\r\n", "latin1");
