// Public API of shared/: the pieces every capability uses (logging, errors, addresses, tokens, bodies, the service
// host). Other folders import only from here.
export { createLogger, silentLogger } from "./log.ts";
export { freePort } from "./free-port.ts";
export type { Logger } from "./log.ts";
export { closeAfterAnswerIfBodyUnread, hasUnreadBody, REFUSAL_LINGER_MS, stopReadingBody } from "./refusal.ts";
export { findExecutable } from "./find-executable.ts";
export { sendJson, sendJsonError } from "./json-response.ts";
export { xmlText } from "./xml.ts";
export { PerimeterError, errorKinds, exitCodeFor, httpStatusFor } from "./errors.ts";
export type { ErrorCode } from "./errors.ts";
export { dialAddress, formatHostPort, isLoopbackHost, isWildcardHost, parseListenAddress, parseTcp } from "./host-port.ts";
export type { ListenAddress, ParseListenOptions, TcpAddress, UnixAddress } from "./host-port.ts";
export { bearerToken, createTokenVerifier, tokenMatches } from "./bearer.ts";
export type { TokenEntry, TokenVerifier } from "./bearer.ts";
export { BodyTooLargeError, readBoundedBody } from "./http-body.ts";
export type { ReadBodyOptions } from "./http-body.ts";
export { ServiceHost, bindServer, describeBound, feedTokenVerifier, openAuditFeedRoute, openServiceAudit, untilStopped, withAuditFeed } from "./service-host.ts";
export type { AuditFeedRoute, AuditFeedRouteOptions, BoundAddress, RequestHandler, ServiceAuditOptions } from "./service-host.ts";
