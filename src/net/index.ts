// Outbound address policy shared by every service that dials out (egress-proxy, llm-proxy, mcp-guard upstreams).
export { checkAddress, parseIpLiteral, embeddedIpv4, cidrContains, isUnspecifiedAddress, DENIED_RANGES } from "./address-policy.ts";
export type { AddressDecision, AddressPolicyOptions, AddressFamily } from "./address-policy.ts";
export { cachingResolver, resolveChecked, systemResolver, staticResolver } from "./resolve.ts";
export type { CachingResolverOptions, CheckedAddress, Resolver, ResolveResult, ResolveOptions } from "./resolve.ts";
