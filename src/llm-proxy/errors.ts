// The one place where a refusal or a failure becomes an HTTP response. Every other module returns a typed
// `ProxyError`; this maps it to the wire format the agent's SDK understands: OpenAI-style
// `{ error: { message, type, param, code } }`, or Anthropic-style `{ type: "error", error: { type, message } }` for
// /v1/messages, so that an SDK raises its usual exception (and retries only what it should: 429 and 5xx).

export type ApiFlavor = "openai" | "anthropic";

export type RateLimitName = "requestsPerMinute" | "tokensPerMinute";
export type BudgetName = "tokensPerDay" | "tokensTotal" | "costPerDay" | "costTotal";

export type ProxyError =
  | { kind: "unauthorized"; detail: string }
  | { kind: "not-found"; detail: string }
  | { kind: "bad-request"; detail: string; param?: string }
  | { kind: "payload-too-large"; limitBytes: number }
  | { kind: "model-not-found"; model: string; detail: string }
  | { kind: "model-not-allowed"; model: string }
  | { kind: "dlp-blocked"; kinds: readonly string[] }
  | { kind: "rate-limited"; limit: RateLimitName; retryAfterSeconds: number; detail: string }
  | { kind: "budget-exhausted"; budget: BudgetName; detail: string }
  | { kind: "budget-unpriced"; budget: BudgetName; providers: readonly string[] }
  | { kind: "upstream-refused"; provider: string; detail: string }
  | { kind: "upstream-unavailable"; provider: string; detail: string }
  | { kind: "upstream-timeout"; provider: string; timeoutSeconds: number }
  | { kind: "upstream-error"; provider: string; status: number; message: string; upstreamType?: string; upstreamCode?: string }
  | { kind: "audit-unavailable" }
  | { kind: "internal"; detail: string };

export interface ErrorResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

interface Shape {
  status: number;
  message: string;
  openaiType: string;
  openaiCode: string | null;
  anthropicType: string;
  param?: string;
  headers?: Record<string, string>;
}

function shapeOf(error: ProxyError): Shape {
  switch (error.kind) {
    case "unauthorized":
      return { status: 401, message: `invalid or revoked virtual key: ${error.detail}`, openaiType: "invalid_request_error", openaiCode: "invalid_api_key", anthropicType: "authentication_error" };
    case "not-found":
      return { status: 404, message: error.detail, openaiType: "invalid_request_error", openaiCode: "unknown_url", anthropicType: "not_found_error" };
    case "bad-request":
      return { status: 400, message: error.detail, openaiType: "invalid_request_error", openaiCode: null, anthropicType: "invalid_request_error", ...(error.param === undefined ? {} : { param: error.param }) };
    case "payload-too-large":
      return { status: 413, message: `request body exceeds ${error.limitBytes} bytes`, openaiType: "invalid_request_error", openaiCode: "request_too_large", anthropicType: "request_too_large" };
    case "model-not-found":
      return { status: 404, message: error.detail, openaiType: "invalid_request_error", openaiCode: "model_not_found", anthropicType: "not_found_error", param: "model" };
    case "model-not-allowed":
      return { status: 403, message: `this virtual key may not use model "${error.model}"; ask the operator to add it to the key's models`, openaiType: "permission_error", openaiCode: "model_not_allowed", anthropicType: "permission_error", param: "model" };
    case "dlp-blocked":
      return { status: 403, message: `request refused: it contains what looks like a secret (${error.kinds.join(", ")}); remove it and retry`, openaiType: "permission_error", openaiCode: "sensitive_data_blocked", anthropicType: "permission_error" };
    case "rate-limited":
      return {
        status: 429,
        message: error.detail,
        openaiType: error.limit === "requestsPerMinute" ? "requests" : "tokens",
        openaiCode: "rate_limit_exceeded",
        anthropicType: "rate_limit_error",
        headers: { "retry-after": String(Math.max(1, Math.ceil(error.retryAfterSeconds))) },
      };
    case "budget-exhausted":
      return { status: 429, message: error.detail, openaiType: "insufficient_quota", openaiCode: "insufficient_quota", anthropicType: "rate_limit_error" };
    case "budget-unpriced":
      // Not 429: waiting does not help, the operator has to set a price (so SDKs must not retry it).
      return {
        status: 403,
        message: `this key has a ${error.budget} budget, but the request could be served by ${error.providers.join(", ")} with no price set, so its cost could not be counted; the operator must set ${error.providers.map((provider) => `llm.providers.${provider}.costPer1kTokens`).join(" and ")}`,
        openaiType: "permission_error",
        openaiCode: "budget_unpriced",
        anthropicType: "permission_error",
      };
    case "upstream-refused":
      return { status: 502, message: `provider ${error.provider} is refused by the address policy: ${error.detail}`, openaiType: "server_error", openaiCode: "upstream_address_refused", anthropicType: "api_error" };
    case "upstream-unavailable":
      return { status: 502, message: `provider ${error.provider} is unavailable: ${error.detail}`, openaiType: "server_error", openaiCode: "upstream_unavailable", anthropicType: "api_error" };
    case "upstream-timeout":
      return { status: 504, message: `provider ${error.provider} did not answer within ${error.timeoutSeconds} s`, openaiType: "server_error", openaiCode: "upstream_timeout", anthropicType: "api_error" };
    case "upstream-error": {
      // Keep the provider's own status (a 400 stays a 400 so the SDK does not retry it) and its type where known.
      const status = error.status >= 400 && error.status <= 599 ? error.status : 502;
      const defaultType = status === 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error";
      const anthropicDefault = status === 429 ? "rate_limit_error" : status === 401 ? "authentication_error" : status === 403 ? "permission_error" : status === 404 ? "not_found_error" : status >= 500 ? "api_error" : "invalid_request_error";
      return {
        status,
        message: `provider ${error.provider}: ${error.message}`,
        openaiType: error.upstreamType ?? defaultType,
        openaiCode: error.upstreamCode ?? `upstream_${status}`,
        anthropicType: error.upstreamType ?? anthropicDefault,
      };
    }
    case "audit-unavailable":
      return { status: 503, message: "the audit log cannot be written, so requests are refused until it recovers; see the llm-proxy logs", openaiType: "server_error", openaiCode: "audit_unavailable", anthropicType: "api_error", headers: { "retry-after": "5" } };
    case "internal":
      return { status: 500, message: `internal error in llm-proxy: ${error.detail}`, openaiType: "server_error", openaiCode: "internal_error", anthropicType: "api_error" };
  }
}

