// An incremental parser for Server-Sent Events (the WHATWG "event stream" format), as MCP's Streamable HTTP transport
// uses it for answers and notifications. It takes the body as raw byte chunks, split anywhere by the network, and works
// on bytes: CR and LF never occur inside a multi-byte UTF-8 sequence, so lines can be cut on bytes and each complete
// line decoded on its own, which also lets the size bound count real bytes. What an upstream may make it hold is
// bounded: one event (its data so far plus the line being read) larger than maxEventBytes is an error, not a buffer
// that grows.
// errors.ts directly: this module is loaded where the rest of shared/ (pino) need not be.
import { PerimeterError } from "../shared/errors.ts";

/** Longest event id kept for resumption (it is sent back as the Last-Event-ID header). */
const MAX_EVENT_ID_LENGTH = 1024;

export interface ServerSentEvent {
  /** The event type; "message" when the event named none. */
  event: string;
  /** The data lines joined with "\n". */
  data: string;
  /** The last event id seen on the stream so far (ids persist across events, as in EventSource). */
  lastEventId: string | undefined;
}

export interface SseParserOptions {
  onEvent: (event: ServerSentEvent) => void;
  /** A `retry:` field: the reconnection delay the server asks for, in milliseconds. */
  onRetry?: (milliseconds: number) => void;
  /** Largest event (data plus the unfinished line) held in memory, in bytes. */
  maxEventBytes: number;
}

export class SseEventTooLargeError extends PerimeterError {
  readonly limit: number;
  constructor(limit: number) {
    super("too_large", `an event on the upstream's event stream is larger than the ${limit}-byte limit (maxMessageBytes); the stream was refused`);
    this.limit = limit;
  }
}

const LF = 0x0a;
const CR = 0x0d;

export class SseParser {
  private readonly options: SseParserOptions;
  /** Bytes of a line that has not ended yet. */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** The previous chunk ended with CR: a LF at the start of the next one belongs to the same line break. */
  private pendingCr = false;
  private firstLine = true;
  private data: string[] = [];
  private dataBytes = 0;
  private eventType = "";
  private lastId: string | undefined;

  constructor(options: SseParserOptions) {
    this.options = options;
  }

  get lastEventId(): string | undefined {
    return this.lastId;
  }

  push(chunk: Buffer): void {
    let start = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk.length > 0 && chunk[0] === LF) start = 1;
    }
    let nextLf = chunk.indexOf(LF, start);
    let nextCr = chunk.indexOf(CR, start);
    while (nextLf !== -1 || nextCr !== -1) {
      const end = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextLf, nextCr);
      this.line(this.takeLine(chunk, start, end));
      start = end + 1;
      if (chunk[end] === CR) {
        if (start === chunk.length) this.pendingCr = true;
        else if (chunk[start] === LF) start += 1;
      }
      if (nextLf !== -1 && nextLf < start) nextLf = chunk.indexOf(LF, start);
      if (nextCr !== -1 && nextCr < start) nextCr = chunk.indexOf(CR, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.partialBytes += rest.length;
      this.checkSize();
      this.partial.push(rest);
    }
  }

  /** The stream ended: an event without its closing blank line is discarded (as the format requires). */
  end(): void {
    this.partial = [];
    this.partialBytes = 0;
    this.data = [];
    this.dataBytes = 0;
    this.eventType = "";
  }

  private takeLine(chunk: Buffer, start: number, end: number): string {
    if (this.partial.length === 0) return chunk.toString("utf8", start, end);
    this.partialBytes += end - start;
    this.checkSize();
    this.partial.push(chunk.subarray(start, end));
    const text = Buffer.concat(this.partial, this.partialBytes).toString("utf8");
    this.partial = [];
    this.partialBytes = 0;
    return text;
  }

  private checkSize(): void {
    if (this.dataBytes + this.partialBytes > this.options.maxEventBytes) throw new SseEventTooLargeError(this.options.maxEventBytes);
  }

  private line(text: string): void {
    if (this.firstLine) {
      this.firstLine = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (text.length === 0) {
      this.dispatch();
      return;
    }
    if (text.charCodeAt(0) === 0x3a) return; // ":" — a comment (keep-alives, padding)
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    switch (field) {
      case "data":
        this.dataBytes += Buffer.byteLength(value) + 1;
        this.checkSize();
        this.data.push(value);
        break;
      case "event":
        this.eventType = value;
        break;
      case "id":
        // It goes back to the upstream as a Last-Event-ID header: only a short, printable one is kept (anything else
        // would be an oversized header or one Node refuses to send, and the stream simply cannot be resumed).
        if (value.length <= MAX_EVENT_ID_LENGTH && /^[\x20-\x7e]*$/.test(value)) this.lastId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.options.onRetry?.(Number(value));
        break;
      default:
      // Unknown fields are ignored.
    }
  }

  private dispatch(): void {
    const type = this.eventType;
    this.eventType = "";
    if (this.data.length === 0) return;
    const data = this.data.length === 1 ? (this.data[0] as string) : this.data.join("\n");
    this.data = [];
    this.dataBytes = 0;
    this.options.onEvent({ event: type === "" ? "message" : type, data, lastEventId: this.lastId });
  }
}
