// One reading of "where a service listens": HOST:PORT (IPv6 in brackets, as in a URL) or, where a service allows it,
// a Unix socket path. Port 0 (a free port picked by the kernel) is a valid listen address — tests use it — while the
// config schema refuses it for addresses other components must dial.
import { isIP } from "node:net";
import { PerimeterError } from "./errors.ts";

export interface TcpAddress {
  readonly kind: "tcp";
  /** Lower-cased, IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
}

export interface UnixAddress {
  readonly kind: "unix";
  readonly path: string;
}

export type ListenAddress = TcpAddress | UnixAddress;

export interface ParseListenOptions {
  /** Accept a socket path ("/run/x.sock" or "unix:/run/x.sock"). @default false */
  unix?: boolean;
  /** A correct address shown in the error, e.g. "127.0.0.1:8700". @default 127.0.0.1:8700 */
  example?: string;
  /** What the address is for, prefixed to the error, e.g. "--listen" or "mcp.admin.listen". */
  what?: string;
}

const HOST_PORT = /^(?:\[([^\]]*)\]|([^:[\]/\s]+)):(\d{1,5})$/;

/** HOST:PORT or a socket path; throws a PerimeterError("bad_address") saying what to write instead. */
export function parseListenAddress(text: string, options: ParseListenOptions = {}): ListenAddress {
  if (options.unix === true) {
    if (text.startsWith("unix:") && text.length > 5) return { kind: "unix", path: text.slice(5) };
    if (text.startsWith("/") || text.startsWith("./")) return { kind: "unix", path: text };
  }
  const parsed = parseTcp(text);
  if (parsed !== undefined) return parsed;
  const example = options.example ?? "127.0.0.1:8700";
  const port = example.slice(example.lastIndexOf(":") + 1);
  const alternatives = options.unix === true ? `${example}, [::1]:${port} or a socket path such as /run/perimeter/service.sock` : `${example}, or [::1]:${port} for IPv6`;
  const prefix = options.what === undefined ? "" : `${options.what} `;
  throw new PerimeterError("bad_address", `${prefix}"${text}" is not HOST:PORT${options.unix === true ? " or a socket path" : ""} (write ${alternatives})`);
}

/** HOST:PORT with a TCP port 0-65535 (0 = any free port), or undefined. */
export function parseTcp(text: string): TcpAddress | undefined {
  const match = HOST_PORT.exec(text);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (!(port >= 0 && port <= 65535)) return undefined;
  const bracketed = match[1];
  if (bracketed !== undefined) {
    // Brackets hold an IPv6 literal and nothing else (no zone identifiers: a listener names an address).
    if (bracketed.includes("%") || isIP(bracketed) !== 6) return undefined;
    return { kind: "tcp", host: bracketed.toLowerCase(), port };
  }
  return { kind: "tcp", host: (match[2] as string).toLowerCase(), port };
}

/** host:port with IPv6 in brackets, as a URL authority writes it. */
export function formatHostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Addresses only this machine can reach: 127.0.0.0/8, ::1, their IPv4-mapped forms, and "localhost". */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (bare === "localhost" || bare === "::1" || bare === "0:0:0:0:0:0:0:1") return true;
  const v4 = bare.startsWith("::ffff:") ? bare.slice(7) : bare;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

/** Whether a listen host is a wildcard (every interface). */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "";
}

/** A listen address turned into one a client on this machine can dial (a wildcard bind is reached on loopback). */
export function dialAddress(address: TcpAddress): string {
  if (address.host === "::") return formatHostPort("::1", address.port);
  if (isWildcardHost(address.host)) return formatHostPort("127.0.0.1", address.port);
  return formatHostPort(address.host, address.port);
}
