// What both of the guard's listeners need of HTTP: refusals as JSON-RPC errors, DNS-rebinding protection (the Host,
// and a browser's Origin, must name the guard) and binding to a HOST:PORT (src/shared's bindServer). None of it needs
// the guard's state.
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { validateHostHeader, validateOriginHeader } from "@modelcontextprotocol/server";
import { bindServer, closeAfterAnswerIfBodyUnread } from "../shared/index.ts";
import { parseListen } from "./setup.ts";

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];

export function jsonError(response: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null });
  // Refused before its body was read (wrong path, Host, token): the body is never read (see src/shared/refusal.ts).
  closeAfterAnswerIfBodyUnread(response);
  response.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), "cache-control": "no-store", ...headers });
  response.end(body);
}

/** The Host names a listener answers to: loopback, its own address unless it is a wildcard, and mcp.allowedHosts. */
export function allowedHostsFor(listen: string, allowedHosts: readonly string[]): string[] {
  const { host } = parseListen(listen);
  const bracketed = host.includes(":") ? `[${host}]` : host;
  const own = host === "0.0.0.0" || host === "::" || host === "" ? [] : [bracketed];
  return [...new Set([...LOOPBACK_NAMES, ...own, ...allowedHosts.map((name) => name.toLowerCase())])];
}

/** DNS-rebinding protection: why the request is refused, or undefined when its Host (and Origin) name us. */
export function hostRejection(request: IncomingMessage, allowed: string[]): string | undefined {
  const host = validateHostHeader(request.headers.host, allowed);
  if (!host.ok) return `Host "${String(request.headers.host ?? "")}" is not allowed (add it to mcp.allowedHosts if agents reach the guard by that name)`;
  const originHeader = request.headers.origin;
  if (originHeader !== undefined && originHeader !== "") {
    const origin = validateOriginHeader(originHeader, allowed);
    if (!origin.ok) return `Origin "${originHeader}" is not allowed`;
  }
  return undefined;
}

/** Binds a listener; a port in use or an address no interface has is a PerimeterError("setup") naming the fix. */
export async function listenOn(server: HttpServer, listen: string): Promise<AddressInfo> {
  await bindServer(server, { kind: "tcp", ...parseListen(listen) });
  return server.address() as AddressInfo;
}

/** Stops listening and ends every connection, idle or not. */
export function closeListener(server: HttpServer): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** The request's path without its query. */
export function pathOf(request: IncomingMessage): string {
  return (request.url ?? "/").split("?")[0] ?? "/";
}