/** The HTTP status, headers and body for an error, in the flavor of the API the agent called. */
export function errorResponse(error: ProxyError, flavor: ApiFlavor): ErrorResponse {
  const shape = shapeOf(error);
  const body =
    flavor === "anthropic"
      ? { type: "error", error: { type: shape.anthropicType, message: shape.message } }
      : { error: { message: shape.message, type: shape.openaiType, param: shape.param ?? null, code: shape.openaiCode } };
  return {
    status: shape.status,
    headers: { "content-type": "application/json", ...shape.headers },
    body: JSON.stringify(body),
  };
}

/** A short machine-readable reason for audit records and metrics labels. */
export function errorReason(error: ProxyError): string {
  switch (error.kind) {
    case "rate-limited":
      return `rate-limited:${error.limit}`;
    case "budget-exhausted":
      return `budget-exhausted:${error.budget}`;
    case "budget-unpriced":
      return `budget-unpriced:${error.budget}`;
    case "upstream-error":
      return `upstream-error:${error.status}`;
    default:
      return error.kind;
  }
}

/** Parses a provider's error body (either flavor, or plain text) into a message and type, defensively. */
export function upstreamErrorDetails(body: string): { message: string; type?: string; code?: string } {
  const text = body.length > 2000 ? `${body.slice(0, 2000)}...` : body;
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === "object" && parsed !== null) {
      const error = (parsed as { error?: unknown }).error;
      if (typeof error === "object" && error !== null) {
        const fields = error as { message?: unknown; type?: unknown; code?: unknown };
        return {
          message: typeof fields.message === "string" ? fields.message.slice(0, 2000) : text,
          ...(typeof fields.type === "string" ? { type: fields.type } : {}),
          ...(typeof fields.code === "string" ? { code: fields.code } : {}),
        };
      }
      if (typeof error === "string") return { message: error.slice(0, 2000) };
      const message = (parsed as { message?: unknown }).message;
      if (typeof message === "string") return { message: message.slice(0, 2000) };
    }
  } catch {
    // Not JSON: keep the text.
  }
  return { message: text.trim() === "" ? "(empty response body)" : text.trim() };
}
