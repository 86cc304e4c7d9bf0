// Docker Compose rules.
import type { RuleDefinition } from "../model.ts";
import { rule } from "./define.ts";

export const COMPOSE_RULES: readonly RuleDefinition[] = [
  rule(
    "COMPOSE-HOST-NETWORK", "high",
    "Service uses the host's network (or PID/IPC) namespace",
    "\"the default network_mode: host gives the agent process unrestricted outbound network access\" (seed 002): any command it runs reaches any endpoint, LAN and host services included.",
    "Remove network_mode: host and attach the service to an internal network.",
    `
services:
  hermes-gateway:
    networks: [agent]
networks:
  agent: { internal: true }
`,
  ),
  rule(
    "COMPOSE-DOCKER-SOCKET", "critical",
    "Service mounts the Docker socket",
    "\"Anyone who can control /var/run/docker.sock can often get root-equivalent access to the host\" (seed 004).",
    "Remove the socket mount.",
    `
volumes:
  - ./data:/opt/data          # no /var/run/docker.sock
`,
  ),
  rule(
    "COMPOSE-PRIVILEGED", "critical",
    "Service runs privileged",
    "A privileged container is root on the host.",
    "Remove privileged: true.",
    `
privileged: false
security_opt: ["no-new-privileges:true"]
`,
  ),
  rule(
    "COMPOSE-CAP-ADD", "high",
    "Service adds Linux capabilities",
    "Added capabilities (NET_ADMIN, SYS_ADMIN, ...) give code running in the container power over the host's network or kernel.",
    "Remove cap_add (keep NET_BIND_SERVICE at most) and drop what is not needed.",
    `
cap_drop: [NET_RAW]
`,
  ),
  rule(
    "COMPOSE-SECURITY-OPT-UNCONFINED", "high",
    "Service disables seccomp, AppArmor, SELinux or no-new-privileges",
    "seccomp:unconfined and apparmor:unconfined remove the kernel filters that stop container escapes; label:disable turns SELinux off.",
    "Remove those security_opt entries and add no-new-privileges:true.",
    `
security_opt: ["no-new-privileges:true"]
`,
  ),
  rule(
    "COMPOSE-PORT-ALL-INTERFACES", "high",
    "Port published on all interfaces",
    "\"8642:8642\" listens on 0.0.0.0 (and Docker bypasses ufw): the API server or dashboard is on the internet. Seed 004: \"Prefer loopback or Tailscale-only bindings\".",
    "Publish on loopback: \"127.0.0.1:9119:9119\", or not at all.",
    `
ports:
  - "127.0.0.1:9119:9119"
`,
  ),
  rule(
    "COMPOSE-AGENT-NETWORK-NOT-INTERNAL", "high",
    "The agent is attached to a network that is not internal",
    "Seed 002: \"internal — no default route, no internet access. The agent ... run[s] here.\" On a network with a default route, a proxy setting is only advice: a prompt-injected command ignores HTTPS_PROXY and connects directly.",
    "Attach the agent only to internal: true networks; let the egress proxy alone sit on the egress network.",
    `
services:
  hermes-gateway:
    networks: [agent]
  egress-proxy:
    networks: [agent, egress]
networks:
  agent: { internal: true }
  egress: {}
`,
  ),
  rule(
    "COMPOSE-PROVIDER-KEY-IN-AGENT", "high",
    "An LLM provider key is in the agent's environment",
    "\"Values passed with -e, environment:, or env_file: can be visible through docker inspect\" and through /proc/<pid>/environ to the agent's child processes (seed 004). Provider keys belong to llm-proxy.",
    "Give the provider key to llm-proxy only; the agent gets a virtual key and llm-proxy's URL.",
    `
services:
  hermes-gateway:
    env_file: [env/hermes-gateway.env]   # bot tokens and HERMES_LLM_KEY (a virtual key) only
  llm-proxy:
    env_file: [env/llm-proxy.env]        # MINIMAX_API_KEY lives here
`,
  ),
  rule(
    "COMPOSE-NO-EGRESS-PROXY", "medium",
    "The agent has no egress proxy configured",
    "Seed 002: \"route all outbound traffic through an HTTP proxy with an explicit allowlist\". Without HTTPS_PROXY the agent's platform and model calls have no allowlisted path out of an internal network.",
    "Set HTTPS_PROXY/HTTP_PROXY to the egress proxy and NO_PROXY to the internal services.",
    `
environment:
  HTTPS_PROXY: http://egress-proxy:3128
  HTTP_PROXY: http://egress-proxy:3128
  NO_PROXY: mcp-guard,llm-proxy,localhost,127.0.0.1,::1
`,
  ),
  rule(
    "COMPOSE-UNKNOWN-KEY", "medium",
    "Unknown key in a compose service",
    "A misspelled key (privilegd, cap_drp, security_opts) is ignored or rejected depending on the Compose version, so the protection you wrote may not be there.",
    "Fix the spelling; the finding names the closest known key.",
    `
cap_drop: [NET_RAW]
security_opt: ["no-new-privileges:true"]
`,
  ),
];
