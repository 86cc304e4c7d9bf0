// One error base for the whole product. Every error a capability throws on purpose extends PerimeterError with a
// stable `code`; this file alone maps a code to the CLI's exit code (DESIGN.md: 1 denial/findings, 2 usage or config,
// 3 internal) and to an HTTP status, so two services can no longer answer the same failure differently.
// Anything that is not a PerimeterError is a bug: exit 3, HTTP 500.

interface ErrorKind {
  readonly exit: 1 | 2 | 3;
  readonly http: number;
}

const ERROR_KINDS = {
  /** The command was called wrongly (flags, arguments). */
  usage: { exit: 2, http: 400 },
  /** perimeter.yaml (or another input file) is invalid. */
  config: { exit: 2, http: 500 },
  /** An environment variable the config names is not set. */
  missing_secret: { exit: 2, http: 500 },
  /** A listen or dial address is not HOST:PORT (or a socket path where one is allowed). */
  bad_address: { exit: 2, http: 400 },
  /** The host cannot run what the config asks (a missing tool, a busy port, no user namespaces). */
  setup: { exit: 2, http: 500 },
  /** The audit log cannot be opened or written: the service refuses to act. */
  audit_unavailable: { exit: 2, http: 503 },
  /** A request or payload is malformed. */
  bad_request: { exit: 1, http: 400 },
  /** The client did not send its whole request in time (a body trickling in). */
  slow_client: { exit: 1, http: 408 },
  /** A body or value is larger than the configured bound. */
  too_large: { exit: 1, http: 413 },
  /** A body is sent in a media type the endpoint does not read. */
  unsupported_media: { exit: 1, http: 415 },
  /** The request is refused by policy. */
  denied: { exit: 1, http: 403 },
  /** The thing named does not exist. */
  not_found: { exit: 1, http: 404 },
  /** The request conflicts with the current state (already decided, expired). */
  conflict: { exit: 1, http: 409 },
  /** Stored data failed an integrity check (a broken audit chain, a tampered archive, a wrong key). */
  integrity: { exit: 1, http: 500 },
  /** An operation (a backup, a restore) could not be completed, for a reason the message names. */
  failed: { exit: 1, http: 500 },
  /** A dependency answered wrongly or not at all. */
  upstream: { exit: 1, http: 502 },
  /** A dependency or a task ran out of time. */
  timeout: { exit: 1, http: 504 },
  /** A dependency is not available right now. */
  unavailable: { exit: 3, http: 503 },
  /** Everything else we throw on purpose but cannot blame on input. */
  internal: { exit: 3, http: 500 },
} as const satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof ERROR_KINDS;

export const EXIT_INTERNAL_ERROR = 3;

export class PerimeterError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  get exitCode(): 1 | 2 | 3 {
    return ERROR_KINDS[this.code].exit;
  }
  get httpStatus(): number {
    return ERROR_KINDS[this.code].http;
  }
}

/** The process exit code an error ends a command with: its kind's, or 3 for anything that is not ours. */
export function exitCodeFor(error: unknown): 1 | 2 | 3 {
  return error instanceof PerimeterError ? error.exitCode : EXIT_INTERNAL_ERROR;
}

/** The HTTP status an error is answered with: its kind's, or 500 for anything that is not ours. */
export function httpStatusFor(error: unknown): number {
  return error instanceof PerimeterError ? error.httpStatus : 500;
}

/** Every code with its exit code and HTTP status (for docs and tests). */
export function errorKinds(): ReadonlyArray<{ code: ErrorCode; exit: number; http: number }> {
  return (Object.keys(ERROR_KINDS) as ErrorCode[]).map((code) => ({ code, ...ERROR_KINDS[code] }));
}
