#!/bin/sh
# Secrets for perimeter "hermes", one per component. Export each variable first (values never
# appear in rendered files); a missing one stops the script. Generate tokens with: openssl rand -hex 32
set -eu

# chat platform tokens, its mcp-guard token and its llm-proxy virtual key (never a provider key or an MCP upstream token)
kubectl create secret generic hermes-gateway --namespace=hermes-system \
  --from-literal=HERMES_LLM_KEY="${HERMES_LLM_KEY:?set HERMES_LLM_KEY}" \
  --from-literal=PERIMETER_AGENT_TOKEN="${PERIMETER_AGENT_TOKEN:?set PERIMETER_AGENT_TOKEN}" \
  --from-literal=TELEGRAM_BOT_TOKEN="${TELEGRAM_BOT_TOKEN:?set TELEGRAM_BOT_TOKEN}"

# the agents' tokens it accepts, the admin (approvals) token, the token it calls the sandbox runner with
kubectl create secret generic mcp-guard --namespace=hermes-tools \
  --from-literal=PERIMETER_ADMIN_TOKEN="${PERIMETER_ADMIN_TOKEN:?set PERIMETER_ADMIN_TOKEN}" \
  --from-literal=PERIMETER_AGENT_TOKEN="${PERIMETER_AGENT_TOKEN:?set PERIMETER_AGENT_TOKEN}" \
  --from-literal=PERIMETER_SANDBOX_TOKEN="${PERIMETER_SANDBOX_TOKEN:?set PERIMETER_SANDBOX_TOKEN}"

# the token mcp-guard must present
kubectl create secret generic sandbox-runner --namespace=hermes-tools \
  --from-literal=PERIMETER_SANDBOX_TOKEN="${PERIMETER_SANDBOX_TOKEN:?set PERIMETER_SANDBOX_TOKEN}"

# provider API keys (only here), the virtual keys it accepts, canary values
kubectl create secret generic llm-proxy --namespace=hermes-tools \
  --from-literal=HERMES_LLM_KEY="${HERMES_LLM_KEY:?set HERMES_LLM_KEY}" \
  --from-literal=MINIMAX_API_KEY="${MINIMAX_API_KEY:?set MINIMAX_API_KEY}"
