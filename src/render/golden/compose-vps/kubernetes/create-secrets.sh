#!/bin/sh
# The Secrets of perimeter "hermes", one per component (RUNBOOK.md: day 1 and rotation).
# Usage: sh create-secrets.sh [--dry-run] [--restart] [SECRET...]
#   Export each variable first (read -rs NAME && export NAME; tokens: openssl rand -hex 32). Values never appear
#   in rendered files or on a command line. With no SECRET every Secret below is applied; name some to rotate
#   only those. Re-runnable: each Secret is created or replaced, so a run cut short is finished by running it again.
#   --restart   then restart the Deployments that read them (they read Secrets only at start)
#   --dry-run   check the variables and print what would be done; runs no kubectl
#   hermes-gateway (hermes-system): HERMES_LLM_KEY, PERIMETER_AGENT_TOKEN, TELEGRAM_BOT_TOKEN — chat platform tokens, its mcp-guard token and its llm-proxy virtual key (never a provider key or an MCP upstream token)
#   mcp-guard (hermes-tools): PERIMETER_ADMIN_TOKEN, PERIMETER_AGENT_TOKEN, PERIMETER_AUDIT_FEED_TOKEN, PERIMETER_SANDBOX_TOKEN — the agents' tokens it accepts, the admin (approvals) token, the audit feed token, the token it calls the sandbox runner with
#   mcp-guard-upstream-github (hermes-tools): GITHUB_TOKEN — the credential mcp-guard injects when it calls github (its own Secret, so rotating it touches nothing else)
#   sandbox-runner (hermes-tools): PERIMETER_AUDIT_FEED_TOKEN, PERIMETER_SANDBOX_TOKEN — the token mcp-guard must present, the audit feed token
#   llm-proxy (hermes-tools): ANTHROPIC_API_KEY, HERMES_LLM_KEY, OPENROUTER_API_KEY, PERIMETER_AUDIT_FEED_TOKEN — provider API keys (only here), the virtual keys it accepts, canary values, the audit feed token
#   egress-proxy (hermes-tools): PERIMETER_AUDIT_FEED_TOKEN — the proxy tokens of the clients it identifies, the audit feed token
#   dashboard (hermes-tools): PERIMETER_ADMIN_TOKEN, PERIMETER_AUDIT_FEED_TOKEN — the admin token (the operator's login, and the approvals it decides through mcp-guard), the audit feed token it copies every component's records with
set -eu

all="hermes-gateway mcp-guard mcp-guard-upstream-github sandbox-runner llm-proxy egress-proxy dashboard"
keys_of() {
  case "$1" in
    hermes-gateway) echo "HERMES_LLM_KEY PERIMETER_AGENT_TOKEN TELEGRAM_BOT_TOKEN" ;;
    mcp-guard) echo "PERIMETER_ADMIN_TOKEN PERIMETER_AGENT_TOKEN PERIMETER_AUDIT_FEED_TOKEN PERIMETER_SANDBOX_TOKEN" ;;
    mcp-guard-upstream-github) echo "GITHUB_TOKEN" ;;
    sandbox-runner) echo "PERIMETER_AUDIT_FEED_TOKEN PERIMETER_SANDBOX_TOKEN" ;;
    llm-proxy) echo "ANTHROPIC_API_KEY HERMES_LLM_KEY OPENROUTER_API_KEY PERIMETER_AUDIT_FEED_TOKEN" ;;
    egress-proxy) echo "PERIMETER_AUDIT_FEED_TOKEN" ;;
    dashboard) echo "PERIMETER_ADMIN_TOKEN PERIMETER_AUDIT_FEED_TOKEN" ;;
    *) return 1 ;;
  esac
}
namespace_of() {
  case "$1" in
    hermes-gateway) echo "hermes-system" ;;
    mcp-guard) echo "hermes-tools" ;;
    mcp-guard-upstream-github) echo "hermes-tools" ;;
    sandbox-runner) echo "hermes-tools" ;;
    llm-proxy) echo "hermes-tools" ;;
    egress-proxy) echo "hermes-tools" ;;
    dashboard) echo "hermes-tools" ;;
    *) return 1 ;;
  esac
}
workload_of() {
  case "$1" in
    hermes-gateway) echo "hermes-gateway" ;;
    mcp-guard) echo "mcp-guard" ;;
    mcp-guard-upstream-github) echo "mcp-guard" ;;
    sandbox-runner) echo "sandbox-runner" ;;
    llm-proxy) echo "llm-proxy" ;;
    egress-proxy) echo "egress-proxy" ;;
    dashboard) echo "dashboard" ;;
    *) return 1 ;;
  esac
}

dry_run=0
restart=0
selected=""
for argument in "$@"; do
  case "$argument" in
    --dry-run) dry_run=1 ;;
    --restart) restart=1 ;;
    -h|--help) sed -n "2,8p" "$0"; exit 0 ;;
    -*) echo "create-secrets.sh: unknown option $argument (use --dry-run, --restart, or Secret names)" >&2; exit 2 ;;
    *) selected="$selected $argument" ;;
  esac
done
[ -n "$selected" ] || selected="$all"

missing=""
for name in $selected; do
  keys=$(keys_of "$name") || { echo "create-secrets.sh: no Secret \"$name\" in this render; choose from: $all" >&2; exit 2; }
  for key in $keys; do
    eval "value=\${$key:-}"
    [ -n "$value" ] || case " $missing " in *" $key "*) ;; *) missing="$missing $key" ;; esac
  done
done
if [ -n "$missing" ]; then
  echo "create-secrets.sh: export these variables first (nothing was changed):$missing" >&2
  exit 2
fi

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
for name in $selected; do
  namespace=$(namespace_of "$name")
  keys=$(keys_of "$name")
  if [ "$dry_run" = 1 ]; then
    echo "would apply Secret $name in $namespace with keys: $keys"
    continue
  fi
  set -- create secret generic "$name" --namespace="$namespace" --dry-run=client -o yaml
  for key in $keys; do
    eval "value=\${$key}"
    printf '%s' "$value" > "$work/$key"
    set -- "$@" --from-file="$key=$work/$key"
  done
  kubectl "$@" | kubectl apply -f -
  rm -f "$work"/*
done

if [ "$restart" = 1 ]; then
  for name in $selected; do
    namespace=$(namespace_of "$name")
    workload=$(workload_of "$name")
    if [ "$dry_run" = 1 ]; then echo "would restart deployment/$workload in $namespace"; continue; fi
    kubectl -n "$namespace" rollout restart "deployment/$workload"
  done
fi
