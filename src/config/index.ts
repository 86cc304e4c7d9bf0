// Public API of config/: other folders import only from here (the CLI's fast path alone reads errors.ts and
// secrets.ts directly, to recognise their errors without loading zod and yaml). The schema, loading, and secret helpers.
export { perimeterConfigSchema, globMatches, imageReference, isInternetWideCidr } from "./schema.ts";
export type {
  PerimeterConfig,
  PerimeterConfigInput,
  McpServerConfig,
  LlmProviderConfig,
  EgressConfig,
  SandboxConfig,
  ArgumentConstraint,
  HostRuleInput,
  HostConfig,
  TelegramApproverConfig,
  DashboardConfig,
} from "./schema.ts";
export { parseConfig, loadConfig, configJsonSchema, closest, editDistance } from "./load.ts";
export { ConfigError, formatProblem } from "./errors.ts";
export { compileRe2 } from "./re2.ts";
export type { ConfigProblem } from "./errors.ts";
export {
  SECRET_NAME,
  SECRET_SHAPES,
  secretShapeIn,
  placeholdersIn,
  literalCredentialIn,
  readSecret,
  requireSecrets,
  feedTokenNeeds,
  expandPlaceholders,
  secretValues,
  processEnvironment,
  MissingSecretError,
} from "./secrets.ts";
export type { Environment, SecretNeed } from "./secrets.ts";
export { declarationWarnings } from "./risks.ts";
export { parseHostRule, ruleMatchesHost, normalizeHostname, splitHostPort, DEFAULT_PORTS } from "./hosts.ts";
export { aliasTargetOf, ownersOfModel, modelsGrantedBy, unpricedProvidersFor, describeUnpriced, pricingFix } from "./llm-models.ts";
export type { LlmModelSection, GrantedModel, UnpricedProvider } from "./llm-models.ts";
export type { HostRule, HostRuleResult, HostMatch } from "./hosts.ts";
